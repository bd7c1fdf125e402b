//! Exec, Attach and PortForward end to end in real pods: the real binary
//! issues the URLs and runs the sessions against the real dockerd, and the
//! tests visit the URLs with independent clients (`common::spdy_client`
//! for SPDY/3.1, tungstenite for WebSocket).
//!
//! Port forwarding reaches a busybox httpd in a pod with a network
//! namespace of its own, wired by the real CNI plugins
//! (`common::cni_pod`): the page it serves exists nowhere else, so reading
//! it proves the connection was dialled inside the pod. Attach and the
//! terminal size use a host-network pod (`common::pod`). The last test
//! abandons a thousand sessions mid-stream and then counts dockshim's
//! threads and descriptors and the container's processes. Needs root, as
//! `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::busybox_image;
use common::client::CriClient;
use common::cni_pod::CniPod;
use common::pod::World;
use common::port_forward_client::SpdyPortForward;
use common::spdy_client::{ClientFrame, SpdyClient};
use common::{eventually, split_url};
use dockshim::api::v1 as cri;
use tungstenite::{Bytes, Message, WebSocket};

/// Bounds every wait for the server, so a session that hangs fails its
/// test instead of the run.
const WAIT: Duration = Duration::from_secs(10);

/// What the pod's httpd listens on, and a port nothing listens on.
const HTTP_PORT: u16 = 8080;
const CLOSED_PORT: u16 = 8081;

/// The size of `/big`, which a client stops reading halfway.
const BIG_FILE_BYTES: usize = 1024 * 1024;

const SPDY_REMOTE_COMMAND: &str = "v4.channel.k8s.io";
const WS_REMOTE_COMMAND: &str = "v5.channel.k8s.io";
const WS_PORT_FORWARD: &str = "v4.channel.k8s.io";

/// Which transport a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Spdy,
    WebSocket,
}

const TRANSPORTS: [Transport; 2] = [Transport::Spdy, Transport::WebSocket];

/// A WebSocket connection to `url` offering `protocol`.
fn websocket(url: &str, protocol: &str) -> WebSocket<TcpStream> {
    let (addr, path) = split_url(url);
    common::websocket(addr, &path, protocol, WAIT)
}

/// A SPDY session upgraded on `url` with `protocol`.
fn spdy(url: &str, protocol: &str) -> SpdyClient {
    let (addr, path) = split_url(url);
    let (response, client) = SpdyClient::connect(addr, "POST", &path, &[protocol]).unwrap();
    assert_eq!(response.status, 101, "{response:?}");
    let client = client.unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client
}

/// Which streams an exec or attach client opens.
#[derive(Debug, Clone, Copy)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// What an exec or attach client has received so far.
#[derive(Debug, Default)]
struct Received {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    error: Vec<u8>,
    /// The server closed the session.
    ended: bool,
}

impl Received {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The SPDY stream ids of a remote command.
#[derive(Debug, Default)]
struct SpdyIds {
    error: u32,
    stdin: u32,
    stdout: u32,
    stderr: u32,
    resize: u32,
}

/// An exec or attach client as the kubelet's clients behave, on either
/// transport.
enum RemoteCommand {
    Spdy(SpdyClient, SpdyIds, Received),
    WebSocket(WebSocket<TcpStream>, Received),
}

impl RemoteCommand {
    fn open(url: &str, transport: Transport, streams: Streams) -> RemoteCommand {
        match transport {
            Transport::Spdy => {
                let mut client = spdy(url, SPDY_REMOTE_COMMAND);
                let mut open = |wanted: bool, kind: &str| {
                    if wanted {
                        client.open_stream(&[("streamtype", kind)], false).unwrap()
                    } else {
                        0
                    }
                };
                let ids = SpdyIds {
                    error: open(true, "error"),
                    stdin: open(streams.stdin, "stdin"),
                    stdout: open(streams.stdout, "stdout"),
                    stderr: open(streams.stderr, "stderr"),
                    resize: open(streams.tty, "resize"),
                };
                RemoteCommand::Spdy(client, ids, Received::default())
            }
            Transport::WebSocket => {
                RemoteCommand::WebSocket(websocket(url, WS_REMOTE_COMMAND), Received::default())
            }
        }
    }

