//! The typed subsets of dockerd's container answers, `GET /containers/json`
//! and `GET /containers/{id}/json`, and the two calls that fetch them.
//!
//! Like `types` and `images`, a field that is missing or `null` reads as
//! empty (dockerd writes `null` for empty lists and maps here too) and
//! unknown fields are ignored. This module only decodes: what a state
//! or a label means to the kubelet is decided in `index` and `cri`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::codec::json::{Fields, FromJson};

use super::request::{check_path_id, path_with_query};
use super::{DockerClient, DockerError};

/// One entry of `GET /containers/json`. The list lacks the timestamps,
/// exit code and host configuration that [`ContainerInspect`] has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Names with their leading `/`; the first is the container's own.
    pub names: Vec<String>,
    /// The image as the container was created with it (a reference or ID).
    pub image: String,
    /// `sha256:<hex>`.
    pub image_id: String,
    /// Unix seconds.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    pub state: String,
    /// Human-readable, e.g. `Up 5 minutes`, `Exited (137) 2 seconds ago`.
    pub status: String,
    /// Bytes of the writable layer; only when the listing asked for sizes.
    pub size_rw: i64,
}

impl FromJson for ContainerSummary {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ContainerSummary {
            id: fields.field("Id"),
            names: fields.field("Names"),
            image: fields.field("Image"),
            image_id: fields.field("ImageID"),
            created: fields.field("Created"),
            labels: fields.field("Labels"),
            state: fields.field("State"),
            status: fields.field("Status"),
            size_rw: fields.field("SizeRw"),
        })
    }
}

/// `GET /containers/{id}/json`, the fields dockshim reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInspect {
    /// The full 64-hex ID.
    pub id: String,
    /// The name with its leading `/`.
    pub name: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub state: ContainerState,
    pub config: ContainerConfig,
    /// The image ID, `sha256:<hex>`.
    pub image: String,
    pub host_config: HostConfig,
    pub mounts: Vec<MountPoint>,
    /// Docker's own log file (json-file driver), empty for other drivers.
    pub log_path: String,
    /// The resolv.conf dockerd bind-mounts into the container.
    pub resolv_conf_path: String,
    pub network_settings: NetworkSettings,
    pub graph_driver: GraphDriver,
    /// API 1.52+ with the containerd image store, in place of a
    /// `GraphDriver`.
    pub storage: Storage,
}

impl FromJson for ContainerInspect {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ContainerInspect {
            id: fields.field("Id"),
            name: fields.field("Name"),
            created: fields.field("Created"),
            state: fields.field("State"),
            config: fields.field("Config"),
            image: fields.field("Image"),
            host_config: fields.field("HostConfig"),
            mounts: fields.field("Mounts"),
            log_path: fields.field("LogPath"),
            resolv_conf_path: fields.field("ResolvConfPath"),
            network_settings: fields.field("NetworkSettings"),
            graph_driver: fields.field("GraphDriver"),
            storage: fields.field("Storage"),
        })
    }
}

/// `State` of an inspected container. The times are RFC 3339 with
/// nanoseconds; dockerd writes `0001-01-01T00:00:00Z` for "never".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    pub status: String,
    /// True while the process lives, also when paused or restarting.
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    /// Whether the last run ended because the kernel's OOM killer struck.
    pub oom_killed: bool,
    pub dead: bool,
    /// The host PID of the container's first process; 0 when not running.
    pub pid: i64,
    pub exit_code: i64,
    /// Why the last start failed, e.g. runc's message.
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

impl FromJson for ContainerState {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ContainerState {
            status: fields.field("Status"),
            running: fields.field("Running"),
            paused: fields.field("Paused"),
            restarting: fields.field("Restarting"),
            oom_killed: fields.field("OOMKilled"),
            dead: fields.field("Dead"),
            pid: fields.field("Pid"),
            exit_code: fields.field("ExitCode"),
            error: fields.field("Error"),
            started_at: fields.field("StartedAt"),
            finished_at: fields.field("FinishedAt"),
        })
    }
}

/// `Config` of an inspected container: what it was created with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The image as given at creation (a reference or ID).
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub hostname: String,
    pub user: String,
}

