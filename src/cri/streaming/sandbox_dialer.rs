//! The port-forward dialer on dockerd: a connection to a port on a pod's
//! loopback interface, made inside the sandbox's network namespace.
//!
//! The sandbox is looked up in the state index at every dial, so a sandbox
//! stopped during a session refuses later connections. The socket is
//! created on a throwaway thread inside the namespace (a connected socket
//! keeps its namespace; the session's threads never change theirs). The
//! port-forward protocol itself is `crate::streaming::port_forward`'s.

use std::fmt;
use std::net::TcpStream;

use crate::host::netns_path;
use crate::index::{Index, IndexError};
use crate::network::{run_in_netns, NetnsError};
use crate::streaming::port_forward::{connect_loopback, PortDialer};
use crate::streaming::PortForwardError;

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

/// Dials inside the network namespace of one sandbox.
#[derive(Debug)]
pub struct SandboxDialer<'a> {
    index: &'a Index,
    sandbox_id: &'a str,
}

impl<'a> SandboxDialer<'a> {
    pub fn new(index: &'a Index, sandbox_id: &'a str) -> SandboxDialer<'a> {
        SandboxDialer { index, sandbox_id }
    }
}

impl PortDialer for SandboxDialer<'_> {
    fn dial(&self, port: u16) -> Result<TcpStream, PortForwardError> {
        let sandbox = self
            .index
            .sandbox(self.sandbox_id)
            .map_err(SandboxDialError::Index)?
            .ok_or_else(|| SandboxDialError::NotFound {
                sandbox: self.sandbox_id.to_owned(),
            })?;
        if sandbox.pid <= 0 {
            return Err(SandboxDialError::NotRunning {
                sandbox: sandbox.id.clone(),
            }
            .into());
        }
        // The sandbox's first process holds the pod's network namespace
        // (for a host-network pod, the host's own).
        run_in_netns(&netns_path(sandbox.pid), || connect_loopback(port))
            .map_err(SandboxDialError::Netns)?
    }
}
