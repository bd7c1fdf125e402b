//! `DockerSessions`, the exec and attach sessions behind the streaming
//! server, against the real dockerd on /var/run/docker.sock, over both
//! transports: SPDY/3.1 through the independent client in
//! `common::spdy_client` (reference zlib) and WebSocket through tungstenite.
//!
//! Each test accepts one connection itself, reads the request head as the
//! streaming server would, and runs `serve` in this process, so the threads
//! and descriptors a session leaves behind can be counted here.
//!
//! Tests print why and pass when dockerd or the test image is absent (under
//! tests/run.sh they fail). Every container created here carries
//! `dockshim-test=1` and the test run's label, and is removed by a drop
//! guard, also when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::spdy_client::{ClientFrame, SpdyClient};
use dockshim::cri::streaming::docker_sessions::DockerSessions;
use dockshim::docker::DockerClient;
use dockshim::host::Node;
use dockshim::index::Index;
use dockshim::streaming::session::{Attach, Exec, Sessions, StreamRequest};
use serde_json::Value;
use tungstenite::{Bytes, Message, WebSocket};

/// Bounds every wait, so a session that never ends fails its test.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Names of the threads a session starts.
const SESSION_THREADS: &[&str] = &[
    "spdy-reader",
    "ws-reader",
    "session-stdin",
    "session-resize",
];

/// Held shared by every test and exclusively by the leak tests, whose
/// thread and descriptor counts must not see the other tests' work.
static COUNTING: RwLock<()> = RwLock::new(());

struct Env {
    docker: DockerClient,
    sessions: Arc<DockerSessions>,
    image: String,
}

fn env() -> Option<Env> {
    let (docker, image) = common::docker::dockerd_with_busybox()?;
    Some(Env {
        sessions: Arc::new(DockerSessions::new(
            Arc::new(docker.clone()),
            index(&docker),
            Arc::new(Node),
        )),
        docker,
        image,
    })
}

/// The state index the sessions are given, one for the whole test binary:
/// its `docker-events` thread is then no part of what the leak tests count.
fn index(docker: &DockerClient) -> Arc<Index> {
    static INDEX: OnceLock<Arc<Index>> = OnceLock::new();
    Arc::clone(INDEX.get_or_init(|| Index::start(docker.clone()).unwrap()))
}

/// A container started with `docker run -d`, removed (with force) on drop.
struct Container {
    id: String,
}

impl Container {
    fn run(env: &Env, options: &[&str], command: &[&str]) -> Container {
        let output = Command::new("docker")
            .args(["run", "-d", "--label", "dockshim-test=1"])
            .args(["--label", &common::test_run_label()])
            .args(options)
            .arg(&env.image)
            .args(command)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Container {
            id: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
        }
    }

    /// The command lines of the container's processes, as `docker top`
    /// lists them.
    fn processes(&self, env: &Env) -> Vec<String> {
        let top: Value = env
            .docker
            .get_json(&format!("/containers/{}/top", self.id))
            .unwrap();
        let command = top["Titles"]
            .as_array()
            .unwrap()
            .iter()
            .position(|title| title == "CMD" || title == "COMMAND")
            .unwrap();
        top["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[command].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let removed = Command::new("docker").args(["rm", "-f", &self.id]).output();
        if !matches!(&removed, Ok(output) if output.status.success()) {
            eprintln!("cleanup: removing container {}: {removed:?}", self.id);
        }
    }
}

/// `serve` running on the one connection a test makes.
struct Server {
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Waits for `serve` to return.
    fn wait(mut self) {
        self.done
            .recv_timeout(TIMEOUT)
            .expect("serve did not return");
        self.thread.take().unwrap().join().unwrap();
    }
}

/// Listens on a loopback port, accepts one connection, reads its request
/// head and hands it to `serve`.
fn serve_one(env: &Env, request: StreamRequest) -> (SocketAddr, Server) {
    serve_one_idle(env, request, None)
}

/// [`serve_one`] with an idle timeout.
fn serve_one_idle(
    env: &Env,
    request: StreamRequest,
    idle_timeout: Option<Duration>,
) -> (SocketAddr, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let sessions = Arc::clone(&env.sessions);
    let (done_tx, done_rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(listener);
        let mut handoff = common::handoff::handoff(conn, TIMEOUT);
        handoff.idle_timeout = idle_timeout;
        sessions.serve(request, handoff);
        // The test may have failed and stopped waiting.
        let _ = done_tx.send(());
    });
    let server = Server {
        done: done_rx,
        thread: Some(thread),
    };
    (address, server)
}

