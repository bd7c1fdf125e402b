//! `LogManager`: follows every running container's output on one I/O
//! thread and appends it, as CRI log lines, to each container's log file.
//!
//! Callers (CRI handlers on worker threads) open dockerd's logs stream and
//! the file themselves, so failures reach them at once; they then hand both
//! to the thread named [`LOG_THREAD_NAME`], which polls every stream's
//! non-blocking socket with one `mio::Poll` and writes what arrives. There
//! is no thread per container. Stop and reopen are commands to that thread,
//! answered over a channel, so that once they return the old file gets no
//! more writes. Each file is locked while followed (see [`super::path`]):
//! a container whose file another writer holds counts as followed.
//!
//! dockerd may end a follow before it sent the container's last output:
//! a line the container left without a newline is only logged once the
//! process is gone, and races the end of the stream. So when a stream
//! ends, the thread named [`CATCH_UP_THREAD_NAME`] opens one more, from
//! where the file left off (see [`super::resume`]); for a stopped
//! container it holds just what was missed and ends at once. That
//! second stream's end is final. The catch-up thread makes the blocking
//! Docker call, so the I/O thread never waits for dockerd.
//!
//! The thread starts with the first follow, never in [`LogManager::start`]:
//! threads inherit the creating thread's signal mask, and the process
//! blocks its shutdown signals (for the signal thread's `sigwait`) before
//! any CRI call runs, so a thread started later inherits the blocked mask.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::format::{CriEncoder, ResumePoint};
use super::path::{open_log_file, remove_log_file, LogFile};
use super::resume::find_resume_point;
use super::LogError;
use crate::docker::{DockerClient, LogRead, LogStream, LogsSince};
use crate::mailbox::{self, Receiver, Sender};
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// The I/O thread's name, as `/proc/self/task/*/comm` shows it.
pub const LOG_THREAD_NAME: &str = "log-writer";

/// The name of the thread that reopens ended streams once (see the module
/// notes); it starts with the first stream that ends.
pub const CATCH_UP_THREAD_NAME: &str = "log-catch-up";

/// The I/O thread: without it no container's output reaches its file, so
/// its death stops dockshim (see `crate::supervisor`).
const WRITER_DUTY: Duty = Duty {
    name: LOG_THREAD_NAME,
    on_death: OnDeath::Exit,
    loss: "container logs are no longer written",
};

/// The catch-up thread: a follower it holds when it dies stays counted as
/// followed, and its log is never written again, so its death stops
/// dockshim too.
const CATCH_UP_DUTY: Duty = Duty {
    name: CATCH_UP_THREAD_NAME,
    on_death: OnDeath::Exit,
    loss: "container logs whose first stream ended are no longer written",
};

/// How long a caller waits for the I/O thread to carry out a stop or a
/// reopen; it only waits behind file writes of other containers.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket reads for one container before the others get their turn.
const READS_PER_TURN: usize = 64;

/// Readiness events handled per poll.
const EVENTS_CAPACITY: usize = 256;

const WAKER_TOKEN: Token = Token(0);

/// What the I/O thread is asked to do.
enum Command {
    /// Boxed: a follower's buffers dwarf the other commands.
    Follow(Box<Follower>),
    Stop {
        id: String,
        done: Sender<()>,
    },
    Reopen {
        id: String,
        file: LogFile,
        done: Sender<bool>,
    },
}

/// One container whose output is followed.
#[derive(Debug, Clone)]
struct Followed {
    path: PathBuf,
    generation: u64,
}

