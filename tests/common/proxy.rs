//! `DockerProxy`: a unix socket that forwards every connection byte for byte
//! to dockerd, on plain threads, so a test can slow down chosen Docker API
//! calls, count them, or make dockerd vanish while dockshim is running.
//!
//! Requests are recognised by their HTTP/1.1 request line within each read;
//! that is enough for the small requests dockshim sends, and a delay only
//! ever holds back the request that matched.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::docker::docker_socket;

const ACCEPT_POLL: Duration = Duration::from_millis(10);
const DELAY_SLICE: Duration = Duration::from_millis(10);
const METHODS: [&str; 5] = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD "];

#[derive(Debug, Default)]
struct Shared {
    /// Requests whose path contains the `String` are held back this long.
    delays: Mutex<Vec<(String, Duration)>>,
    delayed_requests: AtomicUsize,
    /// The target of every request so far, oldest first.
    requests: Mutex<Vec<String>>,
    /// Both ends of every connection, so `kill` can cut them.
    connections: Mutex<Vec<UnixStream>>,
    /// Bumped by `kill`; a connection started in an older epoch stops waiting.
    epoch: AtomicU64,
}

#[derive(Debug)]
struct Listening {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A proxy in front of `/var/run/docker.sock`; killed on drop.
#[derive(Debug)]
pub struct DockerProxy {
    socket: PathBuf,
    shared: Arc<Shared>,
    listening: Mutex<Option<Listening>>,
    _dir: TempDir,
}

impl DockerProxy {
    pub fn start() -> DockerProxy {
        let dir = tempfile::Builder::new()
            .prefix("docker-proxy")
            .tempdir()
            .expect("create the proxy directory");
        let proxy = DockerProxy {
            socket: dir.path().join("docker.sock"),
            shared: Arc::default(),
            listening: Mutex::new(None),
            _dir: dir,
        };
        proxy.revive();
        proxy
    }

    /// The socket to hand to dockshim as its docker endpoint.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Holds back requests whose path contains `path_part` by `delay`.
    pub fn delay(&self, path_part: &str, delay: Duration) {
        self.shared
            .delays
            .lock()
            .unwrap()
            .push((path_part.to_owned(), delay));
    }

    pub fn clear_delays(&self) {
        self.shared.delays.lock().unwrap().clear();
    }

    /// How many requests have matched a delay so far.
    pub fn delayed_requests(&self) -> usize {
        self.shared.delayed_requests.load(Ordering::SeqCst)
    }

    /// How many requests so far had a target containing `path_part`; every
    /// request with `""`.
    pub fn requests_to(&self, path_part: &str) -> usize {
        let requests = self.shared.requests.lock().unwrap();
        requests.iter().filter(|r| r.contains(path_part)).count()
    }

    /// Waits until at least `count` requests have matched a delay; returns
    /// whether that happened within `timeout`.
    pub async fn wait_for_delayed_requests(&self, count: usize, timeout: Duration) -> bool {
        super::eventually(timeout, || async { self.delayed_requests() >= count }).await
    }

    /// Stops listening, removes the socket and cuts every open connection:
    /// to dockshim, dockerd is gone.
    pub fn kill(&self) {
        if let Some(listening) = self.listening.lock().unwrap().take() {
            listening.stop.store(true, Ordering::SeqCst);
            let _ = listening.thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        for stream in self.shared.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same path (after `kill`): dockerd is back.
    pub fn revive(&self) {
        let mut listening = self.listening.lock().unwrap();
        if listening.is_some() {
            return;
        }
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket).expect("bind the proxy socket");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&self.shared);
            thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(&listener, &stop, &shared))
                .unwrap()
        };
        *listening = Some(Listening { stop, thread });
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, shared: &Arc<Shared>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                client.set_nonblocking(false).unwrap();
                forward(client, shared);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) => panic!("proxy accept failed: {e}"),
        }
    }
}

/// Joins `client` to a fresh dockerd connection with one thread per direction.
fn forward(client: UnixStream, shared: &Arc<Shared>) {
    let Ok(upstream) = UnixStream::connect(docker_socket()) else {
        return;
    };
    {
        let mut connections = shared.connections.lock().unwrap();
        connections.push(client.try_clone().unwrap());
        connections.push(upstream.try_clone().unwrap());
    }
    let epoch = shared.epoch.load(Ordering::SeqCst);
    let requests = {
        let (from, to) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        let shared = Arc::clone(shared);
        move || copy(from, to, Some((&shared, epoch)))
    };
    let responses = move || copy(upstream, client, None);
    thread::Builder::new()
        .name("proxy-requests".into())
        .spawn(requests)
        .unwrap();
    thread::Builder::new()
        .name("proxy-responses".into())
        .spawn(responses)
        .unwrap();
}

/// Copies until EOF or error, then half-closes `to`. With `delays`, holds
/// back each read that carries a matching request line.
fn copy(mut from: UnixStream, mut to: UnixStream, delays: Option<(&Shared, u64)>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((shared, epoch)) = delays {
            let mut requests = shared.requests.lock().unwrap();
            requests.extend(request_paths(&buffer[..n]).map(str::to_owned));
            drop(requests);
            hold_back(shared, epoch, &buffer[..n]);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn hold_back(shared: &Shared, epoch: u64, bytes: &[u8]) {
    let delay = {
        let delays = shared.delays.lock().unwrap();
        request_paths(bytes)
            .filter_map(|path| {
                delays
                    .iter()
                    .filter(|(part, _)| path.contains(part.as_str()))
                    .map(|(_, delay)| *delay)
                    .max()
            })
            .max()
    };
    let Some(delay) = delay else {
        return;
    };
    shared.delayed_requests.fetch_add(1, Ordering::SeqCst);
    let until = Instant::now() + delay;
    while Instant::now() < until && shared.epoch.load(Ordering::SeqCst) == epoch {
        thread::sleep(DELAY_SLICE);
    }
}

/// Request targets of the HTTP/1.x request lines in `bytes`.
fn request_paths(bytes: &[u8]) -> impl Iterator<Item = &str> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter(|line| line.trim_end().contains(" HTTP/1."))
        .filter_map(|line| {
            let method = METHODS.iter().find(|m| line.starts_with(*m))?;
            line[method.len()..].split(' ').next()
        })
}
