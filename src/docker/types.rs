//! The typed subsets of dockerd's JSON answers that the client itself
//! decodes: `/version`, `/info`, `/events` messages and pull progress.
//!
//! A field dockerd leaves out or sends as `null` reads as empty, and
//! unknown fields are ignored, because the Engine API only ever adds fields. Container and image structures belong
//! to the CRI translation code, not here.

use std::collections::HashMap;

use serde_json::Value;

use crate::codec::json::{Fields, FromJson};

/// `GET /version`, the fields dockshim reports or checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// The engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// The newest API the engine serves, e.g. `1.41`.
    pub api_version: String,
    /// The oldest API the engine serves.
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub git_commit: String,
}

impl FromJson for Version {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Version {
            version: fields.field("Version"),
            api_version: fields.field("ApiVersion"),
            min_api_version: fields.field("MinAPIVersion"),
            os: fields.field("Os"),
            arch: fields.field("Arch"),
            kernel_version: fields.field("KernelVersion"),
            git_commit: fields.field("GitCommit"),
        })
    }
}

/// `GET /info`, the fields dockshim reports or checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub server_version: String,
    /// `cgroupfs` or `systemd`; must match the kubelet's driver.
    pub cgroup_driver: String,
    /// `1` or `2`.
    pub cgroup_version: String,
    pub docker_root_dir: String,
    /// The storage driver, e.g. `overlay2`.
    pub driver: String,
    pub operating_system: String,
    pub ncpu: i64,
    /// Bytes of memory on the host.
    pub mem_total: i64,
    /// The daemon's ID.
    pub id: String,
    /// The host name.
    pub name: String,
    /// `name=<option>` entries, each maybe followed by `,key=value` parts,
    /// e.g. `name=seccomp,profile=default`; dockerd may send `null`.
    pub security_options: Option<Vec<String>>,
    /// `[key, value]` pairs about the storage driver; the containerd image
    /// store says `["driver-type", "io.containerd.snapshotter.v1"]` here.
    pub driver_status: Vec<Vec<String>>,
    /// The host kernel's release, e.g. `6.1.0-18-amd64`.
    pub kernel_version: String,
    /// The OCI runtimes dockerd can run containers with, by name.
    pub runtimes: HashMap<String, Runtime>,
    /// The runtime a container gets when its create body names none.
    pub default_runtime: String,
    /// Where dockerd looks for CDI specifications (API 1.45+); empty when
    /// the engine has CDI turned off or predates it.
    pub cdi_spec_dirs: Vec<String>,
    /// The containerd dockerd uses (API 1.46+); `null` or missing before.
    pub containerd: InfoContainerd,
}

impl FromJson for Info {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Info {
            server_version: fields.field("ServerVersion"),
            cgroup_driver: fields.field("CgroupDriver"),
            cgroup_version: fields.field("CgroupVersion"),
            docker_root_dir: fields.field("DockerRootDir"),
            driver: fields.field("Driver"),
            operating_system: fields.field("OperatingSystem"),
            ncpu: fields.field("NCPU"),
            mem_total: fields.field("MemTotal"),
            id: fields.field("ID"),
            name: fields.field("Name"),
            security_options: fields.opt("SecurityOptions"),
            driver_status: fields.field("DriverStatus"),
            kernel_version: fields.field("KernelVersion"),
            runtimes: fields.field("Runtimes"),
            default_runtime: fields.field("DefaultRuntime"),
            cdi_spec_dirs: fields.field("CDISpecDirs"),
            containerd: fields.field("Containerd"),
        })
    }
}

/// `/info`'s `Containerd`: the containerd dockerd talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoContainerd {
    /// Its API socket: the system containerd's, or the one dockerd
    /// started under its exec root.
    pub address: String,
}

impl FromJson for InfoContainerd {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(InfoContainerd {
            address: fields.field("Address"),
        })
    }
}

/// One entry of `/info`'s `Runtimes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// The executable (a runc-compatible runtime), when not a shim.
    pub path: String,
    /// The containerd shim, for runtimes configured as one (API 1.42+).
    pub runtime_type: String,
    /// What the runtime reports of itself, where the engine asks it (27.5.1
    /// and 29.7.2 do, 20.10 does not): under
    /// `org.opencontainers.runtime-spec.features`, the runtime's OCI features
    /// document as a JSON string.
    pub status: HashMap<String, String>,
}

impl FromJson for Runtime {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Runtime {
            path: fields.field("path"),
            runtime_type: fields.field("runtimeType"),
            status: fields.field("status"),
        })
    }
}

