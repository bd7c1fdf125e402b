//! Running a command in a container to completion (ExecSync), and killing
//! an exec'd process tree that outlives its caller.
//!
//! It owns the session of one exec: create, start on a hijacked
//! connection, demultiplex stdout and stderr into buffers that together
//! keep at most [`MAX_EXEC_OUTPUT_BYTES`], read the exit code, and enforce the
//! caller's timeout and cancellation without a thread per call (the socket
//! read timeout wakes the loop). It must not decode CRI messages (the
//! handler does) nor decide which containers may be exec'd into.
//!
//! The output is also given up when the container stops: in a pod whose
//! containers share the sandbox's PID namespace, Docker 20.10 and 27 never
//! close an exec's stream when its container is removed or killed, though
//! the process is gone, so the call would wait for its timeout. The caller
//! says whether the container still runs (the handler asks the state
//! index, which costs no Docker call); once it does not, the stream has
//! [`STREAM_END_GRACE`] to end before the call answers without it.
//!
//! Docker has no API to kill an exec'd process, so on timeout or
//! cancellation [`kill_exec`] signals it directly: dockshim runs as root in
//! the host PID namespace, and dockerd reports the process's host PID. The
//! whole tree under that PID is first stopped (a stopped process cannot
//! fork), round after round until no new descendant appears, then killed,
//! and the kill is verified. Limits: a descendant that was reparented
//! before the scan (a double-forked daemon) is no longer under the exec'd
//! process and survives, as it would under runc; processes are only
//! signalled if they are in the container's PID namespace, which guards
//! against a PID reused by a host process. Each process is pinned with a
//! pidfd (see [`crate::pidfd`]) whose `/proc` entry still shows the start
//! time and namespace the scan saw, and signalled through it, so a PID
//! reused between the scan and the signal is never signalled.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cri::error::ExecError;
use crate::docker::{DockerApi, DockerError, ExecCreate, FeedError, Output, OutputDemux};
use crate::grpc::{CallContext, MAX_MESSAGE_BYTES};
use crate::host::Host;
use crate::pidfd::PidFd;

/// What an `ExecSyncResponse` adds to its output bytes: for each of stdout
/// and stderr a tag byte and a length of at most 4 bytes (below 2^28), and
/// for the exit code a tag byte and at most 10 bytes (a negative `int32`).
const EXEC_REPLY_FRAMING_BYTES: usize = 2 * (1 + 4) + (1 + 10);

/// Most bytes kept of stdout and stderr together, so that the reply fits
/// in one gRPC message: the kubelet, like dockshim, refuses messages over
/// 16 MiB, and a reply it cannot receive would lose the exit code too.
/// Output beyond it is read and dropped, so the process never blocks on a
/// full pipe; the CRI reply has no field to say so, [`ExecOutput`] does.
pub const MAX_EXEC_OUTPUT_BYTES: usize = MAX_MESSAGE_BYTES - EXEC_REPLY_FRAMING_BYTES;

/// One read from the hijacked socket; dockerd writes at most 32 KiB frames.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Longest a blocked read waits before the loop looks at the deadline,
/// the cancellation flag and the container again: the latency of noticing
/// a cancelled call or a stopped container.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);

/// How long the output may go on once the container is seen stopped.
/// Where dockerd closes the stream, it does so as soon as the process is
/// reaped, well within this; where it never does, this is the wait added.
pub const STREAM_END_GRACE: Duration = Duration::from_secs(1);

/// Exit-code reads after the output ended while dockerd still says
/// `Running` (it records the exit a moment after closing the stream), and
/// PID reads while a process being killed has not started yet. The pause
/// between reads doubles from the first to the longest interval.
const EXIT_CODE_POLLS: u32 = 30;
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(1);
const LONGEST_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Budget of each Docker call made to kill a process after the caller's
/// own deadline has passed.
const KILL_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Scan-and-stop rounds over the process tree; each round stops the
/// descendants forked since the previous one, so a tree settles in a few.
const MAX_STOP_ROUNDS: usize = 32;

/// How long killed processes may take to disappear before the kill is
/// reported as failed.
const KILL_VERIFY_TIMEOUT: Duration = Duration::from_secs(1);
const KILL_VERIFY_INTERVAL: Duration = Duration::from_millis(5);

