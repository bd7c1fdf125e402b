//! The port-forward dialer on dockerd: a connection to a port on a pod's
//! loopback interface, made inside the sandbox's network namespace.
//!
//! The sandbox is looked up in the state index at every dial, so a sandbox
//! stopped during a session refuses later connections. The socket is
//! created on a throwaway thread inside the namespace (a connected socket
//! keeps its namespace; the session's threads never change theirs). The
//! port-forward protocol itself is `crate::streaming::port_forward`'s.

use std::net::TcpStream;

use super::SandboxDialError;
use crate::host::netns_path;
use crate::index::Index;
use crate::network::run_in_netns;
use crate::streaming::port_forward::{connect_loopback, PortDialer};
use crate::streaming::PortForwardError;

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
