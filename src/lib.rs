//! dockshim: a Kubernetes CRI v1 runtime for the Docker Engine.

pub mod grpc;