/// Longest rendering of the command kept in an error message.
const MAX_COMMAND_IN_MESSAGE: usize = 256;

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// With `stderr`, at most [`MAX_EXEC_OUTPUT_BYTES`]: whichever stream
    /// wrote first keeps its bytes.
    pub stdout: Vec<u8>,
    /// See `stdout`.
    pub stderr: Vec<u8>,
    /// The process's exit code, or 126/127 when dockerd could not start
    /// the command (its error text is then in `stdout`).
    pub exit_code: i32,
    /// Whether stdout went beyond the cap and was cut.
    pub stdout_truncated: bool,
    /// Whether stderr went beyond the cap and was cut.
    pub stderr_truncated: bool,
}

/// Runs `cmd` (not through a shell) in the running container
/// `container_id` without a TTY or stdin and waits for it to end.
///
/// `timeout` of `None` or zero means none (the CRI's `timeout: 0`). The
/// call also ends when `ctx` is cancelled or its deadline passes. Either
/// way it returns by then (plus the time to kill), with
/// [`ExecError::Timeout`] or [`ExecError::Cancelled`], after killing the
/// exec'd process tree. A command that exits non-zero, or that dockerd
/// cannot start (126/127, dockerd's message in stdout), is a normal result.
/// The start request itself is bounded by the client's own timeout, not
/// this deadline: dockerd answers it before running anything.
///
/// `container_running` is asked at every wake-up while the output is read
/// and must not block; once it says no, the call ends within
/// [`STREAM_END_GRACE`] with the exit code if dockerd has one, else with
/// [`ExecError::ContainerStopped`] (see the module notes).
pub fn exec_sync(
    docker: &dyn DockerApi,
    host: &dyn Host,
    container_id: &str,
    cmd: &[String],
    timeout: Option<Duration>,
    ctx: &CallContext,
    container_running: &dyn Fn() -> bool,
) -> Result<ExecOutput, ExecError> {
    if cmd.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    let session = Session::new(container_id, cmd, timeout, ctx, container_running, host);
    let docker_err = |source| ExecError::Docker {
        container: container_id.to_owned(),
        source,
    };
    let config = ExecCreate {
        attach_stdout: true,
        attach_stderr: true,
        cmd: cmd.to_vec(),
        ..ExecCreate::default()
    };
    let exec_id = docker
        .create_exec(container_id, &config, session.call_budget())
        .map_err(docker_err)?;
    let hijacked = docker.start_exec(&exec_id, false).map_err(docker_err)?;
    let (stream, early) = hijacked.into_parts();
    let mut collector = Collector::new();
    collector.feed(&early).map_err(docker_err)?;
    let read = read_to_end(&stream, &mut collector, &session);
    drop(stream);
    let exit_code = match read {
        Ok(()) => wait_exit_code(docker, &exec_id, &session)?,
        Err(Interrupted::Abort(why)) => return Err(session.aborted(why, docker, &exec_id)),
        Err(Interrupted::Failed(err)) => return Err(err),
        Err(Interrupted::ContainerStopped) => {
            recorded_exit_code(docker, &exec_id).ok_or_else(|| ExecError::ContainerStopped {
                container: container_id.to_owned(),
                command: command_text(cmd),
            })?
        }
    };
    Ok(ExecOutput {
        exit_code,
        stdout_truncated: collector.stdout.truncated,
        stderr_truncated: collector.stderr.truncated,
        stdout: collector.stdout.bytes,
        stderr: collector.stderr.bytes,
    })
}

/// Kills the process tree of exec `exec_id` and waits until it is gone;
/// returns how many processes were killed (0 if the exec had already
/// ended). See the module documentation for the approach and its limits.
pub fn kill_exec(
    docker: &dyn DockerApi,
    host: &dyn Host,
    exec_id: &str,
) -> Result<usize, ExecError> {
    let docker_err = |container: &str, source| ExecError::Docker {
        container: container.to_owned(),
        source,
    };
    let mut polls = 0;
    let exec = loop {
        let exec = docker
            .inspect_exec(exec_id, Some(KILL_CALL_TIMEOUT))
            .map_err(|source| docker_err("(unknown)", source))?;
        if !exec.running {
            return Ok(0);
        }
        // Running with no PID yet: the runtime is still starting it.
        if exec.pid > 0 || polls >= EXIT_CODE_POLLS {
            break exec;
        }
        thread::sleep(poll_interval(polls));
        polls += 1;
    };
    if exec.pid <= 0 {
        return Err(ExecError::NoExitCode {
            container: exec.container_id,
            exec_id: exec_id.to_owned(),
        });
    }
    let Some(container) = docker
        .inspect_container(&exec.container_id)
        .map_err(|source| docker_err(&exec.container_id, source))?
    else {
        return Ok(0);
    };
    let Ok(init) = i32::try_from(container.state.pid) else {
        return Ok(0);
    };
    if init <= 0 {
        // The container stopped, and its processes with it.
        return Ok(0);
    }
    let Some(pid_ns) = host.pid_namespace(init) else {
        return Ok(0);
    };
    kill_tree(host, exec.pid, init, pid_ns)
}