    fn send_stdin(&mut self, bytes: &[u8]) {
        match self {
            RemoteCommand::Spdy(client, ids, _) => client.send_data(ids.stdin, bytes, false),
            RemoteCommand::WebSocket(socket, _) => {
                send_ws(socket, 0, bytes);
                Ok(())
            }
        }
        .unwrap();
    }

    fn close_stdin(&mut self) {
        match self {
            RemoteCommand::Spdy(client, ids, _) => client.send_data(ids.stdin, &[], true).unwrap(),
            // v5's close signal names the channel to close.
            RemoteCommand::WebSocket(socket, _) => send_ws(socket, 255, &[0]),
        }
    }

    fn resize(&mut self, width: u16, height: u16) {
        let message = format!(r#"{{"Width":{width},"Height":{height}}}"#);
        match self {
            RemoteCommand::Spdy(client, ids, _) => client
                .send_data(ids.resize, message.as_bytes(), false)
                .unwrap(),
            RemoteCommand::WebSocket(socket, _) => send_ws(socket, 4, message.as_bytes()),
        }
    }

    fn received(&self) -> &Received {
        match self {
            RemoteCommand::Spdy(_, _, received) | RemoteCommand::WebSocket(_, received) => received,
        }
    }

    /// Reads until the session ends; returns everything it carried.
    fn finish(mut self) -> Received {
        self.read_until(|_| false);
        match self {
            RemoteCommand::Spdy(_, _, received) | RemoteCommand::WebSocket(_, received) => received,
        }
    }

    /// Reads until `done` holds or the session ends.
    fn read_until(&mut self, done: impl Fn(&Received) -> bool) -> &Received {
        while !done(self.received()) && !self.received().ended {
            self.read_one();
        }
        self.received()
    }

    fn read_one(&mut self) {
        match self {
            RemoteCommand::Spdy(client, ids, received) => match client
                .read_frame()
                .unwrap_or_else(|e| panic!("{e}: {received:?}"))
            {
                Some(ClientFrame::Data { stream, data, .. }) => {
                    let target = if stream == ids.stdout {
                        &mut received.stdout
                    } else if stream == ids.stderr {
                        &mut received.stderr
                    } else if stream == ids.error {
                        &mut received.error
                    } else {
                        // Closing a stream the server only reads is fine.
                        assert!(
                            data.is_empty(),
                            "data on stream {stream}, which is no output"
                        );
                        return;
                    };
                    target.extend_from_slice(&data);
                }
                Some(ClientFrame::GoAway { .. }) | None => received.ended = true,
                Some(_) => {}
            },
            RemoteCommand::WebSocket(socket, received) => match socket.read() {
                Ok(Message::Binary(bytes)) => match bytes.split_first() {
                    Some((1, data)) => received.stdout.extend_from_slice(data),
                    Some((2, data)) => received.stderr.extend_from_slice(data),
                    Some((3, data)) => received.error.extend_from_slice(data),
                    other => panic!("unexpected message {other:?}"),
                },
                Ok(Message::Close(_))
                | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    received.ended = true
                }
                Ok(_) => {}
                Err(err) => panic!("WebSocket read failed: {err}"),
            },
        }
    }
}

/// One binary message: the channel byte, then `data`.
fn send_ws(socket: &mut WebSocket<TcpStream>, channel: u8, data: &[u8]) {
    let message = [&[channel][..], data].concat();
    socket.send(Message::Binary(Bytes::from(message))).unwrap();
}

/// The JSON status an exec or attach ended with.
fn status(received: &Received) -> serde_json::Value {
    serde_json::from_slice(&received.error).unwrap_or_else(|err| {
        panic!(
            "error stream {:?}: {err}",
            String::from_utf8_lossy(&received.error)
        )
    })
}

/// Starts a container in `pod` running httpd on `HTTP_PORT`, serving
/// `/index.html` (saying `page`) and `/big`, and waits until it listens.
async fn serve_http(pod: &CniPod, page: &str) {
    let script = format!(
        "mkdir -p /www && echo {page} > /www/index.html && \
         head -c {BIG_FILE_BYTES} /dev/zero > /www/big && \
         exec httpd -f -p {HTTP_PORT} -h /www"
    );
    let config = pod.config("web", &busybox_image(), &["sh", "-c", &script]);
    let web = pod.run(config).await;
    let listening = eventually(WAIT, || async {
        let table = pod.client.exec_sync(&web, &["netstat", "-ltn"], 10).await;
        table.is_ok_and(|table| {
            String::from_utf8_lossy(&table.stdout).contains(&format!(":{HTTP_PORT} "))
        })
    })
    .await;
    assert!(listening, "httpd does not listen on {HTTP_PORT}");
}

async fn port_forward_url(client: &CriClient, sandbox: &str, ports: &[u16]) -> String {
    client
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: sandbox.to_owned(),
            port: ports.iter().map(|port| i32::from(*port)).collect(),
        })
        .await
        .unwrap()
}

