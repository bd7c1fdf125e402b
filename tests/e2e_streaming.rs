//! Exec, Attach and PortForward end to end: the real binary checks each
//! request against the real dockerd and answers with a one-time URL on its
//! streaming server, which is then visited with a plain HTTP client over
//! `std::net::TcpStream`, and for exec with independent SPDY and WebSocket
//! clients. The sessions themselves are tested in detail in
//! `streaming_sessions.rs`. Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::busybox_image;
use common::eventually;
use common::pod::World;
use common::spdy_client::{ClientFrame, SpdyClient};
use common::split_url;
use dockshim::api::v1 as cri;
use dockshim::streaming::server::MAX_PENDING_PER_PEER;
use tonic::Code;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// How long a test waits for an HTTP answer or for threads to end.
const WAIT: Duration = Duration::from_secs(10);

/// Connections opened and dropped by the thread test.
const DROPPED_CONNECTIONS: usize = 200;
/// Of those, how many are open at once.
const DROPPED_BATCH: usize = 50;

/// A World with one running container (`sleep 300`); returns its ID.
async fn world_with_container() -> (World, String) {
    let world = World::start().await;
    let config = world.config("app", &busybox_image(), "sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    (world, id)
}

fn exec(id: &str, cmd: &[&str], streams: (bool, bool, bool), tty: bool) -> cri::ExecRequest {
    cri::ExecRequest {
        container_id: id.to_owned(),
        cmd: cmd.iter().map(|arg| (*arg).to_owned()).collect(),
        tty,
        stdin: streams.0,
        stdout: streams.1,
        stderr: streams.2,
        ..cri::ExecRequest::default()
    }
}

fn attach(id: &str, streams: (bool, bool, bool), tty: bool) -> cri::AttachRequest {
    cri::AttachRequest {
        container_id: id.to_owned(),
        tty,
        stdin: streams.0,
        stdout: streams.1,
        stderr: streams.2,
        ..cri::AttachRequest::default()
    }
}

fn port_forward(id: &str, ports: &[i32]) -> cri::PortForwardRequest {
    cri::PortForwardRequest {
        pod_sandbox_id: id.to_owned(),
        port: ports.to_vec(),
    }
}

/// Sends `method path` to `addr` and returns the response's status code.
fn http_status(addr: SocketAddr, method: &str, path: &str) -> u16 {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    write!(conn, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut status_line = String::new();
    BufReader::new(conn).read_line(&mut status_line).unwrap();
    let mut parts = status_line.split(' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line:?}");
    parts.next().unwrap().parse().unwrap()
}

fn get(url: &str) -> u16 {
    let (addr, path) = split_url(url);
    http_status(addr, "GET", &path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_attach_refuse_bad_requests_with_their_codes() {
    let (world, running) = world_with_container().await;
    let config = world.config("idle", &busybox_image(), "sleep 300");
    let created = world.create(config).await.unwrap();
    let out = (false, true, false);
    let exec_cases = [
        (exec("nosuch", &["ls"], out, false), Code::NotFound),
        (
            exec(&created, &["ls"], out, false),
            Code::FailedPrecondition,
        ),
        (exec(&running, &[], out, false), Code::InvalidArgument),
        (
            exec(&running, &["ls"], (false, false, false), false),
            Code::InvalidArgument,
        ),
        (
            exec(&running, &["ls"], (false, true, true), true),
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in exec_cases {
        let shown = format!("{request:?}");
        let status = world.client.exec(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{shown}: {status:?}");
    }
    let attach_cases = [
        (attach("nosuch", out, false), Code::NotFound),
        (attach(&created, out, false), Code::FailedPrecondition),
        (
            attach(&running, (false, false, false), false),
            Code::InvalidArgument,
        ),
        (
            attach(&running, (true, true, true), true),
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in attach_cases {
        let shown = format!("{request:?}");
        let status = world.client.attach(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{shown}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_refuses_bad_ports_and_missing_or_stopped_sandboxes() {
    let (world, container) = world_with_container().await;
    let cases = [
        (port_forward(&world.sandbox_id, &[0]), Code::InvalidArgument),
        (
            port_forward(&world.sandbox_id, &[80, 65536]),
            Code::InvalidArgument,
        ),
        (port_forward("nosuch", &[80]), Code::NotFound),
        (port_forward(&container, &[80]), Code::NotFound),
    ];
    for (request, code) in cases {
        let shown = format!("{request:?}");
        let status = world.client.port_forward(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{shown}: {status:?}");
    }
    world
        .client
        .port_forward(port_forward(&world.sandbox_id, &[]))
        .await
        .unwrap();
    world
        .client
        .stop_pod_sandbox(&world.sandbox_id)
        .await
        .unwrap();
    let status = world
        .client
        .port_forward(port_forward(&world.sandbox_id, &[80]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_loopback_http_with_the_route_of_their_kind() {
    let (world, id) = world_with_container().await;
    let prefix = id[..12].to_owned();
    let urls = [
        (
            world
                .client
                .exec(exec(&prefix, &["sh"], (true, true, false), true))
                .await
                .unwrap(),
            "/cri/exec/",
        ),
        (
            world
                .client
                .attach(attach(&prefix, (false, true, true), false))
                .await
                .unwrap(),
            "/cri/attach/",
        ),
        (
            world
                .client
                .port_forward(port_forward(&world.sandbox_id, &[80, 8080]))
                .await
                .unwrap(),
            "/cri/portforward/",
        ),
    ];
    let (first_addr, _) = split_url(&urls[0].0);
    assert_eq!(
        first_addr.ip().to_string(),
        "127.0.0.1",
        "the streaming server listens on loopback by default"
    );
    for (url, route) in &urls {
        let (addr, path) = split_url(url);
        assert_eq!(addr, first_addr, "{url}");
        let token = path
            .strip_prefix(route)
            .unwrap_or_else(|| panic!("{url} is not on {route}"));
        assert!(token.len() >= 22, "a token of 128 bits or more: {url}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_reaches_its_session_once() {
    let (world, id) = world_with_container().await;
    let exec_url = world
        .client
        .exec(exec(&id, &["echo", "hi"], (false, true, true), false))
        .await
        .unwrap();
    let forward_url = world
        .client
        .port_forward(port_forward(&world.sandbox_id, &[80]))
        .await
        .unwrap();
    for url in [&exec_url, &forward_url] {
        // A request that asks for no protocol upgrade gets whatever the
        // session answers it, but not the server's 404.
        let first = get(url);
        assert_ne!(first, 404, "{url} did not reach a session");
        assert_eq!(get(url), 404, "{url} was accepted twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tokens_and_tokens_on_another_route_are_not_found() {
    let (world, id) = world_with_container().await;
    let url = world
        .client
        .attach(attach(&id, (false, true, false), false))
        .await
        .unwrap();
    let (addr, path) = split_url(&url);
    assert_eq!(
        http_status(addr, "GET", "/cri/attach/AAAAAAAAAAAAAAAAAAAAAA"),
        404
    );
    assert_eq!(http_status(addr, "GET", "/healthz"), 404);
    assert_eq!(http_status(addr, "DELETE", &path), 405);
    let wrong_route = path.replace("/cri/attach/", "/cri/exec/");
    assert_eq!(http_status(addr, "POST", &wrong_route), 404);
    assert_eq!(
        http_status(addr, "POST", &path),
        404,
        "a token shown on the wrong route is used up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_return_to_baseline_after_connections_dropped_mid_request() {
    let world = World::start().await;
    let url = world
        .client
        .port_forward(port_forward(&world.sandbox_id, &[]))
        .await
        .unwrap();
    let (addr, _) = split_url(&url);
    let baseline = world.dockshim.thread_count();
    for batch in 0..DROPPED_CONNECTIONS / DROPPED_BATCH {
        let held: Vec<TcpStream> = (0..DROPPED_BATCH)
            .map(|n| {
                let mut conn = TcpStream::connect(addr).unwrap();
                // Nothing, half a head, or a whole request whose answer is
                // never read.
                let sent: &[u8] = match n % 3 {
                    0 => b"",
                    1 => b"GET /cri/exec/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHo",
                    _ => b"GET /cri/exec/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n\r\n",
                };
                conn.write_all(sent).unwrap();
                conn
            })
            .collect();
        if batch == 0 {
            // One peer holds at most MAX_PENDING_PER_PEER connections that
            // are still sending their head; the rest push out the oldest.
            let busy = eventually(WAIT, || async {
                world.dockshim.thread_count() >= baseline + MAX_PENDING_PER_PEER / 2
            })
            .await;
            assert!(busy, "connections are served on threads of their own");
        }
        drop(held);
    }
    let settled = eventually(WAIT, || async { world.dockshim.thread_count() <= baseline }).await;
    assert!(
        settled,
        "{} threads remain, {baseline} before the connections",
        world.dockshim.thread_count()
    );
    assert_ne!(get(&url), 404, "the server still serves");
}

/// Runs `sh -c script` through an Exec URL over SPDY (v4) with stdin
/// `input` (closed after it is sent); returns stdout, stderr and the
/// error stream.
fn spdy_exec(url: &str, input: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (addr, path) = split_url(url);
    let protocol = "v4.channel.k8s.io";
    let (response, client) = SpdyClient::connect(addr, "POST", &path, &[protocol]).unwrap();
    assert_eq!(response.status, 101, "{response:?}");
    let mut client = client.unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let error = client
        .open_stream(&[("streamtype", "error")], false)
        .unwrap();
    let stdin = client
        .open_stream(&[("streamtype", "stdin")], false)
        .unwrap();
    let stdout = client
        .open_stream(&[("streamtype", "stdout")], false)
        .unwrap();
    let stderr = client
        .open_stream(&[("streamtype", "stderr")], false)
        .unwrap();
    client.send_data(stdin, input, true).unwrap();
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    while let Some(frame) = client.read_frame().unwrap() {
        match frame {
            ClientFrame::Data { stream, data, .. } if stream == stdout => out.0.extend(data),
            ClientFrame::Data { stream, data, .. } if stream == stderr => out.1.extend(data),
            ClientFrame::Data { stream, data, .. } if stream == error => out.2.extend(data),
            ClientFrame::GoAway { .. } => break,
            _ => {}
        }
    }
    out
}

/// The same over WebSocket (v5): channel bytes, and the close signal for
/// stdin.
fn websocket_exec(url: &str, input: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (addr, path) = split_url(url);
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (mut socket, _) = tungstenite::client(request, stream).unwrap();
    socket
        .send(Message::Binary([&[0u8][..], input].concat().into()))
        .unwrap();
    socket.send(Message::Binary(vec![255u8, 0].into())).unwrap();
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    loop {
        match socket.read() {
            Ok(Message::Binary(bytes)) => match bytes.split_first() {
                Some((1, data)) => out.0.extend_from_slice(data),
                Some((2, data)) => out.1.extend_from_slice(data),
                Some((3, data)) => out.2.extend_from_slice(data),
                _ => {}
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_urls_run_the_command_over_spdy_and_websocket() {
    let (world, id) = world_with_container().await;
    let script = "cat; echo err >&2; exit 3";
    for transport in ["spdy", "websocket"] {
        let request = exec(&id, &["sh", "-c", script], (true, true, true), false);
        let url = world.client.exec(request).await.unwrap();
        let run = move || match transport {
            "spdy" => spdy_exec(&url, b"typed\n"),
            _ => websocket_exec(&url, b"typed\n"),
        };
        let (stdout, stderr, error) = tokio::task::spawn_blocking(run).await.unwrap();
        assert_eq!(stdout, b"typed\n", "{transport}");
        assert_eq!(stderr, b"err\n", "{transport}");
        let status: serde_json::Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode", "{transport}: {status}");
        assert_eq!(
            status["details"]["causes"][0]["message"], "3",
            "{transport}: {status}"
        );
    }
    world.clean_up().await;
}
