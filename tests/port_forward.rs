//! Port forwarding through `DockerSessions` into a real pod sandbox on the
//! dockerd at /var/run/docker.sock, over both transports: SPDY/3.1 through
//! the independent client in `common::spdy_client` (reference zlib) and
//! WebSocket through tungstenite.
//!
//! The sandbox is a container with a network namespace of its own
//! (`--network none`: only a loopback interface, unreachable from the
//! host), labelled as a sandbox so that the real state index started here
//! finds it; it serves a file with busybox `httpd` on port 8080, echoes
//! with `nc -ll -e cat` on port 9090, and on port 9091 sends one byte,
//! reads until the client closes its side, then holds the connection open
//! without a word. Reaching those ports at all proves the connection was
//! made inside the pod's namespace.
//!
//! Each test accepts the connections itself, reads the request head as the
//! streaming server would, and runs `serve` in this process, so the threads
//! and descriptors sessions leave behind can be counted here. Tests print
//! why and pass when dockerd or the test image is absent (under tests/run.sh
//! they fail). Every container created here carries `dockshim-test=1` and
//! the test run's label, and is removed by a drop guard, also when an
//! assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::port_forward_client::SpdyPortForward;
use dockshim::cri::streaming::docker_sessions::DockerSessions;
use dockshim::host::Node;
use dockshim::index::Index;
use dockshim::streaming::session::{PortForward, Sessions, StreamRequest};
use tungstenite::{Bytes, Message, WebSocket};

/// Bounds every wait, so a session that never ends fails its test.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The pod's services.
const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9090;
const SILENT_PORT: u16 = 9091;
/// Nothing listens here in the pod.
const CLOSED_PORT: u16 = 8081;
const PAGE: &str = "hello from the pod";

/// Names of the threads a port-forward session starts.
const SESSION_THREADS: &[&str] = &[
    "spdy-reader",
    "ws-reader",
    "port-forward",
    "port-upload",
    "netns",
];

/// Held shared by every test and exclusively by the leak test, whose
/// thread and descriptor counts must not see the other tests' work.
static COUNTING: RwLock<()> = RwLock::new(());

struct Env {
    index: Arc<Index>,
    sessions: Arc<DockerSessions>,
    image: String,
}

/// One index and one set of sessions for the whole test binary: the
/// index's `docker-events` thread is then no part of what is counted.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let (docker, image) = common::docker::dockerd_with_busybox()?;
        let index = Index::start(docker.clone()).unwrap();
        assert!(index.wait_warm(TIMEOUT), "the index does not fill");
        Some(Env {
            sessions: Arc::new(DockerSessions::new(
                Arc::new(docker.clone()),
                Arc::clone(&index),
                Arc::new(Node),
            )),
            index,
            image,
        })
    })
    .as_ref()
}

/// A pod sandbox as the index recognises one, with its own network
/// namespace and the two services; removed (with force) on drop.
struct Sandbox {
    id: String,
}

