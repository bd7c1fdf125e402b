//! Port-forward sessions: what the streaming server runs once a client has
//! redeemed the URL a PortForward call issued.
//!
//! It owns the kubelet's port-forward protocol on both transports, checked
//! against the kubelet's `pkg/kubelet/cri/streaming/portforward/`
//! (`httpstream.go`, `websocket.go`), and the forwarding of each
//! connection, checked against containerd's CRI plugin
//! (`sandbox_portforward_linux.go`):
//!
//! - SPDY (`portforward.k8s.io`): the client opens streams in pairs, each
//!   with `streamtype` (`data` or `error`), `port` and `requestid` headers;
//!   a stream whose headers are missing or malformed is closed at once. A
//!   client that sends no `requestid` is paired by stream id, as the
//!   kubelet does for old clients: an error stream with id `n` belongs to
//!   the data stream with id `n + 2`. A pair not complete within the
//!   stream-creation timeout is told so on its error stream and closed.
//!   Every complete pair is one forwarded connection, and many may run at
//!   once on one session (one per connection the client accepts locally,
//!   up to [`MAX_SESSION_CONNECTIONS`]); the session lasts until the client
//!   goes or it idles out.
//! - WebSocket (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`): the ports
//!   are the request's, or else the `port` query values; each gets a data
//!   and an error channel, both announced with the port number first, and
//!   one connection dialled at once. The session ends when every
//!   connection has.
//!
//! A connection is dialled to the port on the pod's loopback interface
//! (`127.0.0.1`, then `::1`, as containerd does, see [`connect_loopback`])
//! by a [`PortDialer`] the caller supplies: entering the pod's network
//! namespace is the dialer's business, never this module's.
//! Bytes are then copied both ways. When the client closes its data
//! stream the socket's sending side is shut down and the reply still
//! flows; when the pod closes its side the client's data stream is closed
//! and the client gets `CLOSE_GRACE` to close its own before the
//! connection ends, as containerd allows. A failure (a closed port, a port
//! the request did not name, a broken socket) is reported on the pair's
//! error stream in the kubelet's words ([`port_forward_error`]), never by
//! leaving the client waiting. It must not parse HTTP, frame SPDY or
//! WebSocket (the session layers do), nor validate the CRI request (the RPC
//! did, before issuing the URL).
//!
//! Threads: per connection, one copies the pod's bytes to the client (and
//! dials first, through one short-lived namespace thread), one copies the
//! client's bytes to the pod. They are scoped to the session, whose own
//! thread waits for them; when the client goes, the session's hang-up
//! shuts every socket down, which ends them.
//!
//! Limits: a client must not make the node run out of threads, sockets or
//! memory by opening streams. Incomplete pairs and forwarded connections
//! are capped per session and across all sessions ([`MAX_PENDING_PAIRS`],
//! [`MAX_TOTAL_PENDING_PAIRS`], [`MAX_SESSION_CONNECTIONS`],
//! [`MAX_TOTAL_CONNECTIONS`]); a SPDY stream over a cap is refused with
//! RST_STREAM (REFUSED_STREAM), never queued. A stream the client resets
//! drops its incomplete pair, is not dialled, and ends its connection;
//! its streams count against the session's limit on open streams until
//! the connection has ended.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

use super::channel::{
    parse_forward_ports, port_forward_error, ChannelCodec, PortChannel, PortStream,
    PORT_FORWARD_PROTOCOLS,
};
use super::session::{Handoff, PortForward as PortForwardRequest};
use super::session_io::{Hangup, PipeReader};
use super::spdy::{HeaderBlock, RstStatus, StreamId};
use super::spdy_session::{
    NewStream, SpdyOutbound, SpdySession, StreamEvent, StreamLease, STREAM_TYPE_HEADER,
};
use super::websocket;
use super::ws_session::{WsOutbound, WsSession};
use super::{PortForwardError, SpdySessionError};
use crate::mailbox;
use crate::supervisor;

/// The SPDY subprotocol of port forwarding; the kubelet accepts no other.
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
const SPDY_PROTOCOLS: &[&str] = &[SPDY_PROTOCOL];

/// Stream headers of a SPDY port-forward pair (SPDY names are lower-case).
const PORT_HEADER: &str = "port";
const REQUEST_ID_HEADER: &str = "requestid";

/// The query parameter naming the ports of a WebSocket session.
const PORT_QUERY: &str = "port";

/// How long one connection attempt to the pod's port may take. On the
/// loopback interface an attempt is answered at once unless the listener's
/// backlog is full.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection whose pod side has closed waits for the client to
/// close its side before it ends anyway: a client that waits for the end
/// of the connection before closing its local socket must not hang it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bytes read from the pod's socket at a time: the Kubernetes clients copy
/// in 32 KiB pieces too.
const COPY_BUFFER_BYTES: usize = 32 * 1024;

/// How long the SPDY session waits for a stream when no pair is incomplete
/// before it looks again; nothing happens on that tick.
const STREAM_WAIT: Duration = Duration::from_secs(60);

/// Incomplete SPDY pairs one session holds; a stream that would start one
/// more is refused. A Kubernetes client opens both streams of a pair back
/// to back, so only a client that leaves pairs half-open comes near this,
/// and each pair holds two streams' headers and pipes.
pub const MAX_PENDING_PAIRS: usize = 16;

/// Incomplete SPDY pairs all sessions together hold. A pair's data stream
/// may carry bytes before the pair is complete, which wait in its inbound
/// pipe (a quarter MiB and one DATA frame at most), so this bounds that
/// memory too; a kubelet's pairs are incomplete for a moment only.
pub const MAX_TOTAL_PENDING_PAIRS: usize = 64;

/// Connections one session forwards at once: one per connection its user
/// accepted locally and has not closed, which for `kubectl port-forward`
/// is a handful. Each costs a socket in the pod and two threads here.
pub const MAX_SESSION_CONNECTIONS: usize = 32;

