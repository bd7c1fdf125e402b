//! Exec, attach and port-forward sessions on dockerd: what the streaming
//! server runs once a client has redeemed the URL an Exec, Attach or
//! PortForward call issued.
//!
//! It owns connecting a client's streams ([`RemoteCommand`]) to a hijacked
//! dockerd connection: exec create, start and exit code, or attach; stdin
//! copied to dockerd and half-closed when the client closes it; dockerd's
//! output demultiplexed (raw with a TTY) onto stdout and stderr; terminal
//! sizes applied once the process runs; the outcome reported on the error
//! stream in the kubelet's words. Port forwarding is
//! `crate::streaming::port_forward`'s, with the dialer of `sandbox_dialer`. It must not parse HTTP or either streaming protocol
//! (`remote_command` and the session layers do) nor validate the CRI
//! requests (the RPCs did, before issuing the URL).
//!
//! Threads: the connection's own thread copies dockerd's output; one more
//! copies stdin and one applies terminal sizes, when the request has them.
//! They are scoped to the session, which ends when the output ends, or
//! when the client goes: then dockerd's connection is shut down, and an
//! exec'd process still running is killed (its client can no longer see
//! it; containerd's CRI does the same) rather than left behind.

use std::io::{self, Cursor, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread::{self, Scope};
use std::time::Duration;

use super::error::DockerSessionError;
use super::sandbox_dialer::SandboxDialer;
use crate::cri::exec::kill_exec;
use crate::docker::{
    ContainerInspect, DockerApi, DockerError, ExecCreate, FeedError, Hijacked, Output, OutputDemux,
};
use crate::host::Host;
use crate::index::Index;
use crate::streaming::channel::StreamStatus;
use crate::streaming::port_forward;
use crate::streaming::remote_command::{RemoteCommand, ResizeEvents, StreamOptions};
use crate::streaming::session::{Attach, Exec, Handoff, Sessions, StreamRequest};
use crate::streaming::session_io::PipeReader;
use crate::streaming::spdy_session::STREAM_CREATION_TIMEOUT;
use crate::supervisor::spawn_scoped_named;

/// Bytes read from dockerd's side of a session at a time; dockerd writes
/// at most 32 KiB per frame.
const OUTPUT_READ_BYTES: usize = 32 * 1024;

/// Exit-code reads after the output ended while dockerd still reports the
/// exec as running (it records the exit a moment after closing the
/// stream). The pause between reads doubles from the first to the longest.
const EXIT_CODE_POLLS: u32 = 12;
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(10);
const LONGEST_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Tries per terminal size: dockerd refuses a resize until the process's
/// TTY exists, a moment after the start call returned.
const RESIZE_ATTEMPTS: u32 = 5;
const RESIZE_RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// Exec, attach and port-forward sessions on dockerd.
#[derive(Debug, Clone)]
pub struct DockerSessions {
    docker: Arc<dyn DockerApi>,
    host: Arc<dyn Host>,
    /// Where port forwarding finds a sandbox's main process.
    index: Arc<Index>,
}

impl DockerSessions {
    pub fn new(
        docker: Arc<dyn DockerApi>,
        index: Arc<Index>,
        host: Arc<dyn Host>,
    ) -> DockerSessions {
        DockerSessions {
            docker,
            host,
            index,
        }
    }

    fn serve_exec(&self, request: Exec, handoff: Handoff) {
        let container = request.container_id.as_str();
        let options = StreamOptions {
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
            tty: request.tty,
        };
        let Some(mut remote) = open_session(handoff, options, "exec in container", container)
        else {
            return;
        };
        let (exec_id, hijacked) = match self.start_exec(&request, &remote) {
            Ok(Some(started)) => started,
            Ok(None) => return remote.close(None),
            Err(err) => {
                log::info!("exec in container {container} failed: {err}");
                return remote.close(Some(&StreamStatus::exec_failed(&err)));
            }
        };
        let docker = &*self.docker;
        let exec = exec_id.as_str();
        thread::scope(|scope| {
            let copied = relay(
                scope,
                hijacked,
                options.tty,
                &mut remote,
                Box::new(|height, width| docker.resize_exec(exec, height, width)),
            );
            let status = if remote.hangup().is_hung_up() {
                log::info!("exec {exec} in container {container}: the client went away");
                self.kill_abandoned(exec);
                None
            } else {
                let outcome = copied.and_then(|()| self.exit_code(exec));
                if outcome.is_err() {
                    self.kill_abandoned(exec);
                }
                Some(match outcome {
                    Ok(code) => StreamStatus::exited(code),
                    Err(err) => {
                        log::info!("exec {exec} in container {container} failed: {err}");
                        StreamStatus::exec_failed(&err)
                    }
                })
            };
            remote.close(status.as_ref());
        });
    }

    /// Creates and starts the exec; `None` if the client left first.
    fn start_exec(
        &self,
        request: &Exec,
        remote: &RemoteCommand,
    ) -> Result<Option<(String, Hijacked)>, DockerSessionError> {
        let container = &request.container_id;
        self.running_container(container)?;
        if remote.hangup().is_hung_up() {
            return Ok(None);
        }
        let config = ExecCreate {
            attach_stdin: request.stdin,
            attach_stdout: request.stdout,
            attach_stderr: request.stderr,
            tty: request.tty,
            cmd: request.cmd.clone(),
            ..ExecCreate::default()
        };
        let exec_id = self
            .docker
            .create_exec(container, &config, None)
            .map_err(DockerSessionError::ExecSetup)?;
        let hijacked = self
            .docker
            .start_exec(&exec_id, request.tty)
            .map_err(DockerSessionError::Docker)?;
        Ok(Some((exec_id, hijacked)))
    }

    fn serve_attach(&self, request: Attach, handoff: Handoff) {
        let container = request.container_id.as_str();
        let options = StreamOptions {
            stdin: request.stdin,
            stdout: request.stdout,
            stderr: request.stderr,
            tty: request.tty,
        };
        let Some(mut remote) = open_session(handoff, options, "attach to container", container)
        else {
            return;
        };
        let attached = self.running_container(container).and_then(|inspect| {
            let hijacked = self
                .docker
                .attach_container(container, options.stdin, options.stdout, options.stderr)
                .map_err(DockerSessionError::Docker)?;
            // The container's own TTY setting decides how dockerd frames
            // its output, whatever the request says.
            Ok((inspect.config.tty, hijacked))
        });
        let (raw, hijacked) = match attached {
            Ok(attached) => attached,
            Err(err) => {
                log::info!("attach to container {container} failed: {err}");
                return remote.close(Some(&StreamStatus::attach_failed(&err)));
            }
        };
        let docker = &*self.docker;
        thread::scope(|scope| {
            let copied = relay(
                scope,
                hijacked,
                raw,
                &mut remote,
                Box::new(|height, width| docker.resize_container(container, height, width)),
            );
            let status = if remote.hangup().is_hung_up() {
                log::debug!("attach to container {container}: the client went away");
                None
            } else {
                Some(match copied {
                    Ok(()) => StreamStatus::Success,
                    Err(err) => {
                        log::info!("attach to container {container} failed: {err}");
                        StreamStatus::attach_failed(&err)
                    }
                })
            };
            remote.close(status.as_ref());
        });
    }

    /// Inspects the container, refusing one that is not running, as the
    /// reference runtime does before exec and attach.
    fn running_container(&self, container: &str) -> Result<ContainerInspect, DockerSessionError> {
        let inspect = self
            .docker
            .inspect_container(container)
            .map_err(DockerSessionError::Docker)?
            .ok_or_else(|| DockerSessionError::NotFound {
                container: container.to_owned(),
            })?;
        if !inspect.state.running {
            return Err(DockerSessionError::NotRunning {
                container: inspect.id,
            });
        }
        Ok(inspect)
    }

    /// The exit code once dockerd has recorded it.
    fn exit_code(&self, exec_id: &str) -> Result<i32, DockerSessionError> {
        for poll in 0..EXIT_CODE_POLLS {
            let exec = self
                .docker
                .inspect_exec(exec_id, None)
                .map_err(DockerSessionError::Docker)?;
            if let (false, Some(code)) = (exec.running, exec.exit_code) {
                return Ok(code);
            }
            thread::sleep(
                FIRST_POLL_INTERVAL
                    .saturating_mul(1 << poll.min(16))
                    .min(LONGEST_POLL_INTERVAL),
            );
        }
        Err(DockerSessionError::NoExitCode {
            exec_id: exec_id.to_owned(),
        })
    }

    /// Kills what is left of an exec whose session ended early.
    fn kill_abandoned(&self, exec_id: &str) {
        match kill_exec(&*self.docker, self.host.as_ref(), exec_id) {
            Ok(0) => {}
            Ok(killed) => log::info!("exec {exec_id}: killed {killed} processes left behind"),
            Err(err) => log::warn!("exec {exec_id}: cannot kill the processes left behind: {err}"),
        }
    }
}

impl Sessions for DockerSessions {
    fn serve(&self, request: StreamRequest, handoff: Handoff) {
        match request {
            StreamRequest::Exec(request) => self.serve_exec(request, handoff),
            StreamRequest::Attach(request) => self.serve_attach(request, handoff),
            StreamRequest::PortForward(request) => {
                let dialer = SandboxDialer::new(&self.index, &request.pod_sandbox_id);
                port_forward::serve(&request, handoff, &dialer, STREAM_CREATION_TIMEOUT);
            }
        }
    }
}

/// Resizes the session's terminal to a height and width. Boxed, so that
/// exec and attach share one copy of the relay.
type Resize<'a> = dyn Fn(u16, u16) -> Result<(), DockerError> + Send + 'a;

/// Connects the client's streams to a hijacked dockerd connection until
/// dockerd's output ends (or the client goes, which shuts dockerd's
/// connection down). `raw`: the output is a TTY's, not multiplexed.
/// Threads copying stdin and applying sizes run in `scope`; they end once
/// the client's session closes.
fn relay<'scope>(
    scope: &'scope Scope<'scope, '_>,
    hijacked: Hijacked,
    raw: bool,
    remote: &mut RemoteCommand,
    resize: Box<Resize<'scope>>,
) -> Result<(), DockerSessionError> {
    let (socket, early) = hijacked.into_parts();
    let clone = || {
        socket
            .try_clone()
            .map_err(|err| DockerSessionError::Output(DockerError::Io(err)))
    };
    let result = (|| {
        let watched = clone()?;
        remote.hangup().on_hang_up(move || {
            let _ = watched.shutdown(Shutdown::Both);
        });
        let stdin_writer = Hijacked::new(clone()?, Vec::new());
        match remote.stdin.take() {
            Some(stdin) => {
                spawn_scoped_named(
                    scope,
                    "session-stdin".to_owned(),
                    Box::new(move || copy_stdin(stdin, stdin_writer)),
                )
                .map_err(DockerSessionError::Thread)?;
            }
            // As the reference runtime does: no stdin, so end it at once.
            None => {
                let _ = stdin_writer.close_write();
            }
        }
        if let Some(sizes) = remote.resize.take() {
            spawn_scoped_named(
                scope,
                "session-resize".to_owned(),
                Box::new(move || apply_sizes(sizes, &*resize)),
            )
            .map_err(DockerSessionError::Thread)?;
        }
        let output = Cursor::new(early).chain(&socket);
        copy_output(output, remote.stdout.as_mut(), remote.stderr.as_mut(), raw)
    })();
    // Whatever happened, nothing may stay blocked on dockerd.
    let _ = socket.shutdown(Shutdown::Both);
    result
}

