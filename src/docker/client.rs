//! `DockerClient`: calls to dockerd over its unix socket, with a small pool
//! of keep-alive connections and the API version negotiated once.
//!
//! It owns endpoint parsing (`--docker-endpoint`), per-call deadlines
//! (`--runtime-request-timeout`), connection reuse and the one retry a stale
//! pooled connection earns, and turns dockerd's error answers into
//! [`DockerError::Api`]. It knows the paths of the few endpoints it decodes
//! itself (`/_ping`, `/version`, `/info`, `/events`, pull); the container,
//! image and exec endpoints are typed in their own files and in `api`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::api_version::MIN_API_VERSION;
use super::connection::{Connection, Deadline, Pumped, Wait};
use super::engine::Engine;
use super::hijack::Hijacked;
use super::request::{path_with_query, RequestHead};
use super::response::{Response, ResponseParser, MAX_BUFFERED_BODY};
use super::stream::JsonStream;
use super::types::{Event, Info, PullProgress, Version};
use super::{ApiVersion, DockerError};
use crate::codec::json::{self, FromJson};
use crate::metrics;

/// Idle keep-alive connections kept for reuse. The kubelet's calls arrive a
/// few at a time; more idle sockets would only hold memory in dockerd.
const MAX_IDLE_CONNECTIONS: usize = 8;

/// Largest error body read from a streaming or hijacked call that failed
/// before its stream started; dockerd's are one short JSON object.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Longest non-JSON error body kept in an error message.
const MAX_ERROR_TEXT: usize = 4096;

/// The per-call budget when `--runtime-request-timeout` is 0, as the
/// kubelet's own Docker client did: two minutes less a second.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(119);

/// A handle on dockerd. Clones share the connection pool and the
/// negotiated version; it is `Send + Sync` and cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    socket: PathBuf,
    timeout: Duration,
    /// [`ApiVersion::to_bits`] of the negotiated version; 0 before
    /// negotiation (no supported version packs to 0).
    api_version: AtomicU32,
    idle: Mutex<Vec<Connection>>,
    connections_opened: AtomicU64,
    /// What the engine can do, asked once by [`DockerClient::engine`].
    engine: Mutex<Option<Arc<Engine>>>,
}

