//! Where a container's log file may be: inside its pod's log directory,
//! reached without following any symlink planted inside that directory.
//!
//! It owns checking the CRI `log_directory` and `log_path` and opening the
//! file. The log directory itself is the kubelet's (under `/var/log/pods`)
//! and may sit behind an administrator's symlink; everything below it may
//! have been shaped by a container that mounts part of it, so no symlink
//! is followed there. It does not create directories: the kubelet creates
//! the container's log directory before CreateContainer.
//!
//! A log file has one writer: opening it takes an exclusive `flock`, so a
//! second dockshim pointed at the same dockerd (or one still shutting
//! down) cannot write a container's lines into it a second time, nor cut
//! what it takes for a torn last line while the writer is mid-line.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use super::LogError;

/// Permissions of a new log file: the kubelet (root) reads it, log
/// shippers in the file's group may, nobody else.
pub const LOG_FILE_MODE: u32 = 0o640;

/// Joins `log_directory` and `log_path` after checking that the result can
/// only name a file inside `log_directory`: `log_directory` absolute;
/// `log_path` non-empty, relative, without `..` and without NUL; and no
/// existing component below `log_directory` a symlink or (for directories)
/// anything but a directory.
pub fn validate_log_path(log_directory: &Path, log_path: &Path) -> Result<PathBuf, LogError> {
    let invalid = |reason: String| Err(LogError::InvalidPath(reason));
    if !log_directory.is_absolute() {
        return invalid(format!("log directory {:?} is not absolute", log_directory));
    }
    if has_nul(log_directory.as_os_str()) || has_nul(log_path.as_os_str()) {
        return invalid("a NUL byte in the log path".to_owned());
    }
    let mut normals = Vec::new();
    for component in log_path.components() {
        match component {
            Component::Normal(name) => normals.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return invalid(format!("log path {log_path:?} contains \"..\""))
            }
            Component::RootDir | Component::Prefix(_) => {
                return invalid(format!("log path {log_path:?} is absolute"))
            }
        }
    }
    let Some((file_name, directories)) = normals.split_last() else {
        return invalid(format!("log path {log_path:?} names no file"));
    };
    let mut path = log_directory.to_path_buf();
    for directory in directories {
        path.push(directory);
        match path.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                return invalid(format!("{} is a symlink", path.display()))
            }
            Ok(meta) if !meta.is_dir() => {
                return invalid(format!("{} is not a directory", path.display()))
            }
            Ok(_) => {}
            // Missing: opening the file will fail, naming it.
            Err(_) => {}
        }
    }
    path.push(file_name);
    if let Ok(meta) = path.symlink_metadata() {
        if meta.file_type().is_symlink() {
            return invalid(format!("{} is a symlink", path.display()));
        }
        if !meta.is_file() {
            return invalid(format!("{} is not a regular file", path.display()));
        }
    }
    Ok(path)
}

fn has_nul(text: &OsStr) -> bool {
    text.as_bytes().contains(&0)
}

/// An open log file, locked for its one writer until dropped.
pub type LogFile = Flock<File>;

/// Opens (creating it with [`LOG_FILE_MODE`]) a log file for appending and
/// locks it without waiting: [`LogError::Locked`] if another open file
/// holds the lock, [`LogError::MissingDirectory`] if its directory does not
/// exist. The last component is opened with `O_NOFOLLOW`, so a symlink put
/// there after [`validate_log_path`] is refused, not followed.
pub fn open_log_file(path: &Path) -> Result<LogFile, LogError> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|source| match (source.kind(), path.parent()) {
            // With O_CREAT only a missing directory gives ENOENT.
            (io::ErrorKind::NotFound, Some(directory)) => LogError::MissingDirectory {
                path: directory.to_owned(),
            },
            _ => LogError::File {
                path: path.to_owned(),
                source,
            },
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => LogError::Locked {
            path: path.to_owned(),
        },
        errno => LogError::File {
            path: path.to_owned(),
            source: errno.into(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dockshim-logpath-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app")).unwrap();
        dir
    }

    #[test]
    fn relative_paths_inside_the_directory_are_joined() {
        let dir = temp_dir();
        assert_eq!(
            validate_log_path(&dir, Path::new("app/0.log")).unwrap(),
            dir.join("app/0.log")
        );
        assert_eq!(
            validate_log_path(&dir, Path::new("./app/1.log")).unwrap(),
            dir.join("app/1.log")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parent_components_absolute_paths_and_nul_are_refused() {
        let dir = temp_dir();
        for bad in [
            "../escape.log",
            "app/../../escape.log",
            "/etc/passwd",
            "",
            ".",
            "app/\0.log",
        ] {
            let err = validate_log_path(&dir, Path::new(bad)).unwrap_err();
            assert!(matches!(err, LogError::InvalidPath(_)), "{bad:?}: {err}");
        }
        assert!(validate_log_path(Path::new("relative"), Path::new("a.log")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlinks_below_the_directory_are_refused() {
        let dir = temp_dir();
        std::os::unix::fs::symlink("/tmp", dir.join("linked")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("app/0.log")).unwrap();
        let err = validate_log_path(&dir, Path::new("linked/0.log")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        let err = validate_log_path(&dir, Path::new("app/0.log")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        let err = open_log_file(&dir.join("app/0.log")).unwrap_err();
        assert!(matches!(err, LogError::File { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_log_files_are_mode_0640_and_appended_to() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir();
        let path = dir.join("app/0.log");
        open_log_file(&path).unwrap().write_all(b"a\n").unwrap();
        open_log_file(&path).unwrap().write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_file_in_a_missing_directory_names_the_directory() {
        let dir = temp_dir();
        let err = open_log_file(&dir.join("gone/0.log")).unwrap_err();
        assert!(
            matches!(&err, LogError::MissingDirectory { path } if *path == dir.join("gone")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_file_has_one_writer_at_a_time() {
        let dir = temp_dir();
        let path = dir.join("app/0.log");
        let writer = open_log_file(&path).unwrap();
        let err = open_log_file(&path).unwrap_err();
        assert!(matches!(err, LogError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("another writer"), "{err}");
        drop(writer);
        open_log_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
