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

use serde_json::{Map, Value};

use crate::codec::json::{object_of, unless_empty, Fields, FromJson};

/// `Healthcheck.Test` that turns off any health check the image declares.
pub const HEALTHCHECK_NONE: &str = "NONE";
/// `RestartPolicy.Name` that never restarts: restarting is the kubelet's job.
pub const RESTART_POLICY_NO: &str = "no";

/// The JSON body of `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerCreate {
    /// Empty lets dockerd use the container ID (or the host's name with
    /// host networking).
    pub hostname: String,
    /// `uid`, `uid:gid`, `name` or `name:gid`; empty keeps the image's user.
    pub user: String,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// Empty keeps the image's command.
    pub cmd: Vec<String>,
    /// Empty keeps the image's entrypoint.
    pub entrypoint: Vec<String>,
    /// A reference or an image ID.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Empty keeps the image's working directory.
    pub working_dir: String,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// A signal name such as `SIGTERM`; empty keeps the image's.
    pub stop_signal: String,
    pub healthcheck: Option<HealthConfig>,
    pub host_config: CreateHostConfig,
}

impl ContainerCreate {
    /// The request body, empty fields left out.
    pub fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("Hostname", unless_empty(self.hostname.as_str())),
            ("User", unless_empty(self.user.as_str())),
            ("Env", unless_empty(self.env.as_slice())),
            ("Cmd", unless_empty(self.cmd.as_slice())),
            ("Entrypoint", unless_empty(self.entrypoint.as_slice())),
            ("Image", Some(self.image.as_str().into())),
            ("Labels", unless_empty(string_map(&self.labels))),
            ("WorkingDir", unless_empty(self.working_dir.as_str())),
            ("OpenStdin", unless_empty(self.open_stdin)),
            ("StdinOnce", unless_empty(self.stdin_once)),
            ("Tty", unless_empty(self.tty)),
            ("StopSignal", unless_empty(self.stop_signal.as_str())),
            (
                "Healthcheck",
                self.healthcheck.as_ref().map(HealthConfig::to_json),
            ),
            ("HostConfig", Some(self.host_config.to_json())),
        ]))
    }
}

/// `HostConfig` of a create request: namespaces, security and resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateHostConfig {
    /// `host-path:container-path[:options]` bind mounts.
    pub binds: Vec<String>,
    /// `none`, `host` or `container:<id>` as dockshim uses it.
    pub network_mode: String,
    /// `shareable`, `host` or `container:<id>` as dockshim uses it.
    pub ipc_mode: String,
    /// Empty (own namespace), `host` or `container:<id>`.
    pub pid_mode: String,
    /// Empty (own namespace) or `host`.
    pub uts_mode: String,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    /// Capability names such as `NET_ADMIN`, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `key=value` options: `label=...`, `seccomp=...`, `apparmor=...`,
    /// `no-new-privileges`.
    pub security_opt: Vec<String>,
    /// Numeric group IDs or group names, as strings.
    pub group_add: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub oom_score_adj: Option<i32>,
    pub cgroup_parent: String,
    /// Bytes of `/dev/shm`.
    pub shm_size: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    pub resources: Resources,
    pub devices: Vec<DeviceMapping>,
    /// `None` keeps dockerd's default list; `Some(vec![])` masks nothing.
    pub masked_paths: Option<Vec<String>>,
    /// `None` keeps dockerd's default list; `Some(vec![])` protects nothing.
    pub readonly_paths: Option<Vec<String>>,

    /// Mounts `Binds` cannot express (API 1.44 and later): read-only
    /// binds that say how far down they are read-only, and images.
    pub mounts: Vec<Mount>,

    /// One of `/info`'s `Runtimes`; empty is dockerd's `DefaultRuntime`.
    pub runtime: String,
    /// Devices a driver injects at start; dockshim asks only the `cdi`
    /// driver (API 1.44+ with CDI on in dockerd).
    pub device_requests: Vec<DeviceRequest>,
}