/// Connections all sessions together forward at once. With two threads
/// each this bounds the forwarding threads of the process, as the systemd
/// unit's `TasksMax=` counts on.
pub const MAX_TOTAL_CONNECTIONS: usize = 256;

/// The refusal of a connection beyond either limit.
const TOO_MANY_CONNECTIONS: PortForwardError = PortForwardError::TooManyConnections {
    per_session: MAX_SESSION_CONNECTIONS,
    total: MAX_TOTAL_CONNECTIONS,
};

/// Names of the threads of a connection, as seen in `/proc/<pid>/task/*/comm`.
const CONNECTION_THREAD_NAME: &str = "port-forward";
const UPLOAD_THREAD_NAME: &str = "port-upload";

/// Opens connections to the ports of one pod.
pub trait PortDialer: Sync + fmt::Debug {
    /// A connection to `port` on the pod's loopback interface.
    fn dial(&self, port: u16) -> Result<TcpStream, PortForwardError>;
}

/// Connects to `port` on `127.0.0.1`, else on `::1`: a server may listen
/// on one family only, and IPv4 comes first as it always has.
pub fn connect_loopback(port: u16) -> Result<TcpStream, PortForwardError> {
    let ipv4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let ipv4 = match TcpStream::connect_timeout(&ipv4, CONNECT_TIMEOUT) {
        Ok(socket) => return Ok(socket),
        Err(err) => err,
    };
    let ipv6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&ipv6, CONNECT_TIMEOUT).map_err(|ipv6| PortForwardError::Connect {
        port,
        ipv4,
        ipv6,
    })
}

/// Runs the port-forward session of `request` on `handoff`'s connection,
/// WebSocket if the request asks for it and SPDY otherwise, dialling with
/// `dialer`; returns when the session is over. Refusals are answered with
/// their HTTP error.
pub fn serve(
    request: &PortForwardRequest,
    handoff: Handoff,
    dialer: &dyn PortDialer,
    stream_creation_timeout: Duration,
) {
    let session = PortForward {
        sandbox_id: &request.pod_sandbox_id,
        ports: request.ports.clone(),
        dialer,
        stream_creation_timeout,
    };
    if websocket::is_upgrade_request(&handoff.headers) {
        session.serve_websocket(handoff);
    } else {
        session.serve_spdy(handoff);
    }
}

/// One session's settings.
#[derive(Debug)]
struct PortForward<'a> {
    sandbox_id: &'a str,
    /// The ports the request named; empty: any port a SPDY stream names.
    ports: Vec<u16>,
    dialer: &'a dyn PortDialer,
    stream_creation_timeout: Duration,
}

