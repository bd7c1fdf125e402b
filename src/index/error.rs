//! `IndexError`: why the index could not answer. What each reason means to
//! the kubelet is `cri`'s to say.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::docker::DockerError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