impl Sandbox {
    fn start(env: &Env) -> Sandbox {
        let script = format!(
            "mkdir -p /www && echo '{PAGE}' > /www/index.html && \
             printf '#!/bin/sh\\nprintf .\\ncat >/dev/null\\nexec sleep 600\\n' \
               > /silent && chmod +x /silent && \
             {{ nc -ll -p {ECHO_PORT} -e cat & }} && \
             {{ nc -ll -p {SILENT_PORT} -e /silent & }} && \
             exec httpd -f -p {HTTP_PORT} -h /www"
        );
        let output = Command::new("docker")
            .args(["run", "-d", "--network", "none"])
            .args(["--label", "dockshim-test=1"])
            .args(["--label", &common::test_run_label()])
            .args(["--label", "io.kubernetes.docker.type=podsandbox"])
            .args(["--label", "io.kubernetes.container.name=POD"])
            .args(["--name", &format!("dockshim-test-pf-{}", common::unique())])
            .args([&env.image, "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let sandbox = Sandbox {
            id: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        };
        eventually("the index knows the sandbox runs", || {
            env.index
                .sandbox(&sandbox.id)
                .unwrap()
                .is_some_and(|entry| entry.pid > 0)
        });
        eventually("both services listen", || {
            let listening = Command::new("docker")
                .args(["exec", &sandbox.id, "netstat", "-ltn"])
                .output()
                .unwrap();
            let table = String::from_utf8_lossy(&listening.stdout);
            [HTTP_PORT, ECHO_PORT, SILENT_PORT]
                .iter()
                .all(|port| table.contains(&format!(":{port} ")))
        });
        sandbox
    }

    fn request(&self, ports: &[u16]) -> StreamRequest {
        StreamRequest::PortForward(PortForward {
            pod_sandbox_id: self.id.clone(),
            ports: ports.to_vec(),
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let removed = Command::new("docker").args(["rm", "-f", &self.id]).output();
        if !matches!(&removed, Ok(output) if output.status.success()) {
            eprintln!("cleanup: removing container {}: {removed:?}", self.id);
        }
    }
}

/// Waits until `condition` holds, failing the test after `TIMEOUT`.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `serve` running on every connection a test makes, until it is waited
/// for.
struct Server {
    address: SocketAddr,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `sessions` connections, each with `request`, on its own thread.
    fn start(env: &'static Env, request: StreamRequest, sessions: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut running = Vec::with_capacity(sessions);
            for _ in 0..sessions {
                let (conn, _) = listener.accept().unwrap();
                let request = request.clone();
                running.push(thread::spawn(move || {
                    env.sessions
                        .serve(request, common::handoff::handoff(conn, TIMEOUT));
                }));
            }
            drop(listener);
            for session in running {
                session.join().unwrap();
            }
            // The test may have failed and stopped waiting.
            let _ = done_tx.send(());
        });
        Server {
            address,
            done: done_rx,
            thread: Some(thread),
        }
    }

    /// Waits for every session to be over.
    fn wait(mut self) {
        self.done
            .recv_timeout(TIMEOUT)
            .expect("a session did not end");
        self.thread.take().unwrap().join().unwrap();
    }
}

const HTTP_GET: &[u8] = b"GET /index.html HTTP/1.0\r\n\r\n";

/// The path clients visit; the token in it is not checked here, where the
/// test hands the request to the sessions itself.
const PORT_FORWARD_PATH: &str = "/cri/portforward/token";

fn spdy_client(address: SocketAddr) -> SpdyPortForward {
    SpdyPortForward::connect(address, PORT_FORWARD_PATH, TIMEOUT)
}

fn assert_served_the_page(response: &[u8]) {
    let response = String::from_utf8_lossy(response);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with(&format!("\r\n\r\n{PAGE}\n")),
        "{response}"
    );
}

#[test]
fn an_http_get_through_spdy_returns_the_pods_page() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let server = Server::start(env, sandbox.request(&[]), 1);
    let mut client = spdy_client(server.address);
    let pair = client.open_pair(HTTP_PORT);
    client.send(pair, HTTP_GET);
    assert_served_the_page(&client.until_closed(pair.data));
    assert_eq!(client.until_closed(pair.error), b"", "nothing failed");
    // The session outlives its connections; it ends with the client.
    let again = client.open_pair(HTTP_PORT);
    client.send(again, HTTP_GET);
    assert_served_the_page(&client.until_closed(again.data));
    drop(client);
    server.wait();
}

#[test]
fn concurrent_connections_on_one_session_end_independently() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let server = Server::start(env, sandbox.request(&[HTTP_PORT, ECHO_PORT]), 1);
    let mut client = spdy_client(server.address);
    let echo = client.open_pair(ECHO_PORT);
    let web = client.open_pair(HTTP_PORT);
    client.send(echo, b"first ");
    client.until_received(echo.data, b"first ");
    client.send(web, HTTP_GET);
    assert_served_the_page(&client.until_closed(web.data));
    assert_eq!(client.until_closed(web.error), b"");
    // The echo connection is still open after the other one ended.
    client.send(echo, b"second");
    client.until_received(echo.data, b"first second");
    assert!(!client.stream(echo.data).closed);
    // A client that half-closes still gets the rest of the reply.
    client.send(echo, b" last");
    client.close(echo);
    assert_eq!(client.until_closed(echo.data), b"first second last");
    assert_eq!(client.until_closed(echo.error), b"");
    drop(client);
    server.wait();
}

