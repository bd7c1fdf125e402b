//! StopPodSandbox: stop the pod's containers, tear its network down once,
//! stop the sandbox container. Idempotent: a sandbox that is stopped
//! already, or unknown altogether, is success.
//!
//! Whether a CNI DEL is owed comes from the checkpoint, never from the
//! container, so it is run also after the container is gone or dockshim
//! restarted: dockshim's checkpoint names the network while an attachment
//! may exist; a checkpoint cri-dockerd wrote cannot say, and gets one DEL.
//! A DEL that fails leaves the checkpoint owing it and fails the call, so
//! the kubelet's retry runs it again. A corrupt checkpoint (moved aside
//! when read) still gets a DEL with what is known — the network configured
//! now, the pod's names from its container, no port mappings — and, should
//! that fail, an owed-teardown record (`owed`) takes the checkpoint's place.

use std::time::Duration;

use super::error::SandboxError;
use super::run::{annotation_map, runtime_args};
use super::service::{lock, SandboxService, SANDBOX_STOP_GRACE_SECS};
use crate::cri::naming;
use crate::host::netns_path;
use crate::index::Entry;
use crate::network::cni::Bandwidth;
use crate::network::{NetworkPlugin, PodAttachment};
use crate::store::checkpoint::{CheckpointData, SandboxNetwork};
use crate::store::CheckpointError;

