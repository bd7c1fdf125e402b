//! Test doubles for the index: entries built by hand, and a scripted
//! dockerd whose containers, event stream and failures a test controls.

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::entry::{Entry, Kind, Resources, State};
use super::source::{EventFeed, IndexSource, Polled};
use crate::docker::{Actor, ContainerInspect, DockerError, Event};

/// A container entry with only the fields the tests look at filled.
pub(super) fn entry(id: &str, state: State) -> Entry {
    Entry {
        id: id.to_owned(),
        name: format!("k8s_{id}"),
        kind: Kind::Container,
        labels: BTreeMap::new(),
        created_ns: 0,
        started_ns: 0,
        finished_ns: 0,
        state,
        exit_code: 0,
        oom_killed: false,
        error: String::new(),
        pid: 0,
        image: String::new(),
        image_id: String::new(),
        sandbox_id: String::new(),
        log_path: String::new(),
        network_mode: String::new(),
        ipc_mode: String::new(),
        pid_mode: String::new(),
        ip: String::new(),
        ipv6: String::new(),
        mounts: Vec::new(),
        resources: Resources::default(),
        hostname: String::new(),
        tty: false,
        stdin: false,
        stdin_once: false,
        cgroup_parent: String::new(),
        upper_dir: String::new(),
        layer_driver: String::new(),
        runtime: String::new(),
    }
}

/// A sandbox entry (its own sandbox).
pub(super) fn sandbox(id: &str, state: State) -> Entry {
    Entry {
        kind: Kind::Sandbox,
        sandbox_id: id.to_owned(),
        ..entry(id, state)
    }
}

/// A scripted dockerd. Clones share the same containers and streams.
#[derive(Debug, Clone, Default)]
pub(super) struct FakeDocker {
    inner: Arc<Mutex<Fake>>,
}

#[derive(Debug, Default)]
struct Fake {
    containers: BTreeMap<String, ContainerInspect>,
    feeds: Vec<Sender<Event>>,
    /// Every call fails as if the socket refused connections.
    down: bool,
    /// Event subscriptions fail; lists and inspects work.
    no_events: bool,
    /// How long each inspect takes.
    inspect_delay: Duration,
    /// Seconds of the next timestamp handed out.
    clock: u32,
    /// One more clone per live event feed.
    feed_token: Arc<()>,
}

impl Fake {
    fn timestamp(&mut self) -> String {
        self.clock += 1;
        format!(
            "2026-01-01T{:02}:{:02}:{:02}.5Z",
            self.clock / 3600,
            self.clock / 60 % 60,
            self.clock % 60
        )
    }

    fn container(&mut self, id: &str) -> &mut ContainerInspect {
        self.containers.entry(id.to_owned()).or_default()
    }
}

fn refused() -> DockerError {
    DockerError::Io(io::Error::from(io::ErrorKind::ConnectionRefused))
}

impl FakeDocker {
    fn lock(&self) -> MutexGuard<'_, Fake> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a container of `kind` (`container`, `podsandbox`, or `None`
    /// for one without the type label) without telling anyone.
    pub(super) fn create_quietly(&self, id: &str, kind: Option<&str>, sandbox_id: &str) {
        let mut fake = self.lock();
        let created = fake.timestamp();
        let container = fake.container(id);
        container.id = id.to_owned();
        container.name = format!("/k8s_{id}");
        container.created = created;
        container.state.status = "created".to_owned();
        container.state.started_at = "0001-01-01T00:00:00Z".to_owned();
        container.state.finished_at = "0001-01-01T00:00:00Z".to_owned();
        if let Some(kind) = kind {
            container
                .config
                .labels
                .insert("io.kubernetes.docker.type".to_owned(), kind.to_owned());
        }
        if !sandbox_id.is_empty() {
            container
                .config
                .labels
                .insert("io.kubernetes.sandbox.id".to_owned(), sandbox_id.to_owned());
        }
    }

