#!/usr/bin/env bash
# Checks that every C format test_ipvsadm_cli.py expects is in ipvsadm
# 1.31's source (ipvsadm.c, libipvs/libipvs.c), as golden/check-against-c.sh
# checks the listing goldens. popt's own formats ("%s: %s\n") are popt's and
# are found in ipvsadm.c's call of it.
#   tests/e2e/check_ipvsadm_texts.sh /path/to/ipvsadm-1.31
set -euo pipefail
src=${1:?usage: $0 IPVSADM_SRC_DIR}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
python3 - "$src" <<'PY'
import re, sys, pathlib
sys.path.insert(0, ".")
import test_ipvsadm_cli as t
src = pathlib.Path(sys.argv[1])
text = (src / "ipvsadm.c").read_text(encoding="latin-1") + (src / "libipvs" / "libipvs.c").read_text(encoding="latin-1")
# C's adjacent string literals ("illegal virtual server "\n "address...") as one.
import re
text = re.sub(r'"\s*\n\s*"', "", text)
missing = [fmt for _, _, _, fmt in t.PARSE_CASES if f'"{fmt}"' not in text]
missing += [msg for _, msg in t.KERNEL_CASES if f'"{msg}"' not in text]
for m in missing:
    print(f"not in ipvsadm's source: {m!r}")
print(f"{len(t.PARSE_CASES) + len(t.KERNEL_CASES) - len(missing)} texts found, {len(missing)} missing")
sys.exit(1 if missing else 0)
PY
