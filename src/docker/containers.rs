//! The typed subsets of dockerd's container answers, `GET /containers/json`
//! and `GET /containers/{id}/json`, and the two calls that fetch them.
//!
//! Like `types` and `images`, every field has a default and unknown fields
//! are ignored; dockerd writes `null` for empty lists and maps here too, so
//! those fields read `null` as empty. This module only decodes: what a state
//! or a label means to the kubelet is decided in `index` and `cri`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::types::null_as_empty;

use super::request::{check_path_id, path_with_query};
use super::{DockerClient, DockerError};

/// One entry of `GET /containers/json`. The list lacks the timestamps,
/// exit code and host configuration that [`ContainerInspect`] has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    /// Names with their leading `/`; the first is the container's own.
    #[serde(rename = "Names", deserialize_with = "null_as_empty")]
    pub names: Vec<String>,
    /// The image as the container was created with it (a reference or ID).
    #[serde(rename = "Image")]
    pub image: String,
    /// `sha256:<hex>`.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// Unix seconds.
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "Labels", deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    #[serde(rename = "State")]
    pub state: String,
    /// Human-readable, e.g. `Up 5 minutes`, `Exited (137) 2 seconds ago`.
    #[serde(rename = "Status")]
    pub status: String,
    /// Bytes of the writable layer; only when the listing asked for sizes.
    #[serde(rename = "SizeRw")]
    pub size_rw: i64,
}

/// `GET /containers/{id}/json`, the fields dockshim reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContainerInspect {
    /// The full 64-hex ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// The name with its leading `/`.
    #[serde(rename = "Name")]
    pub name: String,
    /// RFC 3339 with nanoseconds, UTC.
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "State", deserialize_with = "null_as_empty")]
    pub state: ContainerState,
    #[serde(rename = "Config", deserialize_with = "null_as_empty")]
    pub config: ContainerConfig,
    /// The image ID, `sha256:<hex>`.
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "HostConfig", deserialize_with = "null_as_empty")]
    pub host_config: HostConfig,
    #[serde(rename = "Mounts", deserialize_with = "null_as_empty")]
    pub mounts: Vec<MountPoint>,
    /// Docker's own log file (json-file driver), empty for other drivers.
    #[serde(rename = "LogPath")]
    pub log_path: String,
    /// The resolv.conf dockerd bind-mounts into the container.
    #[serde(rename = "ResolvConfPath")]
    pub resolv_conf_path: String,
    #[serde(rename = "NetworkSettings", deserialize_with = "null_as_empty")]
    pub network_settings: NetworkSettings,
    #[serde(rename = "GraphDriver", deserialize_with = "null_as_empty")]
    pub graph_driver: GraphDriver,
    /// API 1.52+ with the containerd image store, in place of a
    /// `GraphDriver`.
    #[serde(rename = "Storage", deserialize_with = "null_as_empty")]
    pub storage: Storage,
}

/// `State` of an inspected container. The times are RFC 3339 with
/// nanoseconds; dockerd writes `0001-01-01T00:00:00Z` for "never".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    #[serde(rename = "Status")]
    pub status: String,
    /// True while the process lives, also when paused or restarting.
    #[serde(rename = "Running")]
    pub running: bool,
    #[serde(rename = "Paused")]
    pub paused: bool,
    #[serde(rename = "Restarting")]
    pub restarting: bool,
    /// Whether the last run ended because the kernel's OOM killer struck.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    #[serde(rename = "Dead")]
    pub dead: bool,
    /// The host PID of the container's first process; 0 when not running.
    #[serde(rename = "Pid")]
    pub pid: i64,
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
    /// Why the last start failed, e.g. runc's message.
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
}

/// `Config` of an inspected container: what it was created with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The image as given at creation (a reference or ID).
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Labels", deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    /// `KEY=value` strings.
    #[serde(rename = "Env", deserialize_with = "null_as_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Tty")]
    pub tty: bool,
    #[serde(rename = "OpenStdin")]
    pub open_stdin: bool,
    #[serde(rename = "StdinOnce")]
    pub stdin_once: bool,
    #[serde(rename = "Hostname")]
    pub hostname: String,
    #[serde(rename = "User")]
    pub user: String,
}

/// `HostConfig` of an inspected container: namespaces and resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    /// `default`, `bridge`, `host`, `none`, `container:<id>`, or a network.
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    /// `private`, `shareable`, `host`, `container:<id>`, ...
    #[serde(rename = "IpcMode")]
    pub ipc_mode: String,
    /// Empty (own namespace), `host` or `container:<id>`.
    #[serde(rename = "PidMode")]
    pub pid_mode: String,
    #[serde(rename = "CpuShares")]
    pub cpu_shares: i64,
    #[serde(rename = "CpuPeriod")]
    pub cpu_period: i64,
    #[serde(rename = "CpuQuota")]
    pub cpu_quota: i64,
    /// Bytes; 0 is unlimited.
    #[serde(rename = "Memory")]
    pub memory: i64,
    /// Memory plus swap, bytes; 0 is unset, -1 unlimited.
    #[serde(rename = "MemorySwap")]
    pub memory_swap: i64,
    #[serde(rename = "CpusetCpus")]
    pub cpuset_cpus: String,
    #[serde(rename = "CpusetMems")]
    pub cpuset_mems: String,
    #[serde(rename = "OomScoreAdj")]
    pub oom_score_adj: i64,
    /// The most processes the container may have; `null` (or 0, or -1)
    /// is unlimited.
    #[serde(rename = "PidsLimit")]
    pub pids_limit: Option<i64>,
    /// The cgroup the container's cgroup is made under; empty for
    /// dockerd's default. The kubelet sets a sandbox's to its pod cgroup.
    #[serde(rename = "CgroupParent")]
    pub cgroup_parent: String,
    /// The runtime dockerd runs the container with; dockerd records its
    /// default runtime's name when the create body named none.
    #[serde(rename = "Runtime")]
    pub runtime: String,
}

