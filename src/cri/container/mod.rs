//! Application containers: the pure translation between CRI container
//! messages and Docker — the create body (`translate`), resources and the
//! update body (`resources`), mounts and devices (`mounts`), CDI devices
//! (`cdi`) and the CRI status of an indexed container (`status`) — and the
//! handlers that use it (`service`, `create`, `lifecycle`, `list`,
//! `update`, and the `keeper` thread that keeps log files followed).
//!
//! Only the handlers perform I/O or keep state; the pure modules are handed
//! what the handlers learned from dockerd, the state index and the node
//! through small traits. Every refusal of a setting is a
//! [`ContainerConfigError`] that names the offending field and maps itself
//! to a gRPC code, so no setting the kubelet sends is dropped unnoticed.

pub mod cdi;
mod create;
mod error;
mod image_names;
mod keeper;
mod lifecycle;
mod list;
pub mod mounts;
pub mod resources;
mod service;
pub mod status;
pub mod translate;
mod update;

pub use error::{ContainerConfigError, ContainerError};
pub use keeper::{LogKeeper, KEEPER_THREAD_NAME};
pub use mounts::{HostMounts, HostPropagation};
pub use resources::update_resources_body;
pub use service::ContainerService;
pub use status::{container_status, StatusImage};
pub use translate::{container_create_body, ContainerOptions};
