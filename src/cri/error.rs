//! The errors of the handlers at the top of `cri` (`ExecError`,
//! `StatsServiceError`, `NamingError`, `LabelError`), and the gRPC codes of
//! the errors of the modules below `cri` (`docker`, `store`, `network`,
//! `logs`, `stats`, `index`), which speak no gRPC themselves: what each
//! failure means to the kubelet is decided here, where the CRI answers are
//! made.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::docker::DockerError;
use crate::grpc::{Code, Status};
use crate::index::{IndexError, ANNOTATION_PREFIX};
use crate::logs::LogError;
use crate::network::{CniError, HairpinError, NetlinkError, NetnsError};
use crate::stats::StatsError;
use crate::store::{CheckpointError, OwedTeardownError, StoreError};

/// The gRPC code of a lower module's failure, and the message that goes
/// with it.
pub trait GrpcCode: fmt::Display {
    fn code(&self) -> Code;

    fn message(&self) -> String {
        self.to_string()
    }
}

impl<E: GrpcCode> From<E> for Status {
    fn from(err: E) -> Status {
        Status::new(err.code(), err.message())
    }
}

impl GrpcCode for DockerError {
    /// dockerd answers 409 Conflict for state conflicts ("You cannot remove a
    /// running container", "container is paused", "image is being used by
    /// running container") far more often than for name clashes, so 409 maps
    /// to `FAILED_PRECONDITION`; a caller that creates by name and wants
    /// `ALREADY_EXISTS` checks [`DockerError::api_status`] itself. A 500 is
    /// dockerd failing for a reason we cannot classify (runc, storage,
    /// networking): `UNKNOWN`, not `INTERNAL`, which would blame dockshim.
    fn code(&self) -> Code {
        match self {
            DockerError::Endpoint(_) => Code::Internal,
            DockerError::Connect { .. } | DockerError::Io(_) => Code::Unavailable,
            DockerError::Timeout { .. } => Code::DeadlineExceeded,
            DockerError::Protocol(_) | DockerError::Json(_) => Code::Internal,
            DockerError::Api { status, .. } => code_for_status(*status),
            DockerError::Stream(_) => Code::Unknown,
            DockerError::TooOld { .. } => Code::FailedPrecondition,
            DockerError::InvalidRequest(_) => Code::InvalidArgument,
            DockerError::Call { source, .. } => source.code(),
        }
    }

    fn message(&self) -> String {
        format!("docker: {self}")
    }
}

