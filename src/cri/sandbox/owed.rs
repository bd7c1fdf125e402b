//! CNI DELs owed where no checkpoint remembers them: recorded in the
//! [`OwedTeardowns`] store when a RunPodSandbox rollback (which removes
//! the container and the checkpoint) or a teardown from a corrupt
//! checkpoint could not DEL, and retried at start-up, before every
//! RunPodSandbox, and on StopPodSandbox and RemovePodSandbox of that
//! sandbox, until one succeeds. CNI DEL is idempotent, so retrying after a
//! DEL that did part of its work is safe; the record is forgotten only
//! after a DEL succeeded, so an IP reservation or a portmap rule is never
//! left without a record to retry from.
//!
//! A retried DEL runs without a network namespace (see [`crate::store::owed`]):
//! plugins then release what they hold on the host.

use std::path::Path;

use super::error::SandboxError;
use super::run::runtime_args;
use super::service::{lock, SandboxService};
use crate::network::{CniNetwork, CniRunner, PodAttachment};
use crate::store::checkpoint::CheckpointData;
use crate::store::{OwedTeardown, OwedTeardownError, OwedTeardowns};

impl SandboxService {
    /// Records that sandbox `id`'s attachment of `pod` to `network` with
    /// `data`'s port mappings is owed a DEL.
    pub(super) fn owe_teardown(
        &self,
        pod: &PodAttachment,
        network: &CniNetwork,
        data: &CheckpointData,
    ) -> Result<(), SandboxError> {
        self.owed
            .record(&pod.sandbox_id, &owed_teardown(pod, network, data))?;
        log::warn!(
            "sandbox {}: CNI DEL of network {} is owed and will be retried",
            pod.sandbox_id,
            network.name
        );
        Ok(())
    }

    /// Runs the DEL owed for sandbox `id`, if one is; the caller holds
    /// `teardown`.
    pub(super) fn settle_owed_teardown(&self, id: &str) -> Result<(), SandboxError> {
        settle(&self.cni, &self.owed, id)
    }

    /// Retries every owed DEL. One that fails again stays recorded and is
    /// logged: the call that retries it is not the one that owes it.
    pub fn settle_owed_teardowns(&self) {
        let _serialised = lock(&self.teardown);
        let ids = match self.owed.ids() {
            Ok(ids) => ids,
            Err(err) => {
                log::warn!("{err}");
                return;
            }
        };
        for id in ids {
            if let Err(err) = settle(&self.cni, &self.owed, &id) {
                log::warn!("sandbox {id}: the owed CNI DEL failed again: {err}");
            }
        }
    }
}

/// What is recorded for `pod`, attached to `network` with `data`'s port
/// mappings. The namespace is left out (see the module notes).
fn owed_teardown(pod: &PodAttachment, network: &CniNetwork, data: &CheckpointData) -> OwedTeardown {
    OwedTeardown {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        uid: pod.uid.clone(),
        network_file: network
            .origin
            .file()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        network_config: network.config.clone(),
        port_mappings: data.port_mappings().to_vec(),
    }
}

