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

use serde_json::Value;

use super::checkpoint::{validate_id, PortMapping};
use super::{insert_in_order, read_small, state_dir, write_atomic, OwedTeardownError, WiderMode};
use crate::codec::json::{self, Fields, FromJson, OrderedObject};

/// The directory under the root directory that holds the records.
pub const OWED_TEARDOWN_DIR: &str = "owed-teardown";

/// A CNI DEL still owed for one sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OwedTeardown {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// Where the network configuration was read from.
    pub network_file: PathBuf,
    /// The network configuration as the plugins read it at ADD.
    pub network_config: Value,
    pub port_mappings: Vec<PortMapping>,
}

impl FromJson for OwedTeardown {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(OwedTeardown {
            name: fields.required("name"),
            namespace: fields.required("namespace"),
            uid: fields.required("uid"),
            network_file: PathBuf::from(fields.required::<String>("network_file")),
            network_config: fields.required("network_config"),
            port_mappings: fields.field("port_mappings"),
        })
    }
}

impl OwedTeardown {
    /// The record's text; a network file whose path is not UTF-8 cannot be
    /// written.
    fn to_json(&self) -> Result<String, serde_json::Error> {
        let network_file = self
            .network_file
            .to_str()
            .ok_or_else(|| json::error("path contains invalid UTF-8 characters"))?;
        let mut record = OrderedObject::new();
        record
            .add("name", self.name.as_str())
            .add("namespace", self.namespace.as_str())
            .add("uid", self.uid.as_str())
            .add("network_file", network_file)
            .add("network_config", self.network_config.clone());
        if !self.port_mappings.is_empty() {
            record.add_objects(
                "port_mappings",
                self.port_mappings.iter().map(PortMapping::to_json),
            );
        }
        Ok(record.into_text())
    }
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
        let text = owed.to_json().map_err(OwedTeardownError::Encode)?;
        write_atomic(&path, text.as_bytes()).map_err(|source| OwedTeardownError::Io {
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
        json::decode(text)
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
                insert_in_order(&mut ids, name);
            }
        }
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

    #[test]
    fn records_keep_the_bytes_earlier_versions_wrote() {
        let root = tempfile::tempdir().unwrap();
        let store = OwedTeardowns::open(root.path()).unwrap();
        let mut record = owed();
        record.network_config["plugins"][0]["ipam"] = serde_json::json!({"type": "host-local"});
        let written = |store: &OwedTeardowns, record: &OwedTeardown| {
            store.record("abc123", record).unwrap();
            fs::read_to_string(root.path().join(OWED_TEARDOWN_DIR).join("abc123")).unwrap()
        };
        let head = concat!(
            r#"{"name":"web","namespace":"default","uid":"11111111-2222","#,
            r#""network_file":"/etc/cni/net.d/10-pods.conflist","network_config":"#,
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"ipam":{"type":"host-local"},"type":"bridge"}]}"#
        );
        assert_eq!(
            written(&store, &record),
            format!(
                r#"{head},"port_mappings":[{{"protocol":"tcp","container_port":80,"host_port":8080}}]}}"#
            )
        );
        record.port_mappings.clear();
        assert_eq!(written(&store, &record), format!("{head}}}"));
        assert_eq!(store.get("abc123").unwrap(), Some(record));
    }
}
