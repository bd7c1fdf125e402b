//! What the Docker Engine on the other end can do: every behaviour that
//! differs by API version, image store or daemon configuration is decided
//! here, from `GET /_ping` and `GET /info`, and nowhere else.
//!
//! It owns the decision rules only; it does no I/O. [`super::DockerClient`]
//! asks dockerd once and keeps the answer (`DockerClient::engine`), since
//! none of it changes without a daemon restart, except the runtimes, which
//! a reload (SIGHUP) may add: RunPodSandbox reads `/info` again for a
//! handler the kept answer lacks. The version facts are in
//! `vendor-docs/docker-engine-versions.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::types::Info;
use super::ApiVersion;
use crate::codec::json::Fields;

/// API 1.44 (Engine 25.0): `BindOptions.ReadOnlyNonRecursive` and
/// `ReadOnlyForceRecursive`; a read-only bind is recursively read-only by
/// default where the kernel allows it.
const API_READ_ONLY_MOUNT_KINDS: ApiVersion = ApiVersion::new(1, 44);
/// API 1.48 (Engine 28.0): mounts of `Type: "image"`.
const API_IMAGE_MOUNTS: ApiVersion = ApiVersion::new(1, 48);
/// The first kernel with `mount_setattr(2)`, which recursive read-only
/// mounts need (Linux 5.12).
const KERNEL_MOUNT_SETATTR: (u32, u32) = (5, 12);
/// The `Runtimes[].status` key of a runtime's OCI features document.
const RUNTIME_FEATURES_KEY: &str = "org.opencontainers.runtime-spec.features";
/// The mount option by which a runtime makes a mount recursively read-only.
const MOUNT_OPTION_RECURSIVE_READ_ONLY: &str = "rro";
/// `DriverStatus` key and value by which the containerd image store names
/// itself.
const DRIVER_TYPE_KEY: &str = "driver-type";
const DRIVER_TYPE_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";
/// The socket of the system containerd, which dockerd uses when it finds
/// it instead of starting its own (moby `initializeContainerd`).
const SYSTEM_CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The system containerd's default root directory.
const SYSTEM_CONTAINERD_ROOT: &str = "/var/lib/containerd";
/// The root of the containerd dockerd starts itself, under its data root
/// (moby `containerdRootDir`).
const MANAGED_CONTAINERD_ROOT: &str = "containerd/daemon";
/// Where, under its data root, the containerd image store mounts a
/// running container's root filesystem: `rootfs/<snapshotter>/<id>`
/// (moby `daemon/snapshotter/mount.go`).
const ROOTFS_MOUNTS: &str = "rootfs";
/// containerd's directory for the content store, under its root.
const CONTENT_STORE: &str = "io.containerd.content.v1.content";

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

/// Where images and containers' writable layers are kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDirs {
    /// The directory ImageFsInfo and ContainerStats name as the filesystem
    /// of images and writable layers: `DockerRootDir` under a graph driver,
    /// the snapshotter's directory under the containerd image store.
    pub layers: PathBuf,
    /// The containerd content store (compressed layers, manifests and
    /// configurations, kept beside the unpacked layers); `None` under a
    /// graph driver.
    pub content: Option<PathBuf>,
}

