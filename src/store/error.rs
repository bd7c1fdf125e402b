//! The store's errors: `StoreError`, a failed read or write of a stored
//! file; `CheckpointError`, what went wrong with a sandbox checkpoint;
//! `OwedTeardownError`, what went wrong with an owed-teardown record. What
//! each means to the kubelet is `cri`'s to say.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed read or write of a stored file.
#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: io::Error,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} {}: {}",
            self.action,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What went wrong with a checkpoint.
#[derive(Debug)]
pub enum CheckpointError {
    /// The sandbox ID cannot be a checkpoint file name.
    InvalidId { id: String, reason: &'static str },
    /// No checkpoint for this sandbox.
    NotFound { id: String },
    /// The file was unreadable as a checkpoint and has been moved aside
    /// (or, if `quarantine` failed, left where it was).
    Corrupt {
        id: String,
        reason: String,
        quarantined: Result<PathBuf, String>,
    },
    /// A filesystem operation failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::InvalidId { id, reason } => {
                write!(f, "invalid sandbox ID {id:?} for a checkpoint: {reason}")
            }
            CheckpointError::NotFound { id } => write!(f, "no checkpoint for sandbox {id}"),
            CheckpointError::Corrupt {
                id,
                reason,
                quarantined,
            } => {
                write!(f, "checkpoint of sandbox {id} is corrupt ({reason})")?;
                match quarantined {
                    Ok(path) => write!(f, "; moved to {}", path.display()),
                    Err(why) => write!(f, "; could not be moved aside: {why}"),
                }
            }
            CheckpointError::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What went wrong with an owed-teardown record.
#[derive(Debug)]
pub enum OwedTeardownError {
    /// The sandbox ID cannot be a file name.
    InvalidId { id: String, reason: String },
    /// The record does not parse.
    Corrupt { path: PathBuf, reason: String },
    /// A filesystem operation failed.
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The record could not be encoded.
    Encode(serde_json::Error),
}

impl fmt::Display for OwedTeardownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwedTeardownError::InvalidId { id, reason } => {
                write!(
                    f,
                    "invalid sandbox ID {id:?} for an owed teardown: {reason}"
                )
            }
            OwedTeardownError::Corrupt { path, reason } => {
                write!(f, "owed teardown {} is corrupt: {reason}", path.display())
            }
            OwedTeardownError::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            OwedTeardownError::Encode(source) => {
                write!(f, "cannot encode an owed teardown: {source}")
            }
        }
    }
}

impl std::error::Error for OwedTeardownError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OwedTeardownError::Io { source, .. } => Some(source),
            OwedTeardownError::Encode(source) => Some(source),
            _ => None,
        }
    }
}