/// The deadline, cancellation and wording of one exec call.
struct Session<'a> {
    container: &'a str,
    cmd: &'a [String],
    ctx: &'a CallContext,
    deadline: Option<Instant>,
    /// What the deadline amounts to, for the message.
    budget: Duration,
    container_running: &'a dyn Fn() -> bool,
    /// Where the exec's processes are found when it must be killed.
    host: &'a dyn Host,
}

enum Abort {
    Deadline,
    Cancelled,
}

enum Interrupted {
    Abort(Abort),
    Failed(ExecError),
    /// The container stopped and the output did not end within
    /// [`STREAM_END_GRACE`].
    ContainerStopped,
}

impl<'a> Session<'a> {
    fn new(
        container: &'a str,
        cmd: &'a [String],
        timeout: Option<Duration>,
        ctx: &'a CallContext,
        container_running: &'a dyn Fn() -> bool,
        host: &'a dyn Host,
    ) -> Session<'a> {
        let start = Instant::now();
        let own = timeout
            .filter(|t| !t.is_zero())
            .and_then(|t| start.checked_add(t));
        let deadline = match (own, ctx.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let budget = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(start));
        Session {
            container,
            cmd,
            ctx,
            deadline,
            budget,
            container_running,
            host,
        }
    }

    /// Why the call must stop now, if it must.
    fn check(&self) -> Option<Abort> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Abort::Deadline)
        } else if self.ctx.is_cancelled() {
            Some(Abort::Cancelled)
        } else {
            None
        }
    }

    /// The time left for a Docker call: `None` (the client's own budget)
    /// without a deadline. Never zero, which the socket would refuse.
    fn call_budget(&self) -> Option<Duration> {
        self.deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        })
    }

    /// How long the next blocking read may wait.
    fn wake_after(&self) -> Duration {
        self.call_budget()
            .map_or(WAKE_INTERVAL, |left| left.min(WAKE_INTERVAL))
    }

    /// Kills the exec and builds the error for `why`.
    fn aborted(&self, why: Abort, docker: &dyn DockerApi, exec_id: &str) -> ExecError {
        let cleanup = match kill_exec(docker, self.host, exec_id) {
            Ok(_) => None,
            Err(err) => {
                log::warn!("exec {exec_id} in container {}: {err}", self.container);
                Some(Box::new(err))
            }
        };
        let (container, command) = (self.container.to_owned(), command_text(self.cmd));
        match why {
            Abort::Deadline => ExecError::Timeout {
                container,
                command,
                after: self.budget,
                cleanup,
            },
            Abort::Cancelled => ExecError::Cancelled {
                container,
                command,
                cleanup,
            },
        }
    }
}

/// Reads the hijacked stream into `collector` until dockerd closes it, or
/// until [`STREAM_END_GRACE`] after the container was seen stopped.
fn read_to_end(
    mut stream: &UnixStream,
    collector: &mut Collector,
    session: &Session<'_>,
) -> Result<(), Interrupted> {
    let failed = |err| Interrupted::Failed(err);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut wait = Duration::ZERO;
    let mut stopped_at: Option<Instant> = None;
    loop {
        if let Some(why) = session.check() {
            return Err(Interrupted::Abort(why));
        }
        match stopped_at {
            None if !(session.container_running)() => stopped_at = Some(Instant::now()),
            Some(at) if at.elapsed() >= STREAM_END_GRACE => {
                return Err(Interrupted::ContainerStopped)
            }
            _ => {}
        }
        let next_wait = session.wake_after();
        if next_wait != wait {
            wait = next_wait;
            stream.set_read_timeout(Some(wait)).map_err(|source| {
                failed(ExecError::Io {
                    container: session.container.to_owned(),
                    source,
                })
            })?;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => collector.feed(&buf[..n]).map_err(|source| {
                failed(ExecError::Docker {
                    container: session.container.to_owned(),
                    source,
                })
            })?,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(source) => {
                return Err(failed(ExecError::Io {
                    container: session.container.to_owned(),
                    source,
                }))
            }
        }
    }
    collector.finish().map_err(|source| {
        failed(ExecError::Docker {
            container: session.container.to_owned(),
            source,
        })
    })
}

