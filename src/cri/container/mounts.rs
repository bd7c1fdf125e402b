//! CRI mounts and devices → Docker `Binds` strings, `Mounts` entries and
//! `Devices`, and Docker's mount list back to CRI mounts for
//! ContainerStatus. Pure: the engine's facts come in as an [`Engine`], and
//! the one fact from the node, how the host mount under a path propagates,
//! is asked of [`HostMounts`], which the caller implements.
//!
//! A bind is a `Binds` string (`host:container[:options]`) wherever that
//! says what the CRI asks, because only `Binds` can relabel for SELinux
//! (`Z`), and because cri-dockerd writes them the same way, so containers
//! made by either read back alike. Such a bind cannot hold a `:` in either
//! path (INVALID_ARGUMENT). A relative host path would name a Docker
//! volume, so it is refused too. A host path that does not exist is
//! created by dockerd as an empty root-owned directory when the container
//! starts. Options: `ro`, `Z` for `selinux_relabel`, and the propagation
//! always spelled out (`rprivate`, `rslave`, `rshared`) so Docker's own
//! default (`rslave` under its data root) never decides. `rslave` needs
//! the host mount to be shared or a slave and `rshared` needs it shared;
//! anything less is FAILED_PRECONDITION naming the host path, before
//! Docker fails the start with a vaguer message.
//!
//! Read-only binds come in two kinds. Up to API 1.43 `ro` is read-only at
//! the top only, which is what the CRI means by `readonly`; from API 1.44
//! Docker makes `ro` recursively read-only wherever the kernel can, and no
//! `Binds` option says otherwise. There a read-only bind becomes a
//! `Mounts` entry of `Type: bind` with `ReadOnlyNonRecursive`, which keeps
//! submounts under the host path writable, and `CreateMountpoint`, which
//! creates a missing host path as `Binds` do. `Mounts` cannot relabel, so
//! a read-only bind that also asks for `selinux_relabel` stays a `ro,Z`
//! bind: the kubelet relabels its own volumes (secrets, config maps,
//! projected and empty-dir volumes), none of which has a submount, so
//! read-only all the way down is the same as read-only at the top there.
//!
//! `recursive_read_only` needs `readonly` and private propagation
//! (INVALID_ARGUMENT otherwise, as the CRI says) and becomes a `Mounts`
//! bind with `ReadOnlyForceRecursive`, so Docker fails the start rather
//! than quietly give less. It needs API 1.44 and a kernel with
//! `mount_setattr(2)`; an engine without them is FAILED_PRECONDITION
//! naming it (the kubelet asks only runtimes that advertise
//! `recursive_read_only_mounts`). With `selinux_relabel` it is
//! UNIMPLEMENTED: only `Binds` relabel, and they cannot insist.
//!
//! An image mount (`image`, with `image_sub_path`) is a `Mounts` entry of
//! `Type: image` (API 1.48) whose source is the reference or ID the
//! kubelet pulled, with `ImageOptions.Subpath`; it is read-only whatever
//! `readonly` says, as the CRI defines image mounts, has no host path,
//! propagates nothing and cannot be relabelled. An older engine is
//! FAILED_PRECONDITION naming it. ID-mapped mounts do not exist in Docker:
//! UNIMPLEMENTED naming the field.

use std::io;
use std::path::{Component, Path};

use super::ContainerConfigError;
use crate::api::v1;
use crate::docker::{BindOptions, DeviceMapping, Engine, ImageOptions, Mount, MountType};
use crate::index;

/// `Binds` option of a read-only mount.
const READ_ONLY: &str = "ro";
/// `Binds` option asking Docker to give the source the container's
/// private SELinux label.
const SELINUX_PRIVATE_LABEL: &str = "Z";
/// Docker's propagation names, for the three CRI propagations.
const PROPAGATION_PRIVATE: &str = "rprivate";
const PROPAGATION_SLAVE: &str = "rslave";
const PROPAGATION_SHARED: &str = "rshared";
/// `Type` of an image mount in the container inspect's `Mounts`.
const INSPECT_TYPE_IMAGE: &str = "image";
/// Device cgroup permissions when the CRI gives none: all of them, as the
/// Docker CLI defaults.
const DEFAULT_DEVICE_PERMISSIONS: &str = "rwm";

/// How the host mount holding a path propagates mount events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPropagation {
    Private,
    /// Receives events from a peer group but sends none.
    Slave,
    /// Sends events to a peer group (it may also be a slave).
    Shared,
}

/// The node's mount table, as far as mount propagation needs it.
pub trait HostMounts: std::fmt::Debug {
    /// The propagation of the mount `path` lives on.
    fn propagation(&self, path: &Path) -> io::Result<HostPropagation>;
}

