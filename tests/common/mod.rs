//! Support shared by the end-to-end tests: a fixture that runs the real
//! `dockshim` binary, an independent gRPC client (tonic) and a raw HTTP/2
//! client (h2) over its unix socket, a proxy in front of dockerd that can slow
//! down or cut off the Docker API, and direct queries to dockerd.
//!
//! Nothing here uses dockshim's own gRPC, HTTP/2 or Docker code: the binary is
//! checked from the outside, through independent implementations. Only the
//! generated CRI message types are shared, because they are the wire contract.

// Every test crate compiles this whole module but uses only part of it.
#![allow(dead_code)]

pub mod client;
pub mod docker;
pub mod fixture;
pub mod h2raw;
pub mod proxy;

use std::future::Future;
use std::time::{Duration, Instant};

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
