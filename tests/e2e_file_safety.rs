//! File and process safety, end to end: the real binary on the real dockerd
//! meets what a second instance, a container with part of the log
//! directory mounted, or a careless administrator leaves on the node —
//! symlinks planted at the socket, lock and log paths, a second instance
//! beside a socket systemd passed, a FIFO as a seccomp profile, a state
//! directory with a wide mode, a log path label that leaves its directory.
//! Each test checks that nothing outside the intended place was created,
//! written, removed or changed. Needs root (tests/run.sh runs it so).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::client::CriClient;
use common::docker::docker_socket;
use common::fixture::{wait_timeout, CNI_BIN_DIR};
use common::pod::{World, RUN_LABEL};
use common::{busybox_image, test_run_label};
use dockshim::api::v1 as cri;
use dockshim::api::v1::security_profile::ProfileType;
use tonic::Code;

/// How long an instance may take to start serving, or to give up.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// A call that must not block: a FIFO must not hold a worker.
const PROMPT_ANSWER: Duration = Duration::from_secs(10);
/// Longer than the log keeper waits before it adopts a running container
/// (`ADOPT_AFTER`) plus one sweep.
const KEEPER_ADOPTS_WITHIN: Duration = Duration::from_secs(15);

/// A dockshim process started by hand (the fixture cannot pass sockets
/// or choose the directories), killed on drop, its log printed if the test
/// failed.
struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    /// Starts the binary with `endpoint` and the state under `dir`; with
    /// `activated`, the listener is passed as systemd passes it
    /// (descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` set by the child itself).
    fn spawn(dir: &Path, name: &str, endpoint: &str, activated: Option<&UnixListener>) -> Instance {
        let log = dir.join(format!("{name}.log"));
        let output = fs::File::create(&log).unwrap();
        let conf_dir = dir.join("net.d");
        fs::create_dir_all(&conf_dir).unwrap();
        let mut args: Vec<String> = vec![
            "--container-runtime-endpoint".into(),
            endpoint.into(),
            "--docker-endpoint".into(),
            format!("unix://{}", docker_socket()),
            "--root-directory".into(),
            dir.join(format!("{name}-root")).display().to_string(),
            "--cni-conf-dir".into(),
            conf_dir.display().to_string(),
            "--cni-bin-dir".into(),
            CNI_BIN_DIR.into(),
            "--cni-cache-dir".into(),
            dir.join("cni-cache").display().to_string(),
            "--log-level".into(),
            "debug".into(),
        ];
        let mut command = match activated {
            None => Command::new(env!("CARGO_BIN_EXE_dockshim")),
            Some(_) => {
                // LISTEN_PID must name the process that reads it: the
                // shell's own PID survives its exec.
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
                    .arg(env!("CARGO_BIN_EXE_dockshim"));
                shell
            }
        };
        command
            .args(args.drain(..))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output);
        if let Some(listener) = activated {
            let inherited = listener.as_raw_fd();
            // SAFETY: the closure runs in the forked child just before exec
            // and only calls dup2 and fcntl, which are async-signal-safe;
            // it puts the listener on descriptor 3 without close-on-exec,
            // as systemd does.
            unsafe {
                command.pre_exec(move || {
                    let placed = if inherited == 3 {
                        nix::libc::fcntl(3, nix::libc::F_SETFD, 0)
                    } else {
                        nix::libc::dup2(inherited, 3)
                    };
                    if placed < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Instance {
            child: command.spawn().unwrap(),
            log,
        }
    }

    /// Waits until the instance answers Version on `socket`.
    async fn wait_until_serving(&mut self, socket: &Path) -> CriClient {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dockshim exited with {status}:\n{}", self.output());
            }
            if UnixStream::connect(socket).is_ok() {
                let client = CriClient::connect(socket).await;
                client.version().await.unwrap();
                return client;
            }
            assert!(Instant::now() < deadline, "dockshim did not serve in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the instance to give up; it must not serve.
    fn wait_for_failure(&mut self) -> ExitStatus {
        let status = wait_timeout(&mut self.child, START_TIMEOUT)
            .unwrap_or_else(|| panic!("dockshim kept running:\n{}", self.output()));
        assert!(!status.success(), "dockshim exited 0:\n{}", self.output());
        status
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), self.output());
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn running_as_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: these tests create sockets, containers and state as root");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_beside_a_systemd_socket_fails_and_leaves_the_socket_alone() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("dockshim-activated")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("dockshim.sock");
    // As a socket unit with SocketMode=0666 leaves it.
    let listener = UnixListener::bind(&socket).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let mut first = Instance::spawn(dir.path(), "first", "fd://", Some(&listener));
    let client = first.wait_until_serving(&socket).await;

    let path_mode = format!("unix://{}", socket.display());
    let mut second = Instance::spawn(dir.path(), "second", &path_mode, None);
    second.wait_for_failure();
    assert!(second.output().contains("in use"), "{}", second.output());

    let mut activated_again = Instance::spawn(dir.path(), "third", "fd://", Some(&listener));
    activated_again.wait_for_failure();
    assert!(
        activated_again.output().contains("in use"),
        "{}",
        activated_again.output()
    );

    let meta = fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket(), "the systemd socket is gone");
    assert_eq!(
        meta.mode() & 0o777,
        0o666,
        "the systemd socket's mode changed"
    );
    client
        .version()
        .await
        .expect("the first instance still serves");
}

#[test]
fn symlinks_planted_at_the_socket_and_lock_paths_are_never_followed() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("dockshim-planted")
        .tempdir()
        .unwrap();
    let target = dir.path().join("precious");
    fs::write(&target, b"precious").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let endpoint = |name: &str| format!("unix://{}", dir.path().join(name).display());

    // At the lock path: neither created nor truncated nor locked through.
    let missing = dir.path().join("missing");
    std::os::unix::fs::symlink(&missing, dir.path().join("a.sock.lock")).unwrap();
    let mut instance = Instance::spawn(dir.path(), "lock", &endpoint("a.sock"), None);
    instance.wait_for_failure();
    assert!(
        instance.output().contains("symlink"),
        "{}",
        instance.output()
    );
    assert!(!missing.exists(), "the lock symlink's target was created");

    // At the socket path: neither removed nor chmod'ed through.
    std::os::unix::fs::symlink(&target, dir.path().join("b.sock")).unwrap();
    let mut instance = Instance::spawn(dir.path(), "socket", &endpoint("b.sock"), None);
    instance.wait_for_failure();
    assert!(
        instance.output().contains("not a socket"),
        "{}",
        instance.output()
    );
    assert!(fs::symlink_metadata(dir.path().join("b.sock"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(mode_of(&target), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_directories_are_private_and_a_wide_one_of_dockshim_s_is_tightened() {
    if !running_as_root() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("dockshim-state")
        .tempdir()
        .unwrap();
    let fresh_root = dir.path().join("fresh-root");
    let socket = dir.path().join("fresh.sock");
    let mut fresh = Instance::spawn(
        dir.path(),
        "fresh",
        &format!("unix://{}", socket.display()),
        None,
    );
    fresh.wait_until_serving(&socket).await;
    for path in [
        fresh_root.clone(),
        fresh_root.join("sandbox"),
        fresh_root.join("owed-teardown"),
    ] {
        assert_eq!(mode_of(&path), 0o700, "{}", path.display());
    }
    drop(fresh);

    let wide_root = dir.path().join("wide-root");
    fs::create_dir_all(wide_root.join("sandbox")).unwrap();
    fs::set_permissions(&wide_root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(wide_root.join("sandbox"), fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("wide.sock");
    let mut wide = Instance::spawn(
        dir.path(),
        "wide",
        &format!("unix://{}", socket.display()),
        None,
    );
    wide.wait_until_serving(&socket).await;
    assert_eq!(mode_of(&wide_root.join("sandbox")), 0o700);
    assert_eq!(
        mode_of(&wide_root),
        0o755,
        "the administrator's root directory is only warned about"
    );
    assert!(wide.output().contains("expects 0700"), "{}", wide.output());
}

/// A container of `world` logging to `app/0.log`, created (not started).
async fn create_logging_to_app(world: &World, name: &str) -> String {
    fs::create_dir_all(world.logs.path().join("app")).unwrap();
    let mut config = world.config(name, &busybox_image(), "echo hello; sleep 30");
    config.log_path = "app/0.log".to_owned();
    world.create(config).await.unwrap()
}

/// Whether dockerd runs container `id`.
fn is_running(id: &str) -> bool {
    let inspect = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&inspect.stdout).trim() == "true"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_in_the_log_directory_after_create_is_refused_at_start() {
    if !running_as_root() {
        return;
    }
    let world = World::start().await;
    let outside = tempfile::Builder::new()
        .prefix("dockshim-outside")
        .tempdir()
        .unwrap();

    // The container's log directory swapped for a symlink.
    let id = create_logging_to_app(&world, "dir-swapped").await;
    fs::rename(
        world.logs.path().join("app"),
        world.logs.path().join("app-was"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), world.logs.path().join("app")).unwrap();
    let err = world.client.start_container(&id).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("is a symlink"), "{err:?}");
    assert!(!is_running(&id), "the refused container runs");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    fs::remove_file(world.logs.path().join("app")).unwrap();
    fs::rename(
        world.logs.path().join("app-was"),
        world.logs.path().join("app"),
    )
    .unwrap();

    // The log file itself a symlink to a file outside.
    let target = outside.path().join("target.log");
    fs::write(&target, b"precious").unwrap();
    let id = create_logging_to_app(&world, "file-swapped").await;
    std::os::unix::fs::symlink(&target, world.logs.path().join("app/0.log")).unwrap();
    let err = world.client.start_container(&id).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("is a symlink"), "{err:?}");
    assert!(!is_running(&id), "the refused container runs");
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_onto_a_planted_symlink_is_refused_and_writes_nothing_outside() {
    if !running_as_root() {
        return;
    }
    let world = World::start().await;
    let outside = tempfile::Builder::new()
        .prefix("dockshim-outside")
        .tempdir()
        .unwrap();
    let target = outside.path().join("target.log");
    fs::write(&target, b"precious").unwrap();
    let id = create_logging_to_app(&world, "reopened").await;
    world.client.start_container(&id).await.unwrap();
    let log = world.logs.path().join("app/0.log");
    // As the kubelet's rotation, with a symlink slipped in before the reopen.
    fs::rename(&log, world.logs.path().join("app/0.log.1")).unwrap();
    std::os::unix::fs::symlink(&target, &log).unwrap();
    let err = world.client.reopen_container_log(&id).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("is a symlink"), "{err:?}");
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_path_label_leaving_its_directory_is_never_written_after_a_restart() {
    if !running_as_root() {
        return;
    }
    let world = World::start().await;
    fs::create_dir_all(world.logs.path().join("app")).unwrap();
    let escape = world
        .logs
        .path()
        .parent()
        .unwrap()
        .join(format!("dockshim-escape-{}.log", world.run_id));
    let label_path = world
        .logs
        .path()
        .join("app/../..")
        .join(escape.file_name().unwrap());
    // A container as a dockshim before this one (or anyone with access to
    // dockerd) might have labelled it: dockshim's type and sandbox labels,
    // and a log path that resolves outside the pod's log directory.
    let run = Command::new("docker")
        .args(["run", "-d", "--name"])
        .arg(format!("dockshim-planted-{}", world.run_id))
        .args(["--label", "io.kubernetes.docker.type=container"])
        .arg("--label")
        .arg(format!("io.kubernetes.sandbox.id={}", world.sandbox_id))
        .arg("--label")
        .arg(format!(
            "io.kubernetes.container.logpath={}",
            label_path.display()
        ))
        .arg("--label")
        .arg(format!("{RUN_LABEL}={}", world.run_id))
        .arg("--label")
        .arg(test_run_label())
        .arg(busybox_image())
        .args(["sh", "-c", "while true; do echo planted; sleep 1; done"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deadline = Instant::now() + KEEPER_ADOPTS_WITHIN;
    while Instant::now() < deadline && !world.dockshim.stderr().contains("invalid log path") {
        std::thread::sleep(Duration::from_millis(100));
    }
    let escaped = escape.exists();
    let _ = fs::remove_file(&escape);
    assert!(!escaped, "{} was written", escape.display());
    assert!(
        world.dockshim.stderr().contains("invalid log path"),
        "the keeper never refused the planted log path"
    );
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_a_localhost_seccomp_profile_is_refused_at_once() {
    if !running_as_root() {
        return;
    }
    let world = World::start().await;
    let profiles = tempfile::Builder::new()
        .prefix("dockshim-seccomp")
        .tempdir()
        .unwrap();
    let fifo = profiles.path().join("profile.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for (name, path) in [
        ("fifo", fifo.clone()),
        ("directory", profiles.path().to_owned()),
        ("device", PathBuf::from("/dev/zero")),
    ] {
        let mut config = world.config(name, &busybox_image(), "true");
        let linux = config.linux.get_or_insert_with(Default::default);
        let security = linux.security_context.get_or_insert_with(Default::default);
        security.seccomp = Some(cri::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: path.display().to_string(),
        });
        let answer = tokio::time::timeout(PROMPT_ANSWER, world.create(config))
            .await
            .unwrap_or_else(|_| panic!("CreateContainer with a {name} as profile hung"));
        let err = answer.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(
            err.message().contains("not a regular file"),
            "{name}: {err:?}"
        );
    }
    world.clean_up().await;
}