    pub(super) fn start_quietly(&self, id: &str) {
        let mut fake = self.lock();
        let started = fake.timestamp();
        let state = &mut fake.container(id).state;
        state.status = "running".to_owned();
        state.running = true;
        state.pid = 4242;
        state.started_at = started;
    }

    pub(super) fn exit_quietly(&self, id: &str, exit_code: i64) {
        let mut fake = self.lock();
        let finished = fake.timestamp();
        let state = &mut fake.container(id).state;
        state.status = "exited".to_owned();
        state.running = false;
        state.pid = 0;
        state.exit_code = exit_code;
        state.finished_at = finished;
    }

    pub(super) fn remove_quietly(&self, id: &str) {
        self.lock().containers.remove(id);
    }

    /// Sends a container event to every live stream.
    pub(super) fn emit(&self, id: &str, action: &str) {
        let event = Event {
            kind: "container".to_owned(),
            action: action.to_owned(),
            actor: Actor {
                id: id.to_owned(),
                attributes: Default::default(),
            },
            time: 1,
            time_nano: 1_000_000_000,
        };
        self.lock()
            .feeds
            .retain(|feed| feed.send(event.clone()).is_ok());
    }

    pub(super) fn create(&self, id: &str, kind: &str, sandbox_id: &str) {
        self.create_quietly(id, Some(kind), sandbox_id);
        self.emit(id, "create");
    }

    pub(super) fn start(&self, id: &str) {
        self.start_quietly(id);
        self.emit(id, "start");
    }

    pub(super) fn kill(&self, id: &str) {
        self.exit_quietly(id, 137);
        self.emit(id, "kill");
        self.emit(id, "die");
    }

    pub(super) fn remove(&self, id: &str) {
        self.remove_quietly(id);
        self.emit(id, "destroy");
    }

    /// Ends every event stream, as a restarting dockerd would.
    pub(super) fn cut_streams(&self) {
        self.lock().feeds.clear();
    }

    pub(super) fn set_down(&self, down: bool) {
        let mut fake = self.lock();
        fake.down = down;
        if down {
            fake.feeds.clear();
        }
    }

    pub(super) fn set_inspect_delay(&self, delay: Duration) {
        self.lock().inspect_delay = delay;
    }

    pub(super) fn set_no_events(&self, no_events: bool) {
        self.lock().no_events = no_events;
    }

    /// Event feeds the index still holds.
    pub(super) fn live_feeds(&self) -> usize {
        Arc::strong_count(&self.lock().feed_token) - 1
    }
}

impl IndexSource for FakeDocker {
    fn list(&self) -> Result<Vec<String>, DockerError> {
        let fake = self.lock();
        if fake.down {
            return Err(refused());
        }
        Ok(fake.containers.keys().cloned().collect())
    }

    fn inspect(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
        let delay = self.lock().inspect_delay;
        std::thread::sleep(delay);
        let fake = self.lock();
        if fake.down {
            return Err(refused());
        }
        Ok(fake.containers.get(id).cloned())
    }

    fn follow_events(
        &self,
        _since: SystemTime,
        idle: Duration,
    ) -> Result<Box<dyn EventFeed>, DockerError> {
        let mut fake = self.lock();
        if fake.down || fake.no_events {
            return Err(refused());
        }
        let (sender, events) = mpsc::channel();
        fake.feeds.push(sender);
        Ok(Box::new(FakeFeed {
            events,
            idle,
            _token: Arc::clone(&fake.feed_token),
        }))
    }
}

struct FakeFeed {
    events: Receiver<Event>,
    idle: Duration,
    _token: Arc<()>,
}

impl EventFeed for FakeFeed {
    fn next_event(&mut self) -> Result<Polled, DockerError> {
        match self.events.recv_timeout(self.idle) {
            Ok(event) => Ok(Polled::Event(event)),
            Err(RecvTimeoutError::Timeout) => Ok(Polled::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Polled::Ended),
        }
    }
}
