//! Owed network teardowns: one JSON file per sandbox under
//! `<root-directory>/owed-teardown/<sandbox id>`, written when a CNI DEL
//! failed at a point where nothing else would remember it — a
//! RunPodSandbox rollback that removes the container and the checkpoint,
//! or a checkpoint found corrupt — and removed only once a DEL succeeded.
//!
//! A record holds what a DEL needs besides the sandbox ID: the pod's name,
//! namespace and UID (`CNI_ARGS`), the network configuration the pod was
//! attached with (file and content, so the DEL reaches the same plugins
//! after `--cni-conf-dir` changed) and the port mappings `portmap` must be
//! given again. It holds no namespace path: by the time a record is
//! retried the sandbox's process is gone, and a `/proc/<pid>` path could
//! name a recycled PID, so the DEL runs without a namespace, as the CNI
//! spec allows. This module stores and lists records; it never runs a
//! plugin.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::{validate_id, PortMapping};
use super::{read_small, state_dir, write_atomic, OwedTeardownError, WiderMode};

/// The directory under the root directory that holds the records.
pub const OWED_TEARDOWN_DIR: &str = "owed-teardown";

/// A CNI DEL still owed for one sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedTeardown {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Where the network configuration was read from.
    pub network_file: PathBuf,
    /// The network configuration as the plugins read it at ADD.
    pub network_config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
}

/// The record directory.
#[derive(Debug, Clone)]
pub struct OwedTeardowns {
    dir: PathBuf,
}

impl OwedTeardowns {
    /// Opens `<root>/owed-teardown`, creating it (mode 0700) if needed.
    pub fn open(root: &Path) -> Result<OwedTeardowns, OwedTeardownError> {
        let dir = root.join(OWED_TEARDOWN_DIR);
        state_dir(&dir, WiderMode::Tighten).map_err(|source| OwedTeardownError::Io {
            path: dir.clone(),
            action: "create",
            source,
        })?;
        Ok(OwedTeardowns { dir })
    }

    /// Records (or replaces) the teardown owed for sandbox `id`, atomically.
    pub fn record(&self, id: &str, owed: &OwedTeardown) -> Result<(), OwedTeardownError> {
        let path = self.path(id)?;
        let bytes = serde_json::to_vec(owed).map_err(OwedTeardownError::Encode)?;
        write_atomic(&path, &bytes).map_err(|source| OwedTeardownError::Io {
            path,
            action: "write",
            source,
        })
    }

    /// The teardown owed for sandbox `id`, if any.
    pub fn get(&self, id: &str) -> Result<Option<OwedTeardown>, OwedTeardownError> {
        let path = self.path(id)?;
        let text = match read_small(&path) {
            Ok(text) => text,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) if source.kind() == io::ErrorKind::InvalidData => {
                return Err(OwedTeardownError::Corrupt {
                    path,
                    reason: source.to_string(),
                })
            }
            Err(source) => {
                return Err(OwedTeardownError::Io {
                    path,
                    action: "read",
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| OwedTeardownError::Corrupt {
                path,
                reason: err.to_string(),
            })
    }

    /// The sandbox IDs that are owed a teardown, sorted. Dot-files
    /// (temporary files of writes in progress) are not records.
    pub fn ids(&self) -> Result<Vec<String>, OwedTeardownError> {
        let listing_failed = |source| OwedTeardownError::Io {
            path: self.dir.clone(),
            action: "list",
            source,
        };
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(listing_failed)? {
            let entry = entry.map_err(listing_failed)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with('.')
                && entry.file_type().is_ok_and(|t| t.is_file())
                && validate_id(&name).is_ok()
            {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Forgets the teardown owed for sandbox `id`: its DEL succeeded.
    /// Forgetting one that is not recorded succeeds.
    pub fn forget(&self, id: &str) -> Result<(), OwedTeardownError> {
        let path = self.path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(OwedTeardownError::Io {
                path,
                action: "remove",
                source,
            }),
        }
    }

    fn path(&self, id: &str) -> Result<PathBuf, OwedTeardownError> {
        validate_id(id).map_err(|err| OwedTeardownError::InvalidId {
            id: id.to_owned(),
            reason: err.to_string(),
        })?;
        Ok(self.dir.join(id))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn owed() -> OwedTeardown {
        OwedTeardown {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            uid: "11111111-2222".to_owned(),
            network_file: PathBuf::from("/etc/cni/net.d/10-pods.conflist"),
            network_config: serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "pods",
                "plugins": [{"type": "bridge"}],
            }),
            port_mappings: vec![PortMapping {
                protocol: Some("tcp".to_owned()),
                container_port: Some(80),
                host_port: Some(8080),
                host_ip: String::new(),
            }],
        }
    }

    #[test]
    fn a_recorded_teardown_reads_back_until_it_is_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let store = OwedTeardowns::open(root.path()).unwrap();
        assert_eq!(store.get("abc123").unwrap(), None);
        store.record("abc123", &owed()).unwrap();
        store.record("def456", &owed()).unwrap();
        assert_eq!(store.get("abc123").unwrap(), Some(owed()));
        assert_eq!(store.ids().unwrap(), ["abc123", "def456"]);
        store.forget("abc123").unwrap();
        store.forget("abc123").unwrap();
        assert_eq!(store.ids().unwrap(), ["def456"]);
        assert_eq!(store.get("abc123").unwrap(), None);
    }

    #[test]
    fn records_survive_a_reopen_in_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        OwedTeardowns::open(root.path())
            .unwrap()
            .record("abc123", &owed())
            .unwrap();
        let reopened = OwedTeardowns::open(root.path()).unwrap();
        assert_eq!(reopened.get("abc123").unwrap(), Some(owed()));
        let mode = fs::metadata(root.path().join(OWED_TEARDOWN_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn an_unreadable_record_is_corrupt_and_an_id_with_a_slash_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = OwedTeardowns::open(root.path()).unwrap();
        fs::write(root.path().join(OWED_TEARDOWN_DIR).join("abc123"), "{").unwrap();
        let err = store.get("abc123").unwrap_err();
        assert!(matches!(err, OwedTeardownError::Corrupt { .. }), "{err}");
        let err = store.record("../escape", &owed()).unwrap_err();
        assert!(matches!(err, OwedTeardownError::InvalidId { .. }), "{err}");
    }
}
