//! The gRPC server: the listening socket, one thread per connection, and
//! the worker threads that run handlers.
//!
//! ```text
//! accept loop (Server::run) ── conn-N thread per connection: h2 + calls ──► worker-N threads
//!        ▲                              ▲                                     (handlers)
//!        └──── ShutdownHandle ──────────┴── wakes ◄──── replies, streamed messages
//! ```
//!
//! It serves a table of [`Method`]s over HTTP/2 on a unix socket (or one
//! passed by systemd), and owns the socket's lifecycle: lock, permissions,
//! readiness notification, graceful shutdown and removal. It knows nothing
//! of CRI: handlers and their table come from the caller.
//!
//! Handlers run in two lanes. Every call may use the regular workers, at
//! most [`ServerOptions::max_workers`]; the unary methods the caller lists
//! in [`ServerOptions::quick_methods`] also have a few workers of their own
//! (four) that take nothing else, and jump ahead of queued regular calls.
//! Slow calls can therefore occupy every regular worker without delaying
//! the quick ones, and the thread count stays bounded by the sum.

mod calls;
mod connection;
mod dispatch;
mod error;
mod executor;
mod listener;
mod systemd;
mod workers;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Interest, Token};
use nix::sys::signal::{SigSet, Signal};

use crate::grpc::Method;
use crate::supervisor::{self, Duty, Ended, OnDeath};
use connection::{Connection, ConnectionConfig, Shared};
use executor::Executor;
use listener::{bind_endpoint, Bound, Endpoint, SocketClaim};
use systemd::Notifier;
use workers::{WorkerPool, QUICK_WORKERS};

pub use error::ServerError;

/// Default cap on worker threads running handlers at once.
pub const DEFAULT_MAX_WORKERS: usize = 64;
/// Default time in-flight unary calls get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The signal thread: SIGTERM and SIGINT are blocked everywhere else, so
/// without it they would be ignored; its death stops dockshim (see
/// `crate::supervisor`).
const SIGNALS_DUTY: Duty = Duty {
    name: "signals",
    on_death: OnDeath::Exit,
    loss: "SIGTERM and SIGINT are ignored",
};

const LISTENER: Token = Token(0);
const ACCEPT_WAKER: Token = Token(1);
/// Pause before accepting again after `accept` failed (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How the server listens and behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `unix:///path`, `/path` or `fd://` (systemd socket activation).
    pub endpoint: String,
    /// Group (name or numeric gid) given the socket; `None` leaves the
    /// process's group.
    pub socket_group: Option<String>,
    /// Most worker threads running handlers at once.
    pub max_workers: usize,
    /// How long in-flight unary calls may run on after shutdown starts.
    pub shutdown_grace: Duration,
    /// Paths of the unary methods that run in the quick lane: short calls
    /// that must answer while slow ones occupy every regular worker.
    pub quick_methods: &'static [&'static str],
}

impl ServerOptions {
    /// Options for `endpoint` with every other setting at its default.
    pub fn new(endpoint: impl Into<String>) -> ServerOptions {
        ServerOptions {
            endpoint: endpoint.into(),
            socket_group: None,
            max_workers: DEFAULT_MAX_WORKERS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            quick_methods: &[],
        }
    }
}

/// Starts a graceful shutdown of the server it came from.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting connections, sends GOAWAY on every connection and
    /// lets [`Server::run`] return once calls have drained. Calling it
    /// again does nothing.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        log::info!("shutting down");
        if let Err(err) = self.shared.accept_waker.wake() {
            log::error!("cannot wake the accept loop: {err}");
        }
        for waker in self.shared.connections().values() {
            waker.wake_by_ref();
        }
    }
}

/// A bound gRPC server, ready to [`run`](Server::run).
pub struct Server<S: 'static> {
    listener: mio::net::UnixListener,
    /// The socket path's lock; dropping it removes the socket.
    claim: Option<SocketClaim>,
    poll: mio::Poll,
    shared: Arc<Shared>,
    services: Arc<S>,
    methods: &'static [Method<S>],
    options: ServerOptions,
    notifier: Notifier,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.options.endpoint)
            .field("methods", &self.methods.len())
            .finish()
    }
}

