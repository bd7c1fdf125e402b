//! `SandboxConfigError`: why a sandbox configuration cannot become a Docker
//! container, and the gRPC code each reason reaches the kubelet with.

use std::fmt;
use std::io;

use crate::cri::labels::LabelError;
use crate::cri::naming::NamingError;
use crate::grpc::{Code, Status};

/// A sandbox configuration (or a part shared with containers, such as a
/// security setting) that is refused.
#[derive(Debug)]
pub enum SandboxConfigError {
    /// Not a valid value for the field: INVALID_ARGUMENT.
    Invalid {
        field: String,
        reason: String,
    },
    /// A valid setting Docker cannot provide: UNIMPLEMENTED.
    Unsupported {
        field: String,
        reason: String,
    },
    /// A valid setting this node is not set up for (network plugin, cgroup
    /// driver): FAILED_PRECONDITION.
    NodeSetup(String),
    /// A Localhost seccomp profile that cannot be read or is not a JSON
    /// object: FAILED_PRECONDITION, the profile belongs on the node.
    SeccompProfile {
        path: String,
        reason: String,
        source: Option<io::Error>,
    },
    /// A runtime handler that is none of dockerd's runtimes: NOT_FOUND,
    /// as the CRI asks for an unknown handler.
    UnknownRuntimeHandler {
        handler: String,
        /// The runtimes dockerd lists, by name.
        known: Vec<String>,
    },
    Naming(NamingError),
    Labels(LabelError),
}

impl SandboxConfigError {
    /// An `Invalid` error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SandboxConfigError {
        SandboxConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An `Unsupported` error for `field`.
    pub fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> SandboxConfigError {
        SandboxConfigError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this refusal maps to.
    pub fn code(&self) -> Code {
        match self {
            SandboxConfigError::Invalid { .. } => Code::InvalidArgument,
            SandboxConfigError::Unsupported { .. } => Code::Unimplemented,
            SandboxConfigError::NodeSetup(_) | SandboxConfigError::SeccompProfile { .. } => {
                Code::FailedPrecondition
            }
            SandboxConfigError::UnknownRuntimeHandler { .. } => Code::NotFound,
            SandboxConfigError::Naming(err) => err.code(),
            SandboxConfigError::Labels(_) => Code::InvalidArgument,
        }
    }
}

impl fmt::Display for SandboxConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxConfigError::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            SandboxConfigError::Unsupported { field, reason } => {
                write!(f, "{field}: not supported with Docker: {reason}")
            }
            SandboxConfigError::NodeSetup(why) => f.write_str(why),
            SandboxConfigError::SeccompProfile {
                path,
                reason,
                source,
            } => {
                write!(f, "seccomp profile {path:?}: {reason}")?;
                match source {
                    Some(source) => write!(f, ": {source}"),
                    None => Ok(()),
                }
            }
            SandboxConfigError::UnknownRuntimeHandler { handler, known } => {
                write!(
                    f,
                    "runtime handler {handler:?} not found: dockerd offers \"\" (its default \
                     runtime)"
                )?;
                for runtime in known {
                    write!(f, ", {runtime:?}")?;
                }
                Ok(())
            }
            SandboxConfigError::Naming(err) => err.fmt(f),
            SandboxConfigError::Labels(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for SandboxConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxConfigError::SeccompProfile {
                source: Some(source),
                ..
            } => Some(source),
            SandboxConfigError::Naming(err) => Some(err),
            SandboxConfigError::Labels(err) => Some(err),
            _ => None,
        }
    }
}

impl From<NamingError> for SandboxConfigError {
    fn from(err: NamingError) -> SandboxConfigError {
        SandboxConfigError::Naming(err)
    }
}

impl From<LabelError> for SandboxConfigError {
    fn from(err: LabelError) -> SandboxConfigError {
        SandboxConfigError::Labels(err)
    }
}

impl From<SandboxConfigError> for Status {
    fn from(err: SandboxConfigError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_refusal_has_its_code_and_names_the_field() {
        let cases = [
            (
                SandboxConfigError::invalid("dns_config.servers", "\"x\" is not an IP address"),
                Code::InvalidArgument,
                "dns_config.servers: \"x\" is not an IP address",
            ),
            (
                SandboxConfigError::unsupported("userns_options", "no per-pod user namespaces"),
                Code::Unimplemented,
                "userns_options: not supported with Docker: no per-pod user namespaces",
            ),
            (
                SandboxConfigError::NodeSetup("host network only".to_owned()),
                Code::FailedPrecondition,
                "host network only",
            ),
            (
                SandboxConfigError::SeccompProfile {
                    path: "/p.json".to_owned(),
                    reason: "cannot read it".to_owned(),
                    source: Some(io::Error::from(io::ErrorKind::NotFound)),
                },
                Code::FailedPrecondition,
                "seccomp profile \"/p.json\": cannot read it: entity not found",
            ),
            (
                NamingError::EmptyField("metadata.name").into(),
                Code::InvalidArgument,
                "metadata.name is empty",
            ),
        ];
        for (err, code, message) in cases {
            let status = Status::from(err);
            assert_eq!((status.code, status.message.as_str()), (code, message));
        }
    }
}
