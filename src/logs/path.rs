//! Where a container's log file may be: inside its pod's log directory,
//! reached without following any symlink planted inside that directory.
//!
//! It owns checking the CRI `log_directory` and `log_path`, and every open
//! and removal of a log file. The pod's log directory is the kubelet's
//! (under `/var/log/pods`, which may itself be an administrator's
//! symlink); everything inside it may have been shaped by a container that
//! mounts part of it, so nothing there is followed. A log path holds at
//! most one directory below the pod's (`<container>/<n>.log`, the
//! kubelet's layout). It does not create directories: the kubelet creates
//! the container's log directory before CreateContainer.
//!
//! Files are opened beneath a directory handle, never by path: the
//! directory above the last two components of the log path (the pod's
//! log directory, in the kubelet's layout) is opened with `O_NOFOLLOW` on
//! its own last component, then each of the two with `openat` and
//! `O_NOFOLLOW` (a directory with `O_DIRECTORY`), so a symlink swapped in
//! after any check is refused by the kernel, not followed. A log path of
//! one component (`0.log`, as critest uses) splits one level higher: the
//! pod's directory is then the first of the two, and the directory above
//! it must not be a symlink either. The same rule applies to a path read
//! back from a container's label after a restart, which is checked again
//! as if it were new. A symlink, or something other than a regular file or
//! directory, where the log goes is refused as an invalid log path
//! (`INVALID_ARGUMENT`, as at CreateContainer): the path the caller gave
//! cannot be written safely, and no retry of the same call changes that
//! until someone removes what was planted.
//!
//! A log file has one writer: opening it takes an exclusive `flock`, so a
//! second dockshim pointed at the same dockerd (or one still shutting
//! down) cannot write a container's lines into it a second time, nor cut
//! what it takes for a torn last line while the writer is mid-line.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::LogError;

/// Permissions of a new log file: the kubelet (root) reads it, log
/// shippers in the file's group may, nobody else.
pub const LOG_FILE_MODE: u32 = 0o640;

/// Components a log path may have below the pod's log directory: a file,
/// or one directory and a file.
pub const MAX_LOG_PATH_DEPTH: usize = 2;

/// Joins `log_directory` and `log_path` after checking that the result can
/// only name a file inside `log_directory`: `log_directory` absolute and
/// not a symlink itself; `log_path` non-empty, relative, at most
/// [`MAX_LOG_PATH_DEPTH`] components, without `..` and without NUL; and no
/// existing component below `log_directory` a symlink or (for directories)
/// anything but a directory. The result passes [`LogLocation::of`].
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
    if normals.is_empty() {
        return invalid(format!("log path {log_path:?} names no file"));
    }
    if normals.len() > MAX_LOG_PATH_DEPTH {
        return invalid(format!(
            "log path {log_path:?} goes more than one directory below the log directory"
        ));
    }
    let mut path = log_directory.to_path_buf();
    path.extend(&normals);
    let location = LogLocation::of(&path)?;
    // The pod's directory itself is entered without following a symlink
    // at its name, and so is everything below it. Missing directories
    // are not refused here: opening the file fails later, naming them.
    let mut at = match open_directory(log_directory) {
        Ok(directory) => directory,
        Err(LogError::MissingDirectory { .. }) => return Ok(location.path),
        Err(err) => return Err(err),
    };
    let mut shown = log_directory.to_path_buf();
    let (file_name, directories) = normals
        .split_last()
        .ok_or_else(|| LogError::InvalidPath(format!("log path {log_path:?} names no file")))?;
    for name in directories {
        shown.push(name);
        match open_directory_at(&at, name, &shown) {
            Ok(next) => at = next,
            Err(LogError::MissingDirectory { .. }) => return Ok(location.path),
            Err(err) => return Err(err),
        }
    }
    shown.push(file_name);
    match fstatat(&at, *file_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => check_regular(&stat, &shown)?,
        Err(Errno::ENOENT) => {}
        Err(errno) => return Err(file_error(&shown, errno)),
    }
    Ok(location.path)
}

