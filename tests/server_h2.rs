//! The gRPC server as an HTTP/2 client sees it: a `Server` runs in-process
//! on a temporary socket with a small method table, and the `h2` crate
//! talks to it on a tokio runtime. Timing bounds are generous on purpose:
//! the machines running this are shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dockshim::grpc::{CallContext, Handler, MessageSink, Method, Status};
use dockshim::server::{Server, ServerError, ServerOptions, ShutdownHandle};
use h2::client::SendRequest;
use http::{HeaderMap, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- services

#[derive(Default)]
struct Services {
    /// The threads that answered `/test.Svc/Kept` calls, in turn.
    kept_answered_on: std::sync::Mutex<Vec<String>>,
    sleep_started: AtomicUsize,
    sleep_cancelled: AtomicUsize,
    forever_sent: AtomicUsize,
    forever_ended: AtomicUsize,
}

fn echo(_: &Services, _: &CallContext, request: &[u8], reply: &mut BytesMut) -> Result<(), Status> {
    reply.extend_from_slice(request);
    Ok(())
}

/// Sleeps for the number of milliseconds in the request, giving up as soon
/// as the call is cancelled.
fn sleep(
    services: &Services,
    context: &CallContext,
    request: &[u8],
    reply: &mut BytesMut,
) -> Result<(), Status> {
    let millis: u64 = std::str::from_utf8(request).unwrap().parse().unwrap();
    services.sleep_started.fetch_add(1, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_millis(millis);
    while Instant::now() < until {
        if context.is_cancelled() {
            services.sleep_cancelled.fetch_add(1, Ordering::SeqCst);
            return Err(Status::cancelled("gave up"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    reply.extend_from_slice(b"slept");
    Ok(())
}

fn panic(_: &Services, _: &CallContext, _: &[u8], _: &mut BytesMut) -> Result<(), Status> {
    panic!("boom")
}

fn answered_on(services: &Services) {
    let name = std::thread::current().name().unwrap_or_default().to_owned();
    services.kept_answered_on.lock().unwrap().push(name);
}

/// Has the reply to `hand` at hand, panics at `panic`, and leaves anything
/// else to [`kept_by_worker`].
fn kept_at_hand(services: &Services, request: &[u8]) -> Option<Bytes> {
    match request {
        b"hand" => {
            answered_on(services);
            Some(Bytes::from_static(b"at hand"))
        }
        b"panic" => panic!("boom at hand"),
        _ => None,
    }
}

fn kept_by_worker(
    services: &Services,
    _: &CallContext,
    _: &[u8],
    reply: &mut BytesMut,
) -> Result<(), Status> {
    answered_on(services);
    reply.extend_from_slice(b"from a worker");
    Ok(())
}

/// Streams as many messages as the request says, each holding its index.
fn count(
    _: &Services,
    _: &CallContext,
    request: &[u8],
    sink: &mut dyn MessageSink,
) -> Result<(), Status> {
    let n: u32 = std::str::from_utf8(request).unwrap().parse().unwrap();
    for i in 0..n {
        sink.send(&i.to_be_bytes())?;
    }
    Ok(())
}

const FOREVER_MESSAGE_BYTES: usize = 1024;

/// Streams 1 KiB messages until sending fails.
fn forever(
    services: &Services,
    _: &CallContext,
    _: &[u8],
    sink: &mut dyn MessageSink,
) -> Result<(), Status> {
    let message = [7u8; FOREVER_MESSAGE_BYTES];
    let outcome = loop {
        if let Err(status) = sink.send(&message) {
            break Err(status);
        }
        services.forever_sent.fetch_add(1, Ordering::SeqCst);
    };
    services.forever_ended.fetch_add(1, Ordering::SeqCst);
    outcome
}

static METHODS: &[Method<Services>] = &[
    Method {
        path: "/test.Svc/Count",
        handler: Handler::ServerStreaming(count),
    },
    Method {
        path: "/test.Svc/Echo",
        handler: Handler::Unary(echo),
    },
    Method {
        path: "/test.Svc/Forever",
        handler: Handler::ServerStreaming(forever),
    },
    Method {
        path: "/test.Svc/Kept",
        handler: Handler::UnaryAtHand(kept_by_worker, kept_at_hand),
    },
    Method {
        path: "/test.Svc/Panic",
        handler: Handler::Unary(panic),
    },
    Method {
        path: "/test.Svc/Sleep",
        handler: Handler::Unary(sleep),
    },
];

// ------------------------------------------------------------------ server

struct TestServer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    services: Arc<Services>,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        let services = Arc::new(Services::default());
        let mut options = ServerOptions::new(format!("unix://{}", path.display()));
        options.shutdown_grace = Duration::from_secs(5);
        let server = Server::bind(&options, Arc::clone(&services), METHODS).unwrap();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        TestServer {
            _dir: dir,
            path,
            services,
            handle,
            thread: Some(thread),
        }
    }

    /// Starts the shutdown and waits (off the runtime) for `run` to return.
    async fn stop(&mut self) -> Result<(), ServerError> {
        self.handle.shutdown();
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ------------------------------------------------------------------ client

async fn connect(path: &Path) -> SendRequest<Bytes> {
    let stream = tokio::net::UnixStream::connect(path).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// One message with the gRPC prefix; `flag` is the compressed flag.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Everything the client saw of one call.
#[derive(Debug)]
struct Answer {
    http_status: u16,
    headers: HeaderMap,
    messages: Vec<Bytes>,
    data_frames: Vec<usize>,
    trailers: Option<HeaderMap>,
}

impl Answer {
    /// `grpc-status` from the trailers, or from the headers of a
    /// Trailers-Only response.
    fn grpc_status(&self) -> Option<&str> {
        let from = self.trailers.as_ref().unwrap_or(&self.headers);
        from.get("grpc-status").map(|v| v.to_str().unwrap())
    }

    fn grpc_message(&self) -> Option<&str> {
        let from = self.trailers.as_ref().unwrap_or(&self.headers);
        from.get("grpc-message").map(|v| v.to_str().unwrap())
    }
}

fn request(path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// Sends `body` (raw bytes, already framed) and reads the whole answer.
async fn call_raw(
    client: &SendRequest<Bytes>,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, h2::Error> {
    let mut client = client.clone().ready().await?;
    let (response, mut send) = client.send_request(request(path, headers), false)?;
    send.send_data(Bytes::from(body), true)?;
    read_answer(response.await?).await
}

async fn read_answer(response: http::Response<h2::RecvStream>) -> Result<Answer, h2::Error> {
    let (head, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    let mut data_frames = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data_frames.push(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    Ok(Answer {
        http_status: head.status.as_u16(),
        headers: head.headers,
        messages: split_messages(data.freeze()),
        data_frames,
        trailers,
    })
}

fn split_messages(mut data: Bytes) -> Vec<Bytes> {
    let mut messages = Vec::new();
    while !data.is_empty() {
        assert!(data.len() >= 5, "truncated prefix in the response");
        assert_eq!(data[0], 0, "responses are never compressed");
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let _ = data.split_to(5);
        messages.push(data.split_to(len));
    }
    messages
}

async fn unary(client: &SendRequest<Bytes>, path: &str, message: &[u8]) -> Answer {
    call_raw(client, path, &[], frame(0, message))
        .await
        .unwrap()
}

async fn assert_echo_works(client: &SendRequest<Bytes>) {
    let answer = unary(client, "/test.Svc/Echo", b"still here").await;
    assert_eq!(answer.grpc_status(), Some("0"));
    assert_eq!(answer.messages, [&b"still here"[..]]);
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_the_request_with_headers_and_ok_trailers() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Echo", b"hello").await;
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.headers["content-type"], "application/grpc");
    assert_eq!(answer.messages, [&b"hello"[..]]);
    assert_eq!(answer.grpc_status(), Some("0"));
    assert!(
        answer.trailers.is_some(),
        "a successful reply ends with real trailers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_request_message_is_served() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Echo", b"").await;
    assert_eq!(answer.grpc_status(), Some("0"));
    assert_eq!(answer.messages, [Bytes::new()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_up_a_hundred_others_on_the_same_connection() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let slow_client = client.clone();
    let slow = tokio::spawn(async move { unary(&slow_client, "/test.Svc/Sleep", b"8000").await });
    let services = Arc::clone(&server.services);
    wait_until("the slow call runs", || {
        services.sleep_started.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = client.clone();
        calls.spawn(async move {
            (
                i,
                unary(&client, "/test.Svc/Echo", format!("call {i}").as_bytes()).await,
            )
        });
    }
    while let Some(done) = calls.join_next().await {
        let (i, answer) = done.unwrap();
        assert_eq!(answer.grpc_status(), Some("0"));
        assert_eq!(answer.messages, [Bytes::from(format!("call {i}"))]);
    }
    assert!(
        !slow.is_finished(),
        "the echoes finished while the slow call still ran"
    );
    assert_eq!(slow.await.unwrap().messages, [&b"slept"[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_answers_internal_and_the_connection_keeps_serving() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Panic", b"").await;
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.grpc_status(), Some("13"));
    assert_eq!(answer.grpc_message(), Some("handler panicked: boom"));
    assert!(answer.trailers.is_none(), "errors go out Trailers-Only");
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_at_hand_is_sent_by_the_connection_thread_and_any_other_by_a_worker() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let at_hand = unary(&client, "/test.Svc/Kept", b"hand").await;
    assert_eq!(at_hand.grpc_status(), Some("0"));
    assert_eq!(at_hand.messages, [&b"at hand"[..]]);
    let by_worker = unary(&client, "/test.Svc/Kept", b"other").await;
    assert_eq!(by_worker.grpc_status(), Some("0"));
    assert_eq!(by_worker.messages, [&b"from a worker"[..]]);
    let threads = server.services.kept_answered_on.lock().unwrap().clone();
    assert_eq!(threads.len(), 2, "{threads:?}");
    assert!(threads[0].starts_with("conn-"), "{threads:?}");
    assert!(threads[1].starts_with("worker-"), "{threads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_looking_for_a_reply_at_hand_answers_internal_and_the_connection_keeps_serving(
) {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Kept", b"panic").await;
    assert_eq!(answer.grpc_status(), Some("13"));
    assert_eq!(
        answer.grpc_message(),
        Some("handler panicked: boom at hand")
    );
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_unimplemented_and_named() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Nope", b"").await;
    assert_eq!(answer.grpc_status(), Some("12"));
    assert_eq!(answer.grpc_message(), Some("unknown method /test.Svc/Nope"));
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_grpc_content_type_gets_http_415() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let mut ready = client.clone().ready().await.unwrap();
    let request = Request::builder()
        .method("POST")
        .uri("http://localhost/test.Svc/Echo")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, _send) = ready.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 415);
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventeen_mib_request_is_resource_exhausted_and_the_connection_keeps_serving() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let body = frame(0, &vec![1u8; 17 * 1024 * 1024]);
    let answer = call_raw(&client, "/test.Svc/Echo", &[], body)
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("8"));
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_mib_request_is_echoed() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let message: Vec<u8> = (0..15 * 1024 * 1024)
        .map(|i: usize| (i % 251) as u8)
        .collect();
    let answer = unary(&client, "/test.Svc/Echo", &message).await;
    assert_eq!(answer.grpc_status(), Some("0"));
    assert_eq!(answer.messages.len(), 1);
    assert!(
        answer.messages[0] == message,
        "the echo matches byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_message_is_unimplemented() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = call_raw(&client, "/test.Svc/Echo", &[], frame(1, b"zipped"))
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("12"));
    assert_eq!(
        answer.grpc_message(),
        Some("compressed messages are not supported")
    );
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_message_at_end_of_stream_is_an_error_status() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let mut body = frame(0, b"this message is cut short");
    body.truncate(12);
    let answer = call_raw(&client, "/test.Svc/Echo", &[], body)
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("13"));
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_in_a_unary_request_are_an_error_status() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let mut body = frame(0, b"one");
    body.extend(frame(0, b"two"));
    let answer = call_raw(&client, "/test.Svc/Echo", &[], body)
        .await
        .unwrap();
    assert_eq!(answer.grpc_status(), Some("13"));
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_the_preface_closes_only_that_connection() {
    let server = TestServer::start();
    let mut raw = tokio::net::UnixStream::connect(&server.path).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nthis is not http/2 at all")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), raw.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "the server closes the connection");
    let client = connect(&server.path).await;
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_ends_a_slow_call_with_deadline_exceeded_and_cancels_it() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let started = Instant::now();
    let answer = call_raw(
        &client,
        "/test.Svc/Sleep",
        &[("grpc-timeout", "100m")],
        frame(0, b"10000"),
    )
    .await
    .unwrap();
    assert_eq!(answer.grpc_status(), Some("4"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let services = Arc::clone(&server.services);
    wait_until("the handler sees the cancellation", || {
        services.sleep_cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_timeout_is_refused() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = call_raw(
        &client,
        "/test.Svc/Echo",
        &[("grpc-timeout", "soon")],
        frame(0, b"x"),
    )
    .await
    .unwrap();
    assert_eq!(answer.grpc_status(), Some("13"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reset_cancels_the_running_handler() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (_response, mut send) = ready
        .send_request(request("/test.Svc/Sleep", &[]), false)
        .unwrap();
    send.send_data(Bytes::from(frame(0, b"20000")), true)
        .unwrap();
    let services = Arc::clone(&server.services);
    wait_until("the handler runs", || {
        services.sleep_started.load(Ordering::SeqCst) == 1
    })
    .await;
    send.send_reset(h2::Reason::CANCEL);
    wait_until("the handler sees the cancellation", || {
        services.sleep_cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streamed_messages_arrive_in_order_in_coalesced_frames() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Count", b"10000").await;
    assert_eq!(answer.grpc_status(), Some("0"));
    assert_eq!(answer.messages.len(), 10_000);
    for (i, message) in answer.messages.iter().enumerate() {
        assert_eq!(message[..], u32::try_from(i).unwrap().to_be_bytes());
    }
    assert!(
        answer.data_frames.iter().all(|&len| len <= 16 * 1024),
        "{:?}",
        answer.data_frames
    );
    assert!(
        answer.data_frames.len() < 1000,
        "{} frames for 10000 messages",
        answer.data_frames.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_no_messages_still_ends_with_ok() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let answer = unary(&client, "/test.Svc/Count", b"0").await;
    assert_eq!(answer.grpc_status(), Some("0"));
    assert!(answer.messages.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_blocks_the_producer_instead_of_growing_memory() {
    let server = TestServer::start();
    let client = connect(&server.path).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut send) = ready
        .send_request(request("/test.Svc/Forever", &[]), false)
        .unwrap();
    send.send_data(Bytes::from(frame(0, b"")), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let services = Arc::clone(&server.services);
    let sent = || services.forever_sent.load(Ordering::SeqCst);
    wait_until("the producer starts", || sent() > 0).await;
    // Nothing is read from here on: the producer must stall.
    let mut previous = sent();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent();
        if now == previous {
            break;
        }
        previous = now;
    }
    let in_flight = previous * (FOREVER_MESSAGE_BYTES + 5);
    assert!(
        in_flight < 1024 * 1024,
        "{in_flight} bytes produced for a client that reads nothing"
    );
    drop(response);
    drop(send);
    wait_until("the producer sees the reset", || {
        services.forever_ended.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_calls_refuses_new_ones_and_removes_the_socket() {
    let mut server = TestServer::start();
    let client = connect(&server.path).await;
    let slow_client = client.clone();
    let slow = tokio::spawn(async move { unary(&slow_client, "/test.Svc/Sleep", b"1500").await });
    let services = Arc::clone(&server.services);
    wait_until("the slow call runs", || {
        services.sleep_started.load(Ordering::SeqCst) == 1
    })
    .await;
    server.handle.shutdown();
    let path = server.path.clone();
    wait_until("new connections are refused", || {
        std::os::unix::net::UnixStream::connect(&path).is_err()
    })
    .await;
    let answer = slow.await.unwrap();
    assert_eq!(answer.grpc_status(), Some("0"));
    assert_eq!(answer.messages, [&b"slept"[..]]);
    let refused = call_raw(&client, "/test.Svc/Echo", &[], frame(0, b"late")).await;
    assert!(
        refused.is_err(),
        "a stream opened after GOAWAY is refused: {refused:?}"
    );
    assert!(server.stop().await.is_ok());
    assert!(!server.path.exists(), "the socket is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_endless_streams_with_unavailable() {
    let mut server = TestServer::start();
    let client = connect(&server.path).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut send) = ready
        .send_request(request("/test.Svc/Forever", &[]), false)
        .unwrap();
    send.send_data(Bytes::from(frame(0, b"")), true).unwrap();
    let reader = tokio::spawn(async move { read_answer(response.await.unwrap()).await.unwrap() });
    let services = Arc::clone(&server.services);
    wait_until("the stream flows", || {
        services.forever_sent.load(Ordering::SeqCst) > 100
    })
    .await;
    assert!(server.stop().await.is_ok());
    let answer = reader.await.unwrap();
    assert_eq!(answer.grpc_status(), Some("14"));
    assert_eq!(answer.grpc_message(), Some("server is shutting down"));
    assert!(!answer.messages.is_empty());
    assert_eq!(services.forever_ended.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_socket_fails_and_leaves_the_first_serving() {
    let server = TestServer::start();
    let options = ServerOptions::new(server.path.display().to_string());
    let second = Server::bind(&options, Arc::new(Services::default()), METHODS);
    assert!(
        matches!(second, Err(ServerError::InUse { .. })),
        "{second:?}"
    );
    assert!(
        server.path.exists(),
        "the first server's socket is untouched"
    );
    let client = connect(&server.path).await;
    assert_echo_works(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_without_a_live_owner_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dockshim.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::bind(
        &ServerOptions::new(path.display().to_string()),
        Arc::new(Services::default()),
        METHODS,
    )
    .unwrap();
    let handle = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    let client = connect(&path).await;
    assert_echo_works(&client).await;
    handle.shutdown();
    assert!(tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_has_mode_0660() {
    let server = TestServer::start();
    let meta = std::fs::symlink_metadata(&server.path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o660);
}

/// Set in the child process of the socket-activation test: the file whose
/// appearance tells the child to shut down.
const ACTIVATED_STOP_FILE: &str = "DOCKSHIM_TEST_ACTIVATED_STOP_FILE";

/// Does nothing in a normal run. As the child of
/// `socket_activation_serves_on_descriptor_3_and_leaves_the_socket`, it
/// serves on the descriptor it inherited until told to stop.
#[test]
fn activated_child() {
    let Some(stop_file) = std::env::var_os(ACTIVATED_STOP_FILE) else {
        return;
    };
    // systemd sets LISTEN_PID after forking; this child does it itself.
    std::env::set_var("LISTEN_PID", std::process::id().to_string());
    let options = ServerOptions::new("fd://");
    let server = Server::bind(&options, Arc::new(Services::default()), METHODS).unwrap();
    for name in ["LISTEN_PID", "LISTEN_FDS"] {
        assert!(std::env::var_os(name).is_none(), "{name} is cleared");
    }
    let handle = server.shutdown_handle();
    std::thread::spawn(move || {
        while !Path::new(&stop_file).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        handle.shutdown();
    });
    server.run().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_on_descriptor_3_and_leaves_the_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let stop_file = dir.path().join("stop");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let inherited = listener.as_raw_fd();
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "activated_child", "--test-threads=1", "--quiet"])
        .stdout(std::process::Stdio::null())
        .env(ACTIVATED_STOP_FILE, &stop_file)
        .env("LISTEN_FDS", "1");
    // SAFETY: the closure runs in the forked child just before exec and
    // only calls dup2 and fcntl, which are async-signal-safe; it moves the
    // listener to descriptor 3 without close-on-exec, as systemd does.
    unsafe {
        command.pre_exec(move || {
            let placed = if inherited == 3 {
                nix::libc::fcntl(3, nix::libc::F_SETFD, 0)
            } else {
                nix::libc::dup2(inherited, 3)
            };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(listener);
    let client = connect(&path).await;
    assert_echo_works(&client).await;
    std::fs::write(&stop_file, b"").unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "child exited with {status}");
    assert!(path.exists(), "a socket passed by systemd is not removed");
}
