//! The image list (`GET /images/json`) that ListImages, StreamImages and
//! the ImageFsInfo measurement read, kept between uses while dockerd's
//! image events say nothing changed.
//!
//! One thread (`image-events`) follows `/events` filtered to image events,
//! started by the first use. A kept list is trusted only while that stream
//! is up and nothing happened since the listing that made it *started*:
//! every image event, every loss or return of the stream and every change
//! dockshim makes itself ([`ImageListing::invalidate`], right after a pull
//! or removal) counts as a change, and a listing that raced a change is
//! used once but not kept. With the stream down every use lists, so
//! answers are never staler than dockerd's event stream. A kept list is
//! also dropped after [`MAX_AGE`], for changes dockerd announces with no
//! image event (Docker 20.10 commits a container to an untagged image with
//! a container event only).
//!
//! This module owns the kept list and the thread; it must not interpret
//! the images or the events.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::docker::{DockerApi, DockerError, ImageSummary};
use crate::index::IndexConfig;
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// Without the thread no list is trusted (see [`Unfollowed`]), so its
/// death costs Docker calls, not correctness.
const DUTY: Duty = Duty {
    name: "image-events",
    on_death: OnDeath::Report,
    loss: "every image listing asks dockerd again",
};

/// How long a kept list is trusted at most, events or not: the state
/// index's reconcile period, for the same reason.
const MAX_AGE: Duration = crate::index::RECONCILE_PERIOD;

/// dockerd's image list, kept while nothing changed.
#[derive(Debug)]
pub struct ImageListing {
    docker: Arc<dyn DockerApi>,
    kept: Arc<Kept>,
    /// Whether the thread has been started: threads must be started from
    /// threads that block the signals `main` leaves to its signal thread,
    /// which the CRI workers and `image-fs-usage` do.
    follower_started: Mutex<bool>,
}

/// What the thread and the users share.
#[derive(Debug, Default)]
struct Kept {
    state: Mutex<KeptState>,
}

#[derive(Debug, Default)]
struct KeptState {
    /// Changes seen so far; a listing is kept only if none happened while
    /// it ran.
    changes: u64,
    /// Whether the image event stream is up.
    followed: bool,
    /// The kept list and when the listing that made it started. Every
    /// change empties it.
    list: Option<(Instant, Arc<Vec<ImageSummary>>)>,
}

impl Kept {
    /// The state holds plain values replaced whole, so a panic elsewhere
    /// cannot leave it half-written.
    fn state(&self) -> MutexGuard<'_, KeptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept list if it is still trusted; otherwise the change count a
    /// new listing starts at, and when it starts.
    fn lookup(&self) -> Result<Arc<Vec<ImageSummary>>, (u64, Instant)> {
        let state = self.state();
        match &state.list {
            Some((started, list)) if started.elapsed() < MAX_AGE => Ok(Arc::clone(list)),
            _ => Err((state.changes, Instant::now())),
        }
    }

    /// Keeps `list` if the stream is up and nothing changed since the
    /// listing started at `changes`.
    fn keep(&self, (changes, started): (u64, Instant), list: &Arc<Vec<ImageSummary>>) {
        let mut state = self.state();
        if state.followed && state.changes == changes {
            state.list = Some((started, Arc::clone(list)));
        }
    }

    fn changed(&self) {
        let mut state = self.state();
        state.changes += 1;
        state.list = None;
    }

    fn set_followed(&self, followed: bool) {
        let mut state = self.state();
        state.changes += 1;
        state.list = None;
        state.followed = followed;
    }
}

impl ImageListing {
    pub fn new(docker: Arc<dyn DockerApi>) -> ImageListing {
        ImageListing {
            docker,
            kept: Arc::default(),
            follower_started: Mutex::new(false),
        }
    }

    /// dockerd's images: the kept list while it is trusted, else a new
    /// listing. The first use starts the thread.
    pub fn list(&self) -> Result<Arc<Vec<ImageSummary>>, DockerError> {
        self.ensure_following();
        let started = match self.kept.lookup() {
            Ok(list) => return Ok(list),
            Err(started) => started,
        };
        let list = Arc::new(self.docker.list_images()?);
        self.kept.keep(started, &list);
        Ok(list)
    }

    /// Drops the kept list after dockshim changed the images, so the next
    /// use sees the change without waiting for its event.
    pub fn invalidate(&self) {
        self.kept.changed();
    }

    fn ensure_following(&self) {
        let mut started = self
            .follower_started
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *started {
            return;
        }
        let docker = Arc::clone(&self.docker);
        let kept = Arc::downgrade(&self.kept);
        match supervisor::spawn(DUTY, move || follow(docker.as_ref(), &kept)) {
            Ok(()) => *started = true,
            // Nothing is kept without the thread; the next use tries again.
            Err(err) => log::warn!("cannot start the image event thread: {err}"),
        }
    }

    /// Waits up to `timeout` for the image event stream to be up.
    #[cfg(test)]
    pub fn wait_followed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.kept.state().followed {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Marks the stream down when the thread stops following it, also by a
/// panic, so that no list is trusted without it.
struct Unfollowed<'a>(&'a Weak<Kept>);

impl Drop for Unfollowed<'_> {
    fn drop(&mut self) {
        if let Some(kept) = self.0.upgrade() {
            kept.set_followed(false);
        }
    }
}

