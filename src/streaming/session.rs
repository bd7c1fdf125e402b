//! The seam between the streaming HTTP server and the sessions it starts:
//! what a one-time token stands for ([`StreamRequest`]), what the server
//! hands over once it has read a request for a valid token ([`Handoff`]),
//! and who takes it ([`Sessions`]).
//!
//! The server owns listening, HTTP parsing, tokens and threads; a session
//! owns the protocol upgrade (SPDY or WebSocket, and which subprotocol),
//! everything after it, and the HTTP refusal when no upgrade fits. Neither
//! side reaches into the other.

use std::net::TcpStream;
use std::time::Duration;

use crate::codec::http_head::RequestHead;

/// What a streaming URL's token stands for, as the RPC that issued it
/// validated it: sessions act on exactly this, never on the CRI request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    Exec(Exec),
    Attach(Attach),
    PortForward(PortForward),
}

/// A command to run in a container, and the streams its client wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exec {
    /// The container's full ID.
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A running container's main process to attach to, and the streams its
/// client wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attach {
    /// The container's full ID.
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The pod whose ports a client forwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortForward {
    /// The sandbox's full ID.
    pub pod_sandbox_id: String,
    /// The ports the client may forward; empty: any port a SPDY stream
    /// names.
    pub ports: Vec<u16>,
}

/// An HTTP request for a valid token, and the connection it came on.
#[derive(Debug)]
pub struct Handoff {
    /// `GET` or `POST`, as the server accepted it.
    pub method: String,
    /// The request path without its query.
    pub path: String,
    /// The query's pairs, percent-decoded, in order, repeats kept.
    pub query: Vec<(String, String)>,
    /// The request's headers, names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The client's connection, blocking, with no timeouts set.
    pub conn: TcpStream,
    /// Bytes the server read past the request head: a client may send its
    /// first frames right behind the request.
    pub leftover: Vec<u8>,
    /// `--streaming-connection-idle-timeout`: a session that carries no
    /// data for this long ends. `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Handoff {
    /// The handoff of a request head `crate::codec::http_head::read_request` read from
    /// `conn`, with the bytes it read past the head.
    pub fn new(
        head: RequestHead,
        conn: TcpStream,
        leftover: Vec<u8>,
        idle_timeout: Option<Duration>,
    ) -> Handoff {
        Handoff {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            conn,
            leftover,
            idle_timeout,
        }
    }
}

/// Runs sessions. `serve` is called on the connection's own thread and
/// returns when the session is over; it answers the upgrade or refuses it
/// with an HTTP error itself.
pub trait Sessions: Send + Sync + 'static {
    fn serve(&self, request: StreamRequest, handoff: Handoff);
}
