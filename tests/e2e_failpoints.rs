//! A `kill -9` after any step of RunPodSandbox, CreateContainer or
//! StartContainer leaves nothing behind once dockshim is restarted and the
//! kubelet has done what it does after its runtime crashed — end to end,
//! with the real binary built with the `failpoints` feature (tests/run.sh
//! builds it so), the real dockerd and Debian's CNI plugins.
//!
//! Each case gets a network of its own (bridge + host-local + firewall +
//! portmap, one host port mapped, a DNS configuration so resolv.conf is
//! written) and a dockshim started with `DOCKSHIM_FAILPOINT` naming one
//! [`FailPoint`]. The call that reaches it must find the process killed by
//! SIGKILL, which runs no rollback. dockshim is started again without the
//! failpoint, and the test plays the kubelet:
//!
//! 1. It syncs the pod, as `SyncPod` does after a runtime error: it lists
//!    the pod's sandboxes and containers by the pod-UID label (as
//!    `GetPodStatus` does) and keeps a sandbox only when it is READY and
//!    has an IP. Otherwise it kills the pod — StopContainer on each running
//!    container, StopPodSandbox on every sandbox listed — and runs a new
//!    sandbox with the next attempt (0 when none is listed: the kubelet
//!    never learnt an ID). A container that is not running is created
//!    again with the next attempt and started. Every call here must
//!    succeed: the crash must not stop the pod from running.
//! 2. It deletes the pod: StopContainer (no grace) on every running
//!    container and StopPodSandbox on every sandbox of the pod, then what
//!    the garbage collector does — RemoveContainer on every container of
//!    the pod, and StopPodSandbox then RemovePodSandbox on every sandbox
//!    whose metadata names the pod in an unfiltered ListPodSandbox, which
//!    also lists the sandboxes only a checkpoint remembers.
//!
//! Then nothing may be left: no container with the test's label, no file
//! under the checkpoint, owed-teardown or CNI result cache directories, no
//! container log file, no host-local reservation, no iptables rule naming
//! the network, the host port or the pod subnet. Needs root, as
//! `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::busybox_image;
use common::client::CriClient;
use common::cni_pod::{bridge_plugin, chained_plugins, conflist, CniGuard};
use common::fixture::{Dockshim, Options, Restarted};
use common::pod::{self, RUN_LABEL};
use common::unique;
use dockshim::api::v1 as cri;
use dockshim::failpoint::{FailPoint, FAILPOINT_ENV};
use nix::sys::signal::Signal;

/// The pods' subnets are `10.214.<octet>.0/24`, apart from the other
/// network tests'.
const SUBNET_PREFIX: &str = "10.214";
/// How many of those subnets each failpoint has; it has 1000 host ports.
const SUBNETS_PER_FAILPOINT: usize = 250 / FailPoint::ALL.len();
const _: () = assert!(
    SUBNETS_PER_FAILPOINT > 0,
    "too few subnets for the failpoints"
);
/// The kubelet's labels that tie sandboxes and containers to their pod.
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// The pod's one container.
const CONTAINER: &str = "app";
/// How long the armed dockshim may take to die once the call reached it.
const DEATH_TIMEOUT: Duration = Duration::from_secs(10);

/// The failpoints each call reaches, in order.
fn failpoints_of(call: &str) -> Vec<FailPoint> {
    let prefix = format!("{call}/");
    let points: Vec<FailPoint> = FailPoint::ALL
        .into_iter()
        .filter(|point| point.name().starts_with(&prefix))
        .collect();
    assert!(!points.is_empty(), "no failpoint of {call}");
    points
}

/// Whether this build can crash on purpose; without the feature the test
/// is skipped, or fails under tests/run.sh.
fn built_with_failpoints() -> bool {
    if !cfg!(feature = "failpoints") {
        common::missing_environment(
            "built without the failpoints feature (cargo test --features failpoints)",
        );
        return false;
    }
    true
}

/// One case: a pod on a network of its own and a dockshim armed at one
/// failpoint.
struct Case {
    /// Declared first: dropped (containers, bridge and rules removed)
    /// before the rest.
    _guard: CniGuard,
    point: FailPoint,
    dockshim: Dockshim,
    client: CriClient,
    logs: tempfile::TempDir,
    ipam: tempfile::TempDir,
    run_id: String,
    network_name: String,
    subnet: String,
    host_port: i32,
}

