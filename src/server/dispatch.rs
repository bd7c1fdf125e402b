//! Running a handler on a worker thread and getting its answer back to the
//! connection thread that owns the call, or taking a reply the service has
//! at hand on the connection thread itself.
//!
//! A unary reply travels as one framed message through the connection's
//! reply channel, followed by a wake. A server-streaming handler writes
//! framed messages into the call's [`Outbox`], which the connection drains
//! as HTTP/2 flow control allows; `send` blocks while more than
//! [`MAX_BUFFERED_STREAM_BYTES`] wait there, so a client that stops reading
//! stops the producer instead of growing memory. A handler that panics is
//! caught and answers `INTERNAL`; a job dropped without answering (its drop
//! guard fires) answers `INTERNAL` too, so no call ever waits forever. This
//! module never touches h2.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::workers::Job;
use crate::grpc::{
    message_prefix, put_message, AtHandFn, CallContext, Code, MessageSink, Status, StreamFn,
    UnaryFn, PREFIX_BYTES,
};
use crate::mailbox::Sender;
use crate::metrics;

/// Bytes a streaming handler may have waiting in its outbox before `send`
/// blocks.
pub(super) const MAX_BUFFERED_STREAM_BYTES: usize = 64 * 1024;

/// A worker's reply buffer is dropped instead of reused after a reply
/// bigger than this, so one huge reply does not pin its memory for good.
const MAX_RETAINED_REPLY_BYTES: usize = 1024 * 1024;

/// The answer to a unary call: the framed reply message, or the status.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) call: u64,
    pub(super) outcome: Result<Bytes, Status>,
}

/// The way back to the connection for one unary call. Dropping it without
/// answering answers `INTERNAL`.
#[derive(Debug)]
pub(super) struct Responder {
    call: u64,
    replies: Sender<Reply>,
    waker: Waker,
    answered: bool,
}

impl Responder {
    pub(super) fn new(call: u64, replies: Sender<Reply>, waker: Waker) -> Responder {
        Responder {
            call,
            replies,
            waker,
            answered: false,
        }
    }

    fn answer(mut self, outcome: Result<Bytes, Status>) {
        self.answered = true;
        self.send(outcome);
    }

    fn send(&self, outcome: Result<Bytes, Status>) {
        // A closed channel means the connection is gone and nobody waits
        // for this answer any more.
        if self
            .replies
            .send(Reply {
                call: self.call,
                outcome,
            })
            .is_ok()
        {
            self.waker.wake_by_ref();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.send(Err(Status::internal("handler ended without a reply")));
        }
    }
}

/// The job that runs a unary handler and answers through `responder`.
pub(super) fn unary_job<S: Send + Sync + 'static>(
    services: Arc<S>,
    handler: UnaryFn<S>,
    context: CallContext,
    request: Bytes,
    responder: Responder,
) -> Job {
    Box::new(move |buffer: &mut BytesMut| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            encode_reply(buffer, |body| handler(&services, &context, &request, body))
        }))
        .unwrap_or_else(|panic| Err(panic_status(context.method, panic.as_ref())));
        record(context.method, outcome.as_ref().err(), started);
        responder.answer(outcome);
    })
}

/// The framed reply `at_hand` has for `request`, or `None` when the call
/// must go to a worker. Runs on the connection thread; a panic answers the
/// call `INTERNAL` as it would on a worker, and the call is counted as
/// there.
pub(super) fn at_hand_reply<S>(
    method: &str,
    at_hand: AtHandFn<S>,
    services: &S,
    request: &[u8],
) -> Option<Result<Bytes, Status>> {
    let started = Instant::now();
    let outcome = match catch_unwind(AssertUnwindSafe(|| at_hand(services, request))) {
        Ok(None) => return None,
        Ok(Some(body)) => {
            let mut framed = BytesMut::new();
            put_message(&mut framed, &body).map(|()| framed.freeze())
        }
        Err(panic) => Err(panic_status(method, panic.as_ref())),
    };
    record(method, outcome.as_ref().err(), started);
    Some(outcome)
}

