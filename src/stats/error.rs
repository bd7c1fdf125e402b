//! `StatsError`: every way reading a cgroup, a proc file or a layer
//! directory can fail, and the gRPC code each maps to.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::grpc::{Code, Status};

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
    /// The gRPC code this failure maps to. A vanished cgroup or proc entry
    /// means the container is no longer running: `NOT_FOUND`. A cgroup
    /// removed between the open and the read of one of its files reads as
    /// `ENODEV`.
    pub fn code(&self) -> Code {
        match self {
            StatsError::Read { source, .. }
                if source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32) =>
            {
                Code::NotFound
            }
            StatsError::Read { .. } | StatsError::TooLarge { .. } | StatsError::Parse { .. } => {
                Code::Internal
            }
            StatsError::InvalidId { .. } => Code::InvalidArgument,
            StatsError::InvalidCgroupParent { .. }
            | StatsError::UnsupportedCgroup { .. }
            | StatsError::NoHierarchy { .. }
            | StatsError::Unreachable { .. } => Code::FailedPrecondition,
        }
    }

    /// Whether the file read was gone: the cgroup or process has ended.
    pub fn is_gone(&self) -> bool {
        self.code() == Code::NotFound
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

impl From<StatsError> for Status {
    fn from(err: StatsError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_file_is_not_found_and_other_read_failures_are_internal() {
        let gone = StatsError::Read {
            path: "/sys/fs/cgroup/memory/docker/abc/memory.stat".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(gone.code(), Code::NotFound);
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
        assert_eq!(Status::from(denied).code, Code::Internal);
    }

    #[test]
    fn the_message_keeps_the_path_and_the_cause() {
        let err = StatsError::Read {
            path: "/sys/fs/cgroup/pids/x/pids.current".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let message = Status::from(err).message;
        assert!(
            message.contains("/sys/fs/cgroup/pids/x/pids.current"),
            "{message}"
        );
        assert!(message.contains("permission denied"), "{message}");
    }
}