#[test]
fn a_closed_port_is_reported_on_the_error_stream_at_once() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let server = Server::start(env, sandbox.request(&[]), 1);
    let mut client = spdy_client(server.address);
    let started = Instant::now();
    let pair = client.open_pair(CLOSED_PORT);
    let message = String::from_utf8(client.until_closed(pair.error)).unwrap();
    assert_eq!(client.until_closed(pair.data), b"");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let expected = format!(
        "error forwarding port {CLOSED_PORT} to pod {}, uid : failed to connect to \
         localhost:{CLOSED_PORT} inside the pod's network namespace, IPv4: ",
        sandbox.id
    );
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("Connection refused"), "{message}");
    // The session goes on.
    let next = client.open_pair(HTTP_PORT);
    client.send(next, HTTP_GET);
    assert_served_the_page(&client.until_closed(next.data));
    drop(client);
    server.wait();
}

#[test]
fn a_port_the_request_did_not_name_is_refused() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let server = Server::start(env, sandbox.request(&[HTTP_PORT]), 1);
    let mut client = spdy_client(server.address);
    let pair = client.open_pair(ECHO_PORT);
    assert_eq!(
        String::from_utf8(client.until_closed(pair.error)).unwrap(),
        format!(
            "error forwarding port {ECHO_PORT} to pod {}, uid : port {ECHO_PORT} is not one of \
             the ports the port-forward request named",
            sandbox.id
        )
    );
    assert_eq!(client.until_closed(pair.data), b"");
    drop(client);
    server.wait();
}

fn websocket(address: SocketAddr, protocol: &str, query: &str) -> WebSocket<TcpStream> {
    let path = format!("{PORT_FORWARD_PATH}{query}");
    common::websocket(address, &path, protocol, TIMEOUT)
}

/// Decodes a server message of either framing into (channel, data);
/// `None` for control messages.
fn decode(message: Message) -> Option<(u8, Vec<u8>)> {
    match message {
        Message::Binary(bytes) => {
            let (&channel, data) = bytes.split_first().expect("a message without channel");
            Some((channel, data.to_vec()))
        }
        Message::Text(text) => {
            let (channel, data) = text.as_str().split_at(1);
            let channel = channel.as_bytes()[0] - b'0';
            Some((channel, base64_decode(data)))
        }
        _ => None,
    }
}

/// Standard padded base64, independently of the crate's own.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).unwrap() as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn websocket_get(protocol: &str, ports_in_query: bool) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let (request, query) = if ports_in_query {
        (sandbox.request(&[]), format!("?port={HTTP_PORT}"))
    } else {
        (sandbox.request(&[HTTP_PORT]), String::new())
    };
    let server = Server::start(env, request, 1);
    let mut socket = websocket(server.address, protocol, &query);
    let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut announced = HashSet::new();
    let mut close_frame = false;
    let mut sent = false;
    loop {
        match socket.read() {
            // Reading on answers the close frame, until the server hangs up.
            Ok(Message::Close(_)) => close_frame = true,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Ok(message) => {
                let Some((channel, data)) = decode(message) else {
                    continue;
                };
                // The first message on each channel is its port.
                if announced.insert(channel) {
                    assert_eq!(data, HTTP_PORT.to_le_bytes(), "channel {channel}");
                } else {
                    channels
                        .entry(channel)
                        .or_default()
                        .extend_from_slice(&data);
                }
            }
            Err(err) => panic!("WebSocket read failed: {err}"),
        }
        if !sent && announced.len() == 2 {
            let message = if protocol.contains("base64") {
                let mut text = String::from("0");
                text.push_str(&base64_encode(HTTP_GET));
                Message::Text(text.into())
            } else {
                Message::Binary(Bytes::from([&[0u8][..], HTTP_GET].concat()))
            };
            socket.send(message).unwrap();
            sent = true;
        }
    }
    assert!(
        close_frame,
        "the server ends the session with a close frame"
    );
    assert_eq!(announced, HashSet::from([0, 1]));
    assert_served_the_page(&channels.remove(&0).unwrap_or_default());
    assert_eq!(channels.remove(&1), None, "nothing failed");
    // The session ended with its only connection.
    server.wait();
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, b)| word | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn an_http_get_through_websocket_returns_the_pods_page_and_ends_the_session() {
    websocket_get("v4.channel.k8s.io", false);
}

