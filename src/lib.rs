//! dockshim: a Kubernetes CRI v1 runtime for the Docker Engine.

pub mod base64;
pub mod cli;
pub mod cri;
pub mod docker;
pub mod grpc;
pub mod index;
pub mod logger;
pub mod logs;
pub mod network;
pub mod server;
pub mod store;
