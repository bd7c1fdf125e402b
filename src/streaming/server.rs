//! The streaming HTTP server: it issues the one-time URLs that Exec,
//! Attach and PortForward return, and hands each connection that presents
//! one to a session.
//!
//! One thread (`streaming`) accepts connections; each connection gets its
//! own thread (`stream-<n>`), which reads the request head
//! (`crate::codec::http_head`), routes it, redeems the token (`super::tokens`) and
//! then calls [`Sessions::serve`] and ends when the session does.
//!
//! Admission: a connection that has not yet sent its request head has
//! shown no token, so it must not take a place a kubelet's session needs.
//! Such connections have a budget of their own, [`MAX_PENDING_CONNECTIONS`]
//! in all and [`MAX_PENDING_PER_PEER`] from one peer address, and
//! [`HEAD_READ_TIMEOUT`] to send the head. A new connection is never
//! refused for want of a place: it pushes out the oldest waiting one (of
//! its own peer first), so silent connections cannot keep a valid URL
//! out. Sessions have their own budget of [`MAX_SESSIONS`], taken once the
//! head is read; beyond it the request gets 503 and keeps its token. Routes are `GET` or `POST` on `/cri/exec/<token>`,
//! `/cri/attach/<token>` and `/cri/portforward/<token>`; the token must
//! have been issued for the route's kind. Any presentation of a token uses
//! it up, on the right route or not. Unknown paths and unknown, used,
//! expired or mismatched tokens all get the same 404, so a client learns
//! nothing about other people's tokens.
//!
//! The server speaks plain HTTP without authentication, like every CRI
//! runtime's: the token is the credential. That is why it listens on
//! loopback unless `--streaming-bind-addr` says otherwise, and why tokens
//! are never logged.
//!
//! Shutdown: dropping the [`StreamingServer`] stops the accept thread and
//! closes the listening socket. Sessions in progress are not waited for:
//! at process exit their threads are abandoned with the process, so they
//! never hold up the gRPC server's SIGTERM drain. The threads inherit the
//! signal mask of the thread that starts the server; `main` blocks SIGTERM
//! and SIGINT before, so only its signal thread sees them.
//!
//! This module does not upgrade protocols or run anything in containers:
//! that is the session's business, behind `super::session`.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::session::{Handoff, Sessions, StreamRequest};
use super::tokens::TokenCache;
use super::{StreamingError, TokenError};
use crate::codec::http_head::{self, RequestHead, HEAD_READ_TIMEOUT};
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// Most sessions served at once. One more is answered 503 and closed: a
/// kubelet runs a handful of streams, so this many means a client that
/// opens sessions and never uses them.
pub const MAX_SESSIONS: usize = 128;

/// Most connections waiting for their request head at once. A kubelet
/// sends its head as soon as it connects, so few ever wait; each waiting
/// connection costs a thread.
pub const MAX_PENDING_CONNECTIONS: usize = 32;

/// Most of [`MAX_PENDING_CONNECTIONS`] from one peer address: half, so
/// that one peer's connections push out its own and leave the others at
/// least the other half.
pub const MAX_PENDING_PER_PEER: usize = MAX_PENDING_CONNECTIONS / 2;

/// The path every route starts with.
const ROUTE_PREFIX: &str = "/cri/";

/// Pause after a failed accept (such as running out of descriptors), so a
/// persistent failure does not spin the accept thread.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// After an error response, how long the server keeps reading what the
/// client still sends. Closing a socket with unread input makes the kernel
/// reset the connection, which can destroy the response before the client
/// reads it.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Most bytes read and discarded while lingering.
const LINGER_BYTES: usize = 64 * 1024;

/// Longest wait to hand an error response to the kernel; a client that
/// reads nothing cannot hold a thread longer.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for the connection that wakes the accept thread on drop.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Without the accept thread no URL is ever served, while Exec, Attach and
/// PortForward go on issuing them: Status reports its death (see
/// `crate::supervisor`). It ends by itself only when the server is dropped.
const ACCEPT_DUTY: Duty = Duty {
    name: "streaming",
    on_death: OnDeath::Report,
    loss: "Exec, Attach and PortForward URLs are not served",
};

/// The three kinds of stream, each with its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Exec,
    Attach,
    PortForward,
}