/// The streams a request asks for.
#[derive(Debug, Clone, Copy, Default)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

const OUTPUT: Streams = Streams {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};

const INTERACTIVE: Streams = Streams {
    stdin: true,
    stdout: true,
    stderr: true,
    tty: false,
};

fn exec(container: &str, cmd: &[&str], streams: Streams) -> StreamRequest {
    StreamRequest::Exec(Exec {
        container_id: container.to_owned(),
        cmd: cmd.iter().map(|word| (*word).to_owned()).collect(),
        tty: streams.tty,
        stdin: streams.stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
    })
}

fn attach(container: &str, streams: Streams) -> StreamRequest {
    StreamRequest::Attach(Attach {
        container_id: container.to_owned(),
        stdin: streams.stdin,
        tty: streams.tty,
        stdout: streams.stdout,
        stderr: streams.stderr,
    })
}

/// How a client reaches the session, and which subprotocol it asks for.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Spdy(&'static str),
    WebSocket(&'static str),
}

const SPDY: Transport = Transport::Spdy("v4.channel.k8s.io");
const WEBSOCKET: Transport = Transport::WebSocket("v5.channel.k8s.io");

/// What a client received on each stream.
#[derive(Debug, Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    error: Vec<u8>,
    /// The server ended the session properly (GOAWAY, or the closing
    /// handshake), rather than just dropping the connection.
    closed_cleanly: bool,
    /// The code of the WebSocket close frame.
    close_code: Option<u16>,
}

impl Output {
    /// The v4/v5 JSON status on the error stream.
    fn status(&self) -> Value {
        serde_json::from_slice(&self.error).unwrap_or_else(|err| {
            panic!(
                "error stream is not a JSON status ({err}): {:?}",
                String::from_utf8_lossy(&self.error)
            )
        })
    }

    fn assert_success(&self) {
        let status = self.status();
        assert_eq!(status["status"], "Success", "{status}");
    }

