//! `ContainerConfigError`: why a container configuration (or a resource
//! update) cannot become a Docker request, and the gRPC code each reason
//! reaches the kubelet with.

use std::fmt;
use std::io;

use crate::cri::labels::LabelError;
use crate::cri::naming::NamingError;
use crate::cri::sandbox::SandboxConfigError;
use crate::grpc::{Code, Status};

/// A container configuration that is refused.
#[derive(Debug)]
pub enum ContainerConfigError {
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
    /// A valid setting the engine dockshim talks to cannot provide, though
    /// a newer engine, another kernel or another daemon configuration could
    /// (recursive read-only mounts, image mounts, CDI devices):
    /// FAILED_PRECONDITION, the reason names the engine.
    EngineCannot {
        field: String,
        reason: String,
    },
    /// A mount propagation the host mount under `path` cannot give, or
    /// whose host mount could not be read: FAILED_PRECONDITION, the fix
    /// belongs on the node.
    HostMount {
        path: String,
        reason: String,
        source: Option<io::Error>,
    },
    /// A refusal of a part shared with sandboxes (user, security profiles,
    /// cgroup parent, the sandbox's own configuration).
    Shared(SandboxConfigError),
    Naming(NamingError),
    Labels(LabelError),
}

impl ContainerConfigError {
    /// An `Invalid` error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ContainerConfigError {
        ContainerConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An `Unsupported` error for `field`.
    pub fn unsupported(
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> ContainerConfigError {
        ContainerConfigError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An `EngineCannot` error for `field`.
    pub fn engine_cannot(
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> ContainerConfigError {
        ContainerConfigError::EngineCannot {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this refusal maps to.
    pub fn code(&self) -> Code {
        match self {
            ContainerConfigError::Invalid { .. } | ContainerConfigError::Labels(_) => {
                Code::InvalidArgument
            }
            ContainerConfigError::Unsupported { .. } => Code::Unimplemented,
            ContainerConfigError::EngineCannot { .. } | ContainerConfigError::HostMount { .. } => {
                Code::FailedPrecondition
            }
            ContainerConfigError::Shared(err) => err.code(),
            ContainerConfigError::Naming(err) => err.code(),
        }
    }
}

impl fmt::Display for ContainerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerConfigError::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            ContainerConfigError::Unsupported { field, reason } => {
                write!(f, "{field}: not supported with Docker: {reason}")
            }
            ContainerConfigError::EngineCannot { field, reason } => write!(f, "{field}: {reason}"),
            ContainerConfigError::HostMount {
                path,
                reason,
                source,
            } => {
                write!(f, "host path {path:?}: {reason}")?;
                match source {
                    Some(source) => write!(f, ": {source}"),
                    None => Ok(()),
                }
            }
            ContainerConfigError::Shared(err) => err.fmt(f),
            ContainerConfigError::Naming(err) => err.fmt(f),
            ContainerConfigError::Labels(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ContainerConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContainerConfigError::HostMount {
                source: Some(source),
                ..
            } => Some(source),
            ContainerConfigError::Shared(err) => err.source(),
            ContainerConfigError::Naming(err) => Some(err),
            ContainerConfigError::Labels(err) => Some(err),
            _ => None,
        }
    }
}

impl From<SandboxConfigError> for ContainerConfigError {
    fn from(err: SandboxConfigError) -> ContainerConfigError {
        ContainerConfigError::Shared(err)
    }
}

impl From<NamingError> for ContainerConfigError {
    fn from(err: NamingError) -> ContainerConfigError {
        ContainerConfigError::Naming(err)
    }
}

impl From<LabelError> for ContainerConfigError {
    fn from(err: LabelError) -> ContainerConfigError {
        ContainerConfigError::Labels(err)
    }
}

impl From<ContainerConfigError> for Status {
    fn from(err: ContainerConfigError) -> Status {
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
                ContainerConfigError::invalid("envs[0].key", "empty"),
                Code::InvalidArgument,
                "envs[0].key: empty",
            ),
            (
                ContainerConfigError::unsupported("cdi_devices", "no CDI"),
                Code::Unimplemented,
                "cdi_devices: not supported with Docker: no CDI",
            ),
            (
                ContainerConfigError::engine_cannot("mounts[0].image", "Docker 20.10.24 cannot"),
                Code::FailedPrecondition,
                "mounts[0].image: Docker 20.10.24 cannot",
            ),
            (
                ContainerConfigError::HostMount {
                    path: "/mnt".to_owned(),
                    reason: "cannot read its mount".to_owned(),
                    source: Some(io::Error::from(io::ErrorKind::NotFound)),
                },
                Code::FailedPrecondition,
                "host path \"/mnt\": cannot read its mount: entity not found",
            ),
            (
                ContainerConfigError::engine_cannot("CDI_devices", "Docker 27.5.1 has CDI off"),
                Code::FailedPrecondition,
                "CDI_devices: Docker 27.5.1 has CDI off",
            ),
            (
                SandboxConfigError::invalid("run_as_group", "a group needs a user").into(),
                Code::InvalidArgument,
                "run_as_group: a group needs a user",
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
