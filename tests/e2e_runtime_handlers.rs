//! RuntimeClass handlers end to end: the real binary and the engine under
//! test, in host-network sandboxes so that no CNI plugin is involved.
//!
//! The handler under test is `$DOCKSHIM_TEST_RUNTIME_WRAPPER_HANDLER`: a
//! second runtime registered with dockerd, a wrapper that appends its
//! argv to `$DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG` and execs runc. Without it
//! the handler is `io.containerd.runc.v2`, which every engine lists beside
//! its default `runc`, and the wrapper-log check is skipped. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{CriClient, RUN_POD_SANDBOX};
use common::docker::get_json;
use common::fixture::{Dockshim, Options, Restarted};
use common::pod::{
    container_config, dockshim_args, host_network, sandbox_config, stop_and_remove_sandbox, Guard,
};
use common::{busybox_image, unique};
use dockshim::api::v1 as cri;
use tonic::{Code, Request};

/// The runtime every engine lists besides its default one.
const FALLBACK_HANDLER: &str = "io.containerd.runc.v2";
/// How long a restarted dockshim may take to accept connections.
const RESTART_TIMEOUT: Duration = Duration::from_secs(20);

/// The handler the tests run pods with.
fn handler() -> String {
    std::env::var("DOCKSHIM_TEST_RUNTIME_WRAPPER_HANDLER")
        .ok()
        .filter(|handler| !handler.is_empty())
        .unwrap_or_else(|| FALLBACK_HANDLER.to_owned())
}

