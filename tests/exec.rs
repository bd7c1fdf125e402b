//! ExecSync's engine (`dockshim::cri::exec`) against the real dockerd on
//! /var/run/docker.sock: output and exit codes, the 16 MiB cap, timeouts and
//! cancellation that kill the whole exec'd process tree, the errors for
//! stopped and missing containers, a container removed under a running
//! command, and no descriptor or thread left behind.
//!
//! Tests that need dockerd print why and pass when the socket or the test
//! image is absent (under tests/run.sh they fail). Every container created
//! here carries `dockshim-test=1` and the test run's label, and is removed
//! by a drop guard, also when an assertion fails. Processes
//! are looked for through the host's /proc, in the container's own PID
//! namespace, so other work on the machine cannot confuse the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use dockshim::cri::error::ExecError;
use dockshim::cri::exec::{exec_sync, ExecOutput, MAX_EXEC_OUTPUT_BYTES};
use dockshim::docker::{path_with_query, DockerClient};
use dockshim::grpc::{CallContext, Code, Status};
use dockshim::host::Node;
use serde_json::{json, Value};

/// The engine under test: `DOCKSHIM_TEST_DOCKER_SOCKET` (tests/run.sh sets
/// it for each engine of its matrix), else the machine's dockerd.
fn docker_sock() -> String {
    std::env::var("DOCKSHIM_TEST_DOCKER_SOCKET")
        .unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}
const BUSYBOX: &str = "127.0.0.1:5000/dockshim-test/busybox:latest";
const METHOD: &str = "/runtime.v1.RuntimeService/ExecSync";

/// Held shared by every test and exclusively by the leak test, whose
/// descriptor and thread counts must not see the other tests' work.
static COUNTING: RwLock<()> = RwLock::new(());

fn dockerd() -> Option<DockerClient> {
    if !Path::new(&docker_sock()).exists() {
        common::missing_environment(format!(
            "{} does not exist, no dockerd to test against",
            docker_sock()
        ));
        return None;
    }
    let client = DockerClient::new(
        &format!("unix://{}", docker_sock()),
        Duration::from_secs(60),
    )
    .unwrap();
    client.negotiate().unwrap();
    Some(client)
}

fn busybox(client: &DockerClient) -> Option<String> {
    let name = std::env::var("DOCKSHIM_TEST_BUSYBOX_IMAGE").unwrap_or_else(|_| BUSYBOX.to_owned());
    if client
        .get_json::<Value>(&format!("/images/{name}/json"))
        .is_err()
    {
        common::missing_environment(format!(
            "test image {name} is missing (tests/images/build.sh makes it)"
        ));
        return None;
    }
    Some(name)
}

/// A busybox container running `sleep 300`, removed (with force) on drop.
struct Container {
    client: DockerClient,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(err) = self
            .client
            .delete(&format!("/containers/{}?force=1&v=1", self.id))
        {
            if err.api_status() != Some(404) {
                eprintln!("cleanup: removing container {}: {err}", self.id);
            }
        }
    }
}

impl Container {
    /// Created and, if `start`, running.
    fn new(client: &DockerClient, image: &str, start: bool) -> Container {
        Container::with_host_config(client, image, start, json!({}))
    }