impl DockerClient {
    /// A client for `endpoint` (`unix:///var/run/docker.sock` or a bare
    /// absolute path) whose calls each get `timeout` unless they say
    /// otherwise; zero means [`DEFAULT_REQUEST_TIMEOUT`]. Does not connect.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<DockerClient, DockerError> {
        let socket = parse_endpoint(endpoint)?;
        let timeout = if timeout.is_zero() {
            DEFAULT_REQUEST_TIMEOUT
        } else {
            timeout
        };
        Ok(DockerClient {
            inner: Arc::new(Inner {
                socket,
                timeout,
                api_version: AtomicU32::new(0),
                idle: Mutex::new(Vec::with_capacity(MAX_IDLE_CONNECTIONS)),
                connections_opened: AtomicU64::new(0),
                engine: Mutex::new(None),
            }),
        })
    }

    /// The socket path calls go to.
    pub fn socket_path(&self) -> &Path {
        &self.inner.socket
    }

    /// Asks dockerd for its newest API version (`GET /_ping`, falling back
    /// to `GET /version`), picks the lower of it and
    /// [`super::MAX_API_VERSION`], and prefixes every later path with it.
    /// Refuses an engine older than [`MIN_API_VERSION`].
    pub fn negotiate(&self) -> Result<ApiVersion, DockerError> {
        let ping = self.call_unversioned("GET", "/_ping", self.inner.timeout)?;
        let server = match ping.headers.get("api-version") {
            Some(text) => ApiVersion::parse(text).ok_or_else(|| {
                DockerError::Protocol(format!("bad API-Version header {text:?}"))
                    .in_call("GET", "/_ping")
            })?,
            None => {
                let response = self.call_unversioned("GET", "/version", self.inner.timeout)?;
                let version: Version =
                    decode(&response.body).map_err(|e| e.in_call("GET", "/version"))?;
                ApiVersion::parse(&version.api_version).ok_or_else(|| {
                    DockerError::Protocol(format!("bad ApiVersion {:?}", version.api_version))
                        .in_call("GET", "/version")
                })?
            }
        };
        let chosen = ApiVersion::negotiate(server).ok_or(DockerError::TooOld {
            server,
            minimum: MIN_API_VERSION,
        })?;
        self.inner
            .api_version
            .store(chosen.to_bits(), Ordering::Release);
        Ok(chosen)
    }

    /// The negotiated version, once [`DockerClient::negotiate`] succeeded.
    pub fn api_version(&self) -> Option<ApiVersion> {
        match self.inner.api_version.load(Ordering::Acquire) {
            0 => None,
            bits => Some(ApiVersion::from_bits(bits)),
        }
    }

    /// Connections opened so far (pool misses, streams and hijacks).
    pub fn connections_opened(&self) -> u64 {
        self.inner.connections_opened.load(Ordering::Relaxed)
    }

    /// `GET /_ping` within `timeout`: whether dockerd answers now. Fails fast
    /// when nothing listens on the socket.
    pub fn ping(&self, timeout: Duration) -> Result<(), DockerError> {
        self.call_unversioned("GET", "/_ping", timeout).map(drop)
    }

    /// `GET /version`.
    pub fn version(&self) -> Result<Version, DockerError> {
        self.get_json("/version")
    }

    /// `GET /info`.
    pub fn info(&self) -> Result<Info, DockerError> {
        self.get_json("/info")
    }

    /// What the engine can do: negotiates the API version if that has not
    /// happened yet, then asks `GET /info` once and keeps the answer, which
    /// changes only with a daemon restart. A failed call is not kept.
    pub fn engine(&self) -> Result<Arc<Engine>, DockerError> {
        let mut cached = self
            .inner
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = cached.as_ref() {
            return Ok(Arc::clone(engine));
        }
        let api_version = match self.api_version() {
            Some(version) => version,
            None => self.negotiate()?,
        };
        let engine = Arc::new(Engine::new(api_version, &self.info()?));
        *cached = Some(Arc::clone(&engine));
        Ok(engine)
    }

    /// One call with a buffered answer. `path` is unversioned (`/info`);
    /// the negotiated `/v1.NN` prefix is added here. `body`, if any, is sent
    /// as JSON unless `headers` names another `Content-Type`. A status of
    /// 400 or more is returned as [`DockerError::Api`]; others (including
    /// 304 "already in that state") are returned as they are.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Response, DockerError> {
        let target = self.versioned(path);
        let budget = timeout.unwrap_or(self.inner.timeout);
        self.round_trip(method, &target, headers, body, budget)
            .and_then(check_status)
            .map_err(|err| err.in_call(method, path))
    }

    /// `GET path`, decoding the JSON answer.
    pub fn get_json<T: FromJson>(&self, path: &str) -> Result<T, DockerError> {
        let response = self.request("GET", path, &[], None, None)?;
        decode(&response.body).map_err(|err| err.in_call("GET", path))
    }

    /// `POST path` with a JSON body, decoding the JSON answer.
    pub fn post_json<T: FromJson>(&self, path: &str, body: &Value) -> Result<T, DockerError> {
        let body = body.to_string().into_bytes();
        let response = self.request("POST", path, &[], Some(&body), None)?;
        decode(&response.body).map_err(|err| err.in_call("POST", path))
    }

    /// `POST path` whose answer has no body worth reading (start, stop,
    /// kill, resize); returns the status, e.g. 204, or 304 when the
    /// container already was in the asked-for state.
    pub fn post(&self, path: &str, body: Option<&[u8]>) -> Result<u16, DockerError> {
        Ok(self.request("POST", path, &[], body, None)?.status)
    }

    /// `DELETE path`; returns the status.
    pub fn delete(&self, path: &str) -> Result<u16, DockerError> {
        Ok(self.request("DELETE", path, &[], None, None)?.status)
    }

    /// A call whose answer is a stream of JSON messages, on a connection of
    /// its own. The request and the response head must complete within the
    /// client's timeout; after that only `idle_timeout` (per read) applies.
    pub fn stream<T: FromJson>(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        idle_timeout: Option<Duration>,
    ) -> Result<JsonStream<T>, DockerError> {
        let target = self.versioned(path);
        self.open_stream(method, &target, headers, body, self.inner.timeout)
            .map(|(conn, parser)| JsonStream::new(conn, parser, idle_timeout, method, path))
            .map_err(|err| err.in_call(method, path))
    }

    /// `GET /events`: events from `since` (or from now) on, forever.
    /// `filters` is the JSON filter map, e.g. `{"type":["container"]}`.
    pub fn events(
        &self,
        since: Option<SystemTime>,
        filters: Option<&str>,
    ) -> Result<JsonStream<Event>, DockerError> {
        let since = since.map(unix_timestamp);
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some(since) = &since {
            params.push(("since", since));
        }
        if let Some(filters) = filters {
            params.push(("filters", filters));
        }
        self.stream("GET", &path_with_query("/events", &params), &[], None, None)
    }

    /// `POST /images/create?fromImage=..&tag=..`: pulls an image, yielding
    /// dockerd's progress messages. `tag` is a tag or a digest and must not
    /// be empty (an empty tag asks dockerd for every tag of the
    /// repository). `registry_auth` is the base64url JSON for
    /// `X-Registry-Auth`. Set an idle timeout on the stream for a progress
    /// deadline; a failed pull ends with a message whose
    /// [`PullProgress::error_message`] is set.
    ///
    /// dockerd answers only once it has the image's manifest; `head_timeout`,
    /// if shorter than the client's timeout, bounds that wait instead.
    pub fn pull(
        &self,
        from_image: &str,
        tag: &str,
        registry_auth: Option<&str>,
        head_timeout: Option<Duration>,
    ) -> Result<JsonStream<PullProgress>, DockerError> {
        if from_image.is_empty() || tag.is_empty() {
            return Err(DockerError::InvalidRequest(format!(
                "pull needs an image and a tag or digest, got {from_image:?} and {tag:?}"
            )));
        }
        let path = path_with_query("/images/create", &[("fromImage", from_image), ("tag", tag)]);
        let auth: Vec<(&str, &str)> = registry_auth
            .map(|auth| ("X-Registry-Auth", auth))
            .into_iter()
            .collect();
        let timeout = head_timeout.map_or(self.inner.timeout, |t| t.min(self.inner.timeout));
        let target = self.versioned(&path);
        self.open_stream("POST", &target, &auth, None, timeout)
            .map(|(conn, parser)| JsonStream::new(conn, parser, None, "POST", &path))
            .map_err(|err| err.in_call("POST", &path))
    }

    /// Starts a hijacked session (`POST /exec/{id}/start`,
    /// `POST /containers/{id}/attach?...`) on a connection of its own. The
    /// request and response head must complete within the client's
    /// timeout; the returned socket has no timeouts.
    pub fn hijack(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Hijacked, DockerError> {
        let target = self.versioned(path);
        self.open_hijack(method, &target, body)
            .map_err(|err| err.in_call(method, path))
    }

    fn open_hijack(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<Hijacked, DockerError> {
        let deadline = Deadline::after(self.inner.timeout);
        let mut conn = self.connect(&deadline)?;
        let head = RequestHead {
            method,
            target,
            headers: &[],
            body_len: body.map(<[u8]>::len),
            upgrade: true,
        };
        conn.send(&head, body, &deadline)?;
        let mut parser = ResponseParser::new(false, MAX_ERROR_BODY);
        read_head(&mut conn, &mut parser, &deadline)?;
        match parser.status() {
            // 200 comes from engines that hijack without acknowledging the
            // upgrade; the raw stream follows the head either way.
            101 | 200 => {}
            status if status >= 400 => return Err(error_body(conn, parser, &deadline)),
            status => {
                return Err(DockerError::Protocol(format!(
                    "status {status} to a hijack request"
                )))
            }
        }
        let (stream, early) = conn.into_parts();
        stream.set_read_timeout(None).map_err(DockerError::Io)?;
        stream.set_write_timeout(None).map_err(DockerError::Io)?;
        Ok(Hijacked::new(stream, early))
    }

    fn open_stream(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(Connection, ResponseParser), DockerError> {
        let deadline = Deadline::after(timeout);
        let mut conn = self.connect(&deadline)?;
        let head = RequestHead {
            method,
            target,
            headers,
            body_len: body.map(<[u8]>::len),
            upgrade: false,
        };
        conn.send(&head, body, &deadline)?;
        // The stream's length is unbounded; each message is bounded instead.
        let mut parser = ResponseParser::new(false, u64::MAX);
        read_head(&mut conn, &mut parser, &deadline)?;
        match parser.status() {
            200..=299 => Ok((conn, parser)),
            status if status >= 400 => {
                parser.limit_body(MAX_ERROR_BODY)?;
                Err(error_body(conn, parser, &deadline))
            }
            status => Err(DockerError::Protocol(format!(
                "status {status} to a streaming request"
            ))),
        }
    }

    /// A call to an unversioned path (`/_ping`), errors naming the call.
    fn call_unversioned(
        &self,
        method: &str,
        path: &str,
        budget: Duration,
    ) -> Result<Response, DockerError> {
        self.round_trip(method, path, &[], None, budget)
            .and_then(check_status)
            .map_err(|err| err.in_call(method, path))
    }

    fn versioned(&self, path: &str) -> String {
        match self.api_version() {
            Some(version) => format!("/v{version}{path}"),
            None => path.to_owned(),
        }
    }

    /// Sends one request and reads the whole answer. Every buffered call
    /// passes here, so this is where Docker calls are counted and timed.
    fn round_trip(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        budget: Duration,
    ) -> Result<Response, DockerError> {
        let started = Instant::now();
        let outcome = self.exchange_with_retry(method, target, headers, body, budget);
        metrics::record_docker(method, started.elapsed());
        outcome
    }

    /// Sends one request on a pooled (or new) connection and reads the whole
    /// answer. A pooled connection that fails before any byte of the answer
    /// arrived was most likely closed by dockerd while idle; idempotent
    /// requests get one more try on a new connection.
    fn exchange_with_retry(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        budget: Duration,
    ) -> Result<Response, DockerError> {
        let deadline = Deadline::after(budget);
        let idempotent = matches!(method, "GET" | "HEAD" | "DELETE");
        let (mut conn, mut pooled) = self.checkout(&deadline)?;
        loop {
            match exchange(&mut conn, method, target, headers, body, &deadline) {
                Ok((response, reusable)) => {
                    if reusable {
                        self.checkin(conn);
                    }
                    return Ok(response);
                }
                Err(err @ DockerError::Io(_)) if pooled && idempotent && !conn.received_any() => {
                    log::debug!(
                        "docker: idle connection failed before answering ({err}); retrying"
                    );
                    conn = self.connect(&deadline)?;
                    pooled = false;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// An idle connection that still looks alive, or a new one; true if it
    /// came from the pool.
    fn checkout(&self, deadline: &Deadline) -> Result<(Connection, bool), DockerError> {
        loop {
            let candidate = self.idle().pop();
            match candidate {
                Some(conn) if conn.looks_alive() => return Ok((conn, true)),
                // Closed by dockerd while idle: drop it and look again.
                Some(_) => continue,
                None => return Ok((self.connect(deadline)?, false)),
            }
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }

    fn connect(&self, deadline: &Deadline) -> Result<Connection, DockerError> {
        let conn = Connection::open(&self.inner.socket, deadline)?;
        self.inner
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    /// The idle list. A panic while it was locked cannot leave it
    /// inconsistent (push and pop are single steps), so poisoning is ignored.
    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends the request and reads the whole answer; also says whether the
/// connection may be reused.
fn exchange(
    conn: &mut Connection,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    deadline: &Deadline,
) -> Result<(Response, bool), DockerError> {
    let head = RequestHead {
        method,
        target,
        headers,
        body_len: body.map(<[u8]>::len),
        upgrade: false,
    };
    conn.send(&head, body, deadline)?;
    let mut parser = ResponseParser::new(method == "HEAD", MAX_BUFFERED_BODY);
    let mut answer = Vec::new();
    conn.read_to_end(&mut parser, Wait::Until(deadline), &mut answer)?;
    let reusable = parser.is_reusable() && conn.is_drained();
    Ok((
        Response {
            status: parser.status(),
            headers: parser.take_headers(),
            body: answer,
        },
        reusable,
    ))
}

/// Reads up to the end of the response head.
fn read_head(
    conn: &mut Connection,
    parser: &mut ResponseParser,
    deadline: &Deadline,
) -> Result<(), DockerError> {
    let mut no_body = Vec::new();
    match conn.pump(parser, Wait::Until(deadline), &mut no_body)? {
        Pumped::Head => Ok(()),
        // The parser reports the head before any body byte or the end.
        Pumped::Body | Pumped::Done => {
            Err(DockerError::Protocol("response without a head".to_owned()))
        }
    }
}

/// Reads the (bounded) body of an error answer and turns it into the error.
fn error_body(
    mut conn: Connection,
    mut parser: ResponseParser,
    deadline: &Deadline,
) -> DockerError {
    let status = parser.status();
    let mut body = Vec::new();
    match conn.read_to_end(&mut parser, Wait::Until(deadline), &mut body) {
        Ok(()) => api_error(status, &body),
        Err(err) => err,
    }
}

fn check_status(response: Response) -> Result<Response, DockerError> {
    if response.status >= 400 {
        return Err(api_error(response.status, &response.body));
    }
    Ok(response)
}

/// dockerd's error answers are `{"message": "..."}`; the message is kept
/// verbatim. Anything else is kept as (bounded) text.
fn api_error(status: u16, body: &[u8]) -> DockerError {
    let message = error_message(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_TEXT)]);
        text.trim().to_owned()
    });
    let message = if message.is_empty() {
        "(no message)".to_owned()
    } else {
        message
    };
    DockerError::Api { status, message }
}

/// The `message` of a JSON error body.
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body.get("message")?.as_str().map(str::to_owned)
}

fn decode<T: FromJson>(body: &[u8]) -> Result<T, DockerError> {
    json::decode(body).map_err(DockerError::Json)
}

/// `seconds.nanoseconds` since the Unix epoch, the form `/events` takes.
fn unix_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

/// `unix:///path` or `/path`; nothing else (dockshim speaks to a local
/// dockerd only).
fn parse_endpoint(endpoint: &str) -> Result<PathBuf, DockerError> {
    let path = match endpoint.split_once("://") {
        Some(("unix", path)) => path,
        Some((scheme, _)) => {
            return Err(DockerError::Endpoint(format!(
                "{endpoint:?}: scheme {scheme}:// is not supported; use unix:///path/to/docker.sock"
            )))
        }
        None => endpoint,
    };
    if !path.starts_with('/') {
        return Err(DockerError::Endpoint(format!(
            "{endpoint:?}: expected unix:///absolute/path or /absolute/path"
        )));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::mpsc;
    use std::thread;

    use super::*;

    /// What one accepted connection does: it gets the stream and a channel
    /// on which to report the request heads it read.
    type Script = Box<dyn FnOnce(UnixStream, mpsc::Sender<String>) + Send>;

    /// A scripted dockerd on a socket in a temporary directory; the n-th
    /// accepted connection runs the n-th script.
    struct FakeDockerd {
        _dir: tempfile::TempDir,
        endpoint: String,
        requests: mpsc::Receiver<String>,
    }

    fn fake_dockerd(scripts: Vec<Script>) -> FakeDockerd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for script in scripts {
                let (stream, _) = listener.accept().unwrap();
                let tx = tx.clone();
                thread::spawn(move || script(stream, tx));
            }
        });
        FakeDockerd {
            _dir: dir,
            endpoint: format!("unix://{}", path.display()),
            requests: rx,
        }
    }

    /// Reads one request (head and Content-Length body); `None` at EOF.
    fn read_request(stream: &mut UnixStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |n| n.parse::<usize>().unwrap());
        let mut body = vec![0; length];
        stream.read_exact(&mut body).ok()?;
        Some(head)
    }

    /// Answers every request on the connection with `answer`.
    fn answer_all(answer: &'static str) -> Script {
        Box::new(move |mut stream, tx| {
            while let Some(request) = read_request(&mut stream) {
                tx.send(request).unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
            }
        })
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";

    fn client(fake: &FakeDockerd) -> DockerClient {
        DockerClient::new(&fake.endpoint, Duration::from_secs(5)).unwrap()
    }

    fn request_line(fake: &FakeDockerd) -> String {
        let request = fake.requests.recv_timeout(Duration::from_secs(5)).unwrap();
        request.lines().next().unwrap().to_owned()
    }

    #[test]
    fn endpoints_are_unix_urls_or_absolute_paths() {
        assert_eq!(
            parse_endpoint("unix:///var/run/docker.sock").unwrap(),
            Path::new("/var/run/docker.sock")
        );
        assert_eq!(
            parse_endpoint("/run/docker.sock").unwrap(),
            Path::new("/run/docker.sock")
        );
        for bad in [
            "tcp://127.0.0.1:2375",
            "npipe:////./pipe/docker",
            "unix://docker.sock",
            "docker.sock",
            "",
        ] {
            let err = parse_endpoint(bad).unwrap_err().to_string();
            assert!(err.starts_with("--docker-endpoint: "), "{bad}: {err}");
        }
    }

    #[test]
    fn client_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<DockerClient>();
    }

    #[test]
    fn keep_alive_connections_are_reused() {
        let fake = fake_dockerd(vec![answer_all(OK)]);
        let client = client(&fake);
        for _ in 0..5 {
            assert_eq!(
                client
                    .request("GET", "/_ping", &[], None, None)
                    .unwrap()
                    .body,
                b"OK"
            );
        }
        assert_eq!(client.connections_opened(), 1);
    }

    #[test]
    fn connection_close_answers_are_not_pooled() {
        let close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let fake = fake_dockerd(vec![answer_all(close), answer_all(close)]);
        let client = client(&fake);
        client.ping(Duration::from_secs(5)).unwrap();
        client.ping(Duration::from_secs(5)).unwrap();
        assert_eq!(client.connections_opened(), 2);
    }

    /// A connection that answers once, then reads the next request and
    /// closes without answering: what a dockerd restart looks like.
    fn answer_once_then_hang_up() -> Script {
        Box::new(|mut stream, tx| {
            tx.send(read_request(&mut stream).unwrap()).unwrap();
            stream.write_all(OK.as_bytes()).unwrap();
            tx.send(read_request(&mut stream).unwrap()).unwrap();
        })
    }

    #[test]
    fn stale_pooled_connection_is_retried_once_for_get() {
        let fake = fake_dockerd(vec![answer_once_then_hang_up(), answer_all(OK)]);
        let client = client(&fake);
        client.request("GET", "/a", &[], None, None).unwrap();
        assert_eq!(
            client.request("GET", "/b", &[], None, None).unwrap().body,
            b"OK"
        );
        assert_eq!(client.connections_opened(), 2);
    }

    #[test]
    fn stale_pooled_connection_is_not_retried_for_post() {
        let fake = fake_dockerd(vec![answer_once_then_hang_up(), answer_all(OK)]);
        let client = client(&fake);
        client.request("POST", "/a", &[], None, None).unwrap();
        let err = client.post("/containers/x/start", None).unwrap_err();
        assert!(matches!(err.root(), DockerError::Io(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "POST /containers/x/start: connection to dockerd failed: \
             dockerd closed the connection without answering"
        );
        assert_eq!(client.connections_opened(), 1);
    }

    fn ping_answer(version: &'static str) -> Script {
        Box::new(move |mut stream, tx| {
            let answer =
                format!("HTTP/1.1 200 OK\r\nApi-Version: {version}\r\nContent-Length: 2\r\n\r\nOK");
            while let Some(request) = read_request(&mut stream) {
                tx.send(request).unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
            }
        })
    }

    #[test]
    fn negotiated_version_prefixes_later_paths() {
        let fake = fake_dockerd(vec![ping_answer("1.43")]);
        let client = client(&fake);
        assert_eq!(client.api_version(), None);
        client.request("GET", "/info", &[], None, None).unwrap();
        assert_eq!(request_line(&fake), "GET /info HTTP/1.1");
        assert_eq!(client.negotiate().unwrap(), ApiVersion::new(1, 43));
        assert_eq!(request_line(&fake), "GET /_ping HTTP/1.1");
        client.request("GET", "/info", &[], None, None).unwrap();
        assert_eq!(request_line(&fake), "GET /v1.43/info HTTP/1.1");
        client.ping(Duration::from_secs(1)).unwrap();
        assert_eq!(request_line(&fake), "GET /_ping HTTP/1.1");
    }

    #[test]
    fn negotiation_caps_newer_engines_and_refuses_older_ones() {
        let fake = fake_dockerd(vec![ping_answer("1.58")]);
        assert_eq!(client(&fake).negotiate().unwrap(), ApiVersion::new(1, 55));
        let fake = fake_dockerd(vec![ping_answer("1.40")]);
        let client = client(&fake);
        let err = client.negotiate().unwrap_err();
        assert!(matches!(err, DockerError::TooOld { .. }), "{err}");
        assert_eq!(client.api_version(), None);
    }

    #[test]
    fn negotiation_falls_back_to_version_without_the_header() {
        let fake = fake_dockerd(vec![Box::new(|mut stream, _| {
            read_request(&mut stream).unwrap();
            stream.write_all(OK.as_bytes()).unwrap();
            read_request(&mut stream).unwrap();
            let body = r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).unwrap();
        })]);
        assert_eq!(client(&fake).negotiate().unwrap(), ApiVersion::new(1, 41));
    }

    #[test]
    fn error_answers_keep_dockerd_message_and_status() {
        let fake = fake_dockerd(vec![answer_all(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n\
             {\"message\":\"No such container: nope\"}\n",
        )]);
        let client = client(&fake);
        let err = client
            .get_json::<Value>("/containers/nope/json")
            .unwrap_err();
        assert_eq!(err.api_status(), Some(404));
        assert_eq!(err.api_status(), Some(404));
        assert_eq!(
            err.to_string(),
            "GET /containers/nope/json: 404: No such container: nope"
        );
        // The error answer was read whole, so the connection is reused.
        client.delete("/containers/nope").unwrap_err();
        assert_eq!(client.connections_opened(), 1);
    }

    #[test]
    fn not_modified_is_not_an_error() {
        let fake = fake_dockerd(vec![answer_all("HTTP/1.1 304 Not Modified\r\n\r\n")]);
        assert_eq!(
            client(&fake).post("/containers/x/start", None).unwrap(),
            304
        );
    }

    #[test]
    fn post_json_sends_json_and_decodes_the_answer() {
        let fake = fake_dockerd(vec![answer_all(
            "HTTP/1.1 201 Created\r\nContent-Length: 29\r\n\r\n{\"Id\":\"abc\",\"Warnings\":null}\n",
        )]);
        let created: Value = client(&fake)
            .post_json(
                "/containers/create?name=x",
                &serde_json::json!({"Image": "busybox"}),
            )
            .unwrap();
        assert_eq!(created["Id"], "abc");
        let request = fake.requests.recv().unwrap();
        assert!(
            request.contains("Content-Type: application/json\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Length: 19\r\n"), "{request}");
    }

    #[test]
    fn slow_answer_times_out_with_the_call_named() {
        let fake = fake_dockerd(vec![Box::new(|mut stream, _| {
            read_request(&mut stream);
            thread::sleep(Duration::from_secs(2));
        })]);
        let client = DockerClient::new(&fake.endpoint, Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        let err = client.info().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(err.root(), DockerError::Timeout { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("GET /info: timed out after 200ms"),
            "{err}"
        );
    }

    fn chunked_events() -> Script {
        Box::new(|mut stream, tx| {
            tx.send(read_request(&mut stream).unwrap()).unwrap();
            let pieces: [&[u8]; 5] = [
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"18\r\n{\"Type\":\"container\",\"Act",
                b"\r\n13\r\nion\":\"create\"}\n{\"Ty\r\n",
                b"17\r\npe\":\"image\",\"time\":7}\n\n\r\n",
                b"0\r\n\r\n",
            ];
            for piece in pieces {
                stream.write_all(piece).unwrap();
                thread::sleep(Duration::from_millis(10));
            }
        })
    }

    #[test]
    fn event_stream_yields_each_message_then_ends() {
        let fake = fake_dockerd(vec![chunked_events()]);
        let events: Vec<Event> = client(&fake)
            .events(
                Some(UNIX_EPOCH + Duration::new(5, 7)),
                Some(r#"{"type":["container"]}"#),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].kind.as_str(), events[0].action.as_str()),
            ("container", "create")
        );
        assert_eq!((events[1].kind.as_str(), events[1].time), ("image", 7));
        assert_eq!(
            request_line(&fake),
            "GET /events?since=5.000000007&filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1"
        );
    }

    #[test]
    fn idle_stream_times_out_and_stays_usable() {
        let (go_on, wait) = mpsc::channel::<()>();
        let fake = fake_dockerd(vec![Box::new(move |mut stream, _| {
            read_request(&mut stream).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            stream.write_all(b"f\r\n{\"status\":\"a\"}\n\r\n").unwrap();
            wait.recv().unwrap();
            stream
                .write_all(b"f\r\n{\"status\":\"b\"}\n\r\n0\r\n\r\n")
                .unwrap();
        })]);
        let mut pull = client(&fake)
            .pull("busybox", "latest", Some("e30="), None)
            .unwrap();
        pull.set_idle_timeout(Some(Duration::from_millis(100)));
        assert_eq!(pull.next().unwrap().unwrap().status, "a");
        let err = pull.next().unwrap().unwrap_err();
        assert!(matches!(err.root(), DockerError::Timeout { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("POST /images/create?fromImage=busybox&tag=latest: "),
            "{err}"
        );
        go_on.send(()).unwrap();
        assert_eq!(pull.next().unwrap().unwrap().status, "b");
        assert!(pull.next().is_none());
    }

    #[test]
    fn a_pull_s_head_timeout_bounds_the_wait_for_dockerd_s_first_answer() {
        let (done, wait) = mpsc::channel::<()>();
        let fake = fake_dockerd(vec![Box::new(move |mut stream, _| {
            read_request(&mut stream).unwrap();
            // Holds the connection open without answering, as dockerd does
            // while a registry is slow to give the manifest.
            let _ = wait.recv();
        })]);
        let started = Instant::now();
        let err = client(&fake)
            .pull("busybox", "latest", None, Some(Duration::from_millis(100)))
            .err()
            .unwrap();
        assert!(matches!(err.root(), DockerError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("timed out after 100ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        done.send(()).unwrap();
    }

    #[test]
    fn pull_refuses_an_empty_tag() {
        let fake = fake_dockerd(vec![]);
        let err = client(&fake).pull("busybox", "", None, None).unwrap_err();
        assert!(
            matches!(err.root(), DockerError::InvalidRequest(_)),
            "{err}"
        );
    }

    #[test]
    fn stream_error_status_is_an_api_error() {
        let fake = fake_dockerd(vec![answer_all(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 27\r\n\r\n{\"message\":\"pull denied\"}\r\n",
        )]);
        let err = client(&fake)
            .pull("nope", "latest", None, None)
            .unwrap_err();
        assert_eq!(err.api_status(), Some(404));
        assert!(err.to_string().ends_with("404: pull denied"), "{err}");
    }

    #[test]
    fn truncated_stream_is_an_error_not_an_end() {
        let fake = fake_dockerd(vec![Box::new(|mut stream, _| {
            read_request(&mut stream).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Typ\r\n")
                .unwrap();
        })]);
        let mut events = client(&fake).events(None, None).unwrap();
        assert!(events.next().unwrap().is_err());
        assert!(events.next().is_none());
    }

    #[test]
    fn hijack_hands_over_bytes_that_came_with_the_head() {
        let fake = fake_dockerd(vec![Box::new(|mut stream, tx| {
            tx.send(read_request(&mut stream).unwrap()).unwrap();
            stream
                .write_all(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03abc")
                .unwrap();
            let mut stdin = [0u8; 2];
            stream.read_exact(&mut stdin).unwrap();
            stream.write_all(&[2, 0, 0, 0, 0, 0, 0, 2]).unwrap();
            stream.write_all(&stdin).unwrap();
        })]);
        let mut session = client(&fake)
            .hijack("POST", "/exec/e1/start", Some(b"{\"Tty\":false}"))
            .unwrap();
        let request = fake.requests.recv().unwrap();
        assert!(
            request.starts_with("POST /exec/e1/start HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Upgrade: tcp\r\n"), "{request}");
        session.write_all(b"in").unwrap();
        session.close_write().unwrap();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        crate::docker::demux_copy(session, &mut stdout, &mut stderr).unwrap();
        assert_eq!(
            (stdout.as_slice(), stderr.as_slice()),
            (&b"abc"[..], &b"in"[..])
        );
    }

    #[test]
    fn hijack_refusal_keeps_dockerd_message() {
        let fake = fake_dockerd(vec![answer_all(
            "HTTP/1.1 409 Conflict\r\nContent-Length: 46\r\n\r\n{\"message\":\"Container abc is not running\"}\r\n\r\n",
        )]);
        let err = client(&fake)
            .hijack("POST", "/exec/e1/start", None)
            .unwrap_err();
        assert_eq!(err.api_status(), Some(409));
        assert!(
            err.to_string()
                .ends_with("409: Container abc is not running"),
            "{err}"
        );
    }
}