impl StreamKind {
    /// The kind of stream `request` asks for.
    pub fn of(request: &StreamRequest) -> StreamKind {
        match request {
            StreamRequest::Exec(_) => StreamKind::Exec,
            StreamRequest::Attach(_) => StreamKind::Attach,
            StreamRequest::PortForward(_) => StreamKind::PortForward,
        }
    }

    /// The path segment after `/cri/`.
    pub fn segment(self) -> &'static str {
        match self {
            StreamKind::Exec => "exec",
            StreamKind::Attach => "attach",
            StreamKind::PortForward => "portforward",
        }
    }

    fn from_segment(segment: &str) -> Option<StreamKind> {
        [
            StreamKind::Exec,
            StreamKind::Attach,
            StreamKind::PortForward,
        ]
        .into_iter()
        .find(|kind| kind.segment() == segment)
    }
}

/// What the accept thread, the connection threads and the URL issuer
/// share.
struct Shared {
    tokens: TokenCache<StreamRequest>,
    sessions: Arc<dyn Sessions>,
    idle_timeout: Option<Duration>,
    /// Sessions being served.
    sessions_open: AtomicUsize,
    /// Connections waiting for their request head.
    pending: Mutex<Pending<TcpStream>>,
    stopping: AtomicBool,
}

impl Shared {
    /// The table stays consistent whatever panicked while holding it.
    fn pending(&self) -> MutexGuard<'_, Pending<TcpStream>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server. Issue URLs with [`StreamingServer::url`].
pub struct StreamingServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for StreamingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingServer")
            .field("local_addr", &self.local_addr)
            .field("idle_timeout", &self.shared.idle_timeout)
            .field("tokens", &self.shared.tokens)
            .field(
                "sessions",
                &self.shared.sessions_open.load(Ordering::Relaxed),
            )
            .field("pending", &self.shared.pending().len())
            .finish_non_exhaustive()
    }
}

impl StreamingServer {
    /// Listens on `addr` (port 0: any free port) and starts the accept
    /// thread. `idle_timeout` is handed to every session; zero means none.
    pub fn start(
        addr: SocketAddr,
        idle_timeout: Duration,
        sessions: Arc<dyn Sessions>,
    ) -> Result<StreamingServer, StreamingError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| StreamingError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StreamingError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            tokens: TokenCache::new().map_err(StreamingError::Tokens)?,
            sessions,
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            sessions_open: AtomicUsize::new(0),
            pending: Mutex::new(Pending::default()),
            stopping: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        supervisor::spawn(ACCEPT_DUTY, move || {
            accept_loop(&listener, &accepting);
            Ended::Released
        })
        .map_err(StreamingError::Spawn)?;
        Ok(StreamingServer { local_addr, shared })
    }

    /// The address the server listens on, with the port it was given.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Issues a one-time URL for `request`, which the caller has
    /// validated: `http://<host>:<port>/cri/<kind>/<token>`, with the host
    /// from [`url_authority`].
    pub fn url(&self, request: StreamRequest) -> Result<String, TokenError> {
        let kind = StreamKind::of(&request);
        let token = self.shared.tokens.insert(request)?;
        Ok(format!(
            "http://{}{ROUTE_PREFIX}{}/{token}",
            url_authority(self.local_addr),
            kind.segment()
        ))
    }
}

impl Drop for StreamingServer {
    /// Stops the accept thread: it checks the flag after every accept, and
    /// a connection of our own makes it accept once more. If that
    /// connection fails, the thread stays blocked until the process exits.
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let wake = SocketAddr::new(connect_ip(self.local_addr.ip()), self.local_addr.port());
        if let Err(err) = TcpStream::connect_timeout(&wake, WAKE_TIMEOUT) {
            log::debug!(
                "streaming server on {}: cannot wake the accept thread: {err}",
                self.local_addr
            );
        }
    }
}

/// `host:port` for URLs to a server listening on `addr`, IPv6 in
/// brackets. A server bound to an unspecified address (`0.0.0.0`, `::`)
/// listens on every interface, but a URL needs one host: it gets the
/// loopback address of the same family, because the client of the URL is
/// the kubelet, on this node. The zone of a scoped IPv6 address is left
/// out, as URLs cannot carry it unescaped.
pub fn url_authority(addr: SocketAddr) -> String {
    match connect_ip(addr.ip()) {
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    }
}

