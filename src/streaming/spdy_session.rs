//! A SPDY/3.1 server session on an upgraded HTTP/1.1 connection, as the
//! kubelet's streaming server runs one for exec, attach and port-forward.
//!
//! It owns the upgrade (choosing a subprotocol from the client's
//! `X-Stream-Protocol-Version` values, answering `101 Switching Protocols`
//! or refusing with the kubelet's status and words), a reader thread that
//! accepts the streams the client opens (SYN_REPLY to each), routes their
//! DATA into per-stream [`pipe`]s, answers PING and honours RST_STREAM,
//! GOAWAY and FIN, and [`SpdyOutbound`], the mutex-guarded writer every
//! thread of the session sends through. It must not interpret what the
//! streams carry or how many a session needs (exec, attach and
//! port-forward each decide, from the stream headers) and knows nothing of
//! dockerd or the CRI.
//!
//! Facts of the Kubernetes clients this relies on (client-go over
//! `moby/spdystream`, checked against apimachinery
//! `pkg/util/httpstream/{httpstream.go,spdy/upgrade.go,spdy/connection.go}`):
//! the client names its protocols in order of preference and the first the
//! server supports wins; it opens every stream itself (odd ids), each with
//! a `streamtype` header, and half-closes a stream with an empty DATA frame
//! carrying FIN; it never sends WINDOW_UPDATE (see `spdy` on flow control);
//! it ends with GOAWAY and closes the TCP connection. The server replies
//! to each stream with an empty header block.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::session::Handoff;
use super::session_io::{
    pipe, Activity, Hangup, HangupActionId, IdleReader, PipeReader, PipeWriter,
};
use super::spdy::{
    Frame, GoAwayStatus, HeaderBlock, Reaction, ReceiveWindow, RstStatus, SpdyReader, SpdyWriter,
    StreamId, SynStream, INITIAL_WINDOW_SIZE,
};
use super::{SpdyError, SpdySessionError};
use crate::mailbox::{self, Receiver, Sender};
use crate::supervisor;

/// How long a client has to open the streams a session needs, as the
/// kubelet's `StreamCreationTimeout`.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams open at once; more are refused with REFUSED_STREAM. exec and
/// attach use five, a port-forward two per forwarded connection. A stream
/// counts from its SYN_STREAM until both the protocol is done with it
/// (closed both ways, or reset) and its consumer has released it
/// ([`StreamLease`]): a client that resets a stream must not free a place
/// while a connection still runs on it.
pub const MAX_OPEN_STREAMS: usize = 128;

/// Bytes queued per stream for a consumer that has not read them yet; a
/// full queue stops the reader thread, and TCP stops the client.
const INBOUND_PIPE_BYTES: usize = 256 * 1024;

/// Largest DATA frame sent: the Kubernetes clients copy in 32 KiB pieces
/// too, and a small frame keeps one stream from holding the writer long.
const MAX_OUTBOUND_DATA: usize = 32 * 1024;

/// How long closing waits for the client to close its end after GOAWAY
/// before the socket is shut down regardless.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// The request header naming the subprotocols, and the response header
/// carrying the chosen one (lower-case, as the handoff's names are).
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// The stream header every Kubernetes client sets.
pub const STREAM_TYPE_HEADER: &str = "streamtype";

/// Chooses the subprotocol: the first value the client sent (the header may
/// repeat and hold comma-separated lists) that `supported` lists.
pub fn negotiate(
    headers: &[(String, String)],
    supported: &'static [&'static str],
) -> Result<&'static str, SpdySessionError> {
    let offered: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(PROTOCOL_HEADER))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|protocol| !protocol.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(SpdySessionError::MissingProtocol);
    }
    offered
        .iter()
        .find_map(|offer| supported.iter().copied().find(|s| s == offer))
        .ok_or_else(|| SpdySessionError::NoCommonProtocol {
            offered: offered.iter().map(|p| (*p).to_owned()).collect(),
            supported,
        })
}

/// Whether `Connection` mentions `upgrade` and `Upgrade` mentions
/// `SPDY/3.1`, ignoring case, as the kubelet checks.
fn is_spdy_upgrade(headers: &[(String, String)]) -> bool {
    let mentions = |name: &str, token: &str| {
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.to_ascii_lowercase().contains(token))
    };
    mentions("connection", "upgrade") && mentions("upgrade", "spdy/3.1")
}

/// A stream the client opened, already answered with SYN_REPLY.
#[derive(Debug)]
pub struct NewStream {
    pub id: StreamId,
    pub headers: HeaderBlock,
    /// What the client sends on it; end-of-stream when the client
    /// half-closes or resets it, or the session ends. Dropping it discards
    /// later data.
    pub inbound: PipeReader,
    /// Keeps the stream counted against [`MAX_OPEN_STREAMS`] until dropped.
    pub lease: StreamLease,
}