/// Lets `encode` write the reply body into `buffer` right after room for
/// the 5-byte prefix, then fills the prefix in: no copy when the body fits
/// the buffer's spare capacity.
fn encode_reply(
    buffer: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), Status>,
) -> Result<Bytes, Status> {
    buffer.clear();
    buffer.put_bytes(0, PREFIX_BYTES);
    let mut body = buffer.split_off(PREFIX_BYTES);
    let encoded = encode(&mut body);
    let len = body.len();
    buffer.unsplit(body);
    encoded?;
    buffer[..PREFIX_BYTES].copy_from_slice(&message_prefix(len)?);
    let reply = buffer.split().freeze();
    if reply.len() > MAX_RETAINED_REPLY_BYTES {
        *buffer = BytesMut::new();
    }
    Ok(reply)
}

fn panic_status(method: &str, panic: &(dyn Any + Send)) -> Status {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    log::error!("{method}: handler panicked: {message}");
    Status::internal(format!("handler panicked: {message}"))
}

/// The job that runs a server-streaming handler; its messages and its end
/// go through `producer`'s outbox.
pub(super) fn stream_job<S: Send + Sync + 'static>(
    services: Arc<S>,
    handler: StreamFn<S>,
    context: CallContext,
    request: Bytes,
    mut producer: StreamProducer,
) -> Job {
    Box::new(move |_: &mut BytesMut| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            handler(&services, &context, &request, &mut producer)
        }))
        .unwrap_or_else(|panic| Err(panic_status(context.method, panic.as_ref())));
        record(context.method, outcome.as_ref().err(), started);
        producer.finish(outcome);
    })
}

/// The handler's outcome is known only here, on the worker or in
/// [`at_hand_reply`], so this is where calls are counted. The registry is process-wide rather than an
/// option of the server: the server stays generic over its services and
/// every test server records nothing unless a registry is installed.
fn record(method: &str, error: Option<&Status>, started: Instant) {
    let code = error.map_or(Code::Ok, |status| status.code);
    metrics::record_grpc(method, code, started.elapsed());
}

/// Framed messages of one streaming call on their way from the handler to
/// the connection.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    state: Mutex<OutboxState>,
    drained: Condvar,
}

#[derive(Debug, Default)]
struct OutboxState {
    /// Framed messages the connection has not taken yet.
    pending: BytesMut,
    /// How the handler ended; sent once `pending` is empty.
    end: Option<Result<(), Status>>,
    /// Set by the connection when the call is over for any reason; the
    /// producer's `send` fails from then on.
    closed: Option<Status>,
    /// Bytes at the front of `pending` that finish a message the connection
    /// has partly taken; zero when `pending` starts at a message boundary.
    to_boundary: usize,
}

