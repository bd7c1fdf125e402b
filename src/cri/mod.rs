//! The CRI handlers: they implement the generated API of [`crate::api`]
//! on top of `docker`, `network` and `store`.
//!
//! Handlers translate and decide; they own no sockets. A handler that needs
//! background work (such as the image filesystem figures) starts its thread
//! on first use, never at construction, so every thread is started after
//! `main` has reserved SIGTERM and SIGINT for the signal thread.
//!
//! Errors: only an error that crosses the CRI boundary becomes a gRPC
//! status, and the modules below speak none; what their failures mean to
//! the kubelet is decided here (`error`, or the handler that meets them).
//! Each folder keeps its error types in its own `error.rs`.

pub mod answers;
pub mod container;
pub mod error;
pub mod events;
pub mod exec;
pub mod image;
pub mod labels;
pub mod metrics;
pub mod naming;
pub mod runtime;
pub mod sandbox;
pub mod stats;
pub mod streaming;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testing;

use crate::api::v1;
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

/// The calls that run in the server's quick lane, on workers that slow
/// calls (ExecSync, PullImage, Create/Start/Stop, ...) cannot occupy: the
/// ones the kubelet polls to decide the node is healthy and to relist pods
/// (Status, Version, RuntimeConfig, the list and status calls, the stats
/// and metrics calls). Each answers from the state index, the kernel or a
/// single short Docker request, and none waits on a container, a registry
/// or a stream.
pub const QUICK_METHODS: &[&str] = &[
    "/runtime.v1.ImageService/ImageFsInfo",
    "/runtime.v1.ImageService/ImageStatus",
    "/runtime.v1.ImageService/ListImages",
    "/runtime.v1.RuntimeService/ContainerStats",
    "/runtime.v1.RuntimeService/ContainerStatus",
    "/runtime.v1.RuntimeService/ListContainerStats",
    "/runtime.v1.RuntimeService/ListContainers",
    "/runtime.v1.RuntimeService/ListMetricDescriptors",
    "/runtime.v1.RuntimeService/ListPodSandbox",
    "/runtime.v1.RuntimeService/ListPodSandboxMetrics",
    "/runtime.v1.RuntimeService/ListPodSandboxStats",
    "/runtime.v1.RuntimeService/PodSandboxStats",
    "/runtime.v1.RuntimeService/PodSandboxStatus",
    "/runtime.v1.RuntimeService/RuntimeConfig",
    "/runtime.v1.RuntimeService/Status",
    "/runtime.v1.RuntimeService/Version",
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::services::METHODS;
    use crate::docker::{ApiVersion, Info};
    use crate::grpc::{lookup, Handler};

    #[test]
    fn every_quick_method_is_a_unary_method_of_the_table() {
        for path in QUICK_METHODS {
            let method = lookup(METHODS, path).unwrap_or_else(|| panic!("{path} is not served"));
            assert!(
                matches!(method.handler, Handler::Unary(_) | Handler::UnaryAtHand(..)),
                "{path} streams"
            );
        }
    }

    #[test]
    fn slow_calls_stay_in_the_regular_lane() {
        for slow in ["ExecSync", "PullImage", "StopContainer", "RunPodSandbox"] {
            assert!(!QUICK_METHODS.iter().any(|path| path.ends_with(slow)));
        }
    }

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
            let info: Info = crate::codec::json::decode(json).unwrap();
            let engine = Engine::new(ApiVersion::new(1, 41), &info);
            assert_eq!(
                (cgroup_driver(&engine), engine.apparmor),
                (driver, apparmor),
                "{json}"
            );
        }
    }
}
