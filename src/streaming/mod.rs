//! The streaming protocols behind Exec, Attach and PortForward, as a
//! library: it serves the URLs the RPCs issue and runs the Kubernetes
//! protocols on them, and leaves what a session does to a backend.
//!
//! - `server` listens on `--streaming-bind-addr`, reads HTTP/1.1 requests
//!   (`crate::codec::http_head`), redeems the one-time tokens the RPCs
//!   issued (`tokens`) and hands each connection to a session; `session`
//!   is that seam: the request a token stands for ([`session::StreamRequest`],
//!   this library's own type) and the [`session::Sessions`] backend.
//! - `remote_command` presents an exec or attach client's streams (stdin,
//!   stdout, stderr, terminal sizes, the final status) the same way over
//!   either transport.
//! - `port_forward` runs a port-forward client's connections (SPDY stream
//!   pairs or WebSocket channels), each dialled by the backend's
//!   [`port_forward::PortDialer`] and copied both ways.
//! - `spdy_session` and `ws_session` run a SPDY or WebSocket connection
//!   after the upgrade: a reader thread routing client streams into pipes,
//!   a shared writer; `session_io` holds the pipes, the idle timeout and
//!   the hang-up signal they share.
//! - The wire protocols are codecs over byte streams: SPDY/3.1 (`spdy`,
//!   with the header compression of `crate::codec::zlib`), WebSocket
//!   (`websocket`, with the handshake digest of `crate::codec::sha1`) and
//!   the Kubernetes channel framing carried over WebSocket (`channel`).
//!
//! Each error speaks its own wire form: an HTTP status before the upgrade,
//! a RST_STREAM or GOAWAY status on SPDY, a close code on WebSocket, the
//! Kubernetes status on the error stream; `error` holds them all. This
//! library uses `std`, `log`, `serde`, the codecs and the supervisor only;
//! it must not know about dockerd, the CRI, the state index or network
//! namespaces (the backend in `crate::cri::streaming` does).

pub mod channel;
mod error;
pub mod port_forward;
pub mod remote_command;
pub mod server;
pub mod session;
pub mod session_io;
pub mod spdy;
pub mod spdy_session;
pub mod tokens;
pub mod websocket;
pub mod ws_session;

pub use error::{
    ChannelError, PortForwardError, RemoteCommandError, SpdyError, SpdySessionError,
    StreamingError, TokenError, WebSocketError, WsSessionError,
};
