//! `FakeDocker`: a recording [`DockerApi`] for handler tests, built only
//! under `cfg(test)`. It keeps containers and images in memory and answers
//! every call from them the way dockerd 20.10 does, unless a test scripted
//! a failure for that call; every call is recorded as `name argument`.
//! Exec'd processes write what [`FakeDocker::set_exec_output`] scripted
//! and end at once, or never end ([`FakeDocker::hang_execs`]). Image
//! events are only those a test sends ([`FakeDocker::send_image_event`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{
    ApiVersion, ContainerCreate, ContainerInspect, ContainerSummary, CreateOutcome, Created,
    DockerApi, DockerError, Engine, Event, EventStream, ExecCreate, ExecInspect, Hijacked,
    HistoryItem, ImageInspect, ImageSummary, Info, PullProgress, PullStream, Removed, Resources,
    Stopped, Version,
};

/// The API version the fake speaks.
const API_VERSION: ApiVersion = ApiVersion::new(1, 41);
/// What dockerd writes for a time that has not happened.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// A scripted, recording dockerd.
#[derive(Debug, Default)]
pub struct FakeDocker {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    containers: BTreeMap<String, ContainerInspect>,
    /// By every name an image is known by: ID, tags, digests.
    images: BTreeMap<String, ImageInspect>,
    failures: HashMap<&'static str, VecDeque<DockerError>>,
    pull_progress: Vec<PullProgress>,
    create_warnings: Vec<String>,
    update_warnings: Vec<String>,
    execs: ExecScript,
    /// One sender per open image event stream.
    image_events: Vec<mpsc::Sender<Event>>,
    calls: Vec<String>,
    created: u32,
}

/// How every exec'd process behaves.
#[derive(Debug, Default)]
struct ExecScript {
    /// The multiplexed bytes it writes to its stream.
    output: Vec<u8>,
    exit_code: i32,
    /// The host PID of a process that never ends: dockerd reports it
    /// running and never closes its stream.
    hung_pid: Option<i32>,
    /// The dockerd ends of the streams of hung processes, held open.
    open_streams: Vec<UnixStream>,
}

impl FakeState {
    fn container(&mut self, id: &str) -> Result<&mut ContainerInspect, DockerError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| status(404, &format!("No such container: {id}")))
    }
}

/// dockerd's answer `status` with `message`.
pub fn status(status: u16, message: &str) -> DockerError {
    DockerError::Api {
        status,
        message: message.to_owned(),
    }
}

/// A call that found no dockerd on the socket.
pub fn refused() -> DockerError {
    DockerError::Io(io::Error::from(io::ErrorKind::ConnectionRefused))
}