/// The container's mounts in the two forms Docker takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerMounts {
    /// `HostConfig.Binds`.
    pub binds: Vec<String>,
    /// `HostConfig.Mounts`.
    pub mounts: Vec<Mount>,
}

/// One CRI mount as Docker takes it.
enum DockerMount {
    Bind(String),
    Mount(Mount),
}

/// The `Binds` and `Mounts` for `mounts` on `engine`.
pub fn docker_mounts(
    mounts: &[v1::Mount],
    engine: &Engine,
    host: &dyn HostMounts,
) -> Result<DockerMounts, ContainerConfigError> {
    let mut docker = DockerMounts::default();
    for (index, mount) in mounts.iter().enumerate() {
        match docker_mount(index, mount, engine, host)? {
            DockerMount::Bind(bind) => docker.binds.push(bind),
            DockerMount::Mount(mount) => docker.mounts.push(mount),
        }
    }
    Ok(docker)
}

/// The `Devices` entries for `devices`.
pub fn devices(devices: &[v1::Device]) -> Result<Vec<DeviceMapping>, ContainerConfigError> {
    devices
        .iter()
        .enumerate()
        .map(|(index, device)| {
            let field = |part: &str| format!("devices[{index}].{part}");
            absolute(&field("host_path"), &device.host_path)?;
            absolute(&field("container_path"), &device.container_path)?;
            let permissions = if device.permissions.is_empty() {
                DEFAULT_DEVICE_PERMISSIONS
            } else {
                device.permissions.as_str()
            };
            let mut seen = String::new();
            for c in permissions.chars() {
                if !DEFAULT_DEVICE_PERMISSIONS.contains(c) || seen.contains(c) {
                    return Err(ContainerConfigError::invalid(
                        field("permissions"),
                        format!("{permissions:?} is not a set of r, w and m"),
                    ));
                }
                seen.push(c);
            }
            Ok(DeviceMapping {
                path_on_host: device.host_path.clone(),
                path_in_container: device.container_path.clone(),
                cgroup_permissions: permissions.to_owned(),
            })
        })
        .collect()
}

/// The CRI view of the container's mounts as Docker reports them. An
/// image mount's source is a snapshot path of Docker's own, so it is
/// reported by the image it was made from instead.
pub fn cri_mounts(mounts: &[index::Mount]) -> Vec<v1::Mount> {
    mounts
        .iter()
        .map(|mount| {
            if mount.kind == INSPECT_TYPE_IMAGE {
                return v1::Mount {
                    container_path: mount.destination.clone(),
                    readonly: true,
                    image: Some(v1::ImageSpec {
                        image: mount.name.clone(),
                        ..v1::ImageSpec::default()
                    }),
                    ..v1::Mount::default()
                };
            }
            let propagation = match mount.propagation.as_str() {
                PROPAGATION_SHARED | "shared" => v1::MountPropagation::PropagationBidirectional,
                PROPAGATION_SLAVE | "slave" => v1::MountPropagation::PropagationHostToContainer,
                _ => v1::MountPropagation::PropagationPrivate,
            };
            v1::Mount {
                container_path: mount.destination.clone(),
                host_path: mount.source.clone(),
                readonly: mount.read_only,
                propagation: propagation as i32,
                ..v1::Mount::default()
            }
        })
        .collect()
}

fn docker_mount(
    index: usize,
    mount: &v1::Mount,
    engine: &Engine,
    host: &dyn HostMounts,
) -> Result<DockerMount, ContainerConfigError> {
    let field = |part: &str| format!("mounts[{index}].{part}");
    for (name, mappings) in [
        ("uid_mappings", &mount.uid_mappings),
        ("gid_mappings", &mount.gid_mappings),
    ] {
        if !mappings.is_empty() {
            return Err(ContainerConfigError::unsupported(
                field(name),
                "Docker has no ID-mapped mounts",
            ));
        }
    }
    if mount.image.is_some() || !mount.image_sub_path.is_empty() {
        return image_mount(&field, mount, engine).map(DockerMount::Mount);
    }
    absolute(&field("host_path"), &mount.host_path)?;
    absolute(&field("container_path"), &mount.container_path)?;
    let propagation = v1::MountPropagation::try_from(mount.propagation).map_err(|_| {
        ContainerConfigError::invalid(
            field("propagation"),
            format!("unknown propagation {}", mount.propagation),
        )
    })?;
    // Whether the mount is a `Mounts` bind, and which, is settled before
    // the host's mount table is read, so a malformed mount is refused as
    // such whatever the node looks like.
    let read_only_kind = if mount.recursive_read_only {
        check_recursive_read_only(&field, mount, propagation, engine)?;
        Some(BindOptions {
            read_only_force_recursive: true,
            ..BindOptions::default()
        })
    } else if mount.readonly && !mount.selinux_relabel && engine.has_read_only_mount_kinds() {
        Some(BindOptions {
            read_only_non_recursive: true,
            ..BindOptions::default()
        })
    } else {
        no_colon(&field("host_path"), &mount.host_path)?;
        no_colon(&field("container_path"), &mount.container_path)?;
        None
    };
    let propagation = docker_propagation(&mount.host_path, propagation, host)?;
    Ok(match read_only_kind {
        Some(options) => DockerMount::Mount(read_only_bind(mount, propagation, options)),
        None => DockerMount::Bind(bind(mount, propagation)),
    })
}

