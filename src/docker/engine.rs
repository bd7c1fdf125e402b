//! What the Docker Engine on the other end can do: every behaviour that
//! differs by API version, image store or daemon configuration is decided
//! here, from `GET /_ping` and `GET /info`, and nowhere else.
//!
//! It owns the decision rules only; it does no I/O. [`super::DockerClient`]
//! asks dockerd once and keeps the answer (`DockerClient::engine`), since
//! none of it changes without a daemon restart. The version facts are in
//! `vendor-docs/docker-engine-versions.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::types::Info;
use super::ApiVersion;

/// API 1.44 (Engine 25.0): `BindOptions.ReadOnlyNonRecursive` and
/// `ReadOnlyForceRecursive`; a read-only bind is recursively read-only by
/// default where the kernel allows it.
const API_READ_ONLY_MOUNT_KINDS: ApiVersion = ApiVersion::new(1, 44);
/// API 1.48 (Engine 28.0): mounts of `Type: "image"`.
const API_IMAGE_MOUNTS: ApiVersion = ApiVersion::new(1, 48);
/// API 1.52 (Engine 29.0): `Storage` replaces `GraphDriver` for the
/// containerd image store.
const API_STORAGE_FIELD: ApiVersion = ApiVersion::new(1, 52);
/// The first kernel with `mount_setattr(2)`, which recursive read-only
/// mounts need (Linux 5.12).
const KERNEL_MOUNT_SETATTR: (u32, u32) = (5, 12);
/// `DriverStatus` key and value by which the containerd image store names
/// itself.
const DRIVER_TYPE_KEY: &str = "driver-type";
const DRIVER_TYPE_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// Where the engine keeps images and containers' writable layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStore {
    /// A classic graph driver (`overlay2`, `vfs`, ...) under dockerd's data
    /// root; image IDs are config digests.
    GraphDriver { driver: String },
    /// The containerd image store with this snapshotter (`overlayfs`, ...);
    /// image IDs are manifest or index digests.
    Snapshotter { snapshotter: String },
}

impl ImageStore {
    /// The driver or snapshotter name, as `/info`'s `Driver` gives it.
    pub fn name(&self) -> &str {
        match self {
            ImageStore::GraphDriver { driver } => driver,
            ImageStore::Snapshotter { snapshotter } => snapshotter,
        }
    }

    pub fn is_containerd(&self) -> bool {
        matches!(self, ImageStore::Snapshotter { .. })
    }
}

/// One OCI runtime dockerd can run containers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRuntime {
    /// The executable or containerd shim, for Status's verbose info.
    pub path: String,
}

/// The facts about one running engine that dockshim's behaviour depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// The engine's release, e.g. `29.7.2`.
    pub version: String,
    /// The API version dockshim negotiated with it.
    pub api_version: ApiVersion,
    pub image_store: ImageStore,
    /// `DockerRootDir`.
    pub root_dir: PathBuf,
    /// Whether dockerd uses the systemd cgroup driver.
    pub systemd_cgroups: bool,
    /// Whether dockerd confines containers with AppArmor.
    pub apparmor: bool,
    /// The host kernel's release.
    pub kernel_version: String,
    /// Runtimes by name, sorted.
    pub runtimes: BTreeMap<String, EngineRuntime>,
    /// The runtime a container gets when none is named.
    pub default_runtime: String,
    /// CDI specification directories; empty where CDI is off or unknown.
    pub cdi_spec_dirs: Vec<PathBuf>,
}

