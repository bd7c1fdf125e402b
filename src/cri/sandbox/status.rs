//! PodSandboxStatus, from the state index and the checkpoint only: no
//! Docker call when the index is warm, and never an entry into the pod's
//! network namespace — the pod IPs are the ones CNI ADD reported. A
//! sandbox whose container is gone but whose checkpoint is not is NOTREADY
//! with what the checkpoint holds, as ListPodSandbox lists it; NOT_FOUND
//! means that neither knows the ID.

use std::collections::HashMap;

use serde_json::Value;

use super::error::SandboxError;
use super::sandbox_namespace_options;
use super::service::SandboxService;
use crate::api::v1;
use crate::codec::json::object;
use crate::cri::naming;
use crate::index::Entry;
use crate::store::{CheckpointError, PodSandboxCheckpoint};

/// Kubelet labels that name the pod, for sandboxes whose Docker name does
/// not parse.
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// Docker's network mode for the host's network namespace.
const HOST_NETWORK_MODE: &str = "host";

impl SandboxService {
    /// PodSandboxStatus for the sandbox `id` (or a unique prefix of it).
    /// A sandbox only its checkpoint remembers — ListPodSandbox lists those
    /// too — is NOTREADY; `id` must then be its full ID.
    pub fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<v1::PodSandboxStatusResponse, SandboxError> {
        let (status, info) = match self.index.sandbox(id)? {
            Some(entry) => self.entry_status(&entry, verbose),
            None => self.checkpoint_only_status(id, verbose)?,
        };
        Ok(v1::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: 0,
        })
    }

    /// The status of sandbox `id` for a change event about `member` (the
    /// sandbox itself or one of its containers): from `known`, the
    /// sandbox's index entry, when there is one; else from its checkpoint;
    /// else NOTREADY with the pod named by `member`'s kubelet labels, so an
    /// event always says which pod it is about.
    pub(crate) fn status_for_event(
        &self,
        id: &str,
        known: Option<&Entry>,
        member: &Entry,
    ) -> v1::PodSandboxStatus {
        if let Some(entry) = known {
            return self.entry_status(entry, false).0;
        }
        if let Ok((status, _)) = self.checkpoint_only_status(id, false) {
            return status;
        }
        v1::PodSandboxStatus {
            id: id.to_owned(),
            metadata: metadata_of(member),
            state: v1::PodSandboxState::SandboxNotready as i32,
            ..v1::PodSandboxStatus::default()
        }
    }

    /// The status of a sandbox the index knows.
    fn entry_status(&self, entry: &Entry, verbose: bool) -> (v1::PodSandboxStatus, Info) {
        let checkpoint = self.checkpoint_of(&entry.id);
        let host_network = entry.network_mode == HOST_NETWORK_MODE;
        let status = v1::PodSandboxStatus {
            id: entry.id.clone(),
            metadata: metadata_of(entry),
            state: sandbox_state(entry) as i32,
            created_at: entry.created_ns,
            network: Some(network_of(checkpoint.as_ref(), host_network)),
            linux: Some(linux_status(
                &entry.network_mode,
                &entry.pid_mode,
                &entry.ipc_mode,
            )),
            labels: labels_of(entry),
            annotations: annotations_of(entry),
            runtime_handler: runtime_handler_of(checkpoint.as_ref()),
        };
        let info = if verbose {
            verbose_info(object(vec![
                ("id", Value::from(entry.id.as_str())),
                ("name", Value::from(entry.name.as_str())),
                ("pid", Value::from(entry.pid)),
                ("image", Value::from(entry.image.as_str())),
                ("imageId", Value::from(entry.image_id.as_str())),
                ("networkMode", Value::from(entry.network_mode.as_str())),
                (
                    "checkpoint",
                    Value::from(checkpoint.as_ref().map(checkpoint_json)),
                ),
            ]))
        } else {
            Info::new()
        };
        (status, info)
    }

    /// The status of a sandbox whose container is gone but whose checkpoint
    /// is not: NOTREADY, with what the checkpoint holds; NOT_FOUND without
    /// one.
    fn checkpoint_only_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<(v1::PodSandboxStatus, Info), SandboxError> {
        let checkpoint = match self.checkpoints.get(id) {
            Ok(checkpoint) => checkpoint,
            Err(CheckpointError::NotFound { .. } | CheckpointError::InvalidId { .. }) => {
                return Err(SandboxError::NotFound { id: id.to_owned() })
            }
            Err(err @ CheckpointError::Corrupt { .. }) => {
                log::warn!("{err}");
                return Err(SandboxError::NotFound { id: id.to_owned() });
            }
            Err(err) => return Err(err.into()),
        };
        let host_network = checkpoint.data.host_network;
        // Only the network mode is known: the other namespaces read as the
        // pod's own, their default.
        let network_mode = if host_network { HOST_NETWORK_MODE } else { "" };
        let status = v1::PodSandboxStatus {
            id: id.to_owned(),
            metadata: Some(checkpoint_metadata(&checkpoint)),
            state: v1::PodSandboxState::SandboxNotready as i32,
            // The creation time lived only on the removed container.
            created_at: 0,
            network: Some(network_of(Some(&checkpoint), host_network)),
            linux: Some(linux_status(network_mode, "", "")),
            labels: HashMap::new(),
            annotations: HashMap::new(),
            runtime_handler: runtime_handler_of(Some(&checkpoint)),
        };
        let info = if verbose {
            verbose_info(object(vec![
                ("id", Value::from(id)),
                ("checkpoint", checkpoint_json(&checkpoint)),
            ]))
        } else {
            Info::new()
        };
        Ok((status, info))
    }

    /// The checkpoint of `id`, if one can be read; a corrupt one is logged
    /// (and has been quarantined) and reads as none.
    pub(super) fn checkpoint_of(&self, id: &str) -> Option<PodSandboxCheckpoint> {
        match self.checkpoints.get(id) {
            Ok(checkpoint) => Some(checkpoint),
            Err(CheckpointError::NotFound { .. }) => None,
            Err(err) => {
                log::warn!("{err}");
                None
            }
        }
    }
}

