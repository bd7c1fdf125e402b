//! Pod networking: finding the CNI network configuration (which also
//! decides whether the node's network is ready), the built-in default
//! network served when there is none, running the CNI plugins,
//! entering a pod's network namespace on a throwaway thread, the few
//! netlink messages dockshim needs, and the hairpin setting of a pod's
//! host-side veth.

pub mod cni;
pub mod cni_config;
pub mod default_network;
mod error;
pub mod hairpin;
pub mod netlink;
pub mod netns;

pub use cni::{CniError, CniRunner, PodAttachment, PodIps, RuntimeArgs};
pub use cni_config::{CniNetwork, CniPlugin, NetworkOrigin};
pub use default_network::NetworkSource;
pub use error::{CniConfigError, HairpinError, NetlinkError, NetnsError};
pub use hairpin::Hairpin;
pub use netns::run_in_netns;

/// `--network-plugin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPlugin {
    /// Pods get their network from CNI plugins.
    Cni,
    /// Host-network pods only: NetworkReady is always true and other pods
    /// are refused.
    None,
}

impl NetworkPlugin {
    /// The flag value that selects this plugin.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPlugin::Cni => "cni",
            NetworkPlugin::None => "none",
        }
    }
}