/// The runtimes the engine under test lists in `/info`, sorted.
fn engine_runtimes() -> Vec<String> {
    let info = get_json("/info");
    let mut names: Vec<String> = info["Runtimes"]
        .as_object()
        .map(|runtimes| runtimes.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// `HostConfig.Runtime` of the Docker container `id`.
fn docker_runtime(id: &str) -> String {
    get_json(&format!("/containers/{id}/json"))["HostConfig"]["Runtime"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// dockshim started for pod tests, the test's label guard and a client.
struct Node {
    /// Declared first: dropped (containers removed) before dockshim stops.
    guard: Guard,
    dockshim: Dockshim,
    client: CriClient,
    logs: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the runtime handler tests create containers: run them as root (tests/run.sh)"
        );
        let guard = Guard {
            run_id: format!("{:08x}", unique()),
        };
        let dockshim = Dockshim::start_with(Options {
            extra_args: dockshim_args(Vec::new()),
            ..Options::default()
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-handlers")
            .tempdir()
            .unwrap();
        Node {
            guard,
            dockshim,
            client,
            logs,
        }
    }

    fn sandbox_config(&self, name: &str) -> cri::PodSandboxConfig {
        let metadata = cri::PodSandboxMetadata {
            name: name.to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{name}-{}", self.guard.run_id),
            attempt: 0,
        };
        sandbox_config(
            metadata,
            &self.guard.run_id,
            self.logs.path(),
            host_network(),
        )
    }

    fn container_config(&self, name: &str) -> cri::ContainerConfig {
        container_config(
            name,
            &busybox_image(),
            &["sleep", "300"],
            &self.guard.run_id,
            host_network(),
        )
    }
}

/// RunPodSandbox with `handler`.
async fn run_with_handler(
    client: &CriClient,
    config: &cri::PodSandboxConfig,
    handler: &str,
) -> Result<String, tonic::Status> {
    let request = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: handler.to_owned(),
    };
    let response: cri::RunPodSandboxResponse =
        client.call(RUN_POD_SANDBOX, Request::new(request)).await?;
    Ok(response.pod_sandbox_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_handler_runs_its_sandbox_and_containers_also_after_a_restart() {
    let handler = handler();
    if !engine_runtimes().contains(&handler) {
        eprintln!("skipped: the engine lists no runtime {handler:?}");
        return;
    }
    let mut node = Node::start().await;
    let config = node.sandbox_config("handled");
    let sandbox_id = run_with_handler(&node.client, &config, &handler)
        .await
        .unwrap();
    assert_eq!(docker_runtime(&sandbox_id), handler);
    let status = node
        .client
        .pod_sandbox_status(&sandbox_id, false)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.runtime_handler, handler);
    let listed = node.client.list_pod_sandbox(None).await.unwrap();
    let ours = listed.iter().find(|s| s.id == sandbox_id).unwrap();
    assert_eq!(ours.runtime_handler, handler);

    let first = node
        .client
        .create_container(&sandbox_id, node.container_config("first"), config.clone())
        .await
        .unwrap();
    node.client.start_container(&first).await.unwrap();
    assert_eq!(docker_runtime(&first), handler);

    let pid = nix::unistd::Pid::from_raw(i32::try_from(node.dockshim.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Until it is reaped, the killed process may still accept connections.
    node.dockshim.wait_exit(RESTART_TIMEOUT);
    let restarted = Restarted::start(&node.dockshim, node.logs.path().join("restarted.stderr"));
    let client = CriClient::connect(node.dockshim.socket()).await;
    let second = client
        .create_container(&sandbox_id, node.container_config("second"), config)
        .await
        .unwrap();
    client.start_container(&second).await.unwrap();
    assert_eq!(docker_runtime(&second), handler);
    let echo = client
        .exec_sync(&second, &["echo", "hi"], 10)
        .await
        .unwrap();
    assert_eq!((echo.stdout.as_slice(), echo.exit_code), (&b"hi\n"[..], 0));
    let status = client
        .pod_sandbox_status(&sandbox_id, false)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.runtime_handler, handler);

    match std::env::var("DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG") {
        Ok(log) if !log.is_empty() => {
            let invocations = std::fs::read_to_string(&log).unwrap_or_default();
            for id in [&sandbox_id, &first, &second] {
                assert!(
                    invocations.contains(id.as_str()),
                    "the wrapper log {log} never names {id}:\n{invocations}"
                );
            }
        }
        _ => eprintln!(
            "skipped: the wrapper-log check (no DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG; handler \
             {handler:?} checked through HostConfig.Runtime)"
        ),
    }
    stop_and_remove_sandbox(&client, &sandbox_id).await;
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_another_handler_never_passes_through_the_wrapper() {
    let log = match std::env::var("DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG") {
        Ok(log) if !log.is_empty() => log,
        _ => {
            eprintln!("skipped: no runtime wrapper registered (DOCKSHIM_TEST_RUNTIME_WRAPPER_LOG)");
            return;
        }
    };
    // The wrapper is the engine's default runtime: only a handler that
    // names another runtime keeps a pod away from it.
    let node = Node::start().await;
    let config = node.sandbox_config("runc");
    let sandbox_id = run_with_handler(&node.client, &config, "runc")
        .await
        .unwrap();
    let container = node
        .client
        .create_container(&sandbox_id, node.container_config("plain"), config)
        .await
        .unwrap();
    node.client.start_container(&container).await.unwrap();
    assert_eq!(docker_runtime(&sandbox_id), "runc");
    assert_eq!(docker_runtime(&container), "runc");
    let invocations = std::fs::read_to_string(&log).unwrap_or_default();
    for id in [&sandbox_id, &container] {
        assert!(
            !invocations.contains(id.as_str()),
            "the wrapper log {log} names {id}:\n{invocations}"
        );
    }
    stop_and_remove_sandbox(&node.client, &sandbox_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_handler_is_not_found_naming_it_and_the_known_ones() {
    let node = Node::start().await;
    let config = node.sandbox_config("unknown");
    let unknown = format!("dockshim-no-such-runtime-{}", node.guard.run_id);
    let err = run_with_handler(&node.client, &config, &unknown)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains(&unknown), "{err:?}");
    for runtime in engine_runtimes() {
        assert!(err.message().contains(&format!("{runtime:?}")), "{err:?}");
    }
    let listed = node.client.list_pod_sandbox(None).await.unwrap();
    assert!(
        listed
            .iter()
            .all(|s| s.metadata.as_ref().map(|m| m.name.as_str()) != Some("unknown")),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_default_handler_and_one_per_engine_runtime() {
    let node = Node::start().await;
    let response = node.client.status(true).await.unwrap();
    let names: Vec<&str> = response
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    let mut expected = vec![String::new()];
    expected.extend(engine_runtimes());
    assert_eq!(names, expected);

    let api = get_json("/version")["ApiVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let (major, minor) = api.split_once('.').unwrap();
    let read_only_kinds = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap()) >= (1, 44);
    let kernel = get_json("/info")["KernelVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut numbers = kernel.split(|c: char| !c.is_ascii_digit());
    let release = (
        numbers.next().unwrap().parse::<u32>().unwrap(),
        numbers.next().unwrap().parse::<u32>().unwrap(),
    );
    let engine_has_it = read_only_kinds && release >= (5, 12);
    let info = get_json("/info");
    for handler in &response.runtime_handlers {
        let runtime = if handler.name.is_empty() {
            info["DefaultRuntime"].as_str().unwrap()
        } else {
            handler.name.as_str()
        };
        // A runtime that describes itself must list the `rro` mount option.
        let runtime_has_it = info["Runtimes"][runtime]["status"]
            ["org.opencontainers.runtime-spec.features"]
            .as_str()
            .is_none_or(|features| {
                let features: serde_json::Value = serde_json::from_str(features).unwrap();
                features["mountOptions"]
                    .as_array()
                    .is_some_and(|options| options.iter().any(|o| o == "rro"))
            });
        let features = handler.features.as_ref().unwrap();
        assert_eq!(
            features.recursive_read_only_mounts,
            engine_has_it && runtime_has_it,
            "{handler:?} on API {api}, kernel {kernel}"
        );
        assert!(!features.user_namespaces, "{handler:?}");
    }

    let runtimes: serde_json::Value = serde_json::from_str(&response.info["runtimes"]).unwrap();
    assert_eq!(runtimes["default"], info["DefaultRuntime"]);
    for name in engine_runtimes() {
        assert!(runtimes["runtimes"][&name].is_string(), "{runtimes}");
    }
}