/// The next data message of a WebSocket port-forward session as
/// (channel, data); `None` once the session is over.
fn read_forwarded(socket: &mut WebSocket<TcpStream>) -> Option<(u8, Vec<u8>)> {
    loop {
        match socket.read() {
            Ok(Message::Binary(bytes)) => {
                let (&channel, data) = bytes.split_first().expect("a message without channel");
                return Some((channel, data.to_vec()));
            }
            // Reading on answers the close frame, until the server hangs up.
            Ok(Message::Close(_)) => {}
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return None
            }
            Err(err) => panic!("WebSocket read failed: {err}"),
        }
    }
}

/// Reads the port announcements of a one-port WebSocket session: the port,
/// little-endian, first on its data channel (0) and then on its error
/// channel (1).
fn read_announcements(socket: &mut WebSocket<TcpStream>, port: u16) {
    for expected_channel in [0, 1] {
        let (channel, data) = read_forwarded(socket).expect("the session ended unannounced");
        assert_eq!(
            (channel, data),
            (expected_channel, port.to_le_bytes().to_vec())
        );
    }
}

/// Everything a one-port WebSocket session carries until it ends, by
/// channel.
fn read_all_forwarded(socket: &mut WebSocket<TcpStream>) -> BTreeMap<u8, Vec<u8>> {
    let mut channels: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    while let Some((channel, data)) = read_forwarded(socket) {
        channels
            .entry(channel)
            .or_default()
            .extend_from_slice(&data);
    }
    channels
}

fn assert_page(response: &[u8], page: &str) {
    let response = String::from_utf8_lossy(response);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with(&format!("\r\n\r\n{page}\n")),
        "{response}"
    );
}