impl Outbox {
    pub(super) fn new() -> Arc<Outbox> {
        Arc::new(Outbox::default())
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        // Every update below is a single assignment or buffer operation, so
        // a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes waiting to be sent.
    pub(super) fn pending_len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Takes up to `max` waiting bytes, unblocking the producer once few
    /// enough are left. Chunks may end inside a message.
    pub(super) fn take(&self, max: usize) -> Bytes {
        let mut state = self.lock();
        let len = max.min(state.pending.len());
        let state = &mut *state;
        state.to_boundary = to_boundary_after(state.to_boundary, &state.pending, len);
        let chunk = state.pending.split_to(len).freeze();
        if state.pending.len() <= MAX_BUFFERED_STREAM_BYTES {
            self.drained.notify_all();
        }
        chunk
    }

    /// How the handler ended, once everything it sent has been taken.
    /// True once no more messages will come: the handler has ended or the
    /// call was closed.
    pub(super) fn is_ending(&self) -> bool {
        let state = self.lock();
        state.end.is_some() || state.closed.is_some()
    }

    pub(super) fn take_end(&self) -> Option<Result<(), Status>> {
        let mut state = self.lock();
        if state.pending.is_empty() {
            state.end.take()
        } else {
            None
        }
    }

    /// Ends the call from the connection side: the producer's `send` fails
    /// with `CANCELLED` and `reason` from now on, and waiting bytes are
    /// dropped, except the rest of a message already partly taken, which
    /// must still go out before the trailers.
    pub(super) fn close(&self, reason: &Status) {
        let mut state = self.lock();
        if state.closed.is_none() {
            state.closed = Some(reason.clone());
        }
        let keep = state.to_boundary.min(state.pending.len());
        state.pending.truncate(keep);
        self.drained.notify_all();
    }
}

/// How far past the first `taken` bytes of `pending` the next message
/// boundary is, when it was `to_boundary` bytes in.
fn to_boundary_after(mut to_boundary: usize, pending: &[u8], taken: usize) -> usize {
    let mut at = 0;
    while at < taken {
        if to_boundary == 0 {
            // A message starts at `at`. Only whole framed messages are
            // appended, so its prefix is in `pending`; were it not, the
            // rest of the buffer counts as one message.
            to_boundary = match pending.get(at..at + PREFIX_BYTES) {
                Some(&[_, a, b, c, d]) => PREFIX_BYTES + u32::from_be_bytes([a, b, c, d]) as usize,
                _ => pending.len() - at,
            };
        }
        let step = to_boundary.min(taken - at);
        at += step;
        to_boundary -= step;
    }
    to_boundary
}

/// The [`MessageSink`] a streaming handler writes to. Dropping it without
/// finishing ends the call with `INTERNAL`.
#[derive(Debug)]
pub(super) struct StreamProducer {
    outbox: Arc<Outbox>,
    waker: Waker,
    finished: bool,
}

impl StreamProducer {
    pub(super) fn new(outbox: Arc<Outbox>, waker: Waker) -> StreamProducer {
        StreamProducer {
            outbox,
            waker,
            finished: false,
        }
    }

    fn finish(mut self, outcome: Result<(), Status>) {
        self.finished = true;
        self.end(outcome);
    }

    fn end(&self, outcome: Result<(), Status>) {
        let mut state = self.outbox.lock();
        if state.closed.is_none() {
            state.end = Some(outcome);
            drop(state);
            self.waker.wake_by_ref();
        }
    }
}

fn cancelled(reason: &Status) -> Status {
    Status::cancelled(format!("call ended: {}", reason.message))
}

impl MessageSink for StreamProducer {
    fn send(&mut self, message: &[u8]) -> Result<(), Status> {
        let mut state = self.outbox.lock();
        if let Some(reason) = &state.closed {
            return Err(cancelled(reason));
        }
        let was_empty = state.pending.is_empty();
        put_message(&mut state.pending, message)?;
        if was_empty {
            // The connection sleeps once it has taken everything; a
            // non-empty outbox is new work for it.
            self.waker.wake_by_ref();
        }
        while state.pending.len() > MAX_BUFFERED_STREAM_BYTES && state.closed.is_none() {
            state = self
                .outbox
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match &state.closed {
            Some(reason) => Err(cancelled(reason)),
            None => Ok(()),
        }
    }
}

impl Drop for StreamProducer {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Err(Status::internal("handler ended without a reply")));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::{Code, MAX_MESSAGE_BYTES};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Waker, Arc<CountWakes>) {
        let counter = Arc::new(CountWakes::default());
        (Waker::from(Arc::clone(&counter)), counter)
    }

    struct Services;

    fn echo(
        _: &Services,
        _: &CallContext,
        request: &[u8],
        reply: &mut BytesMut,
    ) -> Result<(), Status> {
        reply.extend_from_slice(request);
        Ok(())
    }

    fn boom(_: &Services, _: &CallContext, _: &[u8], _: &mut BytesMut) -> Result<(), Status> {
        panic!("kaboom {}", 42)
    }