    /// Created with `host_config` and, if `start`, running. The guard exists
    /// before the start, so a start that fails leaves nothing behind.
    fn with_host_config(
        client: &DockerClient,
        image: &str,
        start: bool,
        host_config: Value,
    ) -> Container {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "dockshim-test-exec-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let body = json!({
            "Image": image,
            "Cmd": ["/bin/busybox", "sleep", "300"],
            "Labels": {"dockshim-test": "1", common::TEST_RUN_LABEL: common::test_run_id()},
            "HostConfig": host_config,
        });
        let created: Value = client
            .post_json(
                &path_with_query("/containers/create", &[("name", &name)]),
                &body,
            )
            .unwrap();
        let container = Container {
            client: client.clone(),
            id: created["Id"].as_str().unwrap().to_owned(),
        };
        if start {
            let status = client
                .post(&format!("/containers/{}/start", container.id), None)
                .unwrap();
            assert_eq!(status, 204);
        }
        container
    }

    /// Host PIDs of the live (not zombie) processes in this container's PID
    /// namespace whose command line is exactly `argv`.
    fn live_processes(&self, argv: &[&str]) -> Vec<i32> {
        let init = self.client.inspect_container(&self.id).unwrap().state.pid;
        let Some(ns) = pid_namespace(&init.to_string()) else {
            return Vec::new();
        };
        let wanted: Vec<u8> = argv
            .iter()
            .flat_map(|a| [a.as_bytes(), b"\0"].concat())
            .collect();
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(pid) = name.parse::<i32>() else {
                continue;
            };
            if pid_namespace(&name) != Some(ns) {
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            if cmdline == wanted && !zombie {
                found.push(pid);
            }
        }
        found
    }

    /// Waits until `count` processes run `argv` in the container.
    fn wait_for_processes(&self, argv: &[&str], count: usize) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.live_processes(argv).len() < count {
            assert!(Instant::now() < until, "{argv:?} never started");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn pid_namespace(pid: &str) -> Option<(u64, u64)> {
    fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn words(cmd: &[&str]) -> Vec<String> {
    cmd.iter().map(|w| (*w).to_owned()).collect()
}

fn run(
    client: &DockerClient,
    container: &str,
    cmd: &[&str],
    timeout: Option<Duration>,
) -> Result<ExecOutput, ExecError> {
    exec_sync(
        client,
        &Node,
        container,
        &words(cmd),
        timeout,
        &CallContext::new(METHOD, None),
        &|| true,
    )
}

/// dockerd, the image and a running container, or `None` to skip.
fn running_container() -> Option<(DockerClient, Container)> {
    let client = dockerd()?;
    let image = busybox(&client)?;
    let container = Container::new(&client, &image, true);
    Some((client, container))
}

#[test]
fn echo_prints_to_stdout_and_exits_zero() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let output = run(&client, &container.id, &["echo", "hi"], None).unwrap();
    assert_eq!(output.stdout, b"hi\n");
    assert_eq!(output.stderr, b"");
    assert_eq!(output.exit_code, 0);
    assert!(!output.stdout_truncated && !output.stderr_truncated);
}

#[test]
fn stderr_and_a_non_zero_exit_code_are_a_normal_result() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let output = run(
        &client,
        &container.id,
        &["sh", "-c", "echo e >&2; exit 3"],
        Some(Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(output.stdout, b"");
    assert_eq!(output.stderr, b"e\n");
    assert_eq!(output.exit_code, 3);
}

#[test]
fn a_missing_command_exits_with_dockerds_code_and_message_on_stdout() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let output = run(&client, &container.id, &["no-such-command"], None).unwrap();
    // Docker 20.10 and 27 answer 126, Docker 29 127 as a shell would.
    assert!(
        matches!(output.exit_code, 126 | 127),
        "{}",
        output.exit_code
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("executable file not found"), "{text}");
}

#[test]
fn output_beyond_16_mib_is_cut_and_the_call_still_returns() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let started = Instant::now();
    let output = run(
        &client,
        &container.id,
        &["head", "-c", "20971520", "/dev/zero"],
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    eprintln!("20 MiB of output read in {:?}", started.elapsed());
    assert_eq!(output.stdout.len(), MAX_EXEC_OUTPUT_BYTES);
    // Just under 16 MiB: the ExecSync reply must fit in one gRPC message.
    assert!((16 * 1024 * 1024 - 64..16 * 1024 * 1024).contains(&MAX_EXEC_OUTPUT_BYTES));
    assert!(output.stdout.iter().all(|&b| b == 0));
    assert!(output.stdout_truncated);
    assert_eq!(output.exit_code, 0);
}

#[test]
fn a_timeout_returns_deadline_exceeded_in_time_and_kills_the_process() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let started = Instant::now();
    let err = run(
        &client,
        &container.id,
        &["sleep", "30"],
        Some(Duration::from_secs(1)),
    )
    .unwrap_err();
    let took = started.elapsed();
    eprintln!("timed-out exec returned after {took:?}");
    // A second past the deadline for the kill on a loaded machine; the
    // command itself would run for 30.
    assert!(took < Duration::from_secs(2), "returned after {took:?}");
    let status = Status::from(err);
    assert_eq!(status.code, Code::DeadlineExceeded);
    assert!(
        status.message.contains("timed out after 1s and was killed"),
        "{}",
        status.message
    );
    assert_eq!(
        container.live_processes(&["sleep", "30"]),
        Vec::<i32>::new()
    );
    // The container's own process is untouched.
    assert!(
        client
            .inspect_container(&container.id)
            .unwrap()
            .state
            .running
    );
}

#[test]
fn a_timeout_kills_the_children_of_the_exec_process_too() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let script = ["sh", "-c", "sleep 30 & sleep 30"];
    let err = thread::scope(|scope| {
        let exec = scope.spawn(|| {
            run(
                &client,
                &container.id,
                &script,
                Some(Duration::from_secs(2)),
            )
        });
        container.wait_for_processes(&["sleep", "30"], 2);
        exec.join().unwrap()
    })
    .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert_eq!(
        container.live_processes(&["sleep", "30"]),
        Vec::<i32>::new()
    );
    assert_eq!(container.live_processes(&script), Vec::<i32>::new());
}