/// One entry of an inspected container's `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume name, for volumes.
    #[serde(rename = "Name")]
    pub name: String,
    /// The host path.
    #[serde(rename = "Source")]
    pub source: String,
    /// The path inside the container.
    #[serde(rename = "Destination")]
    pub destination: String,
    /// The mode string as given, e.g. `ro`, `z`, `rw,Z`.
    #[serde(rename = "Mode")]
    pub mode: String,
    /// False for read-only mounts.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// `rprivate`, `rslave`, `rshared`, ...; empty for volumes.
    #[serde(rename = "Propagation")]
    pub propagation: String,
}

/// `NetworkSettings` of an inspected container: its endpoint on each
/// Docker network it joined. The same addresses at the top level of
/// `NetworkSettings` (`IPAddress`, `GlobalIPv6Address`, ...) are not read:
/// Docker 29 no longer sends them at any API version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NetworkSettings {
    /// Network name → endpoint; `none` and `host` networking have an
    /// endpoint without addresses, `container:<id>` has none.
    #[serde(rename = "Networks", deserialize_with = "null_as_empty")]
    pub networks: BTreeMap<String, EndpointSettings>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EndpointSettings {
    /// Empty where the network gives no IPv4 address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
}

/// `GraphDriver` of an inspected container: the storage driver and its
/// directories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GraphDriver {
    /// `overlay2`, `btrfs`, `zfs`, ...
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Data", deserialize_with = "null_as_empty")]
    pub data: GraphDriverData,
}

/// `GraphDriver.Data`: driver-specific paths; overlay2 gives the four
/// below, other drivers other keys or none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GraphDriverData {
    /// The container's writable layer.
    #[serde(rename = "UpperDir")]
    pub upper_dir: String,
}

/// `Storage` of an inspected container (API 1.52+): what holds its root
/// filesystem under the containerd image store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Storage {
    #[serde(rename = "RootFS", deserialize_with = "null_as_empty")]
    pub root_fs: StorageRootFs,
}

/// `Storage.RootFS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StorageRootFs {
    #[serde(rename = "Snapshot", deserialize_with = "null_as_empty")]
    pub snapshot: StorageSnapshot,
}

/// `Storage.RootFS.Snapshot`: the container's snapshot, whose key is the
/// container's ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StorageSnapshot {
    /// The snapshotter, e.g. `overlayfs`.
    #[serde(rename = "Name")]
    pub name: String,
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
        let inspect: ContainerInspect = serde_json::from_str(KILLED)?;
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
        let inspect: ContainerInspect = serde_json::from_str(
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
        let inspect: ContainerInspect = serde_json::from_str(HOST_NETWORK_29)?;
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
        let settings: NetworkSettings = serde_json::from_str(
            r#"{"IPAddress":"172.17.0.9","Networks":{"bridge":{"IPAddress":"172.17.0.3",
                "GlobalIPv6Address":"fd00::3"}}}"#,
        )?;
        let endpoint = settings.endpoint("default").unwrap();
        assert_eq!(endpoint.ip_address, "172.17.0.3");
        assert_eq!(endpoint.global_ipv6_address, "fd00::3");
        assert_eq!(settings.endpoint("bridge"), Some(endpoint));
        assert_eq!(settings.endpoint("container:78bf"), None);
        let none: NetworkSettings = serde_json::from_str(r#"{"Networks":null}"#)?;
        assert_eq!(none.endpoint("none"), None);
        Ok(())
    }

    #[test]
    fn the_containerd_store_names_the_snapshotter_in_storage() -> Result<(), serde_json::Error> {
        let inspect: ContainerInspect = serde_json::from_str(
            r#"{"Id":"6608","GraphDriver":null,
                "Storage":{"RootFS":{"Snapshot":{"Name":"overlayfs"}}}}"#,
        )?;
        assert_eq!(inspect.storage.root_fs.snapshot.name, "overlayfs");
        assert_eq!(inspect.graph_driver, GraphDriver::default());
        let older: ContainerInspect = serde_json::from_str(
            r#"{"Id":"6608","GraphDriver":{"Name":"overlayfs","Data":null}}"#,
        )?;
        assert_eq!(older.storage, Storage::default());
        assert_eq!(older.graph_driver.name, "overlayfs");
        Ok(())
    }

    #[test]
    fn summary_decodes_from_the_list() -> Result<(), serde_json::Error> {
        let list: Vec<ContainerSummary> = serde_json::from_str(
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
