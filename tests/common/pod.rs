//! A pod to put containers in: dockshim started with the test images, a
//! host-network sandbox with a temporary log directory, and a drop guard
//! that force-removes every sandbox and container labelled with the test's
//! ID, so a failing test leaves nothing behind; and the arguments, labels,
//! sandbox and container configurations every pod test builds on
//! (`cni_pod` too). Needs root.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dockshim::api::v1 as cri;
use tempfile::TempDir;

use super::client::CriClient;
use super::fixture::{Dockshim, Options};
use super::{pause_image, test_run_id, unique, TEST_RUN_LABEL};

/// The label every sandbox and container of a test carries.
pub const RUN_LABEL: &str = "dockshim-e2e";
/// How long the log file gets to show the container's first line.
pub const LOG_WAIT: Duration = Duration::from_secs(10);

/// Force-removes the containers labelled with a test's run ID.
pub struct Guard {
    pub run_id: String,
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
pub struct World {
    /// Declared first: dropped (containers removed) before dockshim stops.
    pub guard: Guard,
    pub dockshim: Dockshim,
    pub client: CriClient,
    pub logs: TempDir,
    pub run_id: String,
    pub sandbox_id: String,
    pub sandbox_config: cri::PodSandboxConfig,
}

impl World {
    pub async fn start() -> World {
        World::start_with(Vec::new()).await
    }

    /// As [`World::start`], with more command-line arguments for dockshim.
    pub async fn start_with(more_args: Vec<String>) -> World {
        World::start_with_options(Options {
            extra_args: more_args,
            ..Options::default()
        })
        .await
    }

    /// As [`World::start`], with dockshim started on `options` (the test
    /// images and a zero sandbox OOM score are added to its arguments).
    pub async fn start_with_options(options: Options) -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the container tests create containers: run them as root (tests/run.sh)"
        );
        let run_id = format!("{:08x}", unique());
        let guard = Guard {
            run_id: run_id.clone(),
        };
        let dockshim = Dockshim::start_with(Options {
            extra_args: dockshim_args(options.extra_args),
            ..options
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-container")
            .tempdir()
            .unwrap();
        let metadata = cri::PodSandboxMetadata {
            name: "pod".to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{run_id}"),
            attempt: 0,
        };
        let sandbox_config = sandbox_config(metadata, &run_id, logs.path(), host_network());
        let sandbox_id = run_sandbox(&client, &sandbox_config).await;
        World {
            guard,
            dockshim,
            client,
            logs,
            run_id,
            sandbox_id,
            sandbox_config,
        }
    }

    /// A busybox container `name` running `script`, logging to
    /// `<name>.log` in the sandbox's log directory.
    pub fn config(&self, name: &str, image: &str, script: &str) -> cri::ContainerConfig {
        let command = ["sh", "-c", script];
        container_config(name, image, &command, &self.run_id, host_network())
    }

    pub async fn create(&self, config: cri::ContainerConfig) -> Result<String, tonic::Status> {
        self.client
            .create_container(&self.sandbox_id, config, self.sandbox_config.clone())
            .await
    }

    pub async fn status(&self, id: &str) -> cri::ContainerStatus {
        self.client
            .container_status(id, false)
            .await
            .unwrap()
            .status
            .unwrap()
    }

    pub async fn clean_up(&self) {
        stop_and_remove_sandbox(&self.client, &self.sandbox_id).await;
    }
}

/// dockshim's arguments for a pod test: the test's sandbox image and a
/// sandbox OOM score this host allows, then `extra`.
pub fn dockshim_args(extra: Vec<String>) -> Vec<String> {
    let mut args = vec![
        "--pod-infra-container-image".into(),
        pause_image(),
        "--sandbox-oom-score-adj".into(),
        "0".into(),
    ];
    args.extend(extra);
    args
}

/// The host's network namespace, everything else the runtime's default.
pub fn host_network() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..cri::NamespaceOption::default()
    }
}

/// The labels of every sandbox and container of the test `run_id`: its own
/// and the test run's.
pub fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (RUN_LABEL.to_owned(), run_id.to_owned()),
        (TEST_RUN_LABEL.to_owned(), test_run_id().to_owned()),
    ])
}

/// A sandbox of the test `run_id`, logging to `logs`, in `namespaces`.
pub fn sandbox_config(
    metadata: cri::PodSandboxMetadata,
    run_id: &str,
    logs: &Path,
    namespaces: cri::NamespaceOption,
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(metadata),
        labels: labels(run_id),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                ..cri::LinuxSandboxSecurityContext::default()
            }),
            ..cri::LinuxPodSandboxConfig::default()
        }),
        ..cri::PodSandboxConfig::default()
    }
}

/// A container `name` of `image` running `command`, of the test `run_id`,
/// logging to `<name>.log` in the sandbox's log directory; `namespaces`
/// are the pod's, which the kubelet repeats for each container.
pub fn container_config(
    name: &str,
    image: &str,
    command: &[&str],
    run_id: &str,
    namespaces: cri::NamespaceOption,
) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(super::client::image_spec(image)),
        command: command.iter().map(|arg| (*arg).to_owned()).collect(),
        labels: labels(run_id),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces),
                ..cri::LinuxContainerSecurityContext::default()
            }),
            ..cri::LinuxContainerConfig::default()
        }),
        ..cri::ContainerConfig::default()
    }
}

/// RunPodSandbox with `config`; returns the sandbox's ID.
pub async fn run_sandbox(client: &CriClient, config: &cri::PodSandboxConfig) -> String {
    client
        .run_pod_sandbox(config.clone())
        .await
        .unwrap_or_else(|status| panic!("RunPodSandbox: {status:?}"))
}

/// StopPodSandbox, then RemovePodSandbox.
pub async fn stop_and_remove_sandbox(client: &CriClient, sandbox_id: &str) {
    client.stop_pod_sandbox(sandbox_id).await.unwrap();
    client.remove_pod_sandbox(sandbox_id).await.unwrap();
}

/// The CRI log file's content once it has a line ending with `suffix`.
pub fn wait_for_log_line(path: &Path, suffix: &str) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content.lines().any(|line| line.ends_with(suffix)) || Instant::now() >= deadline {
            return content;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