    fn assert_exit_code(&self, code: i32) {
        let status = self.status();
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
        let cause = &status["details"]["causes"][0];
        assert_eq!(cause["reason"], "ExitCode", "{status}");
        assert_eq!(cause["message"], code.to_string(), "{status}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdout,
    Stderr,
    Error,
}

enum Conn {
    Spdy {
        client: SpdyClient,
        kinds: HashMap<u32, Kind>,
        stdin: Option<u32>,
        resize: Option<u32>,
    },
    WebSocket(WebSocket<TcpStream>),
}

/// A client as kubectl behaves: it opens the streams of the request and
/// waits for the session to end.
struct Client {
    conn: Conn,
    output: Output,
    ended: bool,
}

impl Client {
    fn connect(address: SocketAddr, transport: Transport, streams: Streams) -> Client {
        let conn = match transport {
            Transport::Spdy(protocol) => {
                let (response, client) =
                    SpdyClient::connect(address, "POST", "/cri/exec/token", &[protocol]).unwrap();
                assert_eq!(response.status, 101, "{response:?}");
                assert_eq!(response.header("X-Stream-Protocol-Version"), Some(protocol));
                let mut client = client.unwrap();
                client.set_read_timeout(Some(TIMEOUT)).unwrap();
                let mut open =
                    |kind: &str| client.open_stream(&[("streamtype", kind)], false).unwrap();
                // The order kubectl opens them in.
                let mut kinds = HashMap::new();
                kinds.insert(open("error"), Kind::Error);
                let stdin = streams.stdin.then(|| open("stdin"));
                if streams.stdout {
                    kinds.insert(open("stdout"), Kind::Stdout);
                }
                if streams.stderr {
                    kinds.insert(open("stderr"), Kind::Stderr);
                }
                let resizable = protocol == "v4.channel.k8s.io" || protocol == "v3.channel.k8s.io";
                let resize = (streams.tty && resizable).then(|| open("resize"));
                Conn::Spdy {
                    client,
                    kinds,
                    stdin,
                    resize,
                }
            }
            Transport::WebSocket(protocol) => Conn::WebSocket(common::websocket(
                address,
                "/cri/exec/token",
                protocol,
                TIMEOUT,
            )),
        };
        Client {
            conn,
            output: Output::default(),
            ended: false,
        }
    }

    fn send_stdin(&mut self, data: &[u8]) {
        match &mut self.conn {
            Conn::Spdy { client, stdin, .. } => client
                .send_data(stdin.expect("no stdin stream"), data, false)
                .unwrap(),
            Conn::WebSocket(socket) => socket
                .send(Message::Binary(Bytes::from([&[0u8][..], data].concat())))
                .unwrap(),
        }
    }

    /// Half-closes stdin: FIN on SPDY, the v5 close signal on WebSocket.
    fn close_stdin(&mut self) {
        match &mut self.conn {
            Conn::Spdy { client, stdin, .. } => client
                .send_data(stdin.expect("no stdin stream"), &[], true)
                .unwrap(),
            Conn::WebSocket(socket) => socket
                .send(Message::Binary(Bytes::from_static(&[255, 0])))
                .unwrap(),
        }
    }

    fn resize(&mut self, width: u16, height: u16) {
        let size = format!(r#"{{"Width":{width},"Height":{height}}}"#);
        match &mut self.conn {
            Conn::Spdy { client, resize, .. } => client
                .send_data(resize.expect("no resize stream"), size.as_bytes(), false)
                .unwrap(),
            Conn::WebSocket(socket) => socket
                .send(Message::Binary(Bytes::from(
                    [&[4u8][..], size.as_bytes()].concat(),
                )))
                .unwrap(),
        }
    }

    /// Reads what arrives next; false once the session has ended.
    fn read_some(&mut self) -> bool {
        if self.ended {
            return false;
        }
        let received = match &mut self.conn {
            Conn::Spdy { client, kinds, .. } => match client.read_frame() {
                Ok(Some(ClientFrame::Data { stream, data, .. })) => match kinds.get(&stream) {
                    Some(kind) => Some((*kind, data)),
                    // The server half-closes the streams it never writes.
                    None if data.is_empty() => None,
                    None => panic!("data on stream {stream}, which is not ours to read"),
                },
                Ok(Some(ClientFrame::GoAway { .. })) => {
                    self.output.closed_cleanly = true;
                    None
                }
                Ok(Some(_)) => None,
                Ok(None) | Err(_) => {
                    self.ended = true;
                    None
                }
            },
            Conn::WebSocket(socket) => match socket.read() {
                Ok(Message::Binary(bytes)) => {
                    let (&channel, data) = bytes.split_first().expect("a message without channel");
                    let kind = match channel {
                        1 => Kind::Stdout,
                        2 => Kind::Stderr,
                        3 => Kind::Error,
                        other => panic!("data on channel {other}"),
                    };
                    Some((kind, data.to_vec()))
                }
                Ok(Message::Text(text)) => panic!("text message {text:?} in a binary session"),
                Ok(Message::Close(frame)) => {
                    self.output.closed_cleanly = true;
                    self.output.close_code = frame.map(|frame| u16::from(frame.code));
                    None
                }
                Ok(_) => None,
                Err(tungstenite::Error::ConnectionClosed) => {
                    self.ended = true;
                    None
                }
                Err(err) => {
                    eprintln!("WebSocket read ended: {err}");
                    self.ended = true;
                    None
                }
            },
        };
        if let Some((kind, data)) = received {
            match kind {
                Kind::Stdout => self.output.stdout.extend_from_slice(&data),
                Kind::Stderr => self.output.stderr.extend_from_slice(&data),
                Kind::Error => self.output.error.extend_from_slice(&data),
            }
        }
        !self.ended
    }

    fn read_stdout_until(&mut self, wanted: &[u8]) {
        while !self
            .output
            .stdout
            .windows(wanted.len())
            .any(|w| w == wanted)
        {
            assert!(
                self.read_some(),
                "the session ended before stdout showed {:?}: {:?}",
                String::from_utf8_lossy(wanted),
                self.output
            );
        }
    }

    /// Reads until the session ends, then closes the connection.
    fn finish(mut self) -> Output {
        while self.read_some() {}
        self.output
    }

    /// [`Client::finish`] for a session that must end properly.
    fn finish_cleanly(self) -> Output {
        let output = self.finish();
        assert!(
            output.closed_cleanly,
            "the server dropped the connection: {output:?}"
        );
        output
    }
}

/// Runs `request` with a client that sends nothing; returns its output.
fn run(env: &Env, transport: Transport, request: StreamRequest, streams: Streams) -> Output {
    let (address, server) = serve_one(env, request);
    let output = Client::connect(address, transport, streams).finish_cleanly();
    server.wait();
    output
}

fn exec_prints_and_succeeds(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let output = run(
        &env,
        transport,
        exec(&container.id, &["echo", "hi"], OUTPUT),
        OUTPUT,
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    assert_eq!(output.stderr, b"");
    output.assert_success();
}

#[test]
fn exec_output_reaches_stdout_and_success_the_error_stream_over_spdy() {
    exec_prints_and_succeeds(SPDY);
}

#[test]
fn exec_output_reaches_stdout_and_success_the_error_stream_over_websocket() {
    exec_prints_and_succeeds(WEBSOCKET);
}

fn exec_reports_its_exit_code(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let output = run(
        &env,
        transport,
        exec(&container.id, &["sh", "-c", "exit 3"], OUTPUT),
        OUTPUT,
    );
    output.assert_exit_code(3);
}

#[test]
fn a_non_zero_exit_is_reported_with_its_code_over_spdy() {
    exec_reports_its_exit_code(SPDY);
}

#[test]
fn a_non_zero_exit_is_reported_with_its_code_over_websocket() {
    exec_reports_its_exit_code(WEBSOCKET);
}

fn older_protocols_report_failures_as_text(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let failed = run(
        &env,
        transport,
        exec(&container.id, &["sh", "-c", "exit 7"], OUTPUT),
        OUTPUT,
    );
    assert_eq!(
        String::from_utf8_lossy(&failed.error),
        "command terminated with non-zero exit code: Error executing in Docker Container: 7"
    );
    let succeeded = run(
        &env,
        transport,
        exec(&container.id, &["true"], OUTPUT),
        OUTPUT,
    );
    assert_eq!(succeeded.error, b"", "a success sends nothing");
}

#[test]
fn spdy_v3_reports_failures_as_text_and_success_as_nothing() {
    older_protocols_report_failures_as_text(Transport::Spdy("v3.channel.k8s.io"));
}

#[test]
fn websocket_v1_reports_failures_as_text_and_success_as_nothing() {
    older_protocols_report_failures_as_text(Transport::WebSocket("channel.k8s.io"));
}

fn exec_echoes_stdin_until_it_closes(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let (address, server) = serve_one(&env, exec(&container.id, &["cat"], INTERACTIVE));
    let mut client = Client::connect(address, transport, INTERACTIVE);
    client.send_stdin(b"hello\n");
    client.read_stdout_until(b"hello\n");
    client.send_stdin(b"world\n");
    client.close_stdin();
    let output = client.finish_cleanly();
    server.wait();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello\nworld\n");
    output.assert_success();
}

#[test]
fn exec_of_cat_echoes_stdin_and_ends_when_stdin_closes_over_spdy() {
    exec_echoes_stdin_until_it_closes(SPDY);
}

#[test]
fn exec_of_cat_echoes_stdin_and_ends_when_stdin_closes_over_websocket() {
    exec_echoes_stdin_until_it_closes(WEBSOCKET);
}

fn exec_keeps_stderr_apart(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let output = run(
        &env,
        transport,
        exec(
            &container.id,
            &["sh", "-c", "echo out; echo err >&2"],
            OUTPUT,
        ),
        OUTPUT,
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    output.assert_success();
}

#[test]
fn stderr_arrives_on_its_own_stream_over_spdy() {
    exec_keeps_stderr_apart(SPDY);
}

#[test]
fn stderr_arrives_on_its_own_stream_over_websocket() {
    exec_keeps_stderr_apart(WEBSOCKET);
}

fn tty_exec_takes_the_clients_size(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    // The size is applied just after the start; wait for it rather than
    // racing it.
    let script = r#"for i in $(seq 50); do s=$(stty size); [ "$s" = "30 100" ] && break; sleep 0.1; done; echo "size $s""#;
    let (address, server) = serve_one(&env, exec(&container.id, &["sh", "-c", script], streams));
    let mut client = Client::connect(address, transport, streams);
    client.resize(100, 30);
    let output = client.finish_cleanly();
    server.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("size 30 100\r\n"), "{text:?}");
    output.assert_success();
}

#[test]
fn a_tty_exec_takes_the_size_the_client_sends_over_spdy() {
    tty_exec_takes_the_clients_size(SPDY);
}

#[test]
fn a_tty_exec_takes_the_size_the_client_sends_over_websocket() {
    tty_exec_takes_the_clients_size(WEBSOCKET);
}

fn attach_relays_stdin_and_stdout(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &["-i"], &["cat"]);
    let (address, server) = serve_one(&env, attach(&container.id, INTERACTIVE));
    let mut client = Client::connect(address, transport, INTERACTIVE);
    client.send_stdin(b"ping\n");
    client.read_stdout_until(b"ping\n");
    // dockerd ends an attach whose stdin closed (the container goes on).
    client.close_stdin();
    let output = client.finish_cleanly();
    server.wait();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ping\n");
    output.assert_success();
    assert!(
        env.docker
            .inspect_container(&container.id)
            .unwrap()
            .state
            .running
    );
}

#[test]
fn attach_relays_stdin_to_the_container_and_its_output_back_over_spdy() {
    attach_relays_stdin_and_stdout(SPDY);
}

#[test]
fn attach_relays_stdin_to_the_container_and_its_output_back_over_websocket() {
    attach_relays_stdin_and_stdout(WEBSOCKET);
}

fn attach_ends_with_the_container(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &["-i"], &["sh", "-c", "read line; echo got $line"]);
    let (address, server) = serve_one(&env, attach(&container.id, INTERACTIVE));
    let mut client = Client::connect(address, transport, INTERACTIVE);
    client.send_stdin(b"it\n");
    let output = client.finish_cleanly();
    server.wait();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "got it\n");
    output.assert_success();
}

#[test]
fn attach_ends_when_the_container_exits_over_spdy() {
    attach_ends_with_the_container(SPDY);
}

#[test]
fn attach_ends_when_the_container_exits_over_websocket() {
    attach_ends_with_the_container(WEBSOCKET);
}

fn attach_without_stdin_follows_the_output(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(
        &env,
        &[],
        &[
            "sh",
            "-c",
            "sleep 1; echo late; echo oops >&2; sleep 1; echo done",
        ],
    );
    let output = run(&env, transport, attach(&container.id, OUTPUT), OUTPUT);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "late\ndone\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "oops\n");
    output.assert_success();
}

#[test]
fn attach_without_stdin_relays_output_until_the_container_exits_over_spdy() {
    attach_without_stdin_follows_the_output(SPDY);
}

#[test]
fn attach_without_stdin_relays_output_until_the_container_exits_over_websocket() {
    attach_without_stdin_follows_the_output(WEBSOCKET);
}

fn attach_to_a_tty_takes_the_clients_size(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &["-i", "-t"], &["sh"]);
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let (address, server) = serve_one(&env, attach(&container.id, streams));
    let mut client = Client::connect(address, transport, streams);
    client.resize(100, 30);
    client.send_stdin(
        b"for i in $(seq 50); do s=$(stty size); [ \"$s\" = '30 100' ] && break; sleep 0.1; done; \
          echo \"size $s\"; exit\n",
    );
    let output = client.finish_cleanly();
    server.wait();
    // The terminal echoes the command line, which holds `size $s`, not the size.
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("size 30 100\r\n"), "{text:?}");
    output.assert_success();
}

