//! The sandbox calls' errors: `SandboxConfigError`, why a sandbox
//! configuration cannot become a Docker container; `SandboxError`, why a
//! pod sandbox call failed; `MigrationError`, why adopting cri-dockerd's
//! sandboxes failed; and the gRPC code each reason reaches the kubelet with.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::cri::error::GrpcCode;
use crate::cri::error::LabelError;
use crate::cri::error::NamingError;
use crate::docker::DockerError;
use crate::grpc::{Code, Status};
use crate::index::IndexError;
use crate::network::{CniConfigError, CniError, HairpinError};
use crate::store::{CheckpointError, OwedTeardownError};

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

/// Why a pod sandbox call failed.
#[derive(Debug)]
pub enum SandboxError {
    /// The request is refused before anything is created.
    Config(SandboxConfigError),
    /// The request lacks a part it needs.
    Missing(&'static str),
    /// The sandbox image is neither present nor pullable.
    Image {
        image: String,
        source: Status,
    },
    /// A Docker call failed; `action` says what it was for.
    Docker {
        action: &'static str,
        source: DockerError,
    },
    Index(IndexError),
    Checkpoint(CheckpointError),
    OwedTeardown(OwedTeardownError),
    CniConfig(CniConfigError),
    Cni(CniError),
    Hairpin(HairpinError),
    /// The sandbox's `resolv.conf` could not be written.
    ResolvConf {
        path: String,
        source: io::Error,
    },
    /// The sandbox container runs but dockerd reports no process.
    NoProcess {
        id: String,
    },
    /// No sandbox with this ID.
    NotFound {
        id: String,
    },
    /// A RunPodSandbox step failed; everything done before it was undone,
    /// except what `cleanup` lists.
    RunFailed {
        step: &'static str,
        cause: Box<SandboxError>,
        cleanup: Vec<SandboxError>,
    },
}

impl SandboxError {
    pub(super) fn docker(action: &'static str, source: DockerError) -> SandboxError {
        SandboxError::Docker { action, source }
    }

    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            SandboxError::Config(err) => err.code(),
            SandboxError::Missing(_) => Code::InvalidArgument,
            SandboxError::Image { source, .. } => source.code,
            SandboxError::Docker { source, .. } => source.code(),
            SandboxError::Index(err) => err.code(),
            SandboxError::Checkpoint(err) => err.code(),
            SandboxError::OwedTeardown(err) => err.code(),
            SandboxError::CniConfig(_) => Code::FailedPrecondition,
            SandboxError::Cni(err) => err.code(),
            SandboxError::Hairpin(err) => err.code(),
            SandboxError::ResolvConf { .. } | SandboxError::NoProcess { .. } => Code::Internal,
            SandboxError::NotFound { .. } => Code::NotFound,
            SandboxError::RunFailed { cause, .. } => cause.code(),
        }
    }
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Config(err) => err.fmt(f),
            SandboxError::Missing(what) => write!(f, "the request has no {what}"),
            SandboxError::Image { image, source } => write!(
                f,
                "sandbox image {image:?} (--pod-infra-container-image) is not present and \
                 cannot be pulled: {}",
                source.message
            ),
            SandboxError::Docker { action, source } => write!(f, "cannot {action}: {source}"),
            SandboxError::Index(err) => err.fmt(f),
            SandboxError::Checkpoint(err) => err.fmt(f),
            SandboxError::OwedTeardown(err) => err.fmt(f),
            SandboxError::CniConfig(err) => write!(f, "CNI network configuration: {err}"),
            SandboxError::Cni(err) => err.fmt(f),
            SandboxError::Hairpin(err) => write!(f, "hairpin mode: {err}"),
            SandboxError::ResolvConf { path, source } => {
                write!(f, "cannot write the sandbox's resolv.conf {path}: {source}")
            }
            SandboxError::NoProcess { id } => {
                write!(f, "sandbox container {id} has no process after its start")
            }
            SandboxError::NotFound { id } => write!(f, "pod sandbox {id} not found"),
            SandboxError::RunFailed {
                step,
                cause,
                cleanup,
            } => {
                write!(f, "RunPodSandbox failed to {step}: {cause}")?;
                if cleanup.is_empty() {
                    f.write_str("; everything created was removed")
                } else {
                    f.write_str("; cleanup also failed:")?;
                    for err in cleanup {
                        write!(f, " [{err}]")?;
                    }
                    Ok(())
                }
            }
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Config(err) => Some(err),
            SandboxError::Docker { source, .. } => Some(source),
            SandboxError::Index(err) => Some(err),
            SandboxError::Checkpoint(err) => Some(err),
            SandboxError::OwedTeardown(err) => Some(err),
            SandboxError::CniConfig(err) => Some(err),
            SandboxError::Cni(err) => Some(err),
            SandboxError::Hairpin(err) => Some(err),
            SandboxError::ResolvConf { source, .. } => Some(source),
            SandboxError::RunFailed { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<SandboxConfigError> for SandboxError {
    fn from(err: SandboxConfigError) -> SandboxError {
        SandboxError::Config(err)
    }
}

impl From<IndexError> for SandboxError {
    fn from(err: IndexError) -> SandboxError {
        SandboxError::Index(err)
    }
}

impl From<CheckpointError> for SandboxError {
    fn from(err: CheckpointError) -> SandboxError {
        SandboxError::Checkpoint(err)
    }
}

impl From<OwedTeardownError> for SandboxError {
    fn from(err: OwedTeardownError) -> SandboxError {
        SandboxError::OwedTeardown(err)
    }
}

impl From<CniError> for SandboxError {
    fn from(err: CniError) -> SandboxError {
        SandboxError::Cni(err)
    }
}

impl From<SandboxError> for Status {
    fn from(err: SandboxError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// Why the adoption of cri-dockerd's sandboxes failed.
#[derive(Debug)]
pub enum MigrationError {
    /// cri-dockerd still runs and may own the sandboxes.
    CriDockerdRunning { pid: u32 },
    /// The directory given has no `sandbox` directory.
    NothingToMigrate { dir: PathBuf },
    /// A checkpoint could not be read, written or moved.
    Checkpoint(CheckpointError),
    /// dockerd could not say whether a sandbox container exists.
    Docker { id: String, source: DockerError },
    /// `/proc` could not be read.
    Proc(io::Error),
}

impl MigrationError {
    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            MigrationError::CriDockerdRunning { .. } | MigrationError::NothingToMigrate { .. } => {
                Code::FailedPrecondition
            }
            MigrationError::Checkpoint(err) => err.code(),
            MigrationError::Docker { source, .. } => source.code(),
            MigrationError::Proc(_) => Code::Internal,
        }
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationError::CriDockerdRunning { pid } => write!(
                f,
                "cri-dockerd (pid {pid}) is running: stop it before dockshim adopts its pod \
                 sandboxes (--migrate-from-cri-dockerd)"
            ),
            MigrationError::NothingToMigrate { dir } => write!(
                f,
                "--migrate-from-cri-dockerd: {} has no sandbox directory",
                dir.display()
            ),
            MigrationError::Checkpoint(err) => {
                write!(f, "cannot adopt a cri-dockerd checkpoint: {err}")
            }
            MigrationError::Docker { id, source } => write!(
                f,
                "cannot adopt cri-dockerd's sandbox {id}: cannot inspect its container: {source}"
            ),
            MigrationError::Proc(source) => {
                write!(
                    f,
                    "cannot look for a running cri-dockerd in /proc: {source}"
                )
            }
        }
    }
}

impl std::error::Error for MigrationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrationError::Checkpoint(err) => Some(err),
            MigrationError::Docker { source, .. } => Some(source),
            MigrationError::Proc(source) => Some(source),
            _ => None,
        }
    }
}

impl From<CheckpointError> for MigrationError {
    fn from(err: CheckpointError) -> MigrationError {
        MigrationError::Checkpoint(err)
    }
}

impl From<MigrationError> for Status {
    fn from(err: MigrationError) -> Status {
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
