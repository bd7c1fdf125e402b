//! One gRPC call on a connection, from its request headers to its
//! trailers: reading and checking the request message, handing it to a
//! worker, and sending back what the worker produces.
//!
//! Each call is advanced by its connection thread whenever the connection
//! is polled. It watches the client's RST_STREAM (the call is cancelled and
//! any late reply dropped) and its deadline (the client gets
//! `DEADLINE_EXCEEDED` at once, the handler sees `is_cancelled`). Streamed
//! replies are sent only as h2 grants flow-control capacity, in DATA frames
//! of at most [`MAX_DATA_FRAME_BYTES`] that may hold many small messages.
//! A stream ended early (deadline, shutdown) first finishes the message it
//! is in the middle of, so the client never sees a cut message before the
//! trailers; if that takes longer than [`FLUSH_TIMEOUT`] the stream is
//! reset with CANCEL, as the gRPC protocol asks for an incomplete payload.
//! A call never blocks and never runs a handler itself.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};

use super::dispatch::{
    at_hand_reply, stream_job, unary_job, Outbox, Reply, Responder, StreamProducer,
};
use super::workers::{Lane, WorkerPool};
use crate::grpc::{
    response_headers, trailers, trailers_only, CallContext, Handler, Method, Status, UnaryRequest,
};
use crate::mailbox::Sender;

/// Largest DATA frame a streamed reply is cut into: the HTTP/2 default
/// frame size, which every peer accepts. Small messages are coalesced up to
/// it, since many tiny frames make some h2 clients close the connection
/// with ENHANCE_YOUR_CALM.
const MAX_DATA_FRAME_BYTES: usize = 16 * 1024;

/// How long an ended stream may take to finish its partly sent message.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A streamed reply holding fewer bytes than this waits up to
/// [`COALESCE_LINGER`] for more before it goes out, so a handler sending
/// many tiny messages one by one still produces frames well above the
/// 256-byte size below which h2 clients count a frame against their
/// small-frame budget.
const MIN_COALESCED_FRAME_BYTES: usize = 1024;

/// The longest a small streamed reply is held back for company: short next
/// to the kubelet's event handling, long next to a handler's send loop.
const COALESCE_LINGER: Duration = Duration::from_millis(1);

/// What every call on a connection shares.
#[derive(Debug)]
pub(super) struct CallEnv<S> {
    pub(super) services: Arc<S>,
    pub(super) pool: WorkerPool,
    /// Paths of the unary methods that run in the quick lane.
    pub(super) quick_methods: &'static [&'static str],
    pub(super) replies: Sender<Reply>,
    pub(super) waker: Waker,
}

/// Whether a call still needs its connection after being advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Open,
    Over,
}

/// The response side of the stream.
enum Respond {
    /// Nothing sent yet: an error can still go out Trailers-Only.
    Head(SendResponse<Bytes>),
    /// Response headers sent; messages and trailers follow.
    Body(SendStream<Bytes>),
}

/// A streaming call that was ended while a message was partly sent: the
/// status goes out once the message is complete.
struct Closing {
    status: Status,
    give_up_at: Instant,
}

enum Phase {
    /// Reading the one request message.
    Receiving {
        body: RecvStream,
        request: UnaryRequest,
    },
    /// A worker runs the unary handler; `reply` holds its answer once it
    /// has arrived.
    Running {
        reply: Option<Result<Bytes, Status>>,
    },
    /// A worker runs the streaming handler, filling the outbox.
    Streaming { outbox: Arc<Outbox> },
}

pub(super) struct Call<S: 'static> {
    id: u64,
    method: &'static Method<S>,
    context: CallContext,
    /// `None` once the call has been answered.
    respond: Option<Respond>,
    phase: Phase,
    closing: Option<Closing>,
    /// When small streamed bytes stop waiting for more (see
    /// [`MIN_COALESCED_FRAME_BYTES`]).
    linger_until: Option<Instant>,
}

impl<S> std::fmt::Debug for Call<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("method", &self.method.path)
            .finish()
    }
}

