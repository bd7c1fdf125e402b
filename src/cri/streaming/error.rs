//! The streaming errors: `StreamRequestError`, why an Exec, Attach or
//! PortForward request gets no URL (a gRPC status);
//! `DockerSessionError`, why an exec or attach failed once its URL was
//! redeemed (text on the session's error stream, never a gRPC status); and
//! `SandboxDialError`, why a port-forward connection could not reach the
//! pod (the protocol library's `PortForwardError::Dial`).

use std::fmt;
use std::io;

use crate::cri::error::GrpcCode;
use crate::docker::DockerError;
use crate::grpc::{Code, Status};
use crate::index::IndexError;
use crate::network::NetnsError;
use crate::streaming::{PortForwardError, TokenError};

/// Why an Exec, Attach or PortForward request gets no URL.
#[derive(Debug)]
pub enum StreamRequestError {
    /// Exec without a command.
    NoCommand,
    /// None of stdin, stdout and stderr was asked for.
    NoStreams,
    /// A terminal has one output stream, so stderr cannot be asked for
    /// with tty.
    TtyWithStderr,
    /// A port outside 1..=65535.
    BadPort {
        port: i32,
    },
    ContainerNotFound {
        id: String,
    },
    ContainerNotRunning {
        id: String,
    },
    SandboxNotFound {
        id: String,
    },
    SandboxNotReady {
        id: String,
    },
    /// The state index could not answer.
    Index(IndexError),
    /// The streaming server could not issue a token.
    Token(TokenError),
}

impl StreamRequestError {
    pub fn code(&self) -> Code {
        match self {
            StreamRequestError::NoCommand
            | StreamRequestError::NoStreams
            | StreamRequestError::TtyWithStderr
            | StreamRequestError::BadPort { .. } => Code::InvalidArgument,
            StreamRequestError::ContainerNotFound { .. }
            | StreamRequestError::SandboxNotFound { .. } => Code::NotFound,
            StreamRequestError::ContainerNotRunning { .. }
            | StreamRequestError::SandboxNotReady { .. } => Code::FailedPrecondition,
            StreamRequestError::Index(err) => err.code(),
            StreamRequestError::Token(TokenError::Exhausted { .. }) => Code::ResourceExhausted,
            StreamRequestError::Token(TokenError::Random(..) | TokenError::Repeated(_)) => {
                Code::Internal
            }
        }
    }
}

impl fmt::Display for StreamRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRequestError::NoCommand => write!(f, "exec needs a command"),
            StreamRequestError::NoStreams => {
                write!(f, "one of stdin, stdout and stderr must be set")
            }
            StreamRequestError::TtyWithStderr => write!(
                f,
                "tty and stderr cannot both be set: a terminal merges stderr into stdout"
            ),
            StreamRequestError::BadPort { port } => {
                write!(f, "port {port} is not in the range 1-65535")
            }
            StreamRequestError::ContainerNotFound { id } => write!(f, "container {id} not found"),
            StreamRequestError::ContainerNotRunning { id } => {
                write!(f, "container {id} is not running")
            }
            StreamRequestError::SandboxNotFound { id } => write!(f, "pod sandbox {id} not found"),
            StreamRequestError::SandboxNotReady { id } => {
                write!(f, "pod sandbox {id} is not ready")
            }
            StreamRequestError::Index(err) => write!(f, "{err}"),
            StreamRequestError::Token(err) => write!(f, "cannot issue a streaming URL: {err}"),
        }
    }
}

impl std::error::Error for StreamRequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamRequestError::Index(err) => Some(err),
            StreamRequestError::Token(err) => Some(err),
            _ => None,
        }
    }
}

impl From<IndexError> for StreamRequestError {
    fn from(err: IndexError) -> StreamRequestError {
        StreamRequestError::Index(err)
    }
}

impl From<TokenError> for StreamRequestError {
    fn from(err: TokenError) -> StreamRequestError {
        StreamRequestError::Token(err)
    }
}

impl From<StreamRequestError> for Status {
    fn from(err: StreamRequestError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// A failed exec or attach, as reported on the error stream.
#[derive(Debug)]
pub enum DockerSessionError {
    /// No container has that ID or name.
    NotFound { container: String },
    /// The container exists but is not running.
    NotRunning { container: String },
    /// A dockerd call failed (inspect, start, attach, ...).
    Docker(DockerError),
    /// Creating the exec failed.
    ExecSetup(DockerError),
    /// Reading dockerd's side of the session failed, or dockerd reported
    /// an error in it (such as a command that cannot be run).
    Output(DockerError),
    /// Output could not be sent to the client.
    Client(io::Error),
    /// A thread of the session could not be started.
    Thread(io::Error),
    /// The output ended but dockerd kept reporting the exec as running.
    NoExitCode { exec_id: String },
}

impl fmt::Display for DockerSessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerSessionError::NotFound { container } => {
                write!(f, "No such container: {container}")
            }
            DockerSessionError::NotRunning { container } => {
                write!(f, "container not running ({container})")
            }
            DockerSessionError::Docker(source) => write!(f, "{source}"),
            DockerSessionError::ExecSetup(source) => {
                write!(
                    f,
                    "failed to exec in container - Exec setup failed - {source}"
                )
            }
            DockerSessionError::Output(source) => write!(f, "{source}"),
            DockerSessionError::Client(source) => {
                write!(f, "cannot send output to the client: {source}")
            }
            DockerSessionError::Thread(source) => {
                write!(f, "cannot start a thread for the session: {source}")
            }
            DockerSessionError::NoExitCode { exec_id } => write!(
                f,
                "the output of exec {exec_id} ended but dockerd still reports it as running"
            ),
        }
    }
}

impl std::error::Error for DockerSessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DockerSessionError::Docker(source)
            | DockerSessionError::ExecSetup(source)
            | DockerSessionError::Output(source) => Some(source),
            DockerSessionError::Client(source) | DockerSessionError::Thread(source) => Some(source),
            DockerSessionError::NotFound { .. }
            | DockerSessionError::NotRunning { .. }
            | DockerSessionError::NoExitCode { .. } => None,
        }
    }
}

/// Why the pod could not be reached at all.
#[derive(Debug)]
pub enum SandboxDialError {
    /// The index has no sandbox with this ID (it was removed meanwhile).
    NotFound { sandbox: String },
    /// The sandbox exists but its container does not run.
    NotRunning { sandbox: String },
    /// The index could not answer.
    Index(IndexError),
    /// The sandbox's network namespace could not be entered.
    Netns(NetnsError),
}

impl fmt::Display for SandboxDialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxDialError::NotFound { sandbox } => write!(f, "pod sandbox {sandbox} not found"),
            SandboxDialError::NotRunning { sandbox } => {
                write!(f, "pod sandbox {sandbox} is not running")
            }
            SandboxDialError::Index(source) => write!(f, "{source}"),
            SandboxDialError::Netns(source) => write!(f, "{source}"),
        }
    }
}

impl std::error::Error for SandboxDialError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxDialError::Index(source) => Some(source),
            SandboxDialError::Netns(source) => Some(source),
            SandboxDialError::NotFound { .. } | SandboxDialError::NotRunning { .. } => None,
        }
    }
}

impl From<SandboxDialError> for PortForwardError {
    fn from(err: SandboxDialError) -> PortForwardError {
        PortForwardError::Dial(Box::new(err))
    }
}
