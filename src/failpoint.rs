//! Failpoints: the named places between the steps of RunPodSandbox,
//! CreateContainer and StartContainer where a test build can make the
//! process die as `kill -9` kills it, so the crash-consistency tests
//! (`tests/e2e_failpoints.rs`) can check that a restart and the kubelet's
//! usual Stop and Remove leave nothing behind, whichever step was the last.
//!
//! With the cargo feature `failpoints` (off by default), the environment
//! variable `DOCKSHIM_FAILPOINT=<name>` arms the point of that name: the
//! first call to reach it raises SIGKILL, which runs no destructor, no
//! rollback and no further write. Without the feature [`reached`] is an
//! empty inline function and the shipped binary holds no failpoint; the
//! names stay, for the tests and this documentation.

/// The environment variable that names the armed failpoint.
pub const FAILPOINT_ENV: &str = "DOCKSHIM_FAILPOINT";

/// A failpoint, named for the step just done. The sandbox steps that set
/// up the network are reached only for a sandbox with a CNI network, and
/// `RunPodSandboxResolvConfWritten` only with a DNS configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// dockerd created the sandbox container; nothing is on disk yet.
    RunPodSandboxContainerCreated,
    /// The first checkpoint is written (no network recorded).
    RunPodSandboxCheckpointWritten,
    /// dockerd started the sandbox container.
    RunPodSandboxContainerStarted,
    /// The pod's resolv.conf is written.
    RunPodSandboxResolvConfWritten,
    /// The checkpoint names the network and its namespace: a DEL is owed
    /// from here on, before the ADD runs.
    RunPodSandboxNetworkRecorded,
    /// The first plugin of the pod's network answered ADD (an address is
    /// reserved); its answer is not cached and the rest of the list has
    /// not run.
    RunPodSandboxNetworkFirstPluginAdded,
    /// Every plugin of the pod's network answered ADD; the cache holds the
    /// answers but the last one's.
    RunPodSandboxNetworkPluginsAdded,
    /// CNI ADD succeeded and its result is cached; the checkpoint does not
    /// hold it yet.
    RunPodSandboxNetworkAdded,
    /// Hairpin mode is configured.
    RunPodSandboxHairpinSet,
    /// The checkpoint holds the pod IPs and says the network is ready.
    RunPodSandboxIpsRecorded,
    /// Every step is done and the index told; the answer is not sent.
    RunPodSandboxReady,
    /// dockerd created the container; the index does not know it yet.
    CreateContainerCreated,
    /// The index knows the new container; the answer is not sent.
    CreateContainerReady,
    /// The CRI log file is open; dockerd has not been asked to start.
    StartContainerLogOpened,
    /// dockerd answered the start; the index is not told yet and the
    /// output is not followed.
    StartContainerStarted,
    /// The output is followed; the answer is not sent.
    StartContainerReady,
}

impl FailPoint {
    /// Every failpoint, in the order a pod's start reaches them.
    pub const ALL: [FailPoint; 16] = [
        FailPoint::RunPodSandboxContainerCreated,
        FailPoint::RunPodSandboxCheckpointWritten,
        FailPoint::RunPodSandboxContainerStarted,
        FailPoint::RunPodSandboxResolvConfWritten,
        FailPoint::RunPodSandboxNetworkRecorded,
        FailPoint::RunPodSandboxNetworkFirstPluginAdded,
        FailPoint::RunPodSandboxNetworkPluginsAdded,
        FailPoint::RunPodSandboxNetworkAdded,
        FailPoint::RunPodSandboxHairpinSet,
        FailPoint::RunPodSandboxIpsRecorded,
        FailPoint::RunPodSandboxReady,
        FailPoint::CreateContainerCreated,
        FailPoint::CreateContainerReady,
        FailPoint::StartContainerLogOpened,
        FailPoint::StartContainerStarted,
        FailPoint::StartContainerReady,
    ];

    /// The name `DOCKSHIM_FAILPOINT` takes: `<call>/<step done>`.
    pub fn name(self) -> &'static str {
        match self {
            FailPoint::RunPodSandboxContainerCreated => "run-pod-sandbox/container-created",
            FailPoint::RunPodSandboxCheckpointWritten => "run-pod-sandbox/checkpoint-written",
            FailPoint::RunPodSandboxContainerStarted => "run-pod-sandbox/container-started",
            FailPoint::RunPodSandboxResolvConfWritten => "run-pod-sandbox/resolv-conf-written",
            FailPoint::RunPodSandboxNetworkRecorded => "run-pod-sandbox/network-recorded",
            FailPoint::RunPodSandboxNetworkFirstPluginAdded => {
                "run-pod-sandbox/network-first-plugin-added"
            }
            FailPoint::RunPodSandboxNetworkPluginsAdded => "run-pod-sandbox/network-plugins-added",
            FailPoint::RunPodSandboxNetworkAdded => "run-pod-sandbox/network-added",
            FailPoint::RunPodSandboxHairpinSet => "run-pod-sandbox/hairpin-set",
            FailPoint::RunPodSandboxIpsRecorded => "run-pod-sandbox/ips-recorded",
            FailPoint::RunPodSandboxReady => "run-pod-sandbox/ready",
            FailPoint::CreateContainerCreated => "create-container/container-created",
            FailPoint::CreateContainerReady => "create-container/ready",
            FailPoint::StartContainerLogOpened => "start-container/log-opened",
            FailPoint::StartContainerStarted => "start-container/started",
            FailPoint::StartContainerReady => "start-container/ready",
        }
    }

    /// The failpoint called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<FailPoint> {
        FailPoint::ALL
            .into_iter()
            .find(|point| point.name() == name)
    }
}

/// Kills the process with SIGKILL if `point` is the armed failpoint.
#[cfg(feature = "failpoints")]
pub fn reached(point: FailPoint) {
    if armed() != Some(point) {
        return;
    }
    log::error!("failpoint {} reached: killing the process", point.name());
    // SIGKILL cannot be caught or blocked, and it ends every thread at
    // once; abort is there only should the kernel refuse the signal, and
    // it too skips destructors.
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    std::process::abort();
}

/// Without the `failpoints` feature a failpoint is nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn reached(_point: FailPoint) {}

/// The failpoint `DOCKSHIM_FAILPOINT` arms, read once; a name that is no
/// failpoint's is logged, so a test's typo does not pass unnoticed.
#[cfg(feature = "failpoints")]
fn armed() -> Option<FailPoint> {
    static ARMED: std::sync::OnceLock<Option<FailPoint>> = std::sync::OnceLock::new();
    *ARMED.get_or_init(|| {
        let name = std::env::var(FAILPOINT_ENV).ok()?;
        let point = FailPoint::from_name(&name);
        if point.is_none() {
            log::warn!("{FAILPOINT_ENV}={name} names no failpoint");
        }
        point
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_failpoint_is_found_by_its_own_name() {
        for point in FailPoint::ALL {
            assert_eq!(FailPoint::from_name(point.name()), Some(point));
        }
    }

    #[test]
    fn failpoint_names_are_distinct_and_name_their_call() {
        let mut names: Vec<&str> = FailPoint::ALL.iter().map(|point| point.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailPoint::ALL.len());
        for name in names {
            let (call, step) = name.split_once('/').unwrap();
            assert!(
                ["run-pod-sandbox", "create-container", "start-container"].contains(&call),
                "{name}"
            );
            assert!(!step.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_name_that_is_no_failpoints_arms_nothing() {
        assert_eq!(FailPoint::from_name("run-pod-sandbox"), None);
        assert_eq!(FailPoint::from_name(""), None);
    }
}