/// Runs the DEL recorded for sandbox `id`, if any, and forgets the record
/// once it succeeded. An ID that cannot name a record has none.
fn settle(cni: &CniRunner, owed: &OwedTeardowns, id: &str) -> Result<(), SandboxError> {
    let record = match owed.get(id) {
        Ok(Some(record)) => record,
        Ok(None) | Err(OwedTeardownError::InvalidId { .. }) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let network = CniNetwork::from_recorded(&record.network_file, record.network_config)
        .map_err(SandboxError::CniConfig)?;
    let pod = PodAttachment {
        sandbox_id: id.to_owned(),
        namespace: record.namespace,
        name: record.name,
        uid: record.uid,
        netns: None,
    };
    let data = CheckpointData::new(record.port_mappings, false);
    cni.del(&network, &pod, &runtime_args(&data, None, None))?;
    owed.forget(id)?;
    log::info!(
        "sandbox {id}: the owed CNI DEL of network {} succeeded",
        network.name
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::*;
    use crate::network::cni::{CniCommand, CniError, CniOptions, PluginCall, PluginExec};
    use crate::store::checkpoint::PortMapping;

    const SANDBOX: &str = "5f2c9a0e1b3d";

    /// A DEL as the fake plugin saw it: plugin, `CNI_NETNS`, stdin.
    type Del = (String, String, Value);

    /// Plugins that succeed, except `bridge`'s DEL while `fail_del` is set.
    #[derive(Debug, Clone, Default)]
    struct FlakyDel {
        fail_del: Arc<AtomicBool>,
        dels: Arc<Mutex<Vec<Del>>>,
    }

    impl PluginExec for FlakyDel {
        fn exec(&self, call: &PluginCall<'_>) -> Result<Vec<u8>, CniError> {
            if call.command != CniCommand::Del {
                return Ok(Vec::new());
            }
            let netns = call
                .env
                .iter()
                .find(|(key, _)| *key == "CNI_NETNS")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            let stdin = serde_json::from_slice(call.stdin).unwrap();
            self.dels
                .lock()
                .unwrap()
                .push((call.plugin_type.to_owned(), netns, stdin));
            if call.plugin_type == "bridge" && self.fail_del.load(Ordering::SeqCst) {
                return Err(CniError::Plugin {
                    plugin: "bridge".to_owned(),
                    command: CniCommand::Del,
                    code: 11,
                    msg: "try again later".to_owned(),
                    details: String::new(),
                });
            }
            Ok(Vec::new())
        }
    }

    fn network() -> CniNetwork {
        CniNetwork::from_recorded(
            &PathBuf::from("/etc/cni/net.d/10-pods.conflist"),
            json!({
                "cniVersion": "1.0.0",
                "name": "pods",
                "plugins": [
                    {"type": "bridge", "ipam": {"type": "host-local"}},
                    {"type": "portmap", "capabilities": {"portMappings": true}},
                ]
            }),
        )
        .unwrap()
    }

    fn pod() -> PodAttachment {
        PodAttachment {
            sandbox_id: SANDBOX.to_owned(),
            namespace: "default".to_owned(),
            name: "web".to_owned(),
            uid: "11111111-2222".to_owned(),
            netns: Some(PathBuf::from("/proc/42/ns/net")),
        }
    }

    fn ports() -> CheckpointData {
        CheckpointData::new(
            vec![PortMapping {
                protocol: Some("tcp".to_owned()),
                container_port: Some(80),
                host_port: Some(8080),
                host_ip: String::new(),
            }],
            false,
        )
    }

    struct Harness {
        _root: tempfile::TempDir,
        exec: FlakyDel,
        cni: CniRunner,
        owed: OwedTeardowns,
    }

    fn harness() -> Harness {
        let root = tempfile::tempdir().unwrap();
        let exec = FlakyDel::default();
        let cni = CniRunner::new(
            Box::new(exec.clone()),
            CniOptions {
                bin_dirs: vec![PathBuf::from("/usr/lib/cni")],
                cache_dir: root.path().join("cni-cache"),
                ipv6_dual_stack: false,
            },
        );
        let owed = OwedTeardowns::open(root.path()).unwrap();
        Harness {
            _root: root,
            exec,
            cni,
            owed,
        }
    }

    #[test]
    fn an_owed_del_stays_recorded_until_it_succeeds() {
        let h = harness();
        h.owed
            .record(SANDBOX, &owed_teardown(&pod(), &network(), &ports()))
            .unwrap();
        h.exec.fail_del.store(true, Ordering::SeqCst);
        let err = settle(&h.cni, &h.owed, SANDBOX).unwrap_err();
        assert!(err.to_string().contains("try again later"), "{err}");
        assert_eq!(h.owed.ids().unwrap(), [SANDBOX]);

        h.exec.fail_del.store(false, Ordering::SeqCst);
        settle(&h.cni, &h.owed, SANDBOX).unwrap();
        assert!(h.owed.ids().unwrap().is_empty());
    }

    #[test]
    fn an_owed_del_reaches_the_recorded_plugins_without_a_namespace_with_the_ports() {
        let h = harness();
        h.owed
            .record(SANDBOX, &owed_teardown(&pod(), &network(), &ports()))
            .unwrap();
        settle(&h.cni, &h.owed, SANDBOX).unwrap();
        let dels = h.exec.dels.lock().unwrap().clone();
        let plugins: Vec<&str> = dels.iter().map(|(plugin, _, _)| plugin.as_str()).collect();
        assert_eq!(plugins, ["portmap", "bridge", "loopback"]);
        assert!(
            dels.iter().all(|(_, netns, _)| netns.is_empty()),
            "{dels:?}"
        );
        let portmap = &dels[0].2;
        assert_eq!(portmap["name"], "pods");
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"], 8080,
            "{portmap}"
        );
    }

    #[test]
    fn nothing_owed_or_an_id_that_names_no_record_settles_at_once() {
        let h = harness();
        settle(&h.cni, &h.owed, SANDBOX).unwrap();
        settle(&h.cni, &h.owed, "../elsewhere").unwrap();
        assert!(h.exec.dels.lock().unwrap().is_empty());
    }
}
