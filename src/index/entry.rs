//! `Entry`: one sandbox or container as the index keeps it, made from
//! dockerd's inspect answer by a pure function.
//!
//! It owns the rules for which Docker containers are dockshim's (the
//! `io.kubernetes.docker.type` label of the scheme cri-dockerd and the old
//! dockershim used, so their containers are recognised), for Docker states
//! and times, and for which labels the CRI sees. It does no I/O and knows
//! nothing of CRI messages; the handlers turn entries into CRI statuses.

use std::collections::{BTreeMap, HashMap};

use log::warn;

use super::time::parse_rfc3339_nanos;
use crate::docker::ContainerInspect;

/// Marks a Docker container as a sandbox or a container of dockshim's.
pub(super) const TYPE_LABEL: &str = "io.kubernetes.docker.type";
const TYPE_SANDBOX: &str = "podsandbox";
const TYPE_CONTAINER: &str = "container";
/// The sandbox a container belongs to.
const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
/// `<log_directory>/<log_path>` of a container.
const LOG_PATH_LABEL: &str = "io.kubernetes.container.logpath";
/// Set to `POD` on sandboxes; not one of the sandbox's CRI labels.
const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// CRI annotations are stored as Docker labels under this prefix.
pub const ANNOTATION_PREFIX: &str = "annotation.";
/// Labels dockshim sets for itself; the CRI never sees them.
const INTERNAL_LABELS: [&str; 3] = [TYPE_LABEL, SANDBOX_ID_LABEL, LOG_PATH_LABEL];

/// A pod sandbox (the "pause" container) or an application container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sandbox,
    Container,
}

/// The Docker state of a container (`State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Removing,
    /// A state this version of dockshim does not know.
    Unknown,
}

impl State {
    fn from_docker(status: &str) -> State {
        match status {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "exited" => State::Exited,
            "dead" => State::Dead,
            "removing" => State::Removing,
            _ => State::Unknown,
        }
    }
}

/// The state the CRI reports for a container; a sandbox is ready exactly
/// when its state is `Running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CriState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One mount of a container, as dockerd reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, `image`, ...
    pub kind: String,
    /// The volume's name; for an image mount, the image as the container
    /// was created with it.
    pub name: String,
    /// The host path.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// `rprivate`, `rslave`, `rshared`, ...; empty when dockerd gives none.
    pub propagation: String,
}

/// The Linux resources dockerd applied to a container (`HostConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    /// Bytes; 0 is unlimited.
    pub memory_limit: i64,
    /// Memory plus swap, bytes; 0 is unset, -1 unlimited.
    pub memory_swap: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// The OOM score adjustment the container was created with; an update
    /// may since have given its processes another (see
    /// `cri::container::update`).
    pub oom_score_adj: i64,
    /// The most processes the container may have; 0 is unlimited.
    pub pids_limit: i64,
}

