//! The CRI side of dockshim: the generated API (`gen`) and the handlers
//! that implement it on top of `docker`, `network` and `store`.
//!
//! Handlers translate and decide; they own no sockets and start no threads
//! of their own.

pub mod gen;
pub mod image;
pub mod runtime;

pub use gen::v1;