/// The gRPC code of an HTTP status dockerd answered with.
fn code_for_status(status: u16) -> Code {
    match status {
        400 => Code::InvalidArgument,
        401 | 403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

impl GrpcCode for StoreError {
    /// Stored files are dockshim's own.
    fn code(&self) -> Code {
        Code::Internal
    }
}

impl GrpcCode for CheckpointError {
    fn code(&self) -> Code {
        match self {
            CheckpointError::InvalidId { .. } => Code::InvalidArgument,
            CheckpointError::NotFound { .. } => Code::NotFound,
            CheckpointError::Corrupt { .. } => Code::DataLoss,
            CheckpointError::Io { .. } => Code::Internal,
        }
    }
}

impl GrpcCode for OwedTeardownError {
    fn code(&self) -> Code {
        match self {
            OwedTeardownError::InvalidId { .. } => Code::InvalidArgument,
            OwedTeardownError::Corrupt { .. } => Code::DataLoss,
            OwedTeardownError::Io { .. } | OwedTeardownError::Encode(_) => Code::Internal,
        }
    }
}

impl GrpcCode for HairpinError {
    fn code(&self) -> Code {
        match self {
            HairpinError::Netns(err) => err.code(),
            HairpinError::Netlink(err) => err.code(),
            HairpinError::NoInterface { .. }
            | HairpinError::NoPeer { .. }
            | HairpinError::PeerNotOnHost { .. }
            | HairpinError::NotOnBridge { .. } => Code::FailedPrecondition,
            HairpinError::SysfsMismatch { .. } | HairpinError::Sysfs { .. } => Code::Internal,
        }
    }
}

impl GrpcCode for NetlinkError {
    /// always our side or the kernel's.
    fn code(&self) -> Code {
        Code::Internal
    }
}

impl GrpcCode for NetnsError {
    /// a namespace that is gone is the
    /// pod's state (`NOT_FOUND`), anything else is ours (`INTERNAL`).
    fn code(&self) -> Code {
        match self {
            NetnsError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Code::NotFound
            }
            _ => Code::Internal,
        }
    }
}

impl GrpcCode for CniError {
    /// A plugin's own failure is
    /// `UNKNOWN`: it is neither the caller's fault nor dockshim's.
    fn code(&self) -> Code {
        match self {
            CniError::InvalidArgument(_) | CniError::Bandwidth { .. } => Code::InvalidArgument,
            CniError::PluginNotFound { .. }
            | CniError::NoCachedResult { .. }
            | CniError::NamespaceGone { .. } => Code::FailedPrecondition,
            CniError::Io { .. } => Code::Internal,
            CniError::Timeout { .. } => Code::DeadlineExceeded,
            CniError::Plugin { .. }
            | CniError::Failed { .. }
            | CniError::OutputTooLarge { .. }
            | CniError::BadResult { .. } => Code::Unknown,
            CniError::Add { cause, .. } | CniError::Check { cause, .. } => cause.code(),
            CniError::Del { failures } => failures
                .first()
                .map_or(Code::Unknown, |(_, failure)| failure.code()),
        }
    }
}

impl GrpcCode for LogError {
    /// A reopen of a container that is
    /// not running is the caller's precondition failing, as the CRI says.
    /// So is a missing log directory: the kubelet creates the pod's log
    /// directory before it creates containers, and the same request
    /// succeeds once the directory is back, which makes it a state of the
    /// node (FAILED_PRECONDITION) rather than a bad argument
    /// (INVALID_ARGUMENT is for requests wrong whatever the state).
    fn code(&self) -> Code {
        match self {
            LogError::InvalidPath(_) => Code::InvalidArgument,
            LogError::MissingDirectory { .. } => Code::FailedPrecondition,
            LogError::File { .. } | LogError::Write { .. } => Code::Internal,
            LogError::Locked { .. } => Code::AlreadyExists,
            LogError::Corrupt { .. } => Code::DataLoss,
            LogError::Format(_) | LogError::IoThread(_) => Code::Internal,
            LogError::Docker(err) => err.code(),
            LogError::NotFollowed(_) => Code::FailedPrecondition,
            LogError::AlreadyFollowed(_) => Code::AlreadyExists,
        }
    }

    fn message(&self) -> String {
        format!("logs: {self}")
    }
}

impl GrpcCode for StatsError {
    /// A vanished cgroup or proc entry means the container is no longer
    /// running: `NOT_FOUND`.
    fn code(&self) -> Code {
        match self {
            StatsError::Read { .. } if self.is_gone() => Code::NotFound,
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
}

impl GrpcCode for IndexError {
    fn code(&self) -> Code {
        match self {
            IndexError::Docker(err) => err.code(),
            IndexError::CatchUpTimeout { .. } => Code::DeadlineExceeded,
            IndexError::AmbiguousId { .. } | IndexError::EmptyId => Code::InvalidArgument,
            IndexError::Spawn(_) => Code::Internal,
        }
    }
}

/// A failed exec.
#[derive(Debug)]
pub enum ExecError {
    /// No command to run.
    EmptyCommand,
    /// A Docker call failed: the container is missing (404), not running
    /// or paused (409), dockerd is unreachable, or the stream is malformed.
    Docker {
        container: String,
        source: DockerError,
    },
    /// The hijacked connection failed while the output was read.
    Io {
        container: String,
        source: io::Error,
    },
    /// The timeout (or the gRPC deadline, if sooner) passed; the process
    /// tree was killed unless `cleanup` says otherwise.
    Timeout {
        container: String,
        command: String,
        after: Duration,
        cleanup: Option<Box<ExecError>>,
    },
    /// The caller went away; the process tree was killed unless `cleanup`
    /// says otherwise.
    Cancelled {
        container: String,
        command: String,
        cleanup: Option<Box<ExecError>>,
    },
    /// The output ended but dockerd kept reporting the exec as running.
    NoExitCode { container: String, exec_id: String },
    /// The container stopped (or was removed) while the command ran, and
    /// dockerd neither ended its output nor recorded its exit code.
    ContainerStopped { container: String, command: String },
    /// Signalling a process of the exec's tree failed.
    Signal { pid: i32, source: io::Error },
    /// The process table could not be read.
    Proc(io::Error),
    /// These processes were still alive after SIGKILL.
    Survived { pids: Vec<i32> },
}

impl ExecError {
    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            ExecError::EmptyCommand => Code::InvalidArgument,
            ExecError::ContainerStopped { .. } => Code::FailedPrecondition,
            ExecError::Docker { source, .. } => source.code(),
            ExecError::Io { .. } => Code::Unavailable,
            ExecError::Timeout { .. } => Code::DeadlineExceeded,
            ExecError::Cancelled { .. } => Code::Cancelled,
            ExecError::NoExitCode { .. } => Code::Unknown,
            ExecError::Signal { .. } | ExecError::Proc(_) | ExecError::Survived { .. } => {
                Code::Internal
            }
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::EmptyCommand => write!(f, "exec: the command is empty"),
            ExecError::Docker { container, source } => {
                write!(f, "exec in container {container}: docker: {source}")
            }
            ExecError::Io { container, source } => {
                write!(
                    f,
                    "exec in container {container}: reading the output: {source}"
                )
            }
            ExecError::Timeout {
                container,
                command,
                after,
                cleanup,
            } => {
                write!(
                    f,
                    "command {command} in container {container} timed out after {after:?}"
                )?;
                match cleanup {
                    None => write!(f, " and was killed"),
                    Some(err) => write!(f, "; killing it failed: {err}"),
                }
            }
            ExecError::Cancelled {
                container,
                command,
                cleanup,
            } => {
                write!(
                    f,
                    "command {command} in container {container} was cancelled by the caller"
                )?;
                match cleanup {
                    None => write!(f, " and killed"),
                    Some(err) => write!(f, "; killing it failed: {err}"),
                }
            }
            ExecError::NoExitCode { container, exec_id } => write!(
                f,
                "exec {exec_id} in container {container}: output ended but dockerd still reports \
                 the process running"
            ),
            ExecError::ContainerStopped { container, command } => write!(
                f,
                "container {container} stopped while command {command} ran; dockerd reported no \
                 exit code for it"
            ),
            ExecError::Signal { pid, source } => write!(f, "signalling process {pid}: {source}"),
            ExecError::Proc(source) => write!(f, "reading /proc: {source}"),
            ExecError::Survived { pids } => {
                write!(f, "processes {pids:?} still alive after SIGKILL")
            }
        }
    }
}

impl std::error::Error for ExecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecError::Docker { source, .. } => Some(source),
            ExecError::Io { source, .. }
            | ExecError::Signal { source, .. }
            | ExecError::Proc(source) => Some(source),
            ExecError::Timeout {
                cleanup: Some(err), ..
            }
            | ExecError::Cancelled {
                cleanup: Some(err), ..
            } => Some(err.as_ref()),
            _ => None,
        }
    }
}

