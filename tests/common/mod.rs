//! Support shared by the end-to-end tests: a fixture that runs the real
//! `dockshim` binary, an independent gRPC client (tonic) and a raw HTTP/2
//! client (h2) over its unix socket, a proxy in front of dockerd that can slow
//! down or cut off the Docker API, direct queries to dockerd, and clients
//! for the streaming server's URLs; and the test run's label and skip rule,
//! which every test binary shares with tests/run.sh.
//!
//! Nothing here uses dockshim's own gRPC, HTTP/2 or Docker code: the binary is
//! checked from the outside, through independent implementations. Only the
//! generated CRI message types are shared, because they are the wire contract.

// Every test crate compiles this whole module but uses only part of it.
#![allow(dead_code)]

pub mod client;
pub mod cni_pod;
pub mod cri_dockerd;
pub mod docker;
pub mod fixture;
pub mod h2raw;
pub mod handoff;
pub mod pod;
pub mod port_forward_client;
pub mod proxy;
pub mod spdy_client;
pub mod stub_server;

use std::fmt::Display;
use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::client::IntoClientRequest;
use tungstenite::WebSocket;

/// The sandbox image tests/run.sh builds and pushes.
pub fn pause_image() -> String {
    std::env::var("DOCKSHIM_TEST_PAUSE_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/dockshim-test/pause:3.10".to_owned())
}

/// The busybox image tests/run.sh builds and pushes.
pub fn busybox_image() -> String {
    std::env::var("DOCKSHIM_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/dockshim-test/busybox:latest".to_owned())
}

/// The label every container the tests create carries, directly or through
/// dockshim, valued [`test_run_id`]: tests/run.sh's leak check looks for
/// this run's containers by it and touches nothing else, and its start-up
/// check tells a test's Kubernetes containers from a kubelet's by it.
pub const TEST_RUN_LABEL: &str = "dockshim-test-run";

/// This run of the tests: `DOCKSHIM_TEST_RUN_ID` (tests/run.sh makes a fresh
/// one per run), else one per test process.
pub fn test_run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| match std::env::var("DOCKSHIM_TEST_RUN_ID") {
        Ok(id) if !id.is_empty() => id,
        _ => format!("process-{}-{:08x}", std::process::id(), unique()),
    })
}

/// `dockshim-test-run=<id>`, as `docker run --label` and
/// `docker ps --filter label=` take it.
pub fn test_run_label() -> String {
    format!("{TEST_RUN_LABEL}={}", test_run_id())
}

/// Whether tests/run.sh runs the tests (`DOCKSHIM_TEST_STRICT=1`). It builds
/// the whole environment before the first test, so there a missing dockerd,
/// image or registry is a fault of the run, not a reason to pass.
pub fn strict() -> bool {
    std::env::var("DOCKSHIM_TEST_STRICT").is_ok_and(|value| value == "1")
}

/// Gives up a test whose environment is missing (no dockerd, no test image,
/// no registry): prints `skipped: <reason>` for the caller to return, or
/// fails the test under [`strict`]. An engine that lacks a feature is not a
/// missing environment; such tests print their own `skipped:` everywhere.
pub fn missing_environment(reason: impl Display) {
    assert!(
        !strict(),
        "the environment is missing: {reason} (DOCKSHIM_TEST_STRICT=1 makes this fatal)"
    );
    eprintln!("skipped: {reason}");
}

/// A number that differs per call and per run, for names, subnets and
/// ports that tests running side by side must not share.
pub fn unique() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (std::process::id().wrapping_mul(2_654_435_761) ^ nanos)
        .wrapping_add(n.wrapping_mul(0x9e37_79b9))
}

/// The address and path of an `http://` URL, as the streaming server
/// hands them out.
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let slash = rest.find('/').unwrap();
    (rest[..slash].parse().unwrap(), rest[slash..].to_owned())
}

/// A WebSocket connection to `address` at `path` (with any query)
/// offering `protocol`, which the server must pick; every read then waits
/// at most `timeout`.
pub fn websocket(
    address: SocketAddr,
    path: &str,
    protocol: &str,
    timeout: Duration,
) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], protocol);
    socket
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
