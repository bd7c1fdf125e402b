//! The quick lane and the overall pull deadline, end to end: the real
//! binary against the real dockerd. With every regular worker held by an
//! ExecSync, Status, Version and ListContainers still answer; a registry
//! stub that trickles a layer one byte at a time keeps a pull making
//! progress, and `--image-pull-timeout` still ends it. The containerd image
//! store reports no progress for such a layer, so on an engine using it
//! only the overall deadline is checked. Needs root, as `tests/run.sh` runs
//! the suite.
//!
//! The containers come from `common::pod` (labelled with the test's run ID
//! and removed by its guard); the pulled image never completes, so no image
//! is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::busybox_image;
use common::fixture::{Dockshim, Options};
use common::pod::World;
use common::stub_server::{RegistryConnection, StubServer};
use dockshim::server::DEFAULT_MAX_WORKERS;
use tonic::Code;

/// How long a quick call may take while the regular workers are busy:
/// generous, for a loaded machine; `cargo xtask bench` measures the real
/// figure.
const QUICK_ANSWER_BOUND: Duration = Duration::from_secs(5);
/// How long the ExecSyncs that hold the workers run, in seconds: far
/// longer than [`QUICK_ANSWER_BOUND`].
const EXEC_SECONDS: &str = "30";
/// How long the held ExecSyncs get to start, and then to end.
const EXEC_WAIT: Duration = Duration::from_secs(60);

/// The processes of container `id` running `command`, as dockerd's
/// `/top` lists them.
fn processes_running(id: &str, command: &str) -> usize {
    let top = common::docker::get_json(&format!("/containers/{id}/top"));
    let titles = top["Titles"].as_array().cloned().unwrap_or_default();
    let Some(column) = titles.iter().position(|title| title == "CMD") else {
        panic!("no CMD column in {top}");
    };
    top["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|process| process[column] == command)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_version_and_lists_answer_while_every_regular_worker_runs_an_exec_sync() {
    let world = World::start().await;
    let config = world.config("busy", &busybox_image(), "sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();

    let execs: Vec<_> = (0..DEFAULT_MAX_WORKERS)
        .map(|_| {
            let client = world.client.clone();
            let id = id.clone();
            tokio::spawn(async move { client.exec_sync(&id, &["sleep", EXEC_SECONDS], 60).await })
        })
        .collect();
    let sleep_command = format!("sleep {EXEC_SECONDS}");
    let started = Instant::now();
    while processes_running(&id, &sleep_command) < DEFAULT_MAX_WORKERS {
        assert!(
            started.elapsed() < EXEC_WAIT,
            "only {} of {DEFAULT_MAX_WORKERS} ExecSyncs started",
            processes_running(&id, &sleep_command)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let asked = Instant::now();
    let status = tokio::time::timeout(QUICK_ANSWER_BOUND, world.client.status(false))
        .await
        .expect("Status answers while every regular worker is busy")
        .unwrap();
    println!("Status answered in {:?}", asked.elapsed());
    let conditions = status.status.unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status),
        "{conditions:?}"
    );

    let asked = Instant::now();
    let version = tokio::time::timeout(QUICK_ANSWER_BOUND, world.client.version())
        .await
        .expect("Version answers while every regular worker is busy")
        .unwrap();
    println!("Version answered in {:?}", asked.elapsed());
    assert_eq!(version.runtime_name, "docker");

    let asked = Instant::now();
    let listed = tokio::time::timeout(QUICK_ANSWER_BOUND, world.client.list_containers(None))
        .await
        .expect("ListContainers answers while every regular worker is busy")
        .unwrap();
    println!("ListContainers answered in {:?}", asked.elapsed());
    assert!(listed.iter().any(|container| container.id == id));

    assert!(
        execs.iter().all(|exec| !exec.is_finished()),
        "the ExecSyncs still held the workers when the quick calls answered"
    );
    // The sandbox's removal needs a regular worker: let the ExecSyncs end.
    for exec in execs {
        let answer = tokio::time::timeout(EXEC_WAIT, exec)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.unwrap().exit_code, 0);
    }
    world.clean_up().await;
}

/// The progress deadline the pull test runs dockshim with; each trickled
/// byte arrives well within it.
const PROGRESS_DEADLINE: &str = "2s";
/// The overall pull deadline the pull test runs dockshim with.
const PULL_TIMEOUT: &str = "6s";
const PULL_TIMEOUT_DURATION: Duration = Duration::from_secs(6);
/// Bytes of the layer the stub serves: dockerd reports download progress
/// every 1% of a blob, here every byte or two, and the whole layer would
/// take far longer than the pull timeout.
const TRICKLED_BLOB_SIZE: usize = 100;
/// The pause between two bytes of a blob.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(200);

/// A registry stub that serves a manifest and an image configuration,
/// then the layer one byte every [`TRICKLE_INTERVAL`]: a pull that always
/// makes progress and never finishes in time. Its digests are unique to
/// the test, so dockerd has none of it already.
struct TricklingRegistry {
    addr: SocketAddr,
    _server: StubServer,
}

impl TricklingRegistry {
    fn start() -> TricklingRegistry {
        let seed = format!("{:08x}{:08x}", common::unique(), common::unique());
        let layer = format!("sha256:{:0<64}", format!("1{seed}"));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
        );
        let config_digest = sha256_digest(config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{TRICKLED_BLOB_SIZE},"digest":"{layer}"}}]}}"#,
            config.len(),
        );
        let config = (config_digest, config);
        let server = StubServer::start(move |stream, stop| {
            serve_trickling(stream, &manifest, &config, stop)
        });
        TricklingRegistry {
            addr: server.addr(),
            _server: server,
        }
    }
}