impl<S: Send + Sync + 'static> Call<S> {
    pub(super) fn new(
        id: u64,
        method: &'static Method<S>,
        deadline: Option<Instant>,
        body: RecvStream,
        respond: SendResponse<Bytes>,
    ) -> Call<S> {
        Call {
            id,
            method,
            context: CallContext::new(method.path, deadline),
            respond: Some(Respond::Head(respond)),
            phase: Phase::Receiving {
                body,
                request: UnaryRequest::new(),
            },
            closing: None,
            linger_until: None,
        }
    }

    /// When the call next needs attention without any event.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let own = match &self.closing {
            Some(closing) => Some(closing.give_up_at),
            None => self.context.deadline,
        };
        match (own, self.linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn is_streaming(&self) -> bool {
        matches!(self.phase, Phase::Streaming { .. })
    }

    /// Hands the worker's unary answer to the call; an answer for a call
    /// that is no longer waiting is dropped.
    pub(super) fn deliver(&mut self, outcome: Result<Bytes, Status>) {
        if let Phase::Running { reply } = &mut self.phase {
            *reply = Some(outcome);
        }
    }

    /// Does whatever can be done now without blocking.
    pub(super) fn advance(&mut self, cx: &mut Context<'_>, env: &CallEnv<S>) -> Step {
        // Read here, after any reply was delivered: a handler that gave up
        // because its deadline passed has replied at or after `deadline`,
        // so this clock reading sees the deadline as passed too.
        let now = Instant::now();
        if let Some(closing) = &self.closing {
            if now >= closing.give_up_at {
                log::debug!(
                    "{} (call {}): reset after {FLUSH_TIMEOUT:?} unflushed",
                    self.method.path,
                    self.id
                );
                if let Some(Respond::Body(stream)) = &mut self.respond {
                    stream.send_reset(Reason::CANCEL);
                }
                return Step::Over;
            }
        } else if self
            .context
            .deadline
            .is_some_and(|deadline| now >= deadline)
        {
            return self.end(Status::deadline_exceeded("deadline exceeded"), now);
        }
        // After the deadline check on purpose: once the deadline has passed,
        // the client gets DEADLINE_EXCEEDED even if a reply raced it here.
        if let Phase::Running { reply } = &mut self.phase {
            if let Some(outcome) = reply.take() {
                self.finish(outcome.map(Some));
                return Step::Over;
            }
        }
        match &self.phase {
            Phase::Receiving { .. } => self.receive(cx, env, now),
            Phase::Running { .. } => self.watch_reset(cx),
            Phase::Streaming { outbox } => {
                let outbox = Arc::clone(outbox);
                self.stream(cx, &outbox)
            }
        }
    }

    /// Answers the call with `status`, whatever it was doing, and cancels
    /// its handler. A stream in the middle of a message stays open until
    /// the message is out.
    pub(super) fn end(&mut self, status: Status, now: Instant) -> Step {
        if self.closing.is_some() {
            return Step::Open;
        }
        self.context.cancel();
        if let Phase::Streaming { outbox } = &self.phase {
            outbox.close(&status);
            if outbox.pending_len() > 0 {
                self.closing = Some(Closing {
                    status,
                    give_up_at: now + FLUSH_TIMEOUT,
                });
                return Step::Open;
            }
        }
        self.finish(Err(status));
        Step::Over
    }

    fn receive(&mut self, cx: &mut Context<'_>, env: &CallEnv<S>, now: Instant) -> Step {
        let Phase::Receiving { body, request } = &mut self.phase else {
            return Step::Open;
        };
        loop {
            match body.poll_data(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // Give the window back at once: the message is limited by
                    // `MAX_MESSAGE_BYTES`, not by flow control.
                    let _ = body.flow_control().release_capacity(chunk.len());
                    if let Err(status) = request.push(chunk) {
                        return self.end(status, now);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    log::debug!(
                        "{} (call {}): request stream failed: {err}",
                        self.method.path,
                        self.id
                    );
                    self.context.cancel();
                    return Step::Over;
                }
                Poll::Ready(None) => {
                    let request = std::mem::take(request);
                    return match request.finish() {
                        Ok(message) => self.dispatch(message, cx, env, now),
                        Err(status) => self.end(status, now),
                    };
                }
                Poll::Pending => return Step::Open,
            }
        }
    }

    fn dispatch(
        &mut self,
        message: Bytes,
        cx: &mut Context<'_>,
        env: &CallEnv<S>,
        now: Instant,
    ) -> Step {
        if let Handler::UnaryAtHand(_, at_hand) = self.method.handler {
            if let Some(reply) =
                at_hand_reply(self.method.path, at_hand, env.services.as_ref(), &message)
            {
                self.finish(reply.map(Some));
                return Step::Over;
            }
        }
        let services = Arc::clone(&env.services);
        let context = self.context.clone();
        let job = match self.method.handler {
            Handler::Unary(handler) | Handler::UnaryAtHand(handler, _) => {
                let responder = Responder::new(self.id, env.replies.clone(), env.waker.clone());
                self.phase = Phase::Running { reply: None };
                unary_job(services, handler, context, message, responder)
            }
            Handler::ServerStreaming(handler) => {
                let outbox = Outbox::new();
                let producer = StreamProducer::new(Arc::clone(&outbox), env.waker.clone());
                self.phase = Phase::Streaming { outbox };
                stream_job(services, handler, context, message, producer)
            }
        };
        let lane = lane(self.method, env.quick_methods);
        if let Err((job, err)) = env.pool.submit(lane, job) {
            log::error!("cannot start a worker thread: {err}");
            drop(job);
            return self.end(
                Status::unavailable(format!("no worker thread available: {err}")),
                now,
            );
        }
        // Nothing to send yet, but a reset must be noticed from now on.
        self.watch_reset(cx)
    }

    /// Polls for the client's RST_STREAM; the call is over once it came.
    fn watch_reset(&mut self, cx: &mut Context<'_>) -> Step {
        let reset = match &mut self.respond {
            Some(Respond::Head(respond)) => respond.poll_reset(cx),
            Some(Respond::Body(stream)) => stream.poll_reset(cx),
            None => return Step::Over,
        };
        match reset {
            Poll::Ready(Ok(reason)) => {
                log::debug!(
                    "{} (call {}): client reset the stream: {reason}",
                    self.method.path,
                    self.id
                );
                Step::Over
            }
            Poll::Ready(Err(err)) => {
                log::debug!(
                    "{} (call {}): stream failed: {err}",
                    self.method.path,
                    self.id
                );
                Step::Over
            }
            Poll::Pending => Step::Open,
        }
    }

    /// Moves waiting streamed bytes into h2 as flow control allows, and
    /// sends the trailers once the handler has ended and everything before
    /// them is out.
    fn stream(&mut self, cx: &mut Context<'_>, outbox: &Outbox) -> Step {
        loop {
            if self.watch_reset(cx) == Step::Over {
                return Step::Over;
            }
            let pending = outbox.pending_len();
            if pending == 0 {
                if let Some(closing) = self.closing.take() {
                    self.finish(Err(closing.status));
                    return Step::Over;
                }
                return match outbox.take_end() {
                    Some(outcome) => {
                        self.finish(outcome.map(|()| None));
                        Step::Over
                    }
                    None => Step::Open,
                };
            }
            if pending < MIN_COALESCED_FRAME_BYTES && self.closing.is_none() && !outbox.is_ending()
            {
                let now = Instant::now();
                let until = *self.linger_until.get_or_insert(now + COALESCE_LINGER);
                if now < until {
                    return Step::Open;
                }
            }
            self.linger_until = None;
            let Some(stream) = self.body_stream() else {
                return Step::Over;
            };
            stream.reserve_capacity(pending.min(MAX_DATA_FRAME_BYTES));
            let capacity = stream.capacity();
            if capacity == 0 {
                match stream.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Step::Over,
                    Poll::Pending => return Step::Open,
                }
            }
            let chunk = outbox.take(capacity.min(MAX_DATA_FRAME_BYTES));
            if let Err(err) = stream.send_data(chunk, false) {
                log::debug!(
                    "{} (call {}): cannot send: {err}",
                    self.method.path,
                    self.id
                );
                return Step::Over;
            }
        }
    }

    /// The stream to send messages on, sending the response headers first
    /// if they have not gone out yet.
    fn body_stream(&mut self) -> Option<&mut SendStream<Bytes>> {
        if let Some(Respond::Head(respond)) = &mut self.respond {
            match respond.send_response(response_headers(), false) {
                Ok(stream) => self.respond = Some(Respond::Body(stream)),
                Err(err) => {
                    log::debug!(
                        "{} (call {}): cannot respond: {err}",
                        self.method.path,
                        self.id
                    );
                    self.respond = None;
                }
            }
        }
        match &mut self.respond {
            Some(Respond::Body(stream)) => Some(stream),
            _ => None,
        }
    }

    /// Sends the end of the response: an optional last message and the
    /// status. An error before any message goes out Trailers-Only.
    fn finish(&mut self, outcome: Result<Option<Bytes>, Status>) {
        let sent = match outcome {
            Err(status) => {
                log::debug!("{} (call {}): {status}", self.method.path, self.id);
                match self.respond.take() {
                    Some(Respond::Head(mut respond)) => respond
                        .send_response(trailers_only(&status), true)
                        .map(drop),
                    Some(Respond::Body(mut stream)) => stream.send_trailers(trailers(Err(&status))),
                    None => Ok(()),
                }
            }
            Ok(message) => {
                let Some(stream) = self.body_stream() else {
                    return;
                };
                let sent = match message {
                    Some(message) => stream.send_data(message, false),
                    None => Ok(()),
                };
                let sent = sent.and_then(|()| stream.send_trailers(trailers(Ok(()))));
                self.respond = None;
                sent
            }
        };
        if let Err(err) = sent {
            log::debug!(
                "{} (call {}): cannot send the response: {err}",
                self.method.path,
                self.id
            );
        }
    }
}