/// The `Binds` string of `mount`, whose paths hold no `:`.
fn bind(mount: &v1::Mount, propagation: &str) -> String {
    let mut options = Vec::new();
    if mount.readonly {
        options.push(READ_ONLY);
    }
    if mount.selinux_relabel {
        options.push(SELINUX_PRIVATE_LABEL);
    }
    options.push(propagation);
    format!(
        "{}:{}:{}",
        mount.host_path,
        mount.container_path,
        options.join(",")
    )
}

/// The `Mounts` bind of the read-only `mount`, read-only as `options`
/// say.
fn read_only_bind(mount: &v1::Mount, propagation: &str, options: BindOptions) -> Mount {
    Mount {
        kind: MountType::Bind,
        source: mount.host_path.clone(),
        target: mount.container_path.clone(),
        read_only: true,
        bind_options: Some(BindOptions {
            propagation: propagation.to_owned(),
            create_mountpoint: true,
            ..options
        }),
        image_options: None,
    }
}

/// Whether `mount` may be made recursively read-only here.
fn check_recursive_read_only(
    field: &dyn Fn(&str) -> String,
    mount: &v1::Mount,
    propagation: v1::MountPropagation,
    engine: &Engine,
) -> Result<(), ContainerConfigError> {
    if !mount.readonly {
        return Err(ContainerConfigError::invalid(
            field("recursive_read_only"),
            "a recursively read-only mount must be readonly",
        ));
    }
    if propagation != v1::MountPropagation::PropagationPrivate {
        return Err(ContainerConfigError::invalid(
            field("recursive_read_only"),
            format!(
                "a recursively read-only mount must have private propagation, not {}",
                propagation.as_str_name()
            ),
        ));
    }
    if mount.selinux_relabel {
        return Err(ContainerConfigError::unsupported(
            field("recursive_read_only"),
            "only Binds relabel for SELinux, and they cannot insist on recursive read-only",
        ));
    }
    if !engine.supports_recursive_read_only() {
        return Err(ContainerConfigError::engine_cannot(
            field("recursive_read_only"),
            format!(
                "Docker {} at API {} on Linux {} cannot make a mount recursively read-only: \
                 that needs API 1.44 (Docker 25) and Linux 5.12",
                engine.version, engine.api_version, engine.kernel_version
            ),
        ));
    }
    Ok(())
}

/// The `Mounts` entry of the image mount `mount`.
fn image_mount(
    field: &dyn Fn(&str) -> String,
    mount: &v1::Mount,
    engine: &Engine,
) -> Result<Mount, ContainerConfigError> {
    let image = mount.image.as_ref().map_or("", |spec| spec.image.as_str());
    if image.is_empty() {
        return Err(ContainerConfigError::invalid(
            field("image.image"),
            "an image mount needs the image's reference or ID",
        ));
    }
    if image.contains('\0') {
        return Err(ContainerConfigError::invalid(
            field("image.image"),
            format!("{image:?} holds a NUL byte"),
        ));
    }
    if !mount.host_path.is_empty() {
        return Err(ContainerConfigError::invalid(
            field("host_path"),
            "an image mount has no host path",
        ));
    }
    absolute(&field("container_path"), &mount.container_path)?;
    image_sub_path(&field("image_sub_path"), &mount.image_sub_path)?;
    if mount.propagation != v1::MountPropagation::PropagationPrivate as i32 {
        return Err(ContainerConfigError::invalid(
            field("propagation"),
            "an image mount propagates nothing: it must be private",
        ));
    }
    if mount.selinux_relabel {
        return Err(ContainerConfigError::unsupported(
            field("selinux_relabel"),
            "Docker cannot relabel a mounted image",
        ));
    }
    if !engine.supports_image_mounts() {
        return Err(ContainerConfigError::engine_cannot(
            field("image"),
            format!(
                "Docker {} at API {} cannot mount an image: that needs API 1.48 (Docker 28)",
                engine.version, engine.api_version
            ),
        ));
    }
    Ok(Mount {
        kind: MountType::Image,
        source: image.to_owned(),
        target: mount.container_path.clone(),
        read_only: true,
        bind_options: None,
        image_options: (!mount.image_sub_path.is_empty()).then(|| ImageOptions {
            subpath: mount.image_sub_path.clone(),
        }),
    })
}

