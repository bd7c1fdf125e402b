//! Container log files in the CRI format, written by dockshim itself.
//!
//! The kubelet reads `<log_directory>/<log_path>` and expects CRI log lines
//! (`<RFC3339Nano> <stdout|stderr> <F|P> <message>`). This module follows
//! each running container's output from dockerd's logs endpoint and appends
//! those lines to that file: [`format`] is the pure translation, [`path`]
//! keeps every write inside the pod's log directory, [`resume`] finds where
//! a file left off after a restart, and [`manager`] runs every follower on
//! one I/O thread.
//!
//! It does not decide when to follow (the container handlers open the file
//! with [`LogManager::prepare`] before StartContainer and call
//! [`LogManager::follow_prepared`] after it, [`LogManager::remove`] on
//! RemoveContainer, [`LogManager::reopen`] for ReopenContainerLog, and
//! [`LogManager::resume`] for running containers at start-up), and it never
//! rotates files: the kubelet renames them and asks for a reopen.

pub mod format;
pub mod manager;
pub mod path;
pub mod resume;

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::docker::DockerError;

pub use format::{CriEncoder, CriStream, ResumePoint, StreamResume, Tag, Timestamp, MAX_LINE_SIZE};
pub use manager::{LogManager, CATCH_UP_THREAD_NAME, LOG_THREAD_NAME};
pub use path::{open_log_file, validate_log_path, LogFile};
pub use resume::{find_resume_point, MAX_RESUME_SCAN};

/// A failure to validate, open, write or follow a container log.
#[derive(Debug)]
pub enum LogError {
    /// The CRI `log_path` (or log directory) is not acceptable.
    InvalidPath(String),
    /// The directory a log file is to be created in does not exist.
    MissingDirectory { path: PathBuf },
    /// A log file could not be opened, created, read or removed.
    File { path: PathBuf, source: io::Error },
    /// Another open file holds the log file's lock: someone else writes it.
    Locked { path: PathBuf },
    /// Writing CRI lines to the file failed.
    Write { path: PathBuf, source: io::Error },
    /// An existing log file's tail is not CRI log lines, so where to resume
    /// is unknown.
    Corrupt { path: PathBuf, reason: String },
    /// dockerd's log stream is not timestamped messages.
    Format(String),
    /// Opening or reading dockerd's log stream failed.
    Docker(DockerError),
    /// The container's output is not being followed (it is not running,
    /// or never was started by this dockshim).
    NotFollowed(String),
    /// The container's output is followed already.
    AlreadyFollowed(String),
    /// The log I/O thread could not be started or did not answer.
    IoThread(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::InvalidPath(reason) => write!(f, "invalid log path: {reason}"),
            LogError::MissingDirectory { path } => write!(
                f,
                "log directory {} does not exist (the kubelet creates it before the container)",
                path.display()
            ),
            LogError::File { path, source } => write!(f, "{}: {source}", path.display()),
            LogError::Locked { path } => write!(
                f,
                "{} is locked by another writer (a second dockshim on this dockerd?)",
                path.display()
            ),
            LogError::Write { path, source } => {
                write!(f, "writing {}: {source}", path.display())
            }
            LogError::Corrupt { path, reason } => {
                write!(f, "{} is not a CRI log file: {reason}", path.display())
            }
            LogError::Format(reason) => write!(f, "{reason}"),
            LogError::Docker(err) => write!(f, "following the container's output: {err}"),
            LogError::NotFollowed(id) => {
                write!(
                    f,
                    "container {id} is not running; its log is not being written"
                )
            }
            LogError::AlreadyFollowed(id) => {
                write!(f, "container {id}'s output is already being logged")
            }
            LogError::IoThread(reason) => write!(f, "log writer thread: {reason}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::File { source, .. } | LogError::Write { source, .. } => Some(source),
            LogError::Docker(err) => Some(err),
            _ => None,
        }
    }
}