/// What the reader thread tells the session's consumer, in the order the
/// frames came.
#[derive(Debug)]
pub enum StreamEvent {
    /// The client opened a stream.
    Opened(NewStream),
    /// A stream handed over earlier was reset, by the client or because
    /// its frames broke the protocol.
    Reset(StreamId),
}

/// A consumer's hold on a stream: while it lives the stream keeps its
/// place among the session's [`MAX_OPEN_STREAMS`], however the client
/// closed or reset it.
#[derive(Debug)]
pub struct StreamLease {
    outbound: Arc<SpdyOutbound>,
    stream: StreamId,
}

impl StreamLease {
    /// The stream held.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Whether the stream was reset, by either side.
    pub fn is_reset(&self) -> bool {
        self.outbound
            .lock()
            .streams
            .get(&self.stream)
            .is_some_and(|s| s.reset)
    }
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        self.outbound.lock().update(self.stream, |s| s.held = false);
    }
}

/// An upgraded connection: the reader thread, the shared writer, and the
/// streams the client opened, until [`SpdySession::close`] (or drop) ends
/// it and joins the reader.
#[derive(Debug)]
pub struct SpdySession {
    protocol: &'static str,
    outbound: Arc<SpdyOutbound>,
    new_streams: Option<Receiver<StreamEvent>>,
    reader: Option<JoinHandle<()>>,
    /// Disconnected once the reader thread has ended.
    reader_done: Receiver<()>,
    conn: TcpStream,
    hangup: Hangup,
}

impl SpdySession {
    /// Negotiates a subprotocol from `supported`, answers the upgrade and
    /// starts the reader. A refusal is answered with its HTTP error here,
    /// and the connection closed.
    pub fn accept(
        handoff: Handoff,
        supported: &'static [&'static str],
    ) -> Result<SpdySession, SpdySessionError> {
        let Handoff {
            headers,
            mut conn,
            leftover,
            idle_timeout,
            ..
        } = handoff;
        let chosen = negotiate(&headers, supported).and_then(|protocol| {
            if is_spdy_upgrade(&headers) {
                Ok(protocol)
            } else {
                Err(SpdySessionError::NotSpdyUpgrade)
            }
        });
        let protocol = match chosen {
            Ok(protocol) => protocol,
            Err(err) => {
                if let Some(response) = err.http_response() {
                    // The refusal is best effort: the client may be gone.
                    let _ = conn.write_all(&response);
                }
                let _ = conn.shutdown(Shutdown::Both);
                return Err(err);
            }
        };
        let idle_timeout = idle_timeout.filter(|t| !t.is_zero());
        // A client that stops reading for as long as the idle timeout
        // moved no data either way: the write fails and the session ends.
        conn.set_write_timeout(idle_timeout)
            .map_err(SpdySessionError::Io)?;
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {protocol}\r\n\r\n"
        );
        conn.write_all(response.as_bytes())
            .map_err(SpdySessionError::Io)?;

        let activity = Activity::new();
        let clone = || conn.try_clone().map_err(SpdySessionError::Io);
        let outbound = Arc::new(SpdyOutbound::new(
            SpdyWriter::new(clone()?),
            activity.clone(),
        ));
        let (streams_tx, streams_rx) = mailbox::channel();
        let (done_tx, done_rx) = mailbox::channel::<()>();
        let hangup = Hangup::new();
        let reader = FrameReader {
            frames: SpdyReader::new(IdleReader::new(leftover, clone()?, idle_timeout, activity)),
            outbound: Arc::clone(&outbound),
            new_streams: streams_tx,
            inbound: HashMap::new(),
            session_window: ReceiveWindow::new(INITIAL_WINDOW_SIZE),
            hangup: hangup.clone(),
            conn: clone()?,
        };
        let handle = supervisor::spawn_named(
            "spdy-reader".to_owned(),
            Box::new(move || {
                let _done = done_tx;
                reader.run();
            }),
        )
        .map_err(SpdySessionError::Io)?;
        Ok(SpdySession {
            protocol,
            outbound,
            new_streams: Some(streams_rx),
            reader: Some(handle),
            reader_done: done_rx,
            conn,
            hangup,
        })
    }

    /// The subprotocol chosen.
    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// The next stream the client opened, waiting until `deadline`;
    /// resets on the way are skipped (the stream's input has ended).
    pub fn next_stream(&self, deadline: Instant) -> Result<NewStream, SpdySessionError> {
        loop {
            if let StreamEvent::Opened(stream) = self.next_event(deadline)? {
                return Ok(stream);
            }
        }
    }

    /// The next stream opened or reset, waiting until `deadline`.
    pub fn next_event(&self, deadline: Instant) -> Result<StreamEvent, SpdySessionError> {
        let streams = self.new_streams.as_ref().ok_or(SpdySessionError::Closed)?;
        let wait = deadline.saturating_duration_since(Instant::now());
        streams.recv_timeout(wait).map_err(|err| match err {
            RecvTimeoutError::Timeout => SpdySessionError::StreamTimeout,
            RecvTimeoutError::Disconnected => SpdySessionError::Closed,
        })
    }

    /// Refuses streams the client opens from now on (RST_STREAM with
    /// REFUSED_STREAM) and drops those not yet taken.
    pub fn stop_accepting(&mut self) {
        self.new_streams = None;
    }

    /// The writer shared by everyone sending on this session.
    pub fn outbound(&self) -> &Arc<SpdyOutbound> {
        &self.outbound
    }

    /// Signalled when the client goes; also when the session closes.
    pub fn hangup(&self) -> &Hangup {
        &self.hangup
    }

    /// Ends the session gracefully: FIN on every stream still open for
    /// sending, GOAWAY, then the connection is closed once the client has
    /// closed its end (or after a short linger).
    pub fn close(mut self) {
        self.stop_accepting();
        self.outbound.finish();
        let _ = self.conn.shutdown(Shutdown::Write);
        // Either the reader ended (the client closed) or the linger passed.
        let _ = self.reader_done.recv_timeout(CLOSE_LINGER);
    }
}