/// A path inside the image: relative, and never above its root.
fn image_sub_path(field: &str, path: &str) -> Result<(), ContainerConfigError> {
    let escapes = Path::new(path)
        .components()
        .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
    if escapes || path.contains('\0') {
        return Err(ContainerConfigError::invalid(
            field,
            format!("{path:?} is not a relative path inside the image"),
        ));
    }
    Ok(())
}

/// Docker's name for `propagation`, once the host mount under `path` is
/// known to allow it.
fn docker_propagation(
    path: &str,
    propagation: v1::MountPropagation,
    host: &dyn HostMounts,
) -> Result<&'static str, ContainerConfigError> {
    match propagation {
        v1::MountPropagation::PropagationPrivate => Ok(PROPAGATION_PRIVATE),
        v1::MountPropagation::PropagationHostToContainer => {
            require_propagation(path, host, PROPAGATION_SLAVE, |p| {
                p != HostPropagation::Private
            })?;
            Ok(PROPAGATION_SLAVE)
        }
        v1::MountPropagation::PropagationBidirectional => {
            require_propagation(path, host, PROPAGATION_SHARED, |p| {
                p == HostPropagation::Shared
            })?;
            Ok(PROPAGATION_SHARED)
        }
    }
}

fn require_propagation(
    path: &str,
    host: &dyn HostMounts,
    wanted: &str,
    enough: fn(HostPropagation) -> bool,
) -> Result<(), ContainerConfigError> {
    let refuse = |reason: String, source| ContainerConfigError::HostMount {
        path: path.to_owned(),
        reason,
        source,
    };
    let found = host.propagation(Path::new(path)).map_err(|err| {
        refuse(
            format!("cannot tell how its mount propagates, needed for {wanted}"),
            Some(err),
        )
    })?;
    if enough(found) {
        return Ok(());
    }
    let need = if wanted == PROPAGATION_SHARED {
        "shared"
    } else {
        "shared or a slave"
    };
    Err(refuse(
        format!(
            "{wanted} propagation needs its host mount to be {need}, but it is {} \
             (see `mount --make-rshared`)",
            match found {
                HostPropagation::Private => "private",
                HostPropagation::Slave => "a slave",
                HostPropagation::Shared => "shared",
            }
        ),
        None,
    ))
}

/// A path that can stand in a `Binds` string.
fn no_colon(field: &str, path: &str) -> Result<(), ContainerConfigError> {
    if path.contains(':') {
        return Err(ContainerConfigError::invalid(
            field,
            format!("{path:?} holds ':', which Docker's bind syntax cannot carry"),
        ));
    }
    Ok(())
}

