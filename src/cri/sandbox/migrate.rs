//! Adopting the pod sandboxes cri-dockerd left, at start-up, so that a node
//! switches from cri-dockerd to dockshim without a pod being restarted.
//!
//! Both runtimes name and label Docker containers alike and write the same
//! checkpoint file, so the containers need nothing: they are listed as they
//! are. What cri-dockerd never recorded is how each pod is attached to its
//! network — it asks the namespace for the pod IP on every status call —
//! and without that dockshim would report no pod IP (the kubelet then
//! replaces the pod) and run no CNI DEL (the IP stays reserved). So each
//! checkpoint in `<cri-dockerd root>/sandbox/` that dockshim's own
//! directory lacks is copied there, atomically, with dockshim's record
//! filled in: the pod's UID (from its container), the CNI network and the
//! pod IPs from the CNI library's result cache (`--cni-cache-dir`, where
//! cri-dockerd's libcni wrote them), else the IPs read inside the running
//! sandbox's namespace and the network configured now; the namespace path
//! and pid of a running sandbox. Only then is the original moved to
//! `sandbox/.migrated-to-dockshim/`, a dot-directory cri-dockerd does not
//! list: a crash in between leaves both copies, and the next start, finding
//! dockshim's, only finishes the move. A checkpoint whose container is gone
//! is adopted too: listed NOTREADY, its StopPodSandbox runs the one DEL it
//! is owed. So is a stopped sandbox's: cri-dockerd's StopPodSandbox may
//! have run a DEL already, and a second one is what the CNI specification
//! requires plugins to tolerate, while a DEL never run leaks the pod's IP.
//! When neither the cache nor the configuration names a network,
//! the checkpoint is adopted as cri-dockerd wrote it, which dockshim reads
//! as "one DEL owed". Nothing is stopped, started or torn down here, and no
//! CNI plugin runs. dockerd must answer: a sandbox whose container cannot
//! be looked up fails the start (systemd starts dockshim again), so the
//! kubelet never meets a half-adopted node. When dockshim's root directory is cri-dockerd's own,
//! the checkpoints without dockshim's record are completed in place.
//!
//! Safety, and why adopting is automatic: the migration only reads Docker
//! and moves files, and not adopting is the harmful choice, since every
//! pod-network pod would then lose its IP and its DEL. The one danger is
//! two runtimes serving one node: a checkpoint moved from under a running
//! cri-dockerd. So a cri-dockerd process found in `/proc` makes an explicit
//! `--migrate-from-cri-dockerd=DIR` refuse to start and `auto` do nothing,
//! and `auto` adopts only when at least one checkpoint names a container of
//! the dockerd dockshim talks to — proof that cri-dockerd served this
//! engine, not another one on the same host (as in a test run against a
//! second engine). `off` turns it off.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::MigrationError;
use super::service::{CriDockerdMigration, SandboxService, CRI_DOCKERD_ROOT_DIRECTORY};
use crate::cri::naming;
use crate::docker::ContainerInspect;
use crate::host::{netns_path, Host};
use crate::network::cni::{PodIps, POD_IFNAME};
use crate::network::run_in_netns;
use crate::store::checkpoint::SandboxNetwork;
use crate::store::{CheckpointError, CheckpointStore, PodSandboxCheckpoint};

/// Where adopted checkpoints are moved, under cri-dockerd's `sandbox/`.
pub const MIGRATED_DIR: &str = ".migrated-to-dockshim";

/// The process name (`/proc/<pid>/comm`) of a running cri-dockerd.
const CRI_DOCKERD_COMM: &str = "cri-dockerd";

/// The kubelet label that carries the pod's UID.
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// What is known of a cri-dockerd sandbox besides its checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SandboxFacts {
    /// The pod's UID, from the container; empty once it is gone.
    uid: String,
    /// The pid of the running sandbox container.
    pid: Option<u32>,
    /// The CNI network the pod is attached to, from the result cache, else
    /// the one configured now; `None` if neither is known.
    network: Option<String>,
    /// The pod's addresses, from the result cache or the namespace.
    ips: PodIps,
}

/// The checkpoint dockshim keeps for a sandbox cri-dockerd checkpointed as
/// `original`: the same pod and data, and dockshim's record from `facts`.
/// A host-network sandbox owes no DEL; a sandbox whose network is unknown
/// keeps no record, which owes one DEL with the network configured then.
fn adopted_checkpoint(
    original: PodSandboxCheckpoint,
    facts: &SandboxFacts,
) -> PodSandboxCheckpoint {
    let record = if original.data.host_network {
        Some(SandboxNetwork {
            uid: facts.uid.clone(),
            ..SandboxNetwork::default()
        })
    } else {
        facts.network.as_ref().map(|network| SandboxNetwork {
            uid: facts.uid.clone(),
            runtime_handler: String::new(),
            cni_network: network.clone(),
            netns: facts
                .pid
                .map(|pid| netns_path(pid.into()).display().to_string())
                .unwrap_or_default(),
            pid: facts.pid,
            primary_ip: facts.ips.primary,
            additional_ips: facts.ips.additional.clone(),
            network_ready: facts.ips.primary.is_some(),
        })
    };
    PodSandboxCheckpoint {
        dockshim: record,
        ..original
    }
}

