//! Pod networking. For now: finding the CNI network configuration that
//! decides whether the node's network is ready. Running the plugins comes
//! with pod sandboxes.

pub mod cni_config;

pub use cni_config::{CniConfigError, CniNetwork, CniPlugin};