fn absolute(field: &str, path: &str) -> Result<(), ContainerConfigError> {
    if !path.starts_with('/') {
        return Err(ContainerConfigError::invalid(
            field,
            format!("{path:?} is not an absolute path"),
        ));
    }
    if path.contains('\0') {
        return Err(ContainerConfigError::invalid(
            field,
            format!("{path:?} holds a NUL byte"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use serde_json::{json, Value};

    use super::*;
    use crate::docker::{ApiVersion, Info};
    use crate::grpc::Code;

    /// A mount table held in memory; paths it does not list cannot be
    /// read.
    #[derive(Debug, Default)]
    pub(crate) struct FakeMounts(pub(crate) HashMap<PathBuf, HostPropagation>);

    impl HostMounts for FakeMounts {
        fn propagation(&self, path: &Path) -> io::Result<HostPropagation> {
            self.0
                .get(path)
                .copied()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    /// An engine as dockshim sees it at `api`, from the `/info` fields
    /// that matter for mounts.
    fn engine(version: &str, api: ApiVersion, kernel: &str) -> Engine {
        let info: Info = crate::codec::json::FromJson::from_json(&json!({
            "ServerVersion": version,
            "KernelVersion": kernel,
            "Driver": "overlay2",
        }))
        .unwrap();
        Engine::new(api, &info)
    }

    /// Debian 12's dockerd.
    pub(crate) fn docker_20_10() -> Engine {
        engine("20.10.24+dfsg1", ApiVersion::new(1, 41), "6.1.0-18-amd64")
    }

    /// Docker 27.5.1: read-only kinds, no image mounts.
    fn docker_27() -> Engine {
        engine("27.5.1", ApiVersion::new(1, 47), "6.1.0-18-amd64")
    }

    /// Docker 29.7.2: every mount kind.
    pub(crate) fn docker_29() -> Engine {
        engine("29.7.2", ApiVersion::new(1, 55), "6.18.44")
    }

    /// Docker 27.5.1 on a kernel without `mount_setattr(2)`.
    fn docker_27_on_linux_5_10() -> Engine {
        engine("27.5.1", ApiVersion::new(1, 47), "5.10.0-28-amd64")
    }

    fn mount(host: &str, propagation: v1::MountPropagation) -> v1::Mount {
        v1::Mount {
            container_path: "/data".to_owned(),
            host_path: host.to_owned(),
            propagation: propagation as i32,
            ..v1::Mount::default()
        }
    }

    fn read_only(host: &str) -> v1::Mount {
        v1::Mount {
            readonly: true,
            ..mount(host, v1::MountPropagation::PropagationPrivate)
        }
    }

    fn image(reference: &str) -> v1::Mount {
        v1::Mount {
            container_path: "/img".to_owned(),
            readonly: true,
            image: Some(v1::ImageSpec {
                image: reference.to_owned(),
                ..v1::ImageSpec::default()
            }),
            ..v1::Mount::default()
        }
    }

    fn table() -> FakeMounts {
        FakeMounts(HashMap::from([
            (PathBuf::from("/private"), HostPropagation::Private),
            (PathBuf::from("/slave"), HostPropagation::Slave),
            (PathBuf::from("/shared"), HostPropagation::Shared),
        ]))
    }

    fn binds(mounts: &[v1::Mount], engine: &Engine) -> Result<Vec<String>, ContainerConfigError> {
        let docker = docker_mounts(mounts, engine, &table())?;
        assert!(docker.mounts.is_empty(), "{docker:?}");
        Ok(docker.binds)
    }

    /// The `Mounts` entries of `mounts` on `engine` as JSON, which must
    /// need no `Binds`.
    fn mounts_json(mounts: &[v1::Mount], engine: &Engine) -> Value {
        let docker = docker_mounts(mounts, engine, &table()).unwrap();
        assert!(docker.binds.is_empty(), "{docker:?}");
        Value::Array(docker.mounts.iter().map(Mount::to_json).collect())
    }

    fn refusal(mount: v1::Mount, engine: &Engine) -> (Code, String) {
        let err = docker_mounts(&[mount], engine, &table()).unwrap_err();
        (err.code(), err.to_string())
    }

    #[test]
    fn propagation_is_given_only_where_the_host_mount_allows_it() {
        use v1::MountPropagation::{
            PropagationBidirectional as Bidirectional,
            PropagationHostToContainer as HostToContainer, PropagationPrivate as Private,
        };
        let cases = [
            ("/private", Private, Ok("/private:/data:rprivate")),
            ("/slave", Private, Ok("/slave:/data:rprivate")),
            ("/shared", Private, Ok("/shared:/data:rprivate")),
            ("/unknown", Private, Ok("/unknown:/data:rprivate")),
            ("/private", HostToContainer, Err(Code::FailedPrecondition)),
            ("/slave", HostToContainer, Ok("/slave:/data:rslave")),
            ("/shared", HostToContainer, Ok("/shared:/data:rslave")),
            ("/unknown", HostToContainer, Err(Code::FailedPrecondition)),
            ("/private", Bidirectional, Err(Code::FailedPrecondition)),
            ("/slave", Bidirectional, Err(Code::FailedPrecondition)),
            ("/shared", Bidirectional, Ok("/shared:/data:rshared")),
            ("/unknown", Bidirectional, Err(Code::FailedPrecondition)),
        ];
        for engine in [docker_20_10(), docker_29()] {
            for (path, propagation, expected) in cases {
                let result = binds(&[mount(path, propagation)], &engine).map_err(|err| err.code());
                let result = result.as_ref().map(|b| b[0].as_str()).map_err(|c| *c);
                assert_eq!(result, expected, "{path} {propagation:?}");
            }
        }
        let err = binds(&[mount("/slave", Bidirectional)], &docker_20_10()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host path \"/slave\": rshared propagation needs its host mount to be shared, \
             but it is a slave (see `mount --make-rshared`)"
        );
    }

    #[test]
    fn read_only_and_selinux_relabel_become_bind_options_on_docker_20_10() {
        let mounts = [
            read_only("/a"),
            v1::Mount {
                readonly: true,
                selinux_relabel: true,
                ..mount("/shared", v1::MountPropagation::PropagationBidirectional)
            },
            v1::Mount {
                selinux_relabel: true,
                ..mount("/c", v1::MountPropagation::PropagationPrivate)
            },
        ];
        assert_eq!(
            binds(&mounts, &docker_20_10()).unwrap(),
            [
                "/a:/data:ro,rprivate",
                "/shared:/data:ro,Z,rshared",
                "/c:/data:Z,rprivate"
            ]
        );
    }

    #[test]
    fn a_read_only_mount_stays_non_recursive_from_api_1_44() {
        for engine in [docker_27(), docker_29(), docker_27_on_linux_5_10()] {
            let mounts = [
                read_only("/a:b"),
                v1::Mount {
                    readonly: true,
                    ..mount("/slave", v1::MountPropagation::PropagationHostToContainer)
                },
            ];
            assert_eq!(
                mounts_json(&mounts, &engine),
                json!([
                    {
                        "Type": "bind",
                        "Source": "/a:b",
                        "Target": "/data",
                        "ReadOnly": true,
                        "BindOptions": {
                            "Propagation": "rprivate",
                            "CreateMountpoint": true,
                            "ReadOnlyNonRecursive": true
                        }
                    },
                    {
                        "Type": "bind",
                        "Source": "/slave",
                        "Target": "/data",
                        "ReadOnly": true,
                        "BindOptions": {
                            "Propagation": "rslave",
                            "CreateMountpoint": true,
                            "ReadOnlyNonRecursive": true
                        }
                    }
                ]),
                "{}",
                engine.version
            );
        }
    }

    #[test]
    fn writable_and_relabelled_mounts_stay_binds_from_api_1_44() {
        let mounts = [
            mount("/a", v1::MountPropagation::PropagationPrivate),
            v1::Mount {
                selinux_relabel: true,
                ..read_only("/b")
            },
        ];
        assert_eq!(
            binds(&mounts, &docker_29()).unwrap(),
            ["/a:/data:rprivate", "/b:/data:ro,Z,rprivate"]
        );
        let colon = mount("/a:b", v1::MountPropagation::PropagationPrivate);
        assert_eq!(refusal(colon, &docker_29()).0, Code::InvalidArgument);
        let colon_on_a_private_mount = v1::Mount {
            container_path: "/a:b".to_owned(),
            ..mount("/private", v1::MountPropagation::PropagationHostToContainer)
        };
        assert_eq!(
            refusal(colon_on_a_private_mount, &docker_29()).0,
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_recursively_read_only_mount_insists_where_the_engine_can() {
        let rro = v1::Mount {
            recursive_read_only: true,
            ..read_only("/a")
        };
        for engine in [docker_27(), docker_29()] {
            assert_eq!(
                mounts_json(std::slice::from_ref(&rro), &engine),
                json!([{
                    "Type": "bind",
                    "Source": "/a",
                    "Target": "/data",
                    "ReadOnly": true,
                    "BindOptions": {
                        "Propagation": "rprivate",
                        "CreateMountpoint": true,
                        "ReadOnlyForceRecursive": true
                    }
                }])
            );
        }
        assert_eq!(
            refusal(rro.clone(), &docker_20_10()),
            (
                Code::FailedPrecondition,
                "mounts[0].recursive_read_only: Docker 20.10.24+dfsg1 at API 1.41 on Linux \
                 6.1.0-18-amd64 cannot make a mount recursively read-only: that needs API 1.44 \
                 (Docker 25) and Linux 5.12"
                    .to_owned()
            )
        );
        let (code, message) = refusal(rro, &docker_27_on_linux_5_10());
        assert_eq!(code, Code::FailedPrecondition);
        assert!(message.contains("Linux 5.10.0-28-amd64"), "{message}");
    }

    #[test]
    fn a_recursively_read_only_mount_must_be_read_only_private_and_unlabelled() {
        type Edit = fn(&mut v1::Mount);
        let cases: [(Edit, Code, &str); 4] = [
            (
                |m| m.readonly = false,
                Code::InvalidArgument,
                "mounts[0].recursive_read_only: a recursively read-only mount must be readonly",
            ),
            (
                |m| {
                    m.propagation = v1::MountPropagation::PropagationHostToContainer as i32;
                    m.host_path = "/slave".to_owned();
                },
                Code::InvalidArgument,
                "mounts[0].recursive_read_only: a recursively read-only mount must have \
                 private propagation, not PROPAGATION_HOST_TO_CONTAINER",
            ),
            (
                |m| m.propagation = v1::MountPropagation::PropagationBidirectional as i32,
                Code::InvalidArgument,
                "mounts[0].recursive_read_only: a recursively read-only mount must have \
                 private propagation, not PROPAGATION_BIDIRECTIONAL",
            ),
            (
                |m| m.selinux_relabel = true,
                Code::Unimplemented,
                "mounts[0].recursive_read_only: not supported with Docker",
            ),
        ];
        for engine in [docker_20_10(), docker_27(), docker_29()] {
            for (edit, code, message) in cases {
                let mut rro = v1::Mount {
                    recursive_read_only: true,
                    ..read_only("/a")
                };
                edit(&mut rro);
                let (got_code, got) = refusal(rro, &engine);
                assert_eq!(got_code, code, "{got}");
                assert!(got.starts_with(message), "{got}");
            }
        }
    }

    #[test]
    fn an_image_mount_is_a_read_only_image_entry_where_the_engine_has_them() {
        let mounts = [
            image("127.0.0.1:5000/dockshim-test/busybox:latest"),
            v1::Mount {
                readonly: false,
                image_sub_path: "etc/ssl".to_owned(),
                ..image("sha256:8970f662e852")
            },
        ];
        assert_eq!(
            mounts_json(&mounts, &docker_29()),
            json!([
                {
                    "Type": "image",
                    "Source": "127.0.0.1:5000/dockshim-test/busybox:latest",
                    "Target": "/img",
                    "ReadOnly": true
                },
                {
                    "Type": "image",
                    "Source": "sha256:8970f662e852",
                    "Target": "/img",
                    "ReadOnly": true,
                    "ImageOptions": {"Subpath": "etc/ssl"}
                }
            ])
        );
    }

    #[test]
    fn an_image_mount_on_an_engine_without_them_names_the_engine() {
        assert_eq!(
            refusal(image("busybox"), &docker_20_10()),
            (
                Code::FailedPrecondition,
                "mounts[0].image: Docker 20.10.24+dfsg1 at API 1.41 cannot mount an image: \
                 that needs API 1.48 (Docker 28)"
                    .to_owned()
            )
        );
        assert_eq!(
            refusal(image("busybox"), &docker_27()),
            (
                Code::FailedPrecondition,
                "mounts[0].image: Docker 27.5.1 at API 1.47 cannot mount an image: \
                 that needs API 1.48 (Docker 28)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn malformed_image_mounts_are_refused_on_every_engine() {
        type Edit = fn(&mut v1::Mount);
        let cases: [(Edit, Code, &str); 8] = [
            (
                |m| m.image = Some(v1::ImageSpec::default()),
                Code::InvalidArgument,
                "mounts[0].image.image",
            ),
            (
                |m| {
                    m.image = None;
                    m.image_sub_path = "etc".to_owned();
                },
                Code::InvalidArgument,
                "mounts[0].image.image",
            ),
            (
                |m| m.host_path = "/a".to_owned(),
                Code::InvalidArgument,
                "mounts[0].host_path: an image mount has no host path",
            ),
            (
                |m| m.container_path = "img".to_owned(),
                Code::InvalidArgument,
                "mounts[0].container_path",
            ),
            (
                |m| m.image_sub_path = "/etc".to_owned(),
                Code::InvalidArgument,
                "mounts[0].image_sub_path",
            ),
            (
                |m| m.image_sub_path = "etc/../..".to_owned(),
                Code::InvalidArgument,
                "mounts[0].image_sub_path",
            ),
            (
                |m| m.propagation = v1::MountPropagation::PropagationHostToContainer as i32,
                Code::InvalidArgument,
                "mounts[0].propagation",
            ),
            (
                |m| m.selinux_relabel = true,
                Code::Unimplemented,
                "mounts[0].selinux_relabel",
            ),
        ];
        for engine in [docker_20_10(), docker_29()] {
            for (edit, code, message) in cases {
                let mut mount = image("busybox");
                edit(&mut mount);
                let (got_code, got) = refusal(mount, &engine);
                assert_eq!(got_code, code, "{got}");
                assert!(got.starts_with(message), "{got}");
            }
        }
    }

    #[test]
    fn mounts_docker_cannot_express_are_refused_naming_the_mount() {
        type Edit = fn(&mut v1::Mount);
        let cases: [(Edit, Code, &str); 6] = [
            (
                |m| m.host_path = "data".to_owned(),
                Code::InvalidArgument,
                "mounts[1].host_path: \"data\" is not an absolute path",
            ),
            (
                |m| m.container_path = "/a:b".to_owned(),
                Code::InvalidArgument,
                "mounts[1].container_path: \"/a:b\" holds ':'",
            ),
            (
                |m| m.host_path = "/a\0".to_owned(),
                Code::InvalidArgument,
                "mounts[1].host_path",
            ),
            (
                |m| m.propagation = 7,
                Code::InvalidArgument,
                "mounts[1].propagation: unknown propagation 7",
            ),
            (
                |m| {
                    m.uid_mappings = vec![v1::IdMapping {
                        host_id: 1000,
                        container_id: 0,
                        length: 1,
                    }]
                },
                Code::Unimplemented,
                "mounts[1].uid_mappings: not supported with Docker: Docker has no ID-mapped mounts",
            ),
            (
                |m| {
                    m.gid_mappings = vec![v1::IdMapping {
                        host_id: 1000,
                        container_id: 0,
                        length: 1,
                    }]
                },
                Code::Unimplemented,
                "mounts[1].gid_mappings: not supported with Docker: Docker has no ID-mapped mounts",
            ),
        ];
        for engine in [docker_20_10(), docker_27(), docker_29()] {
            for (edit, code, message) in cases {
                let mut second = mount("/b", v1::MountPropagation::PropagationPrivate);
                edit(&mut second);
                let mounts = [
                    mount("/a", v1::MountPropagation::PropagationPrivate),
                    second,
                ];
                let err = docker_mounts(&mounts, &engine, &table()).unwrap_err();
                assert_eq!(err.code(), code, "{err}");
                assert!(err.to_string().starts_with(message), "{err}");
            }
        }
    }

    #[test]
    fn devices_keep_their_paths_and_permissions() {
        let given = [
            v1::Device {
                container_path: "/dev/fuse".to_owned(),
                host_path: "/dev/fuse".to_owned(),
                permissions: "rw".to_owned(),
            },
            v1::Device {
                container_path: "/dev/gpu0".to_owned(),
                host_path: "/dev/nvidia0".to_owned(),
                permissions: String::new(),
            },
        ];
        assert_eq!(
            devices(&given).unwrap(),
            [
                DeviceMapping {
                    path_on_host: "/dev/fuse".to_owned(),
                    path_in_container: "/dev/fuse".to_owned(),
                    cgroup_permissions: "rw".to_owned(),
                },
                DeviceMapping {
                    path_on_host: "/dev/nvidia0".to_owned(),
                    path_in_container: "/dev/gpu0".to_owned(),
                    cgroup_permissions: "rwm".to_owned(),
                },
            ]
        );
        for permissions in ["rx", "rr"] {
            let bad = v1::Device {
                permissions: permissions.to_owned(),
                ..given[0].clone()
            };
            let err = devices(&[bad]).unwrap_err();
            assert!(
                err.to_string().starts_with("devices[0].permissions"),
                "{err}"
            );
        }
        let relative = v1::Device {
            host_path: "dev/fuse".to_owned(),
            ..given[0].clone()
        };
        assert!(devices(&[relative]).is_err());
    }

    #[test]
    fn status_mounts_report_propagation_and_read_only() {
        let docker = [
            index::Mount {
                kind: "bind".to_owned(),
                source: "/var/lib/kubelet/pods/p/etc-hosts".to_owned(),
                destination: "/etc/hosts".to_owned(),
                read_only: false,
                propagation: "rprivate".to_owned(),
                ..index::Mount::default()
            },
            index::Mount {
                kind: "bind".to_owned(),
                source: "/mnt".to_owned(),
                destination: "/host".to_owned(),
                read_only: true,
                propagation: "rslave".to_owned(),
                ..index::Mount::default()
            },
            index::Mount {
                kind: "bind".to_owned(),
                source: "/shared".to_owned(),
                destination: "/s".to_owned(),
                read_only: false,
                propagation: "rshared".to_owned(),
                ..index::Mount::default()
            },
        ];
        let cri = cri_mounts(&docker);
        let seen: Vec<_> = cri
            .iter()
            .map(|m| {
                (
                    m.host_path.as_str(),
                    m.container_path.as_str(),
                    m.readonly,
                    m.propagation,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "/var/lib/kubelet/pods/p/etc-hosts",
                    "/etc/hosts",
                    false,
                    v1::MountPropagation::PropagationPrivate as i32
                ),
                (
                    "/mnt",
                    "/host",
                    true,
                    v1::MountPropagation::PropagationHostToContainer as i32
                ),
                (
                    "/shared",
                    "/s",
                    false,
                    v1::MountPropagation::PropagationBidirectional as i32
                ),
            ]
        );
    }

    #[test]
    fn an_image_mount_reads_back_as_its_image_not_a_snapshot_path() {
        let docker = [index::Mount {
            kind: "image".to_owned(),
            name: "127.0.0.1:5000/dockshim-test/busybox:latest".to_owned(),
            source: "/var/lib/docker/rootfs/overlayfs/fe18407a41bc".to_owned(),
            destination: "/img".to_owned(),
            read_only: true,
            propagation: "rprivate".to_owned(),
        }];
        assert_eq!(
            cri_mounts(&docker),
            [v1::Mount {
                container_path: "/img".to_owned(),
                readonly: true,
                image: Some(v1::ImageSpec {
                    image: "127.0.0.1:5000/dockshim-test/busybox:latest".to_owned(),
                    ..v1::ImageSpec::default()
                }),
                ..v1::Mount::default()
            }]
        );
    }
}