/// One OCI runtime dockerd can run containers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRuntime {
    /// The executable or containerd shim, for Status's verbose info.
    pub path: String,
    /// The mount options the runtime's OCI features document lists;
    /// `None` where the engine reports no such document.
    pub mount_options: Option<Vec<String>>,
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
    /// The socket of the containerd dockerd uses; empty below API 1.46.
    pub containerd_address: String,
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
        // Built by insert: collecting into a BTreeMap compiles a sort.
        let mut runtimes = BTreeMap::new();
        for (name, runtime) in &info.runtimes {
            let path = if runtime.path.is_empty() {
                runtime.runtime_type.clone()
            } else {
                runtime.path.clone()
            };
            let mount_options = runtime
                .status
                .get(RUNTIME_FEATURES_KEY)
                .and_then(|document| mount_options(document).ok());
            runtimes.insert(
                name.clone(),
                EngineRuntime {
                    path,
                    mount_options,
                },
            );
        }
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
            containerd_address: info.containerd.address.clone(),
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

    /// Whether containers of the runtime `runtime` (empty for the default
    /// one) can have recursively read-only mounts: the engine and kernel
    /// can make them, and the runtime, where it lists its mount options,
    /// knows `rro`. An unknown runtime cannot.
    pub fn runtime_supports_recursive_read_only(&self, runtime: &str) -> bool {
        let name = if runtime.is_empty() {
            &self.default_runtime
        } else {
            runtime
        };
        let knows_rro = match self.runtimes.get(name) {
            Some(found) => found.mount_options.as_ref().is_none_or(|options| {
                options
                    .iter()
                    .any(|o| o == MOUNT_OPTION_RECURSIVE_READ_ONLY)
            }),
            None => runtime.is_empty(),
        };
        self.supports_recursive_read_only() && knows_rro
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

    /// Whether dockerd lists a runtime called `name` in `/info`.
    pub fn has_runtime(&self, name: &str) -> bool {
        self.runtimes.contains_key(name)
    }

    /// Where images and writable layers are kept. Under the containerd
    /// image store that is the root of the containerd dockerd uses, which
    /// `/info` does not name: its address tells a system containerd (at
    /// its default root) from the one dockerd starts under its data root,
    /// and where the address is unknown or unusual, the first root whose
    /// snapshotter directory `is_dir` finds is taken, the managed one
    /// first. If none is found, `DockerRootDir` is the best left.
    pub fn storage_dirs(&self, is_dir: impl Fn(&Path) -> bool) -> StorageDirs {
        let graph_driver = StorageDirs {
            layers: self.root_dir.clone(),
            content: None,
        };
        let ImageStore::Snapshotter { snapshotter } = &self.image_store else {
            return graph_driver;
        };
        let managed = self.root_dir.join(MANAGED_CONTAINERD_ROOT);
        let system = PathBuf::from(SYSTEM_CONTAINERD_ROOT);
        let roots = if self.containerd_address == SYSTEM_CONTAINERD_ADDRESS {
            vec![system]
        } else {
            vec![managed, system]
        };
        roots
            .into_iter()
            .map(|root| StorageDirs {
                layers: root.join(format!("{DRIVER_TYPE_SNAPSHOTTER}.{snapshotter}")),
                content: Some(root.join(CONTENT_STORE)),
            })
            .find(|dirs| is_dir(&dirs.layers))
            .unwrap_or(graph_driver)
    }

    /// Where the containerd image store mounts the root filesystem of
    /// container `id`, made by `snapshotter` (the container's own, as its
    /// inspect names it; empty for the engine's), while it runs; `None`
    /// under a graph driver, which names the writable layer itself.
    pub fn container_rootfs(&self, snapshotter: &str, id: &str) -> Option<PathBuf> {
        let ImageStore::Snapshotter { snapshotter: own } = &self.image_store else {
            return None;
        };
        let snapshotter = if snapshotter.is_empty() {
            own
        } else {
            snapshotter
        };
        Some(self.root_dir.join(ROOTFS_MOUNTS).join(snapshotter).join(id))
    }
}

