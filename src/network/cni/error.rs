//! `CniError`: every way running the CNI plugins for a pod can fail, with
//! the rollback or teardown failures that came with it. What each means to
//! the kubelet is `cri`'s to say.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::CniCommand;
use crate::network::cni_config::display_dirs;

/// A failed CNI operation.
#[derive(Debug)]
pub enum CniError {
    /// The request cannot be expressed to a plugin.
    InvalidArgument(String),
    /// A bandwidth annotation is not a usable quantity.
    Bandwidth {
        annotation: &'static str,
        value: String,
        reason: String,
    },
    /// No executable for the plugin type in the plugin directories.
    PluginNotFound {
        plugin: String,
        bin_dirs: Vec<PathBuf>,
    },
    /// Starting the plugin or talking to it over its pipes failed.
    Io {
        plugin: String,
        action: &'static str,
        source: io::Error,
    },
    /// The plugin ran longer than allowed and was killed.
    Timeout {
        plugin: String,
        command: CniCommand,
        after: Duration,
    },
    /// The plugin failed and said why, in the CNI error format.
    Plugin {
        plugin: String,
        command: CniCommand,
        code: u64,
        msg: String,
        details: String,
    },
    /// The plugin failed without a CNI error on stdout.
    Failed {
        plugin: String,
        command: CniCommand,
        status: String,
        stderr: String,
    },
    /// The plugin printed more than `limit` bytes.
    OutputTooLarge { plugin: String, limit: usize },
    /// The plugin's result is not a CNI result.
    BadResult { plugin: String, reason: String },
    /// CHECK needs the result of the ADD it checks.
    NoCachedResult {
        network: String,
        container_id: String,
    },
    /// ADD failed; everything it did was then deleted, or `cleanup` says
    /// what could not be.
    Add {
        network: String,
        cause: Box<CniError>,
        cleanup: Option<Box<CniError>>,
    },
    /// DEL failed for these plugins; the others were deleted.
    Del { failures: Vec<(String, CniError)> },
    /// CHECK found the network not as ADD left it.
    Check {
        network: String,
        cause: Box<CniError>,
    },
    /// The process whose network namespace ADD was to use has ended.
    NamespaceGone { netns: PathBuf, source: io::Error },
}

impl CniError {
    /// The failure underneath the ADD/CHECK wrappers (the first one, for
    /// DEL).
    pub fn root_cause(&self) -> &CniError {
        match self {
            CniError::Add { cause, .. } | CniError::Check { cause, .. } => cause.root_cause(),
            CniError::Del { failures } => failures
                .first()
                .map_or(self, |(_, failure)| failure.root_cause()),
            other => other,
        }
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CniError::InvalidArgument(why) => write!(f, "invalid CNI request: {why}"),
            CniError::Bandwidth {
                annotation,
                value,
                reason,
            } => write!(f, "pod annotation {annotation}={value:?}: {reason}"),
            CniError::PluginNotFound { plugin, bin_dirs } => write!(
                f,
                "CNI plugin {plugin:?} is not an executable in {}",
                display_dirs(bin_dirs)
            ),
            CniError::Io {
                plugin,
                action,
                source,
            } => write!(f, "CNI plugin {plugin}: cannot {action}: {source}"),
            CniError::Timeout {
                plugin,
                command,
                after,
            } => write!(f, "CNI plugin {plugin} {command} killed after {after:?}"),
            CniError::Plugin {
                plugin,
                command,
                code,
                msg,
                details,
            } => {
                write!(
                    f,
                    "CNI plugin {plugin} {command} failed (code {code}): {msg}"
                )?;
                if !details.is_empty() {
                    write!(f, ": {details}")?;
                }
                Ok(())
            }
            CniError::Failed {
                plugin,
                command,
                status,
                stderr,
            } => {
                write!(f, "CNI plugin {plugin} {command} failed: {status}")?;
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            CniError::OutputTooLarge { plugin, limit } => {
                write!(f, "CNI plugin {plugin} printed more than {limit} bytes")
            }
            CniError::BadResult { plugin, reason } => {
                write!(
                    f,
                    "CNI plugin {plugin} returned an invalid result: {reason}"
                )
            }
            CniError::NoCachedResult {
                network,
                container_id,
            } => write!(
                f,
                "no cached CNI result of network {network} for container {container_id}"
            ),
            CniError::Add {
                network,
                cause,
                cleanup,
            } => {
                write!(f, "adding pod to CNI network {network}: {cause}")?;
                match cleanup {
                    None => Ok(()),
                    Some(cleanup) => write!(f, "; cleanup also failed: {cleanup}"),
                }
            }
            CniError::Del { failures } => {
                f.write_str("deleting pod from CNI network")?;
                for (i, (network, failure)) in failures.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{network}: {failure}")?;
                }
                Ok(())
            }
            CniError::Check { network, cause } => {
                write!(f, "checking pod in CNI network {network}: {cause}")
            }
            CniError::NamespaceGone { netns, source } => write!(
                f,
                "the pod's network namespace {} cannot be held: {source}",
                netns.display()
            ),
        }
    }
}

impl std::error::Error for CniError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CniError::Io { source, .. } => Some(source),
            CniError::Add { cause, .. } | CniError::Check { cause, .. } => Some(cause.as_ref()),
            CniError::Del { failures } => failures
                .first()
                .map(|(_, failure)| failure as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}
