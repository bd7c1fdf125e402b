//! The body of `POST /containers/create`: the container configuration plus
//! its `HostConfig`, in the Engine API's field names (API 1.41; the
//! `Mounts` options note the version that brought them); the resource
//! fields it shares with `POST /containers/{id}/update`; both answers.
//!
//! Only the fields dockshim sets exist here, and every empty field is left
//! out of the JSON, so a body says exactly what dockshim asked for and the
//! engine's defaults apply to the rest. These types only carry JSON: what
//! goes into them is decided by the CRI translation code in `cri`.
//! `vendor-docs/docker-engine-api.md` ("Container create") lists each field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::null_as_empty;

/// `Healthcheck.Test` that turns off any health check the image declares.
pub const HEALTHCHECK_NONE: &str = "NONE";
/// `RestartPolicy.Name` that never restarts: restarting is the kubelet's job.
pub const RESTART_POLICY_NO: &str = "no";

/// The JSON body of `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerCreate {
    /// Empty lets dockerd use the container ID (or the host's name with
    /// host networking).
    #[serde(rename = "Hostname", skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// `uid`, `uid:gid`, `name` or `name:gid`; empty keeps the image's user.
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `KEY=value` strings.
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Empty keeps the image's command.
    #[serde(rename = "Cmd", skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Empty keeps the image's entrypoint.
    #[serde(rename = "Entrypoint", skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// A reference or an image ID.
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Empty keeps the image's working directory.
    #[serde(rename = "WorkingDir", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(rename = "OpenStdin", skip_serializing_if = "is_false")]
    pub open_stdin: bool,
    #[serde(rename = "StdinOnce", skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    #[serde(rename = "Tty", skip_serializing_if = "is_false")]
    pub tty: bool,
    /// A signal name such as `SIGTERM`; empty keeps the image's.
    #[serde(rename = "StopSignal", skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "Healthcheck", skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(rename = "HostConfig")]
    pub host_config: CreateHostConfig,
}

/// `HostConfig` of a create request: namespaces, security and resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateHostConfig {
    /// `host-path:container-path[:options]` bind mounts.
    #[serde(rename = "Binds", skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// `none`, `host` or `container:<id>` as dockshim uses it.
    #[serde(rename = "NetworkMode", skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    /// `shareable`, `host` or `container:<id>` as dockshim uses it.
    #[serde(rename = "IpcMode", skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    /// Empty (own namespace), `host` or `container:<id>`.
    #[serde(rename = "PidMode", skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    /// Empty (own namespace) or `host`.
    #[serde(rename = "UTSMode", skip_serializing_if = "String::is_empty")]
    pub uts_mode: String,
    #[serde(rename = "Privileged", skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(rename = "ReadonlyRootfs", skip_serializing_if = "is_false")]
    pub readonly_rootfs: bool,
    /// Capability names such as `NET_ADMIN`, or `ALL`.
    #[serde(rename = "CapAdd", skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(rename = "CapDrop", skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `key=value` options: `label=...`, `seccomp=...`, `apparmor=...`,
    /// `no-new-privileges`.
    #[serde(rename = "SecurityOpt", skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Numeric group IDs or group names, as strings.
    #[serde(rename = "GroupAdd", skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(rename = "Sysctls", skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(rename = "OomScoreAdj", skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(rename = "CgroupParent", skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
    /// Bytes of `/dev/shm`.
    #[serde(rename = "ShmSize", skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    #[serde(rename = "RestartPolicy", skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(rename = "Devices", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// `None` keeps dockerd's default list; `Some(vec![])` masks nothing.
    #[serde(rename = "MaskedPaths", skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// `None` keeps dockerd's default list; `Some(vec![])` protects nothing.
    #[serde(rename = "ReadonlyPaths", skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,

    /// Mounts `Binds` cannot express (API 1.44 and later): read-only
    /// binds that say how far down they are read-only, and images.
    #[serde(rename = "Mounts", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,

    /// One of `/info`'s `Runtimes`; empty is dockerd's `DefaultRuntime`.
    #[serde(rename = "Runtime", skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    /// Devices a driver injects at start; dockshim asks only the `cdi`
    /// driver (API 1.44+ with CDI on in dockerd).
    #[serde(rename = "DeviceRequests", skip_serializing_if = "Vec::is_empty")]
    pub device_requests: Vec<DeviceRequest>,
}

/// The resource fields of a create's `HostConfig`, and the whole body of
/// `POST /containers/{id}/update`; each is left out when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Bytes; absent is unlimited.
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Memory plus swap, bytes; -1 is unlimited swap.
    #[serde(rename = "MemorySwap", skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (cgroup v1 `cpu.shares` scale).
    #[serde(rename = "CpuShares", skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Microseconds per `CpuPeriod`.
    #[serde(rename = "CpuQuota", skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    #[serde(rename = "CpuPeriod", skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// e.g. `0-3` or `0,1`.
    #[serde(rename = "CpusetCpus", skip_serializing_if = "String::is_empty")]
    pub cpuset_cpus: String,
    #[serde(rename = "CpusetMems", skip_serializing_if = "String::is_empty")]
    pub cpuset_mems: String,
    /// The most processes the container may have; -1 is unlimited. Left
    /// out of an update, it keeps the current limit.
    #[serde(rename = "PidsLimit", skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