/// What the index knows of one sandbox or container: enough to answer
/// ListPodSandbox, PodSandboxStatus, ListContainers and ContainerStatus
/// without asking dockerd. Times are nanoseconds since the Unix epoch, 0
/// when unset (never started, never finished) or unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full 64-hex container ID.
    pub id: String,
    /// The Docker name without its leading `/`, e.g. `k8s_POD_web_ns_uid_0`.
    pub name: String,
    pub kind: Kind,
    /// Every Docker label, internal ones and `annotation.` ones included;
    /// see [`Entry::cri_labels`] and [`Entry::annotations`].
    pub labels: BTreeMap<String, String>,
    pub created_ns: i64,
    /// Start of the current or last run.
    pub started_ns: i64,
    /// End of the last run; kept by dockerd while a new run goes on.
    pub finished_ns: i64,
    pub state: State,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Why the last start failed.
    pub error: String,
    /// Host PID of the first process; 0 when not running.
    pub pid: i64,
    /// The image as the container was created with it (`Config.Image`).
    pub image: String,
    /// The image's ID (`Image`), `sha256:<hex>`: the configuration digest
    /// under a graph driver, the manifest digest under the containerd
    /// image store, as the image's own `Id` is.
    pub image_id: String,
    /// The sandbox's ID: the `io.kubernetes.sandbox.id` label for a
    /// container (empty if missing), its own ID for a sandbox.
    pub sandbox_id: String,
    /// The `io.kubernetes.container.logpath` label; empty for sandboxes.
    pub log_path: String,
    pub network_mode: String,
    pub ipc_mode: String,
    pub pid_mode: String,
    /// The addresses of the Docker network `network_mode` names
    /// (`NetworkSettings.Networks`); empty under CNI or host networking.
    pub ip: String,
    pub ipv6: String,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub hostname: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// `HostConfig.CgroupParent`: empty for dockerd's default; a sandbox's
    /// is its pod cgroup when the kubelet made one.
    pub cgroup_parent: String,
    /// `HostConfig.Runtime`: the Docker runtime, which a pod's containers
    /// take from its sandbox.
    pub runtime: String,
    /// The writable layer's directory (`GraphDriver.Data.UpperDir`);
    /// empty under storage drivers that have none, the containerd image
    /// store's snapshotters among them.
    pub upper_dir: String,
    /// What holds the writable layer: the graph driver, or the containerd
    /// snapshotter (`Storage.RootFS.Snapshot.Name`, `GraphDriver.Name`
    /// below API 1.52).
    pub layer_driver: String,
}

impl Entry {
    /// The entry for an inspected container, or `None` when the container
    /// is not dockshim's (no `io.kubernetes.docker.type` label of a known
    /// value) or has no ID. A timestamp dockerd wrote in a form we cannot
    /// read is logged and read as 0.
    pub fn from_inspect(inspect: &ContainerInspect) -> Option<Entry> {
        let labels = &inspect.config.labels;
        let kind = match labels.get(TYPE_LABEL).map(String::as_str) {
            Some(TYPE_SANDBOX) => Kind::Sandbox,
            Some(TYPE_CONTAINER) => Kind::Container,
            _ => return None,
        };
        if inspect.id.is_empty() {
            return None;
        }
        let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let sandbox_id = match kind {
            Kind::Sandbox => inspect.id.clone(),
            Kind::Container => label(SANDBOX_ID_LABEL),
        };
        let time = |what: &str, text: &str| {
            parse_rfc3339_nanos(text).unwrap_or_else(|| {
                warn!("container {}: unreadable {what} time {text:?}", inspect.id);
                0
            })
        };
        let state = &inspect.state;
        let host = &inspect.host_config;
        let endpoint = inspect.network_settings.endpoint(&host.network_mode);
        Some(Entry {
            id: inspect.id.clone(),
            name: inspect
                .name
                .strip_prefix('/')
                .unwrap_or(&inspect.name)
                .to_owned(),
            kind,
            created_ns: time("created", &inspect.created),
            started_ns: time("start", &state.started_at),
            finished_ns: time("finish", &state.finished_at),
            state: State::from_docker(&state.status),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed,
            error: state.error.clone(),
            pid: state.pid,
            image: inspect.config.image.clone(),
            image_id: inspect.image.clone(),
            sandbox_id,
            log_path: label(LOG_PATH_LABEL),
            network_mode: host.network_mode.clone(),
            ipc_mode: host.ipc_mode.clone(),
            pid_mode: host.pid_mode.clone(),
            ip: endpoint.map(|e| e.ip_address.clone()).unwrap_or_default(),
            ipv6: endpoint
                .map(|e| e.global_ipv6_address.clone())
                .unwrap_or_default(),
            mounts: inspect
                .mounts
                .iter()
                .map(|m| Mount {
                    kind: m.kind.clone(),
                    name: m.name.clone(),
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    read_only: !m.rw,
                    propagation: m.propagation.clone(),
                })
                .collect(),
            resources: Resources {
                cpu_shares: host.cpu_shares,
                cpu_period: host.cpu_period,
                cpu_quota: host.cpu_quota,
                memory_limit: host.memory,
                memory_swap: host.memory_swap,
                cpuset_cpus: host.cpuset_cpus.clone(),
                cpuset_mems: host.cpuset_mems.clone(),
                oom_score_adj: host.oom_score_adj,
                pids_limit: host.pids_limit.filter(|limit| *limit > 0).unwrap_or(0),
            },
            hostname: inspect.config.hostname.clone(),
            tty: inspect.config.tty,
            stdin: inspect.config.open_stdin,
            stdin_once: inspect.config.stdin_once,
            cgroup_parent: host.cgroup_parent.clone(),
            runtime: host.runtime.clone(),
            upper_dir: inspect.graph_driver.data.upper_dir.clone(),
            layer_driver: if inspect.storage.root_fs.snapshot.name.is_empty() {
                inspect.graph_driver.name.clone()
            } else {
                inspect.storage.root_fs.snapshot.name.clone()
            },
            labels: labels.clone(),
        })
    }