/// The exit code once dockerd has recorded it; the process is killed if
/// the deadline passes first.
fn wait_exit_code(
    docker: &dyn DockerApi,
    exec_id: &str,
    session: &Session<'_>,
) -> Result<i32, ExecError> {
    for poll in 0..EXIT_CODE_POLLS {
        if let Some(why) = session.check() {
            return Err(session.aborted(why, docker, exec_id));
        }
        let exec = docker
            .inspect_exec(exec_id, session.call_budget())
            .map_err(|source| ExecError::Docker {
                container: session.container.to_owned(),
                source,
            })?;
        if let (false, Some(code)) = (exec.running, exec.exit_code) {
            return Ok(code);
        }
        thread::sleep(poll_interval(poll));
    }
    Err(ExecError::NoExitCode {
        container: session.container.to_owned(),
        exec_id: exec_id.to_owned(),
    })
}

/// The exit code dockerd recorded for the exec, if it did; any failure to
/// ask counts as none.
fn recorded_exit_code(docker: &dyn DockerApi, exec_id: &str) -> Option<i32> {
    match docker.inspect_exec(exec_id, Some(KILL_CALL_TIMEOUT)) {
        Ok(exec) if !exec.running => exec.exit_code,
        Ok(_) => None,
        Err(err) => {
            log::debug!("exec {exec_id}: {err}");
            None
        }
    }
}

/// The pause after the `poll`-th read (from 0) of a state that should
/// change soon.
fn poll_interval(poll: u32) -> Duration {
    FIRST_POLL_INTERVAL
        .saturating_mul(1 << poll.min(16))
        .min(LONGEST_POLL_INTERVAL)
}

/// The command as shown in messages: its words, quoted, cut to a bound.
fn command_text(cmd: &[String]) -> String {
    let mut text = format!("{cmd:?}");
    if text.len() > MAX_COMMAND_IN_MESSAGE {
        let mut cut = MAX_COMMAND_IN_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Bytes of one stream, kept while the output budget lasts.
#[derive(Debug, Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
    truncated: bool,
}

impl CappedBuffer {
    /// Keeps at most `room` bytes of `data`.
    fn push(&mut self, data: &[u8], room: usize) {
        let take = data.len().min(room);
        if take < data.len() {
            self.truncated = true;
        }
        let needed = self.bytes.len() + take;
        if needed > self.bytes.capacity() {
            // Grow geometrically like Vec would, but never past the cap.
            let target = needed
                .max(self.bytes.capacity().saturating_mul(2))
                .min(MAX_EXEC_OUTPUT_BYTES);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(&data[..take]);
    }
}

/// Demultiplexes a non-TTY exec stream into two buffers that share
/// [`MAX_EXEC_OUTPUT_BYTES`].
#[derive(Debug, Default)]
struct Collector {
    demux: OutputDemux,
    stdout: CappedBuffer,
    stderr: CappedBuffer,
}

impl Collector {
    fn new() -> Collector {
        Collector::default()
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), DockerError> {
        let (stdout, stderr) = (&mut self.stdout, &mut self.stderr);
        let fed = self.demux.feed(input, |output, data, _| {
            // No underflow: together the buffers never exceed the budget.
            let room = MAX_EXEC_OUTPUT_BYTES - stdout.bytes.len() - stderr.bytes.len();
            match output {
                Output::Stdout => stdout.push(data, room),
                Output::Stderr => stderr.push(data, room),
            }
            Ok::<(), Infallible>(())
        });
        fed.map_err(|err| match err {
            FeedError::Stream(err) => err,
            FeedError::Sink(never) => match never {},
        })
    }

    fn finish(&self) -> Result<(), DockerError> {
        self.demux.finish()
    }
}

/// The fields of `/proc/<pid>/stat` the tree walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pid: i32,
    ppid: i32,
    /// `R`, `S`, `D`, `T`, `Z`, ...
    state: u8,
    /// Clock ticks after boot; with the PID, it names one process.
    start_time: u64,
}

impl ProcStat {
    fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    // Field 22 of the file is the 20th after the name (state is the 1st).
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        state,
        start_time,
    })
}

fn read_stat(host: &dyn Host, pid: i32) -> Option<ProcStat> {
    parse_stat(&host.process_file(pid, "stat")?)
}

/// Every process on the host. Processes that end during the scan are
/// skipped.
fn scan_proc(host: &dyn Host) -> Result<Vec<ProcStat>, ExecError> {
    let pids = host.pids().map_err(ExecError::Proc)?;
    Ok(pids
        .into_iter()
        .filter_map(|pid| read_stat(host, pid))
        .collect())
}