const GET_INDEX: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_httpd_inside_a_pod_network_over_spdy_and_websocket() {
    let pod = CniPod::start("web", Vec::new()).await;
    let ip = pod.ip().await;
    assert!(pod.in_subnet(ip), "pod IP {ip} outside the test's subnet");
    let page = format!("served-by-pod-{}", pod.run_id);
    serve_http(&pod, &page).await;

    let url = port_forward_url(&pod.client, &pod.sandbox_id, &[HTTP_PORT]).await;
    let spdy_page = page.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = SpdyPortForward::connect_url(&url, WAIT);
        let pair = client.open_pair(HTTP_PORT);
        client.send(pair, GET_INDEX);
        assert_page(&client.until_closed(pair.data), &spdy_page);
        assert_eq!(client.until_closed(pair.error), b"", "nothing failed");
        // A SPDY session forwards one connection after another.
        let again = client.open_pair(HTTP_PORT);
        client.send(again, GET_INDEX);
        assert_page(&client.until_closed(again.data), &spdy_page);
    })
    .await
    .unwrap();

    let url = port_forward_url(&pod.client, &pod.sandbox_id, &[HTTP_PORT]).await;
    let ws_page = page.clone();
    tokio::task::spawn_blocking(move || {
        let mut socket = websocket(&url, WS_PORT_FORWARD);
        read_announcements(&mut socket, HTTP_PORT);
        send_ws(&mut socket, 0, GET_INDEX);
        let mut channels = read_all_forwarded(&mut socket);
        assert_page(&channels.remove(&0).unwrap_or_default(), &ws_page);
        assert_eq!(channels, BTreeMap::new(), "nothing failed");
    })
    .await
    .unwrap();
    pod.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_a_closed_port_in_a_pod_reports_on_the_error_stream_at_once() {
    let pod = CniPod::start("closed", Vec::new()).await;
    let expected = format!(
        "error forwarding port {CLOSED_PORT} to pod {}, uid : failed to connect to \
         localhost:{CLOSED_PORT} inside the pod's network namespace",
        pod.sandbox_id
    );

    let url = port_forward_url(&pod.client, &pod.sandbox_id, &[CLOSED_PORT]).await;
    let spdy_expected = expected.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut client = SpdyPortForward::connect_url(&url, WAIT);
        let pair = client.open_pair(CLOSED_PORT);
        let message = String::from_utf8(client.until_closed(pair.error)).unwrap();
        assert_eq!(client.until_closed(pair.data), b"");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(message.starts_with(&spdy_expected), "{message}");
        assert!(message.contains("Connection refused"), "{message}");
    })
    .await
    .unwrap();

    let url = port_forward_url(&pod.client, &pod.sandbox_id, &[CLOSED_PORT]).await;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut socket = websocket(&url, WS_PORT_FORWARD);
        read_announcements(&mut socket, CLOSED_PORT);
        let channels = read_all_forwarded(&mut socket);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(channels.keys().collect::<Vec<_>>(), [&1], "{channels:?}");
        let message = String::from_utf8_lossy(&channels[&1]);
        assert!(message.starts_with(&expected), "{message}");
        assert!(message.contains("Connection refused"), "{message}");
    })
    .await
    .unwrap();
    pod.clean_up().await;
}

fn attach_request(id: &str, streams: Streams) -> cri::AttachRequest {
    cri::AttachRequest {
        container_id: id.to_owned(),
        stdin: streams.stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
        tty: streams.tty,
        ..cri::AttachRequest::default()
    }
}

