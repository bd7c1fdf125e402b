//! `StatsError`: every way reading a cgroup, a proc file or a layer
//! directory can fail. What each means to the kubelet is `cri`'s to say.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed stats reading.
#[derive(Debug)]
pub enum StatsError {
    /// A file could not be opened or read.
    Read { path: PathBuf, source: io::Error },
    /// A file was longer than its named limit allows.
    TooLarge { path: PathBuf, limit: u64 },
    /// A file's content is not what the kernel writes there.
    Parse { path: PathBuf, reason: String },
    /// A container ID that cannot name a cgroup directory.
    InvalidId { id: String, reason: &'static str },
    /// A `CgroupParent` that does not fit dockerd's cgroup driver.
    InvalidCgroupParent { parent: String, reason: String },
    /// dockerd reported a cgroup driver or version this module does not know.
    UnsupportedCgroup { what: &'static str, value: String },
    /// No mounted cgroup hierarchy carries the controller.
    NoHierarchy { controller: &'static str },
    /// The cgroup lies outside the part of its hierarchy mounted here.
    Unreachable { cgroup: String, mount_root: String },
}

impl StatsError {
    /// Whether the file read was gone: the cgroup or process has ended. A
    /// cgroup removed between the open and the read of one of its files
    /// reads as `ENODEV`.
    pub fn is_gone(&self) -> bool {
        matches!(self, StatsError::Read { source, .. }
            if source.kind() == io::ErrorKind::NotFound
                || source.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32))
    }
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            StatsError::TooLarge { path, limit } => {
                write!(f, "{} is larger than {limit} bytes", path.display())
            }
            StatsError::Parse { path, reason } => {
                write!(f, "unexpected content in {}: {reason}", path.display())
            }
            StatsError::InvalidId { id, reason } => {
                write!(f, "container ID {id:?} cannot name a cgroup: {reason}")
            }
            StatsError::InvalidCgroupParent { parent, reason } => {
                write!(f, "cgroup parent {parent:?}: {reason}")
            }
            StatsError::UnsupportedCgroup { what, value } => {
                write!(f, "unsupported cgroup {what} {value:?} reported by dockerd")
            }
            StatsError::NoHierarchy { controller } => {
                write!(
                    f,
                    "no mounted cgroup hierarchy has the {controller} controller"
                )
            }
            StatsError::Unreachable { cgroup, mount_root } => write!(
                f,
                "cgroup {cgroup} is outside the mounted part {mount_root} of its hierarchy"
            ),
        }
    }
}

impl std::error::Error for StatsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StatsError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_file_or_a_removed_cgroup_is_gone_and_a_refused_read_is_not() {
        let gone = StatsError::Read {
            path: "/sys/fs/cgroup/memory/docker/abc/memory.stat".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(gone.is_gone());
        let removed_while_open = StatsError::Read {
            path: "/sys/fs/cgroup/memory/docker/abc/memory.stat".into(),
            source: io::Error::from_raw_os_error(nix::errno::Errno::ENODEV as i32),
        };
        assert!(removed_while_open.is_gone());
        let denied = StatsError::Read {
            path: "/proc/1/net/dev".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(!denied.is_gone());
    }

    #[test]
    fn the_message_keeps_the_path_and_the_cause() {
        let err = StatsError::Read {
            path: "/sys/fs/cgroup/pids/x/pids.current".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let message = err.to_string();
        assert!(
            message.contains("/sys/fs/cgroup/pids/x/pids.current"),
            "{message}"
        );
        assert!(message.contains("permission denied"), "{message}");
    }
}
