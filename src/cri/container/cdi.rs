//! Container Device Interface devices: the CDI names a container asks for
//! and the `DeviceRequests` entry that hands them to dockerd.
//!
//! The names come from two places, as the kubelet sends them:
//! `ContainerConfig.CDI_devices` (DRA and device plugins since the field
//! exists) and, from device plugins that predate it, container annotations
//! `cdi.k8s.io/<key>` whose value is a comma-separated list of names. Both
//! are merged in that order, without repeats. Every name must be fully
//! qualified, `vendor/class=name` by the CDI specification's character
//! rules; anything else is INVALID_ARGUMENT naming where it came from.
//!
//! dockerd resolves the names against the spec files in its
//! `CDISpecDirs` when the container starts; an engine that reports no such
//! directories has CDI turned off (or predates it) and the request is
//! FAILED_PRECONDITION naming the engine's version, since dockerd would
//! otherwise refuse the driver only at start, or not at all.
//!
//! Pure functions: no I/O.

use super::ContainerConfigError;
use crate::api::v1;
use crate::docker::{DeviceRequest, Engine};

/// The annotation prefix under which the kubelet passes CDI names.
pub const CDI_ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// The CDI devices `config` asks for as `DeviceRequests`: none, or one
/// request of the `cdi` driver naming them all.
pub fn device_requests(
    config: &v1::ContainerConfig,
    engine: &Engine,
) -> Result<Vec<DeviceRequest>, ContainerConfigError> {
    let names = device_names(config)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    if !engine.supports_cdi() {
        return Err(ContainerConfigError::engine_cannot(
            "CDI_devices",
            format!(
                "Docker {} has no Container Device Interface support turned on (its /info \
                 lists no CDISpecDirs); enable the \"cdi\" feature in daemon.json or use an \
                 engine that has it on",
                engine.version
            ),
        ));
    }
    Ok(vec![DeviceRequest::cdi(names)])
}