impl PortForward<'_> {
    fn serve_spdy(&self, handoff: Handoff) {
        let session = match SpdySession::accept(handoff, SPDY_PROTOCOLS) {
            Ok(session) => session,
            Err(err) => {
                log::info!("port-forward to pod {}: no session: {err}", self.sandbox_id);
                return;
            }
        };
        let outbound = session.outbound();
        let hangup = session.hangup();
        let connections = Budget::new(MAX_SESSION_CONNECTIONS);
        let running = Running::default();
        thread::scope(|scope| {
            let mut pairs = PendingPairs::new(self.stream_creation_timeout, &TOTAL_PENDING_PAIRS);
            loop {
                let deadline = pairs
                    .next_deadline()
                    .unwrap_or_else(|| Instant::now() + STREAM_WAIT);
                match session.next_event(deadline) {
                    Ok(StreamEvent::Opened(stream)) => {
                        if let Some(pair) = pairs.add(stream, outbound) {
                            self.start_spdy_pair(
                                scope,
                                pair,
                                outbound,
                                hangup,
                                &connections,
                                &running,
                            );
                        }
                    }
                    Ok(StreamEvent::Reset(stream)) => {
                        pairs.reset(stream, outbound);
                        running.reset(stream);
                    }
                    Err(SpdySessionError::StreamTimeout) => pairs.expire(Instant::now(), outbound),
                    // The client went, or the session idled out.
                    Err(_) => break,
                }
            }
        });
        log::debug!("port-forward to pod {}: session over", self.sandbox_id);
    }

    /// Forwards a complete pair's connection, or refuses both its streams
    /// when the session or the process forwards as many as it may.
    fn start_spdy_pair<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        pair: CompletePair,
        outbound: &Arc<SpdyOutbound>,
        hangup: &'env Hangup,
        connections: &'env Budget,
        running: &'env Running,
    ) {
        let CompletePair { port, data, error } = pair;
        let Some(places) = Places::take(connections, &TOTAL_CONNECTIONS) else {
            log::info!(
                "port-forward to pod {}: refusing streams {} and {}: {}",
                self.sandbox_id,
                data.id,
                error.id,
                TOO_MANY_CONNECTIONS
            );
            for stream in [data.id, error.id] {
                let _ = outbound.reset_stream(stream, RstStatus::REFUSED_STREAM);
            }
            return;
        };
        // Nothing is read from the error stream; what the client might send
        // there is dropped.
        drop(error.inbound);
        let client = ClientEnd::Spdy {
            outbound: Arc::clone(outbound),
            data: data.id,
            error: error.id,
        };
        let held = Held {
            _places: places,
            spdy: Some(SpdyHold {
                data: data.lease,
                _error: error.lease,
                running,
            }),
        };
        self.start_connection(scope, port, client, data.inbound, hangup, held);
    }

    fn serve_websocket(&self, handoff: Handoff) {
        let ports = if self.ports.is_empty() {
            parse_forward_ports(
                handoff
                    .query
                    .iter()
                    .filter(|(name, _)| name == PORT_QUERY)
                    .map(|(_, value)| value.as_str()),
            )
        } else {
            Ok(self.ports.clone())
        };
        let (ports, mut refusal) = match ports {
            Ok(ports) => (ports, None),
            Err(err) => (Vec::new(), Some(err)),
        };
        let data_channels: Vec<u8> = (0..ports.len())
            .filter_map(|index| channel(index, PortStream::Data))
            .collect();
        let codec = |protocol| match refusal.take() {
            Some(err) => Err(err),
            None => ChannelCodec::port_forward(protocol, ports.len()),
        };
        let (session, inbound) =
            match WsSession::accept(handoff, PORT_FORWARD_PROTOCOLS, codec, &data_channels) {
                Ok(accepted) => accepted,
                Err(err) => {
                    log::info!("port-forward to pod {}: no session: {err}", self.sandbox_id);
                    return;
                }
            };
        if let Err(err) = session.outbound().announce_ports(&ports) {
            log::debug!("port-forward to pod {}: {err}", self.sandbox_id);
            return;
        }
        let hangup = session.hangup();
        let connections = Budget::new(MAX_SESSION_CONNECTIONS);
        thread::scope(|scope| {
            for (index, (&port, inbound)) in ports.iter().zip(inbound).enumerate() {
                // Every index has both channels: the codec accepted as many
                // ports.
                let (Some(data), Some(error)) = (
                    channel(index, PortStream::Data),
                    channel(index, PortStream::Error),
                ) else {
                    continue;
                };
                let client = ClientEnd::WebSocket {
                    outbound: Arc::clone(session.outbound()),
                    data,
                    error,
                };
                let Some(places) = Places::take(&connections, &TOTAL_CONNECTIONS) else {
                    self.fail(port, &client, &TOO_MANY_CONNECTIONS);
                    continue;
                };
                let held = Held {
                    _places: places,
                    spdy: None,
                };
                self.start_connection(scope, port, client, inbound, hangup, held);
            }
        });
        session.close();
    }

    /// Forwards one connection on a thread of its own; if none can be
    /// started, the client is told on the error stream.
    fn start_connection<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        port: u16,
        client: ClientEnd,
        inbound: PipeReader,
        hangup: &'env Hangup,
        held: Held<'env>,
    ) {
        let reporter = client.clone();
        let spawned = supervisor::spawn_scoped_named(
            scope,
            CONNECTION_THREAD_NAME.to_owned(),
            Box::new(move || self.forward(port, &client, inbound, hangup, &held)),
        );
        if let Err(err) = spawned {
            self.fail(port, &reporter, &PortForwardError::Thread(err));
            reporter.finish();
        }
    }

    /// Dials `port` and copies both ways until the connection is over, then
    /// reports how it ended and closes the client's streams.
    fn forward(
        &self,
        port: u16,
        client: &ClientEnd,
        inbound: PipeReader,
        hangup: &Hangup,
        held: &Held<'_>,
    ) {
        let forwarded = self.dial(port, hangup, held).and_then(|socket| {
            // Whatever blocks on the socket is released when the client
            // goes, or resets the data stream.
            let watched = socket.try_clone().map_err(PortForwardError::Socket)?;
            let registered = hangup.on_hang_up(move || {
                let _ = watched.shutdown(Shutdown::Both);
            });
            let copied = held
                .watch(&socket)
                .and_then(|()| copy_both_ways(&socket, inbound, client));
            held.unwatch();
            hangup.cancel(registered);
            copied
        });
        match forwarded {
            Ok(()) => {}
            // Nobody is left to tell.
            Err(_) if hangup.is_hung_up() => {}
            Err(err @ PortForwardError::StreamReset { .. }) => {
                log::debug!("port-forward to pod {}: {err}", self.sandbox_id);
            }
            Err(err) => self.fail(port, client, &err),
        }
        client.finish();
    }

    fn dial(
        &self,
        port: u16,
        hangup: &Hangup,
        held: &Held<'_>,
    ) -> Result<TcpStream, PortForwardError> {
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Err(PortForwardError::PortNotRequested { port });
        }
        if hangup.is_hung_up() {
            return Err(PortForwardError::ClientGone);
        }
        held.check_reset()?;
        self.dialer.dial(port)
    }

    /// Reports a failure on the connection's error stream, in the kubelet's
    /// words.
    fn fail(&self, port: u16, client: &ClientEnd, err: &PortForwardError) {
        log::info!(
            "port-forward of port {port} to pod {} failed: {err}",
            self.sandbox_id
        );
        client.report(&port_forward_error(port, self.sandbox_id, err));
    }
}

/// The channel of a forwarded port's data or error stream.
fn channel(index: usize, stream: PortStream) -> Option<u8> {
    PortChannel { index, stream }.channel()
}

/// Incomplete pairs across all sessions.
static TOTAL_PENDING_PAIRS: Budget = Budget::new(MAX_TOTAL_PENDING_PAIRS);

/// Forwarded connections across all sessions.
static TOTAL_CONNECTIONS: Budget = Budget::new(MAX_TOTAL_CONNECTIONS);

/// A count of things in use, refusing more than its limit.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    const fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// One more, unless the limit is reached.
    fn take(&self) -> Option<Place<'_>> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(self))
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One unit of a [`Budget`], given back when dropped.
#[derive(Debug)]
struct Place<'a>(&'a Budget);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's places in its session's budget and the process's.
#[derive(Debug)]
struct Places<'a> {
    _session: Place<'a>,
    _total: Place<'a>,
}

impl<'a> Places<'a> {
    /// Both places, or neither.
    fn take(session: &'a Budget, total: &'a Budget) -> Option<Places<'a>> {
        let session = session.take()?;
        let total = total.take()?;
        Some(Places {
            _session: session,
            _total: total,
        })
    }
}

/// The sockets of a SPDY session's running connections, by data stream,
/// so that a reset of the data stream ends its connection.
#[derive(Debug, Default)]
struct Running(Mutex<HashMap<StreamId, TcpStream>>);

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, TcpStream>> {
        // The map stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection of data stream `stream`, if one runs.
    fn reset(&self, stream: StreamId) {
        if let Some(socket) = self.lock().remove(&stream) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// What a forwarded connection holds until it ends.
#[derive(Debug)]
struct Held<'a> {
    _places: Places<'a>,
    spdy: Option<SpdyHold<'a>>,
}

/// A SPDY connection's streams, kept counted as open until it ends.
#[derive(Debug)]
struct SpdyHold<'a> {
    data: StreamLease,
    _error: StreamLease,
    running: &'a Running,
}

