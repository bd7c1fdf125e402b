//! CreateContainer: check that the sandbox and the image exist, turn the
//! configuration into a Docker create body, create the container under its
//! Kubernetes name and tell the index. Nothing is started here.
//!
//! A container runs with its sandbox's Docker runtime, which the index read
//! from the sandbox container itself (`HostConfig.Runtime`), so the pod's
//! RuntimeClass holds across dockshim restarts without any state of
//! dockshim's own.
//!
//! dockerd answers a create with warnings as well as the ID. Each is
//! logged; and since dockerd drops a limit the kernel cannot enforce (no
//! pids cgroup, no swap accounting, ...) and says so only there, a
//! warning that a limit was dropped ([`drops_a_limit`]) removes the new
//! container again and fails the call with FAILED_PRECONDITION quoting
//! dockerd.

use std::path::Path;

use super::service::{node_has_swap, ContainerError, ContainerService, NodeMounts};
use super::{container_create_body, ContainerOptions};
use crate::api::v1;
use crate::cri::sandbox::security::NodeSeccompProfiles;
use crate::cri::{cgroup_driver, naming};
use crate::docker::CreateOutcome;
use crate::failpoint::{self, FailPoint};
use crate::logs::validate_log_path;

/// The word dockerd ends each warning about a setting it dropped with
/// ("... PIDs limit discarded.").
const DISCARDED: &str = "discarded";
/// The one such warning worded otherwise: without swap accounting dockerd
/// gives a memory-limited container unlimited swap and says "Your kernel
/// does not support swap limit capabilities ... Memory limited without
/// swap."
const SWAP_LIMIT_UNSUPPORTED: &str = "swap limit capabilities";

/// Whether a warning of dockerd's (create or update) says that it dropped
/// a limit it was asked for. Dropped swap limits matter only on a node
/// with swap: without any, the container cannot swap anyway.
pub(super) fn drops_a_limit(warning: &str, node_has_swap: bool) -> bool {
    let warning = warning.to_ascii_lowercase();
    warning.contains(DISCARDED) || (node_has_swap && warning.contains(SWAP_LIMIT_UNSUPPORTED))
}

impl ContainerService {
    /// CreateContainer; returns the new container's ID.
    pub fn create_container(
        &self,
        request: &v1::CreateContainerRequest,
    ) -> Result<String, ContainerError> {
        let config = request
            .config
            .as_ref()
            .ok_or(ContainerError::Missing("config"))?;
        let sandbox_config = request
            .sandbox_config
            .as_ref()
            .ok_or(ContainerError::Missing("sandbox_config"))?;
        let metadata = config
            .metadata
            .as_ref()
            .ok_or(ContainerError::Missing("config.metadata"))?;
        let sandbox_metadata = sandbox_config
            .metadata
            .as_ref()
            .ok_or(ContainerError::Missing("sandbox_config.metadata"))?;
        let name = naming::container_name(metadata, sandbox_metadata)?;
        let sandbox = self
            .index
            .sandbox(&request.pod_sandbox_id)?
            .ok_or_else(|| ContainerError::SandboxNotFound {
                id: request.pod_sandbox_id.clone(),
            })?;
        let image = config
            .image
            .as_ref()
            .map(|spec| spec.image.as_str())
            .filter(|image| !image.is_empty())
            .ok_or(ContainerError::Missing("config.image.image"))?;
        self.check_image(image)?;
        let log_path = if sandbox_config.log_directory.is_empty() || config.log_path.is_empty() {
            String::new()
        } else {
            validate_log_path(
                Path::new(&sandbox_config.log_directory),
                Path::new(&config.log_path),
            )?
            .to_string_lossy()
            .into_owned()
        };
        let engine = self.engine()?;
        let node_has_swap = node_has_swap();
        let options = ContainerOptions {
            sandbox_id: &sandbox.id,
            image,
            log_path: &log_path,
            cgroup_driver: cgroup_driver(&engine),
            seccomp_profiles: &NodeSeccompProfiles,
            host_mounts: &NodeMounts,
            node_has_swap,
            node_has_apparmor: engine.apparmor,
            runtime: &sandbox.runtime,
            engine: &engine,
        };
        let body = container_create_body(config, sandbox_config, &options)?;
        let created = match self.docker.create_container(&name, &body) {
            Ok(CreateOutcome::Created(created)) => created,
            Ok(CreateOutcome::NameInUse(err)) | Err(err) => {
                return Err(ContainerError::docker("create the container", err))
            }
        };
        failpoint::reached(FailPoint::CreateContainerCreated);
        for warning in &created.warnings {
            log::warn!("container {}: dockerd: {warning}", created.id);
        }
        if let Some(warning) = created
            .warnings
            .iter()
            .find(|warning| drops_a_limit(warning, node_has_swap))
        {
            return Err(self.remove_after_dropped_limit(&created.id, warning));
        }
        self.index.refresh(&created.id)?;
        failpoint::reached(FailPoint::CreateContainerReady);
        log::info!("created container {} ({name})", created.id);
        Ok(created.id)
    }

    /// Removes the container `id` dockerd just created without a limit it
    /// was asked for, and says so.
    fn remove_after_dropped_limit(&self, id: &str, warning: &str) -> ContainerError {
        let cleanup = self.docker.remove_container(id).err();
        if cleanup.is_none() {
            self.index.forget(id);
        }
        ContainerError::LimitDroppedAtCreate {
            id: id.to_owned(),
            warning: warning.to_owned(),
            cleanup,
        }
    }

    /// NOT_FOUND naming `image` unless dockerd has it.
    fn check_image(&self, image: &str) -> Result<(), ContainerError> {
        match self.docker.inspect_image(image) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ContainerError::ImageNotFound {
                image: image.to_owned(),
            }),
            Err(err) => Err(ContainerError::docker("inspect the container's image", err)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Warnings dockerd 20.10 gives on create and update (API 1.41).
    const DROPPED_LIMITS: [&str; 6] = [
        "Your kernel does not support memory limit capabilities or the cgroup is not mounted. \
         Limitation discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. \
         PIDs limit discarded.",
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        "Your kernel does not support memory swappiness capabilities or the cgroup is not \
         mounted. Memory swappiness discarded.",
    ];
    const SWAP_DROPPED: &str = "Your kernel does not support swap limit capabilities or the \
                                cgroup is not mounted. Memory limited without swap.";
    const HARMLESS: [&str; 2] = [
        "OOM killer is disabled for the container, but no memory limit is set, this can result \
         in the system running out of resources.",
        "IPv4 forwarding is disabled. Networking will not work.",
    ];

    #[test]
    fn warnings_of_a_dropped_limit_are_told_from_harmless_ones() {
        for node_has_swap in [false, true] {
            for warning in DROPPED_LIMITS {
                assert!(drops_a_limit(warning, node_has_swap), "{warning}");
            }
            for warning in HARMLESS {
                assert!(!drops_a_limit(warning, node_has_swap), "{warning}");
            }
        }
    }

    #[test]
    fn a_dropped_swap_limit_counts_only_on_a_node_with_swap() {
        assert!(drops_a_limit(SWAP_DROPPED, true));
        assert!(!drops_a_limit(SWAP_DROPPED, false));
    }
}