/// The pod's IPs among the global addresses of its interface: IPv4 first,
/// the other family as additional only on a dual-stack node, as a CNI
/// result would give them.
fn pod_ips_of(addresses: &[IpAddr], dual_stack: bool) -> PodIps {
    let global = |ip: &&IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
    };
    let v4 = addresses.iter().filter(global).find(|ip| ip.is_ipv4());
    let v6 = addresses.iter().filter(global).find(|ip| ip.is_ipv6());
    match (v4, v6) {
        (Some(v4), Some(v6)) if dual_stack => PodIps {
            primary: Some(*v4),
            additional: vec![*v6],
        },
        (v4, v6) => PodIps {
            primary: v4.or(v6).copied(),
            additional: Vec::new(),
        },
    }
}

/// Whether `comm` (a `/proc/<pid>/comm`, newline and all) is cri-dockerd's.
fn is_cri_dockerd(comm: &str) -> bool {
    comm.trim_end() == CRI_DOCKERD_COMM
}

/// The pid of a running cri-dockerd on `host`, if any.
fn running_cri_dockerd(host: &dyn Host) -> Result<Option<u32>, MigrationError> {
    let pids = host.pids().map_err(MigrationError::Proc)?;
    // A process that exits meanwhile has no comm any more: not running.
    Ok(pids
        .into_iter()
        .filter(|pid| {
            host.process_file(*pid, "comm")
                .is_some_and(|comm| is_cri_dockerd(&comm))
        })
        .find_map(|pid| u32::try_from(pid).ok()))
}