impl Case {
    async fn start(point: FailPoint) -> Case {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the failpoint tests create containers and bridges: run them as root (tests/run.sh)"
        );
        let id = unique();
        let run_id = format!("{id:08x}");
        let bridge = format!("dshfp{:04x}", id & 0xffff);
        // Each failpoint has a band of subnets and host ports of its own,
        // so the cases that run side by side never share one.
        let band = FailPoint::ALL.iter().position(|p| *p == point).unwrap();
        let octet = 1 + band * SUBNETS_PER_FAILPOINT + (id >> 16) as usize % SUBNETS_PER_FAILPOINT;
        let subnet = format!("{SUBNET_PREFIX}.{octet}.");
        let network_name = format!("dshfp-{run_id}");
        let ipam = tempfile::Builder::new()
            .prefix("dockshim-ipam")
            .tempdir()
            .unwrap();
        let mut plugins = vec![bridge_plugin(
            &bridge,
            &format!("{subnet}0/24"),
            ipam.path(),
        )];
        plugins.extend(chained_plugins());
        let guard = CniGuard::new(run_id.clone(), bridge, network_name.clone(), subnet.clone());
        let dockshim = Dockshim::start_with(Options {
            cni_conflist: Some(conflist(&network_name, plugins).to_string()),
            extra_args: pod::dockshim_args(Vec::new()),
            env: vec![(FAILPOINT_ENV.to_owned(), point.name().to_owned())],
            ..Options::default()
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-container")
            .tempdir()
            .unwrap();
        Case {
            _guard: guard,
            point,
            dockshim,
            client,
            logs,
            ipam,
            run_id,
            network_name,
            subnet,
            host_port: 20_000 + i32::try_from(band * 1000 + id as usize % 1000).unwrap(),
        }
    }

    fn uid(&self) -> String {
        format!("uid-{}", self.run_id)
    }

    /// The kubelet's labels of the pod, and the test's.
    fn labels(&self) -> HashMap<String, String> {
        let mut labels = pod::labels(&self.run_id);
        labels.insert(POD_UID_LABEL.to_owned(), self.uid());
        labels.insert(POD_NAME_LABEL.to_owned(), "crash".to_owned());
        labels.insert(POD_NAMESPACE_LABEL.to_owned(), "e2e".to_owned());
        labels
    }

    /// The pod's sandbox configuration for `attempt`: one host port
    /// mapped, a DNS configuration of its own.
    fn sandbox_config(&self, attempt: u32) -> cri::PodSandboxConfig {
        let metadata = cri::PodSandboxMetadata {
            name: "crash".to_owned(),
            namespace: "e2e".to_owned(),
            uid: self.uid(),
            attempt,
        };
        let namespaces = cri::NamespaceOption {
            network: cri::NamespaceMode::Pod as i32,
            pid: cri::NamespaceMode::Container as i32,
            ipc: cri::NamespaceMode::Pod as i32,
            ..cri::NamespaceOption::default()
        };
        cri::PodSandboxConfig {
            hostname: "crash".to_owned(),
            labels: self.labels(),
            port_mappings: vec![cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 80,
                host_port: self.host_port,
                host_ip: String::new(),
            }],
            dns_config: Some(cri::DnsConfig {
                servers: vec!["192.0.2.53".to_owned()],
                searches: vec!["e2e.svc.cluster.local".to_owned()],
                options: vec!["ndots:5".to_owned()],
            }),
            ..pod::sandbox_config(metadata, &self.run_id, self.logs.path(), namespaces)
        }
    }

    /// The pod's container for `attempt`.
    fn container_config(&self, attempt: u32) -> cri::ContainerConfig {
        let namespaces = cri::NamespaceOption {
            network: cri::NamespaceMode::Pod as i32,
            pid: cri::NamespaceMode::Container as i32,
            ipc: cri::NamespaceMode::Pod as i32,
            ..cri::NamespaceOption::default()
        };
        let mut config = pod::container_config(
            CONTAINER,
            &busybox_image(),
            &["sleep", "300"],
            &self.run_id,
            namespaces,
        );
        config.labels = self.labels();
        config
            .labels
            .insert(CONTAINER_NAME_LABEL.to_owned(), CONTAINER.to_owned());
        config.log_path = format!("{CONTAINER}_{attempt}.log");
        if let Some(metadata) = config.metadata.as_mut() {
            metadata.attempt = attempt;
        }
        config
    }