/// A `cat` container with an open stdin, once-only or not.
async fn cat_container(world: &World, name: &str, stdin_once: bool) -> String {
    let mut config = world.config(name, &busybox_image(), "exec cat");
    config.stdin = true;
    config.stdin_once = stdin_once;
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_sends_stdin_to_the_container_and_its_output_back() {
    let world = World::start().await;
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };

    // stdin_once: the attached client's stdin is the container's, and
    // closing it ends `cat`, and the container with it.
    let once = cat_container(&world, "once", true).await;
    let url = world
        .client
        .attach(attach_request(&once, streams))
        .await
        .unwrap();
    let received = tokio::task::spawn_blocking(move || {
        let mut attached = RemoteCommand::open(&url, Transport::Spdy, streams);
        attached.send_stdin(b"through spdy\n");
        let echoed = attached.read_until(|r| r.stdout.ends_with(b"through spdy\n"));
        assert_eq!(echoed.stdout_text(), "through spdy\n");
        attached.close_stdin();
        attached.finish()
    })
    .await
    .unwrap();
    assert_eq!(received.stderr, b"");
    assert_eq!(status(&received)["status"], "Success", "{received:?}");
    let exited = eventually(WAIT, || async {
        let status = world.status(&once).await;
        status.state == cri::ContainerState::ContainerExited as i32 && status.exit_code == 0
    })
    .await;
    assert!(exited, "{:?}", world.status(&once).await);

    // Without it, a client that leaves does not close the container's
    // stdin: the next one is heard.
    let open = cat_container(&world, "open", false).await;
    for (n, transport) in [Transport::WebSocket, Transport::Spdy, Transport::WebSocket]
        .into_iter()
        .enumerate()
    {
        let url = world
            .client
            .attach(attach_request(&open, streams))
            .await
            .unwrap();
        tokio::task::spawn_blocking(move || {
            let line = format!("line {n} through {transport:?}\n");
            let mut attached = RemoteCommand::open(&url, transport, streams);
            attached.send_stdin(line.as_bytes());
            let echoed = attached.read_until(|r| r.stdout.ends_with(line.as_bytes()));
            assert_eq!(echoed.stdout_text(), line);
            assert!(!echoed.ended);
        })
        .await
        .unwrap();
    }
    assert_eq!(
        world.status(&open).await.state,
        cri::ContainerState::ContainerRunning as i32
    );
    world.clean_up().await;
}