/// Answers the requests on one connection as [`TricklingRegistry`] does.
fn serve_trickling(
    stream: TcpStream,
    manifest: &str,
    (config_digest, config): &(String, String),
    stop: &AtomicBool,
) {
    let mut connection = RegistryConnection::new(stream);
    while let Some(request) = connection.next_request(stop) {
        if connection.answer_base(&request, manifest) {
            continue;
        }
        if request.path.ends_with(config_digest.as_str()) {
            // At once: the containerd image store fetches the configuration
            // before any layer, and reports no progress for it.
            connection.answer(&request, "application/octet-stream", config.as_bytes());
        } else if request.path.contains("/blobs/") {
            connection.answer_head("application/octet-stream", TRICKLED_BLOB_SIZE);
            if request.head_only {
                continue;
            }
            for _ in 0..TRICKLED_BLOB_SIZE {
                if stop.load(Ordering::Relaxed) || connection.stream().write_all(&[0]).is_err() {
                    return;
                }
                thread::sleep(TRICKLE_INTERVAL);
            }
            return;
        } else {
            connection.not_found();
        }
    }
}

/// `sha256:<hex>` of `bytes`, as `sha256sum` computes it.
fn sha256_digest(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn docker_has_image(name: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Whether the engine keeps images in containerd's image store, whose
/// pulls report no download progress for a layer that trickles in.
fn containerd_image_store() -> bool {
    let info = common::docker::get_json("/info");
    info["DriverStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|pair| pair[0] == "driver-type" && pair[1] == "io.containerd.snapshotter.v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_pull_is_cancelled_at_the_overall_pull_timeout() {
    let reports_trickle = !containerd_image_store();
    // Without progress messages the progress deadline would end the pull
    // first; only the overall deadline is checked then.
    let progress_deadline = if reports_trickle {
        PROGRESS_DEADLINE
    } else {
        "1m"
    };
    let stub = TricklingRegistry::start();
    let dockshim = Dockshim::start_with(Options {
        extra_args: vec![
            "--image-pull-progress-deadline".into(),
            progress_deadline.into(),
            "--image-pull-timeout".into(),
            PULL_TIMEOUT.into(),
        ],
        ..Options::default()
    });
    let client = dockshim.client().await;
    let reference = format!("{}/dockshim-e2e/trickled:v1", stub.addr);

    let started = Instant::now();
    let status = client
        .pull_image(&reference, None)
        .await
        .expect_err("the pull cannot finish");
    let took = started.elapsed();

    let message = status.message();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{message}");
    assert!(
        message.contains("not finished after 6s (--image-pull-timeout)"),
        "{message}"
    );
    assert!(message.contains(&reference), "{message}");
    assert!(took >= PULL_TIMEOUT_DURATION, "cancelled after {took:?}");
    assert!(
        took < PULL_TIMEOUT_DURATION + Duration::from_secs(10),
        "cancelled only after {took:?}"
    );
    assert!(!docker_has_image(&reference));
    if reports_trickle {
        assert!(
            message.contains("last progress: ") && message.contains("Downloading"),
            "the pull was making progress: {message}"
        );
    } else {
        eprintln!(
            "skipped: the progress check (the containerd image store reports no download \
             progress for a trickling layer); the overall deadline checked"
        );
    }
}
