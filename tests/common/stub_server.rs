//! A TCP server on loopback for tests that need a peer which misbehaves on
//! purpose (a registry that stalls or trickles): each connection is handed
//! to the test's own function on a thread of its own, until the server is
//! dropped.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the accepting thread looks for a new connection or a stop.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// The server; dropping it sets the stop flag and joins every thread.
#[derive(Debug)]
pub struct StubServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl StubServer {
    /// Listens on an ephemeral port of 127.0.0.1 and runs `serve` for each
    /// connection, with the stop flag, which it must watch so the drop does
    /// not wait for ever.
    pub fn start<F>(serve: F) -> StubServer
    where
        F: Fn(TcpStream, &AtomicBool) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = Arc::new(serve);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let stop = Arc::clone(&stop);
            let threads = Arc::clone(&threads);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let stop = Arc::clone(&stop);
                            let serve = Arc::clone(&serve);
                            let handler = thread::spawn(move || serve(stream, &stop));
                            threads.lock().unwrap().push(handler);
                        }
                        Err(_) => thread::sleep(ACCEPT_POLL),
                    }
                }
            })
        };
        StubServer {
            addr,
            stop,
            threads,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for handler in self.threads.lock().unwrap().drain(..) {
            let _ = handler.join();
        }
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// The header every registry answer carries.
const REGISTRY_API: &str = "Docker-Distribution-Api-Version: registry/2.0\r\n";

/// One request a registry stub was sent.
#[derive(Debug)]
pub struct RegistryRequest {
    pub path: String,
    /// A `HEAD`: the answer has headers only.
    pub head_only: bool,
}

/// One client connection of a registry stub: reads request heads and
/// writes the answers every stub gives alike, leaving the blobs to it.
#[derive(Debug)]
pub struct RegistryConnection {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl RegistryConnection {
    pub fn new(stream: TcpStream) -> RegistryConnection {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        RegistryConnection {
            stream,
            pending: Vec::new(),
        }
    }

    /// The next request, or `None` once the client closed the connection,
    /// `stop` was set, or the client began a TLS handshake. dockerd tries
    /// HTTPS first; a plain HTTP answer to its hello makes it fall back to
    /// HTTP at once rather than after its handshake timeout, and the
    /// containerd image store falls back on nothing else.
    pub fn next_request(&mut self, stop: &AtomicBool) -> Option<RegistryRequest> {
        let mut buffer = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end + 4);
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("");
                return Some(RegistryRequest {
                    head_only: method == "HEAD",
                    path: words.next().unwrap_or("").to_owned(),
                });
            }
            match std::io::Read::read(&mut self.stream, &mut buffer) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            if self.pending.first() == Some(&TLS_HANDSHAKE) {
                let _ = self.stream.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
                return None;
            }
        }
        None
    }

    /// Answers `/v2/` and manifest requests (with `manifest`) and returns
    /// true, or returns false for the stub to answer.
    pub fn answer_base(&mut self, request: &RegistryRequest, manifest: &str) -> bool {
        if request.path == "/v2/" {
            self.answer(request, "application/json", b"{}");
        } else if request.path.contains("/manifests/") {
            // No Docker-Content-Digest: dockerd computes it from the body.
            self.answer(
                request,
                "application/vnd.docker.distribution.manifest.v2+json",
                manifest.as_bytes(),
            );
        } else {
            return false;
        }
        true
    }

    /// A 200 with `body` (headers only for a `HEAD`).
    pub fn answer(&mut self, request: &RegistryRequest, content_type: &str, body: &[u8]) {
        self.answer_head(content_type, body.len());
        if !request.head_only {
            let _ = self.stream.write_all(body);
        }
    }

    /// The head of a 200 whose body of `length` bytes the caller writes.
    pub fn answer_head(&mut self, content_type: &str, length: usize) {
        let _ = write!(
            self.stream,
            "HTTP/1.1 200 OK\r\n{REGISTRY_API}Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        );
    }

    pub fn not_found(&mut self) {
        let _ = write!(
            self.stream,
            "HTTP/1.1 404 Not Found\r\n{REGISTRY_API}Content-Length: 0\r\n\r\n"
        );
    }

    /// The connection, for a body the stub writes itself.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}
