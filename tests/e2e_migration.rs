//! A node switched from cri-dockerd to dockshim, end to end with the real
//! binary, the real dockerd and Debian's CNI plugins: a pod left running by
//! cri-dockerd (sandbox and app container named and labelled as cri-dockerd
//! names them, attached by the bridge plugin and host-local as its libcni
//! attaches them, checkpointed and cached as it leaves them), and a pod
//! whose container was removed behind its back. Started with
//! `--migrate-from-cri-dockerd`, dockshim refuses to start while a
//! cri-dockerd process runs; once it is gone, dockshim reports the running
//! pod's IP (from libcni's result cache, or read inside the pod's network
//! namespace when the cache has none), lists its container with its log
//! path, restarts nothing, and runs each pod's CNI DEL once — not again
//! after a restart. A root directory shared with cri-dockerd has its
//! checkpoints completed where they are. Needs root, as `tests/run.sh`
//! runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use common::client::CriClient;
use common::cni_pod::{bridge_plugin, conflist, CniGuard};
use common::cri_dockerd::{self, PodName};
use common::docker::docker_socket;
use common::fixture::{self, Dockshim, Options, Restarted, CNI_BIN_DIR};
use common::{busybox_image, pause_image, pod, unique};
use dockshim::api::v1 as cri;

/// host-local, logging each call's command and container ID first.
const LOGGING_IPAM: &str = r#"#!/bin/sh
echo "$CNI_COMMAND $CNI_CONTAINERID" >>"$(dirname "$0")/calls.log"
exec HOST_LOCAL
"#;

/// The name dockshim moves adopted checkpoints under in cri-dockerd's
/// `sandbox/` directory.
const MIGRATED_DIR: &str = ".migrated-to-dockshim";

/// Held while a process named cri-dockerd runs, and while dockshim starts:
/// dockshim refuses to adopt while one runs.
static CRI_DOCKERD_RUNNING: Mutex<()> = Mutex::new(());

/// A node as cri-dockerd left it: its root directory, the CNI cache, the
/// network's plugins and reservations, one running pod and one pod of which
/// only the checkpoint and the IP reservation are left.
struct Node {
    /// Declared first: dropped (containers, bridge and rules removed)
    /// before anything else.
    _guard: CniGuard,
    network_name: String,
    network: serde_json::Value,
    /// The IPAM wrapper and its call log.
    bin: tempfile::TempDir,
    ipam: tempfile::TempDir,
    cri_dockerd_root: tempfile::TempDir,
    cni_cache: tempfile::TempDir,
    logs: tempfile::TempDir,
    pod: PodName,
    sandbox_id: String,
    container_id: String,
    pod_ip: String,
    ghost_id: String,
    ghost_ip: String,
}

impl Node {
    fn lay_out() -> Node {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the tests create containers and bridges: run them as root (tests/run.sh)"
        );
        let id = unique();
        let run_id = format!("{id:08x}");
        let bridge = format!("dshmig{:04x}", id & 0xffff);
        let octet = (id >> 16) as u8 % 250 + 1;
        let network_name = format!("dshmig-{run_id}");
        let guard = CniGuard::new(
            run_id.clone(),
            bridge.clone(),
            network_name.clone(),
            format!("10.214.{octet}."),
        );
        let tempdir = |prefix: &str| tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let bin = tempdir("dockshim-mig-cni");
        let source = bin.path().join("dshmigipam.txt");
        let host_local = Path::new(CNI_BIN_DIR).join("host-local");
        fs::write(
            &source,
            LOGGING_IPAM.replace("HOST_LOCAL", &host_local.display().to_string()),
        )
        .unwrap();
        // Written by `cp`, so no child forked by another test thread holds
        // a write descriptor to it when it runs ("Text file busy").
        let script = bin.path().join("dshmigipam");
        let copied = Command::new("cp").arg(&source).arg(&script).status();
        assert!(copied.unwrap().success());
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let ipam = tempdir("dockshim-ipam");
        let mut plugin = bridge_plugin(&bridge, &format!("10.214.{octet}.0/24"), ipam.path());
        plugin["ipam"]["type"] = "dshmigipam".into();
        let network = conflist(&network_name, vec![plugin]);
        let cri_dockerd_root = tempdir("dockshim-cri-dockerd-root");
        let cni_cache = tempdir("dockshim-cni-cache");
        let logs = tempdir("dockshim-mig-logs");
        let bin_dirs = [bin.path().to_path_buf(), PathBuf::from(CNI_BIN_DIR)];

