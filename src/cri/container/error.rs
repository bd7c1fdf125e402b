//! The container calls' errors: `ContainerConfigError`, why a container
//! configuration (or a resource update) cannot become a Docker request, and
//! `ContainerError`, why a container call failed; and the gRPC code each
//! reason reaches the kubelet with.

use std::fmt;
use std::io;

use crate::cri::error::ExecError;
use crate::cri::error::GrpcCode;
use crate::cri::error::LabelError;
use crate::cri::error::NamingError;
use crate::cri::sandbox::SandboxConfigError;
use crate::docker::DockerError;
use crate::grpc::{Code, Status};
use crate::index::IndexError;
use crate::logs::LogError;

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

/// Why a container call failed.
#[derive(Debug)]
pub enum ContainerError {
    /// The configuration is refused before anything is created.
    Config(ContainerConfigError),
    /// The request lacks a part it needs.
    Missing(&'static str),
    /// No sandbox with this ID.
    SandboxNotFound {
        id: String,
    },
    /// The image is not in dockerd's image store.
    ImageNotFound {
        image: String,
    },
    /// No container with this ID.
    NotFound {
        id: String,
    },
    /// The call needs a running container.
    NotRunning {
        id: String,
    },
    /// A Docker call failed; `action` says what it was for.
    Docker {
        action: &'static str,
        source: DockerError,
    },
    /// dockerd created the container but dropped a limit it was asked
    /// for, saying so only in `warning`; the container was removed again,
    /// unless `cleanup` says why it could not be.
    LimitDroppedAtCreate {
        id: String,
        warning: String,
        cleanup: Option<DockerError>,
    },
    /// dockerd applied an update but dropped a limit in it, saying so only
    /// in `warning`; the rest of the update stays applied.
    LimitDroppedAtUpdate {
        id: String,
        warning: String,
    },
    /// The new OOM score adjustment could not be given to `process` of
    /// the container, or (`None`) its processes could not be listed.
    OomScoreAdj {
        id: String,
        value: i32,
        process: Option<u32>,
        source: io::Error,
    },
    /// StartContainer failed after dockerd may have started the
    /// container, which was then stopped again, unless `cleanup` says why
    /// it could not be.
    StartRolledBack {
        id: String,
        cause: Box<ContainerError>,
        cleanup: Option<DockerError>,
    },
    Index(IndexError),
    Logs(LogError),
    Exec(ExecError),
    Naming(NamingError),
}

impl ContainerError {
    pub(super) fn docker(action: &'static str, source: DockerError) -> ContainerError {
        ContainerError::Docker { action, source }
    }

    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            ContainerError::Config(err) => err.code(),
            ContainerError::Missing(_) => Code::InvalidArgument,
            ContainerError::SandboxNotFound { .. }
            | ContainerError::ImageNotFound { .. }
            | ContainerError::NotFound { .. } => Code::NotFound,
            ContainerError::NotRunning { .. }
            | ContainerError::LimitDroppedAtCreate { .. }
            | ContainerError::LimitDroppedAtUpdate { .. }
            | ContainerError::OomScoreAdj { .. } => Code::FailedPrecondition,
            ContainerError::Docker { source, .. } => source.code(),
            ContainerError::StartRolledBack { cause, .. } => cause.code(),
            ContainerError::Index(err) => err.code(),
            ContainerError::Logs(err) => err.code(),
            ContainerError::Exec(err) => err.code(),
            ContainerError::Naming(err) => err.code(),
        }
    }
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::Config(err) => err.fmt(f),
            ContainerError::Missing(what) => write!(f, "the request has no {what}"),
            ContainerError::SandboxNotFound { id } => write!(f, "pod sandbox {id} not found"),
            ContainerError::ImageNotFound { image } => {
                write!(f, "image {image:?} is not present on the node")
            }
            ContainerError::NotFound { id } => write!(f, "container {id} not found"),
            ContainerError::NotRunning { id } => write!(f, "container {id} is not running"),
            ContainerError::Docker { action, source } => write!(f, "cannot {action}: {source}"),
            ContainerError::LimitDroppedAtCreate {
                id,
                warning,
                cleanup,
            } => {
                write!(
                    f,
                    "dockerd dropped a limit from the new container {id}: {warning:?}; "
                )?;
                match cleanup {
                    None => f.write_str("the container was removed"),
                    Some(err) => write!(f, "removing the container failed too: {err}"),
                }
            }
            ContainerError::LimitDroppedAtUpdate { id, warning } => write!(
                f,
                "dockerd dropped a limit from the update of container {id}, whose other \
                 settings were applied: {warning:?}"
            ),
            ContainerError::OomScoreAdj {
                id,
                value,
                process,
                source,
            } => {
                match process {
                    Some(pid) => write!(
                        f,
                        "oom_score_adj: cannot give {value} to process {pid} of container {id}: \
                         {source}"
                    )?,
                    None => write!(
                        f,
                        "oom_score_adj: cannot list the processes of container {id} to give them \
                         {value}: {source}"
                    )?,
                }
                if source.kind() == io::ErrorKind::PermissionDenied {
                    f.write_str(" (lowering it needs CAP_SYS_RESOURCE)")?;
                }
                Ok(())
            }
            ContainerError::StartRolledBack { id, cause, cleanup } => {
                write!(f, "{cause}; ")?;
                match cleanup {
                    None => write!(f, "container {id} was stopped again"),
                    Some(err) => write!(f, "stopping container {id} again failed too: {err}"),
                }
            }
            ContainerError::Index(err) => err.fmt(f),
            ContainerError::Logs(err) => err.fmt(f),
            ContainerError::Exec(err) => err.fmt(f),
            ContainerError::Naming(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ContainerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContainerError::Config(err) => Some(err),
            ContainerError::Docker { source, .. } => Some(source),
            ContainerError::LimitDroppedAtCreate {
                cleanup: Some(err), ..
            } => Some(err),
            ContainerError::OomScoreAdj { source, .. } => Some(source),
            ContainerError::StartRolledBack { cause, .. } => Some(cause.as_ref()),
            ContainerError::Index(err) => Some(err),
            ContainerError::Logs(err) => Some(err),
            ContainerError::Exec(err) => Some(err),
            ContainerError::Naming(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ContainerConfigError> for ContainerError {
    fn from(err: ContainerConfigError) -> ContainerError {
        ContainerError::Config(err)
    }
}

impl From<IndexError> for ContainerError {
    fn from(err: IndexError) -> ContainerError {
        ContainerError::Index(err)
    }
}

impl From<LogError> for ContainerError {
    fn from(err: LogError) -> ContainerError {
        ContainerError::Logs(err)
    }
}

impl From<ExecError> for ContainerError {
    fn from(err: ExecError) -> ContainerError {
        ContainerError::Exec(err)
    }
}

impl From<NamingError> for ContainerError {
    fn from(err: NamingError) -> ContainerError {
        ContainerError::Naming(err)
    }
}

impl From<ContainerError> for Status {
    fn from(err: ContainerError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_start_rolled_back_keeps_its_cause_code_and_says_the_container_was_stopped() {
        let missing = ContainerError::Logs(LogError::MissingDirectory {
            path: PathBuf::from("/var/log/pods/e2e_pod_uid/app"),
        });
        let err = ContainerError::StartRolledBack {
            id: "c1".to_owned(),
            cause: Box::new(missing),
            cleanup: None,
        };
        assert_eq!(err.code(), Code::FailedPrecondition);
        let text = err.to_string();
        assert!(text.contains("/var/log/pods/e2e_pod_uid/app"), "{text}");
        assert!(text.ends_with("container c1 was stopped again"), "{text}");
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        let cases = [
            (
                ContainerError::ImageNotFound {
                    image: "busybox:1".to_owned(),
                },
                Code::NotFound,
            ),
            (
                ContainerError::SandboxNotFound { id: "s".to_owned() },
                Code::NotFound,
            ),
            (
                ContainerError::NotRunning { id: "c".to_owned() },
                Code::FailedPrecondition,
            ),
            (ContainerError::Missing("config"), Code::InvalidArgument),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code, code);
        }
    }

    #[test]
    fn failures_after_dockerd_answered_say_what_was_left_behind() {
        let cases = [
            (
                ContainerError::LimitDroppedAtCreate {
                    id: "c1".to_owned(),
                    warning: "PIDs limit discarded.".to_owned(),
                    cleanup: None,
                },
                "dockerd dropped a limit from the new container c1: \"PIDs limit discarded.\"; \
                 the container was removed",
            ),
            (
                ContainerError::LimitDroppedAtUpdate {
                    id: "c1".to_owned(),
                    warning: "Shares discarded.".to_owned(),
                },
                "dockerd dropped a limit from the update of container c1, whose other settings \
                 were applied: \"Shares discarded.\"",
            ),
            (
                ContainerError::OomScoreAdj {
                    id: "c1".to_owned(),
                    value: -5,
                    process: Some(42),
                    source: io::Error::from(io::ErrorKind::PermissionDenied),
                },
                "oom_score_adj: cannot give -5 to process 42 of container c1: permission denied \
                 (lowering it needs CAP_SYS_RESOURCE)",
            ),
        ];
        for (err, message) in cases {
            let status = Status::from(err);
            assert_eq!(
                (status.code, status.message.as_str()),
                (Code::FailedPrecondition, message)
            );
        }
    }

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