impl From<ExecError> for Status {
    fn from(err: ExecError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// Why a stats call failed.
#[derive(Debug)]
pub enum StatsServiceError {
    /// No container or sandbox has this ID or ID prefix.
    NotFound {
        kind: &'static str,
        id: String,
    },
    /// dockerd did not tell its cgroup setup.
    Docker {
        action: &'static str,
        source: DockerError,
    },
    /// A cgroup or proc file could not be read, or the node's cgroup
    /// hierarchies could not be found.
    Stats {
        subject: String,
        source: StatsError,
    },
    Index(IndexError),
    /// The container was not made through the CRI.
    Naming(NamingError),
}

impl StatsServiceError {
    pub(crate) fn not_found(kind: &'static str, id: &str) -> StatsServiceError {
        StatsServiceError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }

    pub(crate) fn docker(action: &'static str, source: DockerError) -> StatsServiceError {
        StatsServiceError::Docker { action, source }
    }

    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            StatsServiceError::NotFound { .. } => Code::NotFound,
            StatsServiceError::Docker { source, .. } => source.code(),
            StatsServiceError::Stats { source, .. } => source.code(),
            StatsServiceError::Index(err) => err.code(),
            StatsServiceError::Naming(err) => err.code(),
        }
    }
}

impl fmt::Display for StatsServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsServiceError::NotFound { kind, id } => write!(f, "{kind} {id:?} not found"),
            StatsServiceError::Docker { action, source } => {
                write!(f, "cannot {action}: {source}")
            }
            StatsServiceError::Stats { subject, source } => {
                write!(f, "stats of {subject}: {source}")
            }
            StatsServiceError::Index(err) => write!(f, "container state index: {err}"),
            StatsServiceError::Naming(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for StatsServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StatsServiceError::NotFound { .. } => None,
            StatsServiceError::Docker { source, .. } => Some(source),
            StatsServiceError::Stats { source, .. } => Some(source),
            StatsServiceError::Index(err) => Some(err),
            StatsServiceError::Naming(err) => Some(err),
        }
    }
}