        let pod = PodName {
            name: "web".to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{run_id}-web"),
        };
        let sandbox_id = cri_dockerd::run_sandbox(&pod, &run_id, &pause_image());
        let result = cri_dockerd::cni_add(
            &network,
            &bin_dirs,
            cni_cache.path(),
            &pod,
            &sandbox_id,
            cri_dockerd::pid_of(&sandbox_id),
        );
        let pod_ip = cri_dockerd::result_ip(&result);
        cri_dockerd::write_checkpoint(cri_dockerd_root.path(), &sandbox_id, &pod);
        let container_id = cri_dockerd::run_container(
            &pod,
            "app",
            &sandbox_id,
            &run_id,
            logs.path(),
            &busybox_image(),
            "trap 'exit 0' TERM; echo hello; while :; do sleep 1; done",
        );

        // A pod whose sandbox container was removed while its network
        // was still set up: a checkpoint and a reservation are all that
        // is left of it.
        let ghost = PodName {
            name: "ghost".to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{run_id}-ghost"),
        };
        let ghost_id = cri_dockerd::run_sandbox(&ghost, &run_id, &pause_image());
        let result = cri_dockerd::cni_add(
            &network,
            &bin_dirs,
            cni_cache.path(),
            &ghost,
            &ghost_id,
            cri_dockerd::pid_of(&ghost_id),
        );
        let ghost_ip = cri_dockerd::result_ip(&result);
        cri_dockerd::write_checkpoint(cri_dockerd_root.path(), &ghost_id, &ghost);
        cri_dockerd::docker(&["rm", "-f", &ghost_id]);

        let node = Node {
            _guard: guard,
            network_name,
            network,
            bin,
            ipam,
            cri_dockerd_root,
            cni_cache,
            logs,
            pod,
            sandbox_id,
            container_id,
            pod_ip,
            ghost_id,
            ghost_ip,
        };
        assert_eq!(node.reservations(), {
            let mut both = vec![node.pod_ip.clone(), node.ghost_ip.clone()];
            both.sort();
            both
        });
        node
    }

    /// dockshim's flags for the node's network, adopting from cri-dockerd's
    /// root.
    fn dockshim_args(&self) -> Vec<String> {
        let bin_dirs = format!("{},{CNI_BIN_DIR}", self.bin.path().display());
        pod::dockshim_args(vec![
            "--cni-bin-dir".into(),
            bin_dirs,
            "--cni-cache-dir".into(),
            self.cni_cache.path().display().to_string(),
            "--migrate-from-cri-dockerd".into(),
            self.cri_dockerd_root.path().display().to_string(),
        ])
    }

    /// dockshim on the node's network, adopting from cri-dockerd's root.
    fn start_dockshim(&self) -> Dockshim {
        let _alone = CRI_DOCKERD_RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Dockshim::start_with(Options {
            cni_conflist: Some(self.network.to_string()),
            extra_args: self.dockshim_args(),
            ..Options::default()
        })
    }

    /// Starts dockshim while a process named cri-dockerd runs; its exit
    /// status and output.
    fn start_beside_cri_dockerd(&self) -> (std::process::ExitStatus, String) {
        let _alone = CRI_DOCKERD_RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let dir = self.logs.path().join("refused");
        fs::create_dir(&dir).unwrap();
        let impostor = dir.join("cri-dockerd");
        let copied = Command::new("cp").arg("/bin/sleep").arg(&impostor).status();
        assert!(copied.unwrap().success());
        let mut cri_dockerd = Command::new(&impostor).arg("60").spawn().unwrap();
        let mut args = vec![
            "--container-runtime-endpoint".to_owned(),
            format!("unix://{}", dir.join("dockshim.sock").display()),
            "--docker-endpoint".to_owned(),
            format!("unix://{}", docker_socket()),
            "--root-directory".to_owned(),
            dir.join("root").display().to_string(),
            "--cni-conf-dir".to_owned(),
            dir.display().to_string(),
        ];
        args.extend(self.dockshim_args());
        let log = dir.join("dockshim.stderr");
        let mut dockshim = fixture::spawn(&args, &log);
        let status = fixture::wait_timeout(&mut dockshim, Duration::from_secs(20));
        let _ = cri_dockerd.kill();
        let _ = cri_dockerd.wait();
        let status = status.expect("dockshim exits while cri-dockerd runs");
        (status, fs::read_to_string(&log).unwrap_or_default())
    }

    /// The addresses host-local holds, sorted.
    fn reservations(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.ipam.path().join(&self.network_name)) else {
            return Vec::new();
        };
        let mut held: Vec<String> = entries
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                name.parse::<std::net::IpAddr>().is_ok().then_some(name)
            })
            .collect();
        held.sort();
        held
    }

    /// How many CNI DELs the IPAM plugin got for the sandbox `id`.
    fn dels(&self, id: &str) -> usize {
        fs::read_to_string(self.bin.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == format!("DEL {id}"))
            .count()
    }

    /// cri-dockerd's checkpoint directory.
    fn cri_dockerd_checkpoints(&self) -> PathBuf {
        self.cri_dockerd_root.path().join("sandbox")
    }
}

