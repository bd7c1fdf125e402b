//! Calls that fail half-way leave nothing behind, end to end with the real
//! binary and the real dockerd: a StartContainer that cannot open the
//! container's log file, or cannot follow the output of the container it
//! started, leaves nothing running, and a CNI DEL that fails
//! during a RunPodSandbox rollback is recorded under the root directory and
//! retried (at start-up, or by the kubelet's next RunPodSandbox) until it
//! succeeds and host-local's address reservation is gone; so is a DEL
//! that StopPodSandbox runs for a sandbox whose checkpoint is corrupt.
//! Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::busybox_image;
use common::client::CriClient;
use common::cni_pod::{bridge_plugin, conflist, CniGuard};
use common::docker::get_json;
use common::fixture::{Dockshim, Options, Restarted, CNI_BIN_DIR};
use common::pod::{self, World, RUN_LABEL};
use common::proxy::DockerProxy;
use common::unique;
use dockshim::api::v1 as cri;
use tonic::Code;

/// StartContainer calls made against a missing log directory.
const FAILED_STARTS: usize = 4;

fn is_running(id: &str) -> bool {
    get_json(&format!("/containers/{id}/json"))["State"]["Running"]
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_a_log_directory_fails_and_leaves_nothing_running() {
    let world = World::start().await;
    let log_dir = world.logs.path().to_path_buf();
    fs::remove_dir_all(&log_dir).unwrap();
    let mut ids = Vec::new();
    for n in 0..FAILED_STARTS {
        let config = world.config(&format!("app{n}"), &busybox_image(), "sleep 300");
        let id = world.create(config).await.unwrap();
        let status = world.client.start_container(&id).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains(&log_dir.display().to_string()),
            "{status:?}"
        );
        assert!(!is_running(&id), "container {id} runs after a failed start");
        // The log file is opened first: the container never ran.
        assert_eq!(
            world.status(&id).await.state,
            cri::ContainerState::ContainerCreated as i32
        );
        ids.push(id);
    }
    assert!(
        ids.iter().all(|id| !is_running(id)),
        "a container started later on its own"
    );

    // The same request succeeds once the kubelet's directory is back.
    fs::create_dir(&log_dir).unwrap();
    let config = world.config("app", &busybox_image(), "echo up; sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    assert!(is_running(&id));
    let log = pod::wait_for_log_line(&log_dir.join("app.log"), " stdout F up");
    assert!(log.ends_with(" stdout F up\n"), "{log:?}");
    world.clean_up().await;
}

/// Longer than dockshim waits for the head of a logs response.
const LOGS_STALL: Duration = Duration::from_secs(35);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_output_cannot_be_followed_stops_the_container_again() {
    let proxy = DockerProxy::start();
    let world = World::start_with_options(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    })
    .await;
    let id = world
        .create(world.config("app", &busybox_image(), "sleep 300"))
        .await
        .unwrap();
    proxy.delay(&format!("/containers/{id}/logs?"), LOGS_STALL);

    let status = world.client.start_container(&id).await.unwrap_err();
    assert!(
        status
            .message()
            .ends_with(&format!("container {id} was stopped again")),
        "{status:?}"
    );
    assert!(!is_running(&id), "container {id} runs after a failed start");
    assert_eq!(
        world.status(&id).await.state,
        cri::ContainerState::ContainerExited as i32
    );
    proxy.clear_delays();
    world.clean_up().await;
}

/// The IPAM plugin the test's network uses: host-local, except that ADD
/// reserves an address and then fails while `add-fails` exists beside it,
/// and DEL fails while `del-fails` does.
const FLAKY_IPAM: &str = r#"#!/bin/sh
marks="$(dirname "$0")"
if [ "$CNI_COMMAND" = DEL ] && [ -e "$marks/del-fails" ]; then
    cat >/dev/null
    echo '{"cniVersion":"1.0.0","code":11,"msg":"injected DEL failure"}'
    exit 1
