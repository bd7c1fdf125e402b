//! What a handler knows about the call it serves, how a unary handler may
//! answer with a reply it encoded earlier, and how a server-streaming
//! handler sends messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Status;

/// Per-call facts handed to every handler.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The full method path, e.g. `/runtime.v1.RuntimeService/Version`.
    pub method: &'static str,
    /// When the client stops waiting (from `grpc-timeout`), if it said.
    pub deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

impl CallContext {
    pub fn new(method: &'static str, deadline: Option<Instant>) -> CallContext {
        CallContext {
            method,
            deadline,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True once the client reset the stream, the deadline passed, or the
    /// server is shutting down; long handlers should check it and give up.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Marks the call cancelled; used by the connection that owns it.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// A unary reply: a message to encode, or the encoding of one made
/// earlier. A handler asked the same question many times over can keep
/// its encoded answer while what it was built from stays the same, and
/// answer with a copy of the bytes instead of building and encoding again.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<M> {
    Message(M),
    /// The bare protobuf encoding of an `M`.
    Encoded(bytes::Bytes),
}

impl<M> From<M> for Answer<M> {
    fn from(message: M) -> Answer<M> {
        Answer::Message(message)
    }
}

/// Where a server-streaming handler puts its encoded messages.
///
/// `send` blocks while too many bytes are in flight to the client
/// (backpressure) and fails once the client has gone or the call was
/// cancelled, so the handler can stop.
pub trait MessageSink: Send {
    /// Sends one encoded protobuf message (without the 5-byte gRPC prefix).
    fn send(&mut self, message: &[u8]) -> Result<(), Status>;
}

/// A unary handler: decodes `request`, runs, and encodes its reply into
/// `reply` (the bare protobuf message; the server adds the gRPC prefix).
pub type UnaryFn<S> = fn(&S, &CallContext, &[u8], &mut bytes::BytesMut) -> Result<(), Status>;

/// The encoded reply to `request` (the bare protobuf message) if the
/// service has it at hand without waiting on anything, else `None`. It runs
/// on the connection's own thread, so it must never block: no I/O beyond a
/// local `stat`, no lock it cannot take at once.
pub type AtHandFn<S> = fn(&S, &[u8]) -> Option<bytes::Bytes>;

/// A server-streaming handler: decodes `request` and sends replies through
/// the sink until it returns.
pub type StreamFn<S> = fn(&S, &CallContext, &[u8], &mut dyn MessageSink) -> Result<(), Status>;

/// How a method is served.
#[derive(Debug)]
pub enum Handler<S: 'static> {
    Unary(UnaryFn<S>),
    /// A unary call whose reply may be at hand: the connection's thread
    /// asks the [`AtHandFn`] first, and sends the call to a worker only
    /// when it answers `None`.
    UnaryAtHand(UnaryFn<S>, AtHandFn<S>),
    ServerStreaming(StreamFn<S>),
}

/// One row of a method table: the HTTP/2 `:path` and its handler. Tables
/// are sorted by `path` so the server can binary-search them.
#[derive(Debug)]
pub struct Method<S: 'static> {
    pub path: &'static str,
    pub handler: Handler<S>,
}

/// Finds `path` in a table sorted by path.
pub fn lookup<S>(table: &'static [Method<S>], path: &str) -> Option<&'static Method<S>> {
    table
        .binary_search_by(|m| m.path.cmp(path))
        .ok()
        .map(|i| &table[i])
}
