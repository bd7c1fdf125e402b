//! PodSandboxStatus, from the state index and the checkpoint only: no
//! Docker call when the index is warm, and never an entry into the pod's
//! network namespace — the pod IPs are the ones CNI ADD reported.

use std::collections::HashMap;

use serde_json::json;

use super::sandbox_namespace_options;
use super::service::{SandboxError, SandboxService};
use crate::cri::naming;
use crate::cri::v1;
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
    pub fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<v1::PodSandboxStatusResponse, SandboxError> {
        let entry = self
            .index
            .sandbox(id)?
            .ok_or_else(|| SandboxError::NotFound { id: id.to_owned() })?;
        let checkpoint = self.checkpoint_of(&entry.id);
        let host_network = entry.network_mode == HOST_NETWORK_MODE;
        let record = checkpoint.as_ref().and_then(|c| c.dockshim.as_ref());
        let network = match record {
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
        };
        let status = v1::PodSandboxStatus {
            id: entry.id.clone(),
            metadata: metadata_of(&entry),
            state: sandbox_state(&entry) as i32,
            created_at: entry.created_ns,
            network: Some(network),
            linux: Some(v1::LinuxPodSandboxStatus {
                namespaces: Some(v1::Namespace {
                    options: Some(sandbox_namespace_options(
                        &entry.network_mode,
                        &entry.pid_mode,
                        &entry.ipc_mode,
                    )),
                }),
            }),
            labels: labels_of(&entry),
            annotations: annotations_of(&entry),
            runtime_handler: String::new(),
        };
        let info = if verbose {
            let info = json!({
                "id": entry.id,
                "name": entry.name,
                "pid": entry.pid,
                "image": entry.image,
                "imageId": entry.image_id,
                "networkMode": entry.network_mode,
                "checkpoint": checkpoint.as_ref().map(|c| json!({
                    "name": c.name,
                    "namespace": c.namespace,
                    "data": c.data,
                    "network": c.dockshim,
                })),
            });
            HashMap::from([("info".to_owned(), info.to_string())])
        } else {
            HashMap::new()
        };
        Ok(v1::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: 0,
        })
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
