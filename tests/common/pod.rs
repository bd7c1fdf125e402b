//! A pod to put containers in: dockshim started with the test images, a
//! host-network sandbox with a temporary log directory, and a drop guard
//! that force-removes every sandbox and container labelled with the test's
//! run ID, so a failing test leaves nothing behind. Needs root.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dockshim::cri::v1 as cri;
use tempfile::TempDir;

use super::client::CriClient;
use super::fixture::{Dockshim, Options};
use super::{pause_image, unique};

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
        let mut extra_args = vec![
            "--pod-infra-container-image".into(),
            pause_image(),
            "--sandbox-oom-score-adj".into(),
            "0".into(),
        ];
        extra_args.extend(options.extra_args);
        let dockshim = Dockshim::start_with(Options {
            extra_args,
            ..options
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
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(super::client::image_spec(image)),
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