impl From<IndexError> for StatsServiceError {
    fn from(err: IndexError) -> StatsServiceError {
        StatsServiceError::Index(err)
    }
}

impl From<NamingError> for StatsServiceError {
    fn from(err: NamingError) -> StatsServiceError {
        StatsServiceError::Naming(err)
    }
}

impl From<StatsServiceError> for Status {
    fn from(err: StatsServiceError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// A name that cannot be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamingError {
    /// The request has no metadata message.
    MissingMetadata(&'static str),
    /// A metadata field that goes into the name is empty.
    EmptyField(&'static str),
    /// A metadata field holds `_` or a character Docker names cannot hold.
    InvalidField { field: &'static str, value: String },
    /// A Docker name that does not follow the scheme; the second field
    /// says how.
    NotKubernetes { name: String, reason: &'static str },
}

impl fmt::Display for NamingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamingError::MissingMetadata(what) => write!(f, "{what} has no metadata"),
            NamingError::EmptyField(field) => write!(f, "{field} is empty"),
            NamingError::InvalidField { field, value } => write!(
                f,
                "{field} {value:?} may hold only ASCII letters, digits, '.' and '-'"
            ),
            NamingError::NotKubernetes { name, reason } => {
                write!(
                    f,
                    "container name {name:?} is not a Kubernetes name: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for NamingError {}

impl NamingError {
    /// Bad metadata is the caller's mistake: INVALID_ARGUMENT. A Docker
    /// container whose name does not parse is, to the CRI, no sandbox or
    /// container at all: NOT_FOUND.
    pub fn code(&self) -> Code {
        match self {
            NamingError::NotKubernetes { .. } => Code::NotFound,
            _ => Code::InvalidArgument,
        }
    }
}

impl From<NamingError> for Status {
    fn from(err: NamingError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// A CRI label that cannot be stored without changing its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    /// The key is one of dockshim's internal labels.
    Internal(String),
    /// The key starts with `annotation.` and would read back as an
    /// annotation.
    AnnotationPrefix(String),
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Internal(key) => {
                write!(f, "label {key:?} is reserved for the runtime's own use")
            }
            LabelError::AnnotationPrefix(key) => write!(
                f,
                "label {key:?} starts with {ANNOTATION_PREFIX:?}, which the runtime uses \
                 to store annotations"
            ),
        }
    }
}

impl std::error::Error for LabelError {}

impl From<LabelError> for Status {
    fn from(err: LabelError) -> Status {
        Status::invalid_argument(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::docker::ApiVersion;

    fn not_found() -> DockerError {
        DockerError::Api {
            status: 404,
            message: "No such container: x".to_owned(),
        }
        .in_call("GET", "/containers/x/json")
    }

    #[test]
    fn a_docker_status_keeps_the_call_and_dockerds_message() {
        let status = Status::from(not_found());
        assert_eq!(status.code, Code::NotFound);
        assert_eq!(
            status.message,
            "docker: GET /containers/x/json: 404: No such container: x"
        );
    }

    #[test]
    fn dockerds_http_statuses_map_to_grpc_codes() {
        let cases = [
            (400, Code::InvalidArgument),
            (401, Code::PermissionDenied),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::FailedPrecondition),
            (500, Code::Unknown),
            (503, Code::Unavailable),
        ];
        for (status, code) in cases {
            let err = DockerError::Api {
                status,
                message: String::new(),
            };
            assert_eq!(err.code(), code, "{status}");
        }
    }

    #[test]
    fn unreachable_dockerd_is_unavailable_slow_dockerd_deadline_exceeded_old_dockerd_a_precondition(
    ) {
        let refused = DockerError::Connect {
            path: "/run/x.sock".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.code(), Code::Unavailable);
        let slow = DockerError::Timeout {
            what: "waiting for the answer",
            after: Duration::from_secs(2),
        };
        assert_eq!(slow.in_call("GET", "/_ping").code(), Code::DeadlineExceeded);
        let old = DockerError::TooOld {
            server: ApiVersion::new(1, 40),
            minimum: ApiVersion::new(1, 41),
        };
        assert_eq!(old.code(), Code::FailedPrecondition);
    }

    #[test]
    fn an_index_failure_takes_the_code_of_its_cause() {
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
    fn log_failures_say_they_are_the_logs_and_keep_dockerds_answer() {
        assert_eq!(
            LogError::InvalidPath("x".into()).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            LogError::NotFollowed("c1".into()).code(),
            Code::FailedPrecondition
        );
        let docker = DockerError::Api {
            status: 404,
            message: "No such container: c1".into(),
        };
        let status = Status::from(LogError::Docker(docker));
        assert_eq!(status.code, Code::NotFound);
        assert!(status.message.starts_with("logs: "), "{}", status.message);
        assert!(status.message.contains("No such container: c1"));
    }

    #[test]
    fn a_missing_log_directory_is_a_failed_precondition_naming_it() {
        let status = Status::from(LogError::MissingDirectory {
            path: PathBuf::from("/var/log/pods/ns_pod_uid/app"),
        });
        assert_eq!(status.code, Code::FailedPrecondition);
        assert!(status.message.contains("/var/log/pods/ns_pod_uid/app"));
    }

    #[test]
    fn a_vanished_stats_file_is_not_found_and_a_refused_read_is_internal() {
        let gone = StatsError::Read {
            path: "/sys/fs/cgroup/memory/docker/abc/memory.stat".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(gone.code(), Code::NotFound);
        let denied = StatsError::Read {
            path: "/proc/1/net/dev".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(Status::from(denied).code, Code::Internal);
    }

    #[test]
    fn a_corrupt_store_record_is_data_loss_and_a_bad_id_the_callers_fault() {
        let corrupt = OwedTeardownError::Corrupt {
            path: PathBuf::from("/var/lib/dockshim/owed/abc"),
            reason: "EOF".to_owned(),
        };
        assert_eq!(corrupt.code(), Code::DataLoss);
        let invalid = CheckpointError::InvalidId {
            id: "../x".to_owned(),
            reason: "not a single path component",
        };
        assert_eq!(invalid.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_gone_namespace_is_not_found_also_beneath_a_hairpin_failure() {
        let gone = NetnsError::Open {
            path: PathBuf::from("/proc/1/ns/net"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(gone.code(), Code::NotFound);
        assert_eq!(
            HairpinError::Netns(gone).code(),
            Code::NotFound,
            "the hairpin failure keeps its cause's code"
        );
    }
}
