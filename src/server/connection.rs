//! One client connection: the HTTP/2 handshake, accepting streams, and
//! advancing every call on it, all as the single task its thread's
//! executor polls. [`Shared`] is what connections share with the accept
//! loop and the shutdown handles: the stop flag and the wakers of the
//! accept loop and of every live connection.
//!
//! Every poll advances the calls first and then polls h2's
//! `Connection::accept`, because all h2 socket I/O happens inside that
//! poll: data queued by the calls reaches the socket there, and frames read
//! there wake the calls they concern (which makes the executor poll again).
//! The connection sleeps until the earliest call deadline. At shutdown it
//! sends GOAWAY, ends endless streams with `UNAVAILABLE`, gives unary calls
//! until the grace period ends and then answers what is left with
//! `UNAVAILABLE`. This module never blocks and never runs handlers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::{Builder, Handshake, SendResponse};
use h2::RecvStream;
use http::Request;

use super::calls::{Call, CallEnv, Step};
use super::dispatch::Reply;
use super::executor::{Progress, Socket, Task};
use super::workers::WorkerPool;
use crate::grpc::{check_request, Method, Status};
use crate::mailbox::{self, Receiver};

/// Flow-control window per stream: a whole typical message fits, so a
/// request rarely waits for a WINDOW_UPDATE.
const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
/// Flow-control window for the whole connection.
const CONNECTION_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
/// Largest DATA frame a client may send; fewer frames per large message.
const MAX_RECEIVED_FRAME_BYTES: u32 = 64 * 1024;
/// Request headers above this size are refused; gRPC metadata is small
/// (the gRPC spec suggests 8 KiB).
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// Calls in flight on one connection; clients queue further calls.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// A client that has not completed the HTTP/2 handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the grace period, time left to flush the last answers before the
/// connection is dropped regardless.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the accept loop, the connection threads and shutdown handles share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) stopping: AtomicBool,
    pub(super) accept_waker: mio::Waker,
    /// The waker of every live connection thread, by connection id.
    pub(super) connections: Mutex<HashMap<u64, Waker>>,
}

impl Shared {
    pub(super) fn connections(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        // Only inserts and removes happen under this lock.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything a connection thread needs from the server.
#[derive(Debug)]
pub(super) struct ConnectionConfig<S: 'static> {
    pub(super) id: u64,
    pub(super) services: Arc<S>,
    pub(super) methods: &'static [Method<S>],
    pub(super) quick_methods: &'static [&'static str],
    pub(super) pool: WorkerPool,
    pub(super) shared: Arc<Shared>,
    pub(super) shutdown_grace: Duration,
}

enum Http2 {
    Handshaking {
        handshake: Handshake<Socket, Bytes>,
        deadline: Instant,
    },
    Serving(h2::server::Connection<Socket, Bytes>),
}

/// Deadlines of a connection that is shutting down.
#[derive(Debug, Clone, Copy)]
struct Drain {
    /// Calls still running then are answered `UNAVAILABLE`.
    answer_by: Instant,
    /// The connection is dropped then, flushed or not.
    close_by: Instant,
}

/// The calls of a connection and what they share.
struct Calls<S: 'static> {
    connection: u64,
    calls: HashMap<u64, Call<S>>,
    next_id: u64,
    methods: &'static [Method<S>],
    env: CallEnv<S>,
    replies: Receiver<Reply>,
}

pub(super) struct Connection<S: 'static> {
    http2: Http2,
    calls: Calls<S>,
    shared: Arc<Shared>,
    shutdown_grace: Duration,
    drain: Option<Drain>,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.calls.connection)
            .field("calls", &self.calls.calls.len())
            .field("draining", &self.drain.is_some())
            .finish()
    }
}

impl<S: Send + Sync + 'static> Connection<S> {
    pub(super) fn new(socket: Socket, waker: Waker, config: ConnectionConfig<S>) -> Connection<S> {
        let handshake = Builder::new()
            .initial_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_frame_size(MAX_RECEIVED_FRAME_BYTES)
            .max_header_list_size(MAX_HEADER_LIST_BYTES)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .handshake(socket);
        let (replies_tx, replies) = mailbox::channel();
        Connection {
            http2: Http2::Handshaking {
                handshake,
                deadline: Instant::now() + HANDSHAKE_TIMEOUT,
            },
            calls: Calls {
                connection: config.id,
                calls: HashMap::new(),
                next_id: 0,
                methods: config.methods,
                env: CallEnv {
                    services: config.services,
                    pool: config.pool,
                    quick_methods: config.quick_methods,
                    replies: replies_tx,
                    waker,
                },
                replies,
            },
            shared: config.shared,
            shutdown_grace: config.shutdown_grace,
            drain: None,
        }
    }
}

