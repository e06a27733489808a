//! The files rvsd leaves while it runs, and what start-up does with those
//! a killed rvsd left behind.
//!
//! **The control socket** (`[control] socket`) must be absent or a socket,
//! in a directory owned by rvsd's user that no one else may write to
//! (else another user could swap the socket, or rvsd would remove a file
//! it does not own). `--check-config` refuses anything else, so `socket =
//! "/etc/passwd"` never reaches start-up. At start-up a socket at the path
//! that answers belongs to a running rvsd: refused. One that does not is
//! what a killed rvsd left: removed (logged) and bound anew. A missing
//! directory is created, mode 0755.
//!
//! **DPDK's runtime directory** (`/run/dpdk/<file_prefix>`): EAL keeps its
//! shared config there, locked (a POSIX record lock on `config`) for the
//! life of the primary process. A killed rvsd leaves it (several MB of
//! tmpfs). Before EAL starts, rvsd looks the lock up in `/proc/locks`: held
//! by a live process, that process is named and start-up refused (EAL would
//! refuse too, less clearly); not held, the directory is a dead process's
//! and is removed (logged).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Where EAL keeps the runtime files of a root process.
pub const EAL_RUNTIME_DIR: &str = "/run/dpdk";

/// The user rvsd runs as (the owner of `/proc/self`).
///
/// # Errors
/// `/proc` is not mounted.
pub fn own_uid() -> io::Result<u32> {
    fs::metadata("/proc/self").map(|m| m.uid())
}

/// Why a control socket path is refused (`None`: fine). Checks what is on
/// disk now: the path, if present, is a socket; its directory, if present,
/// is a directory owned by root or `uid` (rvsd's user) and writable by no
/// one else. What this user may not look at is left to start-up.
#[must_use]
pub fn socket_path_problem(path: &Path, uid: u32) -> Option<String> {
    if !path.is_absolute() || path.file_name().is_none() {
        return Some(format!(
            "socket {} must be an absolute path to a file",
            path.display()
        ));
    }
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Some(format!(
            "socket {} exists and is not a socket: rvsd would have to remove it (it never does)",
            path.display()
        ))
        }
        Ok(_) => {}
        // Absent; or not for this user to see (`--check-config` run by
        // another user than rvsd's): start-up checks again.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) => {}
        Err(e) => return Some(format!("socket {}: {e}", path.display())),
    }
    let dir = path.parent()?;
    match fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => Some(format!(
            "socket {}: {} is not a directory",
            path.display(),
            dir.display()
        )),
        Ok(m) if m.uid() != uid && m.uid() != 0 => Some(format!(
            "socket {}: its directory {} belongs to uid {}, not root nor rvsd's ({uid}): put the socket in a directory of rvsd's own, like /run/rvs",
            path.display(),
            dir.display(),
            m.uid()
        )),
        Ok(m) if m.mode() & 0o022 != 0 => Some(format!(
            "socket {}: others may write to its directory {} (mode {:o}): put the socket in a directory of rvsd's own, like /run/rvs",
            path.display(),
            dir.display(),
            m.mode() & 0o7777
        )),
        Ok(_) => None,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => None,
        Err(e) => Some(format!(
            "socket {}: directory {}: {e}",
            path.display(),
            dir.display()
        )),
    }
}

/// Binds the control socket at `path` (mode 0600), removing a stale one.
/// Returns the listener and whether a stale socket was removed.
///
/// # Errors
/// The path is refused (see [`socket_path_problem`]), a running rvsd
/// answers on it, or binding fails.
pub fn bind_control_socket(path: &Path) -> io::Result<(UnixListener, bool)> {
    if let Some(problem) = socket_path_problem(path, own_uid()?) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, problem));
    }
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        }
    }
    let mut stale = false;
    if fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another rvsd is answering on it",
            ));
        }
        // A socket (checked above) nobody answers on: a killed rvsd's.
        fs::remove_file(path)?;
        stale = true;
    }
    let l = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok((l, stale))
}

/// What [`clean_eal_runtime`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EalRuntime {
    /// No runtime directory: nothing to do.
    Absent,
    /// A dead process's runtime directory, removed.
    RemovedStale,
}

/// Removes `dir` (EAL's runtime directory for one file prefix) if no live
/// process holds the lock on its `config`; `locks` is the text of
/// `/proc/locks`.
///
/// # Errors
/// A live process holds it (named in the message), or removing failed.
pub fn clean_eal_runtime(dir: &Path, locks: &str) -> Result<EalRuntime, String> {
    let Ok(m) = fs::symlink_metadata(dir) else {
        return Ok(EalRuntime::Absent);
    };
    if !m.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if let Ok(config) = fs::metadata(dir.join("config")) {
        if let Some(pid) = lock_holder(locks, config.dev(), config.ino()) {
            return Err(format!(
                "DPDK runtime directory {} is in use by process {pid} (another rvsd or DPDK application with the same file_prefix)",
                dir.display()
            ));
        }
    }
    // Only the files EAL makes (no subdirectories), then the directory.
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let t = e
            .file_type()
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if !t.is_dir() {
            fs::remove_file(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
        }
    }
    fs::remove_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(EalRuntime::RemovedStale)
}