    /// Makes the call that reaches the failpoint, after the calls before
    /// it succeeded, and checks that the process died of SIGKILL there.
    async fn crash(&mut self) {
        let name = self.point.name();
        let call = name.split_once('/').map_or(name, |(call, _)| call);
        let crashed = if call == "run-pod-sandbox" {
            self.client
                .run_pod_sandbox(self.sandbox_config(0))
                .await
                .map(drop)
        } else {
            let sandbox = pod::run_sandbox(&self.client, &self.sandbox_config(0)).await;
            let created = self
                .client
                .create_container(&sandbox, self.container_config(0), self.sandbox_config(0))
                .await;
            match (call, created) {
                ("create-container", created) => created.map(drop),
                (_, Ok(id)) => self.client.start_container(&id).await.map(drop),
                (_, Err(status)) => panic!("CreateContainer: {status:?}"),
            }
        };
        assert!(crashed.is_err(), "{name}: the call succeeded");
        let status = self.dockshim.wait_exit(DEATH_TIMEOUT);
        assert_eq!(
            status.signal(),
            Some(Signal::SIGKILL as i32),
            "{name}: dockshim ended with {status}"
        );
        let reached = format!("failpoint {name} reached");
        assert!(
            self.dockshim.stderr().contains(&reached),
            "{name}: dockshim died elsewhere:\n{}",
            self.dockshim.stderr()
        );
    }

    /// Restarts dockshim without the failpoint; returns it with a client.
    async fn restart(&self) -> (Restarted, CriClient) {
        let log = self
            .dir_of("--root-directory")
            .with_file_name("restarted.stderr");
        let restarted = Restarted::start(&self.dockshim, log);
        let client = CriClient::connect(self.dockshim.socket()).await;
        (restarted, client)
    }

    /// The label selector `GetPodStatus` lists the pod's sandboxes and
    /// containers with.
    fn pod_selector(&self) -> HashMap<String, String> {
        [(POD_UID_LABEL.to_owned(), self.uid())].into()
    }

    async fn pod_sandboxes(&self, client: &CriClient) -> Vec<cri::PodSandbox> {
        let filter = cri::PodSandboxFilter {
            label_selector: self.pod_selector(),
            ..cri::PodSandboxFilter::default()
        };
        client.list_pod_sandbox(Some(filter)).await.unwrap()
    }

    async fn pod_containers(&self, client: &CriClient) -> Vec<cri::Container> {
        let filter = cri::ContainerFilter {
            label_selector: self.pod_selector(),
            ..cri::ContainerFilter::default()
        };
        client.list_containers(Some(filter)).await.unwrap()
    }

    async fn has_ip(&self, client: &CriClient, id: &str) -> bool {
        let status = client.pod_sandbox_status(id, false).await.unwrap();
        status
            .status
            .and_then(|status| status.network)
            .is_some_and(|network| !network.ip.is_empty())
    }

    /// Stops every running container of the pod at once, then every
    /// sandbox listed.
    async fn kill_pod(&self, client: &CriClient, sandboxes: &[cri::PodSandbox]) {
        for container in self.pod_containers(client).await {
            if container.state == cri::ContainerState::ContainerRunning as i32 {
                client.stop_container(&container.id, 0).await.unwrap();
            }
        }
        for sandbox in sandboxes {
            client.stop_pod_sandbox(&sandbox.id).await.unwrap();
        }
    }

    /// The kubelet's `SyncPod` after the crash: a READY sandbox with an IP
    /// is kept, else the pod is killed and a new sandbox run; a container
    /// that is not running is created again and started.
    async fn sync_pod(&self, client: &CriClient) {
        let sandboxes = self.pod_sandboxes(client).await;
        let latest = sandboxes.iter().max_by_key(|sandbox| sandbox.created_at);
        let kept = match latest {
            Some(sandbox)
                if sandbox.state == cri::PodSandboxState::SandboxReady as i32
                    && self.has_ip(client, &sandbox.id).await =>
            {
                let attempt = sandbox.metadata.as_ref().map_or(0, |m| m.attempt);
                Some((sandbox.id.clone(), attempt))
            }
            _ => None,
        };
        let (sandbox_id, sandbox_attempt) = match kept {
            Some(kept) => kept,
            None => {
                self.kill_pod(client, &sandboxes).await;
                let attempt = sandboxes
                    .iter()
                    .filter_map(|sandbox| sandbox.metadata.as_ref())
                    .map(|metadata| metadata.attempt + 1)
                    .max()
                    .unwrap_or(0);
                let id = client
                    .run_pod_sandbox(self.sandbox_config(attempt))
                    .await
                    .unwrap_or_else(|status| {
                        panic!("{}: RunPodSandbox again: {status:?}", self.point.name())
                    });
                (id, attempt)
            }
        };
        let containers = self.pod_containers(client).await;
        let running = containers.iter().any(|container| {
            container.pod_sandbox_id == sandbox_id
                && container.state == cri::ContainerState::ContainerRunning as i32
        });
        if running {
            return;
        }
        let attempt = containers
            .iter()
            .filter_map(|container| container.metadata.as_ref())
            .map(|metadata| metadata.attempt + 1)
            .max()
            .unwrap_or(0);
        let id = client
            .create_container(
                &sandbox_id,
                self.container_config(attempt),
                self.sandbox_config(sandbox_attempt),
            )
            .await
            .unwrap_or_else(|status| {
                panic!("{}: CreateContainer again: {status:?}", self.point.name())
            });
        client.start_container(&id).await.unwrap_or_else(|status| {
            panic!("{}: StartContainer again: {status:?}", self.point.name())
        });
    }