impl Held<'_> {
    /// Fails once the client has reset the data stream.
    fn check_reset(&self) -> Result<(), PortForwardError> {
        match &self.spdy {
            Some(spdy) if spdy.data.is_reset() => Err(PortForwardError::StreamReset {
                stream: spdy.data.stream(),
            }),
            _ => Ok(()),
        }
    }

    /// Lets a reset of the data stream shut `socket` down. The reset flag
    /// is set before the session hears of the reset, so checking it after
    /// registering misses no reset.
    fn watch(&self, socket: &TcpStream) -> Result<(), PortForwardError> {
        if let Some(spdy) = &self.spdy {
            let watched = socket.try_clone().map_err(PortForwardError::Socket)?;
            spdy.running.lock().insert(spdy.data.stream(), watched);
        }
        self.check_reset()
    }

    fn unwatch(&self) {
        if let Some(spdy) = &self.spdy {
            spdy.running.lock().remove(&spdy.data.stream());
        }
    }
}

/// How copying the pod's bytes to the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownloadEnd {
    /// The pod closed its side of the connection.
    PodClosed,
    /// The client can take no more (it reset the stream, or left).
    ClientGone,
}

/// Copies the client's bytes to the pod on a second thread and the pod's
/// bytes to the client on this one, until both are done (see the module
/// documentation for how each side's close is handled).
fn copy_both_ways(
    socket: &TcpStream,
    inbound: PipeReader,
    client: &ClientEnd,
) -> Result<(), PortForwardError> {
    let releaser = inbound.closer();
    // The upload thread leaves its outcome here rather than returning it
    // (see `spawn_scoped_named`).
    let mut uploaded = Ok(());
    let outcome = &mut uploaded;
    let downloaded = thread::scope(|scope| {
        let (done_tx, done_rx) = mailbox::channel::<()>();
        let upload_thread = supervisor::spawn_scoped_named(
            scope,
            UPLOAD_THREAD_NAME.to_owned(),
            Box::new(move || {
                let _done = done_tx;
                *outcome = upload(inbound, socket);
            }),
        )
        .map_err(PortForwardError::Thread)?;
        let downloaded = download(socket, client);
        if matches!(downloaded, Ok(DownloadEnd::PodClosed)) {
            client.end_data();
            // Either the upload ended or the grace passed.
            let _ = done_rx.recv_timeout(CLOSE_GRACE);
        }
        // Whatever is still going on ends now.
        releaser.close();
        let _ = socket.shutdown(Shutdown::Both);
        if let Err(panic) = upload_thread.join() {
            std::panic::resume_unwind(panic);
        }
        downloaded
    });
    downloaded.and(uploaded)
}

/// Copies what the client sends to the pod; when the client closes its
/// data stream, the pod reads end-of-stream while its reply still flows.
fn upload(mut inbound: PipeReader, mut socket: &TcpStream) -> Result<(), PortForwardError> {
    // Reading the pipe cannot fail, so any error is the socket's.
    if let Err(err) = io::copy(&mut inbound, &mut socket) {
        let _ = socket.shutdown(Shutdown::Both);
        return Err(PortForwardError::Socket(err));
    }
    let _ = socket.shutdown(Shutdown::Write);
    Ok(())
}

/// Copies what the pod sends to the client until either side stops.
fn download(mut socket: &TcpStream, client: &ClientEnd) -> Result<DownloadEnd, PortForwardError> {
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    loop {
        let read = match socket.read(&mut buffer) {
            Ok(0) => return Ok(DownloadEnd::PodClosed),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(PortForwardError::Socket(err)),
        };
        if let Err(err) = client.send(&buffer[..read]) {
            log::debug!("port-forward: the client takes no more data: {err}");
            return Ok(DownloadEnd::ClientGone);
        }
    }
}

/// The client's side of one forwarded connection: where the pod's bytes
/// and the failure message go.
#[derive(Debug, Clone)]
enum ClientEnd {
    Spdy {
        outbound: Arc<SpdyOutbound>,
        data: StreamId,
        error: StreamId,
    },
    WebSocket {
        outbound: Arc<WsOutbound>,
        data: u8,
        error: u8,
    },
}

impl ClientEnd {
    fn send(&self, bytes: &[u8]) -> Result<(), PortForwardError> {
        match self {
            ClientEnd::Spdy { outbound, data, .. } => {
                outbound.send(*data, bytes).map_err(PortForwardError::Spdy)
            }
            ClientEnd::WebSocket { outbound, data, .. } => outbound
                .send(*data, bytes)
                .map_err(PortForwardError::WebSocket),
        }
    }

    /// The pod closed its side: SPDY half-closes the data stream; the
    /// WebSocket channels have no way to say so.
    fn end_data(&self) {
        if let ClientEnd::Spdy { outbound, data, .. } = self {
            // A client that is gone or reset the stream needs no FIN.
            let _ = outbound.close_stream(*data);
        }
    }

    fn report(&self, message: &str) {
        let sent = match self {
            ClientEnd::Spdy {
                outbound, error, ..
            } => outbound
                .send(*error, message.as_bytes())
                .map_err(PortForwardError::Spdy),
            ClientEnd::WebSocket {
                outbound, error, ..
            } => outbound
                .send(*error, message.as_bytes())
                .map_err(PortForwardError::WebSocket),
        };
        if let Err(err) = sent {
            log::debug!("port-forward: cannot report a failure to the client: {err}");
        }
    }

    /// The connection is over: SPDY closes both streams, which is what the
    /// client waits for; a WebSocket session ends with its last connection.
    fn finish(&self) {
        if let ClientEnd::Spdy {
            outbound,
            data,
            error,
        } = self
        {
            let _ = outbound.close_stream(*error);
            let _ = outbound.close_stream(*data);
        }
    }
}