impl Engine {
    /// The facts from `/info`, at the negotiated `api_version`.
    pub fn new(api_version: ApiVersion, info: &Info) -> Engine {
        let snapshotter = info
            .driver_status
            .iter()
            .any(|pair| matches!(pair.as_slice(), [k, v] if k == DRIVER_TYPE_KEY && v == DRIVER_TYPE_SNAPSHOTTER));
        let image_store = if snapshotter {
            ImageStore::Snapshotter {
                snapshotter: info.driver.clone(),
            }
        } else {
            ImageStore::GraphDriver {
                driver: info.driver.clone(),
            }
        };
        let runtimes = info
            .runtimes
            .iter()
            .map(|(name, runtime)| {
                let path = if runtime.path.is_empty() {
                    runtime.runtime_type.clone()
                } else {
                    runtime.path.clone()
                };
                (name.clone(), EngineRuntime { path })
            })
            .collect();
        Engine {
            version: info.server_version.clone(),
            api_version,
            image_store,
            root_dir: PathBuf::from(&info.docker_root_dir),
            systemd_cgroups: info.is_systemd_cgroup_driver(),
            apparmor: info.has_apparmor(),
            kernel_version: info.kernel_version.clone(),
            runtimes,
            default_runtime: info.default_runtime.clone(),
            cdi_spec_dirs: info.cdi_spec_dirs.iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether a bind can be asked to stay non-recursively read-only
    /// (`BindOptions.ReadOnlyNonRecursive`). Below API 1.44 every read-only
    /// bind is non-recursive and the option does not exist.
    pub fn has_read_only_mount_kinds(&self) -> bool {
        self.api_version >= API_READ_ONLY_MOUNT_KINDS
    }

    /// Whether a bind can be made recursively read-only
    /// (`BindOptions.ReadOnlyForceRecursive`): API 1.44 and a kernel with
    /// `mount_setattr(2)`.
    pub fn supports_recursive_read_only(&self) -> bool {
        self.has_read_only_mount_kinds()
            && kernel_at_least(&self.kernel_version, KERNEL_MOUNT_SETATTR)
    }

    /// Whether mounts of `Type: "image"` exist.
    pub fn supports_image_mounts(&self) -> bool {
        self.api_version >= API_IMAGE_MOUNTS
    }

    /// Whether CDI device requests (`DeviceRequests` with driver `cdi`)
    /// can be served: dockerd reports CDI spec directories only when its
    /// CDI support is on.
    pub fn supports_cdi(&self) -> bool {
        !self.cdi_spec_dirs.is_empty()
    }

    /// Whether container inspect carries `Storage` rather than a
    /// `GraphDriver` for the containerd image store.
    pub fn has_storage_field(&self) -> bool {
        self.api_version >= API_STORAGE_FIELD
    }
}

/// Whether the kernel release `release` (`6.1.0-18-amd64`) is at least
/// `major.minor`; an unreadable release is taken as too old.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let number = |part: Option<&str>| part.and_then(|p| p.parse::<u32>().ok());
    match (number(parts.next()), number(parts.next())) {
        (Some(have_major), Some(have_minor)) => (have_major, have_minor) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(json: &str) -> Info {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn debian_20_10_is_a_graph_driver_engine_without_new_mount_kinds() {
        let engine = Engine::new(
            ApiVersion::new(1, 41),
            &info(
                r#"{"ServerVersion":"20.10.24+dfsg1","Driver":"overlay2",
                "DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"]],
                "KernelVersion":"6.1.0","DockerRootDir":"/var/lib/docker",
                "Runtimes":{"runc":{"path":"runc"},"io.containerd.runc.v2":{"path":"runc"}},
                "DefaultRuntime":"runc"}"#,
            ),
        );
        assert_eq!(
            engine.image_store,
            ImageStore::GraphDriver {
                driver: "overlay2".to_owned()
            }
        );
        assert!(!engine.has_read_only_mount_kinds());
        assert!(!engine.supports_recursive_read_only());
        assert!(!engine.supports_image_mounts());
        assert!(!engine.supports_cdi());
        assert_eq!(
            engine.runtimes.keys().collect::<Vec<_>>(),
            ["io.containerd.runc.v2", "runc"]
        );
    }

    #[test]
    fn docker_29_with_the_containerd_store_has_every_feature() {
        let engine = Engine::new(
            ApiVersion::new(1, 55),
            &info(
                r#"{"ServerVersion":"29.7.2","Driver":"overlayfs",
                "DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]],
                "KernelVersion":"6.18.44-fc","CDISpecDirs":["/etc/cdi","/var/run/cdi"],
                "Runtimes":{"runc":{"path":"runc"},"kata":{"runtimeType":"io.containerd.kata.v2"}},
                "DefaultRuntime":"runc","SomethingNew":{"x":1}}"#,
            ),
        );
        assert!(engine.image_store.is_containerd());
        assert_eq!(engine.image_store.name(), "overlayfs");
        assert!(engine.supports_recursive_read_only());
        assert!(engine.supports_image_mounts());
        assert!(engine.supports_cdi());
        assert!(engine.has_storage_field());
        assert_eq!(engine.runtimes["kata"].path, "io.containerd.kata.v2");
    }

    #[test]
    fn recursive_read_only_needs_mount_setattr() {
        let engine = Engine::new(
            ApiVersion::new(1, 47),
            &info(r#"{"KernelVersion":"5.10.0-28-amd64","CDISpecDirs":null,"Runtimes":null}"#),
        );
        assert!(engine.has_read_only_mount_kinds());
        assert!(!engine.supports_recursive_read_only());
        assert!(!engine.supports_cdi());
    }

    #[test]
    fn kernel_releases_compare_by_number() {
        assert!(kernel_at_least("5.12.0", (5, 12)));
        assert!(kernel_at_least("6.1.0-18-amd64", (5, 12)));
        assert!(!kernel_at_least("5.9.16", (5, 12)));
        assert!(!kernel_at_least("", (5, 12)));
        assert!(!kernel_at_least("x", (5, 12)));
    }
}