impl<S: Send + Sync + 'static> Task for Connection<S> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Progress {
        let now = Instant::now();
        let stopping = self.shared.stopping.load(Ordering::SeqCst);
        if let Http2::Handshaking {
            handshake,
            deadline,
        } = &mut self.http2
        {
            if stopping {
                return Progress::Done;
            }
            match Pin::new(handshake).poll(cx) {
                Poll::Ready(Ok(connection)) => self.http2 = Http2::Serving(connection),
                Poll::Ready(Err(err)) => {
                    log::debug!(
                        "connection {}: handshake failed: {err}",
                        self.calls.connection
                    );
                    return Progress::Done;
                }
                Poll::Pending if now >= *deadline => {
                    log::debug!("connection {}: handshake timed out", self.calls.connection);
                    return Progress::Done;
                }
                Poll::Pending => return Progress::Waiting(Some(*deadline)),
            }
        }
        let Http2::Serving(connection) = &mut self.http2 else {
            return Progress::Done;
        };
        if stopping && self.drain.is_none() {
            connection.graceful_shutdown();
            let answer_by = now + self.shutdown_grace;
            self.drain = Some(Drain {
                answer_by,
                close_by: answer_by + CLOSE_TIMEOUT,
            });
            self.calls.end_where(Call::is_streaming, now);
        }
        if let Some(drain) = self.drain {
            if now >= drain.close_by {
                log::warn!(
                    "connection {}: closing with calls unanswered",
                    self.calls.connection
                );
                return Progress::Done;
            }
            if now >= drain.answer_by {
                self.calls.end_where(|_| true, now);
            }
        }
        loop {
            self.calls.take_replies();
            self.calls.advance(cx);
            match pin!(connection.accept()).poll(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    self.calls.start(request, respond, now)
                }
                Poll::Ready(Some(Err(err))) => {
                    log::debug!("connection {}: {err}", self.calls.connection);
                    return Progress::Done;
                }
                Poll::Ready(None) => return Progress::Done,
                Poll::Pending => {
                    let drain = self.drain.map(|d| {
                        if now < d.answer_by {
                            d.answer_by
                        } else {
                            d.close_by
                        }
                    });
                    return Progress::Waiting(earliest(self.calls.next_deadline(), drain));
                }
            }
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<S: Send + Sync + 'static> Calls<S> {
    /// Checks a new stream's request head and starts its call, or answers
    /// it at once when it is refused.
    fn start(
        &mut self,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        now: Instant,
    ) {
        let (head, body) = request.into_parts();
        let accepted = match check_request(&head, self.methods) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                log::debug!(
                    "connection {}: refused {}: {}",
                    self.connection,
                    head.uri.path(),
                    refusal.status
                );
                if let Err(err) = respond.send_response(refusal.response(), true) {
                    log::debug!("connection {}: cannot refuse: {err}", self.connection);
                }
                return;
            }
        };
        let deadline = accepted
            .timeout
            .and_then(|timeout| now.checked_add(timeout));
        let id = self.next_id;
        self.next_id += 1;
        self.calls
            .insert(id, Call::new(id, accepted.method, deadline, body, respond));
    }

    fn take_replies(&mut self) {
        while let Ok(reply) = self.replies.try_recv() {
            if let Some(call) = self.calls.get_mut(&reply.call) {
                call.deliver(reply.outcome);
            }
        }
    }

    fn advance(&mut self, cx: &mut Context<'_>) {
        let env = &self.env;
        self.calls
            .retain(|_, call| call.advance(cx, env) == Step::Open);
    }

    /// Ends the chosen calls with `UNAVAILABLE` because the server stops.
    fn end_where(&mut self, mut which: impl FnMut(&Call<S>) -> bool, now: Instant) {
        self.calls.retain(|_, call| {
            !which(call)
                || call.end(Status::unavailable("server is shutting down"), now) == Step::Open
        });
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.calls.values().filter_map(Call::deadline).min()
    }
}