impl Info {
    /// Whether dockerd confines containers with AppArmor: it lists
    /// `name=apparmor` among its security options only then.
    pub fn has_apparmor(&self) -> bool {
        self.security_options
            .iter()
            .flatten()
            .any(|option| option.split(',').any(|part| part == "name=apparmor"))
    }

    /// The kubelet's name for dockerd's cgroup driver.
    pub fn is_systemd_cgroup_driver(&self) -> bool {
        self.cgroup_driver == "systemd"
    }
}

/// One message of `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The object kind: `container`, `image`, `network`, ...
    pub kind: String,
    /// What happened: `create`, `start`, `die`, `destroy`, ...
    pub action: String,
    pub actor: Actor,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl FromJson for Event {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Event {
            kind: fields.field("Type"),
            action: fields.field("Action"),
            actor: fields.field("Actor"),
            time: fields.field("time"),
            time_nano: fields.field("timeNano"),
        })
    }
}

/// The object an [`Event`] is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The container or image ID.
    pub id: String,
    /// Labels of the object plus event details such as `name`, `image`,
    /// `exitCode`; dockerd writes `null` for an object without any.
    pub attributes: HashMap<String, String>,
}

impl FromJson for Actor {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(Actor {
            id: fields.field("ID"),
            attributes: fields.field("Attributes"),
        })
    }
}

/// One message of `POST /images/create` (pull) progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// e.g. `Pulling fs layer`, `Downloading`, `Extracting`,
    /// `Status: Downloaded newer image for ...`.
    pub status: String,
    /// The layer ID (or tag) the status is about.
    pub id: String,
    /// A human-readable progress bar.
    pub progress: String,
    /// Set when the pull failed; the stream ends after it.
    pub error: String,
    pub error_detail: ErrorDetail,
}

impl FromJson for PullProgress {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(PullProgress {
            status: fields.field("status"),
            id: fields.field("id"),
            progress: fields.field("progress"),
            error: fields.field("error"),
            error_detail: fields.field("errorDetail"),
        })
    }
}

impl PullProgress {
    /// The failure this message reports, if any.
    pub fn error_message(&self) -> Option<&str> {
        [self.error_detail.message.as_str(), self.error.as_str()]
            .into_iter()
            .find(|m| !m.is_empty())
    }
}

/// The structured form of a stream error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    pub message: String,
}

impl FromJson for ErrorDetail {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ErrorDetail {
            message: fields.field("message"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;

    #[test]
    fn event_decodes_from_dockerd_and_ignores_legacy_fields() -> Result<(), serde_json::Error> {
        let line = r#"{"status":"die","id":"b894","from":"busybox","Type":"container","Action":"die",
            "Actor":{"ID":"b894","Attributes":{"exitCode":"0","name":"x"}},"scope":"local",
            "time":1795430767,"timeNano":1795430767478831006}"#;
        let event: Event = json::decode(line)?;
        assert_eq!(
            (event.kind.as_str(), event.action.as_str()),
            ("container", "die")
        );
        assert_eq!(event.actor.id, "b894");
        assert_eq!(
            event.actor.attributes.get("exitCode").map(String::as_str),
            Some("0")
        );
        assert_eq!(event.time_nano, 1_795_430_767_478_831_006);
        Ok(())
    }

    #[test]
    fn event_from_docker_29_without_legacy_fields_or_attributes_decodes(
    ) -> Result<(), serde_json::Error> {
        // API 1.52 dropped `status`, `id` and `from`; an actor may have no
        // attributes at all.
        let line = r#"{"Type":"container","Action":"start","Actor":{"ID":"b894","Attributes":null},
            "scope":"local","time":1796613731,"timeNano":1796613731000000001}"#;
        let event: Event = json::decode(line)?;
        assert_eq!(event.action, "start");
        assert!(event.actor.attributes.is_empty());
        Ok(())
    }

    #[test]
    fn pull_error_prefers_the_detail() -> Result<(), serde_json::Error> {
        let line =
            r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown: x"}"#;
        let progress: PullProgress = json::decode(line)?;
        assert_eq!(progress.error_message(), Some("manifest unknown"));
        let ok: PullProgress = json::decode(br#"{"status":"Downloading","id":"a1"}"#)?;
        assert_eq!(ok.error_message(), None);
        Ok(())
    }

    #[test]
    fn missing_fields_default() -> Result<(), serde_json::Error> {
        let info: Info = json::decode(br#"{"NCPU":2,"Unknown":{"x":1}}"#)?;
        assert_eq!(info.ncpu, 2);
        assert!(info.cgroup_driver.is_empty());
        Ok(())
    }
}