/// The checked CDI names of `config`: `CDI_devices` first, then those of
/// the `cdi.k8s.io/` annotations by key, each name once.
pub fn device_names(config: &v1::ContainerConfig) -> Result<Vec<String>, ContainerConfigError> {
    let mut names: Vec<String> = Vec::new();
    for (index, device) in config.cdi_devices.iter().enumerate() {
        check_qualified_name(&device.name).map_err(|reason| {
            ContainerConfigError::invalid(format!("CDI_devices[{index}].name"), reason)
        })?;
        if !names.contains(&device.name) {
            names.push(device.name.clone());
        }
    }
    let mut keys: Vec<&str> = config
        .annotations
        .keys()
        .map(String::as_str)
        .filter(|key| key.starts_with(CDI_ANNOTATION_PREFIX))
        .collect();
    keys.sort_unstable();
    for key in keys {
        for name in config.annotations[key].split(',') {
            check_qualified_name(name).map_err(|reason| {
                ContainerConfigError::invalid(format!("annotations[{key:?}]"), reason)
            })?;
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

/// Checks that `device` is a fully qualified CDI name,
/// `vendor/class=name`: the vendor a letter, then letters, digits, `_`,
/// `-` or `.`, ending in a letter or digit; the class likewise without
/// `.`; the name a letter or digit, then also `_`, `-`, `.` or `:`,
/// ending in a letter or digit.
fn check_qualified_name(device: &str) -> Result<(), String> {
    let unqualified =
        || format!("{device:?} is not a qualified CDI device name (vendor/class=name)");
    let (kind, name) = device.split_once('=').ok_or_else(unqualified)?;
    let (vendor, class) = kind.split_once('/').ok_or_else(unqualified)?;
    check_part(device, "vendor", vendor, is_letter, &['_', '-', '.'])?;
    check_part(device, "class", class, is_letter, &['_', '-'])?;
    check_part(
        device,
        "device name",
        name,
        |c| c.is_ascii_alphanumeric(),
        &['_', '-', '.', ':'],
    )
}

/// Checks one part of a qualified name: its first character by `first`,
/// inner ones alphanumeric or in `inner`, the last alphanumeric.
fn check_part(
    device: &str,
    what: &str,
    part: &str,
    first: fn(char) -> bool,
    inner: &[char],
) -> Result<(), String> {
    let invalid = |why: String| Err(format!("CDI device {device:?}: {what} {part:?} {why}"));
    let mut chars = part.chars();
    match chars.next() {
        None => return invalid("is empty".to_owned()),
        Some(c) if !first(c) => return invalid(format!("cannot start with {c:?}")),
        Some(_) => {}
    }
    if let Some(c) = chars
        .clone()
        .find(|c| !c.is_ascii_alphanumeric() && !inner.contains(c))
    {
        return invalid(format!("holds {c:?}"));
    }
    match chars.last() {
        Some(c) if !c.is_ascii_alphanumeric() => invalid(format!("cannot end with {c:?}")),
        _ => Ok(()),
    }
}

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::path::PathBuf;

    use super::*;
    use crate::docker::{ApiVersion, ImageStore};
    use crate::grpc::Code;

    fn engine(cdi_spec_dirs: &[&str]) -> Engine {
        Engine {
            version: "29.7.2".to_owned(),
            api_version: ApiVersion::new(1, 55),
            image_store: ImageStore::Snapshotter {
                snapshotter: "overlayfs".to_owned(),
            },
            root_dir: PathBuf::from("/var/lib/docker"),
            systemd_cgroups: false,
            apparmor: false,
            kernel_version: "6.1.0".to_owned(),
            runtimes: BTreeMap::new(),
            default_runtime: "runc".to_owned(),
            cdi_spec_dirs: cdi_spec_dirs.iter().map(PathBuf::from).collect(),
            containerd_address: String::new(),
        }
    }

    fn config(devices: &[&str], annotations: &[(&str, &str)]) -> v1::ContainerConfig {
        v1::ContainerConfig {
            cdi_devices: devices
                .iter()
                .map(|name| v1::CdiDevice {
                    name: (*name).to_owned(),
                })
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..v1::ContainerConfig::default()
        }
    }

    #[test]
    fn a_container_without_cdi_devices_asks_no_driver() {
        let requests = device_requests(&config(&[], &[("other", "x")]), &engine(&[])).unwrap();
        assert!(requests.is_empty());
    }

    #[test]
    fn cdi_devices_and_annotations_become_one_cdi_request() {
        let config = config(
            &["vendor.com/gpu=0", "example.com/net=eth1"],
            &[
                (
                    "cdi.k8s.io/vendor.com_b",
                    "vendor.com/gpu=1,vendor.com/gpu=0",
                ),
                ("cdi.k8s.io/vendor.com_a", "vendor.com/fpga=card:1"),
                ("io.kubernetes.container.hash", "abc"),
            ],
        );
        let requests = device_requests(&config, &engine(&["/etc/cdi", "/var/run/cdi"])).unwrap();
        assert_eq!(
            serde_json::Value::Array(requests.iter().map(DeviceRequest::to_json).collect()),
            serde_json::json!([{
                "Driver": "cdi",
                "DeviceIDs": [
                    "vendor.com/gpu=0",
                    "example.com/net=eth1",
                    "vendor.com/fpga=card:1",
                    "vendor.com/gpu=1"
                ]
            }])
        );
    }

    #[test]
    fn an_engine_without_cdi_is_a_failed_precondition_naming_its_version() {
        let err = device_requests(&config(&["vendor.com/gpu=0"], &[]), &engine(&[])).unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        let message = err.to_string();
        assert!(message.contains("Docker 29.7.2"), "{message}");
        assert!(message.starts_with("CDI_devices: "), "{message}");
        let annotated = config(&[], &[("cdi.k8s.io/p_1", "vendor.com/gpu=0")]);
        let err = device_requests(&annotated, &engine(&[])).unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
    }

    #[test]
    fn unqualified_names_are_invalid_arguments_naming_their_source() {
        for name in [
            "",
            "gpu0",
            "vendor.com/gpu",
            "vendor.com=gpu0",
            "/dev/gpu0=x",
            "vendor.com/=0",
            "vendor.com/gpu=",
            "1vendor/gpu=0",
            "vendor./gpu=0",
            "vendor.com/g.pu=0",
            "vendor.com/gpu-=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=0:",
            "vendor.com/gpu=0/1",
            "vendor com/gpu=0",
        ] {
            let err = device_names(&config(&[name], &[])).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
            assert!(
                err.to_string().starts_with("CDI_devices[0].name: "),
                "{err}"
            );
        }
        let err =
            device_names(&config(&[], &[("cdi.k8s.io/p_1", "vendor.com/gpu=0,,")])).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.to_string()
                .starts_with("annotations[\"cdi.k8s.io/p_1\"]: "),
            "{err}"
        );
    }

    #[test]
    fn qualified_names_follow_the_cdi_character_rules() {
        for name in [
            "nvidia.com/gpu=all",
            "nvidia.com/gpu=GPU-4d1f2b:0",
            "a/b=c",
            "vendor_x-1.io/class_a-b=0",
        ] {
            assert_eq!(device_names(&config(&[name], &[])).unwrap(), [name]);
        }
    }
}