    fn run_unary(handler: UnaryFn<Services>, request: &'static [u8]) -> (Reply, usize) {
        let (tx, rx) = crate::mailbox::channel();
        let (waker, wakes) = waker();
        let job = unary_job(
            Arc::new(Services),
            handler,
            CallContext::new("/test/Method", None),
            Bytes::from_static(request),
            Responder::new(7, tx, waker),
        );
        job(&mut BytesMut::new());
        let reply = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err(), "exactly one answer");
        (reply, wakes.0.load(Ordering::SeqCst))
    }

    #[test]
    fn unary_reply_is_framed_and_wakes_the_connection() {
        let (reply, wakes) = run_unary(echo, b"hello");
        assert_eq!(reply.call, 7);
        assert_eq!(
            reply.outcome.unwrap(),
            &[0, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'][..]
        );
        assert_eq!(wakes, 1);
    }

    #[test]
    fn panicking_handler_answers_internal_with_its_message() {
        let (reply, _) = run_unary(boom, b"");
        assert_eq!(
            reply.outcome.unwrap_err(),
            Status::internal("handler panicked: kaboom 42")
        );
    }

    #[test]
    fn dropped_responder_answers_internal() {
        let (tx, rx) = crate::mailbox::channel();
        let (waker, _) = waker();
        drop(Responder::new(3, tx, waker));
        let reply = rx.try_recv().unwrap();
        assert_eq!(reply.call, 3);
        assert_eq!(reply.outcome.unwrap_err().code, Code::Internal);
    }

    #[test]
    fn reply_buffer_is_reused_once_the_reply_is_gone() {
        let mut buffer = BytesMut::with_capacity(4096);
        let first = encode_reply(&mut buffer, |body| {
            body.extend_from_slice(b"abc");
            Ok(())
        })
        .unwrap();
        let first_start = first.as_ptr() as usize;
        drop(first);
        let second = encode_reply(&mut buffer, |body| {
            body.extend_from_slice(b"xyz");
            Ok(())
        })
        .unwrap();
        assert_eq!(second, &[0, 0, 0, 0, 3, b'x', b'y', b'z'][..]);
        let offset = (second.as_ptr() as usize).wrapping_sub(first_start);
        assert!(offset < 4096, "the same allocation serves the next reply");
    }

    #[test]
    fn handler_replacing_the_buffer_still_gets_a_correct_frame() {
        let mut buffer = BytesMut::new();
        let reply = encode_reply(&mut buffer, |body| {
            *body = BytesMut::from(&b"replaced"[..]);
            Ok(())
        })
        .unwrap();
        assert_eq!(&reply[..PREFIX_BYTES], &[0, 0, 0, 0, 8]);
        assert_eq!(&reply[PREFIX_BYTES..], b"replaced");
    }

    #[test]
    fn oversize_reply_is_resource_exhausted() {
        let mut buffer = BytesMut::new();
        let status = encode_reply(&mut buffer, |body| {
            body.resize(MAX_MESSAGE_BYTES + 1, 0);
            Ok(())
        })
        .unwrap_err();
        assert_eq!(status.code, Code::ResourceExhausted);
    }

    #[test]
    fn streamed_messages_are_framed_in_order_and_end_after_them() {
        let outbox = Outbox::new();
        let (waker, wakes) = waker();
        let mut producer = StreamProducer::new(Arc::clone(&outbox), waker);
        producer.send(b"one").unwrap();
        producer.send(b"two").unwrap();
        producer.finish(Ok(()));
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            2,
            "first message and the end wake"
        );
        assert_eq!(outbox.take_end(), None, "the end waits behind the messages");
        assert_eq!(outbox.take(5), &[0, 0, 0, 0, 3][..]);
        assert_eq!(
            outbox.take(100),
            &[b'o', b'n', b'e', 0, 0, 0, 0, 3, b't', b'w', b'o'][..]
        );
        assert_eq!(outbox.take_end(), Some(Ok(())));
    }

    #[test]
    fn send_blocks_above_the_limit_until_the_connection_takes_bytes() {
        let outbox = Outbox::new();
        let (waker, _) = waker();
        let mut producer = StreamProducer::new(Arc::clone(&outbox), waker);
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let thread = std::thread::spawn(move || {
            for _ in 0..100 {
                producer.send(&[0u8; 4096]).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
            }
            producer.finish(Ok(()));
        });
        std::thread::sleep(Duration::from_millis(100));
        let stalled_at = sent.load(Ordering::SeqCst);
        assert!(stalled_at < 100, "producer should be blocked");
        assert!(outbox.pending_len() <= MAX_BUFFERED_STREAM_BYTES + 4096 + PREFIX_BYTES);
        let mut received = 0;
        while received < 100 * (4096 + PREFIX_BYTES) {
            let taken = outbox.take(16 * 1024).len();
            if taken == 0 {
                std::thread::yield_now();
            }
            received += taken;
        }
        thread.join().unwrap();
        assert_eq!(outbox.take_end(), Some(Ok(())));
    }

    #[test]
    fn closing_fails_a_blocked_send_with_cancelled() {
        let outbox = Outbox::new();
        let (waker, _) = waker();
        let mut producer = StreamProducer::new(Arc::clone(&outbox), waker);
        let thread = std::thread::spawn(move || loop {
            if let Err(status) = producer.send(&[1u8; 1024]) {
                return status;
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        outbox.close(&Status::unavailable("server is shutting down"));
        let status = thread.join().unwrap();
        assert_eq!(status.code, Code::Cancelled);
        assert!(status.message.contains("server is shutting down"));
        assert_eq!(outbox.pending_len(), 0);
    }

    #[test]
    fn closing_keeps_the_rest_of_a_partly_taken_message_only() {
        let outbox = Outbox::new();
        let (waker, _) = waker();
        let mut producer = StreamProducer::new(Arc::clone(&outbox), waker);
        producer.send(b"first").unwrap();
        producer.send(b"second").unwrap();
        producer.send(b"third").unwrap();
        let first_and_part = PREFIX_BYTES + 5 + PREFIX_BYTES + 3;
        assert_eq!(
            outbox.take(first_and_part).len(),
            first_and_part,
            "`first`, then `sec`"
        );
        outbox.close(&Status::unavailable("server is shutting down"));
        assert_eq!(outbox.take(100), &b"ond"[..]);
        assert_eq!(outbox.pending_len(), 0);
    }

    #[test]
    fn closing_at_a_message_boundary_drops_everything_waiting() {
        let outbox = Outbox::new();
        let (waker, _) = waker();
        let mut producer = StreamProducer::new(Arc::clone(&outbox), waker);
        producer.send(b"first").unwrap();
        producer.send(b"second").unwrap();
        assert_eq!(outbox.take(PREFIX_BYTES + 5).len(), 10);
        outbox.close(&Status::unavailable("server is shutting down"));
        assert_eq!(outbox.pending_len(), 0);
    }

    #[test]
    fn boundary_tracking_survives_chunks_of_every_size() {
        let mut wire = BytesMut::new();
        for message in [&b"a"[..], b"", b"bbbbbbbbbbbbbbbbbbbb", b"cc"] {
            put_message(&mut wire, message).unwrap();
        }
        let boundaries = [6, 11, 36, 43];
        for chunk in 1..=wire.len() {
            let mut to_boundary = 0;
            let mut at = 0;
            while at < wire.len() {
                let taken = chunk.min(wire.len() - at);
                to_boundary = to_boundary_after(to_boundary, &wire[at..], taken);
                at += taken;
                let next = boundaries.iter().find(|&&b| b >= at).copied().unwrap_or(at);
                assert_eq!(to_boundary, next - at, "chunk {chunk}, at {at}");
            }
        }
    }

    #[test]
    fn dropped_producer_ends_the_call_with_internal() {
        let outbox = Outbox::new();
        let (waker, _) = waker();
        drop(StreamProducer::new(Arc::clone(&outbox), waker));
        assert_eq!(outbox.take_end().unwrap().unwrap_err().code, Code::Internal);
    }
}