impl CreateHostConfig {
    /// `HostConfig` with the resource fields at its top level, as the
    /// Engine API has them; empty fields left out.
    fn to_json(&self) -> Value {
        let mut body = object_of([
            ("Binds", unless_empty(self.binds.as_slice())),
            ("NetworkMode", unless_empty(self.network_mode.as_str())),
            ("IpcMode", unless_empty(self.ipc_mode.as_str())),
            ("PidMode", unless_empty(self.pid_mode.as_str())),
            ("UTSMode", unless_empty(self.uts_mode.as_str())),
            ("Privileged", unless_empty(self.privileged)),
            ("ReadonlyRootfs", unless_empty(self.readonly_rootfs)),
            ("CapAdd", unless_empty(self.cap_add.as_slice())),
            ("CapDrop", unless_empty(self.cap_drop.as_slice())),
            ("SecurityOpt", unless_empty(self.security_opt.as_slice())),
            ("GroupAdd", unless_empty(self.group_add.as_slice())),
            ("Sysctls", unless_empty(string_map(&self.sysctls))),
            ("OomScoreAdj", self.oom_score_adj.map(Value::from)),
            ("CgroupParent", unless_empty(self.cgroup_parent.as_str())),
            ("ShmSize", self.shm_size.map(Value::from)),
            (
                "RestartPolicy",
                self.restart_policy.as_ref().map(RestartPolicy::to_json),
            ),
            (
                "Devices",
                unless_empty(list(&self.devices, DeviceMapping::to_json)),
            ),
            ("MaskedPaths", self.masked_paths.as_deref().map(Value::from)),
            (
                "ReadonlyPaths",
                self.readonly_paths.as_deref().map(Value::from),
            ),
            ("Mounts", unless_empty(list(&self.mounts, Mount::to_json))),
            ("Runtime", unless_empty(self.runtime.as_str())),
            (
                "DeviceRequests",
                unless_empty(list(&self.device_requests, DeviceRequest::to_json)),
            ),
        ]);
        body.extend(self.resources.to_map());
        Value::Object(body)
    }
}

/// The resource fields of a create's `HostConfig`, and the whole body of
/// `POST /containers/{id}/update`; each is left out when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes; absent is unlimited.
    pub memory: Option<i64>,
    /// Memory plus swap, bytes; -1 is unlimited swap.
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (cgroup v1 `cpu.shares` scale).
    pub cpu_shares: Option<i64>,
    /// Microseconds per `CpuPeriod`.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<i64>,
    /// e.g. `0-3` or `0,1`.
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// The most processes the container may have; -1 is unlimited. Left
    /// out of an update, it keeps the current limit.
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// The body of an update.
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_map())
    }

    fn to_map(&self) -> Map<String, Value> {
        object_of([
            ("Memory", self.memory.map(Value::from)),
            ("MemorySwap", self.memory_swap.map(Value::from)),
            ("CpuShares", self.cpu_shares.map(Value::from)),
            ("CpuQuota", self.cpu_quota.map(Value::from)),
            ("CpuPeriod", self.cpu_period.map(Value::from)),
            ("CpusetCpus", unless_empty(self.cpuset_cpus.as_str())),
            ("CpusetMems", unless_empty(self.cpuset_mems.as_str())),
            ("PidsLimit", self.pids_limit.map(Value::from)),
        ])
    }
}

/// `POST /containers/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// Settings dockerd changed or dropped, in its words.
    pub warnings: Vec<String>,
}

impl FromJson for Created {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Created {
            id: fields.field("Id"),
            warnings: fields.field("Warnings"),
        })
    }
}

/// `POST /containers/{id}/update`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Updated {
    pub warnings: Vec<String>,
}

impl FromJson for Updated {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Updated {
            warnings: fields.field("Warnings"),
        })
    }
}

/// `Healthcheck`: dockshim only ever sends `{"Test": ["NONE"]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthConfig {
    pub test: Vec<String>,
}

impl HealthConfig {
    /// No health check, whatever the image says.
    pub fn none() -> HealthConfig {
        HealthConfig {
            test: vec![HEALTHCHECK_NONE.to_owned()],
        }
    }

    fn to_json(&self) -> Value {
        Value::Object(object_of([("Test", Some(self.test.as_slice().into()))]))
    }
}