async fn status_of(client: &CriClient, id: &str) -> cri::PodSandboxStatus {
    client
        .pod_sandbox_status(id, false)
        .await
        .unwrap()
        .status
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_cri_dockerd_left_keeps_its_ip_and_is_torn_down_once() {
    let node = Node::lay_out();
    let sandbox_started = cri_dockerd::started_at(&node.sandbox_id);
    let container_started = cri_dockerd::started_at(&node.container_id);

    let (status, log) = node.start_beside_cri_dockerd();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cri-dockerd (pid "), "{log}");
    assert!(node
        .cri_dockerd_checkpoints()
        .join(&node.sandbox_id)
        .is_file());

    let mut dockshim = node.start_dockshim();
    let client = dockshim.client().await;

    for id in [&node.sandbox_id, &node.ghost_id] {
        assert!(!node.cri_dockerd_checkpoints().join(id).exists(), "{id}");
        assert!(node
            .cri_dockerd_checkpoints()
            .join(MIGRATED_DIR)
            .join(id)
            .is_file());
    }

    let status = status_of(&client, &node.sandbox_id).await;
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.network.unwrap().ip, node.pod_ip);
    let metadata = status.metadata.unwrap();
    assert_eq!(
        (metadata.name.as_str(), metadata.uid.as_str()),
        ("web", node.pod.uid.as_str())
    );

    let sandboxes = client.list_pod_sandbox(None).await.unwrap();
    let listed = |id: &str| sandboxes.iter().find(|s| s.id == id).map(|s| s.state);
    assert_eq!(
        listed(&node.sandbox_id),
        Some(cri::PodSandboxState::SandboxReady as i32)
    );
    assert_eq!(
        listed(&node.ghost_id),
        Some(cri::PodSandboxState::SandboxNotready as i32)
    );

    let filter = cri::ContainerFilter {
        pod_sandbox_id: node.sandbox_id.clone(),
        ..cri::ContainerFilter::default()
    };
    let containers = client.list_containers(Some(filter)).await.unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].id, node.container_id);
    assert_eq!(containers[0].metadata.as_ref().unwrap().name, "app");
    assert_eq!(
        containers[0].state,
        cri::ContainerState::ContainerRunning as i32
    );
    let container = client
        .container_status(&node.container_id, false)
        .await
        .unwrap()
        .status
        .unwrap();
    let log_path = node.logs.path().join("app").join("0.log");
    assert_eq!(container.log_path, log_path.display().to_string());
    assert!(
        fs::symlink_metadata(&log_path)
            .map(|meta| meta.file_type().is_symlink())
            .unwrap_or(true),
        "{} is no longer cri-dockerd's symlink",
        log_path.display()
    );

    assert_eq!(cri_dockerd::started_at(&node.sandbox_id), sandbox_started);
    assert_eq!(
        cri_dockerd::started_at(&node.container_id),
        container_started
    );
    assert_eq!(
        (node.dels(&node.sandbox_id), node.dels(&node.ghost_id)),
        (0, 0)
    );

    client.stop_pod_sandbox(&node.sandbox_id).await.unwrap();
    assert_eq!(node.dels(&node.sandbox_id), 1);
    assert_eq!(node.reservations(), std::slice::from_ref(&node.ghost_ip));
    client.stop_pod_sandbox(&node.ghost_id).await.unwrap();
    assert_eq!(node.dels(&node.ghost_id), 1);
    assert_eq!(node.reservations(), Vec::<String>::new());

    // A restart in between forgets nothing: the DELs are not run again.
    dockshim.sigterm();
    assert!(dockshim.wait_exit(Duration::from_secs(30)).success());
    let log = node.logs.path().join("restarted.stderr");
    let _restarted = Restarted::start(&dockshim, log);
    let client = CriClient::connect(dockshim.socket()).await;
    for id in [&node.sandbox_id, &node.ghost_id] {
        client.stop_pod_sandbox(id).await.unwrap();
        assert_eq!(node.dels(id), 1, "{id}");
        client.remove_pod_sandbox(id).await.unwrap();
    }
    let left = client.list_pod_sandbox(None).await.unwrap();
    assert!(
        !left
            .iter()
            .any(|s| s.id == node.sandbox_id || s.id == node.ghost_id),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_without_a_cached_result_gets_its_ip_from_its_namespace() {
    let node = Node::lay_out();
    let cached = node.cni_cache.path().join("results").join(format!(
        "{}-{}-{}",
        node.network_name,
        node.sandbox_id,
        cri_dockerd::POD_IFNAME
    ));
    fs::remove_file(cached).unwrap();
    let dockshim = node.start_dockshim();
    let client = dockshim.client().await;

    let status = status_of(&client, &node.sandbox_id).await;
    assert_eq!(status.network.unwrap().ip, node.pod_ip);

    for id in [&node.sandbox_id, &node.ghost_id] {
        client.stop_pod_sandbox(id).await.unwrap();
        client.stop_pod_sandbox(id).await.unwrap();
        assert_eq!(node.dels(id), 1, "{id}");
        client.remove_pod_sandbox(id).await.unwrap();
    }
    assert_eq!(node.reservations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_in_a_root_directory_shared_with_cri_dockerd_are_completed_in_place() {
    let node = Node::lay_out();
    let root = node.cri_dockerd_root.path().display().to_string();
    let dockshim = {
        let _alone = CRI_DOCKERD_RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut args = node.dockshim_args();
        args.extend(["--root-directory".to_owned(), root]);
        Dockshim::start_with(Options {
            cni_conflist: Some(node.network.to_string()),
            extra_args: args,
            ..Options::default()
        })
    };
    let client = dockshim.client().await;

    let checkpoint = node.cri_dockerd_checkpoints().join(&node.sandbox_id);
    let kept: serde_json::Value = serde_json::from_slice(&fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(kept["dockshim"]["primary_ip"], node.pod_ip.as_str());
    assert!(!node.cri_dockerd_checkpoints().join(MIGRATED_DIR).exists());
    let status = status_of(&client, &node.sandbox_id).await;
    assert_eq!(status.network.unwrap().ip, node.pod_ip);

    for id in [&node.sandbox_id, &node.ghost_id] {
        client.stop_pod_sandbox(id).await.unwrap();
        client.stop_pod_sandbox(id).await.unwrap();
        assert_eq!(node.dels(id), 1, "{id}");
        client.remove_pod_sandbox(id).await.unwrap();
        assert!(!node.cri_dockerd_checkpoints().join(id).exists(), "{id}");
    }
    assert_eq!(node.reservations(), Vec::<String>::new());
}