/// What a SPDY port-forward stream's headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamHeaders {
    /// Pairs a data stream with its error stream.
    request_id: String,
    kind: PortStream,
    port: u16,
}

/// Reads a stream's headers as the kubelet does: `port` and `streamtype`
/// are required; a missing `requestid` is made up from the stream id.
/// Of a header with several values, the first counts.
fn parse_stream_headers(
    stream: StreamId,
    headers: &HeaderBlock,
) -> Result<StreamHeaders, PortForwardError> {
    let bad = |problem: String| PortForwardError::BadStream { stream, problem };
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.split('\0').next())
            .filter(|value| !value.is_empty())
    };
    let port =
        first(PORT_HEADER).ok_or_else(|| bad(format!("{PORT_HEADER:?} header is required")))?;
    let port = match port.parse::<u16>() {
        Ok(number) if port.bytes().all(|b| b.is_ascii_digit()) => number,
        _ => return Err(bad(format!("unable to parse {port:?} as a port"))),
    };
    if port == 0 {
        return Err(bad("port \"0\" must be > 0".to_owned()));
    }
    let kind = match first(STREAM_TYPE_HEADER) {
        Some("data") => PortStream::Data,
        Some("error") => PortStream::Error,
        Some(other) => return Err(bad(format!("invalid stream type {other:?}"))),
        None => return Err(bad(format!("{STREAM_TYPE_HEADER:?} header is required"))),
    };
    let request_id = match first(REQUEST_ID_HEADER) {
        Some(id) => id.to_owned(),
        // Old clients open the error stream, then the data stream, with
        // consecutive odd ids; this pairs them unless connections overlap.
        None => match kind {
            PortStream::Error => stream.to_string(),
            PortStream::Data => (i64::from(stream) - 2).to_string(),
        },
    };
    Ok(StreamHeaders {
        request_id,
        kind,
        port,
    })
}

/// A pair of SPDY streams ready to forward a connection.
#[derive(Debug)]
struct CompletePair {
    /// The data stream's port.
    port: u16,
    data: NewStream,
    error: NewStream,
}

/// A pair still missing a stream.
#[derive(Debug)]
struct PendingPair {
    deadline: Instant,
    data: Option<(NewStream, u16)>,
    error: Option<NewStream>,
    _place: Place<'static>,
}

impl PendingPair {
    fn has(&self, stream: StreamId) -> bool {
        self.data
            .as_ref()
            .is_some_and(|(data, _)| data.id == stream)
            || self.error.as_ref().is_some_and(|error| error.id == stream)
    }
}

/// The incomplete pairs of a SPDY session, by request ID: at most
/// [`MAX_PENDING_PAIRS`], and places in `total` (shared by all sessions).
#[derive(Debug)]
struct PendingPairs {
    pairs: HashMap<String, PendingPair>,
    timeout: Duration,
    total: &'static Budget,
}

impl PendingPairs {
    fn new(timeout: Duration, total: &'static Budget) -> PendingPairs {
        PendingPairs {
            pairs: HashMap::new(),
            timeout,
            total,
        }
    }

    /// When the oldest incomplete pair times out.
    fn next_deadline(&self) -> Option<Instant> {
        self.pairs.values().map(|pair| pair.deadline).min()
    }

    /// Takes a stream the client opened; returns its pair once complete. A
    /// malformed or repeated stream is closed.
    fn add(&mut self, stream: NewStream, outbound: &SpdyOutbound) -> Option<CompletePair> {
        let headers = match parse_stream_headers(stream.id, &stream.headers) {
            Ok(headers) => headers,
            Err(err) => {
                log::info!("port-forward: refusing a stream: {err}");
                let _ = outbound.close_stream(stream.id);
                return None;
            }
        };
        let StreamHeaders {
            request_id,
            kind,
            port,
        } = headers;
        if !self.pairs.contains_key(&request_id) {
            let place = (self.pairs.len() < MAX_PENDING_PAIRS)
                .then(|| self.total.take())
                .flatten();
            let Some(place) = place else {
                log::info!(
                    "port-forward: refusing stream {}: too many incomplete pairs",
                    stream.id
                );
                let _ = outbound.reset_stream(stream.id, RstStatus::REFUSED_STREAM);
                return None;
            };
            self.pairs.insert(
                request_id.clone(),
                PendingPair {
                    deadline: Instant::now() + self.timeout,
                    data: None,
                    error: None,
                    _place: place,
                },
            );
        }
        let pair = self.pairs.get_mut(&request_id)?;
        let taken = match kind {
            PortStream::Data if pair.data.is_none() => {
                pair.data = Some((stream, port));
                None
            }
            PortStream::Error if pair.error.is_none() => {
                pair.error = Some(stream);
                None
            }
            _ => Some(stream),
        };
        if let Some(repeated) = taken {
            let kind = match kind {
                PortStream::Data => "data",
                PortStream::Error => "error",
            };
            let message = format!(
                "error processing stream for request {request_id}: {kind} stream already assigned"
            );
            log::info!("port-forward: {message}");
            if let Some(error) = &pair.error {
                let _ = outbound.send(error.id, message.as_bytes());
            }
            let _ = outbound.close_stream(repeated.id);
            return None;
        }
        if pair.data.is_none() || pair.error.is_none() {
            return None;
        }
        match self.pairs.remove(&request_id) {
            Some(PendingPair {
                data: Some((data, port)),
                error: Some(error),
                ..
            }) => Some(CompletePair { port, data, error }),
            // Both were just seen present.
            _ => None,
        }
    }

    /// Drops the incomplete pair of a stream the client reset, closing its
    /// other stream.
    fn reset(&mut self, stream: StreamId, outbound: &SpdyOutbound) {
        let Some(request_id) = self
            .pairs
            .iter()
            .find(|(_, pair)| pair.has(stream))
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        if let Some(pair) = self.pairs.remove(&request_id) {
            log::debug!("port-forward: request {request_id} dropped: stream {stream} was reset");
            let others = pair.data.iter().map(|(data, _)| data).chain(&pair.error);
            for other in others.filter(|other| other.id != stream) {
                let _ = outbound.close_stream(other.id);
            }
        }
    }

