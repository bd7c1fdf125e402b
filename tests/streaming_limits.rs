//! The streaming server under hostile clients: what one client can make it
//! hold (pod connections, threads, memory) stays bounded, and clients that
//! never present a URL cannot keep out those that do.
//!
//! The real streaming server and the real port-forward sessions run in
//! this process, so their threads (`/proc/self/task`) and memory (`VmRSS`
//! of `/proc/self/status`) are this process's. Connections are dialled
//! through a [`PortDialer`] to a listener standing in for the pod's port,
//! which counts every connection made and holds each open without a word,
//! as a pod's server may. Nothing here needs dockerd, so every engine runs
//! the same test. The clients are the independent ones of
//! `common::spdy_client` and `common::port_forward_client`.
//!
//! The tests take turns ([`COUNTING`]): each measures the whole process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::port_forward_client::SPDY_PORT_FORWARD;
use common::spdy_client::{ClientFrame, SpdyClient};
use dockshim::streaming::port_forward::{self, PortDialer, MAX_SESSION_CONNECTIONS};
use dockshim::streaming::server::{StreamingServer, MAX_SESSIONS};
use dockshim::streaming::session::{Handoff, PortForward, Sessions, StreamRequest};
use dockshim::streaming::PortForwardError;

/// Bounds every wait.
const TIMEOUT: Duration = Duration::from_secs(30);

/// As the kubelet's default: an incomplete pair is held this long.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// SPDY's CANCEL status, what a client resetting its own stream sends.
const CANCEL: u32 = 5;

/// Names of the threads a forwarded connection runs on.
const FORWARDING_THREADS: &[&str] = &["port-forward", "port-upload", "netns"];

/// One test at a time: each counts the process's threads or memory.
static COUNTING: Mutex<()> = Mutex::new(());

/// The stand-in for a pod's port: accepts and holds every connection.
struct Pod {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Pod {
    fn start() -> Pod {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (Arc::clone(&accepted), Arc::clone(&stop));
        // One thread for every connection, so the pod adds no thread per
        // connection to what is counted.
        let acceptor = thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        count.fetch_add(1, Ordering::AcqRel);
                        held.push(conn);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Pod {
            port,
            accepted,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Dials the pod's stand-in, whatever port the client names.
#[derive(Debug)]
struct ToPod(u16);

impl PortDialer for ToPod {
    fn dial(&self, _port: u16) -> Result<TcpStream, PortForwardError> {
        TcpStream::connect(("127.0.0.1", self.0)).map_err(PortForwardError::Socket)
    }
}

/// Port-forward sessions into the pod's stand-in.
struct Forwarding(ToPod);

impl Sessions for Forwarding {
    fn serve(&self, request: StreamRequest, handoff: Handoff) {
        if let StreamRequest::PortForward(request) = request {
            port_forward::serve(&request, handoff, &self.0, STREAM_CREATION_TIMEOUT);
        }
    }
}

fn start_server(pod: &Pod) -> StreamingServer {
    StreamingServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Duration::ZERO,
        Arc::new(Forwarding(ToPod(pod.port))),
    )
    .unwrap()
}

/// A fresh port-forward URL's address and path.
fn port_forward_url(server: &StreamingServer) -> (SocketAddr, String) {
    let request = StreamRequest::PortForward(PortForward {
        pod_sandbox_id: "limits".to_owned(),
        ports: Vec::new(),
    });
    common::split_url(&server.url(request).unwrap())
}

fn connect(server: &StreamingServer) -> SpdyClient {
    let (address, path) = port_forward_url(server);
    let (response, client) =
        SpdyClient::connect(address, "POST", &path, &[SPDY_PORT_FORWARD]).unwrap();
    assert_eq!(response.status, 101, "{response:?}");
    let client = client.unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client
}

/// Pings and reads until the answer: the server has read every frame sent
/// before. Returns the streams it reset meanwhile.
fn sync(client: &mut SpdyClient, id: u32) -> usize {
    client.send_ping(id).unwrap();
    let mut resets = 0;
    loop {
        match client.read_frame().unwrap() {
            Some(ClientFrame::Ping { id: answered }) if answered == id => return resets,
            Some(ClientFrame::RstStream { .. }) => resets += 1,
            Some(_) => {}
            None => panic!("the server closed the session"),
        }
    }
}

/// Threads of this process with one of `names`.
fn threads_named(names: &[&str]) -> usize {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| names.contains(&comm.trim_end()))
        .count()
}

/// The largest value `sample` takes while `work` runs, sampled every
/// millisecond, and `work`'s result.
fn peak_while<T>(sample: impl Fn() -> usize + Sync, work: impl FnOnce() -> T) -> (usize, T) {
    /// Stops the sampler however `work` ends, a failed assertion included.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = sample();
            while !done.load(Ordering::Acquire) {
                peak = peak.max(sample());
                thread::sleep(Duration::from_millis(1));
            }
            peak.max(sample())
        });
        let result = {
            let _done = Done(&done);
            work()
        };
        (sampler.join().unwrap(), result)
    })
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: usize = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn open_then_reset_pairs_hold_at_most_the_cap_in_pod_connections_and_threads() {
    let _turn = COUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    let pod = Pod::start();
    let server = start_server(&pod);
    let mut client = connect(&server);
    let pairs = 400;
    let (peak_threads, _) = peak_while(
        || threads_named(FORWARDING_THREADS),
        || {
            for n in 0..pairs {
                let request = n.to_string();
                let mut open = |kind: &str| {
                    let headers = [
                        ("streamtype", kind),
                        ("port", "80"),
                        ("requestid", &request),
                    ];
                    client.open_stream(&headers, false).unwrap()
                };
                let error = open("error");
                let data = open("data");
                client.send_reset(error, CANCEL).unwrap();
                client.send_reset(data, CANCEL).unwrap();
            }
            sync(&mut client, 1);
            // Time for whatever was dialled before its reset was read to
            // start, and to end.
            let settle = Instant::now() + Duration::from_secs(2);
            while threads_named(FORWARDING_THREADS) > 0 && Instant::now() < settle {
                thread::sleep(Duration::from_millis(20));
            }
        },
    );
    println!(
        "{pairs} open-then-reset pairs: {} pod connections, at most {peak_threads} forwarding threads at once",
        pod.accepted()
    );
    // A connection runs on two threads (a third, briefly, dials).
    assert!(
        peak_threads <= 3 * MAX_SESSION_CONNECTIONS,
        "{peak_threads} forwarding threads at once"
    );
    wait_until("forwarding threads outlive their reset streams", || {
        threads_named(FORWARDING_THREADS) == 0
    });
    // The session still works.
    let request = "last";
    let error = client
        .open_stream(
            &[
                ("streamtype", "error"),
                ("port", "80"),
                ("requestid", request),
            ],
            false,
        )
        .unwrap();
    let data = client
        .open_stream(
            &[
                ("streamtype", "data"),
                ("port", "80"),
                ("requestid", request),
            ],
            false,
        )
        .unwrap();
    let before = pod.accepted();
    wait_until("a pair after the resets dials no connection", || {
        pod.accepted() > before
    });
    client.send_reset(data, CANCEL).unwrap();
    client.send_reset(error, CANCEL).unwrap();
    wait_until("the last connection does not end", || {
        threads_named(FORWARDING_THREADS) == 0
    });
}