/// `RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartPolicy {
    pub name: String,
}

impl RestartPolicy {
    /// Never restart.
    pub fn no() -> RestartPolicy {
        RestartPolicy {
            name: RESTART_POLICY_NO.to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        Value::Object(object_of([("Name", Some(self.name.as_str().into()))]))
    }
}

/// One entry of `Devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Any of `r`, `w`, `m`.
    pub cgroup_permissions: String,
}

impl DeviceMapping {
    fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("PathOnHost", Some(self.path_on_host.as_str().into())),
            (
                "PathInContainer",
                Some(self.path_in_container.as_str().into()),
            ),
            (
                "CgroupPermissions",
                Some(self.cgroup_permissions.as_str().into()),
            ),
        ]))
    }
}

/// One entry of `HostConfig.Mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// The host path of a bind; the reference or ID of an image.
    pub source: String,
    /// The path inside the container.
    pub target: String,
    pub read_only: bool,
    pub bind_options: Option<BindOptions>,
    pub image_options: Option<ImageOptions>,
}

impl Mount {
    /// The entry, empty options left out.
    pub fn to_json(&self) -> Value {
        let kind = match self.kind {
            MountType::Bind => "bind",
            MountType::Image => "image",
        };
        Value::Object(object_of([
            ("Type", Some(kind.into())),
            ("Source", Some(self.source.as_str().into())),
            ("Target", Some(self.target.as_str().into())),
            ("ReadOnly", unless_empty(self.read_only)),
            (
                "BindOptions",
                self.bind_options.as_ref().map(BindOptions::to_json),
            ),
            (
                "ImageOptions",
                self.image_options.as_ref().map(ImageOptions::to_json),
            ),
        ]))
    }
}

/// `Mount.Type`, of the kinds dockshim asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    /// An image's filesystem, read-only (API 1.48).
    Image,
}

/// `Mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// `rprivate`, `rslave` or `rshared` as dockshim uses it.
    pub propagation: String,
    /// Create a missing host path, as `Binds` always do (API 1.42).
    pub create_mountpoint: bool,
    /// Read-only at the top only; submounts keep their own flags (API
    /// 1.44).
    pub read_only_non_recursive: bool,
    /// Read-only all the way down, or fail the start (API 1.44).
    pub read_only_force_recursive: bool,
}

impl BindOptions {
    fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("Propagation", unless_empty(self.propagation.as_str())),
            ("CreateMountpoint", unless_empty(self.create_mountpoint)),
            (
                "ReadOnlyNonRecursive",
                unless_empty(self.read_only_non_recursive),
            ),
            (
                "ReadOnlyForceRecursive",
                unless_empty(self.read_only_force_recursive),
            ),
        ]))
    }
}

/// `Mount.ImageOptions` (API 1.48).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// A relative path inside the image to mount instead of its root.
    pub subpath: String,
}

impl ImageOptions {
    fn to_json(&self) -> Value {
        Value::Object(object_of([(
            "Subpath",
            unless_empty(self.subpath.as_str()),
        )]))
    }
}

/// The driver of a `DeviceRequests` entry that names CDI devices.
pub const DEVICE_DRIVER_CDI: &str = "cdi";

/// One entry of `DeviceRequests`. Of Docker's fields only those a CDI
/// request uses exist: `Count`, `Capabilities` and `Options` stay unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceRequest {
    pub driver: String,
    /// Fully qualified CDI names, `vendor/class=name`.
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

    /// The entry, every field present.
    pub fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("Driver", Some(self.driver.as_str().into())),
            ("DeviceIDs", Some(self.device_ids.as_slice().into())),
        ]))
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    // Built by insert: collecting into a `Map` compiles a sort.
    let mut object = Map::new();
    for (key, value) in map {
        object.insert(key.clone(), value.as_str().into());
    }
    Value::Object(object)
}

fn list<T>(items: &[T], to_json: fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(to_json).collect())
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
            body.to_json(),
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
        assert_eq!(body.to_json(), expected);
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
            body.to_json()["HostConfig"],
            json!({"OomScoreAdj": 0, "MaskedPaths": [], "ReadonlyPaths": []})
        );
    }
}