#[derive(Debug)]
struct IoThread {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

#[derive(Debug, Default)]
struct State {
    io: Option<IoThread>,
    /// Every followed container; the I/O thread drops an entry when its
    /// stream ends.
    followed: HashMap<String, Followed>,
    next_generation: u64,
}

/// Writes CRI log files for running containers. Shared by every handler.
#[derive(Debug)]
pub struct LogManager {
    docker: DockerClient,
    state: Arc<Mutex<State>>,
}

impl LogManager {
    /// A manager that follows containers through `docker`. Starts no thread
    /// (see the module notes).
    pub fn start(docker: DockerClient) -> Arc<LogManager> {
        Arc::new(LogManager {
            docker,
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// Starts appending container `id`'s output, from its first line, to
    /// `log_path` (created with mode 0640 if missing). `log_path` must come
    /// from [`super::validate_log_path`]. Following ends by itself when
    /// the container stops.
    pub fn follow(&self, id: &str, log_path: &Path, tty: bool) -> Result<(), LogError> {
        let file = self.claim(id, log_path)?;
        self.start_following(id, log_path, file, tty, None)
    }

    /// Opens and locks `log_path` for container `id` before the container
    /// is started, so that a file that cannot be written is found while
    /// nothing runs yet. `None` when the output is followed already (a
    /// repeated StartContainer). Hand the file to
    /// [`LogManager::follow_prepared`] once the container runs.
    pub fn prepare(&self, id: &str, log_path: &Path) -> Result<Option<LogFile>, LogError> {
        match self.claim(id, log_path) {
            Ok(file) => Ok(Some(file)),
            Err(LogError::AlreadyFollowed(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// As [`LogManager::follow`], into the file [`LogManager::prepare`]
    /// opened.
    pub fn follow_prepared(
        &self,
        id: &str,
        log_path: &Path,
        file: LogFile,
        tty: bool,
    ) -> Result<(), LogError> {
        self.start_following(id, log_path, file, tty, None)
    }

    /// Follows a container again after a dockshim restart: output already
    /// in `log_path` is not written twice, and output written while nobody
    /// followed is not lost (see [`super::resume`]).
    pub fn resume(&self, id: &str, log_path: &Path, tty: bool) -> Result<(), LogError> {
        // Locked first: only the file's writer may read where it left off
        // and cut a torn last line.
        let file = self.claim(id, log_path)?;
        let point = find_resume_point(log_path)?;
        self.start_following(id, log_path, file, tty, point)
    }

    /// Stops following `id`, leaving its file as it is. Stopping a
    /// container that is not followed is not an error.
    pub fn stop(&self, id: &str) -> Result<(), LogError> {
        let io = {
            let mut state = self.lock();
            if state.followed.remove(id).is_none() {
                return Ok(());
            }
            state
                .io
                .as_ref()
                .map(|io| (io.commands.clone(), Arc::clone(&io.waker)))
        };
        let Some((commands, waker)) = io else {
            return Ok(());
        };
        let (done, wait) = mailbox::channel();
        send(
            &commands,
            &waker,
            Command::Stop {
                id: id.to_owned(),
                done,
            },
        )?;
        await_reply(&wait)
    }

    /// Closes `id`'s log file and opens its path again, so new lines go to a
    /// new file after the kubelet renamed the old one. An error if the
    /// container's output is not being followed (it is not running).
    pub fn reopen(&self, id: &str) -> Result<(), LogError> {
        let (path, commands, waker) = {
            let state = self.lock();
            let followed = state
                .followed
                .get(id)
                .ok_or_else(|| LogError::NotFollowed(id.to_owned()))?;
            let io = state
                .io
                .as_ref()
                .ok_or_else(|| LogError::NotFollowed(id.to_owned()))?;
            (
                followed.path.clone(),
                io.commands.clone(),
                Arc::clone(&io.waker),
            )
        };
        let file = open_log_file(&path)?;
        let (done, wait) = mailbox::channel();
        send(
            &commands,
            &waker,
            Command::Reopen {
                id: id.to_owned(),
                file,
                done,
            },
        )?;
        if await_reply(&wait)? {
            Ok(())
        } else {
            Err(LogError::NotFollowed(id.to_owned()))
        }
    }

    /// Stops following `id` and deletes its log file, if any.
    pub fn remove(&self, id: &str, log_path: &Path) -> Result<(), LogError> {
        self.stop(id)?;
        remove_log_file(log_path)
    }

    /// True while `id`'s output is being followed.
    pub fn is_following(&self, id: &str) -> bool {
        self.lock().followed.contains_key(id)
    }

    /// Opens and locks `id`'s log file; [`LogError::AlreadyFollowed`] if
    /// its output is followed already, here or by whoever holds the lock.
    fn claim(&self, id: &str, log_path: &Path) -> Result<LogFile, LogError> {
        if self.is_following(id) {
            return Err(LogError::AlreadyFollowed(id.to_owned()));
        }
        open_log_file(log_path).map_err(|err| match err {
            LogError::Locked { .. } => {
                log::debug!("container {id}: {err}");
                LogError::AlreadyFollowed(id.to_owned())
            }
            err => err,
        })
    }

    fn start_following(
        &self,
        id: &str,
        log_path: &Path,
        file: LogFile,
        tty: bool,
        resume: Option<ResumePoint>,
    ) -> Result<(), LogError> {
        let since = resume.as_ref().map_or(LogsSince::Beginning, |point| {
            LogsSince::UnixNanos(point.since())
        });
        let stream = self
            .docker
            .follow_logs(id, since)
            .map_err(LogError::Docker)?;
        let mut state = self.lock();
        if state.followed.contains_key(id) {
            return Err(LogError::AlreadyFollowed(id.to_owned()));
        }
        let (commands, waker) = match &state.io {
            Some(io) => (io.commands.clone(), Arc::clone(&io.waker)),
            None => {
                let io = spawn_io_thread(Arc::clone(&self.state), self.docker.clone())?;
                let pair = (io.commands.clone(), Arc::clone(&io.waker));
                state.io = Some(io);
                pair
            }
        };
        state.next_generation += 1;
        let generation = state.next_generation;
        state.followed.insert(
            id.to_owned(),
            Followed {
                path: log_path.to_owned(),
                generation,
            },
        );
        drop(state);
        let command = Command::Follow(Box::new(Follower {
            id: id.to_owned(),
            generation,
            stream,
            file,
            path: log_path.to_owned(),
            tty,
            encoder: CriEncoder::new(tty, resume),
            caught_up: false,
        }));
        send(&commands, &waker, command).inspect_err(|_| {
            self.lock().followed.remove(id);
        })
    }

    /// The shared state. Every change to it is a single insert or remove,
    /// so a panic while it was locked cannot leave it inconsistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn send(commands: &Sender<Command>, waker: &Waker, command: Command) -> Result<(), LogError> {
    commands
        .send(command)
        .map_err(|_| LogError::IoThread("it has exited".to_owned()))?;
    waker
        .wake()
        .map_err(|err| LogError::IoThread(format!("cannot wake it: {err}")))
}

fn await_reply<T: 'static>(wait: &Receiver<T>) -> Result<T, LogError> {
    wait.recv_timeout(COMMAND_TIMEOUT)
        .map_err(|_| LogError::IoThread(format!("no answer within {}s", COMMAND_TIMEOUT.as_secs())))
}

fn spawn_io_thread(state: Arc<Mutex<State>>, docker: DockerClient) -> Result<IoThread, LogError> {
    let thread_error = |err: io::Error| LogError::IoThread(format!("cannot start it: {err}"));
    let poll = Poll::new().map_err(thread_error)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN).map_err(thread_error)?);
    let (commands, receiver) = mailbox::channel();
    let mut writer = Writer {
        poll,
        commands: receiver,
        state,
        docker,
        catch_up: None,
        followers: HashMap::new(),
        by_id: HashMap::new(),
        next_token: 1,
        body: Vec::new(),
        out: Vec::new(),
    };
    supervisor::spawn(WRITER_DUTY, move || writer.run()).map_err(thread_error)?;
    Ok(IoThread { commands, waker })
}

/// A followed container, owned by the I/O thread (or, between its two
/// streams, by the catch-up thread).
struct Follower {
    id: String,
    generation: u64,
    stream: LogStream,
    file: LogFile,
    path: PathBuf,
    tty: bool,
    encoder: CriEncoder,
    /// The stream is the catch-up one: its end is final.
    caught_up: bool,
}

/// What became of a follower after reading from it.
enum Turn {
    /// Nothing more to read now.
    Idle,
    /// It has more to read: come back after the others.
    Busy,
    /// Its stream ended or failed: it is gone from the I/O thread.
    Finished,
}

/// The I/O thread's state.
struct Writer {
    poll: Poll,
    commands: Receiver<Command>,
    state: Arc<Mutex<State>>,
    docker: DockerClient,
    /// Followers whose first stream ended, for the catch-up thread.
    catch_up: Option<Sender<Follower>>,
    followers: HashMap<Token, Follower>,
    by_id: HashMap<String, Token>,
    next_token: usize,
    /// Reused buffers: dockerd's body bytes and the CRI lines made of them.
    body: Vec<u8>,
    out: Vec<u8>,
}

impl Writer {
    /// Follows until the manager is dropped, or until polling fails.
    fn run(&mut self) -> Ended {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut busy: Vec<Token> = Vec::new();
        loop {
            let timeout = (!busy.is_empty()).then_some(Duration::ZERO);
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Ended::Failed(format!("poll failed: {err}"));
            }
            let mut ready: Vec<Token> = std::mem::take(&mut busy);
            for event in &events {
                if event.token() == WAKER_TOKEN {
                    if !self.take_commands(&mut ready) {
                        return Ended::Released;
                    }
                } else if !ready.contains(&event.token()) {
                    ready.push(event.token());
                }
            }
            for token in ready {
                if let Turn::Busy = self.take_turn(token) {
                    busy.push(token);
                }
            }
        }
    }

    /// Carries out queued commands; false once every sender is gone.
    fn take_commands(&mut self, ready: &mut Vec<Token>) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Follow(follower)) => {
                    if !is_current(&self.state, &follower.id, follower.generation) {
                        // Stopped while its stream was being opened.
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let fd = follower.stream.as_raw_fd();
                    if let Err(err) =
                        self.poll
                            .registry()
                            .register(&mut SourceFd(&fd), token, Interest::READABLE)
                    {
                        log::error!(
                            "{LOG_THREAD_NAME}: cannot watch container {}: {err}",
                            follower.id
                        );
                        forget(&self.state, *follower);
                        continue;
                    }
                    self.by_id.insert(follower.id.clone(), token);
                    self.followers.insert(token, *follower);
                    // Bytes may have come with the response head.
                    ready.push(token);
                }
                Ok(Command::Stop { id, done }) => {
                    if let Some(token) = self.by_id.get(&id).copied() {
                        self.finish(token);
                    }
                    // The caller may have given up waiting.
                    let _ = done.send(());
                }
                Ok(Command::Reopen { id, file, done }) => {
                    let swapped = match self.by_id.get(&id) {
                        Some(token) => match self.followers.get_mut(token) {
                            Some(follower) => {
                                follower.file = file;
                                true
                            }
                            None => false,
                        },
                        None => false,
                    };
                    let _ = done.send(swapped);
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Reads and writes for one follower, at most [`READS_PER_TURN`] reads.
    fn take_turn(&mut self, token: Token) -> Turn {
        let Some(follower) = self.followers.get_mut(&token) else {
            return Turn::Idle;
        };
        for _ in 0..READS_PER_TURN {
            self.body.clear();
            self.out.clear();
            let read = follower.stream.read_some(&mut self.body);
            let encoded = follower.encoder.feed(&self.body, &mut self.out);
            let written = follower.file.write_all(&self.out);
            let outcome = match (read, encoded, written) {
                (_, _, Err(err)) => Err(LogError::Write {
                    path: follower.path.clone(),
                    source: err,
                }),
                (_, Err(err), _) => Err(err),
                (Err(err), _, _) => Err(LogError::Docker(err)),
                (Ok(read), Ok(()), Ok(())) => Ok(read),
            };
            match outcome {
                Ok(LogRead::Progress) => {}
                Ok(LogRead::WouldBlock) => return Turn::Idle,
                Ok(LogRead::Ended) => {
                    self.stream_ended(token);
                    return Turn::Finished;
                }
                Err(err) => {
                    log::warn!(
                        "{LOG_THREAD_NAME}: container {}: stopped writing {}: {err}",
                        follower.id,
                        follower.path.display()
                    );
                    self.finish(token);
                    return Turn::Finished;
                }
            }
        }
        Turn::Busy
    }

    /// Writes what the follower still holds and drops it.
    fn finish(&mut self, token: Token) {
        if let Some(follower) = self.take_follower(token) {
            forget(&self.state, follower);
        }
    }

    /// The follower's stream ended: it goes to the catch-up thread, unless
    /// this was its catch-up stream.
    fn stream_ended(&mut self, token: Token) {
        let Some(follower) = self.take_follower(token) else {
            return;
        };
        if follower.caught_up {
            forget(&self.state, follower);
            return;
        }
        let queue = match &self.catch_up {
            Some(queue) => queue,
            None => match spawn_catch_up_thread(Arc::clone(&self.state), self.docker.clone()) {
                Ok(queue) => self.catch_up.insert(queue),
                Err(err) => {
                    log::warn!(
                        "{LOG_THREAD_NAME}: container {}: cannot start {CATCH_UP_THREAD_NAME}, \
                         output written last may be missing: {err}",
                        follower.id
                    );
                    forget(&self.state, follower);
                    return;
                }
            },
        };
        if let Err(mpsc::SendError(follower)) = queue.send(follower) {
            log::warn!(
                "{LOG_THREAD_NAME}: container {}: {CATCH_UP_THREAD_NAME} has exited, \
                 output written last may be missing",
                follower.id
            );
            self.catch_up = None;
            forget(&self.state, follower);
        }
    }

    /// Removes the follower from the poll and writes what its encoder
    /// still holds.
    fn take_follower(&mut self, token: Token) -> Option<Follower> {
        let mut follower = self.followers.remove(&token)?;
        self.by_id.remove(&follower.id);
        let fd = follower.stream.as_raw_fd();
        if let Err(err) = self.poll.registry().deregister(&mut SourceFd(&fd)) {
            log::warn!("{LOG_THREAD_NAME}: container {}: {err}", follower.id);
        }
        self.out.clear();
        follower.encoder.finish(&mut self.out);
        if let Err(err) = follower.file.write_all(&self.out) {
            log::warn!(
                "{LOG_THREAD_NAME}: container {}: writing {}: {err}",
                follower.id,
                follower.path.display()
            );
        }
        Some(follower)
    }
}

/// Whether `generation` is still the follow of `id` (not stopped since).
fn is_current(state: &Mutex<State>, id: &str, generation: u64) -> bool {
    lock(state)
        .followed
        .get(id)
        .is_some_and(|followed| followed.generation == generation)
}

/// Closes the follower's file, then drops its shared entry unless that
/// belongs to a later follow. In this order, a follow that sees the entry
/// gone also finds the file's lock free.
fn forget(state: &Mutex<State>, follower: Follower) {
    let (id, generation) = (follower.id.clone(), follower.generation);
    drop(follower);
    forget_entry(state, &id, generation);
}

/// Drops the shared entry of `id`, unless it belongs to a later follow.
fn forget_entry(state: &Mutex<State>, id: &str, generation: u64) {
    let mut state = lock(state);
    if state
        .followed
        .get(id)
        .is_some_and(|followed| followed.generation == generation)
    {
        state.followed.remove(id);
    }
}

fn spawn_catch_up_thread(
    state: Arc<Mutex<State>>,
    docker: DockerClient,
) -> io::Result<Sender<Follower>> {
    let (queue, followers) = mailbox::channel::<Follower>();
    supervisor::spawn(CATCH_UP_DUTY, move || {
        // Ends when the I/O thread, the only sender, is gone.
        for follower in followers {
            catch_up(&state, &docker, follower);
        }
        Ended::Released
    })?;
    Ok(queue)
}

/// Gives `follower` its catch-up stream and hands it back to the I/O
/// thread; forgets it if there is nothing to catch up with.
fn catch_up(state: &Mutex<State>, docker: &DockerClient, mut follower: Follower) {
    let (id, generation) = (follower.id.clone(), follower.generation);
    if !is_current(state, &id, generation) {
        // Stopped (or removed) meanwhile: nothing more is wanted.
        return;
    }
    match catch_up_stream(docker, &follower) {
        Ok(Some((stream, point))) => {
            follower.stream = stream;
            follower.encoder = CriEncoder::new(follower.tty, point);
            follower.caught_up = true;
            let io = lock(state)
                .io
                .as_ref()
                .map(|io| (io.commands.clone(), Arc::clone(&io.waker)));
            let handed_back = match io {
                Some((commands, waker)) => {
                    send(&commands, &waker, Command::Follow(Box::new(follower)))
                }
                None => Err(LogError::IoThread("it never started".to_owned())),
            };
            if let Err(err) = handed_back {
                log::warn!("{CATCH_UP_THREAD_NAME}: container {id}: {err}");
                // The follower, and so its file, went with the command.
                forget_entry(state, &id, generation);
            }
            return;
        }
        // The kubelet renamed the file and has not asked for a reopen:
        // where the new one should start is unknown.
        Ok(None) => {}
        // Gone or being removed: RemoveContainer deletes the file anyway.
        Err(LogError::Docker(err)) if err.is_container_gone() => {}
        Err(err) => log::warn!(
            "{CATCH_UP_THREAD_NAME}: container {id}: output written last may be missing from {}: \
             {err}",
            follower.path.display()
        ),
    }
    forget(state, follower);
}

/// A stream of the container's output from where the follower's file left
/// off, with that point; `None` if the log path no longer names that file.
fn catch_up_stream(
    docker: &DockerClient,
    follower: &Follower,
) -> Result<Option<(LogStream, Option<ResumePoint>)>, LogError> {
    let file_error = |source| LogError::File {
        path: follower.path.clone(),
        source,
    };
    let ours = follower.file.metadata().map_err(file_error)?;
    match fs::symlink_metadata(&follower.path) {
        Ok(at_path) if (at_path.dev(), at_path.ino()) == (ours.dev(), ours.ino()) => {}
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(err)),
    }
    let point = find_resume_point(&follower.path)?;
    let since = point.as_ref().map_or(LogsSince::Beginning, |point| {
        LogsSince::UnixNanos(point.since())
    });
    let stream = docker
        .follow_logs(&follower.id, since)
        .map_err(LogError::Docker)?;
    Ok(Some((stream, point)))
}