/// A log file's path split where it is opened: the directory above its
/// last two components, whose own last component and those two are not
/// followed (its ancestors are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLocation {
    path: PathBuf,
    directory: PathBuf,
    subdirectory: OsString,
    file_name: OsString,
}

impl LogLocation {
    /// Checks a log file's full path (as [`validate_log_path`] made it, or
    /// as read back from a container's label) and splits it: absolute,
    /// without NUL, `.` or `..`, and at least two components long.
    pub fn of(path: &Path) -> Result<LogLocation, LogError> {
        let invalid =
            |reason: &str| Err(LogError::InvalidPath(format!("log file {path:?} {reason}")));
        if has_nul(path.as_os_str()) {
            return invalid("holds a NUL byte");
        }
        // `Path::components` drops a `.` inside a path; a recorded path
        // holding one was not made by `validate_log_path`.
        let dotted = path
            .as_os_str()
            .as_bytes()
            .split(|&byte| byte == b'/')
            .any(|part| part == b"." || part == b"..");
        if dotted {
            return invalid("holds \".\" or \"..\"");
        }
        let mut components = path.components();
        if components.next() != Some(Component::RootDir) {
            return invalid("is not absolute");
        }
        let mut names = Vec::new();
        for component in components {
            match component {
                Component::Normal(name) => names.push(name),
                _ => return invalid("holds \".\" or \"..\""),
            }
        }
        let [ancestors @ .., subdirectory, file_name] = names.as_slice() else {
            return invalid("is not inside a directory below /");
        };
        let mut directory = PathBuf::from("/");
        directory.extend(ancestors);
        Ok(LogLocation {
            path: path.to_owned(),
            directory,
            subdirectory: (*subdirectory).to_owned(),
            file_name: (*file_name).to_owned(),
        })
    }

    /// The directory handle the file's name is looked up in.
    fn parent(&self) -> Result<OwnedFd, LogError> {
        let directory = open_directory(&self.directory)?;
        let shown = self.directory.join(&self.subdirectory);
        open_directory_at(&directory, &self.subdirectory, &shown)
    }

    /// Opens the file with `flags` (beyond `O_NOFOLLOW | O_CLOEXEC |
    /// O_NONBLOCK`), refusing anything but a regular file. `O_NONBLOCK`
    /// keeps a FIFO planted at the name from blocking the open; it changes
    /// nothing for a regular file.
    fn open_file(&self, flags: OFlag) -> Result<File, LogError> {
        let parent = self.parent()?;
        let name = self.file_name.as_os_str();
        // Checked before the open too, so that a device node is never
        // opened (opening one can have effects of its own).
        match fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => check_regular(&stat, &self.path)?,
            Err(Errno::ENOENT) if flags.contains(OFlag::O_CREAT) => {}
            Err(errno) => return Err(file_error(&self.path, errno)),
        }
        let fd = openat(
            &parent,
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(LOG_FILE_MODE),
        )
        .map_err(|errno| file_error(&self.path, errno))?;
        let stat = fstat(&fd).map_err(|errno| file_error(&self.path, errno))?;
        check_regular(&stat, &self.path)?;
        Ok(File::from(fd))
    }
}

/// An open log file, locked for its one writer until dropped.
pub type LogFile = Flock<File>;