/// PodSandboxStatusResponse's `info` map.
type Info = HashMap<String, String>;

fn verbose_info(info: Value) -> Info {
    HashMap::from([("info".to_owned(), info.to_string())])
}

fn checkpoint_json(checkpoint: &PodSandboxCheckpoint) -> Value {
    let network = checkpoint.dockshim.as_ref();
    object(vec![
        ("name", Value::from(checkpoint.name.as_str())),
        ("namespace", Value::from(checkpoint.namespace.as_str())),
        ("data", checkpoint.data.to_json().into_value()),
        (
            "network",
            Value::from(network.map(|network| network.to_json().into_value())),
        ),
    ])
}

/// The pod IPs CNI ADD reported, while the checkpoint says the network is
/// set up; none for host-network sandboxes.
fn network_of(
    checkpoint: Option<&PodSandboxCheckpoint>,
    host_network: bool,
) -> v1::PodSandboxNetworkStatus {
    match checkpoint.and_then(|c| c.dockshim.as_ref()) {
        Some(record) if !host_network && record.network_ready => v1::PodSandboxNetworkStatus {
            ip: record
                .primary_ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            additional_ips: record
                .additional_ips
                .iter()
                .map(|ip| v1::PodIp { ip: ip.to_string() })
                .collect(),
        },
        _ => v1::PodSandboxNetworkStatus::default(),
    }
}

fn linux_status(network_mode: &str, pid_mode: &str, ipc_mode: &str) -> v1::LinuxPodSandboxStatus {
    v1::LinuxPodSandboxStatus {
        namespaces: Some(v1::Namespace {
            options: Some(sandbox_namespace_options(network_mode, pid_mode, ipc_mode)),
        }),
    }
}

/// The runtime handler RunPodSandbox was given; `""`, the default one, when
/// the checkpoint does not say (cri-dockerd wrote it, or it is gone).
pub(super) fn runtime_handler_of(checkpoint: Option<&PodSandboxCheckpoint>) -> String {
    checkpoint
        .and_then(|c| c.dockshim.as_ref())
        .map(|record| record.runtime_handler.clone())
        .unwrap_or_default()
}

/// The metadata of a sandbox only its checkpoint remembers.
pub(super) fn checkpoint_metadata(checkpoint: &PodSandboxCheckpoint) -> v1::PodSandboxMetadata {
    v1::PodSandboxMetadata {
        name: checkpoint.name.clone(),
        namespace: checkpoint.namespace.clone(),
        uid: checkpoint
            .dockshim
            .as_ref()
            .map(|record| record.uid.clone())
            .unwrap_or_default(),
        // The attempt was recorded only in the removed container's name.
        attempt: 0,
    }
}

/// READY exactly when the sandbox container runs.
pub(super) fn sandbox_state(entry: &Entry) -> v1::PodSandboxState {
    if entry.is_ready() {
        v1::PodSandboxState::SandboxReady
    } else {
        v1::PodSandboxState::SandboxNotready
    }
}

