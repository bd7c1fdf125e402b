//! Executing one CNI plugin: [`PluginExec`] is the seam the runner calls,
//! [`ProcessExec`] runs the binary as a child process.
//!
//! It owns finding the binary in the plugin directories, feeding stdin,
//! bounded capture of stdout and stderr, the timeout (which kills the
//! plugin's whole process group) and reading the CNI error format. It does
//! not build configurations or interpret results.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use serde_json::Value;

use super::{CniCommand, CniError};
use crate::codec::json::{self, Fields, FromJson};
use crate::mailbox::{self, Sender};
use crate::network::cni_config::find_plugin;
use crate::supervisor::spawn_named;

/// How long one plugin execution may take before it is killed. Plugins
/// normally answer in well under a second.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest result a plugin may print; real results are a few KiB.
pub const MAX_PLUGIN_STDOUT_BYTES: usize = 1 << 20;

/// Plugin stderr kept for error messages; the rest is discarded.
const MAX_PLUGIN_STDERR_BYTES: usize = 4 << 10;

/// One plugin execution, as [`PluginExec`] receives it.
#[derive(Debug, Clone, Copy)]
pub struct PluginCall<'a> {
    pub command: CniCommand,
    /// The plugin's `type`: an executable's file name in `bin_dirs`.
    pub plugin_type: &'a str,
    pub bin_dirs: &'a [PathBuf],
    /// The `CNI_*` variables, in addition to dockshim's own environment.
    pub env: &'a [(&'static str, String)],
    /// The configuration to write to the plugin's stdin.
    pub stdin: &'a [u8],
}

/// Runs one plugin and returns its stdout if it succeeded.
pub trait PluginExec: fmt::Debug + Send + Sync {
    fn exec(&self, call: &PluginCall<'_>) -> Result<Vec<u8>, CniError>;
}

/// Plugins run as child processes.
#[derive(Debug, Clone)]
pub struct ProcessExec {
    timeout: Duration,
}

/// What the helper threads of one execution report.
enum Event {
    Exited,
    Stdout(io::Result<Captured>),
    Stderr(io::Result<Captured>),
}

/// Output read from a pipe, up to a limit.
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

impl ProcessExec {
    /// Plugins that run longer than `timeout` are killed.
    pub fn new(timeout: Duration) -> ProcessExec {
        ProcessExec { timeout }
    }

    /// Feeds stdin, collects stdout and stderr, and waits for the exit,
    /// all within the timeout; on timeout the plugin's whole process group
    /// is killed.
    fn supervise(
        &self,
        child: &mut Child,
        call: &PluginCall<'_>,
    ) -> Result<(ExitStatus, Captured, Captured), CniError> {
        let plugin = call.plugin_type;
        let io_error = |action, source| CniError::Io {
            plugin: plugin.to_owned(),
            action,
            source,
        };
        let pid = i32::try_from(child.id())
            .map(Pid::from_raw)
            .map_err(|_| io_error("track", io::Error::other("process ID out of range")))?;
        let (events, received) = mailbox::channel();
        let spawned = self.spawn_helpers(child, call, pid, &events);
        drop(events);
        if let Err(source) = spawned {
            kill_group(pid, child);
            return Err(io_error("start a helper thread", source));
        }

        let deadline = Instant::now() + self.timeout;
        let (mut exited, mut stdout, mut stderr) = (false, None, None);
        while !exited || stdout.is_none() || stderr.is_none() {
            match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Exited) => exited = true,
                Ok(Event::Stdout(captured)) => stdout = Some(captured),
                Ok(Event::Stderr(captured)) => stderr = Some(captured),
                Err(RecvTimeoutError::Timeout) => {
                    kill_group(pid, child);
                    return Err(CniError::Timeout {
                        plugin: plugin.to_owned(),
                        command: call.command,
                        after: self.timeout,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    kill_group(pid, child);
                    return Err(io_error(
                        "supervise",
                        io::Error::other("helper threads ended without reporting"),
                    ));
                }
            }
        }
        let status = child
            .wait()
            .map_err(|source| io_error("wait for", source))?;
        let missing = || io::Error::other("no output was collected");
        let stdout = stdout.ok_or_else(missing).and_then(|read| read);
        let stderr = stderr.ok_or_else(missing).and_then(|read| read);
        match (stdout, stderr) {
            (Ok(stdout), Ok(stderr)) => Ok((status, stdout, stderr)),
            (Err(source), _) | (_, Err(source)) => Err(io_error("read the output of", source)),
        }
    }