impl<S: Send + Sync + 'static> Server<S> {
    /// Binds the endpoint in `options`; `methods` must be sorted by path.
    ///
    /// With `fd://` this reads and clears systemd's variables, so call it
    /// before starting threads that read the environment.
    pub fn bind(
        options: &ServerOptions,
        services: Arc<S>,
        methods: &'static [Method<S>],
    ) -> Result<Server<S>, ServerError> {
        debug_assert!(
            methods.is_sorted_by_key(|method| method.path),
            "method table must be sorted"
        );
        let endpoint = Endpoint::parse(&options.endpoint)?;
        let Bound { listener, claim } = bind_endpoint(&endpoint, options.socket_group.as_deref())?;
        let mut listener = mio::net::UnixListener::from_std(listener);
        let poll = mio::Poll::new().map_err(|err| ServerError::setup("create a poll", err))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|err| ServerError::setup("watch the listening socket", err))?;
        let accept_waker = mio::Waker::new(poll.registry(), ACCEPT_WAKER)
            .map_err(|err| ServerError::setup("create a waker", err))?;
        Ok(Server {
            listener,
            claim,
            poll,
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                accept_waker,
                connections: Mutex::new(HashMap::new()),
            }),
            services,
            methods,
            options: options.clone(),
            notifier: Notifier::from_env(),
        })
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves connections until shutdown, then waits for every connection
    /// to finish and removes the socket. Returns `Ok` after a graceful
    /// shutdown.
    pub fn run(self) -> Result<(), ServerError> {
        let Server {
            listener,
            claim,
            mut poll,
            shared,
            services,
            methods,
            options,
            notifier,
        } = self;
        let pool = WorkerPool::new(options.max_workers, QUICK_WORKERS);
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut events = Events::with_capacity(16);
        let mut next_id = 0u64;
        let mut failure = None;
        notifier.notify("READY=1");
        log::info!("serving gRPC on {}", options.endpoint);
        while !shared.stopping.load(Ordering::SeqCst) {
            let mut retry = None;
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let config = ConnectionConfig {
                            id: next_id,
                            services: Arc::clone(&services),
                            methods,
                            quick_methods: options.quick_methods,
                            pool: pool.clone(),
                            shared: Arc::clone(&shared),
                            shutdown_grace: options.shutdown_grace,
                        };
                        next_id += 1;
                        match supervisor::spawn_named(
                            format!("conn-{}", config.id),
                            Box::new(move || serve_connection(stream, config)),
                        ) {
                            Ok(thread) => threads.push(thread),
                            Err(err) => log::error!("cannot start a connection thread: {err}"),
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        log::error!("cannot accept a connection: {err}");
                        retry = Some(ACCEPT_RETRY);
                        break;
                    }
                }
            }
            threads.retain(|thread| !thread.is_finished());
            match poll.poll(&mut events, retry) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    failure = Some(ServerError::setup("wait for connections", err));
                    ShutdownHandle {
                        shared: Arc::clone(&shared),
                    }
                    .shutdown();
                }
            }
        }
        notifier.notify("STOPPING=1");
        // Closing the listener refuses new connections from here on.
        drop(listener);
        pool.close();
        for thread in threads {
            if thread.join().is_err() {
                log::error!("a connection thread panicked");
            }
        }
        drop(claim);
        log::info!("stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// Keeps a connection's waker reachable by [`ShutdownHandle::shutdown`]
/// while its thread runs.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.connections().remove(&self.id);
    }
}

fn serve_connection<S: Send + Sync + 'static>(
    mut stream: mio::net::UnixStream,
    config: ConnectionConfig<S>,
) {
    let id = config.id;
    let mut executor = match Executor::new(&mut stream) {
        Ok(executor) => executor,
        Err(err) => {
            log::error!("connection {id}: cannot set up polling: {err}");
            return;
        }
    };
    let waker = executor.waker();
    let shared = Arc::clone(&config.shared);
    shared.connections().insert(id, waker.clone());
    let _registration = Registration {
        shared: &shared,
        id,
    };
    let mut connection = Connection::new(executor.socket(stream), waker, config);
    if let Err(err) = executor.run(&mut connection) {
        log::error!("connection {id}: {err}");
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread. Call it first thing in
/// `main`, before any thread is started (the state index, the server):
/// threads inherit the mask, so the signals then reach only the thread
/// that waits for them.
pub fn block_shutdown_signals() -> Result<(), ServerError> {
    shutdown_signals()
        .thread_block()
        .map_err(|errno| ServerError::setup("block SIGTERM and SIGINT", errno.into()))
}

fn shutdown_signals() -> SigSet {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
}

/// Blocks SIGTERM and SIGINT in the calling thread, then starts a thread
/// that waits for them: the first starts a graceful shutdown through
/// `handle`, a second one exits the process at once.
///
/// Call it before any other thread is started, so that every thread
/// inherits the blocked mask and the signals reach only the waiting thread.
pub fn spawn_signal_thread(handle: ShutdownHandle) -> Result<(), ServerError> {
    block_shutdown_signals()?;
    let signals = shutdown_signals();
    supervisor::spawn(SIGNALS_DUTY, move || {
        let mut received = false;
        loop {
            match signals.wait() {
                Ok(signal) if !received => {
                    received = true;
                    log::info!("received {signal}; shutting down gracefully");
                    handle.shutdown();
                }
                Ok(signal) => {
                    log::warn!("received {signal} again; exiting now");
                    std::process::exit(128 + signal as i32);
                }
                Err(errno) => return Ended::Failed(format!("cannot wait for signals: {errno}")),
            }
        }
    })
    .map_err(|err| ServerError::setup("start the signal thread", err))?;
    Ok(())
}