impl Drop for SpdySession {
    /// Whatever state the session is in, no thread it started outlives it:
    /// the pipes are severed and the socket shut down, which ends the
    /// reader wherever it blocks.
    fn drop(&mut self) {
        self.new_streams = None;
        self.hangup.hang_up();
        let _ = self.conn.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            if reader.join().is_err() {
                log::error!("the SPDY reader thread panicked");
            }
        }
    }
}

/// Where each stream stands, seen from the writing side.
#[derive(Debug, Clone, Copy, Default)]
struct StreamState {
    /// We sent FIN.
    local_closed: bool,
    /// The client sent FIN.
    remote_closed: bool,
    /// Either side reset it.
    reset: bool,
    /// A consumer holds its [`StreamLease`].
    held: bool,
}

/// The session's writer with the state every sender must agree on, behind
/// one mutex so frames never interleave and a stream is never written
/// after it closed.
#[derive(Debug)]
pub struct SpdyOutbound {
    state: Mutex<OutboundState>,
    activity: Activity,
}

#[derive(Debug)]
struct OutboundState {
    writer: SpdyWriter<TcpStream>,
    streams: HashMap<StreamId, StreamState>,
    /// The highest stream id the client used, accepted or not.
    last_seen: StreamId,
    /// The highest stream id accepted, for GOAWAY.
    last_accepted: StreamId,
    /// No new streams: either side sent GOAWAY.
    refusing: bool,
    /// A write failed; the connection is unusable.
    failed: bool,
}

impl OutboundState {
    /// Runs one write; a failure leaves the connection unusable.
    fn write(
        &mut self,
        frame: impl FnOnce(&mut SpdyWriter<TcpStream>) -> Result<(), SpdyError>,
    ) -> Result<(), SpdySessionError> {
        if self.failed {
            return Err(SpdySessionError::Closed);
        }
        frame(&mut self.writer).map_err(|err| {
            if !matches!(err, SpdyError::Unwritable(_)) {
                self.failed = true;
            }
            SpdySessionError::Spdy(err)
        })
    }

    /// Records FIN, reset or release; forgets a stream closed both ways
    /// (or reset) once no consumer holds it.
    fn update(&mut self, stream: StreamId, change: impl FnOnce(&mut StreamState)) {
        if let Some(state) = self.streams.get_mut(&stream) {
            change(state);
            if !state.held && (state.reset || (state.local_closed && state.remote_closed)) {
                self.streams.remove(&stream);
            }
        }
    }
}

impl SpdyOutbound {
    fn new(writer: SpdyWriter<TcpStream>, activity: Activity) -> SpdyOutbound {
        SpdyOutbound {
            state: Mutex::new(OutboundState {
                writer,
                streams: HashMap::new(),
                last_seen: 0,
                last_accepted: 0,
                refusing: false,
                failed: false,
            }),
            activity,
        }
    }

    /// A panic while writing leaves at worst a half-written frame, after
    /// which every write fails anyway; the state stays usable.
    fn lock(&self) -> MutexGuard<'_, OutboundState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `data` on `stream`, in DATA frames of at most 32 KiB; other
    /// streams may interleave between frames.
    pub fn send(&self, stream: StreamId, data: &[u8]) -> Result<(), SpdySessionError> {
        for chunk in data.chunks(MAX_OUTBOUND_DATA) {
            let mut state = self.lock();
            match state.streams.get(&stream) {
                Some(s) if !s.local_closed && !s.reset => {}
                _ => return Err(SpdySessionError::StreamClosed { stream }),
            }
            state.write(|w| w.write_data(stream, false, chunk))?;
            drop(state);
            self.activity.touch();
        }
        Ok(())
    }

    /// Half-closes `stream` (an empty DATA frame with FIN); closing it
    /// again, or a stream that was reset, does nothing.
    pub fn close_stream(&self, stream: StreamId) -> Result<(), SpdySessionError> {
        let mut state = self.lock();
        match state.streams.get(&stream) {
            Some(s) if !s.local_closed && !s.reset => {}
            _ => return Ok(()),
        }
        state.write(|w| w.write_data(stream, true, &[]))?;
        state.update(stream, |s| s.local_closed = true);
        Ok(())
    }