impl FromJson for ContainerConfig {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ContainerConfig {
            image: fields.field("Image"),
            labels: fields.field("Labels"),
            env: fields.field("Env"),
            tty: fields.field("Tty"),
            open_stdin: fields.field("OpenStdin"),
            stdin_once: fields.field("StdinOnce"),
            hostname: fields.field("Hostname"),
            user: fields.field("User"),
        })
    }
}

/// `HostConfig` of an inspected container: namespaces and resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `default`, `bridge`, `host`, `none`, `container:<id>`, or a network.
    pub network_mode: String,
    /// `private`, `shareable`, `host`, `container:<id>`, ...
    pub ipc_mode: String,
    /// Empty (own namespace), `host` or `container:<id>`.
    pub pid_mode: String,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    /// Bytes; 0 is unlimited.
    pub memory: i64,
    /// Memory plus swap, bytes; 0 is unset, -1 unlimited.
    pub memory_swap: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub oom_score_adj: i64,
    /// The most processes the container may have; `null` (or 0, or -1)
    /// is unlimited.
    pub pids_limit: Option<i64>,
    /// The cgroup the container's cgroup is made under; empty for
    /// dockerd's default. The kubelet sets a sandbox's to its pod cgroup.
    pub cgroup_parent: String,
    /// The runtime dockerd runs the container with; dockerd records its
    /// default runtime's name when the create body named none.
    pub runtime: String,
}

impl FromJson for HostConfig {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(HostConfig {
            network_mode: fields.field("NetworkMode"),
            ipc_mode: fields.field("IpcMode"),
            pid_mode: fields.field("PidMode"),
            cpu_shares: fields.field("CpuShares"),
            cpu_period: fields.field("CpuPeriod"),
            cpu_quota: fields.field("CpuQuota"),
            memory: fields.field("Memory"),
            memory_swap: fields.field("MemorySwap"),
            cpuset_cpus: fields.field("CpusetCpus"),
            cpuset_mems: fields.field("CpusetMems"),
            oom_score_adj: fields.field("OomScoreAdj"),
            pids_limit: fields.opt("PidsLimit"),
            cgroup_parent: fields.field("CgroupParent"),
            runtime: fields.field("Runtime"),
        })
    }
}

/// One entry of an inspected container's `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`, ...
    pub kind: String,
    /// The volume name, for volumes.
    pub name: String,
    /// The host path.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    /// The mode string as given, e.g. `ro`, `z`, `rw,Z`.
    pub mode: String,
    /// False for read-only mounts.
    pub rw: bool,
    /// `rprivate`, `rslave`, `rshared`, ...; empty for volumes.
    pub propagation: String,
}

impl FromJson for MountPoint {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(MountPoint {
            kind: fields.field("Type"),
            name: fields.field("Name"),
            source: fields.field("Source"),
            destination: fields.field("Destination"),
            mode: fields.field("Mode"),
            rw: fields.field("RW"),
            propagation: fields.field("Propagation"),
        })
    }
}

/// `NetworkSettings` of an inspected container: its endpoint on each
/// Docker network it joined. The same addresses at the top level of
/// `NetworkSettings` (`IPAddress`, `GlobalIPv6Address`, ...) are not read:
/// Docker 29 no longer sends them at any API version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Network name → endpoint; `none` and `host` networking have an
    /// endpoint without addresses, `container:<id>` has none.
    pub networks: BTreeMap<String, EndpointSettings>,
}

impl FromJson for NetworkSettings {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(NetworkSettings {
            networks: fields.field("Networks"),
        })
    }
}

/// The network `HostConfig.NetworkMode` `default` stands for on Linux.
const DEFAULT_NETWORK: &str = "bridge";

impl NetworkSettings {
    /// The endpoint on the network `network_mode` (`HostConfig.NetworkMode`)
    /// names, `default` being the `bridge` network; `None` when the
    /// container has no such endpoint.
    pub fn endpoint(&self, network_mode: &str) -> Option<&EndpointSettings> {
        let network = match network_mode {
            "default" => DEFAULT_NETWORK,
            name => name,
        };
        self.networks.get(network)
    }
}