/// Lines a terminal has shown so far: it ends each with CR LF.
fn terminal_lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .split_terminator("\r\n")
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_resize_reaches_the_exec_tty() {
    let world = World::start().await;
    let config = world.config("shell", &busybox_image(), "sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    for transport in TRANSPORTS {
        let request = cri::ExecRequest {
            container_id: id.clone(),
            cmd: ["sh", "-c", "while read line; do stty size; done"]
                .map(str::to_owned)
                .to_vec(),
            tty: true,
            stdin: true,
            stdout: true,
            stderr: false,
            ..cri::ExecRequest::default()
        };
        let url = world.client.exec(request).await.unwrap();
        tokio::task::spawn_blocking(move || {
            let mut exec = RemoteCommand::open(&url, transport, streams);
            exec.resize(100, 30);
            // The size is applied beside stdin, not in order with it: ask
            // until the terminal has it.
            let deadline = Instant::now() + WAIT;
            loop {
                // Each line typed is echoed, then answered with the size
                // (or, while there is none, with an error).
                let shown = terminal_lines(&exec.received().stdout).len();
                exec.send_stdin(b"size\n");
                let lines = terminal_lines(
                    &exec
                        .read_until(|r| terminal_lines(&r.stdout).len() >= shown + 2)
                        .stdout,
                );
                assert!(!exec.received().ended, "{transport:?}: the shell ended");
                if lines.last().map(String::as_str) == Some("30 100") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{transport:?}: the terminal shows {lines:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            // End of input on a terminal ends `read`, and the shell.
            exec.send_stdin(b"\x04");
            let ended = exec.finish();
            assert_eq!(status(&ended)["status"], "Success", "{transport:?}");
        })
        .await
        .unwrap();
    }
    world.clean_up().await;
}

/// Ways a client abandons a session mid-stream, without closing anything.
#[derive(Debug, Clone, Copy)]
enum Abandon {
    /// An exec of `cat` (then a long `sleep`, which only a kill ends),
    /// after its first echo.
    Exec(Transport),
    /// An attach to the pod's `cat`, once the line it sent came back.
    Attach(Transport),
    /// A port-forward session while the server dials.
    ForwardMidDial(Transport),
    /// Halfway through an HTTP request, which httpd waits to complete.
    ForwardMidRequest(Transport),
    /// After the first piece of a long response.
    ForwardMidResponse(Transport),
}

/// One round of every way, SPDY and WebSocket alike: a fifth exec, a
/// fifth attach, three fifths port forwarding.
const ABANDONS: [Abandon; 10] = [
    Abandon::Exec(Transport::Spdy),
    Abandon::ForwardMidDial(Transport::Spdy),
    Abandon::Attach(Transport::Spdy),
    Abandon::ForwardMidRequest(Transport::Spdy),
    Abandon::ForwardMidResponse(Transport::Spdy),
    Abandon::Exec(Transport::WebSocket),
    Abandon::ForwardMidDial(Transport::WebSocket),
    Abandon::Attach(Transport::WebSocket),
    Abandon::ForwardMidRequest(Transport::WebSocket),
    Abandon::ForwardMidResponse(Transport::WebSocket),
];

/// Sessions abandoned by the leak test, and how many at once.
const ABANDONED_SESSIONS: usize = 1000;
const CONCURRENT_SESSIONS: usize = 8;

/// How long dockshim gets to wind the abandoned sessions down.
const SETTLE: Duration = Duration::from_secs(20);

/// What the abandoned sessions run on.
#[derive(Debug, Clone)]
struct Targets {
    sandbox: String,
    /// Runs `cat` with an open stdin; exec'd in and attached to.
    cat: String,
}

const GET_BIG: &[u8] = b"GET /big HTTP/1.0\r\n\r\n";

async fn abandon_url(client: &CriClient, targets: &Targets, how: Abandon) -> String {
    match how {
        Abandon::Exec(_) => client
            .exec(cri::ExecRequest {
                container_id: targets.cat.clone(),
                cmd: ["sh", "-c", "cat; exec sleep 600"]
                    .map(str::to_owned)
                    .to_vec(),
                stdin: true,
                stdout: true,
                ..cri::ExecRequest::default()
            })
            .await
            .unwrap(),
        Abandon::Attach(_) => client
            .attach(cri::AttachRequest {
                container_id: targets.cat.clone(),
                stdin: true,
                stdout: true,
                ..cri::AttachRequest::default()
            })
            .await
            .unwrap(),
        Abandon::ForwardMidDial(_)
        | Abandon::ForwardMidRequest(_)
        | Abandon::ForwardMidResponse(_) => {
            port_forward_url(client, &targets.sandbox, &[HTTP_PORT]).await
        }
    }
}

/// Runs session `n` the way `how` says, then drops the connection.
fn abandon(url: &str, how: Abandon, n: usize) {
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    match how {
        Abandon::Exec(transport) | Abandon::Attach(transport) => {
            let line = format!("session {n}\n");
            let mut remote = RemoteCommand::open(url, transport, streams);
            remote.send_stdin(line.as_bytes());
            let received = remote.read_until(|r| {
                r.stdout
                    .windows(line.len())
                    .any(|window| window == line.as_bytes())
            });
            assert!(!received.ended, "{how:?}: {received:?}");
        }
        Abandon::ForwardMidDial(Transport::Spdy) => {
            SpdyPortForward::connect_url(url, WAIT).open_pair(HTTP_PORT);
        }
        Abandon::ForwardMidDial(Transport::WebSocket) => {
            websocket(url, WS_PORT_FORWARD);
        }
        Abandon::ForwardMidRequest(Transport::Spdy) => {
            let mut client = SpdyPortForward::connect_url(url, WAIT);
            let pair = client.open_pair(HTTP_PORT);
            client.send(pair, &GET_BIG[..10]);
        }
        Abandon::ForwardMidRequest(Transport::WebSocket) => {
            let mut socket = websocket(url, WS_PORT_FORWARD);
            read_announcements(&mut socket, HTTP_PORT);
            send_ws(&mut socket, 0, &GET_BIG[..10]);
        }
        Abandon::ForwardMidResponse(Transport::Spdy) => {
            let mut client = SpdyPortForward::connect_url(url, WAIT);
            let pair = client.open_pair(HTTP_PORT);
            client.send(pair, GET_BIG);
            client.until_data(pair.data);
        }
        Abandon::ForwardMidResponse(Transport::WebSocket) => {
            let mut socket = websocket(url, WS_PORT_FORWARD);
            read_announcements(&mut socket, HTTP_PORT);
            send_ws(&mut socket, 0, GET_BIG);
            let (channel, _) = read_forwarded(&mut socket).expect("no response");
            assert_eq!(channel, 0, "{how:?}");
        }
    }
}

/// Abandons `count` sessions, cycling through [`ABANDONS`],
/// `CONCURRENT_SESSIONS` at a time.
async fn abandon_sessions(client: &CriClient, targets: &Targets, count: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CONCURRENT_SESSIONS {
        let (next, client, targets) = (Arc::clone(&next), client.clone(), targets.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return;
                }
                let how = ABANDONS[n % ABANDONS.len()];
                let url = abandon_url(&client, &targets, how).await;
                tokio::task::spawn_blocking(move || abandon(&url, how, n))
                    .await
                    .unwrap();
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
}

/// Threads by name (a trailing `-<n>` dropped) and open descriptors by
/// kind, of process `pid`.
#[derive(Debug)]
struct Usage {
    threads: BTreeMap<String, usize>,
    fds: BTreeMap<String, usize>,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let mut threads = BTreeMap::new();
        for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
            let Ok(name) = fs::read_to_string(task.path().join("comm")) else {
                continue;
            };
            let name = name.trim();
            let name = match name.rsplit_once('-') {
                Some((base, serial)) if serial.bytes().all(|b| b.is_ascii_digit()) => base,
                _ => name,
            };
            *threads.entry(name.to_owned()).or_default() += 1;
        }
        let inodes = |table: &str, column: usize| -> Vec<String> {
            fs::read_to_string(format!("/proc/{pid}/net/{table}"))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(column).map(str::to_owned))
                .collect()
        };
        let unix = inodes("unix", 6);
        let tcp: Vec<String> = [inodes("tcp", 9), inodes("tcp6", 9)].concat();
        let mut fds = BTreeMap::new();
        for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            let kind = match target.strip_prefix("socket:[") {
                Some(inode) => {
                    let inode = inode.trim_end_matches(']');
                    if unix.iter().any(|i| i == inode) {
                        "unix socket".to_owned()
                    } else if tcp.iter().any(|i| i == inode) {
                        "tcp socket".to_owned()
                    } else {
                        "socket of another namespace".to_owned()
                    }
                }
                None => match target.split_once(':') {
                    Some((kind, _)) => kind.to_owned(),
                    None => target,
                },
            };
            *fds.entry(kind).or_default() += 1;
        }
        Usage { threads, fds }
    }

    fn thread_count(&self) -> usize {
        self.threads.values().sum()
    }

    fn fd_count(&self) -> usize {
        self.fds.values().sum()
    }

    /// Threads that serve a streaming session.
    fn session_threads(&self) -> usize {
        self.threads
            .iter()
            .filter(|(name, _)| SESSION_THREADS.contains(&name.as_str()))
            .map(|(_, count)| count)
            .sum()
    }
}

