//! The Prometheus endpoint of the real binary (`--metrics-addr`): CRI calls
//! made over the socket show up in the scraped counters, and only
//! `/metrics` is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::fixture::{Dockshim, Options};
use tonic::Code;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

const VERSION: &str = "/runtime.v1.RuntimeService/Version";
const CONTAINER_STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";

/// A port nobody listens on right now, for the flag (port 0 would leave the
/// test not knowing where to scrape).
fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start_with_metrics() -> (Dockshim, SocketAddr) {
    let addr = free_loopback_addr();
    let dockshim = Dockshim::start_with(Options {
        extra_args: vec!["--metrics-addr".into(), addr.to_string()],
        ..Options::default()
    });
    (dockshim, addr)
}

/// The status line, the head and the body of `GET path`.
fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut conn = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).unwrap();
    conn.set_read_timeout(Some(SCRAPE_TIMEOUT)).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_counters_reflect_cri_calls() {
    let (dockshim, addr) = start_with_metrics();
    let client = dockshim.client().await;

    client.version().await.unwrap();
    client.version().await.unwrap();
    let err = client
        .container_status("no-such-container-for-metrics", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let (status, head, body) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();

    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let version = format!("method=\"{VERSION}\"");
    let container_status = format!("method=\"{CONTAINER_STATUS}\"");
    assert_eq!(
        sample(&body, &format!("dockshim_grpc_requests_total{{{version}}}")),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            &format!("dockshim_grpc_request_duration_seconds_count{{{version}}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &body,
            &format!("dockshim_grpc_errors_total{{{container_status},code=\"NOT_FOUND\"}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(&body, "dockshim_docker_requests_total{method=\"GET\"}").unwrap() >= 1.0,
        "start-up asks dockerd for its version: {body}"
    );
    assert!(sample(&body, "dockshim_index_entries").is_some());
    assert_eq!(
        sample(&body, "dockshim_index_event_stream_reconnects_total"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_other_than_metrics_are_not_found() {
    let (_dockshim, addr) = start_with_metrics();

    let (status, _, _) = tokio::task::spawn_blocking(move || get(addr, "/"))
        .await
        .unwrap();

    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