/// `POST /containers/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Created {
    #[serde(rename = "Id")]
    pub id: String,
    /// Settings dockerd changed or dropped, in its words.
    #[serde(rename = "Warnings", deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

/// `POST /containers/{id}/update`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Updated {
    #[serde(rename = "Warnings", deserialize_with = "null_as_empty")]
    pub warnings: Vec<String>,
}

/// `Healthcheck`: dockshim only ever sends `{"Test": ["NONE"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthConfig {
    #[serde(rename = "Test")]
    pub test: Vec<String>,
}

impl HealthConfig {
    /// No health check, whatever the image says.
    pub fn none() -> HealthConfig {
        HealthConfig {
            test: vec![HEALTHCHECK_NONE.to_owned()],
        }
    }
}

/// `RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    #[serde(rename = "Name")]
    pub name: String,
}

impl RestartPolicy {
    /// Never restart.
    pub fn no() -> RestartPolicy {
        RestartPolicy {
            name: RESTART_POLICY_NO.to_owned(),
        }
    }
}

/// One entry of `Devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceMapping {
    #[serde(rename = "PathOnHost")]
    pub path_on_host: String,
    #[serde(rename = "PathInContainer")]
    pub path_in_container: String,
    /// Any of `r`, `w`, `m`.
    #[serde(rename = "CgroupPermissions")]
    pub cgroup_permissions: String,
}

/// One entry of `HostConfig.Mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: MountType,
    /// The host path of a bind; the reference or ID of an image.
    #[serde(rename = "Source")]
    pub source: String,
    /// The path inside the container.
    #[serde(rename = "Target")]
    pub target: String,
    #[serde(rename = "ReadOnly", skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(rename = "BindOptions", skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(rename = "ImageOptions", skip_serializing_if = "Option::is_none")]
    pub image_options: Option<ImageOptions>,
}

/// `Mount.Type`, of the kinds dockshim asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MountType {
    #[serde(rename = "bind")]
    Bind,
    /// An image's filesystem, read-only (API 1.48).
    #[serde(rename = "image")]
    Image,
}

/// `Mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BindOptions {
    /// `rprivate`, `rslave` or `rshared` as dockshim uses it.
    #[serde(rename = "Propagation", skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// Create a missing host path, as `Binds` always do (API 1.42).
    #[serde(rename = "CreateMountpoint", skip_serializing_if = "is_false")]
    pub create_mountpoint: bool,
    /// Read-only at the top only; submounts keep their own flags (API
    /// 1.44).
    #[serde(rename = "ReadOnlyNonRecursive", skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    /// Read-only all the way down, or fail the start (API 1.44).
    #[serde(rename = "ReadOnlyForceRecursive", skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
}

/// `Mount.ImageOptions` (API 1.48).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageOptions {
    /// A relative path inside the image to mount instead of its root.
    #[serde(rename = "Subpath", skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// The driver of a `DeviceRequests` entry that names CDI devices.
pub const DEVICE_DRIVER_CDI: &str = "cdi";

/// One entry of `DeviceRequests`. Of Docker's fields only those a CDI
/// request uses exist: `Count`, `Capabilities` and `Options` stay unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceRequest {
    #[serde(rename = "Driver")]
    pub driver: String,
    /// Fully qualified CDI names, `vendor/class=name`.
    #[serde(rename = "DeviceIDs")]
    pub device_ids: Vec<String>,
}

impl DeviceRequest {
    /// A request for the CDI devices `names`.
    pub fn cdi(names: Vec<String>) -> DeviceRequest {
        DeviceRequest {
            driver: DEVICE_DRIVER_CDI.to_owned(),
            device_ids: names,
        }
    }
}