/// Names of the threads a streaming connection or session runs on.
const SESSION_THREADS: &[&str] = &[
    "stream",
    "spdy-reader",
    "ws-reader",
    "port-forward",
    "port-upload",
    "netns",
    "session-stdin",
    "session-resize",
];

/// StopContainer calls made at once by [`fill_pools`].
const FILLER_CALLS: usize = 12;

/// Grows dockshim's two pools to a size the abandoned sessions cannot
/// exceed: the gRPC server's workers (one per call running; idle ones
/// retire after 30 s) and the Docker client's idle keep-alive connections
/// (one per call to dockerd running, at most 8 kept). `FILLER_CALLS`
/// StopContainer calls at once each hold a worker and a connection for
/// the grace period, because `sleep` as a container's first process
/// ignores SIGTERM. That is more than the sessions' `CONCURRENT_SESSIONS`
/// calls at once, and more than the connections the client keeps.
async fn fill_pools(pod: &CniPod) {
    let mut started = Vec::new();
    for n in 0..FILLER_CALLS {
        let config = pod.config(&format!("filler{n}"), &busybox_image(), &["sleep", "300"]);
        started.push(pod.run(config).await);
    }
    let stops: Vec<_> = started
        .iter()
        .map(|id| {
            let (client, id) = (pod.client.clone(), id.clone());
            tokio::spawn(async move { client.stop_container(&id, 1).await.unwrap() })
        })
        .collect();
    for stop in stops {
        stop.await.unwrap();
    }
    for id in &started {
        pod.client.remove_container(id).await.unwrap();
    }
}

