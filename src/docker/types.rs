//! The typed subsets of dockerd's JSON answers that the client itself
//! decodes: `/version`, `/info`, `/events` messages and pull progress.
//!
//! Every field has a default and unknown fields are ignored, because the
//! Engine API only ever adds fields. Container and image structures belong
//! to the CRI translation code, not here.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// `GET /version`, the fields dockshim reports or checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Version {
    /// The engine version, e.g. `20.10.24+dfsg1`.
    #[serde(rename = "Version")]
    pub version: String,
    /// The newest API the engine serves, e.g. `1.41`.
    #[serde(rename = "ApiVersion")]
    pub api_version: String,
    /// The oldest API the engine serves.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    #[serde(rename = "Os")]
    pub os: String,
    #[serde(rename = "Arch")]
    pub arch: String,
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
    #[serde(rename = "GitCommit")]
    pub git_commit: String,
}

/// `GET /info`, the fields dockshim reports or checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Info {
    #[serde(rename = "ServerVersion")]
    pub server_version: String,
    /// `cgroupfs` or `systemd`; must match the kubelet's driver.
    #[serde(rename = "CgroupDriver")]
    pub cgroup_driver: String,
    /// `1` or `2`.
    #[serde(rename = "CgroupVersion")]
    pub cgroup_version: String,
    #[serde(rename = "DockerRootDir")]
    pub docker_root_dir: String,
    /// The storage driver, e.g. `overlay2`.
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    /// Bytes of memory on the host.
    #[serde(rename = "MemTotal")]
    pub mem_total: i64,
    /// The daemon's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The host name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `name=<option>` entries, each maybe followed by `,key=value` parts,
    /// e.g. `name=seccomp,profile=default`; dockerd may send `null`.
    #[serde(rename = "SecurityOptions")]
    pub security_options: Option<Vec<String>>,
    /// `[key, value]` pairs about the storage driver; the containerd image
    /// store says `["driver-type", "io.containerd.snapshotter.v1"]` here.
    #[serde(rename = "DriverStatus", deserialize_with = "null_as_empty")]
    pub driver_status: Vec<Vec<String>>,
    /// The host kernel's release, e.g. `6.1.0-18-amd64`.
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
    /// The OCI runtimes dockerd can run containers with, by name.
    #[serde(rename = "Runtimes", deserialize_with = "null_as_empty")]
    pub runtimes: HashMap<String, Runtime>,
    /// The runtime a container gets when its create body names none.
    #[serde(rename = "DefaultRuntime")]
    pub default_runtime: String,
    /// Where dockerd looks for CDI specifications (API 1.45+); empty when
    /// the engine has CDI turned off or predates it.
    #[serde(rename = "CDISpecDirs", deserialize_with = "null_as_empty")]
    pub cdi_spec_dirs: Vec<String>,
    /// The containerd dockerd uses (API 1.46+); `null` or missing before.
    #[serde(rename = "Containerd", deserialize_with = "null_as_empty")]
    pub containerd: InfoContainerd,
}

/// `/info`'s `Containerd`: the containerd dockerd talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InfoContainerd {
    /// Its API socket: the system containerd's, or the one dockerd
    /// started under its exec root.
    #[serde(rename = "Address")]
    pub address: String,
}

/// One entry of `/info`'s `Runtimes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Runtime {
    /// The executable (a runc-compatible runtime), when not a shim.
    pub path: String,
    /// The containerd shim, for runtimes configured as one (API 1.42+).
    #[serde(rename = "runtimeType")]
    pub runtime_type: String,
    /// What the runtime reports of itself, where the engine asks it (27.5.1
    /// and 29.7.2 do, 20.10 does not): under
    /// `org.opencontainers.runtime-spec.features`, the runtime's OCI features
    /// document as a JSON string.
    #[serde(deserialize_with = "null_as_empty")]
    pub status: HashMap<String, String>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Event {
    /// The object kind: `container`, `image`, `network`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// What happened: `create`, `start`, `die`, `destroy`, ...
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Nanoseconds since the Unix epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an [`Event`] is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Actor {
    /// The container or image ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Labels of the object plus event details such as `name`, `image`,
    /// `exitCode`; dockerd writes `null` for an object without any.
    #[serde(rename = "Attributes", deserialize_with = "null_as_empty")]
    pub attributes: HashMap<String, String>,
}

/// One message of `POST /images/create` (pull) progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
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
    #[serde(rename = "errorDetail")]
    pub error_detail: ErrorDetail,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    pub message: String,
}

/// Reads a JSON `null` as the type's empty value: dockerd writes `null`
/// rather than `[]` or `{}` for many empty lists and maps.
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_decodes_from_dockerd_and_ignores_legacy_fields() -> Result<(), serde_json::Error> {
        let line = r#"{"status":"die","id":"b894","from":"busybox","Type":"container","Action":"die",
            "Actor":{"ID":"b894","Attributes":{"exitCode":"0","name":"x"}},"scope":"local",
            "time":1795430767,"timeNano":1795430767478831006}"#;
        let event: Event = serde_json::from_str(line)?;
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
        let event: Event = serde_json::from_str(line)?;
        assert_eq!(event.action, "start");
        assert!(event.actor.attributes.is_empty());
        Ok(())
    }

    #[test]
    fn pull_error_prefers_the_detail() -> Result<(), serde_json::Error> {
        let line =
            r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown: x"}"#;
        let progress: PullProgress = serde_json::from_str(line)?;
        assert_eq!(progress.error_message(), Some("manifest unknown"));
        let ok: PullProgress = serde_json::from_str(r#"{"status":"Downloading","id":"a1"}"#)?;
        assert_eq!(ok.error_message(), None);
        Ok(())
    }

    #[test]
    fn missing_fields_default() -> Result<(), serde_json::Error> {
        let info: Info = serde_json::from_str(r#"{"NCPU":2,"Unknown":{"x":1}}"#)?;
        assert_eq!(info.ncpu, 2);
        assert!(info.cgroup_driver.is_empty());
        Ok(())
    }
}
