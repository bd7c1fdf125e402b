//! RemovePodSandbox: stop what still runs (network included), force-remove
//! the pod's containers and the sandbox container, delete the checkpoint.
//! Idempotent: an unknown sandbox is success.

use super::error::SandboxError;
use super::service::SandboxService;
use crate::store::CheckpointError;

impl SandboxService {
    /// RemovePodSandbox for the sandbox `id` (or a unique prefix of it).
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), SandboxError> {
        let entry = self.index.sandbox(id)?;
        let id = entry.as_ref().map_or(id, |entry| entry.id.as_str());
        self.stop_pod_sandbox(id)?;
        if entry.is_some() {
            for container in self.index.containers_of(id)? {
                self.remove_container(&container.id)?;
            }
            self.remove_container(id)?;
        }
        match self.checkpoints.remove(id) {
            Ok(()) | Err(CheckpointError::InvalidId { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Force-removes container `id` and its anonymous volumes; a container
    /// that is gone already is fine.
    pub(super) fn remove_container(&self, id: &str) -> Result<(), SandboxError> {
        self.docker
            .remove_container(id)
            .map_err(|err| SandboxError::docker("remove a container of the pod", err))?;
        self.index.forget(id);
        Ok(())
    }
}