/// One entry of `NetworkSettings.Networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Empty where the network gives no IPv4 address.
    pub ip_address: String,
    pub global_ipv6_address: String,
}

impl FromJson for EndpointSettings {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(EndpointSettings {
            ip_address: fields.field("IPAddress"),
            global_ipv6_address: fields.field("GlobalIPv6Address"),
        })
    }
}

/// `GraphDriver` of an inspected container: the storage driver and its
/// directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphDriver {
    /// `overlay2`, `btrfs`, `zfs`, ...
    pub name: String,
    pub data: GraphDriverData,
}

impl FromJson for GraphDriver {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(GraphDriver {
            name: fields.field("Name"),
            data: fields.field("Data"),
        })
    }
}

/// `GraphDriver.Data`: driver-specific paths; overlay2 gives the four
/// below, other drivers other keys or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphDriverData {
    /// The container's writable layer.
    pub upper_dir: String,
}

impl FromJson for GraphDriverData {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(GraphDriverData {
            upper_dir: fields.field("UpperDir"),
        })
    }
}

/// `Storage` of an inspected container (API 1.52+): what holds its root
/// filesystem under the containerd image store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storage {
    pub root_fs: StorageRootFs,
}

impl FromJson for Storage {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Storage {
            root_fs: fields.field("RootFS"),
        })
    }
}

/// `Storage.RootFS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageRootFs {
    pub snapshot: StorageSnapshot,
}

impl FromJson for StorageRootFs {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(StorageRootFs {
            snapshot: fields.field("Snapshot"),
        })
    }
}

/// `Storage.RootFS.Snapshot`: the container's snapshot, whose key is the
/// container's ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageSnapshot {
    /// The snapshotter, e.g. `overlayfs`.
    pub name: String,
}

impl FromJson for StorageSnapshot {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(StorageSnapshot {
            name: fields.field("Name"),
        })
    }
}

impl DockerClient {
    /// `GET /containers/json`: running containers, or every container with
    /// `all`. `filters` is the JSON filter map, e.g.
    /// `{"label":["io.kubernetes.docker.type"]}`.
    pub fn list_containers(
        &self,
        all: bool,
        filters: Option<&str>,
    ) -> Result<Vec<ContainerSummary>, DockerError> {
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(2);
        if all {
            params.push(("all", "1"));
        }
        if let Some(filters) = filters {
            params.push(("filters", filters));
        }
        self.get_json(&path_with_query("/containers/json", &params))
    }

    /// `GET /containers/{id}/json`. `id` is an ID, a unique ID prefix or a
    /// name; a missing container is [`DockerError::Api`] with status 404.
    pub fn inspect_container(&self, id: &str) -> Result<ContainerInspect, DockerError> {
        check_path_id(id, "container ID or name")?;
        self.get_json(&format!("/containers/{id}/json"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::json;

    /// `docker kill` of a container started from the test image, as dockerd
    /// 20.10 answers on API 1.41 (trimmed).
    const KILLED: &str = r#"{
        "Id": "78bff5f340a10b19e50dbd85fba6aec984265b7745a57b703e21b79e533002a4",
        "Created": "2026-11-23T11:26:27.658122116Z",
        "Path": "sleep", "Args": ["300"],
        "State": {"Status": "exited", "Running": false, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 0, "ExitCode": 137, "Error": "",
            "StartedAt": "2026-11-23T11:26:27.998006662Z",
            "FinishedAt": "2026-11-23T11:26:28.052428981Z"},
        "Image": "sha256:f6a1e70bd9c172fa1d2bb569f98fc9e8f7bfe699d992fad5ed95eefcc2f996f5",
        "ResolvConfPath": "/var/lib/docker/containers/78bf/resolv.conf",
        "LogPath": "/var/lib/docker/containers/78bf/78bf-json.log",
        "Name": "/k8s_fx_pod_ns_uid_0",
        "ExecIDs": null,
        "HostConfig": {"Binds": null, "NetworkMode": "default", "IpcMode": "private",
            "PidMode": "", "CpuShares": 0, "Memory": 0, "MemorySwap": 0, "CpusetCpus": "",
            "OomScoreAdj": 0, "PidsLimit": null, "CapAdd": null,
            "CgroupParent": "/kubepods/besteffort/pod7e5a"},
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": "/var/lib/docker/overlay2/1f2e-init/diff:/var/lib/docker/overlay2/0a9b/diff",
            "MergedDir": "/var/lib/docker/overlay2/1f2e/merged",
            "UpperDir": "/var/lib/docker/overlay2/1f2e/diff",
            "WorkDir": "/var/lib/docker/overlay2/1f2e/work"}},
        "Mounts": [{"Type": "bind", "Source": "/tmp", "Destination": "/host", "Mode": "ro",
            "RW": false, "Propagation": "rprivate"}],
        "Config": {"Hostname": "78bff5f340a1", "Tty": false, "OpenStdin": false, "Env": null,
            "Cmd": ["sleep", "300"], "Image": "127.0.0.1:5000/dockshim-test/busybox:latest",
            "Labels": {"io.kubernetes.docker.type": "container",
                "io.kubernetes.sandbox.id": "abc"}},
        "NetworkSettings": {"IPAddress": "", "GlobalIPv6Address": "", "Networks": {}}
    }"#;