#[test]
fn websocket_base64_takes_its_ports_from_the_query() {
    websocket_get("v4.base64.channel.k8s.io", true);
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

/// Open descriptors other than unix-domain sockets: those are the Docker
/// client's keep-alive connections, which the index opens and closes as
/// other work on the machine changes containers. Port forwarding makes
/// none.
fn descriptors() -> usize {
    let unix: HashSet<String> = fs::read_to_string("/proc/self/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(6))
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter(|target| !unix.contains(&target.to_string_lossy().into_owned()))
        .count()
}

/// Threads of this process running under one of the session's names.
fn session_threads() -> Vec<String> {
    thread_names()
        .into_iter()
        .filter(|name| SESSION_THREADS.contains(&name.as_str()))
        .collect()
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// Ways a client abandons a session, without closing anything first.
#[derive(Debug, Clone, Copy)]
enum Abandon {
    /// Right after opening a pair: the server is dialling.
    MidDial,
    /// With an echo connection open and carrying data.
    MidEcho,
    /// Halfway through an HTTP request, which httpd waits to complete.
    MidRequest,
    /// With half a pair open.
    HalfPair,
    /// A WebSocket session with an echo connection carrying data.
    WebSocketMidEcho,
    /// With a connection the pod keeps open, silent, after the client
    /// closed its side: only the client going ends it.
    HalfClosedSilent,
}

const ABANDONS: [Abandon; 6] = [
    Abandon::MidDial,
    Abandon::MidEcho,
    Abandon::MidRequest,
    Abandon::HalfPair,
    Abandon::WebSocketMidEcho,
    Abandon::HalfClosedSilent,
];

fn abandon(address: SocketAddr, how: Abandon) {
    match how {
        Abandon::WebSocketMidEcho => {
            let mut socket = websocket(address, "v4.channel.k8s.io", &format!("?port={ECHO_PORT}"));
            socket
                .send(Message::Binary(Bytes::from_static(b"\x00echo")))
                .unwrap();
            let mut echoed = Vec::new();
            while echoed.len() < 2 + 4 {
                if let Some((0, data)) = decode(socket.read().unwrap()) {
                    echoed.extend_from_slice(&data);
                }
            }
            assert_eq!(&echoed[2..], b"echo");
        }
        Abandon::HalfPair => {
            let mut client = spdy_client(address);
            client
                .client
                .open_stream(
                    &[("streamtype", "data"), ("port", "9090"), ("requestid", "0")],
                    false,
                )
                .unwrap();
        }
        Abandon::MidDial => {
            let mut client = spdy_client(address);
            client.open_pair(ECHO_PORT);
        }
        Abandon::MidEcho => {
            let mut client = spdy_client(address);
            let pair = client.open_pair(ECHO_PORT);
            client.send(pair, b"echo");
            client.until_received(pair.data, b"echo");
        }
        Abandon::HalfClosedSilent => {
            let mut client = spdy_client(address);
            let pair = client.open_pair(SILENT_PORT);
            client.close(pair);
            client.until_received(pair.data, b".");
        }
        Abandon::MidRequest => {
            let mut client = spdy_client(address);
            let pair = client.open_pair(HTTP_PORT);
            client.send(pair, &HTTP_GET[..10]);
        }
    }
}

#[test]
fn a_thousand_abandoned_sessions_leave_no_thread_or_descriptor_behind() {
    let _exclusive = COUNTING.write().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let sandbox = Sandbox::start(env);
    let request = sandbox.request(&[]);
    // Whatever is made once per process (buffers, the index's connection)
    // is made before counting.
    let warm_up = Server::start(env, request.clone(), ABANDONS.len());
    for how in ABANDONS {
        abandon(warm_up.address, how);
    }
    warm_up.wait();
    let (tasks, fds) = (threads(), descriptors());

    const SESSIONS: usize = 1000;
    let started = Instant::now();
    let server = Server::start(env, request, SESSIONS);
    for n in 0..SESSIONS {
        abandon(server.address, ABANDONS[n % ABANDONS.len()]);
    }
    server.wait();
    eprintln!(
        "{SESSIONS} sessions abandoned and over in {:?}",
        started.elapsed()
    );

    assert_eq!(session_threads(), Vec::<String>::new());
    let deadline = Instant::now() + TIMEOUT;
    while threads() != tasks {
        assert!(
            Instant::now() < deadline,
            "the thread count does not return to {tasks}: {:?}",
            thread_names()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(descriptors(), fds, "descriptors left open");
    // The pod's services still answer: nothing there is stuck either.
    let server = Server::start(env, sandbox.request(&[]), 1);
    let mut client = spdy_client(server.address);
    let pair = client.open_pair(HTTP_PORT);
    client.send(pair, HTTP_GET);
    assert_served_the_page(&client.until_closed(pair.data));
    drop(client);
    server.wait();
}