    /// Closes the pairs incomplete at their deadline, telling the client on
    /// the error stream if it opened one.
    fn expire(&mut self, now: Instant, outbound: &SpdyOutbound) {
        let expired: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, pair)| pair.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for request_id in expired {
            let Some(pair) = self.pairs.remove(&request_id) else {
                continue;
            };
            log::info!("port-forward: request {request_id} timed out waiting for streams");
            if let Some(error) = &pair.error {
                let message = format!("(request={request_id}) timed out waiting for streams");
                let _ = outbound.send(error.id, message.as_bytes());
                let _ = outbound.close_stream(error.id);
            }
            if let Some((data, _)) = &pair.data {
                let _ = outbound.close_stream(data.id);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::streaming::spdy::{Frame, SpdyReader, SpdyWriter, SynStream};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use tungstenite::client::IntoClientRequest;
    use tungstenite::{Bytes, Message};

    const TIMEOUT: Duration = Duration::from_secs(10);
    const SANDBOX: &str = "f00dfeed";

    fn block(fields: &[(&str, &str)]) -> HeaderBlock {
        fields.iter().copied().collect()
    }

    #[test]
    fn stream_headers_are_read_as_the_kubelet_reads_them() {
        let parsed = parse_stream_headers(
            5,
            &block(&[("streamtype", "data"), ("port", "8080"), ("requestid", "7")]),
        )
        .unwrap();
        assert_eq!(
            parsed,
            StreamHeaders {
                request_id: "7".to_owned(),
                kind: PortStream::Data,
                port: 8080
            }
        );
        // Old clients send no request ID: the error stream's id names the
        // pair, and the data stream follows it.
        let error = parse_stream_headers(9, &block(&[("streamtype", "error"), ("port", "80")]));
        let data = parse_stream_headers(11, &block(&[("streamtype", "data"), ("port", "80")]));
        assert_eq!(error.unwrap().request_id, "9");
        assert_eq!(data.unwrap().request_id, "9");
    }

    #[test]
    fn malformed_stream_headers_are_refused_with_the_kubelets_reasons() {
        let problem = |fields: &[(&str, &str)]| match parse_stream_headers(1, &block(fields)) {
            Err(PortForwardError::BadStream { problem, .. }) => problem,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            problem(&[("streamtype", "data")]),
            "\"port\" header is required"
        );
        assert_eq!(
            problem(&[("streamtype", "data"), ("port", "+80")]),
            "unable to parse \"+80\" as a port"
        );
        assert_eq!(
            problem(&[("streamtype", "data"), ("port", "65536")]),
            "unable to parse \"65536\" as a port"
        );
        assert_eq!(
            problem(&[("streamtype", "data"), ("port", "0")]),
            "port \"0\" must be > 0"
        );
        assert_eq!(
            problem(&[("port", "80")]),
            "\"streamtype\" header is required"
        );
        assert_eq!(
            problem(&[("streamtype", "stdin"), ("port", "80")]),
            "invalid stream type \"stdin\""
        );
    }

    /// Dials the host's own loopback interface: the tests' "pod" is this
    /// process.
    #[derive(Debug)]
    struct HostDialer;

    impl PortDialer for HostDialer {
        fn dial(&self, port: u16) -> Result<TcpStream, PortForwardError> {
            connect_loopback(port)
        }
    }

    /// A server that echoes each connection's bytes until the client
    /// half-closes, then closes; returns its port.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                thread::spawn(move || {
                    let mut reader = conn.try_clone().unwrap();
                    let _ = io::copy(&mut reader, &mut conn);
                });
            }
        });
        port
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn request(ports: &[u16]) -> PortForwardRequest {
        PortForwardRequest {
            pod_sandbox_id: SANDBOX.to_owned(),
            ports: ports.to_vec(),
        }
    }

    /// Reads the request head with the server's reader and hands the
    /// connection over as the server would.
    fn handoff(mut conn: TcpStream) -> Handoff {
        let (head, leftover) =
            crate::codec::http_head::read_request(&mut conn, Duration::from_secs(30)).unwrap();
        Handoff::new(head, conn, leftover, None)
    }

    /// Serves one port-forward session on a fresh listener; the thread
    /// ends when the session does.
    fn serve_one(
        request: PortForwardRequest,
        creation_timeout: Duration,
    ) -> (SocketAddr, thread::JoinHandle<()>) {
        serve_one_idle(request, creation_timeout, None)
    }

    fn serve_one_idle(
        request: PortForwardRequest,
        creation_timeout: Duration,
        idle_timeout: Option<Duration>,
    ) -> (SocketAddr, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut handoff = handoff(conn);
            handoff.idle_timeout = idle_timeout;
            serve(&request, handoff, &HostDialer, creation_timeout);
        });
        (address, server)
    }

    /// The client end of a SPDY session, through our own codec (the
    /// integration tests use an independent client).
    struct Client {
        reader: SpdyReader<BufReader<TcpStream>>,
        writer: SpdyWriter<TcpStream>,
        next_stream: StreamId,
        /// What arrived on each stream, and whether it was closed.
        received: HashMap<StreamId, (Vec<u8>, bool)>,
        /// The streams the server reset, and why.
        resets: HashMap<StreamId, RstStatus>,
    }

    impl Client {
        fn connect(address: SocketAddr, protocol: &str) -> (String, Option<Client>) {
            let mut conn = TcpStream::connect(address).unwrap();
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            write!(
                conn,
                "POST /cri/portforward/token HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                 Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
            )
            .unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                assert_ne!(reader.read_line(&mut head).unwrap(), 0, "{head}");
            }
            if !head.starts_with("HTTP/1.1 101 ") {
                return (head, None);
            }
            let client = Client {
                reader: SpdyReader::new(reader),
                writer: SpdyWriter::new(conn),
                next_stream: 1,
                received: HashMap::new(),
                resets: HashMap::new(),
            };
            (head, Some(client))
        }

        fn open(&mut self, fields: &[(&str, &str)]) -> StreamId {
            let stream = self.next_stream;
            self.next_stream += 2;
            self.writer
                .write_syn_stream(&SynStream {
                    stream,
                    associated_to: None,
                    priority: 0,
                    slot: 0,
                    fin: false,
                    unidirectional: false,
                    headers: block(fields),
                })
                .unwrap();
            stream
        }

        /// Opens an error and a data stream for `port`, as kubectl does.
        fn open_pair(&mut self, port: u16, request_id: &str) -> (StreamId, StreamId) {
            let port = port.to_string();
            let error = self.open(&[
                ("streamtype", "error"),
                ("port", &port),
                ("requestid", request_id),
            ]);
            let data = self.open(&[
                ("streamtype", "data"),
                ("port", &port),
                ("requestid", request_id),
            ]);
            (error, data)
        }

        fn send(&mut self, stream: StreamId, data: &[u8], fin: bool) {
            self.writer.write_data(stream, fin, data).unwrap();
        }

        fn reset(&mut self, stream: StreamId) {
            self.writer
                .write_rst_stream(stream, RstStatus::CANCEL)
                .unwrap();
        }

        /// Reads frames until `stream` is closed by the server; returns
        /// what it carried.
        fn until_closed(&mut self, stream: StreamId) -> Vec<u8> {
            while !self
                .received
                .get(&stream)
                .is_some_and(|(_, closed)| *closed)
            {
                match self.reader.read_frame().unwrap() {
                    Frame::Data { stream, fin, data } => {
                        let entry = self.received.entry(stream).or_default();
                        entry.0.extend_from_slice(&data);
                        entry.1 |= fin;
                    }
                    Frame::RstStream { stream, status } => {
                        self.received.entry(stream).or_default().1 = true;
                        self.resets.insert(stream, status);
                    }
                    _ => {}
                }
            }
            self.received[&stream].0.clone()
        }
    }

    #[test]
    fn concurrent_pairs_each_forward_a_connection_and_end_on_their_own() {
        let port = echo_server();
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let (_, client) = Client::connect(address, SPDY_PROTOCOL);
        let mut client = client.unwrap();
        let (error_a, data_a) = client.open_pair(port, "0");
        let (error_b, data_b) = client.open_pair(port, "1");
        client.send(data_b, b"to b", false);
        client.send(data_a, b"to a", false);
        client.send(data_a, b"", true);
        assert_eq!(client.until_closed(data_a), b"to a");
        assert_eq!(client.until_closed(error_a), b"", "no failure to report");
        // The other connection is still open.
        client.send(data_b, b", again", true);
        assert_eq!(client.until_closed(data_b), b"to b, again");
        assert_eq!(client.until_closed(error_b), b"");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_reported_on_the_error_stream_and_the_pair_closed() {
        let port = closed_port();
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let (error, data) = client.open_pair(port, "0");
        let message = String::from_utf8(client.until_closed(error)).unwrap();
        assert!(
            message.starts_with(&format!(
                "error forwarding port {port} to pod {SANDBOX}, uid : failed to connect to \
                 localhost:{port} inside the pod's network namespace, IPv4: "
            )),
            "{message}"
        );
        assert!(message.contains("refused"), "{message}");
        assert_eq!(client.until_closed(data), b"");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_port_the_request_did_not_name_is_refused() {
        let port = echo_server();
        let (address, server) = serve_one(request(&[port.wrapping_add(1)]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let (error, data) = client.open_pair(port, "0");
        assert_eq!(
            String::from_utf8(client.until_closed(error)).unwrap(),
            format!(
                "error forwarding port {port} to pod {SANDBOX}, uid : port {port} is not one of \
                 the ports the port-forward request named"
            )
        );
        assert_eq!(client.until_closed(data), b"");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn streams_without_request_id_are_paired_by_stream_id() {
        let port = echo_server();
        let (address, server) = serve_one(request(&[port]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let port_text = port.to_string();
        let error = client.open(&[("streamtype", "error"), ("port", &port_text)]);
        let data = client.open(&[("streamtype", "data"), ("port", &port_text)]);
        client.send(data, b"old client", true);
        assert_eq!(client.until_closed(data), b"old client");
        assert_eq!(client.until_closed(error), b"");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn an_incomplete_pair_times_out_with_a_message_and_bad_streams_are_closed() {
        let (address, server) = serve_one(request(&[]), Duration::from_millis(100));
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let bad = client.open(&[("streamtype", "data"), ("port", "http")]);
        assert_eq!(client.until_closed(bad), b"");
        let error = client.open(&[("streamtype", "error"), ("port", "80"), ("requestid", "3")]);
        let started = Instant::now();
        assert_eq!(
            String::from_utf8(client.until_closed(error)).unwrap(),
            "(request=3) timed out waiting for streams"
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn an_idle_session_ends_with_its_open_connections() {
        let port = echo_server();
        let idle = Duration::from_millis(300);
        let (address, server) = serve_one_idle(request(&[]), TIMEOUT, Some(idle));
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let started = Instant::now();
        let (error, data) = client.open_pair(port, "0");
        client.send(data, b"once", false);
        assert_eq!(client.until_closed(data), b"once");
        assert_eq!(client.until_closed(error), b"");
        server.join().unwrap();
        assert!(started.elapsed() >= idle);
    }

    #[test]
    fn other_spdy_protocols_are_refused_with_403() {
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let (head, client) = Client::connect(address, "v4.channel.k8s.io");
        assert!(client.is_none());
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
        assert!(
            head.contains("X-Accepted-Stream-Protocol-Versions: portforward.k8s.io\r\n"),
            "{head}"
        );
        server.join().unwrap();
    }

    fn websocket(address: SocketAddr, query: &str) -> tungstenite::WebSocket<TcpStream> {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut request = format!("ws://{address}/cri/portforward/token{query}")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        tungstenite::client(request, stream).unwrap().0
    }

    /// The next data message, as (channel, payload); `None` once closed.
    fn next_message(socket: &mut tungstenite::WebSocket<TcpStream>) -> Option<(u8, Vec<u8>)> {
        loop {
            match socket.read() {
                Ok(Message::Binary(bytes)) => {
                    let (&channel, payload) = bytes.split_first().unwrap();
                    return Some((channel, payload.to_vec()));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn websocket_ports_from_the_query_are_announced_forwarded_and_reported() {
        let (open, closed) = (echo_server(), closed_port());
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut socket = websocket(address, &format!("?port={open}&port={closed}"));
        let mut received: HashMap<u8, Vec<u8>> = HashMap::new();
        for _ in 0..4 {
            let (channel, payload) = next_message(&mut socket).unwrap();
            assert!(received.insert(channel, payload).is_none());
        }
        assert_eq!(received[&0], open.to_le_bytes());
        assert_eq!(received[&1], open.to_le_bytes());
        assert_eq!(received[&2], closed.to_le_bytes());
        assert_eq!(received[&3], closed.to_le_bytes());
        socket
            .send(Message::Binary(Bytes::from_static(b"\x00ping")))
            .unwrap();
        let mut echoed = Vec::new();
        let mut report = Vec::new();
        while echoed != b"ping" || report.is_empty() {
            let (channel, payload) = next_message(&mut socket).unwrap();
            match channel {
                0 => echoed.extend_from_slice(&payload),
                3 => report.extend_from_slice(&payload),
                other => panic!("data on channel {other}"),
            }
        }
        let report = String::from_utf8(report).unwrap();
        assert!(
            report.starts_with(&format!("error forwarding port {closed} to pod {SANDBOX}")),
            "{report}"
        );
        drop(socket);
        server.join().unwrap();
    }

    #[test]
    fn a_budget_refuses_past_its_limit_and_takes_back_what_is_dropped() {
        let budget = Budget::new(2);
        let first = budget.take().unwrap();
        let second = budget.take().unwrap();
        assert!(budget.take().is_none());
        assert_eq!(budget.used(), 2);
        drop(first);
        let third = budget.take().unwrap();
        drop((second, third));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_connection_takes_both_places_or_neither() {
        let (session, total) = (Budget::new(1), Budget::new(0));
        assert!(Places::take(&session, &total).is_none());
        assert_eq!(session.used(), 0);
        let total = Budget::new(1);
        let places = Places::take(&session, &total).unwrap();
        assert!(Places::take(&session, &Budget::new(1)).is_none());
        drop(places);
        assert_eq!((session.used(), total.used()), (0, 0));
    }

    /// A server that holds every connection open without a word; each
    /// connection reports `true` when accepted and `false` when its client
    /// side goes.
    fn holding_server() -> (u16, mpsc::Receiver<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (events_tx, events) = mpsc::channel();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let events_tx = events_tx.clone();
                let _ = events_tx.send(true);
                thread::spawn(move || {
                    let _ = io::copy(&mut conn, &mut io::sink());
                    let _ = events_tx.send(false);
                });
            }
        });
        (port, events)
    }

    #[test]
    fn streams_that_would_start_more_incomplete_pairs_than_the_limit_are_refused() {
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        for n in 0..MAX_PENDING_PAIRS {
            client.open(&[
                ("streamtype", "error"),
                ("port", "80"),
                ("requestid", &n.to_string()),
            ]);
        }
        let refused = client.open(&[("streamtype", "error"), ("port", "80"), ("requestid", "x")]);
        client.until_closed(refused);
        assert_eq!(
            client.resets.get(&refused),
            Some(&RstStatus::REFUSED_STREAM)
        );
        // A stream completing a pending pair is no new pair.
        let echo = echo_server().to_string();
        let data = client.open(&[("streamtype", "data"), ("port", &echo), ("requestid", "0")]);
        client.send(data, b"ping", true);
        assert_eq!(client.until_closed(data), b"ping");
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_reset_stream_drops_its_incomplete_pair() {
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        for round in 0..3 {
            let opened: Vec<StreamId> = (0..MAX_PENDING_PAIRS)
                .map(|n| {
                    let id = format!("{round}-{n}");
                    client.open(&[("streamtype", "error"), ("port", "80"), ("requestid", &id)])
                })
                .collect();
            for stream in opened {
                client.reset(stream);
            }
        }
        // Handled in order after every reset above: had the pairs stayed,
        // this one would be refused.
        let (error, data) = client.open_pair(echo_server(), "last");
        client.send(data, b"ping", true);
        assert_eq!(client.until_closed(data), b"ping");
        client.until_closed(error);
        assert!(client.resets.is_empty(), "{:?}", client.resets);
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn pairs_beyond_the_sessions_connection_limit_are_refused() {
        let (port, _events) = holding_server();
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        for n in 0..MAX_SESSION_CONNECTIONS {
            client.open_pair(port, &n.to_string());
        }
        let (error, data) = client.open_pair(port, "over");
        client.until_closed(error);
        client.until_closed(data);
        assert_eq!(client.resets.get(&error), Some(&RstStatus::REFUSED_STREAM));
        assert_eq!(client.resets.get(&data), Some(&RstStatus::REFUSED_STREAM));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn a_reset_data_stream_ends_its_connection() {
        let (port, events) = holding_server();
        let (address, server) = serve_one(request(&[]), TIMEOUT);
        let mut client = Client::connect(address, SPDY_PROTOCOL).1.unwrap();
        let (error, data) = client.open_pair(port, "1");
        assert!(events.recv_timeout(TIMEOUT).unwrap(), "no connection");
        client.reset(data);
        assert!(!events.recv_timeout(TIMEOUT).unwrap());
        // The connection is over: its error stream is closed.
        assert_eq!(client.until_closed(error), b"");
        drop(client);
        server.join().unwrap();
    }
}