/// The sandbox metadata its Docker name records, or else its kubelet
/// labels; `None` if neither names the pod.
pub(super) fn metadata_of(entry: &Entry) -> Option<v1::PodSandboxMetadata> {
    if let Ok(metadata) = naming::parse_sandbox_name(&entry.name) {
        return Some(metadata);
    }
    let label = |key: &str| entry.labels.get(key).cloned();
    Some(v1::PodSandboxMetadata {
        name: label(POD_NAME_LABEL)?,
        namespace: label(POD_NAMESPACE_LABEL)?,
        uid: label(POD_UID_LABEL).unwrap_or_default(),
        attempt: 0,
    })
}

pub(super) fn labels_of(entry: &Entry) -> HashMap<String, String> {
    entry
        .cri_labels()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

pub(super) fn annotations_of(entry: &Entry) -> HashMap<String, String> {
    entry
        .annotations()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cri::testing::SandboxSetup;
    use crate::docker::DockerApi;
    use crate::grpc::{Code, Status};

    fn code(err: SandboxError) -> Code {
        Status::from(err).code
    }

    fn info(response: &v1::PodSandboxStatusResponse) -> Value {
        serde_json::from_str(&response.info["info"]).unwrap()
    }

    #[test]
    fn the_status_of_an_unknown_or_empty_id_is_refused() {
        let setup = SandboxSetup::new();
        let err = setup.service.pod_sandbox_status("f00d", false).unwrap_err();
        assert_eq!(code(err), Code::NotFound);
        let err = setup.service.pod_sandbox_status("", false).unwrap_err();
        assert_eq!(code(err), Code::InvalidArgument);
    }

    #[test]
    fn a_running_sandbox_is_ready_on_the_node_s_network_and_verbose_adds_its_checkpoint() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        let response = setup.service.pod_sandbox_status(&id, true).unwrap();
        let status = response.status.clone().unwrap();
        assert_eq!(status.state, v1::PodSandboxState::SandboxReady as i32);
        assert_eq!(status.metadata.unwrap().name, "web");
        let options = status.linux.unwrap().namespaces.unwrap().options.unwrap();
        assert_eq!(options.network, v1::NamespaceMode::Node as i32);
        let info = info(&response);
        assert_eq!(info["id"], id.as_str());
        assert_eq!(info["checkpoint"]["name"], "web");
        let plain = setup.service.pod_sandbox_status(&id, false).unwrap();
        assert!(plain.info.is_empty());
    }

    #[test]
    fn a_unique_prefix_finds_the_sandbox_under_its_full_id() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        let response = setup.service.pod_sandbox_status(&id[..12], false).unwrap();
        assert_eq!(response.status.unwrap().id, id);
    }

    #[test]
    fn a_sandbox_dockerd_lost_is_notready_with_what_its_checkpoint_holds() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        setup.docker.remove_container(&id).unwrap();
        assert!(setup.index.refresh(&id).unwrap().is_none());
        let response = setup.service.pod_sandbox_status(&id, true).unwrap();
        let status = response.status.clone().unwrap();
        assert_eq!(status.state, v1::PodSandboxState::SandboxNotready as i32);
        let metadata = status.metadata.unwrap();
        assert_eq!(
            (metadata.name.as_str(), metadata.namespace.as_str()),
            ("web", "prod")
        );
        assert_eq!(metadata.uid, "uid-web");
        assert_eq!(status.created_at, 0);
        let info = info(&response);
        assert_eq!(info["checkpoint"]["namespace"], "prod");
        assert_eq!(info.get("pid"), None);
    }

    #[test]
    fn a_sandbox_dockerd_lost_whose_checkpoint_is_corrupt_is_not_found() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        setup.docker.remove_container(&id).unwrap();
        setup.index.refresh(&id).unwrap();
        std::fs::write(setup.service.checkpoints.dir().join(&id), b"{\"half").unwrap();
        let err = setup.service.pod_sandbox_status(&id, false).unwrap_err();
        assert_eq!(code(err), Code::NotFound);
    }

    #[test]
    fn a_sandbox_whose_checkpoint_is_corrupt_is_answered_from_dockerd() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        std::fs::write(setup.service.checkpoints.dir().join(&id), b"{\"half").unwrap();
        let response = setup.service.pod_sandbox_status(&id, true).unwrap();
        let status = response.status.clone().unwrap();
        assert_eq!(status.state, v1::PodSandboxState::SandboxReady as i32);
        assert_eq!(status.runtime_handler, "");
        assert_eq!(info(&response)["checkpoint"], Value::Null);
    }

    #[test]
    fn a_stopped_sandbox_is_notready() {
        let setup = SandboxSetup::new();
        let id = setup.run("web");
        setup.service.stop_pod_sandbox(&id).unwrap();
        let status = setup.service.pod_sandbox_status(&id, false).unwrap();
        assert_eq!(
            status.status.unwrap().state,
            v1::PodSandboxState::SandboxNotready as i32
        );
    }
}
