//! The gRPC server from the outside: the real binary, the real dockerd
//! (through a proxy where a call must be slow), and clients that share no code
//! with dockshim — tonic for well-formed calls, bare h2 for malformed ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use tonic::{Code, Request};

use common::client::{CriClient, RUNTIME_CONFIG, VERSION};
use common::fixture::{self, Dockshim, Options};
use common::h2raw::{grpc_frame, RawH2};
use common::proxy::DockerProxy;
use dockshim::api::v1 as cri;

/// How long the proxy holds back a Docker call to make a CRI call slow.
const SLOW_CALL: Duration = Duration::from_secs(3);
/// The Docker API path RuntimeConfig asks (`GET /info`, for the cgroup driver).
const SLOW_DOCKER_PATH: &str = "/info";
const MIB: usize = 1024 * 1024;

/// dockshim behind a proxy that delays every `GET /info` by `SLOW_CALL`.
/// The delay is set only once dockshim is up, so start-up is not slowed.
fn dockshim_with_slow_info() -> (DockerProxy, Dockshim) {
    let proxy = DockerProxy::start();
    let dockshim = Dockshim::start_with(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    });
    proxy.delay(SLOW_DOCKER_PATH, SLOW_CALL);
    (proxy, dockshim)
}

/// Starts a RuntimeConfig call on a task and waits until it is held up at
/// the proxy, so the caller knows the slow call is in flight.
async fn start_slow_call(
    proxy: &DockerProxy,
    client: &CriClient,
) -> tokio::task::JoinHandle<Result<cri::RuntimeConfigResponse, tonic::Status>> {
    let before = proxy.delayed_requests();
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.runtime_config().await })
    };
    assert!(
        proxy
            .wait_for_delayed_requests(before + 1, Duration::from_secs(5))
            .await,
        "RuntimeConfig never reached dockerd's {SLOW_DOCKER_PATH} through the proxy"
    );
    slow
}

