//! The streaming server behind Exec, Attach and PortForward.
//!
//! - `server` listens on `--streaming-bind-addr`, reads HTTP/1.1 requests
//!   (`http`), redeems the one-time tokens the RPCs issued (`tokens`) and
//!   hands each connection to a session (`session` is that seam).
//! - `docker_sessions` runs exec, attach and port-forward sessions on
//!   dockerd.
//! - `remote_command` presents an exec or attach client's streams (stdin,
//!   stdout, stderr, terminal sizes, the final status) the same way over
//!   either transport.
//! - `port_forward` runs a port-forward client's connections (SPDY stream
//!   pairs or WebSocket channels), each dialled inside the pod's network
//!   namespace and copied both ways.
//! - `spdy_session` and `ws_session` run a SPDY or WebSocket connection
//!   after the upgrade: a reader thread routing client streams into pipes,
//!   a shared writer; `session_io` holds the pipes, the idle timeout and
//!   the hang-up signal they share.
//! - The wire protocols are codecs over byte streams: SPDY/3.1 (`spdy`,
//!   with the header compression of `zlib`), WebSocket (`websocket`, with
//!   the handshake digest of `sha1`) and the Kubernetes channel framing
//!   carried over WebSocket (`channel`). They own framing, limits and
//!   protocol state, and must not know about dockerd or the CRI.

pub mod channel;
pub mod docker_sessions;
pub mod http;
pub mod port_forward;
pub mod remote_command;
pub mod server;
pub mod session;
pub mod session_io;
pub mod sha1;
pub mod spdy;
pub mod spdy_session;
pub mod tokens;
pub mod websocket;
pub mod ws_session;
pub mod zlib;
