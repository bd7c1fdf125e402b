//! `ServerError`: why the gRPC server could not start or keep running.
//!
//! These errors happen before any call is served (endpoint, lock, bind,
//! permissions, socket activation) or take the whole server down (poll or
//! thread setup); no client ever sees them, but each still names the gRPC
//! code it would carry, like every error enum in dockshim.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::grpc::Code;

#[derive(Debug)]
pub enum ServerError {
    /// `--container-runtime-endpoint` is not `unix:///path`, `/path` or
    /// `fd://`.
    Endpoint {
        endpoint: String,
        reason: &'static str,
    },
    /// Another live dockshim holds the lock next to the socket.
    InUse { socket: PathBuf, lock: PathBuf },
    /// Something that is not a socket sits where the socket goes.
    NotASocket { path: PathBuf },
    /// The lock file's name holds a symlink or something other than a
    /// regular file.
    NotALockFile { path: PathBuf, reason: &'static str },
    /// `--socket-group` names no group.
    UnknownGroup { group: String },
    /// A file-system or socket step on `path` failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// `fd://` was asked for but systemd did not pass a usable socket.
    Activation { reason: String },
    /// Poll, waker, thread or signal setup failed.
    Setup {
        action: &'static str,
        source: io::Error,
    },
}

impl ServerError {
    pub(super) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> ServerError {
        ServerError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(super) fn setup(action: &'static str, source: io::Error) -> ServerError {
        ServerError::Setup { action, source }
    }

    /// The gRPC code this error would carry.
    pub fn code(&self) -> Code {
        match self {
            ServerError::Endpoint { .. } | ServerError::UnknownGroup { .. } => {
                Code::InvalidArgument
            }
            ServerError::InUse { .. } => Code::AlreadyExists,
            ServerError::NotASocket { .. }
            | ServerError::NotALockFile { .. }
            | ServerError::Activation { .. } => Code::FailedPrecondition,
            ServerError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Code::PermissionDenied
            }
            ServerError::Io { .. } | ServerError::Setup { .. } => Code::Internal,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Endpoint { endpoint, reason } => {
                write!(f, "unsupported endpoint {endpoint:?}: {reason}")
            }
            ServerError::InUse { socket, lock } => write!(
                f,
                "{} is in use: another dockshim holds {}",
                socket.display(),
                lock.display()
            ),
            ServerError::NotASocket { path } => {
                write!(
                    f,
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )
            }
            ServerError::NotALockFile { path, reason } => {
                write!(
                    f,
                    "refusing to use {} as the socket's lock file: {reason}",
                    path.display()
                )
            }
            ServerError::UnknownGroup { group } => {
                write!(f, "socket group {group:?} does not exist")
            }
            ServerError::Io {
                action,
                path,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            ServerError::Activation { reason } => write!(f, "socket activation: {reason}"),
            ServerError::Setup { action, source } => write!(f, "cannot {action}: {source}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io { source, .. } | ServerError::Setup { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_the_action_the_path_and_the_cause() {
        let err = ServerError::io(
            "bind",
            "/run/dockshim.sock",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(
            err.to_string(),
            "cannot bind /run/dockshim.sock: permission denied"
        );
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn a_live_instance_is_reported_with_its_lock() {
        let err = ServerError::InUse {
            socket: "/run/d.sock".into(),
            lock: "/run/d.sock.lock".into(),
        };
        assert_eq!(
            err.to_string(),
            "/run/d.sock is in use: another dockshim holds /run/d.sock.lock"
        );
        assert_eq!(err.code(), Code::AlreadyExists);
    }
}