    /// Resets `stream` (a consumer refusing it): nothing more is sent on
    /// it and what the client still sends is dropped. A stream already
    /// reset is left alone.
    pub fn reset_stream(
        &self,
        stream: StreamId,
        status: RstStatus,
    ) -> Result<(), SpdySessionError> {
        let mut state = self.lock();
        match state.streams.get(&stream) {
            Some(s) if !s.reset => {}
            _ => return Ok(()),
        }
        state.update(stream, |s| s.reset = true);
        state.write(|w| w.write_rst_stream(stream, status))
    }

    /// FIN on every stream still open for sending, then GOAWAY; no new
    /// streams are accepted. Failures are ignored: the client may be gone.
    fn finish(&self) {
        let mut state = self.lock();
        state.refusing = true;
        // Ascending by insert: a sort of stream ids would compile its own copy.
        let mut open: Vec<StreamId> = Vec::new();
        for (id, _) in state
            .streams
            .iter()
            .filter(|(_, s)| !s.local_closed && !s.reset)
        {
            open.insert(open.partition_point(|known| known < id), *id);
        }
        for stream in open {
            if state.write(|w| w.write_data(stream, true, &[])).is_err() {
                return;
            }
            state.update(stream, |s| s.local_closed = true);
        }
        let last = state.last_accepted;
        let _ = state.write(|w| w.write_goaway(last, GoAwayStatus::OK));
    }
}

/// The reader thread's state: the frame reader, and the pipe and receive
/// window of every stream the client may still send on.
struct FrameReader {
    frames: SpdyReader<IdleReader>,
    outbound: Arc<SpdyOutbound>,
    new_streams: Sender<StreamEvent>,
    inbound: HashMap<StreamId, Inbound>,
    session_window: ReceiveWindow,
    hangup: Hangup,
    /// For shutting the connection down once reading ends.
    conn: TcpStream,
}

struct Inbound {
    pipe: PipeWriter,
    window: ReceiveWindow,
    /// Closes the pipe if the session ends first; cancelled when the
    /// stream's input ends, so a long session does not accumulate one per
    /// stream it ever had.
    on_hang_up: HangupActionId,
}

/// Why reading ended.
#[derive(Debug)]
enum ReadEnd {
    /// The client closed the connection, or it was shut down here.
    Closed,
    /// No data moved for the idle timeout.
    Idle,
    Failed(SpdyError),
}

impl FrameReader {
    fn run(mut self) {
        match self.read_frames() {
            ReadEnd::Closed => log::debug!("SPDY session: connection closed"),
            ReadEnd::Idle => {
                log::info!("SPDY session: idle timeout, closing the connection");
                self.outbound.finish();
            }
            ReadEnd::Failed(err) => log::debug!("SPDY session ended: {err}"),
        }
        // End-of-stream for every consumer, then everyone else learns the
        // client is gone; nothing can be sent or received any more.
        self.inbound.clear();
        self.hangup.hang_up();
        let _ = self.conn.shutdown(Shutdown::Both);
    }