impl FakeDocker {
    pub fn new() -> Arc<FakeDocker> {
        Arc::new(FakeDocker::default())
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call and fails it if a failure is scripted for it.
    fn enter(
        &self,
        call: &'static str,
        arg: &str,
    ) -> Result<MutexGuard<'_, FakeState>, DockerError> {
        let mut state = self.lock();
        state.calls.push(format!("{call} {arg}"));
        match state.failures.get_mut(call).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(state),
        }
    }

    /// The next call named `call` (a [`DockerApi`] method) fails with `err`.
    pub fn fail(&self, call: &'static str, err: DockerError) {
        self.lock().failures.entry(call).or_default().push_back(err);
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Calls so far named `call`, with their arguments.
    pub fn calls_of(&self, call: &str) -> Vec<String> {
        let prefix = format!("{call} ");
        self.calls()
            .into_iter()
            .filter(|made| made.starts_with(&prefix))
            .collect()
    }

    /// Adds an image under its ID and every tag and digest it has.
    pub fn add_image(&self, image: ImageInspect) {
        let mut state = self.lock();
        let names = image.repo_tags.iter().chain(&image.repo_digests);
        for name in names.chain([&image.id]) {
            state.images.insert(name.clone(), image.clone());
        }
    }

    /// Whether any name of image `id` is left.
    pub fn has_image(&self, id: &str) -> bool {
        self.lock().images.values().any(|image| image.id == id)
    }

    /// The pull answers with these messages.
    pub fn set_pull_progress(&self, messages: Vec<PullProgress>) {
        self.lock().pull_progress = messages;
    }

    /// Creates answer with these warnings.
    pub fn set_create_warnings(&self, warnings: Vec<String>) {
        self.lock().create_warnings = warnings;
    }

    /// Updates answer with these warnings.
    pub fn set_update_warnings(&self, warnings: Vec<String>) {
        self.lock().update_warnings = warnings;
    }

    /// Exec'd processes write `output` (multiplexed as dockerd sends it)
    /// and exit with `exit_code`. The output is written before the stream
    /// is handed over, so it must fit a socket buffer: tens of KiB.
    pub fn set_exec_output(&self, output: Vec<u8>, exit_code: i32) {
        let mut state = self.lock();
        state.execs.output = output;
        state.execs.exit_code = exit_code;
    }

    /// Exec'd processes never end: each is host process `pid`, which
    /// dockerd reports running, and its stream stays open.
    pub fn hang_execs(&self, pid: i32) {
        self.lock().execs.hung_pid = Some(pid);
    }

    /// Sends an image event with `action` down every open image event
    /// stream.
    pub fn send_image_event(&self, action: &str) {
        let event = Event {
            kind: "image".to_owned(),
            action: action.to_owned(),
            ..Event::default()
        };
        self.lock()
            .image_events
            .retain(|stream| stream.send(event.clone()).is_ok());
    }

    /// Ends every open image event stream, as a dockerd going away does.
    pub fn end_image_events(&self) {
        self.lock().image_events.clear();
    }

    /// A container as dockerd holds it now, without recording a call.
    pub fn container(&self, id: &str) -> Option<ContainerInspect> {
        self.lock().containers.get(id).cloned()
    }

    /// Every container ID, without recording a call.
    pub fn container_ids(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    /// Changes a container behind the handlers' back.
    pub fn edit_container(&self, id: &str, edit: impl FnOnce(&mut ContainerInspect)) {
        if let Some(container) = self.lock().containers.get_mut(id) {
            edit(container);
        }
    }
}

fn summary(container: &ContainerInspect) -> ContainerSummary {
    ContainerSummary {
        id: container.id.clone(),
        names: vec![container.name.clone()],
        image: container.config.image.clone(),
        image_id: container.image.clone(),
        labels: container.config.labels.clone(),
        state: container.state.status.clone(),
        ..ContainerSummary::default()
    }
}

impl DockerApi for FakeDocker {
    fn api_version(&self) -> Option<ApiVersion> {
        Some(API_VERSION)
    }

    fn ensure_negotiated(&self) -> Result<(), DockerError> {
        self.enter("ensure_negotiated", "").map(drop)
    }

    fn ping(&self, _timeout: Duration) -> Result<(), DockerError> {
        self.enter("ping", "").map(drop)
    }

    fn version(&self) -> Result<Version, DockerError> {
        drop(self.enter("version", "")?);
        Ok(Version {
            version: "20.10.24".to_owned(),
            api_version: API_VERSION.to_string(),
            ..Version::default()
        })
    }

    fn info(&self) -> Result<Info, DockerError> {
        self.enter("info", "").map(|_| Info::default())
    }

    fn engine(&self) -> Result<Arc<Engine>, DockerError> {
        drop(self.enter("engine", "")?);
        Ok(Arc::new(Engine::new(API_VERSION, &Info::default())))
    }

    fn create_container(
        &self,
        name: &str,
        body: &ContainerCreate,
    ) -> Result<CreateOutcome, DockerError> {
        let mut state = self.enter("create_container", name)?;
        let docker_name = format!("/{name}");
        if state.containers.values().any(|c| c.name == docker_name) {
            let message =
                format!("Conflict. The container name \"{docker_name}\" is already in use");
            return Ok(CreateOutcome::NameInUse(status(409, &message)));
        }
        state.created += 1;
        let id = format!("{:064x}", state.created);
        let mut container = ContainerInspect {
            id: id.clone(),
            name: docker_name,
            created: format!("2026-01-01T00:00:{:02}Z", state.created % 60),
            image: body.image.clone(),
            ..ContainerInspect::default()
        };
        container.state.status = "created".to_owned();
        container.state.started_at = NEVER.to_owned();
        container.state.finished_at = NEVER.to_owned();
        container.config.image = body.image.clone();
        container.config.labels = body.labels.clone();
        container.config.tty = body.tty;
        container.host_config.network_mode = body.host_config.network_mode.clone();
        state.containers.insert(id.clone(), container);
        Ok(CreateOutcome::Created(Created {
            id,
            warnings: state.create_warnings.clone(),
        }))
    }

    fn inspect_container(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
        let state = self.enter("inspect_container", id)?;
        let name = format!("/{id}");
        let found = state
            .containers
            .values()
            .find(|c| c.id == id || c.name == name);
        Ok(found.cloned())
    }

    fn inspect_container_json(&self, id: &str) -> Result<Option<serde_json::Value>, DockerError> {
        let state = self.enter("inspect_container_json", id)?;
        Ok(state
            .containers
            .get(id)
            .map(|c| serde_json::json!({ "Id": c.id, "Config": { "Image": c.config.image } })))
    }

    fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let mut state = self.enter("start_container", id)?;
        let container = state.container(id)?;
        container.state.status = "running".to_owned();
        container.state.running = true;
        container.state.pid = i64::from(std::process::id());
        container.state.started_at = "2026-01-01T00:01:00Z".to_owned();
        Ok(())
    }

    fn stop_container(
        &self,
        id: &str,
        _grace: Duration,
        _timeout: Option<Duration>,
    ) -> Result<Stopped, DockerError> {
        let mut state = self.enter("stop_container", id)?;
        let Ok(container) = state.container(id) else {
            return Ok(Stopped::NotFound);
        };
        if !container.state.running {
            return Ok(Stopped::NotRunning);
        }
        container.state.status = "exited".to_owned();
        container.state.running = false;
        container.state.pid = 0;
        container.state.exit_code = 137;
        container.state.finished_at = "2026-01-01T00:02:00Z".to_owned();
        Ok(Stopped::Stopped)
    }

    fn remove_container(&self, id: &str) -> Result<Removed, DockerError> {
        let mut state = self.enter("remove_container", id)?;
        Ok(match state.containers.remove(id) {
            Some(_) => Removed::Removed,
            None => Removed::AlreadyGone,
        })
    }

    fn update_container(
        &self,
        id: &str,
        _resources: &Resources,
    ) -> Result<Vec<String>, DockerError> {
        let mut state = self.enter("update_container", id)?;
        let warnings = state.update_warnings.clone();
        state.container(id).map(|_| warnings)
    }

    fn containers_of_image(&self, id: &str) -> Result<Vec<ContainerSummary>, DockerError> {
        let state = self.enter("containers_of_image", id)?;
        let users = state.containers.values().filter(|c| c.image == id);
        Ok(users.map(summary).collect())
    }

    fn container_sizes(&self) -> Result<Option<Vec<ContainerSummary>>, DockerError> {
        let state = self.enter("container_sizes", "")?;
        Ok(Some(state.containers.values().map(summary).collect()))
    }

    fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>, DockerError> {
        let state = self.enter("inspect_image", name)?;
        Ok(state.images.get(name).cloned())
    }

    fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        let state = self.enter("list_images", "")?;
        let mut images: Vec<ImageSummary> = Vec::new();
        for image in state.images.values() {
            if images.iter().all(|known| known.id != image.id) {
                images.push(ImageSummary {
                    id: image.id.clone(),
                    repo_tags: image.repo_tags.clone(),
                    repo_digests: image.repo_digests.clone(),
                    ..ImageSummary::default()
                });
            }
        }
        Ok(images)
    }

    fn image_history(&self, id: &str) -> Result<Option<Vec<HistoryItem>>, DockerError> {
        let state = self.enter("image_history", id)?;
        Ok(state.images.contains_key(id).then(Vec::new))
    }

    fn remove_image(&self, name: &str) -> Result<Removed, DockerError> {
        let mut state = self.enter("remove_image", name)?;
        let Some(image) = state.images.remove(name) else {
            return Ok(Removed::AlreadyGone);
        };
        // Untagging the last reference deletes the image, as in dockerd.
        let last = !state
            .images
            .iter()
            .any(|(other, i)| i.id == image.id && *other != i.id);
        if name == image.id || last {
            state.images.retain(|_, other| other.id != image.id);
        }
        Ok(Removed::Removed)
    }

    fn image_events(&self, _since: SystemTime, idle: Duration) -> Result<EventStream, DockerError> {
        let mut state = self.enter("image_events", "")?;
        let (sender, events) = mpsc::channel();
        state.image_events.push(sender);
        Ok(Box::new(std::iter::from_fn(move || {
            match events.recv_timeout(idle) {
                Ok(event) => Some(Ok(event)),
                Err(RecvTimeoutError::Timeout) => Some(Err(DockerError::Timeout {
                    what: "waiting for an event",
                    after: idle,
                })),
                Err(RecvTimeoutError::Disconnected) => None,
            }
        })))
    }

    fn pull_image(
        &self,
        from_image: &str,
        tag: &str,
        _registry_auth: Option<&str>,
        _head_timeout: Option<Duration>,
        _idle: Duration,
    ) -> Result<PullStream, DockerError> {
        let state = self.enter("pull_image", &format!("{from_image}:{tag}"))?;
        let messages = state.pull_progress.clone();
        Ok(Box::new(messages.into_iter().map(Ok)))
    }

    fn create_exec(
        &self,
        container: &str,
        _config: &ExecCreate,
        _timeout: Option<Duration>,
    ) -> Result<String, DockerError> {
        let mut state = self.enter("create_exec", container)?;
        if !state.container(container)?.state.running {
            let message = format!("Container {container} is not running");
            return Err(status(409, &message));
        }
        Ok(format!("exec-{container}"))
    }

    /// The process writes its scripted output, then ends its stream
    /// unless it hangs.
    fn start_exec(&self, exec_id: &str, _tty: bool) -> Result<Hijacked, DockerError> {
        let mut state = self.enter("start_exec", exec_id)?;
        let (ours, mut theirs) = UnixStream::pair().map_err(DockerError::Io)?;
        theirs
            .write_all(&state.execs.output)
            .map_err(DockerError::Io)?;
        if state.execs.hung_pid.is_some() {
            state.execs.open_streams.push(theirs);
        }
        Ok(Hijacked::new(ours, Vec::new()))
    }

    fn inspect_exec(
        &self,
        exec_id: &str,
        _timeout: Option<Duration>,
    ) -> Result<ExecInspect, DockerError> {
        let state = self.enter("inspect_exec", exec_id)?;
        let container_id = exec_id.strip_prefix("exec-").unwrap_or(exec_id).to_owned();
        Ok(match state.execs.hung_pid {
            Some(pid) => ExecInspect {
                running: true,
                pid,
                container_id,
                ..ExecInspect::default()
            },
            None => ExecInspect {
                running: false,
                exit_code: Some(state.execs.exit_code),
                container_id,
                ..ExecInspect::default()
            },
        })
    }

    fn resize_exec(&self, exec_id: &str, _height: u16, _width: u16) -> Result<(), DockerError> {
        drop(self.enter("resize_exec", exec_id)?);
        Ok(())
    }

    /// The container writes nothing.
    fn attach_container(
        &self,
        container: &str,
        _stdin: bool,
        _stdout: bool,
        _stderr: bool,
    ) -> Result<Hijacked, DockerError> {
        drop(self.enter("attach_container", container)?);
        let (ours, _theirs) = UnixStream::pair().map_err(DockerError::Io)?;
        Ok(Hijacked::new(ours, Vec::new()))
    }

    fn resize_container(
        &self,
        container: &str,
        _height: u16,
        _width: u16,
    ) -> Result<(), DockerError> {
        drop(self.enter("resize_container", container)?);
        Ok(())
    }
}