/// Copies what the client types to the process; the client closing stdin
/// (or going) closes the process's stdin while its output keeps flowing.
fn copy_stdin(mut stdin: PipeReader, mut docker: Hijacked) {
    if let Err(err) = io::copy(&mut stdin, &mut docker) {
        log::debug!("copying stdin to dockerd stopped: {err}");
    }
    if let Err(err) = docker.close_write() {
        log::debug!("cannot close stdin at dockerd: {err}");
    }
}

/// Applies each terminal size the client sends, skipping empty ones, which
/// dockerd cannot apply.
fn apply_sizes(sizes: ResizeEvents, resize: &Resize<'_>) {
    for size in sizes {
        if size.width == 0 || size.height == 0 {
            continue;
        }
        for attempt in 1..=RESIZE_ATTEMPTS {
            match resize(size.height, size.width) {
                Ok(()) => break,
                Err(err) if attempt == RESIZE_ATTEMPTS => {
                    log::debug!(
                        "cannot resize the terminal to {}x{}: {err}",
                        size.width,
                        size.height
                    );
                }
                Err(_) => thread::sleep(RESIZE_RETRY_INTERVAL.saturating_mul(attempt)),
            }
        }
    }
}

/// The session's streams once the client has opened them; `None`, logged
/// as `what` `container`, when it does not.
fn open_session(
    handoff: Handoff,
    options: StreamOptions,
    what: &str,
    container: &str,
) -> Option<RemoteCommand> {
    RemoteCommand::open(handoff, options, STREAM_CREATION_TIMEOUT)
        .inspect_err(|err| log::info!("{what} {container}: no session: {err}"))
        .ok()
}