    /// Whether a process of the container lives (paused counts, as it does
    /// for Docker and for the CRI).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running | State::Paused)
    }

    /// Whether the sandbox is `SANDBOX_READY`.
    pub fn is_ready(&self) -> bool {
        self.is_running()
    }

    /// The CRI container state. A container that is not running but has
    /// finished, or failed to start (it keeps Docker state `created` with a
    /// non-zero exit code), is exited; restarting and removing containers
    /// are in between and reported unknown.
    pub fn cri_state(&self) -> CriState {
        match self.state {
            State::Running | State::Paused => CriState::Running,
            State::Exited | State::Dead => CriState::Exited,
            State::Created if self.finished_ns != 0 || self.exit_code != 0 => CriState::Exited,
            State::Created => CriState::Created,
            State::Restarting | State::Removing | State::Unknown => CriState::Unknown,
        }
    }

    /// The labels the kubelet gave: every Docker label except dockshim's
    /// internal ones, the stored annotations and, on a sandbox, the
    /// `io.kubernetes.container.name=POD` marker.
    pub fn cri_labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(move |(key, _)| self.is_cri_label(key))
    }

    /// The CRI annotations, with the `annotation.` prefix removed.
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.labels
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(ANNOTATION_PREFIX)?, v.as_str())))
    }

    /// Whether every `key=value` of a CRI label selector is among
    /// [`Entry::cri_labels`].
    pub fn matches_selector(&self, selector: &HashMap<String, String>) -> bool {
        selector.iter().all(|(key, value)| {
            self.is_cri_label(key) && self.labels.get(key).is_some_and(|v| v == value)
        })
    }

    fn is_cri_label(&self, key: &str) -> bool {
        let hidden = INTERNAL_LABELS.contains(&key)
            || key.starts_with(ANNOTATION_PREFIX)
            || (self.kind == Kind::Sandbox && key == CONTAINER_NAME_LABEL);
        !hidden
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A container created by the kubelet through dockshim (or
    /// cri-dockerd), killed by `docker kill`; dockerd 20.10, trimmed.
    const KILLED_CONTAINER: &str = r#"{
        "Id": "78bff5f340a10b19e50dbd85fba6aec984265b7745a57b703e21b79e533002a4",
        "Created": "2026-11-23T11:26:27.658122116Z",
        "State": {"Status": "exited", "Running": false, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 137, "Error": "",
            "StartedAt": "2026-11-23T11:26:27.998006662Z",
            "FinishedAt": "2026-11-23T11:26:28.052428981Z"},
        "Image": "sha256:f6a1e70bd9c172fa1d2bb569f98fc9e8f7bfe699d992fad5ed95eefcc2f996f5",
        "Name": "/k8s_app_web_default_7e5a_0",
        "HostConfig": {"NetworkMode": "container:5d1b", "IpcMode": "container:5d1b",
            "PidMode": "", "CpuShares": 2, "CpuPeriod": 100000, "CpuQuota": 50000,
            "Memory": 67108864, "MemorySwap": 67108864, "CpusetCpus": "0",
            "CpusetMems": "", "OomScoreAdj": 1000, "PidsLimit": 100,
            "CgroupParent": "kubepods-burstable-pod7e5a.slice"},
        "GraphDriver": {"Name": "overlay2",
            "Data": {"UpperDir": "/var/lib/docker/overlay2/5c4d/diff"}},
        "Mounts": [{"Type": "bind", "Source": "/var/lib/kubelet/pods/7e5a/etc-hosts",
            "Destination": "/etc/hosts", "Mode": "", "RW": true, "Propagation": "rprivate"},
            {"Type": "bind", "Source": "/tmp", "Destination": "/host", "Mode": "ro",
            "RW": false, "Propagation": "rslave"}],
        "Config": {"Hostname": "web", "Tty": true, "OpenStdin": true, "StdinOnce": false,
            "Env": null, "Image": "127.0.0.1:5000/dockshim-test/busybox:latest",
            "Labels": {"io.kubernetes.docker.type": "container",
                "io.kubernetes.sandbox.id": "5d1b",
                "io.kubernetes.container.logpath": "/var/log/pods/default_web_7e5a/app/0.log",
                "io.kubernetes.container.name": "app",
                "io.kubernetes.pod.name": "web",
                "annotation.io.kubernetes.container.hash": "1a2b"}},
        "NetworkSettings": {"IPAddress": "", "GlobalIPv6Address": ""}
    }"#;

    /// A sandbox created (never started) the way cri-dockerd creates one.
    const CREATED_SANDBOX: &str = r#"{
        "Id": "5d1b0000000000000000000000000000000000000000000000000000000000aa",
        "Created": "2026-11-23T11:20:00.5Z",
        "State": {"Status": "created", "Running": false, "Pid": 0, "ExitCode": 0,
            "Error": "", "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z"},
        "Image": "sha256:8e63",
        "Name": "/k8s_POD_web_default_7e5a_0",
        "HostConfig": {"NetworkMode": "none", "IpcMode": "shareable", "PidMode": "",
            "Runtime": "runsc"},
        "Mounts": null,
        "Config": {"Image": "127.0.0.1:5000/dockshim-test/pause:3.10", "Env": null,
            "Labels": {"io.kubernetes.docker.type": "podsandbox",
                "io.kubernetes.container.name": "POD",
                "io.kubernetes.pod.name": "web",
                "io.kubernetes.pod.namespace": "default",
                "annotation.kubernetes.io/config.source": "api"}},
        "NetworkSettings": {"IPAddress": "", "GlobalIPv6Address": "",
            "Networks": {"none": {"IPAddress": "", "GlobalIPv6Address": ""}}}
    }"#;

    fn entry(json: &str) -> Entry {
        Entry::from_inspect(&crate::codec::json::decode(json).unwrap()).unwrap()
    }

    #[test]
    fn killed_container_is_exited_with_its_times_and_sandbox() {
        let e = entry(KILLED_CONTAINER);
        assert_eq!(e.kind, Kind::Container);
        assert_eq!(e.name, "k8s_app_web_default_7e5a_0");
        assert_eq!(e.state, State::Exited);
        assert_eq!(e.cri_state(), CriState::Exited);
        assert_eq!(e.exit_code, 137);
        assert_eq!(e.created_ns, 1_795_433_187_658_122_116);
        assert_eq!(e.started_ns, 1_795_433_187_998_006_662);
        assert_eq!(e.finished_ns, 1_795_433_188_052_428_981);
        assert_eq!(e.sandbox_id, "5d1b");
        assert_eq!(e.log_path, "/var/log/pods/default_web_7e5a/app/0.log");
        assert_eq!(e.image, "127.0.0.1:5000/dockshim-test/busybox:latest");
        assert!(e.image_id.starts_with("sha256:f6a1"));
        assert_eq!(
            (
                e.network_mode.as_str(),
                e.ipc_mode.as_str(),
                e.pid_mode.as_str()
            ),
            ("container:5d1b", "container:5d1b", "")
        );
        assert!(e.tty && e.stdin && !e.stdin_once);
        assert_eq!(e.hostname, "web");
    }

    #[test]
    fn the_cgroup_parent_and_writable_layer_come_from_the_inspect() {
        let e = entry(KILLED_CONTAINER);
        assert_eq!(e.cgroup_parent, "kubepods-burstable-pod7e5a.slice");
        assert_eq!(e.upper_dir, "/var/lib/docker/overlay2/5c4d/diff");
        let sandbox = entry(CREATED_SANDBOX);
        assert_eq!(
            (sandbox.cgroup_parent.as_str(), sandbox.upper_dir.as_str()),
            ("", "")
        );
        assert_eq!(e.layer_driver, "overlay2");
    }

    #[test]
    fn the_runtime_a_pod_s_containers_take_comes_from_the_sandbox_s_inspect() {
        assert_eq!(entry(CREATED_SANDBOX).runtime, "runsc");
        assert_eq!(entry(KILLED_CONTAINER).runtime, "");
    }

    #[test]
    fn a_snapshotter_s_writable_layer_is_named_by_its_snapshotter() {
        let labels = r#""Config": {"Labels": {"io.kubernetes.docker.type": "container"}}"#;
        let storage = entry(&format!(
            r#"{{"Id": "6608", {labels}, "GraphDriver": null,
                "Storage": {{"RootFS": {{"Snapshot": {{"Name": "overlayfs"}}}}}}}}"#
        ));
        assert_eq!(
            (storage.upper_dir.as_str(), storage.layer_driver.as_str()),
            ("", "overlayfs")
        );
        let graph_driver = entry(&format!(
            r#"{{"Id": "6608", {labels}, "GraphDriver": {{"Name": "overlayfs", "Data": null}}}}"#
        ));
        assert_eq!(graph_driver.layer_driver, "overlayfs");
    }

    #[test]
    fn mounts_and_resources_come_from_the_host_config() {
        let e = entry(KILLED_CONTAINER);
        assert_eq!(e.mounts.len(), 2);
        assert!(!e.mounts[0].read_only);
        assert_eq!(
            (
                e.mounts[1].destination.as_str(),
                e.mounts[1].read_only,
                e.mounts[1].propagation.as_str()
            ),
            ("/host", true, "rslave")
        );
        assert_eq!(
            e.resources,
            Resources {
                cpu_shares: 2,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                memory_limit: 64 << 20,
                memory_swap: 64 << 20,
                cpuset_cpus: "0".to_owned(),
                cpuset_mems: String::new(),
                oom_score_adj: 1000,
                pids_limit: 100,
            }
        );
    }

    #[test]
    fn every_unlimited_pids_limit_reads_as_zero() {
        let mut inspect: ContainerInspect = crate::codec::json::decode(KILLED_CONTAINER).unwrap();
        for unlimited in [None, Some(0), Some(-1)] {
            inspect.host_config.pids_limit = unlimited;
            let e = Entry::from_inspect(&inspect).unwrap();
            assert_eq!(e.resources.pids_limit, 0, "{unlimited:?}");
        }
    }

    #[test]
    fn created_sandbox_has_zero_start_and_finish_and_its_own_id_as_sandbox() {
        let e = entry(CREATED_SANDBOX);
        assert_eq!(e.kind, Kind::Sandbox);
        assert_eq!(e.sandbox_id, e.id);
        assert_eq!(e.state, State::Created);
        assert_eq!(e.cri_state(), CriState::Created);
        assert!(!e.is_ready());
        assert_eq!(e.created_ns, 1_795_432_800_500_000_000);
        assert_eq!((e.started_ns, e.finished_ns), (0, 0));
        assert!(e.mounts.is_empty());
        assert!(e.log_path.is_empty());
        assert_eq!((e.ip.as_str(), e.ipv6.as_str()), ("", ""));
    }

    #[test]
    fn addresses_come_from_the_network_the_network_mode_names() {
        // Docker 29 sends no top-level `IPAddress` at any API version.
        let bridged = CREATED_SANDBOX
            .replace(r#""NetworkMode": "none""#, r#""NetworkMode": "default""#)
            .replace(
                r#""Networks": {"none": {"IPAddress": "", "GlobalIPv6Address": ""}}"#,
                r#""Networks": {"bridge": {"IPAddress": "172.17.0.3",
                    "GlobalIPv6Address": "fd00::3", "GwPriority": 0, "DNSNames": null}}"#,
            )
            .replace(r#""IPAddress": "", "GlobalIPv6Address": "","#, "");
        let e = entry(&bridged);
        assert_eq!(e.network_mode, "default");
        assert_eq!((e.ip.as_str(), e.ipv6.as_str()), ("172.17.0.3", "fd00::3"));
    }

    #[test]
    fn containers_without_the_type_label_are_not_ours() {
        let mut inspect: ContainerInspect = crate::codec::json::decode(KILLED_CONTAINER).unwrap();
        inspect.config.labels.remove(TYPE_LABEL);
        assert_eq!(Entry::from_inspect(&inspect), None);
        inspect
            .config
            .labels
            .insert(TYPE_LABEL.to_owned(), "something-else".to_owned());
        assert_eq!(Entry::from_inspect(&inspect), None);
    }

    #[test]
    fn cri_labels_hide_internal_labels_and_annotations() {
        let container = entry(KILLED_CONTAINER);
        let labels: Vec<_> = container.cri_labels().collect();
        assert_eq!(
            labels,
            [
                ("io.kubernetes.container.name", "app"),
                ("io.kubernetes.pod.name", "web")
            ]
        );
        let annotations: Vec<_> = container.annotations().collect();
        assert_eq!(annotations, [("io.kubernetes.container.hash", "1a2b")]);

        let sandbox = entry(CREATED_SANDBOX);
        let labels: Vec<_> = sandbox.cri_labels().map(|(k, _)| k).collect();
        assert_eq!(
            labels,
            ["io.kubernetes.pod.name", "io.kubernetes.pod.namespace"]
        );
    }

    #[test]
    fn selectors_match_only_visible_labels_and_all_of_them() {
        let e = entry(KILLED_CONTAINER);
        let selector = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(e.matches_selector(&selector(&[])));
        assert!(e.matches_selector(&selector(&[("io.kubernetes.pod.name", "web")])));
        assert!(!e.matches_selector(&selector(&[
            ("io.kubernetes.pod.name", "web"),
            ("io.kubernetes.container.name", "other")
        ])));
        assert!(!e.matches_selector(&selector(&[("io.kubernetes.sandbox.id", "5d1b")])));
        assert!(!e.matches_selector(&selector(&[(
            "annotation.io.kubernetes.container.hash",
            "1a2b"
        )])));
    }

    #[test]
    fn cri_state_follows_docker_state_and_start_failures() {
        let mut e = entry(CREATED_SANDBOX);
        let cases = [
            (State::Running, 0, CriState::Running),
            (State::Paused, 0, CriState::Running),
            (State::Created, 0, CriState::Created),
            (State::Created, 127, CriState::Exited),
            (State::Exited, 0, CriState::Exited),
            (State::Dead, 0, CriState::Exited),
            (State::Restarting, 0, CriState::Unknown),
            (State::Removing, 0, CriState::Unknown),
            (State::Unknown, 0, CriState::Unknown),
        ];
        for (state, exit_code, expected) in cases {
            e.state = state;
            e.exit_code = exit_code;
            assert_eq!(e.cri_state(), expected, "{state:?} exit {exit_code}");
        }
    }

    #[test]
    fn unreadable_times_read_as_zero() {
        let mut inspect: ContainerInspect = crate::codec::json::decode(KILLED_CONTAINER).unwrap();
        inspect.state.started_at = "yesterday".to_owned();
        let e = Entry::from_inspect(&inspect).unwrap();
        assert_eq!(e.started_ns, 0);
        assert_eq!(e.finished_ns, 1_795_433_188_052_428_981);
    }
}