    #[test]
    fn inspect_of_a_killed_container_decodes() -> Result<(), serde_json::Error> {
        let inspect: ContainerInspect = json::decode(KILLED)?;
        assert_eq!(inspect.name, "/k8s_fx_pod_ns_uid_0");
        assert_eq!(inspect.state.status, "exited");
        assert_eq!(inspect.state.exit_code, 137);
        assert_eq!(inspect.state.finished_at, "2026-11-23T11:26:28.052428981Z");
        assert_eq!(
            inspect.config.image,
            "127.0.0.1:5000/dockshim-test/busybox:latest"
        );
        assert!(inspect.config.env.is_empty());
        assert_eq!(
            inspect.config.labels.get("io.kubernetes.sandbox.id"),
            Some(&"abc".to_owned())
        );
        assert_eq!(inspect.host_config.ipc_mode, "private");
        assert_eq!(inspect.host_config.pids_limit, None);
        assert_eq!(inspect.mounts.len(), 1);
        assert!(!inspect.mounts[0].rw);
        assert_eq!(
            inspect.host_config.cgroup_parent,
            "/kubepods/besteffort/pod7e5a"
        );
        assert_eq!(inspect.graph_driver.name, "overlay2");
        assert_eq!(
            inspect.graph_driver.data.upper_dir,
            "/var/lib/docker/overlay2/1f2e/diff"
        );
        Ok(())
    }

