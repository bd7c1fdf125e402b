//! The streaming server behind Exec, Attach and PortForward: the wire
//! protocols the kubelet and the API server speak to it, SPDY/3.1
//! (`spdy`, with the header compression of `zlib`) and WebSocket
//! (`websocket`, with the handshake digest of `sha1`), and the Kubernetes
//! channel framing carried over WebSocket (`channel`).
//!
//! These modules are codecs over byte streams: they own framing, limits
//! and protocol state, and must not know about dockerd or the CRI.

pub mod channel;
pub mod sha1;
pub mod spdy;
pub mod websocket;
pub mod zlib;