/// Opens (creating it with [`LOG_FILE_MODE`]) a log file for appending and
/// locks it without waiting: [`LogError::Locked`] if another open file
/// holds the lock, [`LogError::MissingDirectory`] if its directory does not
/// exist, [`LogError::InvalidPath`] if the path fails [`LogLocation::of`]
/// or a symlink or special file sits where a component goes.
pub fn open_log_file(path: &Path) -> Result<LogFile, LogError> {
    let file =
        LogLocation::of(path)?.open_file(OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT)?;
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

/// Opens an existing log file for reading and cutting its torn tail, by
/// the same rules as [`open_log_file`]; `None` if it does not exist.
pub(super) fn open_log_file_for_resume(path: &Path) -> Result<Option<File>, LogError> {
    match LogLocation::of(path)?.open_file(OFlag::O_RDWR) {
        Ok(file) => Ok(Some(file)),
        Err(LogError::MissingDirectory { .. }) => Ok(None),
        Err(LogError::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Removes a log file, if there is one, by the same rules: its directory
/// is entered without following a symlink, and only its own name is
/// unlinked (a symlink planted there loses its name, its target nothing).
/// A path that breaks the rules is left alone with a warning rather than
/// refused: nothing of dockshim's is there to remove, and refusing would
/// keep RemoveContainer failing for good.
pub(super) fn remove_log_file(path: &Path) -> Result<(), LogError> {
    let parent = match LogLocation::of(path).and_then(|location| location.parent()) {
        Ok(parent) => parent,
        Err(LogError::MissingDirectory { .. }) => return Ok(()),
        Err(err @ LogError::InvalidPath(_)) => {
            log::warn!("not removing log file {}: {err}", path.display());
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    let Some(file_name) = path.file_name() else {
        return Ok(());
    };
    match unlinkat(&parent, file_name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(file_error(path, errno)),
    }
}

/// Opens a directory, refusing a symlink at its last component (its
/// ancestors are followed: they are the administrator's).
fn open_directory(path: &Path) -> Result<OwnedFd, LogError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    open(path, flags, Mode::empty()).map_err(|errno| {
        // With `O_DIRECTORY`, a symlink is refused as "not a directory".
        let symlink = errno == Errno::ENOTDIR
            && path
                .symlink_metadata()
                .is_ok_and(|meta| meta.file_type().is_symlink());
        directory_error(path, if symlink { Errno::ELOOP } else { errno })
    })
}

/// Opens directory `name` beneath `at` without following a symlink there.
fn open_directory_at(at: &OwnedFd, name: &OsStr, shown: &Path) -> Result<OwnedFd, LogError> {
    openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        // With `O_DIRECTORY`, a symlink is refused as "not a directory".
        let symlink = errno == Errno::ENOTDIR
            && fstatat(at, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|stat| {
                SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK
            });
        directory_error(shown, if symlink { Errno::ELOOP } else { errno })
    })
}

fn directory_error(path: &Path, errno: Errno) -> LogError {
    match errno {
        Errno::ENOENT => LogError::MissingDirectory {
            path: path.to_owned(),
        },
        Errno::ELOOP => LogError::InvalidPath(format!("{} is a symlink", path.display())),
        Errno::ENOTDIR => LogError::InvalidPath(format!("{} is not a directory", path.display())),
        errno => LogError::File {
            path: path.to_owned(),
            source: errno.into(),
        },
    }
}

fn file_error(path: &Path, errno: Errno) -> LogError {
    match errno {
        Errno::ELOOP => LogError::InvalidPath(format!("{} is a symlink", path.display())),
        errno => LogError::File {
            path: path.to_owned(),
            source: errno.into(),
        },
    }
}

fn check_regular(stat: &FileStat, path: &Path) -> Result<(), LogError> {
    match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => Ok(()),
        SFlag::S_IFLNK => Err(LogError::InvalidPath(format!(
            "{} is a symlink",
            path.display()
        ))),
        _ => Err(LogError::InvalidPath(format!(
            "{} is not a regular file",
            path.display()
        ))),
    }
}

fn has_nul(text: &OsStr) -> bool {
    text.as_bytes().contains(&0)
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
        assert!(matches!(err, LogError::InvalidPath(_)), "{err}");
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

    /// A directory outside the log directory, standing for whatever a
    /// planted symlink points at.
    fn outside_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dockshim-logpath-outside-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_symlinked_container_directory_is_never_written_through() {
        let dir = temp_dir();
        let outside = outside_dir();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        let err = open_log_file(&dir.join("linked/0.log")).unwrap_err();
        assert!(matches!(err, LogError::InvalidPath(_)), "{err}");
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_symlinked_pod_directory_is_refused_at_create() {
        let dir = temp_dir();
        let outside = outside_dir();
        std::fs::create_dir(outside.join("app")).unwrap();
        let pod = dir.join("pod");
        std::os::unix::fs::symlink(&outside, &pod).unwrap();
        let err = validate_log_path(&pod, Path::new("app/0.log")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        let err = validate_log_path(&pod, Path::new("0.log")).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_pod_directory_swapped_for_a_symlink_after_create_is_refused() {
        let dir = temp_dir();
        let outside = outside_dir();
        std::fs::create_dir_all(dir.join("pod/app")).unwrap();
        let path = validate_log_path(&dir.join("pod"), Path::new("app/0.log")).unwrap();
        std::fs::create_dir(outside.join("app")).unwrap();
        std::fs::rename(dir.join("pod"), dir.join("pod-was")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("pod")).unwrap();
        let err = open_log_file(&path).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_dir(outside.join("app")).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn a_log_path_goes_at_most_one_directory_deep() {
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("app/deeper")).unwrap();
        assert!(validate_log_path(&dir, Path::new("0.log")).is_ok());
        let err = validate_log_path(&dir, Path::new("app/deeper/0.log")).unwrap_err();
        assert!(matches!(err, LogError::InvalidPath(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_at_the_log_path_is_refused_without_blocking() {
        let dir = temp_dir();
        let path = dir.join("app/0.log");
        nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).unwrap();
        let err = open_log_file(&path).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = validate_log_path(&dir, Path::new("app/0.log")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recorded_log_paths_are_checked_again() {
        for bad in [
            "relative/app/0.log",
            "/var/log/pods/p/../../../etc/0.log",
            "/var/log/pods/./p/0.log",
            "/0.log",
            "/var/log/pods/p/app/\0.log",
        ] {
            let err = LogLocation::of(Path::new(bad)).unwrap_err();
            assert!(matches!(err, LogError::InvalidPath(_)), "{bad:?}: {err}");
            let err = open_log_file(Path::new(bad)).unwrap_err();
            assert!(matches!(err, LogError::InvalidPath(_)), "{bad:?}: {err}");
        }
        let location = LogLocation::of(Path::new("/var/log/pods/p/app/0.log")).unwrap();
        assert_eq!(location.directory, Path::new("/var/log/pods/p"));
        assert_eq!(location.subdirectory, "app");
        assert_eq!(location.file_name, "0.log");
    }

    #[test]
    fn resuming_never_reads_through_a_symlinked_directory() {
        let dir = temp_dir();
        let outside = outside_dir();
        std::fs::write(outside.join("0.log"), b"torn").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        let err = crate::logs::find_resume_point(&dir.join("linked/0.log")).unwrap_err();
        assert!(matches!(err, LogError::InvalidPath(_)), "{err}");
        assert_eq!(std::fs::read(outside.join("0.log")).unwrap(), b"torn");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn removing_a_log_file_never_reaches_through_a_symlink() {
        let dir = temp_dir();
        let outside = outside_dir();
        std::fs::write(outside.join("0.log"), b"precious").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        remove_log_file(&dir.join("linked/0.log")).unwrap();
        assert_eq!(std::fs::read(outside.join("0.log")).unwrap(), b"precious");
        std::os::unix::fs::symlink(outside.join("0.log"), dir.join("app/0.log")).unwrap();
        remove_log_file(&dir.join("app/0.log")).unwrap();
        assert!(dir.join("app/0.log").symlink_metadata().is_err());
        assert_eq!(std::fs::read(outside.join("0.log")).unwrap(), b"precious");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
