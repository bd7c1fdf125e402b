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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::cri::testing::SandboxSetup;
    use crate::docker::fake::{refused, status};
    use crate::docker::DockerApi;
    use crate::grpc::{Code, Status};

    #[test]
    fn a_remove_whose_stop_fails_removes_nothing() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        setup.container(&id, "app", true);
        setup
            .docker
            .fail("stop_container", status(500, "cannot kill"));
        let err = setup.service.remove_pod_sandbox(&id).unwrap_err();
        assert_eq!(Status::from(err).code, Code::Unknown);
        assert_eq!(
            setup.docker.calls_of("remove_container"),
            Vec::<String>::new()
        );
        assert!(setup.service.checkpoints.get(&id).is_ok());
    }

    #[test]
    fn a_container_dockerd_cannot_remove_keeps_the_sandbox_and_its_checkpoint() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        let app = setup.container(&id, "app", false);
        setup.docker.fail("remove_container", refused());
        let err = setup.service.remove_pod_sandbox(&id).unwrap_err();
        assert_eq!(Status::from(err).code, Code::Unavailable);
        assert!(setup.docker.container(&app).is_some());
        assert!(setup.docker.container(&id).is_some());
        assert!(setup.index.sandbox(&id).unwrap().is_some());
        assert!(setup.service.checkpoints.get(&id).is_ok());
        setup.service.remove_pod_sandbox(&id).unwrap();
        assert!(setup.docker.container_ids().is_empty());
        assert!(setup.service.checkpoints.get(&id).is_err());
    }

    #[test]
    fn removing_a_sandbox_only_its_checkpoint_remembers_drops_the_checkpoint() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        setup.docker.remove_container(&id).unwrap();
        setup.index.refresh(&id).unwrap();
        let calls = setup.docker.calls().len();
        setup.service.remove_pod_sandbox(&id).unwrap();
        assert!(setup.service.checkpoints.get(&id).is_err());
        assert_eq!(setup.docker.calls().len(), calls, "no Docker call");
    }
}