/// The worker lane a call of `method` runs in. A streaming call lasts as
/// long as its client listens, so it never takes a reserved worker, even
/// when listed.
fn lane<S>(method: &Method<S>, quick_methods: &[&str]) -> Lane {
    match method.handler {
        Handler::Unary(_) | Handler::UnaryAtHand(..) if quick_methods.contains(&method.path) => {
            Lane::Quick
        }
        Handler::Unary(_) | Handler::UnaryAtHand(..) | Handler::ServerStreaming(_) => Lane::Regular,
    }
}

impl<S: 'static> Drop for Call<S> {
    /// However the call ends, its handler learns that nobody waits for it
    /// any more, and a blocked streaming producer is released.
    fn drop(&mut self) {
        self.context.cancel();
        if let Phase::Streaming { outbox } = &self.phase {
            outbox.close(&Status::cancelled("the call is over"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::grpc::MessageSink;

    struct Services;

    fn unary(_: &Services, _: &CallContext, _: &[u8], _: &mut BytesMut) -> Result<(), Status> {
        Ok(())
    }

    fn streaming(
        _: &Services,
        _: &CallContext,
        _: &[u8],
        _: &mut dyn MessageSink,
    ) -> Result<(), Status> {
        Ok(())
    }

    static STATUS: Method<Services> = Method {
        path: "/test.Service/Status",
        handler: Handler::Unary(unary),
    };
    static EXEC: Method<Services> = Method {
        path: "/test.Service/Exec",
        handler: Handler::Unary(unary),
    };
    static EVENTS: Method<Services> = Method {
        path: "/test.Service/Events",
        handler: Handler::ServerStreaming(streaming),
    };
    const QUICK: &[&str] = &["/test.Service/Status", "/test.Service/Events"];

    #[test]
    fn a_listed_unary_method_runs_in_the_quick_lane() {
        assert_eq!(lane(&STATUS, QUICK), Lane::Quick);
    }

    #[test]
    fn an_unlisted_method_runs_in_the_regular_lane() {
        assert_eq!(lane(&EXEC, QUICK), Lane::Regular);
    }

    #[test]
    fn a_streaming_method_never_runs_in_the_quick_lane() {
        assert_eq!(lane(&EVENTS, QUICK), Lane::Regular);
    }
}