    /// The pod is deleted: killed, then its containers and sandboxes
    /// collected.
    async fn delete_pod(&self, client: &CriClient) {
        let sandboxes = self.pod_sandboxes(client).await;
        self.kill_pod(client, &sandboxes).await;
        for container in self.pod_containers(client).await {
            client.remove_container(&container.id).await.unwrap();
        }
        let uid = self.uid();
        for sandbox in client.list_pod_sandbox(None).await.unwrap() {
            if sandbox.metadata.as_ref().map(|m| &m.uid) != Some(&uid) {
                continue;
            }
            client.stop_pod_sandbox(&sandbox.id).await.unwrap();
            client.remove_pod_sandbox(&sandbox.id).await.unwrap();
        }
    }

    /// The directory dockshim's flag `flag` names.
    fn dir_of(&self, flag: &str) -> PathBuf {
        let args = self.dockshim.same_args();
        args.iter()
            .position(|a| a == flag)
            .map(|i| PathBuf::from(&args[i + 1]))
            .unwrap()
    }

    /// Everything the pod may leave behind, one line per thing.
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let filter = format!("label={RUN_LABEL}={}", self.run_id);
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .env(
                "DOCKER_HOST",
                format!("unix://{}", common::docker::docker_socket()),
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "docker ps: {out:?}");
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            left.push(format!("container {id}"));
        }
        let root = self.dir_of("--root-directory");
        let kept = [
            root.join("sandbox"),
            root.join("owed-teardown"),
            self.dir_of("--cni-cache-dir"),
            self.logs.path().to_owned(),
        ];
        for file in kept.iter().flat_map(|dir| files_under(dir)) {
            left.push(format!("file {}", file.display()));
        }
        for file in files_under(&self.ipam.path().join(&self.network_name)) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                left.push(format!("host-local reservation {name}"));
            }
        }
        let rules = Command::new("iptables-save").output().unwrap();
        assert!(rules.status.success(), "iptables-save: {rules:?}");
        let port = format!("--dport {}", self.host_port);
        for rule in String::from_utf8_lossy(&rules.stdout).lines() {
            if rule.contains(&self.network_name)
                || rule.contains(&port)
                || rule.contains(&self.subnet)
            {
                left.push(format!("iptables rule {rule}"));
            }
        }
        left
    }

    /// The whole case: crash, restart, the kubelet's sync and deletion,
    /// then nothing left.
    async fn run(mut self) {
        let name = self.point.name();
        self.crash().await;
        let (restarted, client) = self.restart().await;
        self.sync_pod(&client).await;
        self.delete_pod(&client).await;
        let left = self.leftovers();
        assert!(left.is_empty(), "{name} left:\n{}", left.join("\n"));
        drop(restarted);
        eprintln!("{name}: nothing left");
    }
}

/// Every file beneath `dir`, hidden ones and those in subdirectories
/// included; nothing if `dir` does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn crash_at_every_failpoint_of(call: &str) {
    if !built_with_failpoints() {
        return;
    }
    for point in failpoints_of(call) {
        Case::start(point).await.run().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_any_step_of_run_pod_sandbox_leaves_nothing_after_restart_and_removal() {
    crash_at_every_failpoint_of("run-pod-sandbox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_any_step_of_create_container_leaves_nothing_after_restart_and_removal() {
    crash_at_every_failpoint_of("create-container").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_any_step_of_start_container_leaves_nothing_after_restart_and_removal() {
    crash_at_every_failpoint_of("start-container").await;
}