#[test]
fn cancelling_the_call_kills_the_process() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    let ctx = CallContext::new(METHOD, None);
    let (err, took) = thread::scope(|scope| {
        let exec = scope.spawn(|| {
            exec_sync(
                &client,
                &Node,
                &container.id,
                &words(&["sleep", "30"]),
                None,
                &ctx,
                &|| true,
            )
        });
        container.wait_for_processes(&["sleep", "30"], 1);
        let cancelled = Instant::now();
        ctx.cancel();
        let result = exec.join().unwrap();
        (result.unwrap_err(), cancelled.elapsed())
    });
    eprintln!("cancelled exec returned after {took:?}");
    assert!(took < Duration::from_secs(1), "returned after {took:?}");
    assert_eq!(err.code(), Code::Cancelled, "{err}");
    assert_eq!(
        container.live_processes(&["sleep", "30"]),
        Vec::<i32>::new()
    );
}

#[test]
fn a_stopped_container_is_failed_precondition_with_dockerds_message() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let container = Container::new(&client, &image, false);
    let status = Status::from(run(&client, &container.id, &["true"], None).unwrap_err());
    assert_eq!(status.code, Code::FailedPrecondition);
    assert!(
        status.message.contains("is not running"),
        "{}",
        status.message
    );
}

#[test]
fn a_missing_container_is_not_found() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some(client) = dockerd() else { return };
    let status = Status::from(
        run(
            &client,
            "dockshim-test-exec-no-such-container",
            &["true"],
            None,
        )
        .unwrap_err(),
    );
    assert_eq!(status.code, Code::NotFound);
    assert!(
        status.message.contains("No such container"),
        "{}",
        status.message
    );
}

#[test]
fn an_empty_command_is_invalid() {
    let Some(client) = dockerd() else { return };
    let err = run(&client, "anything", &[], None).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn fifty_calls_leave_no_descriptor_or_thread_behind() {
    let _exclusive = COUNTING.write().unwrap_or_else(PoisonError::into_inner);
    let Some((client, container)) = running_container() else {
        return;
    };
    // The first call fills the connection pool.
    run(&client, &container.id, &["true"], None).unwrap();
    let (fds, tasks) = (open_descriptors(), threads());
    let started = Instant::now();
    for i in 0..50 {
        let timeout = Some(Duration::from_secs(30));
        let output = run(&client, &container.id, &["echo", "x"], timeout).unwrap();
        assert_eq!(
            (output.stdout.as_slice(), output.exit_code),
            (&b"x\n"[..], 0),
            "call {i}"
        );
    }
    eprintln!("ExecSync(echo) mean {:?}", started.elapsed() / 50);
    let (fds_after, tasks_after) = (open_descriptors(), threads());
    // The pool may keep a few more idle connections; a leak would be ≥ 50.
    assert!(fds_after <= fds + 8, "descriptors {fds} -> {fds_after}");
    assert_eq!(tasks_after, tasks, "threads");
}

#[test]
fn a_container_removed_under_an_exec_in_a_shared_pid_namespace_ends_the_call_promptly() {
    let _shared = COUNTING.read().unwrap_or_else(PoisonError::into_inner);
    let Some((client, sandbox)) = running_container() else {
        return;
    };
    let image = busybox(&client).unwrap();
    let pid_mode = json!({ "PidMode": format!("container:{}", sandbox.id) });
    let container = Container::with_host_config(&client, &image, true, pid_mode);
    // As the state index would say, asked of dockerd here.
    let running = || {
        client
            .inspect_container(&container.id)
            .is_ok_and(|inspect| inspect.state.running)
    };
    let started = Instant::now();
    let result = thread::scope(|scope| {
        let exec = scope.spawn(|| {
            exec_sync(
                &client,
                &Node,
                &container.id,
                &words(&["sleep", "30"]),
                Some(Duration::from_secs(60)),
                &CallContext::new(METHOD, None),
                &running,
            )
        });
        thread::sleep(Duration::from_secs(1));
        client
            .delete(&format!("/containers/{}?force=1&v=1", container.id))
            .unwrap();
        exec.join().unwrap()
    });
    let took = started.elapsed();
    eprintln!("exec in a removed container returned after {took:?}: {result:?}");
    // The removal, a second of grace and a loaded machine; the command
    // itself would run for 30.
    assert!(took < Duration::from_secs(10), "returned after {took:?}");
    match result {
        // Engines that end the stream (Docker 29) record the kill.
        Ok(output) => assert_eq!(output.exit_code, 137, "{output:?}"),
        Err(err) => {
            let status = Status::from(err);
            assert_eq!(status.code, Code::FailedPrecondition, "{}", status.message);
            assert!(
                status.message.contains("stopped while command"),
                "{}",
                status.message
            );
        }
    }
}
