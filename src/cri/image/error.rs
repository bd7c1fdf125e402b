//! The image calls' errors: `ImageError`, why an image call failed, with
//! the gRPC code each reason reaches the kubelet with; `ReferenceError`, an
//! image reference outside Docker's grammar; `AuthError`, a CRI `auth`
//! field that cannot be decoded; and `FsUsageError`, a failed measurement
//! of the image filesystem, which is logged and reaches the kubelet only as
//! the text of `ImageError::NotMeasured`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::codec::Base64Error;
use crate::cri::error::GrpcCode;
use crate::cri::sandbox::SandboxConfigError;
use crate::docker::DockerError;
use crate::grpc::{Code, Status};

/// A failed image call.
#[derive(Debug)]
pub enum ImageError {
    /// The request lacks a required field or asks for what Docker cannot do.
    InvalidRequest(String),
    InvalidReference(ReferenceError),
    InvalidAuth(AuthError),
    Docker(DockerError),
    /// dockerd or the registry failed the pull; `message` is theirs,
    /// redacted, and `code` was chosen from it.
    PullFailed {
        image: String,
        code: Code,
        message: String,
    },
    /// No progress message for `--image-pull-progress-deadline`.
    PullStalled {
        image: String,
        after: Duration,
        last: String,
    },
    /// The pull was still running at `--image-pull-timeout`.
    PullTimedOut {
        image: String,
        after: Duration,
        last: String,
    },
    /// The kubelet cancelled the call (or its deadline passed) mid-pull.
    PullCancelled {
        image: String,
    },
    /// RemoveImage of an image that containers still use.
    InUse {
        image: String,
        containers: Vec<String>,
    },
    /// ImageFsInfo before any figures exist.
    NotMeasured(String),
    /// A pull for a RuntimeClass handler dockerd has no runtime for.
    UnknownRuntimeHandler(SandboxConfigError),
}

impl ImageError {
    pub fn code(&self) -> Code {
        match self {
            ImageError::InvalidRequest(_)
            | ImageError::InvalidReference(_)
            | ImageError::InvalidAuth(_) => Code::InvalidArgument,
            ImageError::Docker(err) => err.code(),
            ImageError::PullFailed { code, .. } => *code,
            ImageError::PullStalled { .. } | ImageError::PullTimedOut { .. } => {
                Code::DeadlineExceeded
            }
            ImageError::PullCancelled { .. } => Code::Cancelled,
            ImageError::InUse { .. } => Code::FailedPrecondition,
            ImageError::NotMeasured(_) => Code::Unavailable,
            ImageError::UnknownRuntimeHandler(err) => err.code(),
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::InvalidRequest(why) => f.write_str(why),
            ImageError::InvalidReference(err) => write!(f, "{err}"),
            ImageError::InvalidAuth(err) => write!(f, "{err}"),
            ImageError::Docker(err) => write!(f, "docker: {err}"),
            ImageError::PullFailed { image, message, .. } => {
                write!(f, "pulling image {image} failed: {message}")
            }
            ImageError::PullStalled { image, after, last } => write!(
                f,
                "pulling image {image} cancelled: no progress for {after:?} \
                 (--image-pull-progress-deadline); last progress: {last}"
            ),
            ImageError::PullTimedOut { image, after, last } => write!(
                f,
                "pulling image {image} cancelled: not finished after {after:?} \
                 (--image-pull-timeout); last progress: {last}"
            ),
            ImageError::PullCancelled { image } => {
                write!(f, "pulling image {image} abandoned: the call was cancelled")
            }
            ImageError::InUse { image, containers } => write!(
                f,
                "image {image} is in use by container(s) {}; remove them first",
                containers.join(", ")
            ),
            ImageError::NotMeasured(why) => {
                write!(f, "image filesystem usage is not known yet: {why}")
            }
            ImageError::UnknownRuntimeHandler(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::InvalidReference(err) => Some(err),
            ImageError::InvalidAuth(err) => Some(err),
            ImageError::Docker(err) => Some(err),
            _ => None,
        }
    }
}

impl From<DockerError> for ImageError {
    fn from(err: DockerError) -> ImageError {
        ImageError::Docker(err)
    }
}

impl From<ReferenceError> for ImageError {
    fn from(err: ReferenceError) -> ImageError {
        ImageError::InvalidReference(err)
    }
}

impl From<ImageError> for Status {
    fn from(err: ImageError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// A reference that does not follow Docker's grammar. The text is not a
/// secret, so messages quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    Empty,
    /// The repository name, registry included, is longer than the limit
    /// in the second field.
    NameTooLong(String, usize),
    /// Docker accepts only lowercase repository paths.
    Uppercase(String),
    /// Any other violation; the second field says which.
    Invalid(String, &'static str),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Empty => f.write_str("no image given"),
            ReferenceError::NameTooLong(text, limit) => write!(
                f,
                "invalid image reference {text:?}: repository name longer than {limit} characters"
            ),
            ReferenceError::Uppercase(text) => write!(
                f,
                "invalid image reference {text:?}: repository name must be lowercase"
            ),
            ReferenceError::Invalid(text, why) => {
                write!(f, "invalid image reference {text:?}: {why}")
            }
        }
    }
}

impl std::error::Error for ReferenceError {}

/// A CRI `auth` field that is not base64 of `user:password`. The messages
/// never include the field's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Not base64 in either alphabet.
    NotBase64(Base64Error),
    /// Decoded to something other than UTF-8 `user:password`.
    NotUserPassword,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::NotBase64(err) => write!(f, "AuthConfig.auth: {err}"),
            AuthError::NotUserPassword => {
                f.write_str("AuthConfig.auth: not base64 of \"username:password\"")
            }
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::NotBase64(err) => Some(err),
            AuthError::NotUserPassword => None,
        }
    }
}

/// A failed measurement.
#[derive(Debug)]
pub enum FsUsageError {
    Docker(DockerError),
    /// `statfs` on the layers' directory failed.
    Statfs {
        path: String,
        errno: nix::errno::Errno,
    },
    /// The content store could not be listed.
    Content {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for FsUsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsUsageError::Docker(err) => write!(f, "docker: {err}"),
            FsUsageError::Statfs { path, errno } => write!(f, "statfs {path}: {errno}"),
            FsUsageError::Content { path, source } => {
                write!(f, "list the content store {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for FsUsageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FsUsageError::Docker(err) => Some(err),
            FsUsageError::Statfs { errno, .. } => Some(errno),
            FsUsageError::Content { source, .. } => Some(source),
        }
    }
}

impl From<DockerError> for FsUsageError {
    fn from(err: DockerError) -> FsUsageError {
        FsUsageError::Docker(err)
    }
}
