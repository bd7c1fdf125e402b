//! The CRI side of dockshim: the generated API (`gen`) and the handlers
//! that implement it on top of `docker`, `network` and `store`.
//!
//! Handlers translate and decide; they own no sockets. A handler that needs
//! background work (such as the image filesystem figures) starts its thread
//! on first use, never at construction, so every thread is started after
//! `main` has reserved SIGTERM and SIGINT for the signal thread.

pub mod container;
pub mod events;
pub mod exec;
pub mod gen;
pub mod image;
pub mod labels;
pub mod metrics;
pub mod naming;
pub mod runtime;
pub mod sandbox;
pub mod stats;
pub mod streaming;

pub use gen::v1;

use crate::docker::Engine;

/// The kubelet's name for dockerd's cgroup driver, which the kubelet's own
/// must match.
pub fn cgroup_driver(engine: &Engine) -> v1::CgroupDriver {
    if engine.systemd_cgroups {
        v1::CgroupDriver::Systemd
    } else {
        v1::CgroupDriver::Cgroupfs
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::docker::{ApiVersion, Info};

    #[test]
    fn the_cgroup_driver_and_apparmor_come_from_dockerd_s_info() {
        let cases = [
            (
                r#"{"CgroupDriver":"systemd","SecurityOptions":
                    ["name=apparmor","name=seccomp,profile=default"]}"#,
                v1::CgroupDriver::Systemd,
                true,
            ),
            (
                r#"{"CgroupDriver":"cgroupfs","SecurityOptions":["name=seccomp,profile=default"]}"#,
                v1::CgroupDriver::Cgroupfs,
                false,
            ),
            (
                r#"{"CgroupDriver":"cgroupfs","SecurityOptions":null}"#,
                v1::CgroupDriver::Cgroupfs,
                false,
            ),
            ("{}", v1::CgroupDriver::Cgroupfs, false),
        ];
        for (json, driver, apparmor) in cases {
            let info: Info = serde_json::from_str(json).unwrap();
            let engine = Engine::new(ApiVersion::new(1, 41), &info);
            assert_eq!(
                (cgroup_driver(&engine), engine.apparmor),
                (driver, apparmor),
                "{json}"
            );
        }
    }
}