/// A VersionRequest of exactly `size` bytes: the version field plus an
/// unknown length-delimited field (number 1000) as padding, which a proto3
/// parser must skip.
fn padded_version_request(size: usize) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

    let mut message = cri::VersionRequest {
        version: "v1".into(),
    }
    .encode_to_vec();
    encode_key(1000, WireType::LengthDelimited, &mut message);
    let fixed = message.len();
    let padding = (0..=size - fixed)
        .rev()
        .find(|padding| fixed + encoded_len_varint(*padding as u64) + padding == size)
        .expect("a padding length that makes the size exact");
    encode_varint(padding as u64, &mut message);
    message.resize(size, b'x');
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_docker_and_the_daemon_version() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let version = client.version().await.expect("Version");

    assert_eq!(version.runtime_name, "docker");
    assert_eq!(version.runtime_version, common::docker::daemon_version());
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.version.is_empty(), "Version.version is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_call_does_not_hold_up_a_hundred_calls_on_the_same_connection() {
    let (proxy, dockshim) = dockshim_with_slow_info();
    let client = dockshim.client().await;
    client.version().await.expect("warm-up Version");

    let started = Instant::now();
    let slow = start_slow_call(&proxy, &client).await;
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.version().await })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap();
        assert!(answer.is_ok(), "a Version call failed: {answer:?}");
    }

    assert!(
        !slow.is_finished(),
        "the 100 Version calls took longer than the slow call ({:?})",
        started.elapsed()
    );
    assert!(started.elapsed() < SLOW_CALL);
    let slow = slow.await.unwrap().expect("the slow RuntimeConfig call");
    assert!(
        slow.linux.is_some(),
        "RuntimeConfig without linux: {slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_mib_request_is_served_and_seventeen_mib_is_resource_exhausted() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let answer = client
        .raw_unary(VERSION, padded_version_request(15 * MIB))
        .await
        .expect("a 15 MiB Version request");
    let version = cri::VersionResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(version.runtime_name, "docker");

    let refused = client
        .raw_unary(VERSION, padded_version_request(17 * MIB))
        .await
        .expect_err("a 17 MiB request must be refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    client.version().await.expect("Version after the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_request_leaves_its_connection_serving() {
    let dockshim = Dockshim::start();
    let mut h2 = RawH2::connect(dockshim.socket()).await;
    let version = grpc_frame(&cri::VersionRequest::default().encode_to_vec());

    let big = h2
        .call(VERSION, &[], grpc_frame(&padded_version_request(15 * MIB)))
        .await
        .unwrap();
    assert_eq!(big.grpc_status, Some(0), "15 MiB: {big:?}");

    let oversize = h2
        .call(VERSION, &[], grpc_frame(&padded_version_request(17 * MIB)))
        .await
        .unwrap();
    assert_eq!(
        oversize.grpc_status,
        Some(Code::ResourceExhausted as i32),
        "17 MiB: {oversize:?}"
    );

    let after = h2.call(VERSION, &[], version).await.unwrap();
    assert_eq!(after.grpc_status, Some(0), "{after:?}");
    assert!(!h2.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_unimplemented() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    for path in [
        "/runtime.v1.RuntimeService/NoSuchThing",
        "/runtime.v1.NoSuchService/Version",
    ] {
        let status = client.raw_unary(path, Vec::new()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    client
        .version()
        .await
        .expect("Version after unknown methods");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_without_a_handler_is_unimplemented_naming_the_method() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let status = client
        .call::<_, cri::CheckpointContainerResponse>(
            "/runtime.v1.RuntimeService/CheckpointContainer",
            Request::new(cri::CheckpointContainerRequest::default()),
        )
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("CheckpointContainer"),
        "the message does not name the method: {:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_grpc_timeout_answers_deadline_exceeded_before_the_call_ends() {
    // tonic enforces a deadline itself and would race the server, so the
    // `grpc-timeout` header is sent by hand.
    let (proxy, dockshim) = dockshim_with_slow_info();
    let mut h2 = RawH2::connect(dockshim.socket()).await;
    let request = grpc_frame(&cri::RuntimeConfigRequest {}.encode_to_vec());

    let started = Instant::now();
    let answer = h2
        .call(RUNTIME_CONFIG, &[("grpc-timeout", "200m")], request)
        .await
        .unwrap();
    let took = started.elapsed();

    assert_eq!(
        answer.grpc_status,
        Some(Code::DeadlineExceeded as i32),
        "{answer:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    assert_eq!(
        proxy.delayed_requests(),
        1,
        "the call never reached dockerd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_leave_the_server_serving_and_leak_no_threads() {
    let (proxy, dockshim) = dockshim_with_slow_info();
    let client = dockshim.client().await;
    client.version().await.expect("warm-up Version");
    let mut counts = vec![dockshim.thread_count()];

    for _ in 0..3 {
        let slow = start_slow_call(&proxy, &client).await;
        slow.abort();
        assert!(slow.await.unwrap_err().is_cancelled());
        client.version().await.expect("Version after a cancel");
        tokio::time::sleep(SLOW_CALL + Duration::from_secs(1)).await;
        counts.push(dockshim.thread_count());
    }

    // Worker threads may be kept for reuse, so growth after the first round
    // is the leak; the first round may add a few pooled workers.
    assert!(counts[1] <= counts[0] + 4, "thread counts {counts:?}");
    assert!(counts[3] <= counts[1], "thread counts {counts:?}");
    client.version().await.expect("Version at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_message_answers_an_error_status() {
    let dockshim = Dockshim::start();
    let mut h2 = RawH2::connect(dockshim.socket()).await;

    // The prefix announces 100 bytes; only 3 follow before END_STREAM.
    let truncated = Bytes::from_static(&[0, 0, 0, 0, 100, 1, 2, 3]);
    let answer = h2.call(VERSION, &[], truncated).await.unwrap();

    let status = answer.grpc_status.expect("a grpc-status");
    assert_ne!(status, 0, "{answer:?}");
    let fresh = dockshim.client().await;
    fresh
        .version()
        .await
        .expect("Version after the truncated message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_message_is_unimplemented() {
    let dockshim = Dockshim::start();
    let mut h2 = RawH2::connect(dockshim.socket()).await;

    let mut compressed = grpc_frame(&cri::VersionRequest::default().encode_to_vec()).to_vec();
    compressed[0] = 1;
    let answer = h2
        .call(VERSION, &[], Bytes::from(compressed))
        .await
        .unwrap();

    assert_eq!(
        answer.grpc_status,
        Some(Code::Unimplemented as i32),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_the_http2_preface_closes_the_connection() {
    let dockshim = Dockshim::start();

    let mut stream = UnixStream::connect(dockshim.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nnot http/2 at all")
        .unwrap();
    let mut rest = Vec::new();
    let closed = match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };

    assert!(closed, "the connection stayed open after a bad preface");
    let client = dockshim.client().await;
    client
        .version()
        .await
        .expect("Version after the bad preface");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_call_in_flight_then_exits_zero_and_removes_the_socket() {
    let (proxy, mut dockshim) = dockshim_with_slow_info();
    let client = dockshim.client().await;
    let slow = start_slow_call(&proxy, &client).await;

    dockshim.sigterm();
    let answer = slow.await.unwrap();
    let status = dockshim.wait_exit(Duration::from_secs(15));

    assert!(answer.is_ok(), "the in-flight call failed: {answer:?}");
    assert!(status.success(), "exit status {status}");
    assert!(
        !dockshim.socket().exists(),
        "the socket file is still there after exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_on_the_same_socket_exits_nonzero_and_the_first_keeps_serving() {
    let dockshim = Dockshim::start();

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut second = fixture::spawn(&dockshim.same_args(), log.path());
    let status = fixture::wait_timeout(&mut second, Duration::from_secs(5))
        .expect("the second instance is still running after 5 s");

    let said = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        !status.success(),
        "the second instance exited with {status}; it said:\n{said}"
    );
    assert!(dockshim.socket().exists());
    let client = dockshim.client().await;
    client
        .version()
        .await
        .expect("Version from the first instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_file_mode_is_0660() {
    let dockshim = Dockshim::start();

    let mode = std::fs::metadata(dockshim.socket())
        .unwrap()
        .permissions()
        .mode();

    assert_eq!(mode & 0o777, 0o660, "mode {:o}", mode & 0o777);
}