/// The command lines of the live processes in the container, but for the
/// `ps` that lists them. Zombies are left out: they have ended, and only
/// the container's first process can reap those it inherits (here `cat`,
/// which never does; an exec'd shell's children that outlive it are its).
async fn processes(client: &CriClient, container: &str) -> Vec<String> {
    const PS: [&str; 3] = ["ps", "-o", "stat,args"];
    let ps = client.exec_sync(container, &PS, 10).await.unwrap();
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.trim().split_once(' '))
        .filter(|(stat, _)| !stat.starts_with('Z'))
        .map(|(_, args)| args.trim().to_owned())
        .filter(|args| *args != PS.join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_abandoned_mid_stream_leave_nothing_behind() {
    let pod = CniPod::start("leaks", Vec::new()).await;
    serve_http(&pod, "still-served").await;
    let mut config = pod.config("cat", &busybox_image(), &["cat"]);
    config.stdin = true;
    let targets = Targets {
        sandbox: pod.sandbox_id.clone(),
        cat: pod.run(config).await,
    };
    let pid = pod.dockshim.pid();

    // Whatever is made once, or grows with how many calls run at once, is
    // made before counting.
    abandon_sessions(&pod.client, &targets, 2 * ABANDONS.len()).await;
    fill_pools(&pod).await;
    let quiet = eventually(SETTLE, || async { Usage::of(pid).session_threads() == 0 }).await;
    assert!(
        quiet,
        "the warm-up's sessions do not end: {:?}",
        Usage::of(pid)
    );
    let baseline = Usage::of(pid);
    eprintln!("baseline: {baseline:?}");

    let started = Instant::now();
    abandon_sessions(&pod.client, &targets, ABANDONED_SESSIONS).await;
    eprintln!(
        "{ABANDONED_SESSIONS} sessions abandoned in {:?}",
        started.elapsed()
    );

    let settled = eventually(SETTLE, || async {
        let now = Usage::of(pid);
        now.session_threads() == 0
            && now.thread_count() <= baseline.thread_count()
            && now.fd_count() <= baseline.fd_count()
    })
    .await;
    let now = Usage::of(pid);
    eprintln!("after: {now:?}");
    assert!(
        settled,
        "after {ABANDONED_SESSIONS} abandoned sessions: {now:?}; before: {baseline:?}"
    );
    let only_its_own = eventually(SETTLE, || async {
        processes(&pod.client, &targets.cat).await == ["cat"]
    })
    .await;
    assert!(
        only_its_own,
        "exec'd processes left in the container: {:?}",
        processes(&pod.client, &targets.cat).await
    );

    // The pod's services and dockshim's sessions still work.
    let url = port_forward_url(&pod.client, &pod.sandbox_id, &[HTTP_PORT]).await;
    tokio::task::spawn_blocking(move || {
        let mut client = SpdyPortForward::connect_url(&url, WAIT);
        let pair = client.open_pair(HTTP_PORT);
        client.send(pair, GET_INDEX);
        assert_page(&client.until_closed(pair.data), "still-served");
    })
    .await
    .unwrap();
    pod.clean_up().await;
}