/// The thread's body: subscribe, then count every event as a change; on a
/// lost stream, back off and subscribe again. It holds the kept list only
/// weakly and ends within an idle tick once its [`ImageListing`] is gone.
fn follow(docker: &dyn DockerApi, kept: &Weak<Kept>) -> Ended {
    // The state index's timing: the same dockerd, the same stream.
    let timing = IndexConfig::default();
    let mut delay = None;
    loop {
        if let Some(delay) = delay {
            thread::sleep(delay);
        }
        if kept.strong_count() == 0 {
            return Ended::Released;
        }
        // From before the request: dockerd may answer before it has
        // subscribed, and replays what happened since.
        let events = match docker.image_events(SystemTime::now(), timing.idle_tick) {
            Ok(events) => events,
            Err(err) => {
                log::debug!("image events: cannot follow dockerd's stream: {err}");
                delay = Some(timing.next_backoff(delay));
                continue;
            }
        };
        let Some(strong) = kept.upgrade() else {
            return Ended::Released;
        };
        strong.set_followed(true);
        drop(strong);
        let _unfollowed = Unfollowed(kept);
        let mut why = "dockerd closed it".to_owned();
        for event in events {
            let Some(strong) = kept.upgrade() else {
                return Ended::Released;
            };
            match event {
                Ok(_) => strong.changed(),
                Err(err) if matches!(err.root(), DockerError::Timeout { .. }) => {}
                Err(err) => {
                    why = err.to_string();
                    break;
                }
            }
        }
        log::warn!("image events: lost dockerd's stream ({why}); listing on every use");
        delay = Some(timing.backoff_initial);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cri::testing;
    use crate::docker::fake::{refused, FakeDocker};

    const WAIT: Duration = Duration::from_secs(10);

    fn listing(docker: &Arc<FakeDocker>) -> ImageListing {
        ImageListing::new(Arc::clone(docker) as Arc<dyn DockerApi>)
    }

    /// A listing whose stream is up and which keeps a list.
    fn warm(docker: &Arc<FakeDocker>) -> ImageListing {
        let listing = listing(docker);
        listing.list().unwrap();
        assert!(listing.wait_followed(WAIT));
        listing.list().unwrap();
        listing
    }

    fn listings(docker: &FakeDocker) -> usize {
        docker.calls_of("list_images").len()
    }

    /// Whether a use lists again within the wait.
    fn lists_again(listing: &ImageListing, docker: &FakeDocker) -> bool {
        let before = listings(docker);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            listing.list().unwrap();
            if listings(docker) > before {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_warm_listing_makes_no_docker_call() {
        let docker = testing::docker();
        let listing = warm(&docker);
        let calls = docker.calls().len();
        let list = listing.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(docker.calls().len(), calls);
    }

    #[test]
    fn an_image_event_makes_the_next_use_list_again() {
        let docker = testing::docker();
        let listing = warm(&docker);
        docker.send_image_event("tag");
        assert!(lists_again(&listing, &docker));
        let calls = listings(&docker);
        listing.list().unwrap();
        assert_eq!(listings(&docker), calls, "kept again after the event");
    }

    #[test]
    fn a_listing_that_raced_a_change_is_not_kept() {
        let kept = Kept::default();
        kept.set_followed(true);
        let started = kept.lookup().unwrap_err();
        kept.changed();
        kept.keep(started, &Arc::new(Vec::new()));
        assert!(kept.lookup().is_err());
        let started = kept.lookup().unwrap_err();
        kept.keep(started, &Arc::new(Vec::new()));
        assert!(kept.lookup().is_ok());
    }

    #[test]
    fn a_list_older_than_the_max_age_is_not_trusted() {
        let kept = Kept::default();
        kept.set_followed(true);
        let (changes, _) = kept.lookup().unwrap_err();
        let Some(long_ago) = Instant::now().checked_sub(MAX_AGE) else {
            return;
        };
        kept.keep((changes, long_ago), &Arc::new(Vec::new()));
        assert!(kept.lookup().is_err());
    }

    #[test]
    fn without_the_stream_every_use_lists() {
        let docker = testing::docker();
        for _ in 0..20 {
            docker.fail("image_events", refused());
        }
        let listing = listing(&docker);
        for _ in 0..3 {
            listing.list().unwrap();
        }
        assert_eq!(listings(&docker), 3);
    }

    #[test]
    fn a_lost_stream_makes_every_use_list_until_it_is_back() {
        let docker = testing::docker();
        let listing = warm(&docker);
        docker.fail("image_events", refused());
        docker.end_image_events();
        assert!(lists_again(&listing, &docker));
        assert!(listing.wait_followed(WAIT));
        listing.list().unwrap();
        let calls = listings(&docker);
        listing.list().unwrap();
        assert_eq!(listings(&docker), calls);
    }

    #[test]
    fn invalidating_makes_the_next_use_list_again() {
        let docker = testing::docker();
        let listing = warm(&docker);
        let calls = listings(&docker);
        listing.invalidate();
        listing.list().unwrap();
        assert_eq!(listings(&docker), calls + 1);
    }
}