// serde's skip_serializing_if hands the field over by reference.
fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_empty_body_names_only_the_image_and_an_empty_host_config() {
        let body = ContainerCreate {
            image: "busybox".to_owned(),
            ..ContainerCreate::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"Image": "busybox", "HostConfig": {}})
        );
    }

    #[test]
    fn every_field_uses_the_engine_api_name() {
        let body = ContainerCreate {
            hostname: "h".to_owned(),
            user: "1:2".to_owned(),
            env: vec!["A=1".to_owned()],
            cmd: vec!["c".to_owned()],
            entrypoint: vec!["e".to_owned()],
            image: "i".to_owned(),
            labels: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            working_dir: "/w".to_owned(),
            open_stdin: true,
            stdin_once: true,
            tty: true,
            stop_signal: "SIGINT".to_owned(),
            healthcheck: Some(HealthConfig::none()),
            host_config: CreateHostConfig {
                binds: vec!["/a:/b:ro".to_owned()],
                network_mode: "none".to_owned(),
                ipc_mode: "shareable".to_owned(),
                pid_mode: "host".to_owned(),
                uts_mode: "host".to_owned(),
                privileged: true,
                readonly_rootfs: true,
                cap_add: vec!["NET_ADMIN".to_owned()],
                cap_drop: vec!["ALL".to_owned()],
                security_opt: vec!["no-new-privileges".to_owned()],
                group_add: vec!["5".to_owned()],
                sysctls: BTreeMap::from([("net.ipv4.ip_forward".to_owned(), "1".to_owned())]),
                oom_score_adj: Some(-998),
                cgroup_parent: "/kubepods".to_owned(),
                shm_size: Some(64),
                restart_policy: Some(RestartPolicy::no()),
                resources: Resources {
                    memory: Some(1),
                    memory_swap: Some(2),
                    cpu_shares: Some(3),
                    cpu_quota: Some(4),
                    cpu_period: Some(5),
                    cpuset_cpus: "0-1".to_owned(),
                    cpuset_mems: "0".to_owned(),
                    pids_limit: Some(6),
                },
                devices: vec![DeviceMapping {
                    path_on_host: "/dev/a".to_owned(),
                    path_in_container: "/dev/b".to_owned(),
                    cgroup_permissions: "rwm".to_owned(),
                }],
                masked_paths: Some(vec!["/proc/kcore".to_owned()]),
                readonly_paths: Some(vec!["/proc/sys".to_owned()]),
                mounts: vec![
                    Mount {
                        kind: MountType::Bind,
                        source: "/c".to_owned(),
                        target: "/d".to_owned(),
                        read_only: true,
                        bind_options: Some(BindOptions {
                            propagation: "rprivate".to_owned(),
                            create_mountpoint: true,
                            read_only_non_recursive: true,
                            read_only_force_recursive: true,
                        }),
                        image_options: None,
                    },
                    Mount {
                        kind: MountType::Image,
                        source: "busybox".to_owned(),
                        target: "/img".to_owned(),
                        read_only: true,
                        bind_options: None,
                        image_options: Some(ImageOptions {
                            subpath: "etc".to_owned(),
                        }),
                    },
                ],

                runtime: "runsc".to_owned(),
                device_requests: vec![DeviceRequest::cdi(vec!["vendor.com/gpu=0".to_owned()])],
            },
        };
        let host_config = json!({
            "Binds": ["/a:/b:ro"],
            "NetworkMode": "none",
            "IpcMode": "shareable",
            "PidMode": "host",
            "UTSMode": "host",
            "Privileged": true,
            "ReadonlyRootfs": true,
            "CapAdd": ["NET_ADMIN"],
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "GroupAdd": ["5"],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "OomScoreAdj": -998,
            "CgroupParent": "/kubepods",
            "ShmSize": 64,
            "RestartPolicy": {"Name": "no"},
            "Memory": 1,
            "MemorySwap": 2,
            "CpuShares": 3,
            "CpuQuota": 4,
            "CpuPeriod": 5,
            "CpusetCpus": "0-1",
            "CpusetMems": "0",
            "PidsLimit": 6,
            "Devices": [{
                "PathOnHost": "/dev/a",
                "PathInContainer": "/dev/b",
                "CgroupPermissions": "rwm"
            }],
            "MaskedPaths": ["/proc/kcore"],
            "ReadonlyPaths": ["/proc/sys"],
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": "/c",
                    "Target": "/d",
                    "ReadOnly": true,
                    "BindOptions": {
                        "Propagation": "rprivate",
                        "CreateMountpoint": true,
                        "ReadOnlyNonRecursive": true,
                        "ReadOnlyForceRecursive": true
                    }
                },
                {
                    "Type": "image",
                    "Source": "busybox",
                    "Target": "/img",
                    "ReadOnly": true,
                    "ImageOptions": {"Subpath": "etc"}
                }
            ],
            "Runtime": "runsc",
            "DeviceRequests": [{"Driver": "cdi", "DeviceIDs": ["vendor.com/gpu=0"]}]
        });
        let expected = json!({
            "Hostname": "h",
            "User": "1:2",
            "Env": ["A=1"],
            "Cmd": ["c"],
            "Entrypoint": ["e"],
            "Image": "i",
            "Labels": {"k": "v"},
            "WorkingDir": "/w",
            "OpenStdin": true,
            "StdinOnce": true,
            "Tty": true,
            "StopSignal": "SIGINT",
            "Healthcheck": {"Test": ["NONE"]},
            "HostConfig": host_config
        });
        assert_eq!(serde_json::to_value(&body).unwrap(), expected);
    }

    #[test]
    fn explicit_zeroes_and_empty_path_lists_are_sent() {
        let body = ContainerCreate {
            image: "i".to_owned(),
            host_config: CreateHostConfig {
                oom_score_adj: Some(0),
                masked_paths: Some(Vec::new()),
                readonly_paths: Some(Vec::new()),
                ..CreateHostConfig::default()
            },
            ..ContainerCreate::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap()["HostConfig"],
            json!({"OomScoreAdj": 0, "MaskedPaths": [], "ReadonlyPaths": []})
        );
    }
}