    fn read_frames(&mut self) -> ReadEnd {
        loop {
            let frame = match self.frames.read_frame() {
                Ok(frame) => frame,
                Err(err) => match err.reaction() {
                    Reaction::ResetStream { stream, status } => {
                        log::debug!("SPDY session: resetting stream {stream}: {err}");
                        self.reset(stream, status);
                        continue;
                    }
                    Reaction::GoAway(status) => {
                        let mut state = self.outbound.lock();
                        let last = state.last_accepted;
                        let _ = state.write(|w| w.write_goaway(last, status));
                        return ReadEnd::Failed(err);
                    }
                    Reaction::Close => {
                        return match &err {
                            SpdyError::Closed => ReadEnd::Closed,
                            SpdyError::Io(io) if IdleReader::is_idle_error(io) => ReadEnd::Idle,
                            _ => ReadEnd::Failed(err),
                        }
                    }
                },
            };
            match frame {
                Frame::SynStream(syn) => self.open(syn),
                Frame::Data { stream, fin, data } => self.deliver(stream, fin, &data),
                Frame::RstStream { stream, status } => {
                    log::debug!(
                        "SPDY session: client reset stream {stream} ({})",
                        status.name()
                    );
                    // Output is refused before input ends, so whoever
                    // sees the input end finds the stream closed both ways.
                    let known = self.mark_reset(stream);
                    self.end_inbound(stream);
                    if known {
                        let _ = self.new_streams.send(StreamEvent::Reset(stream));
                    }
                }
                // Odd ids are the client's own pings; even ones would answer
                // ours, and we send none.
                Frame::Ping { id } if id % 2 == 1 => {
                    let _ = self.outbound.lock().write(|w| w.write_ping(id));
                }
                Frame::GoAway { status, .. } => {
                    log::debug!("SPDY session: client sent GOAWAY ({})", status.name());
                    self.outbound.lock().refusing = true;
                }
                // The client opens every stream, so it has nothing to reply
                // to; headers after the opening carry nothing we use; flow
                // control is not enforced (see `spdy`).
                Frame::Ping { .. }
                | Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. } => {}
            }
        }
    }

    /// Accepts a stream, or refuses it with RST_STREAM. The reply is written
    /// while the stream is handed over under the writer's lock, so nothing
    /// can be sent on it before its SYN_REPLY.
    fn open(&mut self, syn: SynStream) {
        let SynStream {
            stream,
            fin,
            headers,
            ..
        } = syn;
        let mut state = self.outbound.lock();
        // Streams a consumer reset still have their pipes here until the
        // client sends on them or closes them; a client that does neither
        // must not pile them up.
        let forgotten: Vec<StreamId> = self
            .inbound
            .keys()
            .filter(|id| state.streams.get(id).is_none_or(|s| s.reset))
            .copied()
            .collect();
        for id in forgotten {
            if let Some(inbound) = self.inbound.remove(&id) {
                self.hangup.cancel(inbound.on_hang_up);
            }
        }
        let refusal = if stream % 2 == 0 || stream <= state.last_seen {
            Some(RstStatus::PROTOCOL_ERROR)
        } else if state.refusing || state.streams.len() >= MAX_OPEN_STREAMS {
            Some(RstStatus::REFUSED_STREAM)
        } else {
            None
        };
        state.last_seen = state.last_seen.max(stream);
        if let Some(status) = refusal {
            log::debug!("SPDY session: refusing stream {stream} ({})", status.name());
            let _ = state.write(|w| w.write_rst_stream(stream, status));
            return;
        }
        let (writer, reader) = pipe(INBOUND_PIPE_BYTES);
        // Recorded before the hand-over, so a lease dropped at once finds
        // its stream.
        state.streams.insert(
            stream,
            StreamState {
                remote_closed: fin,
                held: true,
                ..StreamState::default()
            },
        );
        let offered = NewStream {
            id: stream,
            headers,
            inbound: reader,
            lease: StreamLease {
                outbound: Arc::clone(&self.outbound),
                stream,
            },
        };
        if let Err(mpsc::SendError(StreamEvent::Opened(refused))) =
            self.new_streams.send(StreamEvent::Opened(offered))
        {
            state.update(stream, |s| s.reset = true);
            // The lease takes the lock this thread holds.
            drop(state);
            drop(refused);
            let _ = self
                .outbound
                .lock()
                .write(|w| w.write_rst_stream(stream, RstStatus::REFUSED_STREAM));
            return;
        }
        state.last_accepted = stream;
        if state
            .write(|w| w.write_syn_reply(stream, false, &HeaderBlock::new()))
            .is_err()
        {
            return;
        }
        drop(state);
        if !fin {
            let closer = writer.closer();
            let on_hang_up = self.hangup.on_hang_up(move || closer.close());
            self.inbound.insert(
                stream,
                Inbound {
                    pipe: writer,
                    window: ReceiveWindow::new(INITIAL_WINDOW_SIZE),
                    on_hang_up,
                },
            );
        }
    }

    /// Ends a stream's input: its consumer reads end-of-stream.
    fn end_inbound(&mut self, stream: StreamId) {
        if let Some(inbound) = self.inbound.remove(&stream) {
            self.hangup.cancel(inbound.on_hang_up);
        }
    }

    fn deliver(&mut self, stream: StreamId, fin: bool, data: &[u8]) {
        let Some(inbound) = self.inbound.get_mut(&stream) else {
            let mut state = self.outbound.lock();
            match state.streams.get(&stream) {
                // Data racing a reset, or for a stream whose consumer left.
                Some(s) if s.reset => {}
                Some(_) => {
                    drop(state);
                    self.reset(stream, RstStatus::STREAM_ALREADY_CLOSED);
                }
                None => {
                    let _ = state.write(|w| w.write_rst_stream(stream, RstStatus::INVALID_STREAM));
                }
            }
            return;
        };
        if !data.is_empty() {
            // A consumer that went away drops what it would have read.
            inbound.pipe.send(data);
        }
        let stream_credit = inbound.window.consume(data.len());
        let session_credit = self.session_window.consume(data.len());
        if fin {
            self.end_inbound(stream);
        }
        let mut state = self.outbound.lock();
        if fin {
            state.update(stream, |s| s.remote_closed = true);
        } else if let Some(delta) = stream_credit {
            let _ = state.write(|w| w.write_window_update(stream, delta));
        }
        if let Some(delta) = session_credit {
            let _ = state.write(|w| w.write_window_update(0, delta));
        }
    }

    fn reset(&mut self, stream: StreamId, status: RstStatus) {
        let _ = self
            .outbound
            .lock()
            .write(|w| w.write_rst_stream(stream, status));
        let known = self.mark_reset(stream);
        self.end_inbound(stream);
        if known {
            let _ = self.new_streams.send(StreamEvent::Reset(stream));
        }
    }

    /// Records that `stream` was reset; whether it was one handed over
    /// and not yet reset, which its consumer must hear of.
    fn mark_reset(&mut self, stream: StreamId) -> bool {
        let mut state = self.outbound.lock();
        let known = state.streams.get(&stream).is_some_and(|s| !s.reset);
        state.update(stream, |s| s.reset = true);
        known
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::thread;

    const PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"];

    fn headers(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_clients_first_supported_protocol_wins() {
        let offered = headers(&[
            (
                "x-stream-protocol-version",
                "v5.channel.k8s.io, v3.channel.k8s.io",
            ),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        assert_eq!(negotiate(&offered, PROTOCOLS).unwrap(), "v3.channel.k8s.io");
    }

    #[test]
    fn a_request_without_protocols_is_refused_with_400() {
        let err = negotiate(&headers(&[("upgrade", "SPDY/3.1")]), PROTOCOLS).unwrap_err();
        let response = String::from_utf8(err.http_response().unwrap()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
        assert!(
            response
                .ends_with("\r\n\r\nunable to upgrade: X-Stream-Protocol-Version is required\n"),
            "{response}"
        );
    }

    #[test]
    fn unsupported_protocols_are_refused_with_403_listing_the_supported_ones() {
        let err =
            negotiate(&headers(&[("x-stream-protocol-version", "v9")]), PROTOCOLS).unwrap_err();
        assert!(matches!(err, SpdySessionError::NoCommonProtocol { .. }));
        let response = String::from_utf8(err.http_response().unwrap()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
        for protocol in PROTOCOLS {
            assert!(
                response.contains(&format!(
                    "X-Accepted-Stream-Protocol-Versions: {protocol}\r\n"
                )),
                "{response}"
            );
        }
        assert!(response.contains("client supports [v9]"), "{response}");
    }

    #[test]
    fn upgrade_headers_are_checked_like_the_kubelet() {
        assert!(is_spdy_upgrade(&headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "SPDY/3.1"),
        ])));
        assert!(!is_spdy_upgrade(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_spdy_upgrade(&headers(&[("upgrade", "SPDY/3.1")])));
    }

    /// The client end of an upgraded connection, speaking through our own
    /// codec (its interoperability with other implementations is tested in
    /// `spdy` and by the integration tests).
    struct Client {
        reader: SpdyReader<BufReader<TcpStream>>,
        writer: SpdyWriter<TcpStream>,
        response: String,
    }

    impl Client {
        fn syn(&mut self, stream: StreamId, kind: &str, fin: bool) {
            self.writer
                .write_syn_stream(&SynStream {
                    stream,
                    associated_to: None,
                    priority: 0,
                    slot: 0,
                    fin,
                    unidirectional: false,
                    headers: [(STREAM_TYPE_HEADER, kind)].into_iter().collect(),
                })
                .unwrap();
        }

        fn frame(&mut self) -> Frame {
            self.reader.read_frame().unwrap()
        }
    }

    /// Starts a session on a fresh connection with `request_headers`;
    /// returns the client (once the server answered) and the server's
    /// result.
    fn start(
        request_headers: &[(&str, &str)],
        idle_timeout: Option<Duration>,
    ) -> (Client, Result<SpdySession, SpdySessionError>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (conn, _) = listener.accept().unwrap();
        let handoff = Handoff {
            method: "POST".to_owned(),
            path: "/cri/exec/token".to_owned(),
            query: Vec::new(),
            headers: headers(request_headers),
            conn,
            leftover: Vec::new(),
            idle_timeout,
        };
        let session = SpdySession::accept(handoff, PROTOCOLS);
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut response = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            response.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        if !response.starts_with("HTTP/1.1 101 ") {
            // A refusal: its body, up to the close.
            reader.read_to_string(&mut response).unwrap();
        }
        let client = Client {
            reader: SpdyReader::new(reader),
            writer: SpdyWriter::new(client),
            response,
        };
        (client, session)
    }

    const UPGRADE: &[(&str, &str)] = &[
        ("connection", "Upgrade"),
        ("upgrade", "SPDY/3.1"),
        ("x-stream-protocol-version", "v4.channel.k8s.io"),
    ];

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn the_upgrade_answer_names_the_chosen_protocol() {
        let (client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        assert_eq!(session.protocol(), "v4.channel.k8s.io");
        assert!(client
            .response
            .starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(client.response.contains("Upgrade: SPDY/3.1\r\n"));
        assert!(client
            .response
            .contains("X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"));
    }

    #[test]
    fn a_refused_upgrade_answers_http_and_closes() {
        let (client, session) = start(&[("x-stream-protocol-version", "v4.channel.k8s.io")], None);
        assert!(matches!(session, Err(SpdySessionError::NotSpdyUpgrade)));
        assert!(client.response.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(
            client.response.ends_with(
                "missing upgrade headers in request \
                 (Connection: Upgrade and Upgrade: SPDY/3.1 are required)\n"
            ),
            "{}",
            client.response
        );
    }

    #[test]
    fn streams_are_answered_and_their_data_reaches_their_pipes_until_fin() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "stdin", false);
        client.syn(3, "stdout", false);
        assert!(matches!(
            client.frame(),
            Frame::SynReply {
                stream: 1,
                fin: false,
                ..
            }
        ));
        assert!(matches!(
            client.frame(),
            Frame::SynReply {
                stream: 3,
                fin: false,
                ..
            }
        ));
        let mut stdin = session.next_stream(deadline()).unwrap();
        let stdout = session.next_stream(deadline()).unwrap();
        assert_eq!(stdin.headers.get(STREAM_TYPE_HEADER), Some("stdin"));
        assert_eq!((stdin.id, stdout.id), (1, 3));

        client.writer.write_data(1, false, b"hello ").unwrap();
        client.writer.write_data(1, false, b"world").unwrap();
        client.writer.write_data(1, true, b"").unwrap();
        let mut received = String::new();
        stdin.inbound.read_to_string(&mut received).unwrap();
        assert_eq!(received, "hello world");

        session.outbound().send(3, b"out").unwrap();
        assert_eq!(
            client.frame(),
            Frame::Data {
                stream: 3,
                fin: false,
                data: b"out".to_vec()
            }
        );
        session.outbound().close_stream(3).unwrap();
        assert!(matches!(
            client.frame(),
            Frame::Data {
                stream: 3,
                fin: true,
                ..
            }
        ));
        assert!(matches!(
            session.outbound().send(3, b"late"),
            Err(SpdySessionError::StreamClosed { stream: 3 })
        ));
    }

    #[test]
    fn pings_are_answered_and_data_for_unknown_streams_is_refused() {
        let (mut client, session) = start(UPGRADE, None);
        let _session = session.unwrap();
        client.writer.write_ping(7).unwrap();
        assert_eq!(client.frame(), Frame::Ping { id: 7 });
        client.writer.write_data(9, false, b"x").unwrap();
        assert_eq!(
            client.frame(),
            Frame::RstStream {
                stream: 9,
                status: RstStatus::INVALID_STREAM
            }
        );
        // An even id is the server's to use.
        client.syn(2, "stdout", false);
        assert_eq!(
            client.frame(),
            Frame::RstStream {
                stream: 2,
                status: RstStatus::PROTOCOL_ERROR
            }
        );
    }

    #[test]
    fn a_reset_stream_ends_its_input_and_refuses_output() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "stdout", false);
        client.frame();
        let mut stream = session.next_stream(deadline()).unwrap();
        client
            .writer
            .write_rst_stream(1, RstStatus::CANCEL)
            .unwrap();
        assert_eq!(stream.inbound.read(&mut [0; 4]).unwrap(), 0);
        assert!(matches!(
            session.outbound().send(1, b"x"),
            Err(SpdySessionError::StreamClosed { stream: 1 })
        ));
    }

    #[test]
    fn streams_opened_after_accepting_stopped_are_refused() {
        let (mut client, session) = start(UPGRADE, None);
        let mut session = session.unwrap();
        session.stop_accepting();
        client.syn(1, "stdout", false);
        assert_eq!(
            client.frame(),
            Frame::RstStream {
                stream: 1,
                status: RstStatus::REFUSED_STREAM
            }
        );
    }

    #[test]
    fn waiting_for_streams_times_out() {
        let (_client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        let err = session
            .next_stream(Instant::now() + Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, SpdySessionError::StreamTimeout), "{err}");
    }

    #[test]
    fn close_finishes_open_streams_then_goes_away() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "error", false);
        client.syn(3, "stdout", false);
        client.frame();
        client.frame();
        let _error = session.next_stream(deadline()).unwrap();
        let _stdout = session.next_stream(deadline()).unwrap();
        session.outbound().close_stream(3).unwrap();
        client.frame();
        let closing = thread::spawn(move || session.close());
        assert!(matches!(
            client.frame(),
            Frame::Data {
                stream: 1,
                fin: true,
                ..
            }
        ));
        assert_eq!(
            client.frame(),
            Frame::GoAway {
                last_good_stream: 3,
                status: GoAwayStatus::OK
            }
        );
        assert!(matches!(client.reader.read_frame(), Err(SpdyError::Closed)));
        drop(client);
        closing.join().unwrap();
    }

    #[test]
    fn the_client_going_away_hangs_up_and_ends_every_pipe() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "stdin", false);
        client.frame();
        let mut stdin = session.next_stream(deadline()).unwrap();
        drop(client);
        assert_eq!(stdin.inbound.read(&mut [0; 4]).unwrap(), 0);
        let started = Instant::now();
        while !session.hangup().is_hung_up() {
            assert!(started.elapsed() < Duration::from_secs(5), "no hang-up");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            session.next_stream(deadline()),
            Err(SpdySessionError::Closed)
        ));
    }

    #[test]
    fn streams_whose_input_ended_hold_no_hang_up_action() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        // More streams over the session's life than may be open at once.
        for n in 0..MAX_OPEN_STREAMS as u32 + 10 {
            let (stream, closed_by_reset) = (2 * n + 1, n % 2 == 1);
            client.syn(stream, "data", false);
            assert!(matches!(client.frame(), Frame::SynReply { .. }));
            let mut taken = session.next_stream(deadline()).unwrap();
            if closed_by_reset {
                client
                    .writer
                    .write_rst_stream(stream, RstStatus::CANCEL)
                    .unwrap();
            } else {
                client.writer.write_data(stream, true, b"").unwrap();
                session.outbound().close_stream(stream).unwrap();
                assert!(matches!(client.frame(), Frame::Data { fin: true, .. }));
            }
            assert_eq!(taken.inbound.read(&mut [0; 4]).unwrap(), 0);
        }
        client.syn(1001, "data", false);
        assert!(matches!(client.frame(), Frame::SynReply { .. }));
        let _open = session.next_stream(deadline()).unwrap();
        // Frames are handled in order: once the ping is answered, the
        // stream opened before it is registered.
        client.writer.write_ping(7).unwrap();
        assert_eq!(client.frame(), Frame::Ping { id: 7 });
        assert_eq!(session.hangup().pending_actions(), 1);
    }

    #[test]
    fn a_reset_stream_counts_until_its_consumer_releases_it() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        let mut held = Vec::new();
        for n in 0..MAX_OPEN_STREAMS as u32 {
            let stream = 2 * n + 1;
            client.syn(stream, "data", false);
            assert!(matches!(client.frame(), Frame::SynReply { .. }));
            held.push(session.next_stream(deadline()).unwrap());
            client
                .writer
                .write_rst_stream(stream, RstStatus::CANCEL)
                .unwrap();
        }
        let next = 2 * MAX_OPEN_STREAMS as u32 + 1;
        client.syn(next, "data", false);
        assert_eq!(
            client.frame(),
            Frame::RstStream {
                stream: next,
                status: RstStatus::REFUSED_STREAM
            }
        );
        assert!(held[0].lease.is_reset());
        drop(held.remove(0));
        client.syn(next + 2, "data", false);
        assert!(matches!(
            client.frame(),
            Frame::SynReply { stream, .. } if stream == next + 2
        ));
    }

    #[test]
    fn the_consumer_hears_of_resets_of_the_streams_it_was_given() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "data", false);
        client.frame();
        let StreamEvent::Opened(stream) = session.next_event(deadline()).unwrap() else {
            panic!("expected a stream");
        };
        assert_eq!(stream.lease.stream(), 1);
        assert!(!stream.lease.is_reset());
        client
            .writer
            .write_rst_stream(1, RstStatus::CANCEL)
            .unwrap();
        // Not a stream it was given: nothing to hear of.
        client
            .writer
            .write_rst_stream(5, RstStatus::CANCEL)
            .unwrap();
        client.syn(7, "data", false);
        client.frame();
        assert!(matches!(
            session.next_event(deadline()).unwrap(),
            StreamEvent::Reset(1)
        ));
        assert!(stream.lease.is_reset());
        assert!(matches!(
            session.next_event(deadline()).unwrap(),
            StreamEvent::Opened(NewStream { id: 7, .. })
        ));
    }

    #[test]
    fn a_stream_the_consumer_resets_is_refused_output_and_releases_its_place() {
        let (mut client, session) = start(UPGRADE, None);
        let session = session.unwrap();
        client.syn(1, "data", false);
        client.frame();
        let stream = session.next_stream(deadline()).unwrap();
        session
            .outbound()
            .reset_stream(1, RstStatus::REFUSED_STREAM)
            .unwrap();
        assert_eq!(
            client.frame(),
            Frame::RstStream {
                stream: 1,
                status: RstStatus::REFUSED_STREAM
            }
        );
        assert!(matches!(
            session.outbound().send(1, b"x"),
            Err(SpdySessionError::StreamClosed { stream: 1 })
        ));
        drop(stream);
        assert!(session.outbound().lock().streams.is_empty());
        // Resetting it again sends nothing.
        session
            .outbound()
            .reset_stream(1, RstStatus::REFUSED_STREAM)
            .unwrap();
        client.writer.write_ping(9).unwrap();
        assert_eq!(client.frame(), Frame::Ping { id: 9 });
    }

    #[test]
    fn an_idle_session_hangs_up() {
        let (_client, session) = start(UPGRADE, Some(Duration::from_millis(200)));
        let session = session.unwrap();
        let started = Instant::now();
        while !session.hangup().is_hung_up() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no idle timeout"
            );
            thread::sleep(Duration::from_millis(10));
        }
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}
