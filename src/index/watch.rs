//! The `docker-events` thread, which [`Index::start_with`] starts with the
//! index: subscribe, fill, follow, and on any loss of the stream go cold,
//! back off, and start over.
//!
//! It holds the index only weakly while it waits on the stream, so the
//! index can be dropped; the thread notices within an idle tick (or a
//! backoff delay) and ends. It must not hold a lock while it waits.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::SystemTime;

use log::{debug, info, warn};

use super::source::{EventFeed, IndexSource, Polled};
use super::{Caller, Index, IndexConfig, IndexError};
use crate::docker::DockerClient;
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// The event thread: without it every answer would come from a frozen
/// index, so its death stops dockshim (see `crate::supervisor`). It ends
/// by itself only when the index is dropped.
const EVENTS_THREAD: Duty = Duty {
    name: "docker-events",
    on_death: OnDeath::Exit,
    loss: "the state index no longer follows dockerd",
};

impl Index {
    /// Starts the index on dockerd with the default timing.
    pub fn start(docker: DockerClient) -> Result<Arc<Index>, IndexError> {
        Index::start_with(Box::new(docker), IndexConfig::default())
    }

    /// Starts the index on any source, and its `docker-events` thread.
    /// Returns at once; the index fills in the background (see
    /// [`Index::wait_warm`]), and queries made before that catch up
    /// themselves.
    pub fn start_with(
        source: Box<dyn IndexSource>,
        config: IndexConfig,
    ) -> Result<Arc<Index>, IndexError> {
        let index = Index::new(source, config);
        let weak: Weak<Index> = Arc::downgrade(&index);
        supervisor::spawn(EVENTS_THREAD, move || {
            run(&weak);
            Ended::Released
        })
        .map_err(IndexError::Spawn)?;
        Ok(index)
    }
}

/// Why following the stream stopped.
enum Stop {
    /// The index is gone; the thread ends.
    Dropped,
    /// The stream broke or the index fell behind it; reconnect.
    Lost(String),
}

fn run(index: &Weak<Index>) {
    let mut delay = None;
    let mut connected_before = false;
    let mut failing = false;
    loop {
        if let Some(delay) = delay {
            thread::sleep(delay);
        }
        let Some(strong) = index.upgrade() else {
            return;
        };
        let feed = match connect(&strong, connected_before) {
            Ok(feed) => feed,
            Err(err) => {
                // Once per outage at warning level; every retry at debug.
                if failing {
                    debug!("state index: cannot follow dockerd's events: {err}");
                } else {
                    warn!("state index: cannot follow dockerd's events: {err}; retrying");
                }
                failing = true;
                delay = Some(strong.config.next_backoff(delay));
                continue;
            }
        };
        connected_before = true;
        failing = false;
        drop(strong);
        match follow(index, feed) {
            Stop::Dropped => return,
            Stop::Lost(why) => {
                let Some(strong) = index.upgrade() else {
                    return;
                };
                strong.set_warm(false);
                warn!("state index: lost dockerd's event stream ({why}); the index is cold");
                delay = Some(strong.config.backoff_initial);
            }
        }
    }
}

/// Subscribes first, then reconciles, so nothing that happens in between
/// is missed: such events are replayed and re-inspected, which changes
/// nothing if the reconcile already saw their effect. The index is warm
/// once this succeeds. A reconnection is counted before the reconcile
/// makes the index warm, so whoever sees it warm again sees the count.
fn connect(index: &Index, reconnecting: bool) -> Result<Box<dyn EventFeed>, IndexError> {
    let since = SystemTime::now();
    let tick = index.config.idle_tick;
    let feed = index.call(|source| source.follow_events(since, tick))?;
    if reconnecting {
        index.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        info!("state index: following dockerd's events again");
    }
    index.reconcile(Caller::Subscribed)?;
    Ok(feed)
}

fn follow(index: &Weak<Index>, mut feed: Box<dyn EventFeed>) -> Stop {
    loop {
        let polled = feed.next_event();
        let Some(index) = index.upgrade() else {
            return Stop::Dropped;
        };
        match polled {
            Ok(Polled::Event(event)) => {
                if let Err(err) = index.on_event(&event) {
                    return Stop::Lost(format!("re-reading container {}: {err}", event.actor.id));
                }
            }
            Ok(Polled::Idle) => {}
            Ok(Polled::Ended) => return Stop::Lost("dockerd closed it".to_owned()),
            Err(err) => return Stop::Lost(err.to_string()),
        }
        if index.reconcile_due() {
            if let Err(err) = index.reconcile(Caller::Periodic) {
                return Stop::Lost(format!("periodic reconcile: {err}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_100_ms_and_doubles_up_to_5_s() {
        let config = IndexConfig::default();
        let mut delay = None;
        let delays: Vec<u128> = (0..8)
            .map(|_| {
                delay = Some(config.next_backoff(delay));
                delay.map_or(0, |d| d.as_millis())
            })
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