#[test]
fn attach_to_a_tty_container_takes_the_size_the_client_sends_over_spdy() {
    attach_to_a_tty_takes_the_clients_size(SPDY);
}

#[test]
fn attach_to_a_tty_container_takes_the_size_the_client_sends_over_websocket() {
    attach_to_a_tty_takes_the_clients_size(WEBSOCKET);
}

fn failures_reach_the_error_stream(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let missing = format!("dockshim-test-missing-{}", common::unique());
    let output = run(&env, transport, exec(&missing, &["true"], OUTPUT), OUTPUT);
    let status = output.status();
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "InternalError", "{status}");
    assert_eq!(status["code"], 500, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("Internal error occurred: error executing command in container: "),
        "{message}"
    );
    assert!(message.contains("No such container"), "{message}");

    let stopped = Container::run(&env, &[], &["true"]);
    let deadline = Instant::now() + TIMEOUT;
    while env
        .docker
        .inspect_container(&stopped.id)
        .unwrap()
        .state
        .running
    {
        assert!(Instant::now() < deadline, "the container does not stop");
        thread::sleep(Duration::from_millis(20));
    }
    let output = run(&env, transport, attach(&stopped.id, OUTPUT), OUTPUT);
    let message = output.status()["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        format!(
            "Internal error occurred: error attaching to container: container not running ({})",
            stopped.id
        )
    );
}

