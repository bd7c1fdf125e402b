//! `Dockshim`: the real binary running in a temporary directory that holds its
//! socket, root directory and CNI configuration, killed and cleaned up on drop.
//! Its stderr goes to a file that is printed when the test fails.

use std::fs::{self, File};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::client::CriClient;
use super::docker::docker_socket;

/// How long the binary may take to accept connections on its socket.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where Debian's containernetworking-plugins puts the CNI plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// What to start dockshim with; `Default` points it at the real dockerd.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dockerd socket to use, e.g. a `DockerProxy`'s.
    pub docker_socket: PathBuf,
    /// Written as `10-test.conflist` into `--cni-conf-dir` before start.
    pub cni_conflist: Option<String>,
    /// Appended to the fixture's own flags, which they override (the last
    /// of a repeated flag wins).
    pub extra_args: Vec<String>,
    /// Added to the environment of this process only: a [`Restarted`]
    /// one does without them, as after a crash fixed by a restart.
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            docker_socket: PathBuf::from(docker_socket()),
            cni_conflist: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running `dockshim` process.
#[derive(Debug)]
pub struct Dockshim {
    child: Child,
    args: Vec<String>,
    socket: PathBuf,
    stderr_path: PathBuf,
    dir: TempDir,
}

impl Dockshim {
    /// Starts dockshim against the real dockerd with an empty CNI directory.
    pub fn start() -> Dockshim {
        Dockshim::start_with(Options::default())
    }

    /// Starts dockshim and waits until its socket accepts connections.
    pub fn start_with(options: Options) -> Dockshim {
        let dir = tempfile::Builder::new()
            .prefix("dockshim-e2e")
            .tempdir()
            .expect("create the test directory");
        let socket = dir.path().join("dockshim.sock");
        let conf_dir = dir.path().join("net.d");
        fs::create_dir(&conf_dir).unwrap();
        if let Some(conflist) = &options.cni_conflist {
            fs::write(conf_dir.join("10-test.conflist"), conflist).unwrap();
        }
        let mut args: Vec<String> = vec![
            // A configuration file on the machine must not reach the tests.
            "--config=".into(),
            "--container-runtime-endpoint".into(),
            format!("unix://{}", socket.display()),
            "--docker-endpoint".into(),
            format!("unix://{}", options.docker_socket.display()),
            "--root-directory".into(),
            dir.path().join("root").display().to_string(),
            "--cni-conf-dir".into(),
            conf_dir.display().to_string(),
            "--cni-bin-dir".into(),
            CNI_BIN_DIR.into(),
            "--cni-cache-dir".into(),
            dir.path().join("cni-cache").display().to_string(),
            // The built-in network's bridge belongs to the host's own
            // dockshim: a test that wants one names its own bridge.
            "--default-network".into(),
            "off".into(),
            // A node's own cri-dockerd state is not the tests' to adopt.
            "--migrate-from-cri-dockerd=off".into(),
            "--log-level".into(),
            "debug".into(),
        ];
        args.extend(options.extra_args);
        let stderr_path = dir.path().join("dockshim.stderr");
        let child = spawn_with_env(&args, &options.env, &stderr_path);
        let mut dockshim = Dockshim {
            child,
            args,
            socket,
            stderr_path,
            dir,
        };
        dockshim.wait_until_serving();
        dockshim
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "dockshim exited during start-up with {status}; stderr:\n{}",
                    self.stderr()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockshim did not accept connections on {} within {STARTUP_TIMEOUT:?}",
                    self.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The flags this instance was started with: same socket, same root.
    pub fn same_args(&self) -> Vec<String> {
        self.args.clone()
    }

    /// Path of the CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `--cni-conf-dir` directory.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    /// A tonic client connected to the CRI socket.
    pub async fn client(&self) -> CriClient {
        CriClient::connect(&self.socket).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Number of threads in the process, from `/proc/<pid>/task`.
    pub fn thread_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("read the process's task directory")
            .count()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        let pid = i32::try_from(self.pid()).expect("pid fits in i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("send SIGTERM");
    }

    /// Waits for the process to exit; panics (after killing it) on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => status,
            None => panic!(
                "dockshim still running {timeout:?} after being asked to exit; stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Dockshim {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- dockshim stderr ({}) ----\n{}---- end of dockshim stderr ----",
                self.args.join(" "),
                self.stderr()
            );
        }
    }
}

/// A second dockshim process on a first one's flags (same socket, same
/// root), as after a crash; killed on drop, its log printed if the test
/// failed.
#[derive(Debug)]
pub struct Restarted {
    child: Child,
    log: PathBuf,
}

impl Restarted {
    /// Starts dockshim again with `first`'s flags, its output in `log`,
    /// without waiting for it to serve.
    pub fn spawn(first: &Dockshim, log: PathBuf) -> Restarted {
        Restarted {
            child: spawn(&first.same_args(), &log),
            log,
        }
    }

    /// As [`Restarted::spawn`], then waits until the socket accepts
    /// connections.
    pub fn start(first: &Dockshim, log: PathBuf) -> Restarted {
        let mut restarted = Restarted::spawn(first, log);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while UnixStream::connect(first.socket()).is_err() {
            if let Some(status) = restarted.child.try_wait().unwrap() {
                panic!("the restarted dockshim exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the restarted dockshim did not accept connections within {STARTUP_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        restarted
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- restarted dockshim ----\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Spawns the binary with `args`, stdout and stderr appended to `log_path`.
pub fn spawn(args: &[String], log_path: &Path) -> Child {
    spawn_with_env(args, &[], log_path)
}

/// As [`spawn`], with `env` added to the binary's environment.
fn spawn_with_env(args: &[String], env: &[(String, String)], log_path: &Path) -> Child {
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open the log file");
    let stdout = stderr.try_clone().expect("duplicate the log file");
    Command::new(env!("CARGO_BIN_EXE_dockshim"))
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn the dockshim binary")
}

/// Waits up to `timeout` for `child` to exit; kills it and returns `None` if
/// it does not.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
