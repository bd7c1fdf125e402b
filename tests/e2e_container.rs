//! Containers end to end: the real binary and the real dockerd, in
//! host-network sandboxes so that no CNI plugin is involved. Needs root, as
//! `tests/run.sh` runs the suite.
//!
//! Every sandbox and container carries the CRI label
//! `dockshim-e2e=<test run>`; a drop guard force-removes whatever still
//! carries it, so a failing test leaves no container behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::CriClient;
use common::fixture::{Dockshim, Options};
use common::{busybox_image, pause_image, unique};
use dockshim::cri::v1 as cri;
use tempfile::TempDir;
use tonic::Code;

/// The label every sandbox and container of a test carries.
const RUN_LABEL: &str = "dockshim-e2e";
/// How long the log file gets to show the container's first line.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// Force-removes the containers labelled with a test's run ID.
struct Guard {
    run_id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let filter = format!("label={RUN_LABEL}={}", self.run_id);
        let Ok(ids) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        else {
            return;
        };
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", "-v", id]).output();
        }
    }
}

/// One test's dockshim, client and host-network sandbox.
struct World {
    /// Declared first: dropped (containers removed) before dockshim stops.
    _guard: Guard,
    _dockshim: Dockshim,
    client: CriClient,
    logs: TempDir,
    run_id: String,
    sandbox_id: String,
    sandbox_config: cri::PodSandboxConfig,
}

impl World {
    async fn start() -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the container tests create containers: run them as root (tests/run.sh)"
        );
        let run_id = format!("{:08x}", unique());
        let guard = Guard {
            run_id: run_id.clone(),
        };
        let dockshim = Dockshim::start_with(Options {
            extra_args: vec![
                "--pod-infra-container-image".into(),
                pause_image(),
                "--sandbox-oom-score-adj".into(),
                "0".into(),
            ],
            ..Options::default()
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-container")
            .tempdir()
            .unwrap();
        let sandbox_config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "pod".to_owned(),
                namespace: "e2e".to_owned(),
                uid: format!("uid-{run_id}"),
                attempt: 0,
            }),
            labels: HashMap::from([(RUN_LABEL.to_owned(), run_id.clone())]),
            log_directory: logs.path().display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        ..cri::NamespaceOption::default()
                    }),
                    ..cri::LinuxSandboxSecurityContext::default()
                }),
                ..cri::LinuxPodSandboxConfig::default()
            }),
            ..cri::PodSandboxConfig::default()
        };
        let sandbox_id = client
            .run_pod_sandbox(sandbox_config.clone())
            .await
            .unwrap_or_else(|status| panic!("RunPodSandbox: {status:?}"));
        World {
            _guard: guard,
            _dockshim: dockshim,
            client,
            logs,
            run_id,
            sandbox_id,
            sandbox_config,
        }
    }

    /// A busybox container `name` running `script`, logging to
    /// `<name>.log` in the sandbox's log directory.
    fn config(&self, name: &str, image: &str, script: &str) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(common::client::image_spec(image)),
            command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            labels: HashMap::from([(RUN_LABEL.to_owned(), self.run_id.clone())]),
            log_path: format!("{name}.log"),
            // The kubelet repeats the pod's namespaces for each container.
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        ..cri::NamespaceOption::default()
                    }),
                    ..cri::LinuxContainerSecurityContext::default()
                }),
                ..cri::LinuxContainerConfig::default()
            }),
            ..cri::ContainerConfig::default()
        }
    }

    async fn create(&self, config: cri::ContainerConfig) -> Result<String, tonic::Status> {
        self.client
            .create_container(&self.sandbox_id, config, self.sandbox_config.clone())
            .await
    }

    async fn status(&self, id: &str) -> cri::ContainerStatus {
        self.client
            .container_status(id, false)
            .await
            .unwrap()
            .status
            .unwrap()
    }

    async fn clean_up(&self) {
        self.client
            .stop_pod_sandbox(&self.sandbox_id)
            .await
            .unwrap();
        self.client
            .remove_pod_sandbox(&self.sandbox_id)
            .await
            .unwrap();
    }
}

/// The CRI log file's content once it has a line ending with `suffix`.
fn wait_for_log_line(path: &Path, suffix: &str) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content.lines().any(|line| line.ends_with(suffix)) || Instant::now() >= deadline {
            return content;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_runs_logs_execs_stops_and_is_removed() {
    let world = World::start().await;
    let config = world.config("app", &busybox_image(), "echo hello; sleep 300");
    let id = world.create(config).await.unwrap();
    assert_eq!(
        world.status(&id).await.state,
        cri::ContainerState::ContainerCreated as i32
    );
    world.client.start_container(&id).await.unwrap();

    let listed = world.client.list_containers(None).await.unwrap();
    let ours = listed.iter().find(|c| c.id == id).unwrap();
    assert_eq!(ours.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(ours.pod_sandbox_id, world.sandbox_id);
    let by_sandbox = world
        .client
        .list_containers(Some(cri::ContainerFilter {
            pod_sandbox_id: world.sandbox_id.clone(),
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            ..cri::ContainerFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        by_sandbox.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let status = world.status(&id).await;
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(status.metadata.unwrap().name, "app");
    let verbose = world.client.container_status(&id, true).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"]).unwrap();
    assert!(info["pid"].as_i64().unwrap() > 0, "{info}");

    let log_file = world.logs.path().join("app.log");
    let log = wait_for_log_line(&log_file, " stdout F hello");
    assert!(
        log.lines().any(|line| line.ends_with(" stdout F hello")),
        "{log:?}"
    );

    let echo = world
        .client
        .exec_sync(&id, &["echo", "hi"], 10)
        .await
        .unwrap();
    assert_eq!((echo.stdout.as_slice(), echo.exit_code), (&b"hi\n"[..], 0));
    let failing = world
        .client
        .exec_sync(&id, &["sh", "-c", "exit 3"], 10)
        .await
        .unwrap();
    assert_eq!(failing.exit_code, 3);

    world.client.stop_container(&id, 1).await.unwrap();
    let stopped = world.status(&id).await;
    assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);
    assert!(
        [137, 143].contains(&stopped.exit_code),
        "{}",
        stopped.exit_code
    );
    assert!(!stopped.reason.is_empty());
    let exec_err = world
        .client
        .exec_sync(&id, &["echo", "hi"], 10)
        .await
        .unwrap_err();
    assert_eq!(exec_err.code(), Code::FailedPrecondition, "{exec_err:?}");

    world.client.remove_container(&id).await.unwrap();
    world.client.remove_container(&id).await.unwrap();
    let err = world.client.container_status(&id, false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(!log_file.exists());
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_containers_images_and_sandboxes_are_handled() {
    let world = World::start().await;
    let missing = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    world.client.stop_container(missing, 1).await.unwrap();
    world.client.remove_container(missing).await.unwrap();

    let image = "127.0.0.1:5000/dockshim-test/no-such-image:none";
    let err = world
        .create(world.config("noimage", image, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains(image), "{err:?}");

    let err = world
        .client
        .create_container(
            missing,
            world.config("nosandbox", &busybox_image(), "true"),
            world.sandbox_config.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.clean_up().await;
}