/// The pid holding a POSIX lock on the file (`dev`, `ino`), from
/// `/proc/locks` lines like `1: POSIX  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`.
#[must_use]
pub fn lock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    // The kernel prints the device as MAJOR:MINOR in hex.
    let (major, minor) = (dev_major(dev), dev_minor(dev));
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1:" POSIX ADVISORY WRITE pid dev:ino start end; a blocked
        // waiter's line has "->" after the number.
        let f = if f.get(1) == Some(&"->") {
            &f[1..]
        } else {
            &f[..]
        };
        if f.get(1) != Some(&"POSIX") && f.get(1) != Some(&"OFDLCK") {
            return None;
        }
        let pid: u32 = f.get(4)?.parse().ok()?;
        let mut id = f.get(5)?.split(':');
        let ma = u64::from_str_radix(id.next()?, 16).ok()?;
        let mi = u64::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (ma == major && mi == minor && i == ino && pid != 0).then_some(pid)
    })
}

fn dev_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn dev_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-runfiles-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_refused_and_kept() {
        let uid = own_uid().unwrap();
        let d = tmp("file");
        let f = d.join("passwd");
        fs::write(&f, "root:x:0:0\n").unwrap();
        let why = socket_path_problem(&f, uid).unwrap();
        assert!(why.contains("exists and is not a socket"), "{why}");
        assert!(bind_control_socket(&f).is_err());
        assert_eq!(fs::read_to_string(&f).unwrap(), "root:x:0:0\n");
        assert!(socket_path_problem(Path::new("/etc/passwd"), uid).is_some());
        assert!(socket_path_problem(Path::new("rvsd.sock"), uid)
            .unwrap()
            .contains("absolute"));
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_directory_must_be_rvsds_alone() {
        let uid = own_uid().unwrap();
        let d = tmp("dir");
        let sock = d.join("rvsd.sock");
        assert_eq!(socket_path_problem(&sock, uid), None);
        // Absent directories are created later: fine.
        assert_eq!(socket_path_problem(&d.join("sub/rvsd.sock"), uid), None);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(socket_path_problem(&sock, uid)
            .unwrap()
            .contains("others may write"));
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        if uid == 0 {
            std::os::unix::fs::chown(&d, Some(12345), None).unwrap();
            let why = socket_path_problem(&sock, uid).unwrap();
            assert!(why.contains("belongs to uid 12345"), "{why}");
            std::os::unix::fs::chown(&d, Some(0), None).unwrap();
        } else {
            assert!(socket_path_problem(&sock, uid + 1)
                .unwrap()
                .contains("belongs to uid"));
        }
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_is_not() {
        let d = tmp("stale");
        let sock = d.join("rvsd.sock");
        let (live, stale) = bind_control_socket(&sock).unwrap();
        assert!(!stale);
        let err = bind_control_socket(&sock).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live); // the socket file stays, as after kill -9
        assert!(fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
        let (_l, stale) = bind_control_socket(&sock).unwrap();
        assert!(stale);
        assert_eq!(
            fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn proc_locks_lines_name_the_holder() {
        let locks = "1: POSIX  ADVISORY  WRITE 4242 00:1a:5678 0 EOF\n\
                     1: -> POSIX  ADVISORY  WRITE 4343 00:1a:5678 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 99 fd:01:5678 0 EOF\n";
        let dev = 0x1a; // major 0, minor 0x1a
        assert_eq!(lock_holder(locks, dev, 5678), Some(4242));
        assert_eq!(lock_holder(locks, dev, 5679), None);
        assert_eq!(
            lock_holder(locks, (0xfd << 8) | 1, 5678),
            None,
            "flock is not EAL's"
        );
    }

    #[test]
    fn an_unlocked_runtime_directory_is_removed() {
        let d = tmp("eal");
        let run = d.join("rvs-test");
        fs::create_dir(&run).unwrap();
        fs::write(run.join("config"), [0u8; 64]).unwrap();
        fs::write(run.join("fbarray_memzone"), [0u8; 64]).unwrap();
        assert_eq!(clean_eal_runtime(&run, ""), Ok(EalRuntime::RemovedStale));
        assert!(!run.exists());
        assert_eq!(clean_eal_runtime(&run, ""), Ok(EalRuntime::Absent));
        // Locked by a live process: kept, and the process named.
        fs::create_dir(&run).unwrap();
        fs::write(run.join("config"), [0u8; 64]).unwrap();
        let m = fs::metadata(run.join("config")).unwrap();
        let locks = format!(
            "1: POSIX  ADVISORY  WRITE 777 {:02x}:{:02x}:{} 0 EOF\n",
            dev_major(m.dev()),
            dev_minor(m.dev()),
            m.ino()
        );
        let e = clean_eal_runtime(&run, &locks).unwrap_err();
        assert!(e.contains("in use by process 777"), "{e}");
        assert!(run.join("config").exists());
        fs::remove_dir_all(d).unwrap();
    }
}
