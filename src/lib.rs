//! dockshim: a Kubernetes CRI v1 runtime for the Docker Engine.
//!
//! The kubelet speaks CRI gRPC (`runtime.v1`, cri-api v0.36.3, see
//! `proto/`) to dockshim over a unix socket; dockshim drives dockerd through
//! the Docker Engine HTTP API over another unix socket.
//!
//! # Scope
//!
//! - **Served:** Version, Status, RuntimeConfig, UpdateRuntimeConfig; the pod
//!   sandbox calls (RunPodSandbox, StopPodSandbox, RemovePodSandbox,
//!   PodSandboxStatus, ListPodSandbox, StreamPodSandboxes,
//!   UpdatePodSandboxResources); the container calls CreateContainer,
//!   StartContainer, StopContainer, RemoveContainer, ListContainers,
//!   StreamContainers, ContainerStatus, UpdateContainerResources, ExecSync,
//!   ReopenContainerLog, GetContainerEvents; Exec, Attach and PortForward
//!   with their streaming server; ContainerStats, ListContainerStats,
//!   PodSandboxStats, ListPodSandboxStats and their streaming forms;
//!   ListMetricDescriptors, ListPodSandboxMetrics and its streaming form;
//!   the whole ImageService. Every other method answers `UNIMPLEMENTED` with a message saying why
//!   (the README keeps the per-method table).
//! - **Docker Engine API:** 1.41 (Docker 20.10) and newer; the version is
//!   negotiated, up to 1.55 (Docker 29).
//! - **Limits:** gRPC messages of at most 16 MiB each way (the kubelet's own
//!   limit), checked from the length prefix before anything is allocated;
//!   every Docker call bounded by `--runtime-request-timeout`; the limits of
//!   each protocol are named constants at the top of its module.
//! - **Model:** synchronous. One thread per gRPC connection drives `h2` on a
//!   small `mio` executor; handlers run on a bounded worker pool; a few
//!   named background threads (signals, dockerd's event stream, container
//!   logs and their keeper, image filesystem figures) do the rest; the
//!   streaming server has an accept thread and a thread per session. Every
//!   background thread is supervised: its death makes dockshim exit for
//!   systemd to restart it, or shows in Status. There is no async runtime.
//! - **Not goals:** TCP for the CRI or Docker (unix sockets only; the
//!   streaming server is the one TCP listener, as the kubelet requires),
//!   gRPC compression, the `v1alpha2` CRI, Windows, runtimes other than
//!   dockerd.
//!
//! Module map: `api` is the generated CRI API (messages, service traits);
//! `server` and `grpc` carry calls; `cri` holds the handlers and
//! the pure CRI ⇄ Docker translation; `docker` is the Engine API client;
//! `index` mirrors dockerd's containers; `network` runs CNI; `store` keeps
//! checkpoints; `logs` writes CRI-format log files; `streaming` is the
//! protocol library behind exec, attach and port-forward (its dockerd
//! backend is `cri::streaming`); `codec` holds the byte-level codecs
//! (base64, zlib, SHA-1, the HTTP/1.1 request head); `stats` reads cgroup
//! and `/proc` figures; `host` answers the handlers' reads of the node
//! (mounts, swap, per-process files); `metrics` counts calls for the Prometheus endpoint;
//! `supervisor` starts the background threads and keeps their deaths, and
//! `mailbox` carries their messages;
//! `pidfd` pins the processes whose `/proc` files are opened; `failpoint`
//! names the crash points the tests arm (empty unless built with the
//! `failpoints` feature); `cli` and `logger` start the process.

pub mod api;
pub mod cli;
pub mod codec;
pub mod cri;
pub mod docker;
pub mod failpoint;
pub mod grpc;
pub mod host;
pub mod index;
pub mod logger;
pub mod logs;
pub mod mailbox;
pub mod metrics;
pub mod network;
pub mod pidfd;
pub mod server;
pub mod stats;
pub mod store;
pub mod streaming;
pub mod supervisor;
