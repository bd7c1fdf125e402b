//! The Docker Engine API client against the real dockerd on
//! /var/run/docker.sock, plus the failure modes of an absent or silent
//! dockerd (which need no dockerd at all).
//!
//! Tests that need dockerd print why and pass when the socket is absent
//! (under tests/run.sh they fail). Containers created here carry the label
//! `dockshim-test=1` and the test run's label, and are removed by drop
//! guards, also when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use dockshim::cri::error::GrpcCode;
use dockshim::docker::{demux_copy, path_with_query, DockerClient, Hijacked, MIN_API_VERSION};
use dockshim::grpc::Code;
use serde_json::{json, Value};

/// The engine under test: `DOCKSHIM_TEST_DOCKER_SOCKET` (tests/run.sh sets
/// it for each engine of its matrix), else the machine's dockerd.
fn docker_sock() -> String {
    std::env::var("DOCKSHIM_TEST_DOCKER_SOCKET")
        .unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}

/// A negotiated client, or `None` (with the reason printed) without dockerd.
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

fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "dockshim-test-docker-client-{}-{what}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An image with /bin/busybox: the test image tests/run.sh builds if it is
/// present, else one imported here from the host's static busybox (removed
/// on drop).
struct TestImage {
    client: DockerClient,
    name: String,
    imported: bool,
}

impl Drop for TestImage {
    fn drop(&mut self) {
        if self.imported {
            if let Err(err) = self
                .client
                .delete(&format!("/images/{}?force=1", self.name))
            {
                eprintln!("cleanup: removing image {}: {err}", self.name);
            }
        }
    }
}

fn test_image(client: &DockerClient) -> Option<TestImage> {
    let preferred = std::env::var("DOCKSHIM_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/dockshim-test/busybox:latest".to_owned());
    if client
        .get_json::<Value>(&format!("/images/{preferred}/json"))
        .is_ok()
    {
        return Some(TestImage {
            client: client.clone(),
            name: preferred,
            imported: false,
        });
    }
    if !Path::new("/bin/busybox").exists() {
        common::missing_environment(format!(
            "no test image {preferred} and no /bin/busybox to build one from"
        ));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let tarball = dir.path().join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let name = format!("{}:latest", unique_name("image"));
    run(Command::new("docker")
        .arg("import")
        .arg(&tarball)
        .arg(&name));
    Some(TestImage {
        client: client.clone(),
        name,
        imported: true,
    })
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A container removed (with force) on drop.
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
            eprintln!("cleanup: removing container {}: {err}", self.id);
        }
    }
}

fn create_container(
    client: &DockerClient,
    image: &TestImage,
    name: &str,
    cmd: &[&str],
) -> Container {
    let body = json!({
        "Image": image.name,
        "Cmd": cmd,
        "Labels": { "dockshim-test": "1", common::TEST_RUN_LABEL: common::test_run_id() },
    });
    let created: Value = client
        .post_json(
            &path_with_query("/containers/create", &[("name", name)]),
            &body,
        )
        .unwrap();
    Container {
        client: client.clone(),
        id: created["Id"].as_str().unwrap().to_owned(),
    }
}

/// A running `busybox sleep` container.
fn sleeper(client: &DockerClient, image: &TestImage) -> Container {
    let container = create_container(
        client,
        image,
        &unique_name("sleeper"),
        &["/bin/busybox", "sleep", "300"],
    );
    assert_eq!(
        client
            .post(&format!("/containers/{}/start", container.id), None)
            .unwrap(),
        204
    );
    container
}

fn create_exec(client: &DockerClient, container: &Container, config: Value) -> String {
    let created: Value = client
        .post_json(&format!("/containers/{}/exec", container.id), &config)
        .unwrap();
    created["Id"].as_str().unwrap().to_owned()
}

/// Everything the session sends until dockerd closes it, with a read
/// timeout so a broken test fails instead of hanging.
fn session_reader(session: Hijacked) -> impl Read {
    let (stream, early) = session.into_parts();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Cursor::new(early).chain(stream)
}

#[test]
fn negotiates_a_supported_api_version() {
    let Some(client) = dockerd() else { return };
    let version = client.api_version().unwrap();
    assert!(version >= MIN_API_VERSION, "{version}");
}

