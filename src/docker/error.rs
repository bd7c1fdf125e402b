//! `DockerError`: everything that can go wrong talking to dockerd.
//!
//! It owns the wording; how each failure reaches the kubelet is `cri`'s
//! to say. It must not decide policy such
//! as "a missing container is fine when removing": `api` folds the answers
//! that are not failures into typed results, and callers decide.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::ApiVersion;

/// A failed Docker Engine API call.
#[derive(Debug)]
pub enum DockerError {
    /// The `--docker-endpoint` value cannot be dialled.
    Endpoint(String),
    /// The socket could not be connected (missing, refused, no permission).
    Connect { path: PathBuf, source: io::Error },
    /// The connection failed while sending or receiving.
    Io(io::Error),
    /// No progress within the allowed time; `what` names the phase.
    Timeout { what: &'static str, after: Duration },
    /// dockerd's bytes are not the HTTP/1.1 (or stream framing) we accept.
    Protocol(String),
    /// dockerd answered with an error status; `message` is its JSON
    /// `message`, verbatim.
    Api { status: u16, message: String },
    /// A body did not decode as the JSON we expect, or ours did not encode.
    Json(serde_json::Error),
    /// dockerd reported a failure inside a stream that had started well
    /// (a pull error message, an error frame on a hijacked connection).
    Stream(String),
    /// The engine's newest API is older than the oldest we speak.
    TooOld {
        server: ApiVersion,
        minimum: ApiVersion,
    },
    /// The request cannot be written: a method, path or header value that
    /// would break the request line or header framing.
    InvalidRequest(String),
    /// Any of the above, with the call it happened in.
    Call {
        method: String,
        path: String,
        source: Box<DockerError>,
    },
}

impl DockerError {
    /// Wraps `self` with the call it belongs to, once: an error that already
    /// names its call keeps the innermost name.
    pub(crate) fn in_call(self, method: &str, path: &str) -> DockerError {
        match self {
            DockerError::Call { .. } => self,
            other => DockerError::Call {
                method: method.to_owned(),
                path: path.to_owned(),
                source: Box::new(other),
            },
        }
    }

    /// The failure without the call wrapper.
    pub fn root(&self) -> &DockerError {
        match self {
            DockerError::Call { source, .. } => source.root(),
            other => other,
        }
    }

    /// dockerd's HTTP status, if dockerd answered with an error.
    pub fn api_status(&self) -> Option<u16> {
        match self.root() {
            DockerError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether dockerd answered that the container a call named is gone
    /// (404) or being removed (409, "dead or marked for removal").
    pub fn is_container_gone(&self) -> bool {
        matches!(self.api_status(), Some(404 | 409))
    }

    /// Whether dockerd answered and refused the call, as opposed to the
    /// call failing on the way, after which dockerd may have acted on it.
    pub fn is_refusal(&self) -> bool {
        self.api_status().is_some()
    }
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::Endpoint(why) => write!(f, "--docker-endpoint: {why}"),
            DockerError::Connect { path, source } => {
                write!(f, "cannot connect to dockerd at {}: {source}", path.display())
            }
            DockerError::Io(source) => write!(f, "connection to dockerd failed: {source}"),
            DockerError::Timeout { what, after } => write!(f, "timed out after {after:?} {what}"),
            DockerError::Protocol(why) => write!(f, "malformed answer from dockerd: {why}"),
            DockerError::Api { status, message } => write!(f, "{status}: {message}"),
            DockerError::Json(source) => write!(f, "JSON: {source}"),
            DockerError::Stream(message) => write!(f, "dockerd reported: {message}"),
            DockerError::TooOld { server, minimum } => write!(
                f,
                "dockerd speaks Docker Engine API {server} at most; dockshim needs {minimum} or newer \
                 (Docker Engine 20.10)"
            ),
            DockerError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            DockerError::Call { method, path, source } => write!(f, "{method} {path}: {source}"),
        }
    }
}

impl std::error::Error for DockerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DockerError::Connect { source, .. } | DockerError::Io(source) => Some(source),
            DockerError::Json(source) => Some(source),
            DockerError::Call { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> DockerError {
        DockerError::Api {
            status: 404,
            message: "No such container: x".to_owned(),
        }
        .in_call("GET", "/containers/x/json")
    }

    #[test]
    fn wrapping_twice_keeps_the_innermost_call() {
        let err = not_found().in_call("POST", "/other");
        assert_eq!(
            err.to_string(),
            "GET /containers/x/json: 404: No such container: x"
        );
        assert_eq!(err.api_status(), Some(404));
    }

    #[test]
    fn too_old_names_both_versions() {
        let err = DockerError::TooOld {
            server: ApiVersion::new(1, 40),
            minimum: ApiVersion::new(1, 41),
        };
        let text = err.to_string();
        assert!(text.contains("1.40") && text.contains("1.41"), "{text}");
    }
}