/// The addresses of the pod's interface inside the namespace `netns`.
fn addresses_in(netns: &Path) -> Result<Vec<IpAddr>, String> {
    let listed = run_in_netns(netns, || {
        nix::ifaddrs::getifaddrs().map(|addresses| {
            addresses
                .filter(|address| address.interface_name == POD_IFNAME)
                .filter_map(|address| {
                    let address = address.address?;
                    address
                        .as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .collect::<Vec<_>>()
        })
    })
    .map_err(|err| err.to_string())?;
    listed.map_err(|errno| format!("cannot list the addresses in {}: {errno}", netns.display()))
}

/// A cri-dockerd checkpoint not adopted yet, with its container.
struct Pending {
    id: String,
    checkpoint: PodSandboxCheckpoint,
    container: Option<ContainerInspect>,
}

impl SandboxService {
    /// Adopts cri-dockerd's pod sandboxes as the settings' `migration`
    /// says (see the module notes); returns how many were adopted. Run
    /// once, at start-up, before the first call is served.
    pub fn migrate_from_cri_dockerd(&self) -> Result<usize, MigrationError> {
        let (root, explicit) = match &self.settings.migration {
            CriDockerdMigration::Off => return Ok(0),
            CriDockerdMigration::Auto => (PathBuf::from(CRI_DOCKERD_ROOT_DIRECTORY), false),
            CriDockerdMigration::From(root) => (root.clone(), true),
        };
        let Some(source) = CheckpointStore::open_existing(&root)? else {
            if explicit {
                return Err(MigrationError::NothingToMigrate { dir: root });
            }
            return Ok(0);
        };
        let in_place = same_directory(source.dir(), self.checkpoints.dir());
        let mut pending = Vec::new();
        for (id, checkpoint) in source.load_all()? {
            let adopted = if in_place {
                checkpoint.dockshim.is_some()
            } else {
                self.already_adopted(&source, &id)?
            };
            if !adopted {
                pending.push((id, checkpoint));
            }
        }
        if pending.is_empty() {
            return Ok(0);
        }
        if let Some(pid) = running_cri_dockerd(self.host.as_ref())? {
            if explicit {
                return Err(MigrationError::CriDockerdRunning { pid });
            }
            log::warn!(
                "{} holds {} pod sandboxes of cri-dockerd, which is running (pid {pid}): \
                 not adopting them",
                source.dir().display(),
                pending.len()
            );
            return Ok(0);
        }
        let mut inspected = Vec::new();
        for (id, checkpoint) in pending {
            let container = match self.docker.inspect_container(&id) {
                Ok(container) => container,
                Err(source) => return Err(MigrationError::Docker { id, source }),
            };
            inspected.push(Pending {
                id,
                checkpoint,
                container,
            });
        }
        if !explicit && inspected.iter().all(|pending| pending.container.is_none()) {
            log::warn!(
                "{} holds {} cri-dockerd checkpoints, none of a container of this dockerd: \
                 not adopting them (--migrate-from-cri-dockerd={} would)",
                source.dir().display(),
                inspected.len(),
                root.display()
            );
            return Ok(0);
        }
        let count = inspected.len();
        let dual_stack = self.settings.cni.ipv6_dual_stack;
        for pending in inspected {
            self.adopt(&source, in_place, pending, dual_stack)?;
        }
        log::info!(
            "adopted {count} pod sandboxes of cri-dockerd from {}",
            source.dir().display()
        );
        Ok(count)
    }

    /// Whether dockshim has sandbox `id`'s checkpoint already; if so, a
    /// crash came between the copy and the move, and the move is made now.
    fn already_adopted(&self, source: &CheckpointStore, id: &str) -> Result<bool, MigrationError> {
        match self.checkpoints.get(id) {
            Ok(_) => {
                source.set_aside(id, MIGRATED_DIR)?;
                Ok(true)
            }
            Err(CheckpointError::NotFound { .. }) => Ok(false),
            // Moved aside by the read: cri-dockerd's copy is adopted again.
            Err(err @ CheckpointError::Corrupt { .. }) => {
                log::warn!("{err}; adopting cri-dockerd's checkpoint of {id} again");
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    fn adopt(
        &self,
        source: &CheckpointStore,
        in_place: bool,
        pending: Pending,
        dual_stack: bool,
    ) -> Result<(), MigrationError> {
        let Pending {
            id,
            checkpoint,
            container,
        } = pending;
        let facts = if checkpoint.data.host_network {
            SandboxFacts {
                uid: container.as_ref().map(pod_uid).unwrap_or_default(),
                ..SandboxFacts::default()
            }
        } else {
            self.network_facts(&id, container.as_ref(), dual_stack)
        };
        let adopted = adopted_checkpoint(checkpoint, &facts);
        self.checkpoints.save(&id, &adopted)?;
        if !in_place {
            source.set_aside(&id, MIGRATED_DIR)?;
        }
        let ip = facts
            .ips
            .primary
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        log::info!(
            "adopted cri-dockerd's pod sandbox {id} ({}/{}): container {}, pod IP {ip}",
            adopted.namespace,
            adopted.name,
            if container.is_some() {
                "present"
            } else {
                "gone"
            },
        );
        Ok(())
    }

    /// The network facts of pod-network sandbox `id`.
    fn network_facts(
        &self,
        id: &str,
        container: Option<&ContainerInspect>,
        dual_stack: bool,
    ) -> SandboxFacts {
        let pid = container
            .filter(|container| container.state.running)
            .and_then(|container| u32::try_from(container.state.pid).ok())
            .filter(|pid| *pid > 0);
        let cached = self.cni.cached_attachment(id);
        let ips = match (&cached, pid) {
            (Some(cached), _) => cached.ips.clone(),
            (None, Some(pid)) => match addresses_in(&netns_path(pid.into())) {
                Ok(addresses) => pod_ips_of(&addresses, dual_stack),
                Err(err) => {
                    log::warn!("sandbox {id}: no pod IP: {err}");
                    PodIps::default()
                }
            },
            (None, None) => PodIps::default(),
        };
        let network = match cached {
            Some(cached) => Some(cached.network),
            None => self
                .settings
                .networks
                .current(None)
                .map(|network| network.name)
                .map_err(|err| {
                    log::warn!(
                        "sandbox {id}: no cached CNI result and no network configured \
                             ({err}); its DEL will use the network configured then"
                    );
                })
                .ok(),
        };
        SandboxFacts {
            uid: container.map(pod_uid).unwrap_or_default(),
            pid,
            network,
            ips,
        }
    }
}

/// The pod UID a sandbox container records: its kubelet label, else its
/// name.
fn pod_uid(container: &ContainerInspect) -> String {
    container
        .config
        .labels
        .get(POD_UID_LABEL)
        .cloned()
        .or_else(|| {
            naming::parse_sandbox_name(&container.name)
                .ok()
                .map(|metadata| metadata.uid)
        })
        .unwrap_or_default()
}

/// Whether `a` and `b` name one directory.
fn same_directory(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::Code;
    use crate::host::RecordingHost;
    use crate::store::checkpoint::{CheckpointData, PortMapping};

    fn cri_dockerd_checkpoint(host_network: bool) -> PodSandboxCheckpoint {
        PodSandboxCheckpoint {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            data: CheckpointData::new(
                vec![PortMapping {
                    protocol: Some("tcp".to_owned()),
                    container_port: Some(80),
                    host_port: Some(8080),
                    host_ip: String::new(),
                }],
                host_network,
            ),
            dockshim: None,
        }
    }

    fn running_facts() -> SandboxFacts {
        SandboxFacts {
            uid: "0d1e2f".to_owned(),
            pid: Some(4242),
            network: Some("pods".to_owned()),
            ips: PodIps {
                primary: Some("10.88.0.7".parse().unwrap()),
                additional: Vec::new(),
            },
        }
    }

    #[test]
    fn an_adopted_running_sandbox_keeps_its_pod_and_ports_and_gains_its_network() {
        let adopted = adopted_checkpoint(cri_dockerd_checkpoint(false), &running_facts());
        assert_eq!(adopted.name, "web");
        assert_eq!(adopted.data, cri_dockerd_checkpoint(false).data);
        let record = adopted.dockshim.unwrap();
        assert_eq!(record.uid, "0d1e2f");
        assert_eq!(record.runtime_handler, "");
        assert_eq!(record.cni_network, "pods");
        assert_eq!(record.netns, "/proc/4242/ns/net");
        assert_eq!(record.pid, Some(4242));
        assert_eq!(record.primary_ip, Some("10.88.0.7".parse().unwrap()));
        assert!(record.network_ready);
    }

    #[test]
    fn an_adopted_checkpoint_without_a_container_still_owes_its_del() {
        let facts = SandboxFacts {
            uid: String::new(),
            pid: None,
            ..running_facts()
        };
        let record = adopted_checkpoint(cri_dockerd_checkpoint(false), &facts)
            .dockshim
            .unwrap();
        assert_eq!(record.cni_network, "pods");
        assert_eq!(record.netns, "");
        assert_eq!(record.pid, None);
    }

    #[test]
    fn a_sandbox_of_unknown_network_is_adopted_as_cri_dockerd_wrote_it() {
        let facts = SandboxFacts {
            network: None,
            ..running_facts()
        };
        let adopted = adopted_checkpoint(cri_dockerd_checkpoint(false), &facts);
        assert_eq!(adopted, cri_dockerd_checkpoint(false));
    }

    #[test]
    fn a_sandbox_without_an_address_is_attached_but_not_ready() {
        let facts = SandboxFacts {
            ips: PodIps::default(),
            ..running_facts()
        };
        let record = adopted_checkpoint(cri_dockerd_checkpoint(false), &facts)
            .dockshim
            .unwrap();
        assert_eq!(record.cni_network, "pods");
        assert!(!record.network_ready);
    }

    #[test]
    fn an_adopted_host_network_sandbox_owes_no_del() {
        let record = adopted_checkpoint(cri_dockerd_checkpoint(true), &running_facts())
            .dockshim
            .unwrap();
        assert_eq!(record.uid, "0d1e2f");
        assert_eq!(record.cni_network, "");
        assert_eq!(record.primary_ip, None);
    }

    #[test]
    fn pod_ips_skip_link_local_addresses_and_prefer_ipv4() {
        let addresses: Vec<IpAddr> = ["fe80::1", "fd00::7", "10.88.0.7"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        let single = pod_ips_of(&addresses, false);
        assert_eq!(single.primary, Some("10.88.0.7".parse().unwrap()));
        assert!(single.additional.is_empty());
        let dual = pod_ips_of(&addresses, true);
        assert_eq!(dual.additional, ["fd00::7".parse::<IpAddr>().unwrap()]);
        let v6_only = pod_ips_of(&addresses[..2], true);
        assert_eq!(v6_only.primary, Some("fd00::7".parse().unwrap()));
        assert_eq!(pod_ips_of(&addresses[..1], false), PodIps::default());
    }

    #[test]
    fn a_running_cri_dockerd_is_found_by_its_process_name() {
        let node = RecordingHost::default()
            .with_file(1, "comm", "systemd\n")
            .with_file(77, "comm", "dockerd\n");
        assert_eq!(running_cri_dockerd(&node).unwrap(), None);
        let node = node.with_file(812, "comm", "cri-dockerd\n");
        assert_eq!(running_cri_dockerd(&node).unwrap(), Some(812));
        assert!(!is_cri_dockerd("cri-dockerd-wrapper\n"));
    }

    #[test]
    fn refusals_name_what_to_do() {
        let err = MigrationError::CriDockerdRunning { pid: 812 };
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.to_string().contains("stop it"), "{err}");
        let err = MigrationError::NothingToMigrate {
            dir: PathBuf::from("/srv/cri"),
        };
        assert!(err.to_string().contains("/srv/cri has no sandbox"), "{err}");
    }
}