fi
if [ "$CNI_COMMAND" = ADD ] && [ -e "$marks/add-fails" ]; then
    HOST_LOCAL >/dev/null
    echo '{"cniVersion":"1.0.0","code":11,"msg":"injected ADD failure"}'
    exit 1
fi
exec HOST_LOCAL
"#;

/// dockshim on a network whose IPAM plugin fails on demand.
struct FlakyNetwork {
    /// Declared first: dropped (containers, bridge and rules removed)
    /// before dockshim stops.
    _guard: CniGuard,
    dockshim: Dockshim,
    client: CriClient,
    /// The plugin and its failure marks.
    bin: tempfile::TempDir,
    /// host-local's reservations.
    ipam: tempfile::TempDir,
    logs: tempfile::TempDir,
    network_name: String,
    bridge: String,
    run_id: String,
}

impl FlakyNetwork {
    async fn start() -> FlakyNetwork {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the tests create containers and bridges: run them as root (tests/run.sh)"
        );
        let id = unique();
        let run_id = format!("{id:08x}");
        let bridge = format!("dshowe{:04x}", id & 0xffff);
        let octet = (id >> 16) as u8 % 250 + 1;
        let network_name = format!("dshowe-{run_id}");
        let bin = tempfile::Builder::new()
            .prefix("dockshim-flaky-cni")
            .tempdir()
            .unwrap();
        let source = bin.path().join("dshipam.txt");
        let host_local = Path::new(CNI_BIN_DIR).join("host-local");
        fs::write(
            &source,
            FLAKY_IPAM.replace("HOST_LOCAL", &host_local.display().to_string()),
        )
        .unwrap();
        let script = bin.path().join("dshipam");
        // Written by `cp`, so no child forked by another test thread holds
        // a write descriptor to it when it runs ("Text file busy").
        let copied = Command::new("cp").arg(&source).arg(&script).status();
        assert!(copied.unwrap().success());
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let ipam = tempfile::Builder::new()
            .prefix("dockshim-ipam")
            .tempdir()
            .unwrap();
        let mut plugin = bridge_plugin(&bridge, &format!("10.213.{octet}.0/24"), ipam.path());
        plugin["ipam"]["type"] = "dshipam".into();
        let guard = CniGuard::new(
            run_id.clone(),
            bridge.clone(),
            network_name.clone(),
            format!("10.213.{octet}."),
        );
        let bin_dirs = format!("{},{CNI_BIN_DIR}", bin.path().display());
        let dockshim = Dockshim::start_with(Options {
            cni_conflist: Some(conflist(&network_name, vec![plugin]).to_string()),
            extra_args: pod::dockshim_args(vec!["--cni-bin-dir".into(), bin_dirs]),
            ..Options::default()
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-container")
            .tempdir()
            .unwrap();
        FlakyNetwork {
            _guard: guard,
            dockshim,
            client,
            bin,
            ipam,
            logs,
            network_name,
            bridge,
            run_id,
        }
    }

    fn sandbox_config(&self) -> cri::PodSandboxConfig {
        let metadata = cri::PodSandboxMetadata {
            name: "owed".to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{}", self.run_id),
            attempt: 0,
        };
        let namespaces = cri::NamespaceOption {
            network: cri::NamespaceMode::Pod as i32,
            pid: cri::NamespaceMode::Container as i32,
            ipc: cri::NamespaceMode::Pod as i32,
            ..cri::NamespaceOption::default()
        };
        pod::sandbox_config(metadata, &self.run_id, self.logs.path(), namespaces)
    }

    /// Makes the IPAM plugin's `command` fail (`true`) or work again.
    fn fail(&self, command: &str, failing: bool) {
        let mark = self.bin.path().join(format!("{command}-fails"));
        if failing {
            fs::write(mark, "").unwrap();
        } else {
            fs::remove_file(mark).unwrap();
        }
    }

    /// The addresses host-local holds.
    fn reservations(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.ipam.path().join(&self.network_name)) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                name.parse::<std::net::IpAddr>().is_ok().then_some(name)
            })
            .collect()
    }

    /// dockshim's `--root-directory`.
    fn root(&self) -> PathBuf {
        let args = self.dockshim.same_args();
        args.iter()
            .position(|a| a == "--root-directory")
            .map(|i| PathBuf::from(&args[i + 1]))
            .unwrap()
    }

    /// The sandboxes owed a CNI DEL, from the root directory.
    fn owed(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.root().join("owed-teardown")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect()
    }

    /// The test's containers, whatever their state.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label={RUN_LABEL}={}", self.run_id);
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .env(
                "DOCKER_HOST",
                format!("unix://{}", common::docker::docker_socket()),
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// A RunPodSandbox whose ADD fails and whose rollback cannot DEL: the
    /// container and checkpoint go, the reservation and a record stay.
    async fn fail_run_and_its_rollback(&self) -> Vec<String> {
        self.fail("add", true);
        self.fail("del", true);
        let status = self
            .client
            .run_pod_sandbox(self.sandbox_config())
            .await
            .unwrap_err();
        assert!(
            status.message().contains("injected ADD failure")
                && status.message().contains("injected DEL failure"),
            "{status:?}"
        );
        assert!(self.containers().is_empty(), "{:?}", self.containers());
        let leaked = self.reservations();
        assert_eq!(leaked.len(), 1, "{leaked:?}");
        assert_eq!(self.owed().len(), 1, "{:?}", self.owed());
        leaked
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_del_a_failed_rollback_owes_is_retried_at_start_up() {
    let net = FlakyNetwork::start().await;
    net.fail_run_and_its_rollback().await;

    net.fail("del", false);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(net.dockshim.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let log = net.logs.path().join("restarted.log");
    let _restarted = Restarted::start(&net.dockshim, log);

    assert_eq!(net.reservations(), Vec::<String>::new());
    assert_eq!(net.owed(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_del_a_failed_rollback_owes_is_retried_by_the_next_run_pod_sandbox() {
    let net = FlakyNetwork::start().await;
    let leaked = net.fail_run_and_its_rollback().await;

    net.fail("add", false);
    net.fail("del", false);
    // Debian's bridge plugin cannot give an address to a bridge it made
    // during an ADD that then failed ("could not set bridge's mac"); it
    // makes a new one.
    let deleted = Command::new("ip")
        .args(["link", "del", &net.bridge])
        .status();
    assert!(deleted.unwrap().success());
    let id = pod::run_sandbox(&net.client, &net.sandbox_config()).await;
    let held = net.reservations();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(!held.contains(&leaked[0]), "{leaked:?} is still reserved");
    assert_eq!(net.owed(), Vec::<String>::new());

    pod::stop_and_remove_sandbox(&net.client, &id).await;
    assert_eq!(net.reservations(), Vec::<String>::new());
    assert!(net.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_still_gets_a_del_owed_until_it_succeeds() {
    let net = FlakyNetwork::start().await;
    let id = pod::run_sandbox(&net.client, &net.sandbox_config()).await;
    assert_eq!(net.reservations().len(), 1);
    fs::write(net.root().join("sandbox").join(&id), "{").unwrap();

    net.fail("del", true);
    let status = net.client.stop_pod_sandbox(&id).await.unwrap_err();
    assert!(
        status.message().contains("injected DEL failure"),
        "{status:?}"
    );
    assert_eq!(net.owed(), std::slice::from_ref(&id));
    assert_eq!(net.reservations().len(), 1);

    net.fail("del", false);
    net.client.stop_pod_sandbox(&id).await.unwrap();
    assert_eq!(net.reservations(), Vec::<String>::new());
    assert_eq!(net.owed(), Vec::<String>::new());
    net.client.remove_pod_sandbox(&id).await.unwrap();
    assert!(net.containers().is_empty());
}