#[test]
fn a_missing_or_stopped_container_is_reported_on_the_error_stream_over_spdy() {
    failures_reach_the_error_stream(SPDY);
}

#[test]
fn a_missing_or_stopped_container_is_reported_on_the_error_stream_over_websocket() {
    failures_reach_the_error_stream(WEBSOCKET);
}

#[test]
fn an_upgrade_without_a_protocol_is_refused_with_400() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let (address, server) = serve_one(&env, exec(&container.id, &["true"], OUTPUT));
    let (response, client) = SpdyClient::connect(address, "POST", "/cri/exec/token", &[]).unwrap();
    server.wait();
    assert!(client.is_none());
    assert_eq!(response.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        "unable to upgrade: X-Stream-Protocol-Version is required\n"
    );
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process running under one of the session's names.
fn session_threads() -> Vec<String> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| SESSION_THREADS.contains(&name.as_str()))
        .collect()
}

/// Waits until `condition` holds, failing the test after `TIMEOUT`.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn abandoned_exec_leaves_nothing_behind(transport: Transport) {
    let _exclusive = COUNTING.write().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let (tasks, descriptors) = (threads(), open_descriptors());
    let (address, server) = serve_one(
        &env,
        exec(
            &container.id,
            &["sh", "-c", "echo ready; exec sleep 301"],
            INTERACTIVE,
        ),
    );
    let mut client = Client::connect(address, transport, INTERACTIVE);
    client.read_stdout_until(b"ready\n");
    assert!(
        container
            .processes(&env)
            .iter()
            .any(|p| p.contains("sleep 301")),
        "the exec'd process is running"
    );
    let named = session_threads();
    assert!(
        named.len() >= 2,
        "a reader and a stdin thread run during the session: {named:?}"
    );
    // The client vanishes mid-stream, without closing anything first.
    drop(client);
    server.wait();
    assert_eq!(session_threads(), Vec::<String>::new());
    eventually("the thread count returns to where it was", || {
        threads() == tasks
    });
    assert_eq!(open_descriptors(), descriptors, "descriptors left open");
    eventually("the exec'd process is killed", || {
        !container
            .processes(&env)
            .iter()
            .any(|p| p.contains("sleep 301"))
    });
}