#[test]
fn version_and_info_are_filled_in() {
    let Some(client) = dockerd() else { return };
    let version = client.version().unwrap();
    assert!(!version.version.is_empty());
    assert!(!version.api_version.is_empty());
    assert!(!version.min_api_version.is_empty());
    assert_eq!(version.os, "linux");
    assert!(!version.arch.is_empty() && !version.kernel_version.is_empty());
    let info = client.info().unwrap();
    assert_eq!(info.server_version, version.version);
    for (field, value) in [
        ("CgroupDriver", &info.cgroup_driver),
        ("CgroupVersion", &info.cgroup_version),
        ("DockerRootDir", &info.docker_root_dir),
        ("Driver", &info.driver),
        ("OperatingSystem", &info.operating_system),
        ("ID", &info.id),
        ("Name", &info.name),
    ] {
        assert!(!value.is_empty(), "{field} is empty");
    }
    assert!(info.ncpu > 0 && info.mem_total > 0);
}

#[test]
fn sequential_pings_reuse_one_pooled_connection() {
    let Some(client) = dockerd() else { return };
    let opened = client.connections_opened();
    for _ in 0..200 {
        client.ping(Duration::from_secs(5)).unwrap();
    }
    assert_eq!(
        client.connections_opened() - opened,
        0,
        "negotiation's connection is reused"
    );
}

#[test]
fn missing_container_is_not_found_with_dockerd_message() {
    let Some(client) = dockerd() else { return };
    let name = unique_name("missing");
    let err = client
        .get_json::<Value>(&format!("/containers/{name}/json"))
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.api_status(), Some(404));
    assert_eq!(
        err.to_string(),
        format!("GET /containers/{name}/json: 404: No such container: {name}")
    );
    let status = dockshim::grpc::Status::from(err);
    assert!(
        status.message.starts_with("docker: GET /containers/"),
        "{}",
        status.message
    );
}

#[test]
fn event_stream_reports_a_container_created_and_removed() {
    let Some(client) = dockerd() else { return };
    let Some(image) = test_image(&client) else {
        return;
    };
    let name = unique_name("events");
    // Subscribing from a second ago replays anything that happens between
    // the request and dockerd's subscription.
    let since = SystemTime::now() - Duration::from_secs(1);
    let filters = json!({ "type": ["container"], "container": [name] }).to_string();
    let mut events = client.events(Some(since), Some(&filters)).unwrap();
    events.set_idle_timeout(Some(Duration::from_secs(30)));
    let id = create_container(&client, &image, &name, &["/bin/busybox", "true"])
        .id
        .clone();
    let mut actions = Vec::new();
    for event in events {
        let event = event.unwrap();
        assert_eq!(
            (event.kind.as_str(), event.actor.id.as_str()),
            ("container", id.as_str())
        );
        assert_eq!(event.actor.attributes.get("name"), Some(&name));
        assert!(event.time_nano > 0);
        actions.push(event.action);
        if actions.last().is_some_and(|a| a == "destroy") {
            break;
        }
    }
    assert_eq!(
        actions.first().map(String::as_str),
        Some("create"),
        "{actions:?}"
    );
}