impl SandboxService {
    /// StopPodSandbox for the sandbox `id` (or a unique prefix of it).
    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), SandboxError> {
        let entry = self.index.sandbox(id)?;
        let id = entry.as_ref().map_or(id, |entry| entry.id.as_str());
        if entry.is_some() {
            for container in self.index.containers_of(id)? {
                if container.is_running() {
                    self.stop_container(&container.id)?;
                }
            }
        }
        self.tear_down_network(id, entry.as_deref())?;
        if let Some(entry) = entry.as_deref().filter(|entry| entry.is_running()) {
            self.stop_container(&entry.id)?;
        }
        Ok(())
    }

    /// Stops container `id` with the sandbox grace period; a container
    /// that is gone or stopped already is fine.
    fn stop_container(&self, id: &str) -> Result<(), SandboxError> {
        let grace = Duration::from_secs(SANDBOX_STOP_GRACE_SECS.into());
        self.docker
            .stop_container(id, grace, None)
            .map_err(|err| SandboxError::docker("stop a container of the pod", err))?;
        self.index.refresh(id)?;
        Ok(())
    }

    /// Runs the CNI DEL the checkpoint of `id` says is owed, then records
    /// that it is not any more.
    pub(super) fn tear_down_network(
        &self,
        id: &str,
        entry: Option<&Entry>,
    ) -> Result<(), SandboxError> {
        if self.settings.network_plugin == NetworkPlugin::None {
            return Ok(());
        }
        let _serialised = lock(&self.teardown);
        self.settle_owed_teardown(id)?;
        let mut checkpoint = match self.checkpoints.get(id) {
            Ok(checkpoint) => checkpoint,
            Err(CheckpointError::NotFound { .. } | CheckpointError::InvalidId { .. }) => {
                return Ok(())
            }
            Err(err @ CheckpointError::Corrupt { .. }) => {
                log::warn!("{err}; running CNI DEL with what is known of the sandbox");
                return self.tear_down_without_checkpoint(id, entry);
            }
            Err(err) => return Err(err.into()),
        };
        let owed = match &checkpoint.dockshim {
            Some(record) => !record.cni_network.is_empty(),
            None => true,
        };
        if checkpoint.data.host_network || !owed {
            return Ok(());
        }
        let attached_to = checkpoint
            .dockshim
            .as_ref()
            .map(|record| record.cni_network.as_str());
        let network = self
            .settings
            .networks
            .for_teardown(attached_to)
            .map_err(SandboxError::CniConfig)?;
        let record = checkpoint.dockshim.take().unwrap_or_default();
        let uid = record.uid;
        let running = entry.filter(|entry| entry.is_running() && entry.pid > 0);
        let bandwidth = match running {
            Some(entry) => Bandwidth::from_annotations(&annotation_map(entry.annotations()))
                .unwrap_or_default(),
            None => None,
        };
        let pod = PodAttachment {
            sandbox_id: id.to_owned(),
            namespace: checkpoint.namespace.clone(),
            name: checkpoint.name.clone(),
            uid: uid.clone(),
            netns: running.map(|entry| netns_path(entry.pid)),
        };
        self.cni.del(
            &network,
            &pod,
            &runtime_args(&checkpoint.data, bandwidth, None),
        )?;
        log::info!("pod network of sandbox {id} torn down");
        // Only the network part is reset: the pod's identity and runtime
        // handler still describe the sandbox.
        checkpoint.dockshim = Some(SandboxNetwork {
            uid,
            runtime_handler: record.runtime_handler,
            ..SandboxNetwork::default()
        });
        self.checkpoints.save(id, &checkpoint)?;
        Ok(())
    }

    /// CNI DEL for sandbox `id` whose checkpoint is lost; recorded as owed
    /// when it fails, since nothing else remembers it any more.
    fn tear_down_without_checkpoint(
        &self,
        id: &str,
        entry: Option<&Entry>,
    ) -> Result<(), SandboxError> {
        let network = self
            .settings
            .networks
            .for_teardown(None)
            .map_err(SandboxError::CniConfig)?;
        let metadata = entry
            .and_then(|entry| naming::parse_sandbox_name(&entry.name).ok())
            .unwrap_or_default();
        let running = entry.filter(|entry| entry.is_running() && entry.pid > 0);
        let pod = PodAttachment {
            sandbox_id: id.to_owned(),
            namespace: metadata.namespace,
            name: metadata.name,
            uid: metadata.uid,
            netns: running.map(|entry| netns_path(entry.pid)),
        };
        let nothing_known = CheckpointData::default();
        if let Err(err) = self
            .cni
            .del(&network, &pod, &runtime_args(&nothing_known, None, None))
        {
            self.owe_teardown(&pod, &network, &nothing_known)?;
            return Err(err.into());
        }
        log::info!("pod network of sandbox {id} torn down without its checkpoint");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::cri::testing::SandboxSetup;
    use crate::docker::fake::status;
    use crate::grpc::{Code, Status};
    use crate::store::PodSandboxCheckpoint;

    #[test]
    fn a_container_that_cannot_be_stopped_leaves_the_sandbox_running() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        let app = setup.container(&id, "app", true);
        setup
            .docker
            .fail("stop_container", status(500, "cannot kill"));
        let err = setup.service.stop_pod_sandbox(&id).unwrap_err();
        assert_eq!(Status::from(err).code, Code::Unknown);
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            [format!("stop_container {app}")]
        );
        assert!(setup.docker.container(&id).unwrap().state.running);
    }

    /// A sandbox on a node whose CNI network `pods` is one plugin that
    /// logs each command to the file `calls` and fails while the file
    /// `fail` exists; the sandbox's checkpoint says it is attached.
    fn attached() -> (SandboxSetup, String) {
        let setup = SandboxSetup::with_config(|config| config.network_plugin = NetworkPlugin::Cni);
        let dir = setup.dir.path();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >>{calls}\n\
             [ -e {fail} ] || exit 0\n\
             echo '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"cannot release\"}}'\nexit 1\n",
            calls = dir.join("calls").display(),
            fail = dir.join("fail").display(),
        );
        for plugin in ["loopback", "pods-plugin"] {
            std::fs::write(bin.join(plugin), &script).unwrap();
            std::fs::set_permissions(bin.join(plugin), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::write(
            dir.join("net.d/10-pods.conflist"),
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"pods-plugin"}]}"#,
        )
        .unwrap();
        let id = setup.run("web");
        let checkpoint = PodSandboxCheckpoint {
            name: "web".to_owned(),
            namespace: "prod".to_owned(),
            data: CheckpointData::default(),
            dockshim: Some(SandboxNetwork {
                uid: "uid-web".to_owned(),
                cni_network: "pods".to_owned(),
                network_ready: true,
                ..SandboxNetwork::default()
            }),
        };
        setup.service.checkpoints.save(&id, &checkpoint).unwrap();
        (setup, id)
    }

    fn dels(setup: &SandboxSetup) -> usize {
        let calls = std::fs::read_to_string(setup.dir.path().join("calls")).unwrap_or_default();
        calls.lines().filter(|line| *line == "DEL").count()
    }

    fn owes_teardown(setup: &SandboxSetup, id: &str) -> bool {
        let checkpoint = setup.service.checkpoints.get(id).unwrap();
        !checkpoint.dockshim.unwrap().cni_network.is_empty()
    }

    #[test]
    fn a_failed_network_teardown_fails_the_stop_and_stays_owed() {
        let (setup, id) = attached();
        std::fs::write(setup.dir.path().join("fail"), "").unwrap();
        let err = setup.service.stop_pod_sandbox(&id).unwrap_err();
        assert!(Status::from(err).message.contains("cannot release"));
        assert!(owes_teardown(&setup, &id));
        assert!(setup.docker.container(&id).unwrap().state.running);
    }

    #[test]
    fn a_network_is_torn_down_once_over_repeated_stops() {
        let (setup, id) = attached();
        std::fs::write(setup.dir.path().join("fail"), "").unwrap();
        setup.service.stop_pod_sandbox(&id).unwrap_err();
        std::fs::remove_file(setup.dir.path().join("fail")).unwrap();
        setup.service.stop_pod_sandbox(&id).unwrap();
        let after_teardown = dels(&setup);
        setup.service.stop_pod_sandbox(&id).unwrap();
        assert_eq!(dels(&setup), after_teardown);
        assert!(!owes_teardown(&setup, &id));
        assert!(!setup.docker.container(&id).unwrap().state.running);
        let record = setup
            .service
            .checkpoints
            .get(&id)
            .unwrap()
            .dockshim
            .unwrap();
        assert_eq!(record.uid, "uid-web", "the pod's identity is kept");
    }
}