/// Copies dockerd's output to the client until it ends: raw onto stdout
/// for a TTY, else demultiplexed (echoed stdin goes to stdout, as Docker's
/// own client does). Output for a stream the client did not ask for is
/// dropped.
fn copy_output<W: Write>(
    mut source: impl Read,
    mut stdout: Option<&mut W>,
    mut stderr: Option<&mut W>,
    raw: bool,
) -> Result<(), DockerSessionError> {
    let mut buffer = vec![0u8; OUTPUT_READ_BYTES];
    let mut demux = OutputDemux::default();
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(DockerSessionError::Output(DockerError::Io(err))),
        };
        if raw {
            send(&mut stdout, &buffer[..read])?;
            continue;
        }
        let fed = demux.feed(&buffer[..read], |output, data, _| match output {
            Output::Stdout => send(&mut stdout, data),
            Output::Stderr => send(&mut stderr, data),
        });
        fed.map_err(|err| match err {
            FeedError::Stream(err) => DockerSessionError::Output(err),
            FeedError::Sink(err) => err,
        })?;
    }
    if raw {
        Ok(())
    } else {
        demux.finish().map_err(DockerSessionError::Output)
    }
}

fn send<W: Write>(stream: &mut Option<&mut W>, data: &[u8]) -> Result<(), DockerSessionError> {
    match stream {
        Some(stream) => stream.write_all(data).map_err(DockerSessionError::Client),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::streaming::session_io::pipe;
    use std::sync::Mutex;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn copy(
        input: &[u8],
        stdout: bool,
        stderr: bool,
        raw: bool,
    ) -> (Result<(), DockerSessionError>, Vec<u8>, Vec<u8>) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = copy_output(
            input,
            stdout.then_some(&mut out),
            stderr.then_some(&mut err),
            raw,
        );
        (result, out, err)
    }

    #[test]
    fn multiplexed_output_is_split_and_echoed_stdin_joins_stdout() {
        let mut input = frame(1, b"out ");
        input.extend(frame(2, b"err"));
        input.extend(frame(0, b"echo"));
        let (result, out, err) = copy(&input, true, true, false);
        result.unwrap();
        assert_eq!((&out[..], &err[..]), (&b"out echo"[..], &b"err"[..]));
    }

    #[test]
    fn output_for_a_stream_not_asked_for_is_dropped() {
        let mut input = frame(1, b"out");
        input.extend(frame(2, b"err"));
        let (result, out, err) = copy(&input, true, false, false);
        result.unwrap();
        assert_eq!((&out[..], &err[..]), (&b"out"[..], &b""[..]));
    }

    #[test]
    fn tty_output_is_copied_raw_to_stdout() {
        let input = b"\x01\x00\x00\x00 not a header\r\n";
        let (result, out, _) = copy(input, true, false, true);
        result.unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn a_daemon_error_in_the_stream_fails_with_its_text() {
        let mut input = frame(1, b"partial");
        input.extend(frame(3, b"exec failed: no such file"));
        let (result, out, _) = copy(&input, true, true, false);
        assert_eq!(out, b"partial");
        match result {
            Err(DockerSessionError::Output(DockerError::Stream(message))) => {
                assert_eq!(message, "exec failed: no such file")
            }
            other => panic!("expected the daemon's error, got {other:?}"),
        }
    }

    #[test]
    fn output_ending_inside_a_frame_is_malformed() {
        let input = frame(1, b"hello");
        let (result, _, _) = copy(&input[..10], true, true, false);
        assert!(matches!(
            result,
            Err(DockerSessionError::Output(DockerError::Protocol(_)))
        ));
    }

    /// A client stream that no longer accepts output.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_client_that_cannot_take_output_is_told_apart_from_dockerd_failing() {
        let input = frame(1, b"out");
        let result = copy_output(&input[..], Some(&mut Gone), None, false);
        assert!(matches!(result, Err(DockerSessionError::Client(_))));
    }

    fn resize_events(messages: &[&[u8]]) -> ResizeEvents {
        let (writer, reader) = pipe(4096);
        for message in messages {
            assert!(writer.send(message));
        }
        drop(writer);
        ResizeEvents::from_pipe(reader)
    }

    #[test]
    fn sizes_are_applied_in_order_skipping_empty_ones_and_retrying_failures() {
        let applied = Mutex::new(Vec::new());
        let failures_left = Mutex::new(2);
        let sizes = resize_events(&[
            br#"{"Width":80,"Height":24}"#,
            br#"{"Width":0,"Height":24}"#,
            br#"{"Width":100,"Height":30}"#,
        ]);
        apply_sizes(sizes, &|height, width| {
            let mut failures = failures_left.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(DockerError::Api {
                    status: 500,
                    message: "no TTY yet".to_owned(),
                });
            }
            applied.lock().unwrap().push((width, height));
            Ok(())
        });
        assert_eq!(*applied.lock().unwrap(), vec![(80, 24), (100, 30)]);
    }

    #[test]
    fn a_size_that_keeps_failing_is_given_up_and_the_next_is_applied() {
        let calls = Mutex::new(Vec::new());
        let sizes = resize_events(&[br#"{"Width":1,"Height":1}{"Width":2,"Height":2}"#]);
        apply_sizes(sizes, &|height, width| {
            calls.lock().unwrap().push((width, height));
            if width == 1 {
                Err(DockerError::Api {
                    status: 500,
                    message: "refused".to_owned(),
                })
            } else {
                Ok(())
            }
        });
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), RESIZE_ATTEMPTS as usize + 1);
        assert_eq!(calls.last(), Some(&(2, 2)));
    }
}
