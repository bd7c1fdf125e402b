//! Application containers: the pure translation between CRI container
//! messages and Docker — the create body (`translate`), resources and the
//! update body (`resources`), mounts and devices (`mounts`) and the CRI
//! status of an indexed container (`status`).
//!
//! Nothing here performs I/O or keeps state; the handlers that talk to
//! dockerd and the state index call these functions and hand in what they
//! learned from the node through small traits. Every refusal of a setting
//! is a [`ContainerConfigError`] that names the offending field and maps
//! itself to a gRPC code, so no setting the kubelet sends is dropped
//! unnoticed.

mod error;
pub mod mounts;
pub mod resources;
pub mod status;
pub mod translate;

pub use error::ContainerConfigError;
pub use mounts::{HostMounts, HostPropagation};
pub use resources::{update_resources_body, ContainerUpdate};
pub use status::{container_status, StatusImage};
pub use translate::{container_create_body, ContainerOptions};