#[test]
fn pairs_opened_at_once_dial_the_pod_at_most_the_cap_before_their_resets() {
    let _turn = COUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    let pod = Pod::start();
    let server = start_server(&pod);
    let mut client = connect(&server);
    let pairs = 400;
    let mut opened = Vec::new();
    for n in 0..pairs {
        let request = n.to_string();
        for kind in ["error", "data"] {
            let headers = [
                ("streamtype", kind),
                ("port", "80"),
                ("requestid", &request),
            ];
            opened.push(client.open_stream(&headers, false).unwrap());
        }
    }
    let refused = sync(&mut client, 1);
    wait_until("the pairs were not all dialled or refused", || {
        pod.accepted() >= MAX_SESSION_CONNECTIONS
    });
    // Every pair complete before any reset: the cap alone limits.
    let (peak_threads, ()) = peak_while(
        || threads_named(FORWARDING_THREADS),
        || thread::sleep(Duration::from_millis(500)),
    );
    println!(
        "{pairs} pairs at once: {} pod connections, {peak_threads} forwarding threads, \
         {refused} streams refused",
        pod.accepted()
    );
    assert_eq!(pod.accepted(), MAX_SESSION_CONNECTIONS);
    assert!(peak_threads <= 3 * MAX_SESSION_CONNECTIONS);
    for stream in opened {
        client.send_reset(stream, CANCEL).unwrap();
    }
    sync(&mut client, 3);
    wait_until("connections outlive their reset streams", || {
        threads_named(FORWARDING_THREADS) == 0
    });
    assert_eq!(pod.accepted(), MAX_SESSION_CONNECTIONS);
}

#[test]
fn reset_streams_with_huge_header_values_hold_no_memory() {
    let _turn = COUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    let pod = Pod::start();
    let server = start_server(&pod);
    let mut client = connect(&server);
    let value = "x".repeat(200 * 1024);
    let open_and_reset = |client: &mut SpdyClient, n: usize| {
        let request = n.to_string();
        let headers = [
            ("streamtype", "error"),
            ("port", "80"),
            ("requestid", request.as_str()),
            ("x-padding", value.as_str()),
        ];
        let stream = client.open_stream(&headers, false).unwrap();
        client.send_reset(stream, CANCEL).unwrap();
    };
    // The first few set up what every session and allocation reuses.
    for n in 0..10 {
        open_and_reset(&mut client, n);
    }
    sync(&mut client, 1);
    let before = rss();
    for n in 10..310 {
        open_and_reset(&mut client, n);
    }
    sync(&mut client, 3);
    let grown = rss().saturating_sub(before);
    println!(
        "300 reset streams with a {} KiB header value each: RSS grew {} KiB",
        value.len() / 1024,
        grown / 1024
    );
    assert!(grown < 10 * 1024 * 1024, "RSS grew {} KiB", grown / 1024);
    assert_eq!(pod.accepted(), 0);
}

#[test]
fn silent_connections_never_keep_a_valid_url_out() {
    let _turn = COUNTING.lock().unwrap_or_else(PoisonError::into_inner);
    let pod = Pod::start();
    let server = start_server(&pod);
    let silent: Vec<TcpStream> = (0..MAX_SESSIONS)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // Let the server take them all in before the valid one comes.
    thread::sleep(Duration::from_millis(500));
    let (address, path) = port_forward_url(&server);
    let (response, client) =
        SpdyClient::connect(address, "POST", &path, &[SPDY_PORT_FORWARD]).unwrap();
    assert_eq!(response.status, 101, "{response:?}");
    let mut client = client.unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    sync(&mut client, 1);
    drop(silent);
}
