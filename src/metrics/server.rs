//! The HTTP/1.1 listener that answers `GET /metrics` with the registry's
//! Prometheus text: an accept thread named `metrics` and one short-lived
//! thread per scrape, at most [`MAX_SCRAPES_IN_FLIGHT`] at a time. It owns
//! the socket and the answer's framing only; it never records figures.

use std::fmt;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Gauges, Metrics};
use crate::codec::{http_head, HttpError};
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// Scrapes served at once; more are answered 503 by the accept thread.
const MAX_SCRAPES_IN_FLIGHT: usize = 4;

/// The accept thread serves for the life of the process; without it the
/// endpoint stops answering, which Status reports (see `crate::supervisor`).
const ACCEPT_DUTY: Duty = Duty {
    name: "metrics",
    on_death: OnDeath::Report,
    loss: "the metrics endpoint no longer answers",
};

/// How long a scraper may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long writing the answer may block on a scraper that stops reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const METRICS_PATH: &str = "/metrics";

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the endpoint could not start.
#[derive(Debug)]
pub enum MetricsError {
    /// The address could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// The accept thread could not be started.
    Spawn(io::Error),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            MetricsError::Spawn(_) => write!(f, "cannot start the metrics thread"),
        }
    }
}

impl std::error::Error for MetricsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetricsError::Bind { source, .. } | MetricsError::Spawn(source) => Some(source),
        }
    }
}

/// What a scrape reads: the registry, and the gauges read from the layers
/// above it at scrape time.
struct Source {
    metrics: &'static Metrics,
    gauges: Box<dyn Fn() -> Gauges + Send + Sync>,
    scrapes: AtomicUsize,
}

/// Binds `addr` and serves scrapes of `metrics` and `gauges` until the
/// process exits. Returns the bound address, with the port it was given.
pub fn start(
    addr: SocketAddr,
    metrics: &'static Metrics,
    gauges: Box<dyn Fn() -> Gauges + Send + Sync>,
) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    if !local_addr.ip().is_loopback() {
        log::warn!("metrics endpoint on {local_addr} is reachable from other hosts");
    }
    let source = Arc::new(Source {
        metrics,
        gauges,
        scrapes: AtomicUsize::new(0),
    });
    supervisor::spawn(ACCEPT_DUTY, move || {
        accept_loop(&listener, &source);
        Ended::Failed("it stopped accepting scrapes".to_owned())
    })
    .map_err(MetricsError::Spawn)?;
    Ok(local_addr)
}

fn accept_loop(listener: &TcpListener, source: &Arc<Source>) {
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(err) => {
                log::debug!("metrics: accept failed: {err}");
                continue;
            }
        };
        if source.scrapes.fetch_add(1, Ordering::AcqRel) >= MAX_SCRAPES_IN_FLIGHT {
            source.scrapes.fetch_sub(1, Ordering::AcqRel);
            let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = http_head::write_error(&mut conn, 503, "too many scrapes in flight", &[]);
            continue;
        }
        let scraping = Arc::clone(source);
        let spawned = supervisor::spawn_named(
            "metrics-scrape".to_owned(),
            Box::new(move || {
                if let Err(err) = serve(&mut conn, &scraping) {
                    log::debug!("metrics: scrape failed: {err}");
                }
                scraping.scrapes.fetch_sub(1, Ordering::AcqRel);
            }),
        );
        if let Err(err) = spawned {
            source.scrapes.fetch_sub(1, Ordering::AcqRel);
            log::warn!("metrics: cannot start a scrape thread: {err}");
        }
    }
}

fn serve(conn: &mut TcpStream, source: &Source) -> io::Result<()> {
    conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = match http_head::read_request(conn, REQUEST_TIMEOUT) {
        Ok((head, _)) => head,
        Err(HttpError::Closed) => return Ok(()),
        Err(err) => {
            if let Some(response) = err.response() {
                conn.write_all(&response)?;
            }
            return Err(io::Error::other(err));
        }
    };
    if head.path != METRICS_PATH {
        return http_head::write_error(conn, 404, "only /metrics is served", &[]);
    }
    if head.method != "GET" {
        return http_head::write_error(conn, 405, "only GET is allowed", &[("Allow", "GET")]);
    }
    let body = source.metrics.render((source.gauges)());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}