#[test]
fn a_client_that_vanishes_leaves_no_thread_socket_or_process_over_spdy() {
    abandoned_exec_leaves_nothing_behind(SPDY);
}

#[test]
fn a_client_that_vanishes_leaves_no_thread_socket_or_process_over_websocket() {
    abandoned_exec_leaves_nothing_behind(WEBSOCKET);
}

fn idle_session_ends(transport: Transport) {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(env) = env() else { return };
    let container = Container::run(&env, &[], &["sleep", "300"]);
    let (address, server) = serve_one_idle(
        &env,
        exec(
            &container.id,
            &["sh", "-c", "echo ready; exec sleep 302"],
            INTERACTIVE,
        ),
        Some(Duration::from_millis(500)),
    );
    let started = Instant::now();
    let mut client = Client::connect(address, transport, INTERACTIVE);
    client.read_stdout_until(b"ready\n");
    // Nothing moves either way from here on; the server gives up.
    let output = client.finish();
    server.wait();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(output.closed_cleanly, "the client is told: {output:?}");
    if let Transport::WebSocket(_) = transport {
        assert_eq!(output.close_code, Some(1001), "going away");
    }
    assert_eq!(output.error, b"", "no status for a session that timed out");
    eventually("the exec'd process is killed", || {
        !container
            .processes(&env)
            .iter()
            .any(|p| p.contains("sleep 302"))
    });
}

#[test]
fn an_idle_session_ends_and_its_process_is_killed_over_spdy() {
    idle_session_ends(SPDY);
}

#[test]
fn an_idle_session_ends_and_its_process_is_killed_over_websocket() {
    idle_session_ends(WEBSOCKET);
}