/// Whether the kernel release `release` (`6.1.0-18-amd64`) is at least
/// `major.minor`; an unreadable release is taken as too old.
/// The `mountOptions` an OCI runtime features document lists.
fn mount_options(document: &str) -> Result<Vec<String>, serde_json::Error> {
    // From bytes, as every JSON read is: one parser is compiled, not two.
    let features: Value = serde_json::from_slice(document.as_bytes())?;
    let fields = Fields::of(&features)?;
    let options = fields.field("mountOptions");
    fields.finish(options)
}

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
        crate::codec::json::decode(json).unwrap()
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
        assert_eq!(engine.runtimes["kata"].path, "io.containerd.kata.v2");
    }

    #[test]
    fn docker_27_with_the_cdi_feature_off_reports_no_spec_dirs() {
        let engine = Engine::new(
            ApiVersion::new(1, 47),
            &info(
                r#"{"ServerVersion":"27.5.1","Driver":"overlay2","KernelVersion":"6.1.0",
                "CDISpecDirs":[],
                "Runtimes":{"runc":{"path":"runc","status":{"org.opencontainers.runtime-spec.features":"{}"}},
                "io.containerd.runc.v2":{"path":"runc"}},"DefaultRuntime":"runc"}"#,
            ),
        );
        assert!(!engine.supports_cdi());
        assert!(engine.has_runtime("io.containerd.runc.v2"));
        assert!(engine.has_runtime("runc"));
        assert!(!engine.has_runtime("runsc"));
        assert_eq!(engine.default_runtime, "runc");
    }

    #[test]
    fn a_runtime_has_recursive_read_only_mounts_if_it_lists_rro_or_lists_nothing() {
        let features = |options: &str| {
            serde_json::json!({ "org.opencontainers.runtime-spec.features":
                format!(r#"{{"ociVersionMin":"1.0.0","mountOptions":[{options}]}}"#) })
        };
        let body = serde_json::json!({
            "ServerVersion": "29.7.2",
            "KernelVersion": "6.1.0",
            "DefaultRuntime": "runc",
            "Runtimes": {
                "runc": {"path": "runc", "status": features(r#""ro","rro","rbind""#)},
                "old": {"path": "runc-1.0", "status": features(r#""ro","rbind""#)},
                "quiet": {"path": "crun"},
                "garbled": {"path": "x", "status": {"org.opencontainers.runtime-spec.features": "{"}}
            }
        });
        let engine = Engine::new(ApiVersion::new(1, 55), &info(&body.to_string()));
        assert_eq!(
            engine.runtimes["runc"].mount_options.as_deref(),
            Some(&["ro".to_owned(), "rro".to_owned(), "rbind".to_owned()][..])
        );
        assert!(engine.runtime_supports_recursive_read_only(""));
        assert!(engine.runtime_supports_recursive_read_only("runc"));
        assert!(!engine.runtime_supports_recursive_read_only("old"));
        assert!(engine.runtime_supports_recursive_read_only("quiet"));
        assert!(engine.runtime_supports_recursive_read_only("garbled"));
        assert!(!engine.runtime_supports_recursive_read_only("runsc"));

        let old_api = Engine::new(ApiVersion::new(1, 41), &info(&body.to_string()));
        assert!(!old_api.runtime_supports_recursive_read_only("runc"));
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

    const DATA_ROOT: &str = "/var/lib/dockshim-engines/docker-29.7.2";
    const MANAGED_OVERLAYFS: &str = "/var/lib/dockshim-engines/docker-29.7.2/containerd/daemon/io.containerd.snapshotter.v1.overlayfs";

    fn containerd_store(api: (u16, u16), containerd: &str) -> Engine {
        Engine::new(
            ApiVersion::new(api.0, api.1),
            &info(&format!(
                r#"{{"Driver":"overlayfs","DockerRootDir":"{DATA_ROOT}",
                "DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]],
                "Containerd":{containerd}}}"#
            )),
        )
    }

    #[test]
    fn a_graph_driver_keeps_layers_under_the_data_root() {
        let engine = Engine::new(
            ApiVersion::new(1, 47),
            &info(r#"{"Driver":"overlay2","DockerRootDir":"/var/lib/docker"}"#),
        );
        let dirs = engine.storage_dirs(|_| true);
        assert_eq!(dirs.layers, Path::new("/var/lib/docker"));
        assert_eq!(dirs.content, None);
        assert_eq!(engine.container_rootfs("overlay2", "c1"), None);
    }

    #[test]
    fn the_managed_containerd_keeps_layers_under_the_data_root() {
        let engine = containerd_store(
            (1, 55),
            r#"{"Address":"/run/dockshim-engines/docker-29.7.2.exec/containerd/containerd.sock"}"#,
        );
        let dirs = engine.storage_dirs(|dir| dir.starts_with(DATA_ROOT));
        assert_eq!(dirs.layers, Path::new(MANAGED_OVERLAYFS));
        assert_eq!(
            dirs.content.unwrap(),
            Path::new(DATA_ROOT).join("containerd/daemon/io.containerd.content.v1.content")
        );
    }

    #[test]
    fn the_system_containerd_keeps_layers_in_its_own_root() {
        let engine = containerd_store((1, 55), r#"{"Address":"/run/containerd/containerd.sock"}"#);
        // A managed root left from earlier is not the one in use.
        let dirs = engine.storage_dirs(|_| true);
        assert_eq!(
            dirs.layers,
            Path::new("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs")
        );
        assert_eq!(
            dirs.content.unwrap(),
            Path::new("/var/lib/containerd/io.containerd.content.v1.content")
        );
    }

    #[test]
    fn without_an_address_the_containerd_root_is_the_one_on_disk() {
        let engine = containerd_store((1, 44), "null");
        assert_eq!(engine.containerd_address, "");
        let managed = engine.storage_dirs(|dir| dir == Path::new(MANAGED_OVERLAYFS));
        assert_eq!(managed.layers, Path::new(MANAGED_OVERLAYFS));
        let system = engine.storage_dirs(|dir| dir.starts_with(SYSTEM_CONTAINERD_ROOT));
        assert!(
            system.layers.starts_with(SYSTEM_CONTAINERD_ROOT),
            "{system:?}"
        );
        let neither = engine.storage_dirs(|_| false);
        assert_eq!(neither.layers, Path::new(DATA_ROOT));
        assert_eq!(neither.content, None);
    }

    #[test]
    fn a_running_container_s_rootfs_is_mounted_under_the_data_root() {
        let engine = containerd_store((1, 44), "null");
        assert_eq!(
            engine.container_rootfs("overlayfs", "66080a9a").unwrap(),
            Path::new(DATA_ROOT).join("rootfs/overlayfs/66080a9a")
        );
        assert_eq!(
            engine.container_rootfs("", "66080a9a").unwrap(),
            Path::new(DATA_ROOT).join("rootfs/overlayfs/66080a9a")
        );
        assert_eq!(
            engine.container_rootfs("native", "66080a9a").unwrap(),
            Path::new(DATA_ROOT).join("rootfs/native/66080a9a")
        );
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