/// `root` (if present in `table`) and all its descendants in `table`.
fn tree_of(root: i32, table: &[ProcStat]) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
    for stat in table {
        children.entry(stat.ppid).or_default().push(stat);
    }
    let mut tree: Vec<ProcStat> = table.iter().filter(|s| s.pid == root).copied().collect();
    // Sorted, searched by bisection: a set type would bring its own code
    // for a list this short.
    let mut seen: Vec<i32> = tree.iter().map(|s| s.pid).collect();
    let mut next = 0;
    while let Some(parent) = tree.get(next).map(|s| s.pid) {
        next += 1;
        for child in children.get(&parent).into_iter().flatten() {
            if let Err(at) = seen.binary_search(&child.pid) {
                seen.insert(at, child.pid);
                tree.push(**child);
            }
        }
    }
    tree
}

/// A process of the tree, held for signalling.
struct Pinned {
    pid: i32,
    /// `None` on a kernel without pidfds: signalled by PID.
    pidfd: Option<PidFd>,
}

impl Pinned {
    /// Pins `stat`'s process if it is still the one the scan saw, in the
    /// PID namespace `pid_ns`; `None` when it ended or its PID changed
    /// hands. The checks read `/proc` after the pidfd is open, so they
    /// describe the pidfd's process.
    fn pin(
        host: &dyn Host,
        stat: &ProcStat,
        pid_ns: (u64, u64),
    ) -> Result<Option<Pinned>, ExecError> {
        let pidfd = match u32::try_from(stat.pid).map(PidFd::open) {
            Ok(Ok(pidfd)) => pidfd,
            Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Ok(Err(source)) => {
                return Err(ExecError::Signal {
                    pid: stat.pid,
                    source,
                })
            }
            Err(_) => return Ok(None),
        };
        let same = read_stat(host, stat.pid).is_some_and(|now| now.start_time == stat.start_time)
            && host.pid_namespace(stat.pid) == Some(pid_ns);
        Ok(same.then_some(Pinned {
            pid: stat.pid,
            pidfd,
        }))
    }

    fn signal(&self, sig: Signal) -> Result<(), ExecError> {
        let sent = match &self.pidfd {
            Some(pidfd) => pidfd.signal(sig),
            None => kill(Pid::from_raw(self.pid), sig),
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(ExecError::Signal {
                pid: self.pid,
                source: io::Error::from(errno),
            }),
        }
    }
}

