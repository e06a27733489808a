"""Every tool the suite runs is installed by the suite's installer.

`scripts/deps --list test` is the package list `scripts/test` (and so
`.ci/run`) installs. This module reads what the suite's Python modules
actually execute (the argv literals handed to `run`, `in_ns`, `Popen`, ...,
through `ip netns exec`, `sh -c` and similar wrappers) and what the shell
scripts the suite drives run, finds the Debian package that ships each tool
on this machine (`dpkg -S`), and requires that package to be in the list, a
dependency of something in it, or part of every Debian system (Essential or
Priority: required). A module that starts using a tool nobody installs fails
here, on this machine or on a fresh one, instead of on the first CI run of a
machine that lacks it."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from deploylib import REPO

# Functions of the suite that execute their argv argument(s).
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "in_ns", "spawn"}
# Shell scripts of the project the suite executes, scanned for commands too.
SUITE_SCRIPTS = ["scripts/lab", "scripts/test"]
# Not Debian packages: the toolchain README's prerequisite (rustup) and the
# project's own binaries.
NOT_DEBIAN = {"cargo", "rustc"}
# Words that precede a command (stripped) and shell builtins (not programs).
SHELL_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "exec",
                  "command", "builtin", "nohup"}
SHELL_BUILTINS = {"fi", "for", "done", "case", "esac", "in", "function", "select", "}", "[[", "]]",
                  "local", "declare", "export", "readonly", "return", "exit", "set", "shift",
                  "trap", "wait", "cd", "echo", "printf", "read", "test", "[", "true", "false",
                  ":", ".", "source", "eval", "unset", "type", "kill", "break", "continue", "let",
                  "getopts", "mapfile", "pushd", "popd", "shopt", "ulimit", "umask", "jobs",
                  "disown", "coproc"}
WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def literal_argv(node: ast.AST) -> list[str | None] | None:
    """A list/tuple literal as strings; an element that is not a literal
    (a variable, a call) is None, an f-string keeps its literal parts."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        return None
    out: list[str | None] = []
    for elt in node.elts:
        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
            out.append(elt.value)
        elif isinstance(elt, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "X" for v in elt.values))
        elif isinstance(elt, ast.Starred):
            break
        else:
            out.append(None)
    return out


def shell_commands(script: str) -> list[str]:
    """The command words of a shell snippet (first word of each simple command)."""
    found = []
    for part in re.split(r"\|\||&&|[;|\n&()`]|\$\(", script):
        try:
            words = shlex.split(part, comments=True)
        except ValueError:
            words = part.split()
        while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in SHELL_KEYWORDS):
            words = words[1:]
        if words:
            found.append(words[0])
    return found


def argv_commands(argv: list[str | None]) -> list[str]:
    """The programs ARGV runs: its first word and, through the wrappers the
    suite uses, the program each wrapper runs in turn."""
    if not argv or argv[0] is None:
        return []
    cmd, rest = argv[0], argv[1:]
    found = [cmd]
    name = os.path.basename(cmd)
    if name == "ip" and rest[:2] == ["netns", "exec"]:
        found += argv_commands(rest[3:])
    elif name in ("sh", "bash") and "-c" in rest:
        i = rest.index("-c")
        if i + 1 < len(rest) and rest[i + 1] is not None:
            found += shell_commands(rest[i + 1])
    elif name in ("unshare", "setpriv", "timeout", "env", "nsenter", "flock", "nice"):
        i = 0
        while i < len(rest) and rest[i] is not None and (
                rest[i].startswith("-") or "=" in rest[i] or (name == "timeout" and i == 0)):
            i += 1
        if i < len(rest) and rest[i] == "--":
            i += 1
        found += argv_commands(rest[i:])
    return found


