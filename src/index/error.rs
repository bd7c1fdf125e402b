//! `IndexError`: why the index could not answer, and the gRPC code each
//! reason maps to.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::docker::DockerError;
use crate::grpc::{Code, Status};

#[derive(Debug)]
pub enum IndexError {
    /// The index was cold and catching up with dockerd failed.
    Docker(DockerError),
    /// The index was cold and catching up took longer than allowed.
    CatchUpTimeout { after: Duration },
    /// An ID prefix matches more than one entry. dockerd refuses ambiguous
    /// prefixes as invalid parameters too.
    AmbiguousId { prefix: String, matches: usize },
    /// An empty ID, which would match everything.
    EmptyId,
    /// The event thread could not be started.
    Spawn(io::Error),
}

impl IndexError {
    pub fn code(&self) -> Code {
        match self {
            IndexError::Docker(err) => err.code(),
            IndexError::CatchUpTimeout { .. } => Code::DeadlineExceeded,
            IndexError::AmbiguousId { .. } | IndexError::EmptyId => Code::InvalidArgument,
            IndexError::Spawn(_) => Code::Internal,
        }
    }
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Docker(err) => write!(f, "docker: {err}"),
            IndexError::CatchUpTimeout { after } => write!(
                f,
                "the container state index lost dockerd's event stream and could not \
                 re-read every container within {after:?}"
            ),
            IndexError::AmbiguousId { prefix, matches } => {
                write!(f, "ID prefix {prefix:?} matches {matches} containers")
            }
            IndexError::EmptyId => write!(f, "empty container or sandbox ID"),
            IndexError::Spawn(err) => write!(f, "cannot start the docker-events thread: {err}"),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IndexError::Docker(err) => Some(err),
            IndexError::Spawn(err) => Some(err),
            _ => None,
        }
    }
}

impl From<DockerError> for IndexError {
    fn from(err: DockerError) -> IndexError {
        IndexError::Docker(err)
    }
}

impl From<IndexError> for Status {
    fn from(err: IndexError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_cause() {
        let unreachable = IndexError::Docker(DockerError::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(unreachable.code(), Code::Unavailable);
        let ambiguous = IndexError::AmbiguousId {
            prefix: "ab".to_owned(),
            matches: 2,
        };
        assert_eq!(ambiguous.code(), Code::InvalidArgument);
        let status = Status::from(ambiguous);
        assert_eq!(status.message, "ID prefix \"ab\" matches 2 containers");
        let slow = IndexError::CatchUpTimeout {
            after: Duration::from_secs(1),
        };
        assert_eq!(slow.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn docker_failures_keep_their_chain() {
        let err = IndexError::from(DockerError::Api {
            status: 500,
            message: "boom".to_owned(),
        });
        assert_eq!(err.to_string(), "docker: 500: boom");
        assert!(std::error::Error::source(&err).is_some());
    }
}