    #[test]
    fn inspect_reads_null_sections_as_empty() -> Result<(), serde_json::Error> {
        let inspect: ContainerInspect = json::decode(
            r#"{"Id":"a1","State":null,"Config":{"Labels":null,"Env":null},"HostConfig":null,
                "Mounts":null,"NetworkSettings":null,"GraphDriver":{"Name":"vfs","Data":null}}"#,
        )?;
        assert_eq!(inspect.id, "a1");
        assert!(inspect.config.labels.is_empty());
        assert!(inspect.mounts.is_empty());
        assert_eq!(inspect.state, ContainerState::default());
        assert_eq!(inspect.graph_driver.name, "vfs");
        assert_eq!(inspect.graph_driver.data, GraphDriverData::default());
        Ok(())
    }

    /// `docker create --network host` on Docker 29.7.2 (API 1.55,
    /// containerd image store), trimmed: no top-level addresses, no
    /// `GraphDriver`, the image as a manifest digest.
    const HOST_NETWORK_29: &str = r#"{
        "Id": "b6daefb99ad1a6802019c473f6279cfbe474e1ec4ef0f3e64fbd1301e4e1fb56",
        "Image": "sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b",
        "HostConfig": {"NetworkMode": "host"},
        "Storage": {"RootFS": {"Snapshot": {"Name": "overlayfs"}}},
        "ImageManifestDescriptor": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": "sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b",
            "size": 527, "platform": {"architecture": "amd64", "os": "linux"}},
        "Config": {"Image": "127.0.0.1:5000/dockshim-test/busybox:latest"},
        "NetworkSettings": {"SandboxID": "", "SandboxKey": "", "Ports": {},
            "Networks": {"host": {"IPAMConfig": null, "Links": null, "Aliases": null,
                "DriverOpts": null, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
                "Gateway": "", "IPAddress": "", "MacAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": null}}}
    }"#;

    #[test]
    fn inspect_from_docker_29_decodes_without_the_removed_fields() -> Result<(), serde_json::Error>
    {
        let inspect: ContainerInspect = json::decode(HOST_NETWORK_29)?;
        assert_eq!(
            inspect.image,
            "sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b"
        );
        assert_eq!(inspect.graph_driver, GraphDriver::default());
        let endpoint = inspect.network_settings.endpoint("host").unwrap();
        assert!(endpoint.ip_address.is_empty());
        Ok(())
    }

    #[test]
    fn the_default_network_mode_is_the_bridge_network() -> Result<(), serde_json::Error> {
        let settings: NetworkSettings = json::decode(
            r#"{"IPAddress":"172.17.0.9","Networks":{"bridge":{"IPAddress":"172.17.0.3",
                "GlobalIPv6Address":"fd00::3"}}}"#,
        )?;
        let endpoint = settings.endpoint("default").unwrap();
        assert_eq!(endpoint.ip_address, "172.17.0.3");
        assert_eq!(endpoint.global_ipv6_address, "fd00::3");
        assert_eq!(settings.endpoint("bridge"), Some(endpoint));
        assert_eq!(settings.endpoint("container:78bf"), None);
        let none: NetworkSettings = json::decode(r#"{"Networks":null}"#)?;
        assert_eq!(none.endpoint("none"), None);
        Ok(())
    }

    #[test]
    fn the_containerd_store_names_the_snapshotter_in_storage() -> Result<(), serde_json::Error> {
        let inspect: ContainerInspect = json::decode(
            r#"{"Id":"6608","GraphDriver":null,
                "Storage":{"RootFS":{"Snapshot":{"Name":"overlayfs"}}}}"#,
        )?;
        assert_eq!(inspect.storage.root_fs.snapshot.name, "overlayfs");
        assert_eq!(inspect.graph_driver, GraphDriver::default());
        let older: ContainerInspect =
            json::decode(r#"{"Id":"6608","GraphDriver":{"Name":"overlayfs","Data":null}}"#)?;
        assert_eq!(older.storage, Storage::default());
        assert_eq!(older.graph_driver.name, "overlayfs");
        Ok(())
    }

    #[test]
    fn summary_decodes_from_the_list() -> Result<(), serde_json::Error> {
        let list: Vec<ContainerSummary> = json::decode(
            r#"[{"Id":"78bf","Names":["/k8s_fx_pod_ns_uid_0"],"Image":"busybox",
                "ImageID":"sha256:f6a1","Command":"sleep 300","Created":1795433187,"Ports":[],
                "Labels":{"io.kubernetes.docker.type":"container"},"State":"running",
                "Status":"Up Less than a second","HostConfig":{"NetworkMode":"default"},
                "Mounts":[]},
               {"Id":"9c0d","Names":null,"Labels":null,"State":"created"}]"#,
        )?;
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].names, ["/k8s_fx_pod_ns_uid_0"]);
        assert_eq!(list[0].created, 1_795_433_187);
        assert_eq!(list[0].state, "running");
        assert!(list[1].labels.is_empty() && list[1].names.is_empty());
        Ok(())
    }

    #[test]
    fn container_references_that_could_change_the_path_are_refused() {
        for good in ["78bf", "k8s_POD_web_default_uid_0", "a.b-c"] {
            assert!(
                check_path_id(good, "container ID or name").is_ok(),
                "{good}"
            );
        }
        for bad in ["", "../images/x", "a/b", "a?b", "-x", "a b", "a%2e"] {
            let err = check_path_id(bad, "container ID or name").unwrap_err();
            assert!(matches!(err, DockerError::InvalidRequest(_)), "{bad}");
        }
    }
}
