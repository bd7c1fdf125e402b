//! CRI mounts and devices → Docker `Binds` strings and `Devices`, and
//! Docker's mount list back to CRI mounts for ContainerStatus. Pure: the
//! one fact from the node, how the host mount under a path propagates, is
//! asked of [`HostMounts`], which the caller implements.
//!
//! Mounts are `Binds` (`host:container[:options]`) rather than the
//! `Mounts` API because only `Binds` can relabel for SELinux (`Z`), and
//! because cri-dockerd writes them the same way, so containers made by
//! either read back alike. The price is that `Binds` cannot hold a `:` in
//! either path; such a mount is INVALID_ARGUMENT. A relative host path
//! would name a Docker volume, so it is refused too. A host path that does
//! not exist is created by dockerd as an empty root-owned directory when
//! the container starts, as `Binds` always do. Options: `ro`, `Z` for
//! `selinux_relabel`, and the propagation always spelled out (`rprivate`,
//! `rslave`, `rshared`) so Docker's own default (`rslave` under its data
//! root) never decides. `rslave` needs the host mount to be shared or a
//! slave and `rshared` needs it shared; anything less is
//! FAILED_PRECONDITION naming the host path, before Docker fails the start
//! with a vaguer message. Recursive read-only, ID-mapped and image mounts
//! are beyond Docker 20.10: UNIMPLEMENTED naming the mount.

use std::io;
use std::path::Path;

use super::ContainerConfigError;
use crate::cri::v1;
use crate::docker::DeviceMapping;
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

/// The `Binds` strings for `mounts`.
pub fn binds(
    mounts: &[v1::Mount],
    host: &dyn HostMounts,
) -> Result<Vec<String>, ContainerConfigError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| bind(index, mount, host))
        .collect()
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

/// The CRI view of the container's mounts as Docker reports them.
pub fn cri_mounts(mounts: &[index::Mount]) -> Vec<v1::Mount> {
    mounts
        .iter()
        .map(|mount| {
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

fn bind(
    index: usize,
    mount: &v1::Mount,
    host: &dyn HostMounts,
) -> Result<String, ContainerConfigError> {
    let field = |part: &str| format!("mounts[{index}].{part}");
    if mount.image.is_some() || !mount.image_sub_path.is_empty() {
        return Err(ContainerConfigError::unsupported(
            field("image"),
            "Docker 20.10 cannot mount an image as a volume",
        ));
    }
    if !mount.uid_mappings.is_empty() || !mount.gid_mappings.is_empty() {
        return Err(ContainerConfigError::unsupported(
            field("uid_mappings"),
            "Docker 20.10 has no ID-mapped mounts",
        ));
    }
    if mount.recursive_read_only {
        return Err(ContainerConfigError::unsupported(
            field("recursive_read_only"),
            "recursive read-only mounts need Docker API 1.44",
        ));
    }
    bind_path(&field("host_path"), &mount.host_path)?;
    bind_path(&field("container_path"), &mount.container_path)?;
    let propagation = v1::MountPropagation::try_from(mount.propagation).map_err(|_| {
        ContainerConfigError::invalid(
            field("propagation"),
            format!("unknown propagation {}", mount.propagation),
        )
    })?;
    let docker_propagation = match propagation {
        v1::MountPropagation::PropagationPrivate => PROPAGATION_PRIVATE,
        v1::MountPropagation::PropagationHostToContainer => {
            require_propagation(&mount.host_path, host, PROPAGATION_SLAVE, |p| {
                p != HostPropagation::Private
            })?;
            PROPAGATION_SLAVE
        }
        v1::MountPropagation::PropagationBidirectional => {
            require_propagation(&mount.host_path, host, PROPAGATION_SHARED, |p| {
                p == HostPropagation::Shared
            })?;
            PROPAGATION_SHARED
        }
    };
    let mut options = Vec::new();
    if mount.readonly {
        options.push(READ_ONLY);
    }
    if mount.selinux_relabel {
        options.push(SELINUX_PRIVATE_LABEL);
    }
    options.push(docker_propagation);
    Ok(format!(
        "{}:{}:{}",
        mount.host_path,
        mount.container_path,
        options.join(",")
    ))
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
fn bind_path(field: &str, path: &str) -> Result<(), ContainerConfigError> {
    absolute(field, path)?;
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

    use super::*;
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

    fn mount(host: &str, propagation: v1::MountPropagation) -> v1::Mount {
        v1::Mount {
            container_path: "/data".to_owned(),
            host_path: host.to_owned(),
            propagation: propagation as i32,
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
        let host = table();
        for (path, propagation, expected) in cases {
            let result = binds(&[mount(path, propagation)], &host).map_err(|err| err.code());
            let result = result.as_ref().map(|b| b[0].as_str()).map_err(|c| *c);
            assert_eq!(result, expected, "{path} {propagation:?}");
        }
        let err = binds(&[mount("/slave", Bidirectional)], &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host path \"/slave\": rshared propagation needs its host mount to be shared, \
             but it is a slave (see `mount --make-rshared`)"
        );
    }

    #[test]
    fn read_only_and_selinux_relabel_become_bind_options() {
        let mounts = [
            v1::Mount {
                readonly: true,
                ..mount("/a", v1::MountPropagation::PropagationPrivate)
            },
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
            binds(&mounts, &table()).unwrap(),
            [
                "/a:/data:ro,rprivate",
                "/shared:/data:ro,Z,rshared",
                "/c:/data:Z,rprivate"
            ]
        );
    }

    #[test]
    fn mounts_docker_cannot_express_are_refused_naming_the_mount() {
        type Edit = fn(&mut v1::Mount);
        let cases: [(Edit, Code, &str); 8] = [
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
                |m| m.recursive_read_only = true,
                Code::Unimplemented,
                "mounts[1].recursive_read_only",
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
                "mounts[1].uid_mappings",
            ),
            (
                |m| {
                    m.image = Some(v1::ImageSpec {
                        image: "busybox".to_owned(),
                        ..v1::ImageSpec::default()
                    })
                },
                Code::Unimplemented,
                "mounts[1].image",
            ),
            (
                |m| m.image_sub_path = "etc".to_owned(),
                Code::Unimplemented,
                "mounts[1].image",
            ),
        ];
        for (edit, code, message) in cases {
            let mut second = mount("/b", v1::MountPropagation::PropagationPrivate);
            edit(&mut second);
            let mounts = [
                mount("/a", v1::MountPropagation::PropagationPrivate),
                second,
            ];
            let err = binds(&mounts, &table()).unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().starts_with(message), "{err}");
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
            },
            index::Mount {
                kind: "bind".to_owned(),
                source: "/mnt".to_owned(),
                destination: "/host".to_owned(),
                read_only: true,
                propagation: "rslave".to_owned(),
            },
            index::Mount {
                kind: "bind".to_owned(),
                source: "/shared".to_owned(),
                destination: "/s".to_owned(),
                read_only: false,
                propagation: "rshared".to_owned(),
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
}
