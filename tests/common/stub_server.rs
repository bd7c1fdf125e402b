//! A TCP server on loopback for tests that need a peer which misbehaves on
//! purpose (a registry that stalls or trickles): each connection is handed
//! to the test's own function on a thread of its own, until the server is
//! dropped.

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