#[test]
fn hijacked_exec_separates_stdout_and_stderr() {
    let Some(client) = dockerd() else { return };
    let Some(image) = test_image(&client) else {
        return;
    };
    let container = sleeper(&client, &image);
    assert_eq!(
        client
            .post(&format!("/containers/{}/start", container.id), None)
            .unwrap(),
        304
    );
    let exec = create_exec(
        &client,
        &container,
        json!({
            "AttachStdout": true,
            "AttachStderr": true,
            "Cmd": ["/bin/busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
        }),
    );
    let session = client
        .hijack(
            "POST",
            &format!("/exec/{exec}/start"),
            Some(br#"{"Detach":false,"Tty":false}"#),
        )
        .unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    demux_copy(session_reader(session), &mut stdout, &mut stderr).unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "err\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let inspect = loop {
        let inspect: Value = client.get_json(&format!("/exec/{exec}/json")).unwrap();
        if inspect["Running"] == false || Instant::now() > deadline {
            break inspect;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(inspect["ExitCode"], 3);
}

#[test]
fn hijacked_exec_passes_stdin_until_it_is_closed() {
    let Some(client) = dockerd() else { return };
    let Some(image) = test_image(&client) else {
        return;
    };
    let container = sleeper(&client, &image);
    let exec = create_exec(
        &client,
        &container,
        json!({ "AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "Cmd": ["/bin/busybox", "cat"] }),
    );
    let mut session = client
        .hijack(
            "POST",
            &format!("/exec/{exec}/start"),
            Some(br#"{"Detach":false,"Tty":false}"#),
        )
        .unwrap();
    session.write_all(b"through stdin\n").unwrap();
    session.close_write().unwrap();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    demux_copy(session_reader(session), &mut stdout, &mut stderr).unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout), "through stdin\n");
    assert!(stderr.is_empty());
}

#[test]
fn hijacked_tty_exec_is_raw() {
    let Some(client) = dockerd() else { return };
    let Some(image) = test_image(&client) else {
        return;
    };
    let container = sleeper(&client, &image);
    let exec = create_exec(
        &client,
        &container,
        json!({ "AttachStdout": true, "Tty": true, "Cmd": ["/bin/busybox", "echo", "on a tty"] }),
    );
    let session = client
        .hijack(
            "POST",
            &format!("/exec/{exec}/start"),
            Some(br#"{"Detach":false,"Tty":true}"#),
        )
        .unwrap();
    let mut output = String::new();
    session_reader(session).read_to_string(&mut output).unwrap();
    assert_eq!(output, "on a tty\r\n");
}

#[test]
fn hijack_of_a_missing_exec_is_not_found() {
    let Some(client) = dockerd() else { return };
    let err = client
        .hijack(
            "POST",
            "/exec/0123456789abcdef/start",
            Some(br#"{"Detach":false}"#),
        )
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
}

/// The test registry tests/run.sh starts, if it answers.
fn registry() -> Option<String> {
    let registry =
        std::env::var("DOCKSHIM_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned());
    let addr: SocketAddr = registry.parse().ok()?;
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => Some(registry),
        Err(err) => {
            common::missing_environment(format!("no test registry at {registry}: {err}"));
            None
        }
    }
}

#[test]
fn pull_of_a_missing_tag_reports_the_registry_error() {
    let Some(client) = dockerd() else { return };
    let Some(registry) = registry() else { return };
    let image = format!("{registry}/dockshim-test/busybox");
    // dockerd answers 404 before streaming when it fails this early, and in
    // the stream when it fails later; both must carry the registry's words.
    let message = match client.pull(&image, "dockshim-no-such-tag", None, None) {
        Err(err) => err.to_string(),
        Ok(progress) => progress
            .filter_map(|message| message.unwrap().error_message().map(str::to_owned))
            .next()
            .unwrap(),
    };
    assert!(
        message.contains("not found") || message.contains("unknown"),
        "{message}"
    );
}

#[test]
fn pull_of_a_present_image_streams_progress() {
    let Some(client) = dockerd() else { return };
    let Some(registry) = registry() else { return };
    let image = format!("{registry}/dockshim-test/busybox");
    if client
        .get_json::<Value>(&format!("/images/{image}:latest/json"))
        .is_err()
    {
        common::missing_environment(format!(
            "{image}:latest is not built (tests/images/build.sh)"
        ));
        return;
    }
    let mut progress = client.pull(&image, "latest", None, None).unwrap();
    progress.set_idle_timeout(Some(Duration::from_secs(30)));
    let statuses: Vec<String> = progress
        .map(|message| message.unwrap())
        .map(|m| m.status)
        .collect();
    let last = statuses.last().unwrap();
    assert!(last.starts_with("Status: "), "{statuses:?}");
}

#[test]
fn ping_of_a_missing_socket_fails_fast_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let client = DockerClient::new(
        dir.path().join("docker.sock").to_str().unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    let started = Instant::now();
    let err = client.ping(Duration::from_secs(10)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn ping_of_a_socket_nobody_listens_on_fails_fast_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    drop(UnixListener::bind(&path).unwrap());
    let client = DockerClient::new(path.to_str().unwrap(), Duration::from_secs(60)).unwrap();
    let started = Instant::now();
    let err = client.ping(Duration::from_secs(10)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
}

/// Asserts a ping of `path` with a 300 ms budget ends in a timeout, in time.
fn assert_ping_times_out(path: &Path) {
    let budget = Duration::from_millis(300);
    let client = DockerClient::new(path.to_str().unwrap(), Duration::from_secs(60)).unwrap();
    let started = Instant::now();
    let err = client.ping(budget).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= budget && elapsed < budget + Duration::from_secs(1),
        "{elapsed:?}"
    );
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(
        err.to_string()
            .starts_with("GET /_ping: timed out after 300ms"),
        "{err}"
    );
}

#[test]
fn ping_of_a_server_that_accepts_and_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (connection, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(2));
        drop(connection);
    });
    assert_ping_times_out(&path);
    server.join().unwrap();
}

#[test]
fn ping_of_a_server_that_never_accepts_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    assert_ping_times_out(&path);
}
