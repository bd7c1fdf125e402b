//! The Docker Engine API client: hand-rolled, synchronous HTTP/1.1 over
//! dockerd's unix socket.
//!
//! Supported: API versions 1.41 (Docker Engine 20.10) to 1.55, negotiated
//! once from `GET /_ping`; buffered calls with JSON bodies on a small pool
//! of keep-alive connections; newline-delimited JSON streams (`/events`,
//! pull progress); hijacked exec/attach sessions and their 8-byte stream
//! multiplexing. Every call has a deadline; every size read off the wire is
//! checked against a named limit before it is trusted.
//!
//! Not supported, on purpose: TCP or TLS endpoints, proxies, redirects,
//! content codings (gzip), HTTP/2, request bodies that are streamed rather
//! than buffered. This module owns every endpoint the rest of dockshim
//! calls, as typed methods of [`DockerApi`] and [`DockerClient`]; when a
//! call is made and what its answer means to the kubelet belongs to `cri`.
//! `vendor-docs/docker-engine-api.md` describes every endpoint and field used.

mod api;
mod api_version;
mod client;
mod connection;
mod containers;
mod create;
mod engine;
mod error;
mod exec;
#[cfg(test)]
pub mod fake;
mod hijack;
mod images;
mod logs;
mod request;
mod response;
mod stream;
mod types;

pub use api::{CreateOutcome, DockerApi, EventStream, PullStream, Removed, Stopped};
pub use api_version::{ApiVersion, MAX_API_VERSION, MIN_API_VERSION};
pub use client::{DockerClient, DEFAULT_REQUEST_TIMEOUT};
pub use containers::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerSummary, EndpointSettings,
    HostConfig, MountPoint, NetworkSettings,
};
pub use create::{
    BindOptions, ContainerCreate, CreateHostConfig, Created, DeviceMapping, DeviceRequest,
    HealthConfig, ImageOptions, Mount, MountType, Resources, RestartPolicy, Updated,
    HEALTHCHECK_NONE, RESTART_POLICY_NO,
};
pub use engine::{Engine, EngineRuntime, ImageStore, StorageDirs};
pub use error::DockerError;
pub use exec::{ExecCreate, ExecInspect, ExecStart};
pub use hijack::{
    demux_copy, Demux, FeedError, Hijacked, Output, OutputDemux, Piece, StdStream, MAX_FRAME_SIZE,
};
pub use images::{HistoryItem, ImageConfig, ImageInspect, ImageSummary, RootFs};
pub use logs::{LogRead, LogStream, LogsSince};
pub use request::path_with_query;
pub use response::{Headers, Response, MAX_BUFFERED_BODY};
// The parser itself, for the fuzz targets in fuzz/; not part of the API.
#[doc(hidden)]
pub use response::{Progress, ResponseParser};
pub use stream::{JsonStream, MAX_STREAM_MESSAGE};
pub use types::{Actor, ErrorDetail, Event, Info, PullProgress, Runtime, Version};
