//! The CRI side of dockshim: the generated API (`gen`) and the handlers
//! that implement it on top of `docker`, `network` and `store`.
//!
//! Handlers translate and decide; they own no sockets. A handler that needs
//! background work (such as the image filesystem figures) starts its thread
//! on first use, never at construction, so every thread is started after
//! `main` has reserved SIGTERM and SIGINT for the signal thread.

pub mod container;
pub mod events;
pub mod exec;
pub mod gen;
pub mod image;
pub mod labels;
pub mod metrics;
pub mod naming;
pub mod runtime;
pub mod sandbox;
pub mod stats;
pub mod streaming;

pub use gen::v1;