/// Stops `root` and its descendants in the PID namespace `pid_ns` until
/// no new one appears, kills them all, and waits until they are gone.
/// Never signals `init` (the container's first process), host PID 1 or
/// dockshim itself.
fn kill_tree(
    host: &dyn Host,
    root: i32,
    init: i32,
    pid_ns: (u64, u64),
) -> Result<usize, ExecError> {
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    // By PID, ascending: a sorted Vec rather than a map, since a tree
    // holds a handful of processes.
    let mut held: Vec<(i32, u64, Pinned)> = Vec::new();
    for _ in 0..MAX_STOP_ROUNDS {
        let table = scan_proc(host)?;
        let mut stopped_any = false;
        for stat in tree_of(root, &table) {
            let Err(at) = held.binary_search_by_key(&stat.pid, |&(pid, ..)| pid) else {
                continue;
            };
            if stat.is_dead()
                || [init, 1, own].contains(&stat.pid)
                || host.pid_namespace(stat.pid) != Some(pid_ns)
            {
                continue;
            }
            let Some(pinned) = Pinned::pin(host, &stat, pid_ns)? else {
                continue;
            };
            pinned.signal(Signal::SIGSTOP)?;
            held.insert(at, (stat.pid, stat.start_time, pinned));
            stopped_any = true;
        }
        if !stopped_any {
            break;
        }
    }
    for (_, _, pinned) in &held {
        pinned.signal(Signal::SIGKILL)?;
    }
    let until = Instant::now() + KILL_VERIFY_TIMEOUT;
    loop {
        let survivors: Vec<i32> = held
            .iter()
            .filter(|&&(pid, start, _)| {
                read_stat(host, pid).is_some_and(|s| s.start_time == start && !s.is_dead())
            })
            .map(|&(pid, ..)| pid)
            .collect();
        if survivors.is_empty() {
            return Ok(held.len());
        }
        if Instant::now() >= until {
            return Err(ExecError::Survived { pids: survivors });
        }
        thread::sleep(KILL_VERIFY_INTERVAL);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::{Code, Status};
    use crate::host::{Node, RecordingHost};

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn collector_splits_stdout_and_stderr_fed_in_any_pieces() {
        let mut transcript = frame(1, b"hi\n");
        transcript.extend(frame(2, b"e\n"));
        transcript.extend(frame(1, b"bye\n"));
        for at in 0..=transcript.len() {
            let mut collector = Collector::new();
            let (a, b) = transcript.split_at(at);
            collector.feed(a).unwrap();
            collector.feed(b).unwrap();
            collector.finish().unwrap();
            assert_eq!(collector.stdout.bytes, b"hi\nbye\n", "split at {at}");
            assert_eq!(collector.stderr.bytes, b"e\n", "split at {at}");
        }
    }

    #[test]
    fn output_beyond_the_shared_cap_is_dropped_and_flagged_per_stream() {
        let mut collector = Collector::new();
        collector.feed(&frame(2, b"early")).unwrap();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..17 {
            collector.feed(&frame(1, &chunk)).unwrap();
        }
        collector.feed(&frame(2, b"late")).unwrap();
        assert_eq!(collector.stderr.bytes, b"early");
        assert!(collector.stderr.truncated);
        assert_eq!(
            collector.stdout.bytes.len(),
            MAX_EXEC_OUTPUT_BYTES - b"early".len()
        );
        assert!(collector.stdout.bytes.capacity() <= MAX_EXEC_OUTPUT_BYTES);
        assert!(collector.stdout.truncated);
    }

    #[test]
    fn a_reply_with_all_the_output_kept_fits_in_one_grpc_message() {
        // Both lengths need 4 varint bytes from 2 MiB on: the worst case.
        let two_mib = 2 * 1024 * 1024;
        let reply = crate::api::v1::ExecSyncResponse {
            stdout: vec![b'o'; MAX_EXEC_OUTPUT_BYTES - two_mib],
            stderr: vec![b'e'; two_mib],
            exit_code: i32::MIN,
        };
        assert_eq!(prost::Message::encoded_len(&reply), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn a_daemon_error_frame_fails_with_its_text() {
        let mut collector = Collector::new();
        let err = collector.feed(&frame(3, b"boom")).unwrap_err();
        assert!(matches!(err, DockerError::Stream(m) if m == "boom"));
    }

    #[test]
    fn output_ending_inside_a_frame_is_malformed() {
        let mut collector = Collector::new();
        collector.feed(&frame(1, b"hello")[..10]).unwrap();
        assert!(matches!(collector.finish(), Err(DockerError::Protocol(_))));
    }

    fn stat_line(pid: i32, ppid: i32) -> String {
        format!("{pid} (sh) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0")
    }

    #[test]
    fn the_scan_keeps_every_process_whose_stat_still_reads() {
        let host = RecordingHost::default()
            .with_file(7, "stat", &stat_line(7, 1))
            .with_file(8, "status", "Name:\tgone\n")
            .with_file(9, "stat", &stat_line(9, 7));
        let table = scan_proc(&host).unwrap();
        assert_eq!(table.iter().map(|s| s.pid).collect::<Vec<_>>(), [7, 9]);
        assert_eq!(tree_of(7, &table).len(), 2);
        assert!(host.reads().contains(&(8, "stat".to_owned())));
    }

    #[test]
    fn killing_an_exec_that_has_ended_reads_no_process() {
        let docker = crate::cri::testing::docker();
        let host = RecordingHost::default().with_file(7, "stat", &stat_line(7, 1));
        assert_eq!(kill_exec(docker.as_ref(), &host, "exec-c").unwrap(), 0);
        assert!(host.reads().is_empty());
    }

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 4200 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 4200,
                state: b'S',
                start_time: 987654,
            })
        );
        assert_eq!(parse_stat("4242 (truncated"), None);
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn our_own_stat_line_parses() {
        let own = read_stat(&Node, i32::try_from(std::process::id()).unwrap()).unwrap();
        assert_eq!(own.pid, i32::try_from(std::process::id()).unwrap());
        assert!(!own.is_dead());
    }

    #[test]
    fn the_tree_holds_the_root_and_every_descendant_only() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            state: b'S',
            start_time: 0,
        };
        let table = [
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 10),
            p(20, 1),
            p(21, 20),
        ];
        let pids: Vec<i32> = tree_of(10, &table).iter().map(|s| s.pid).collect();
        assert_eq!(pids, [10, 11, 13, 12]);
        assert!(tree_of(99, &table).is_empty());
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        let docker = |status| ExecError::Docker {
            container: "c".to_owned(),
            source: DockerError::Api {
                status,
                message: "m".to_owned(),
            },
        };
        assert_eq!(docker(404).code(), Code::NotFound);
        assert_eq!(docker(409).code(), Code::FailedPrecondition);
        assert_eq!(ExecError::EmptyCommand.code(), Code::InvalidArgument);
        let stopped = ExecError::ContainerStopped {
            container: "c".to_owned(),
            command: command_text(&["sleep".to_owned(), "30".to_owned()]),
        };
        let status = Status::from(stopped);
        assert_eq!(status.code, Code::FailedPrecondition);
        assert_eq!(
            status.message,
            r#"container c stopped while command ["sleep", "30"] ran; dockerd reported no exit code for it"#
        );
        let timeout = ExecError::Timeout {
            container: "c".to_owned(),
            command: command_text(&["sleep".to_owned(), "30".to_owned()]),
            after: Duration::from_secs(1),
            cleanup: None,
        };
        let status = Status::from(timeout);
        assert_eq!(status.code, Code::DeadlineExceeded);
        assert_eq!(
            status.message,
            r#"command ["sleep", "30"] in container c timed out after 1s and was killed"#
        );
    }

    #[test]
    fn a_failed_kill_is_in_the_timeout_message_and_its_source() {
        let err = ExecError::Timeout {
            container: "c".to_owned(),
            command: "[\"x\"]".to_owned(),
            after: Duration::from_secs(2),
            cleanup: Some(Box::new(ExecError::Survived { pids: vec![7] })),
        };
        assert!(err
            .to_string()
            .ends_with("killing it failed: processes [7] still alive after SIGKILL"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn polls_back_off_from_one_millisecond_to_fifty() {
        assert_eq!(poll_interval(0), Duration::from_millis(1));
        assert_eq!(poll_interval(3), Duration::from_millis(8));
        assert_eq!(poll_interval(6), LONGEST_POLL_INTERVAL);
        assert_eq!(poll_interval(u32::MAX), LONGEST_POLL_INTERVAL);
        let total: Duration = (0..EXIT_CODE_POLLS).map(poll_interval).sum();
        assert!(total > Duration::from_secs(1) && total < Duration::from_secs(2));
    }

    #[test]
    fn long_commands_are_cut_in_messages() {
        let text = command_text(&["é".repeat(400)]);
        assert!(text.len() <= MAX_COMMAND_IN_MESSAGE + 3);
        assert!(text.ends_with("..."));
    }

    #[test]
    fn the_deadline_is_the_sooner_of_timeout_and_grpc_deadline() {
        let cmd = ["true".to_owned()];
        let soon = Instant::now() + Duration::from_millis(200);
        let ctx = CallContext::new("/t", Some(soon));
        let session = Session::new(
            "c",
            &cmd,
            Some(Duration::from_secs(10)),
            &ctx,
            &|| true,
            &Node,
        );
        assert_eq!(session.deadline, Some(soon));
        let ctx = CallContext::new("/t", None);
        let session = Session::new("c", &cmd, Some(Duration::ZERO), &ctx, &|| true, &Node);
        assert_eq!(session.deadline, None);
        assert!(session.check().is_none());
        ctx.cancel();
        assert!(matches!(session.check(), Some(Abort::Cancelled)));
    }

    #[test]
    fn a_stream_left_open_after_the_container_stopped_is_given_up_after_the_grace() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let cmd = ["sleep".to_owned(), "30".to_owned()];
        let ctx = CallContext::new("/t", None);
        let session = Session::new(
            "c",
            &cmd,
            Some(Duration::from_secs(30)),
            &ctx,
            &|| false,
            &Node,
        );
        let started = Instant::now();
        let read = read_to_end(&ours, &mut Collector::new(), &session);
        let took = started.elapsed();
        assert!(matches!(read, Err(Interrupted::ContainerStopped)));
        assert!(took >= STREAM_END_GRACE, "{took:?}");
        assert!(took < STREAM_END_GRACE + Duration::from_secs(2), "{took:?}");
        drop(theirs);
    }

    #[test]
    fn output_that_ends_within_the_grace_is_read_whole() {
        use std::io::Write as _;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(&frame(1, b"last words\n")).unwrap();
        drop(theirs);
        let cmd = ["true".to_owned()];
        let ctx = CallContext::new("/t", None);
        let session = Session::new("c", &cmd, None, &ctx, &|| false, &Node);
        let mut collector = Collector::new();
        assert!(read_to_end(&ours, &mut collector, &session).is_ok());
        assert_eq!(collector.stdout.bytes, b"last words\n");
    }

    #[test]
    fn a_process_is_pinned_only_while_it_is_the_one_the_scan_saw() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let scanned = read_stat(&Node, pid).unwrap();
        let pid_ns = Node.pid_namespace(pid).unwrap();
        // Another start time: the PID now names a later process.
        let recycled = ProcStat {
            start_time: scanned.start_time + 1,
            ..scanned
        };
        assert!(Pinned::pin(&Node, &recycled, pid_ns).unwrap().is_none());
        assert!(Pinned::pin(&Node, &scanned, (0, 0)).unwrap().is_none());
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "the process was left alone"
        );
        let pinned = Pinned::pin(&Node, &scanned, pid_ns)
            .unwrap()
            .expect("the scanned process");
        pinned.signal(Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Gone: signalling it again is not an error and reaches no one.
        pinned.signal(Signal::SIGKILL).unwrap();
    }

    /// A started container in `docker`; its main process is this test's,
    /// as the fake's start makes it.
    fn started(docker: &crate::docker::fake::FakeDocker) -> String {
        let body = crate::docker::ContainerCreate::default();
        let crate::docker::CreateOutcome::Created(created) =
            docker.create_container("k8s_app", &body).unwrap()
        else {
            panic!("k8s_app is taken");
        };
        docker.start_container(&created.id).unwrap();
        created.id
    }

    /// A process that outlives any test, standing for an exec'd command.
    fn hung_process(docker: &crate::docker::fake::FakeDocker) -> std::process::Child {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        docker.hang_execs(i32::try_from(child.id()).unwrap());
        child
    }

    fn killed(mut child: std::process::Child) -> bool {
        use std::os::unix::process::ExitStatusExt;
        child.wait().unwrap().signal() == Some(Signal::SIGKILL as i32)
    }

    #[test]
    fn a_command_that_outlives_its_timeout_is_killed_and_times_out() {
        let docker = crate::cri::testing::docker();
        let id = started(&docker);
        let child = hung_process(&docker);
        let ctx = CallContext::new("/t", None);
        let begun = Instant::now();
        let err = exec_sync(
            docker.as_ref(),
            &Node,
            &id,
            &["sleep".to_owned(), "30".to_owned()],
            Some(Duration::from_millis(50)),
            &ctx,
            &|| true,
        )
        .unwrap_err();
        assert!(
            matches!(err, ExecError::Timeout { cleanup: None, .. }),
            "{err}"
        );
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert!(
            begun.elapsed() < Duration::from_secs(2),
            "{:?}",
            begun.elapsed()
        );
        assert!(killed(child));
    }

    #[test]
    fn a_cancelled_call_kills_its_command_and_is_cancelled() {
        let docker = crate::cri::testing::docker();
        let id = started(&docker);
        let child = hung_process(&docker);
        let ctx = CallContext::new("/t", None);
        ctx.cancel();
        let err = exec_sync(
            docker.as_ref(),
            &Node,
            &id,
            &["sleep".to_owned(), "30".to_owned()],
            None,
            &ctx,
            &|| true,
        )
        .unwrap_err();
        assert!(
            matches!(err, ExecError::Cancelled { cleanup: None, .. }),
            "{err}"
        );
        assert_eq!(err.code(), Code::Cancelled);
        assert!(killed(child));
    }

    #[test]
    fn a_kill_dockerd_cannot_help_with_is_named_in_the_timeout() {
        let docker = crate::cri::testing::docker();
        let id = started(&docker);
        docker.hang_execs(4242);
        docker.fail("inspect_exec", crate::docker::fake::refused());
        let ctx = CallContext::new("/t", None);
        let err = exec_sync(
            docker.as_ref(),
            &RecordingHost::default(),
            &id,
            &["sleep".to_owned(), "30".to_owned()],
            Some(Duration::from_millis(20)),
            &ctx,
            &|| true,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::Timeout {
                    cleanup: Some(_),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(Status::from(err).code, Code::DeadlineExceeded);
    }

    #[test]
    fn killing_an_exec_whose_container_stopped_reads_no_process() {
        let docker = crate::cri::testing::docker();
        let id = started(&docker);
        docker.hang_execs(4242);
        docker.stop_container(&id, Duration::ZERO, None).unwrap();
        let host = RecordingHost::default();
        assert_eq!(
            kill_exec(docker.as_ref(), &host, &format!("exec-{id}")).unwrap(),
            0
        );
        assert!(host.reads().is_empty());
    }
}