    fn spawn_helpers(
        &self,
        child: &mut Child,
        call: &PluginCall<'_>,
        pid: Pid,
        events: &Sender<Event>,
    ) -> io::Result<()> {
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(io::Error::other("the child's pipes are missing"));
        };
        let input = call.stdin.to_vec();
        spawn_named(
            "cni-stdin".to_owned(),
            Box::new(move || {
                // A plugin may exit without reading all of its input; the
                // broken pipe that causes is its business, not a failure
                // here.
                let _ = stdin.write_all(&input);
            }),
        )?;
        let tx = events.clone();
        spawn_named(
            "cni-stdout".to_owned(),
            Box::new(move || {
                let _ = tx.send(Event::Stdout(read_capped(
                    &mut stdout,
                    MAX_PLUGIN_STDOUT_BYTES,
                )));
            }),
        )?;
        let tx = events.clone();
        spawn_named(
            "cni-stderr".to_owned(),
            Box::new(move || {
                let _ = tx.send(Event::Stderr(read_capped(
                    &mut stderr,
                    MAX_PLUGIN_STDERR_BYTES,
                )));
            }),
        )?;
        let tx = events.clone();
        spawn_named(
            "cni-wait".to_owned(),
            Box::new(move || {
                // WNOWAIT leaves the child unreaped, so its pid (and process
                // group id) cannot be reused before the supervisor, which
                // alone reaps it, is done signalling it.
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
                while matches!(waitid(Id::Pid(pid), flags), Err(Errno::EINTR)) {}
                let _ = tx.send(Event::Exited);
            }),
        )?;
        Ok(())
    }
}

impl PluginExec for ProcessExec {
    fn exec(&self, call: &PluginCall<'_>) -> Result<Vec<u8>, CniError> {
        let plugin = call.plugin_type;
        let not_found = || CniError::PluginNotFound {
            plugin: plugin.to_owned(),
            bin_dirs: call.bin_dirs.to_vec(),
        };
        // The type becomes a path; it must stay inside the plugin dirs.
        if plugin.contains('/') || plugin == "." || plugin == ".." {
            return Err(not_found());
        }
        let binary = find_plugin(plugin, call.bin_dirs).ok_or_else(not_found)?;
        let mut child = Command::new(&binary)
            .envs(call.env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .spawn()
            .map_err(|source| CniError::Io {
                plugin: plugin.to_owned(),
                action: "start",
                source,
            })?;
        let (status, stdout, stderr) = self.supervise(&mut child, call)?;
        let stderr_text = String::from_utf8_lossy(&stderr.bytes).trim().to_owned();
        if status.success() {
            if !stderr_text.is_empty() {
                log::debug!("CNI plugin {plugin} {}: {stderr_text}", call.command);
            }
            if stdout.truncated {
                return Err(CniError::OutputTooLarge {
                    plugin: plugin.to_owned(),
                    limit: MAX_PLUGIN_STDOUT_BYTES,
                });
            }
            return Ok(stdout.bytes);
        }
        if let Some(error) = (!stdout.truncated)
            .then(|| json::decode::<PluginErrorJson>(&stdout.bytes).ok())
            .flatten()
        {
            return Err(CniError::Plugin {
                plugin: plugin.to_owned(),
                command: call.command,
                code: error.code,
                msg: error.msg,
                details: error.details,
            });
        }
        let mut message = stderr_text;
        if stderr.truncated {
            message.push_str(" [truncated]");
        }
        if message.is_empty() {
            message = String::from_utf8_lossy(&stdout.bytes).trim().to_owned();
        }
        Err(CniError::Failed {
            plugin: plugin.to_owned(),
            command: call.command,
            status: status.to_string(),
            stderr: message.chars().take(MAX_PLUGIN_STDERR_BYTES).collect(),
        })
    }
}

/// The CNI error format; `code` is required to tell it from a result.
struct PluginErrorJson {
    code: u64,
    msg: String,
    details: String,
}

impl FromJson for PluginErrorJson {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(PluginErrorJson {
            code: fields.required("code"),
            msg: fields.field("msg"),
            details: fields.field("details"),
        })
    }
}

/// Kills the plugin and everything in its process group, then reaps it.
fn kill_group(pid: Pid, child: &mut Child) {
    // The group may already be empty; nothing is left to kill then.
    let _ = killpg(pid, Signal::SIGKILL);
    if let Err(err) = child.wait() {
        log::warn!("cannot reap CNI plugin process {pid}: {err}");
    }
}