/// Where to connect to reach a socket bound to `ip`.
fn connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// A place among the [`MAX_SESSIONS`]; given back when dropped, also when
/// the connection's thread panics.
struct SessionSlot(Arc<Shared>);

impl SessionSlot {
    fn take(shared: &Arc<Shared>) -> Option<SessionSlot> {
        shared
            .sessions_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SESSIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(Arc::clone(shared)))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections waiting for their request head, oldest first, each
/// with a handle (`T`, a clone of its socket) to push it out by. At most
/// [`MAX_PENDING_CONNECTIONS`], and [`MAX_PENDING_PER_PEER`] per peer.
#[derive(Debug)]
struct Pending<T> {
    next_id: u64,
    waiting: VecDeque<(u64, IpAddr, T)>,
}

impl<T> Default for Pending<T> {
    fn default() -> Pending<T> {
        Pending {
            next_id: 0,
            waiting: VecDeque::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Admits a connection from `peer`: its id, and the handle of the
    /// connection it pushed out, if a limit was reached. The oldest of
    /// `peer`'s own goes first; the oldest of all only when `peer` is
    /// under its limit.
    fn admit(&mut self, peer: IpAddr, handle: T) -> (u64, Option<T>) {
        let from_peer = self.waiting.iter().filter(|(_, p, _)| *p == peer).count();
        let out = if from_peer >= MAX_PENDING_PER_PEER {
            self.waiting.iter().position(|(_, p, _)| *p == peer)
        } else if self.waiting.len() >= MAX_PENDING_CONNECTIONS {
            Some(0)
        } else {
            None
        };
        let pushed_out = out
            .and_then(|index| self.waiting.remove(index))
            .map(|(_, _, handle)| handle);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting.push_back((id, peer, handle));
        (id, pushed_out)
    }

    /// Forgets a connection that has read its head or ended; one pushed
    /// out is already forgotten.
    fn remove(&mut self, id: u64) {
        self.waiting.retain(|(waiting, _, _)| *waiting != id);
    }

    fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// A connection's place among the pending ones, given back when dropped.
struct PendingSlot {
    shared: Arc<Shared>,
    id: u64,
}

impl PendingSlot {
    /// Admits `conn`, shutting down the connection it pushes out: that
    /// one's thread then reads end-of-stream and ends.
    fn admit(shared: &Arc<Shared>, conn: &TcpStream, peer: SocketAddr) -> io::Result<PendingSlot> {
        let handle = conn.try_clone()?;
        let (id, pushed_out) = shared.pending().admit(peer.ip(), handle);
        if let Some(old) = pushed_out {
            log::debug!("streaming server: a connection from {peer} pushes out a silent one");
            let _ = old.shutdown(Shutdown::Both);
        }
        Ok(PendingSlot {
            shared: Arc::clone(shared),
            id,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.shared.pending().remove(self.id);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut serial: u64 = 0;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let (conn, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                log::warn!("streaming server: cannot accept a connection: {err}");
                thread::sleep(ACCEPT_RETRY_DELAY);
                continue;
            }
        };
        let slot = match PendingSlot::admit(shared, &conn, peer) {
            Ok(slot) => slot,
            Err(err) => {
                log::warn!("streaming server: cannot set up the connection from {peer}: {err}");
                continue;
            }
        };
        serial = serial.wrapping_add(1);
        let spawned = supervisor::spawn_named(
            format!("stream-{serial}"),
            Box::new(move || serve_connection(conn, peer, slot)),
        );
        // A failed spawn drops the closure, and with it the connection and
        // its slot.
        if let Err(err) = spawned {
            log::warn!("streaming server: cannot start a thread for {peer}: {err}");
        }
    }
}

fn serve_connection(mut conn: TcpStream, peer: SocketAddr, pending: PendingSlot) {
    let shared = Arc::clone(&pending.shared);
    let read = http_head::read_request(&mut conn, HEAD_READ_TIMEOUT).map_err(StreamingError::Http);
    drop(pending);
    let accepted = read.and_then(|(head, leftover)| {
        // Taken before the token is redeemed, so a busy server leaves the
        // token for a retry.
        let slot = SessionSlot::take(&shared).ok_or(StreamingError::Busy)?;
        let request = redeem(&head, &shared.tokens)?;
        Ok((slot, head, leftover, request))
    });
    let (_slot, head, leftover, request) = match accepted {
        Ok(accepted) => accepted,
        Err(err) => {
            if matches!(err, StreamingError::Busy) {
                log::warn!(
                    "streaming server: {MAX_SESSIONS} sessions are open; refusing one from {peer}"
                );
            } else {
                log::debug!("streaming request from {peer} refused: {err}");
            }
            if let Some(response) = err.response() {
                answer_and_close(conn, &response);
            }
            return;
        }
    };
    log::debug!(
        "streaming {} session for {peer}",
        StreamKind::of(&request).segment()
    );
    if let Err(err) = prepare_for_session(&conn) {
        log::warn!(
            "streaming connection from {peer}: {}",
            StreamingError::Socket(err)
        );
        return;
    }
    let handoff = Handoff::new(head, conn, leftover, shared.idle_timeout);
    shared.sessions.serve(request, handoff);
}

/// Routes a request head and redeems its token.
fn redeem(
    head: &RequestHead,
    tokens: &TokenCache<StreamRequest>,
) -> Result<StreamRequest, StreamingError> {
    let (kind, token) = route(&head.path).ok_or(StreamingError::NotFound)?;
    if head.method != "GET" && head.method != "POST" {
        return Err(StreamingError::MethodNotAllowed);
    }
    tokens
        .redeem(token)
        .filter(|request| StreamKind::of(request) == kind)
        .ok_or(StreamingError::NotFound)
}

/// The kind and token of a route path, `/cri/<kind>/<token>`.
fn route(path: &str) -> Option<(StreamKind, &str)> {
    let (segment, token) = path.strip_prefix(ROUTE_PREFIX)?.split_once('/')?;
    let kind = StreamKind::from_segment(segment)?;
    (!token.is_empty() && !token.contains('/')).then_some((kind, token))
}

/// The session gets a blocking socket without timeouts (the head was read
/// with one), and without Nagle's delay: keystrokes and prompts of an
/// interactive exec are small writes that must not wait.
fn prepare_for_session(conn: &TcpStream) -> io::Result<()> {
    conn.set_read_timeout(None)?;
    conn.set_write_timeout(None)?;
    conn.set_nodelay(true)
}

/// Sends `response`, then reads and discards what the client still sends
/// for a bounded time so the close does not reset the connection under the
/// response.
fn answer_and_close(mut conn: TcpStream, response: &[u8]) {
    let sent = conn
        .set_write_timeout(Some(RESPONSE_WRITE_TIMEOUT))
        .and_then(|()| conn.write_all(response))
        .and_then(|()| conn.shutdown(Shutdown::Write));
    if sent.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    let mut sink = [0u8; 4096];
    while discarded < LINGER_BYTES {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || conn.set_read_timeout(Some(remaining)).is_err() {
            return;
        }
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::BufRead;
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::sync::Mutex;

    use super::*;
    use crate::streaming::session::{Attach, Exec, PortForward};

    /// Sessions that report each handoff and answer 200.
    struct Recorder(Mutex<Sender<(StreamRequest, Handoff)>>);

    impl Sessions for Recorder {
        fn serve(&self, request: StreamRequest, mut handoff: Handoff) {
            let _ = handoff
                .conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = self.0.lock().unwrap().send((request, handoff));
        }
    }

    fn server(idle: Duration) -> (StreamingServer, Receiver<(StreamRequest, Handoff)>) {
        let (sender, receiver) = mpsc::channel();
        let server = StreamingServer::start(
            "127.0.0.1:0".parse().unwrap(),
            idle,
            Arc::new(Recorder(Mutex::new(sender))),
        )
        .unwrap();
        (server, receiver)
    }

    fn exec() -> StreamRequest {
        StreamRequest::Exec(Exec {
            container_id: "c".to_owned(),
            cmd: vec!["sh".to_owned()],
            stdout: true,
            ..Exec::default()
        })
    }

    fn attach() -> StreamRequest {
        StreamRequest::Attach(Attach {
            container_id: "c".to_owned(),
            stdout: true,
            ..Attach::default()
        })
    }

    /// Sends `request` to the server and returns the response's status.
    fn send(server: &StreamingServer, request: &str) -> u16 {
        let mut conn = TcpStream::connect(server.local_addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        io::BufReader::new(conn)
            .read_line(&mut status_line)
            .unwrap();
        status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {status_line:?}"))
    }

    fn get(server: &StreamingServer, path: &str) -> u16 {
        send(server, &format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n"))
    }

    fn path_of(url: &str) -> &str {
        let rest = url.strip_prefix("http://").unwrap();
        &rest[rest.find('/').unwrap()..]
    }

    #[test]
    fn urls_name_the_listening_address_the_kind_and_a_token() {
        let (server, _) = server(Duration::ZERO);
        let port = server.local_addr().port();
        let url = server.url(exec()).unwrap();
        let prefix = format!("http://127.0.0.1:{port}/cri/exec/");
        let token = url.strip_prefix(&prefix).unwrap();
        assert_eq!(token.len(), 22, "{url}");
        let url = server.url(attach()).unwrap();
        assert!(url.starts_with(&format!("http://127.0.0.1:{port}/cri/attach/")));
        let forward = StreamRequest::PortForward(PortForward::default());
        let url = server.url(forward).unwrap();
        assert!(url.starts_with(&format!("http://127.0.0.1:{port}/cri/portforward/")));
    }

    #[test]
    fn unspecified_addresses_become_loopback_in_urls() {
        let authority = |text: &str| url_authority(text.parse().unwrap());
        assert_eq!(authority("0.0.0.0:10010"), "127.0.0.1:10010");
        assert_eq!(authority("[::]:10010"), "[::1]:10010");
        assert_eq!(authority("192.0.2.7:1"), "192.0.2.7:1");
        assert_eq!(authority("[2001:db8::1]:1"), "[2001:db8::1]:1");
        assert_eq!(authority("[fe80::1%2]:1"), "[fe80::1]:1");
    }

    #[test]
    fn a_valid_token_reaches_the_session_with_the_request() {
        let (server, handoffs) = server(Duration::from_secs(30));
        let url = server.url(exec()).unwrap();
        let path = path_of(&url);
        let status = send(
            &server,
            &format!(
                "POST {path}?command=sh&stdout=1 HTTP/1.1\r\nHost: h\r\n\
                 Upgrade: SPDY/3.1\r\n\r\nearly bytes"
            ),
        );
        assert_eq!(status, 200);
        let (request, handoff) = handoffs.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(request, exec());
        assert_eq!(handoff.method, "POST");
        assert_eq!(handoff.path, path);
        assert_eq!(
            handoff.query,
            [("command", "sh"), ("stdout", "1")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(handoff
            .headers
            .contains(&("upgrade".to_owned(), "SPDY/3.1".to_owned())));
        assert_eq!(handoff.leftover, b"early bytes");
        assert_eq!(handoff.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(handoff.conn.read_timeout().unwrap(), None);
        assert!(handoff.conn.nodelay().unwrap());
    }

    #[test]
    fn a_zero_idle_timeout_means_none() {
        let (server, handoffs) = server(Duration::ZERO);
        let url = server.url(exec()).unwrap();
        assert_eq!(get(&server, path_of(&url)), 200);
        let (_, handoff) = handoffs.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(handoff.idle_timeout, None);
    }

    #[test]
    fn a_token_works_once() {
        let (server, _handoffs) = server(Duration::ZERO);
        let url = server.url(exec()).unwrap();
        assert_eq!(get(&server, path_of(&url)), 200);
        assert_eq!(get(&server, path_of(&url)), 404);
    }

    #[test]
    fn a_token_on_another_kinds_route_is_not_found_and_used_up() {
        let (server, _handoffs) = server(Duration::ZERO);
        let url = server.url(exec()).unwrap();
        let wrong = path_of(&url).replace("/cri/exec/", "/cri/attach/");
        assert_eq!(get(&server, &wrong), 404);
        assert_eq!(get(&server, path_of(&url)), 404);
    }

    #[test]
    fn unknown_paths_and_tokens_are_not_found() {
        let (server, _handoffs) = server(Duration::ZERO);
        let url = server.url(exec()).unwrap();
        let token = path_of(&url).rsplit('/').next().unwrap().to_owned();
        for path in [
            "/".to_owned(),
            "/cri/exec/".to_owned(),
            "/cri/exec/AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            format!("/cri/shell/{token}"),
            format!("/cri/exec/{token}/more"),
            format!("/exec/{token}"),
        ] {
            assert_eq!(get(&server, &path), 404, "{path}");
        }
        assert_eq!(get(&server, path_of(&url)), 200);
    }

    #[test]
    fn other_methods_are_not_allowed_and_keep_the_token() {
        let (server, _handoffs) = server(Duration::ZERO);
        let url = server.url(exec()).unwrap();
        let path = path_of(&url);
        let status = send(&server, &format!("PUT {path} HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert_eq!(status, 405);
        assert_eq!(get(&server, path), 200);
    }

    #[test]
    fn malformed_requests_are_bad_requests() {
        let (server, _handoffs) = server(Duration::ZERO);
        assert_eq!(send(&server, "GET /cri/exec/x HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(send(&server, "hello\r\n\r\n"), 400);
        assert_eq!(send(&server, "GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    }

    /// Sessions that answer 200 and last until the client closes.
    struct Lasting;

    impl Sessions for Lasting {
        fn serve(&self, _: StreamRequest, mut handoff: Handoff) {
            let _ = handoff
                .conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            let _ = io::copy(&mut handoff.conn, &mut io::sink());
        }
    }

    /// Sends `request` and returns the connection with the response's
    /// status line read.
    fn open(server: &StreamingServer, request: &str) -> (TcpStream, String) {
        let mut conn = TcpStream::connect(server.local_addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut status_line = Vec::new();
        let mut byte = [0u8; 1];
        while !status_line.ends_with(b"\r\n") {
            assert_eq!(conn.read(&mut byte).unwrap(), 1, "no status line");
            status_line.push(byte[0]);
        }
        (conn, String::from_utf8(status_line).unwrap())
    }

    fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "{what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn sessions_beyond_the_limit_are_refused_with_503_and_keep_their_token() {
        let server = StreamingServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Duration::ZERO,
            Arc::new(Lasting),
        )
        .unwrap();
        let mut held: Vec<TcpStream> = (0..MAX_SESSIONS)
            .map(|_| {
                let url = server.url(exec()).unwrap();
                let request = format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", path_of(&url));
                let (conn, status) = open(&server, &request);
                assert_eq!(status, "HTTP/1.1 200 OK\r\n");
                conn
            })
            .collect();
        let url = server.url(exec()).unwrap();
        let request = format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", path_of(&url));
        let (_, refused) = open(&server, &request);
        assert_eq!(refused, "HTTP/1.1 503 Service Unavailable\r\n");
        drop(held.pop());
        wait_until("the session's slot was not given back", || {
            server.shared.sessions_open.load(Ordering::Acquire) < MAX_SESSIONS
        });
        let (_, status) = open(&server, &request);
        assert_eq!(status, "HTTP/1.1 200 OK\r\n");
        drop(held);
        wait_until("session slots were not given back", || {
            server.shared.sessions_open.load(Ordering::Acquire) == 0
        });
    }

    #[test]
    fn silent_connections_never_keep_a_valid_url_out() {
        let (server, _handoffs) = server(Duration::ZERO);
        let silent: Vec<TcpStream> = (0..MAX_SESSIONS)
            .map(|n| {
                let mut conn = TcpStream::connect(server.local_addr()).unwrap();
                if n % 2 == 0 {
                    conn.write_all(b"GET / HTTP/1.1\r\n").unwrap();
                }
                conn
            })
            .collect();
        wait_until("the silent connections were not all accepted", || {
            server.shared.pending().next_id >= MAX_SESSIONS as u64
        });
        assert!(server.shared.pending().len() <= MAX_PENDING_CONNECTIONS);
        let url = server.url(exec()).unwrap();
        assert_eq!(get(&server, path_of(&url)), 200);
        drop(silent);
        wait_until("pending places were not given back", || {
            server.shared.pending().len() == 0
        });
    }

    #[test]
    fn a_connection_pushed_out_or_silent_past_the_deadline_is_closed() {
        let (server, _handoffs) = server(Duration::ZERO);
        let mut first = TcpStream::connect(server.local_addr()).unwrap();
        first
            .set_read_timeout(Some(HEAD_READ_TIMEOUT + Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        let mut response = Vec::new();
        first.read_to_end(&mut response).unwrap();
        let waited = started.elapsed();
        assert!(response.starts_with(b"HTTP/1.1 408 "), "{response:?}");
        assert!(
            waited >= HEAD_READ_TIMEOUT - Duration::from_millis(100)
                && waited < HEAD_READ_TIMEOUT + Duration::from_secs(2),
            "closed after {waited:?}"
        );
        let mut oldest = TcpStream::connect(server.local_addr()).unwrap();
        oldest
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _newer: Vec<TcpStream> = (0..MAX_PENDING_PER_PEER)
            .map(|_| TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        // Pushed out: closed at once, without a response.
        assert_eq!(oldest.read(&mut [0u8; 1]).unwrap(), 0);
    }

    fn peer(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn a_peer_at_its_limit_pushes_out_its_own_oldest() {
        let mut pending = Pending::default();
        pending.admit(peer(2), usize::MAX);
        for n in 0..MAX_PENDING_PER_PEER {
            assert_eq!(pending.admit(peer(1), n).1, None);
        }
        let (_, pushed_out) = pending.admit(peer(1), 100);
        assert_eq!(pushed_out, Some(0));
        assert_eq!(pending.len(), MAX_PENDING_PER_PEER + 1);
    }

    #[test]
    fn a_full_table_pushes_out_the_oldest_of_all() {
        let mut pending = Pending::default();
        let peers = MAX_PENDING_CONNECTIONS.div_ceil(MAX_PENDING_PER_PEER);
        for n in 0..MAX_PENDING_CONNECTIONS {
            let from = peer((n % peers) as u8);
            assert_eq!(pending.admit(from, n).1, None);
        }
        assert_eq!(pending.len(), MAX_PENDING_CONNECTIONS);
        let (_, pushed_out) = pending.admit(peer(200), 100);
        assert_eq!(pushed_out, Some(0));
        assert_eq!(pending.len(), MAX_PENDING_CONNECTIONS);
    }

    #[test]
    fn a_connection_that_read_its_head_gives_its_place_back() {
        let mut pending = Pending::default();
        let (first, _) = pending.admit(peer(1), 1);
        let (second, _) = pending.admit(peer(1), 2);
        pending.remove(first);
        assert_eq!(pending.len(), 1);
        pending.remove(first);
        pending.remove(second);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn no_url_is_issued_beyond_a_full_token_cache() {
        let (server, _handoffs) = server(Duration::ZERO);
        for _ in 0..crate::streaming::tokens::MAX_PENDING_TOKENS {
            server.url(exec()).unwrap();
        }
        assert!(matches!(
            server.url(exec()),
            Err(TokenError::Exhausted { .. })
        ));
    }

    #[test]
    fn dropping_the_server_closes_its_port() {
        let (server, _handoffs) = server(Duration::ZERO);
        let addr = server.local_addr();
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_ok() {
            assert!(
                Instant::now() < deadline,
                "{addr} still accepts connections"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn binding_a_busy_address_fails_with_the_address() {
        let (server, _handoffs) = server(Duration::ZERO);
        let (sender, _) = mpsc::channel();
        let err = StreamingServer::start(
            server.local_addr(),
            Duration::ZERO,
            Arc::new(Recorder(Mutex::new(sender))),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(&server.local_addr().to_string()),
            "{err}"
        );
        assert!(matches!(err, StreamingError::Bind { .. }), "{err}");
    }

    #[test]
    fn the_server_speaks_ipv6() {
        let (sender, handoffs) = mpsc::channel();
        let Ok(server) = StreamingServer::start(
            "[::1]:0".parse().unwrap(),
            Duration::ZERO,
            Arc::new(Recorder(Mutex::new(sender))),
        ) else {
            eprintln!("skipped: this host cannot listen on ::1");
            return;
        };
        let url = server.url(exec()).unwrap();
        let port = server.local_addr().port();
        assert!(
            url.starts_with(&format!("http://[::1]:{port}/cri/exec/")),
            "{url}"
        );
        assert_eq!(get(&server, path_of(&url)), 200);
        handoffs.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