def tree_commands(tree: ast.AST) -> set[str]:
    """The programs the runner calls in TREE hand argv literals to."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in RUNNERS:
            continue
        for arg in list(node.args) + [k.value for k in node.keywords]:
            argv = literal_argv(arg)
            if argv:
                found.update(argv_commands(argv))
    return found


def python_commands(path: Path) -> set[str]:
    return tree_commands(ast.parse(path.read_text(), str(path)))


def shell_word(word: dict) -> str | None:
    """A shfmt word as a string when it is literal (plain, quoted), else None."""
    out = []
    for part in word.get("Parts", []):
        if part["Type"] in ("Lit", "SglQuoted"):
            out.append(part["Value"])
        elif part["Type"] == "DblQuoted":
            inner = shell_word(part)
            if inner is None:
                return None
            out.append(inner)
        else:
            return None
    return "".join(out)


def script_commands(path: Path) -> set[str]:
    """The programs a bash script runs, from shfmt's syntax tree of it (every
    simple command's first word, through the same wrappers as above), less
    the script's own functions."""
    tree = json.loads(subprocess.run(["shfmt", "--tojson"], input=path.read_text(),
                                     capture_output=True, text=True, check=True).stdout)
    functions: set[str] = set()
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("Type") == "FuncDecl":
                functions.add(node["Name"]["Value"])
            if node.get("Type") == "CallExpr" and node.get("Args"):
                found.update(argv_commands([shell_word(w) for w in node["Args"]]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found - functions


@functools.cache
def suite_commands() -> dict[str, set[str]]:
    """command -> the files that run it."""
    users: dict[str, set[str]] = {}
    modules = sorted((REPO / "tests").glob("*/*.py"))
    assert len(modules) > 20, "the suite's modules were not found"
    for module in modules:
        for cmd in python_commands(module):
            users.setdefault(cmd, set()).add(str(module.relative_to(REPO)))
    for script in SUITE_SCRIPTS:
        for cmd in script_commands(REPO / script):
            users.setdefault(cmd, set()).add(script)
    return {c: u for c, u in users.items() if is_program(c)}


def is_program(word: str) -> bool:
    """A word that names a program on PATH (not the project's own files, not
    a variable expansion or a path into the tree)."""
    if word.startswith("/"):
        return word.startswith(("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/"))
    return bool(WORD.match(word)) and word not in SHELL_KEYWORDS | SHELL_BUILTINS and word not in NOT_DEBIAN


@functools.cache
def installer_packages() -> set[str]:
    out = subprocess.run(["bash", str(REPO / "scripts/deps"), "--list", "test"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@functools.cache
def covered_packages() -> set[str]:
    """The installer's packages, everything they depend on, and what every
    Debian system has (Essential: yes, Priority: required)."""
    listed = sorted(installer_packages())
    deps = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                           "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                           "--installed", *listed], capture_output=True, text=True, check=True).stdout
    covered = set(listed)
    for line in deps.splitlines():
        line = line.strip()
        name = line.split(":", 1)[-1].strip() if ":" in line else line
        name = name.strip("<>").split(":")[0]
        if name:
            covered.add(name)
    base = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential} ${Priority}\n"],
                          capture_output=True, text=True, check=True).stdout
    for line in base.splitlines():
        pkg, essential, priority = (line.split() + ["", ""])[:3]
        if essential == "yes" or priority == "required":
            covered.add(pkg)
    return covered


def owning_package(cmd: str) -> str | None:
    """The Debian package that ships CMD as found on PATH (or, when PATH finds
    a non-Debian copy first such as a pyenv shim, in /usr/bin and friends)."""
    candidates = [cmd] if cmd.startswith("/") else []
    if not candidates:
        first = shutil.which(cmd)
        if first:
            candidates.append(first)
        candidates += [f"{d}/{cmd}" for d in ("/usr/bin", "/usr/sbin", "/bin", "/sbin")]
    for path in candidates:
        if not os.path.exists(path):
            continue
        for p in dict.fromkeys([path, os.path.realpath(path)]):
            proc = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            # "diversion by dash from: /bin/sh" lines come before "dash: /bin/sh".
            owners = [line.split(":", 1)[0] for line in proc.stdout.splitlines()
                      if not line.startswith("diversion by ")]
            if proc.returncode == 0 and owners:
                return owners[0].split(",")[0].strip()
    return None


def test_the_extractor_sees_through_the_wrappers():
    tree = ast.parse('in_ns("client", ["sh", "-c", f"printf x | socat - UDP:{vip}:53 && ping -c1 h"])\n'
                     'run(["ip", "netns", "exec", "rvs-rs1", "tcpdump", "-n"])\n'
                     'run(["unshare", "--net", "sh", "-c", "ethtool -K x tx off", "sh"])\n'
                     'pytest.mark.parametrize("n", ["lb1", "lb2"])\n')
    found = tree_commands(tree)
    assert {c for c in found if is_program(c)} == {"sh", "socat", "ping", "ip", "tcpdump", "unshare", "ethtool"}


def test_the_suite_uses_tools():
    cmds = suite_commands()
    # Tools the suite is known to use: the scan must find them, or it scans nothing.
    for expected in ("ip", "curl", "ping", "sysctl", "promtool", "tcpdump", "shellcheck", "ethtool"):
        assert expected in cmds, f"{expected} not found by the scan: {sorted(cmds)}"


@pytest.mark.parametrize("cmd", sorted(suite_commands()))
def test_every_tool_the_suite_runs_is_installed_by_scripts_deps(cmd):
    users = ", ".join(sorted(suite_commands()[cmd]))
    pkg = owning_package(cmd)
    assert pkg is not None, (
        f"{cmd!r} (run by {users}) is not installed from any Debian package on this machine: "
        f"add the package that ships it to TEST_PACKAGES in scripts/deps")
    assert pkg in covered_packages(), (
        f"{cmd!r} (run by {users}) comes from Debian package {pkg!r}, which scripts/deps does not "
        f"install (nor anything it depends on, nor the base system): add {pkg} to TEST_PACKAGES")