/// Reads `pipe` to its end, keeping the first `limit` bytes. One body for
/// both pipes: `dyn` rather than generic.
fn read_capped(pipe: &mut dyn Read, limit: usize) -> io::Result<Captured> {
    let mut bytes = Vec::new();
    pipe.take(limit as u64).read_to_end(&mut bytes)?;
    // Drain the rest so the plugin never blocks on a full pipe.
    let extra = io::copy(pipe, &mut io::sink())?;
    Ok(Captured {
        bytes,
        truncated: extra > 0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::thread;

    /// A plugin directory holding one shell script named `name`.
    ///
    /// The executable is written by `cp`, not by this process: a child
    /// forked meanwhile by another test thread would inherit our write
    /// descriptor until it execs, and running the script then fails with
    /// "Text file busy".
    fn script_plugin(name: &str, body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join(format!("{name}.txt"));
        let path = dir.path().join(name);
        fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
        let copied = Command::new("cp").arg(&source).arg(&path).status();
        assert!(copied.unwrap().success());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn call_script(dir: &Path, timeout: Duration, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
        let bin_dirs = [dir.to_path_buf()];
        let env = [
            ("CNI_COMMAND", "ADD".to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
        ];
        ProcessExec::new(timeout).exec(&PluginCall {
            command: CniCommand::Add,
            plugin_type: "script",
            bin_dirs: &bin_dirs,
            env: &env,
            stdin,
        })
    }

    #[test]
    fn process_gets_env_and_stdin_and_its_stdout_is_returned() {
        let dir = script_plugin(
            "script",
            r#"printf '%s %s ' "$CNI_COMMAND" "$CNI_IFNAME"; cat"#,
        );
        let out = call_script(dir.path(), Duration::from_secs(10), b"{\"a\":1}").unwrap();
        assert_eq!(out, b"ADD eth0 {\"a\":1}");
    }

    #[test]
    fn process_error_json_becomes_a_plugin_error() {
        let dir = script_plugin(
            "script",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no ipam"}'; echo oops >&2; exit 1"#,
        );
        let err = call_script(dir.path(), Duration::from_secs(10), b"{}").unwrap_err();
        assert!(
            matches!(&err, CniError::Plugin { code: 7, msg, details, .. } if msg == "bad config" && details == "no ipam"),
            "{err}"
        );
    }

    #[test]
    fn process_failure_without_error_json_keeps_stderr() {
        let dir = script_plugin("script", "echo 'cannot open /dev/net' >&2; exit 3");
        let err = call_script(dir.path(), Duration::from_secs(10), b"{}").unwrap_err();
        assert!(matches!(err, CniError::Failed { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("cannot open /dev/net"),
            "{text}"
        );
    }

    #[test]
    fn process_past_its_timeout_is_killed_with_its_children() {
        let marker = tempfile::tempdir().unwrap();
        let survivor = marker.path().join("survived");
        let dir = script_plugin(
            "script",
            &format!("(sleep 2; touch {}) & sleep 30", survivor.display()),
        );
        let started = Instant::now();
        let err = call_script(dir.path(), Duration::from_millis(300), b"{}").unwrap_err();
        assert!(matches!(err, CniError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(2500));
        assert!(
            !survivor.exists(),
            "a child of the plugin outlived the timeout"
        );
    }

    #[test]
    fn process_output_beyond_the_limit_is_refused() {
        let dir = script_plugin("script", "head -c 2000000 /dev/zero");
        let err = call_script(dir.path(), Duration::from_secs(10), b"{}").unwrap_err();
        assert!(matches!(err, CniError::OutputTooLarge { .. }), "{err}");
    }

    #[test]
    fn plugin_that_ignores_its_stdin_still_succeeds() {
        let dir = script_plugin("script", "echo '{}'");
        let out = call_script(dir.path(), Duration::from_secs(10), &vec![b' '; 1 << 20]).unwrap();
        assert_eq!(out, b"{}\n");
    }

    #[test]
    fn missing_or_path_like_plugin_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = call_script(dir.path(), Duration::from_secs(1), b"{}").unwrap_err();
        assert!(matches!(err, CniError::PluginNotFound { .. }), "{err}");
        let bin_dirs = [dir.path().to_path_buf()];
        let err = ProcessExec::new(Duration::from_secs(1))
            .exec(&PluginCall {
                command: CniCommand::Add,
                plugin_type: "../../bin/sh",
                bin_dirs: &bin_dirs,
                env: &[],
                stdin: b"{}",
            })
            .unwrap_err();
        assert!(matches!(err, CniError::PluginNotFound { .. }), "{err}");
    }
}
