//! `StatsService`: ContainerStats, ListContainerStats, PodSandboxStats and
//! ListPodSandboxStats, answered from the state index and the kernel
//! through the `stats` readers; why one of them failed is
//! `cri::error`'s `StatsServiceError`.
//!
//! dockerd is asked once, for its cgroup driver, cgroup version and image
//! store (`GET /info`), on the first call; after that no call asks it
//! anything: identities, pids, cgroup parents and writable layer paths come
//! from the index and the engine's layout, figures from the cgroup
//! filesystem and `/proc`, and layer sizes from the `stats::layer` cache,
//! whose background walks this module only requests. Only running
//! containers and ready sandboxes have figures: the lists leave the others
//! out, as the kubelet expects, and a container that stops while a list is
//! read is left out, not an error. A pod's figures are its pod cgroup's
//! when the kubelet gave the sandbox one, otherwise the sum of its sandbox
//! container's and its running containers' cgroups.
//!
//! A list's subjects are read on up to [`MAX_READ_THREADS`] threads (one
//! per core) that end before the call answers: the figures are about a
//! dozen small kernel files per pod, which the kernel formats anew on
//! every read, so the work is CPU time that spreads over cores. The
//! cgroup files stay open between calls (`stats::kept`), for running
//! containers and ready sandboxes only: each list closes the others'.
//! This module reads no cgroup file itself; it must not make a Docker
//! call on the request path once warm.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::SystemTime;

use nix::sys::resource::{getrlimit, Resource};

use crate::api::v1;
use crate::cri::container::{container_status, StatusImage};
use crate::cri::error::NamingError;
use crate::cri::error::StatsServiceError;
use crate::cri::naming;
use crate::docker::{DockerApi, Engine};
use crate::index::{ContainerFilter, CriState, Entry, Index, SandboxFilter};
use crate::stats::{
    self, cgroup, network, unix_nanos, CgroupLocator, CgroupUsage, CgroupVersion, CpuSampler,
    KeptFiles, LayerLocation, LayerSizes, StatsError,
};

/// Where the kernel shows processes.
const PROC_ROOT: &str = "/proc";
/// Most threads reading one list's figures, the calling one included.
pub const MAX_READ_THREADS: usize = 4;
/// Fewer subjects than this per thread are not worth a thread's start.
const MIN_SUBJECTS_PER_THREAD: usize = 8;

/// What the stats calls work with.
pub struct StatsService {
    docker: Arc<dyn DockerApi>,
    index: Arc<Index>,
    /// See [`Node`]; `None` until dockerd first answered.
    node: Mutex<Option<Arc<Node>>>,
    /// Previous CPU readings of containers (sandbox containers included).
    container_cpu: CpuSampler,
    /// Previous CPU readings of pods, by sandbox ID.
    pod_cpu: CpuSampler,
    /// The cgroup files of running containers (sandbox containers
    /// included), kept open between calls.
    container_files: KeptFiles,
    /// The pod cgroup files of ready sandboxes, kept open between calls,
    /// under the same cap as `container_files`.
    pod_files: KeptFiles,
    layers: LayerSizes,
}

impl fmt::Debug for StatsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsService")
            .field("containers_sampled", &self.container_cpu.len())
            .field("pods_sampled", &self.pod_cpu.len())
            .field("files_kept", &self.container_files.open())
            .finish_non_exhaustive()
    }
}

/// What the stats calls need of the node and of dockerd, learned once:
/// dockerd's cgroup driver, version and image store change only with a
/// daemon restart, which also ends every container.
#[derive(Debug)]
struct Node {
    locator: CgroupLocator,
    engine: Arc<Engine>,
    /// The filesystem the writable layers live on, as ImageFsInfo names
    /// it (`Engine::storage_dirs`).
    layers_dir: String,
    /// `/proc` outside tests.
    proc_root: PathBuf,
    /// Threads a list is read on: the cores this process may use, at most
    /// [`MAX_READ_THREADS`].
    read_threads: usize,
}

impl StatsService {
    /// The stats calls over a running index. Nothing is read until the
    /// first call.
    pub fn new(docker: Arc<dyn DockerApi>, index: Arc<Index>) -> StatsService {
        let open_files = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(soft, _)| soft);
        let container_files = KeptFiles::new(KeptFiles::cap_within(open_files));
        StatsService {
            docker,
            index,
            node: Mutex::new(None),
            container_cpu: CpuSampler::new(),
            pod_cpu: CpuSampler::new(),
            pod_files: container_files.sharing_cap(),
            container_files,
            layers: LayerSizes::default(),
        }
    }

    /// ContainerStats. A known container that is not running has its
    /// identity and writable layer but no CPU or memory figures.
    pub fn container_stats(&self, id: &str) -> Result<v1::ContainerStats, StatsServiceError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| StatsServiceError::not_found("container", id))?;
        let node = self.node()?;
        let reader = self.reader(&node);
        let usage = reader.usage(&entry)?;
        Ok(reader.container_stats(&entry, usage.as_ref())?)
    }

    /// ListContainerStats: the running containers `filter` selects.
    pub fn list_container_stats(
        &self,
        filter: Option<&v1::ContainerStatsFilter>,
    ) -> Result<Vec<v1::ContainerStats>, StatsServiceError> {
        let entries = self.index.containers(&container_filter(filter))?;
        let node = self.node()?;
        let reader = self.reader(&node);
        let read = read_all(node.read_threads, &entries, |entry| {
            let Some(usage) = reader.usage(entry)? else {
                return Ok(None);
            };
            match reader.container_stats(entry, Some(&usage)) {
                Ok(one) => Ok(Some(one)),
                // Not made through the CRI: ListContainers leaves it out too.
                Err(err) => {
                    log::debug!("stats of container {}: {err}", entry.id);
                    Ok(None)
                }
            }
        });
        let stats = read
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, StatsServiceError>>()?;
        self.forget_removed(&node)?;
        Ok(stats)
    }

    /// PodSandboxStats. A known sandbox that is not ready has its identity
    /// but no figures.
    pub fn pod_sandbox_stats(&self, id: &str) -> Result<v1::PodSandboxStats, StatsServiceError> {
        let sandbox = self
            .index
            .sandbox(id)?
            .ok_or_else(|| StatsServiceError::not_found("pod sandbox", id))?;
        let node = self.node()?;
        let members = if sandbox.is_ready() {
            self.index.containers_of(&sandbox.id)?
        } else {
            Vec::new()
        };
        self.reader(&node).pod_stats(&sandbox, &members)
    }

    /// ListPodSandboxStats: the ready sandboxes `filter` selects.
    pub fn list_pod_sandbox_stats(
        &self,
        filter: Option<&v1::PodSandboxStatsFilter>,
    ) -> Result<Vec<v1::PodSandboxStats>, StatsServiceError> {
        let sandboxes = self.index.sandboxes(&sandbox_filter(filter))?;
        let containers = self.index.containers(&ContainerFilter::default())?;
        let mut members: HashMap<&str, Vec<Arc<Entry>>> = HashMap::new();
        for container in &containers {
            members
                .entry(container.sandbox_id.as_str())
                .or_default()
                .push(Arc::clone(container));
        }
        let node = self.node()?;
        let reader = self.reader(&node);
        let stats = read_all(node.read_threads, &sandboxes, |sandbox| {
            let of_sandbox = match members.get(sandbox.id.as_str()) {
                Some(of_sandbox) if sandbox.is_ready() => of_sandbox.as_slice(),
                _ => &[],
            };
            reader.pod_stats(sandbox, of_sandbox)
        });
        let stats = stats.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.forget_removed(&node)?;
        Ok(stats)
    }

    fn reader<'a>(&'a self, node: &'a Node) -> Reader<'a> {
        Reader {
            node,
            container_cpu: &self.container_cpu,
            pod_cpu: &self.pod_cpu,
            container_files: &self.container_files,
            pod_files: &self.pod_files,
            layers: &self.layers,
            timestamp_ns: unix_nanos(SystemTime::now()),
        }
    }

    /// Drops the CPU readings, cgroup locations and layer sizes of
    /// containers and sandboxes the index no longer holds, and closes the
    /// kept files of containers that no longer run and of sandboxes that
    /// are no longer ready.
    fn forget_removed(&self, node: &Node) -> Result<(), StatsServiceError> {
        let containers = self.index.containers(&ContainerFilter::default())?;
        let sandboxes = self.index.sandboxes(&SandboxFilter::default())?;
        // Both lists are in ID order.
        let find = |entries: &[Arc<Entry>], id: &str| {
            let at = entries.binary_search_by(|e| e.id.as_str().cmp(id)).ok()?;
            entries.get(at).map(Arc::clone)
        };
        let known = |id: &str| find(&containers, id).or_else(|| find(&sandboxes, id));
        self.container_cpu.retain(|id| known(id).is_some());
        self.pod_cpu.retain(|id| find(&sandboxes, id).is_some());
        self.layers.retain(|id| known(id).is_some());
        node.locator.retain(|id| known(id).is_some());
        self.container_files
            .retain(|id| known(id).is_some_and(|e| e.is_running()));
        self.pod_files
            .retain(|id| find(&sandboxes, id).is_some_and(|e| e.is_ready()));
        Ok(())
    }

    /// See [`Node`]: asked of dockerd on the first call that finds it up.
    fn node(&self) -> Result<Arc<Node>, StatsServiceError> {
        let mut cached = self.node.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = cached.as_ref() {
            return Ok(Arc::clone(node));
        }
        let engine = self
            .docker
            .engine()
            .map_err(|err| StatsServiceError::docker("read dockerd's image store", err))?;
        let info = self.docker.info().map_err(|err| {
            StatsServiceError::docker("read dockerd's cgroup driver and version", err)
        })?;
        let cgroup_setup = || -> Result<CgroupLocator, StatsError> {
            let driver = cgroup::driver_from_docker_info(&info.cgroup_driver)?;
            let version = CgroupVersion::from_docker_info(&info.cgroup_version)?;
            CgroupLocator::discover(Path::new(PROC_ROOT), driver, version)
        };
        let locator = cgroup_setup().map_err(|source| StatsServiceError::Stats {
            subject: "this node's cgroup hierarchies".to_owned(),
            source,
        })?;
        let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let layers_dir = engine.storage_dirs(Path::is_dir).layers;
        let node = Arc::new(Node {
            locator,
            layers_dir: layers_dir.display().to_string(),
            engine,
            proc_root: PathBuf::from(PROC_ROOT),
            read_threads: cores.min(MAX_READ_THREADS),
        });
        *cached = Some(Arc::clone(&node));
        Ok(node)
    }
}

/// One call's view: the node, the samplers and the layer cache, and the
/// timestamp every figure of the call carries.
#[derive(Debug)]
struct Reader<'a> {
    node: &'a Node,
    container_cpu: &'a CpuSampler,
    pod_cpu: &'a CpuSampler,
    container_files: &'a KeptFiles,
    pod_files: &'a KeptFiles,
    layers: &'a LayerSizes,
    timestamp_ns: i64,
}

impl Reader<'_> {
    /// The cgroup figures of a container or sandbox container; `None` when
    /// it is not running or its cgroup vanished as it was read (it just
    /// stopped).
    fn usage(&self, entry: &Entry) -> Result<Option<CgroupUsage>, StatsServiceError> {
        let pid = u32::try_from(entry.pid).unwrap_or(0);
        if !entry.is_running() || pid == 0 {
            return Ok(None);
        }
        let reading = self
            .node
            .locator
            .container(&entry.id, &entry.cgroup_parent, pid)
            .and_then(|cgroup| {
                self.container_files.read(&entry.id, |files| {
                    stats::read_usage(
                        &cgroup,
                        files,
                        self.container_cpu,
                        &entry.id,
                        self.timestamp_ns,
                    )
                })
            });
        match reading {
            Ok(usage) => Ok(Some(usage)),
            Err(err) if err.is_gone() => {
                log::debug!("container {} stopped while read: {err}", entry.id);
                Ok(None)
            }
            Err(source) => Err(StatsServiceError::Stats {
                subject: format!("container {}", entry.id),
                source,
            }),
        }
    }

    /// A container's CRI stats: its identity, `usage` if it has figures,
    /// and its writable layer as last measured (a walk is requested when
    /// the figure is missing or old).
    fn container_stats(
        &self,
        entry: &Entry,
        usage: Option<&CgroupUsage>,
    ) -> Result<v1::ContainerStats, NamingError> {
        let writable_layer = self.layer_location(entry).and_then(|location| {
            self.layers
                .get(&entry.id, &location)
                .map(|layer| layer.to_cri(&self.node.layers_dir))
        });
        Ok(v1::ContainerStats {
            attributes: Some(container_attributes(entry)?),
            cpu: usage.map(|u| u.cpu),
            memory: usage.map(|u| u.memory),
            writable_layer,
            swap: usage.and_then(|u| u.swap),
            io: usage.and_then(|u| u.io),
        })
    }

    /// Where `entry`'s writable layer is: the directory its graph driver
    /// names, or under the containerd image store its root filesystem's
    /// mount point while it runs; `None` under a driver that names no
    /// directory (`vfs`, `btrfs`, ...).
    fn layer_location(&self, entry: &Entry) -> Option<LayerLocation> {
        if !entry.upper_dir.is_empty() {
            return Some(LayerLocation::Dir(PathBuf::from(&entry.upper_dir)));
        }
        let rootfs = self
            .node
            .engine
            .container_rootfs(&entry.layer_driver, &entry.id)?;
        Some(if entry.is_running() {
            LayerLocation::RootfsMount(rootfs)
        } else {
            LayerLocation::Remembered
        })
    }

    /// A pod's CRI stats from its sandbox and the containers the index
    /// lists for it (`members`, any state).
    fn pod_stats(
        &self,
        sandbox: &Entry,
        members: &[Arc<Entry>],
    ) -> Result<v1::PodSandboxStats, StatsServiceError> {
        let attributes = Some(sandbox_attributes(sandbox));
        if !sandbox.is_ready() {
            return Ok(v1::PodSandboxStats {
                attributes,
                linux: None,
                windows: None,
            });
        }
        let mut containers = Vec::with_capacity(members.len());
        let mut usages = Vec::with_capacity(members.len().saturating_add(1));
        for member in members {
            let Some(usage) = self.usage(member)? else {
                continue;
            };
            match self.container_stats(member, Some(&usage)) {
                Ok(stats) => containers.push(stats),
                Err(err) => log::debug!("stats of container {}: {err}", member.id),
            }
            usages.push(usage);
        }
        let pod = match self.pod_cgroup_usage(sandbox) {
            Some(usage) => usage,
            None => {
                usages.extend(self.usage(sandbox)?);
                let mut sum = sum_usage(&usages, self.timestamp_ns);
                let total = sum.cpu.usage_core_nano_seconds.map_or(0, |v| v.value);
                sum.cpu.usage_nano_cores = self
                    .pod_cpu
                    .observe(&sandbox.id, self.timestamp_ns, total)
                    .map(|value| v1::UInt64Value { value });
                sum
            }
        };
        Ok(v1::PodSandboxStats {
            attributes,
            linux: Some(v1::LinuxPodSandboxStats {
                cpu: Some(pod.cpu),
                memory: Some(pod.memory),
                network: self.network(sandbox),
                process: Some(pod.process),
                containers,
                io: pod.io,
            }),
            windows: None,
        })
    }

    /// The figures of the sandbox's pod cgroup, when it has one that can
    /// be read; otherwise the caller sums the pod's containers.
    fn pod_cgroup_usage(&self, sandbox: &Entry) -> Option<CgroupUsage> {
        let reading = self
            .node
            .locator
            .pod(&sandbox.cgroup_parent)
            .and_then(|cgroup| {
                cgroup
                    .map(|cgroup| {
                        self.pod_files.read(&sandbox.id, |files| {
                            stats::read_usage(
                                &cgroup,
                                files,
                                self.pod_cpu,
                                &sandbox.id,
                                self.timestamp_ns,
                            )
                        })
                    })
                    .transpose()
            });
        reading.unwrap_or_else(|err| {
            log::debug!(
                "pod cgroup {:?} of sandbox {}: {err}; summing its containers",
                sandbox.cgroup_parent,
                sandbox.id
            );
            None
        })
    }

    /// The interface counters of the sandbox's network namespace; `None`
    /// when its process is gone or they cannot be read.
    fn network(&self, sandbox: &Entry) -> Option<v1::NetworkUsage> {
        let pid = u32::try_from(sandbox.pid).ok().filter(|pid| *pid != 0)?;
        // Not kept: an open `net/dev` holds its network namespace, and
        // would go on reading it after the sandbox's process has ended.
        let read = self.pod_files.read_unkept(|files| {
            network::read(&self.node.proc_root, pid, files, self.timestamp_ns)
        });
        match read {
            Ok(usage) => Some(usage),
            Err(err) => {
                log::debug!("network of sandbox {}: {err}", sandbox.id);
                None
            }
        }
    }
}

/// `read` applied to each of `subjects`, in order, on up to `threads`
/// threads (the calling one included) of at least
/// [`MIN_SUBJECTS_PER_THREAD`] subjects each. A thread that cannot be
/// started leaves its share to the calling thread; a panic in `read`
/// reaches the caller as it would without threads.
fn read_all<T, R>(threads: usize, subjects: &[T], read: impl Fn(&T) -> R + Sync) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let threads = threads.min(subjects.len() / MIN_SUBJECTS_PER_THREAD).max(1);
    if threads == 1 {
        return subjects.iter().map(&read).collect();
    }
    let share = subjects.len().div_ceil(threads);
    let read = &read;
    thread::scope(|scope| {
        let mut shares = subjects.chunks(share);
        let own = shares.next().unwrap_or_default();
        let started: Vec<_> = shares
            .map(|part| {
                let spawned = thread::Builder::new()
                    .name("stats-read".to_owned())
                    .spawn_scoped(scope, move || part.iter().map(read).collect::<Vec<R>>());
                (part, spawned)
            })
            .collect();
        let mut results: Vec<R> = own.iter().map(read).collect();
        for (part, spawned) in started {
            match spawned {
                Ok(handle) => match handle.join() {
                    Ok(part_results) => results.extend(part_results),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(err) => {
                    log::debug!("cannot start a stats-read thread: {err}; reading on this one");
                    results.extend(part.iter().map(read));
                }
            }
        }
        results
    })
}

/// The pod's figures as the sum of its containers' cgroups. CPU time,
/// memory, swap use and tasks add up; the rate is left to the caller (it
/// needs the pod's own previous reading), and so are figures that do not
/// add up: available memory (no pod limit is known here) and pressure.
fn sum_usage(parts: &[CgroupUsage], timestamp_ns: i64) -> CgroupUsage {
    let total = |pick: &dyn Fn(&CgroupUsage) -> Option<v1::UInt64Value>| {
        parts
            .iter()
            .filter_map(pick)
            .map(|v| v.value)
            .reduce(u64::saturating_add)
            .map(|value| v1::UInt64Value { value })
    };
    let swap = parts
        .iter()
        .any(|p| p.swap.is_some())
        .then(|| v1::SwapUsage {
            timestamp: timestamp_ns,
            swap_available_bytes: None,
            swap_usage_bytes: total(&|p| p.swap.as_ref().and_then(|s| s.swap_usage_bytes)),
        });
    let zero = || Some(v1::UInt64Value { value: 0 });
    CgroupUsage {
        cpu: v1::CpuUsage {
            timestamp: timestamp_ns,
            usage_core_nano_seconds: total(&|p| p.cpu.usage_core_nano_seconds).or_else(zero),
            usage_nano_cores: None,
            psi: None,
        },
        memory: v1::MemoryUsage {
            timestamp: timestamp_ns,
            working_set_bytes: total(&|p| p.memory.working_set_bytes).or_else(zero),
            available_bytes: None,
            usage_bytes: total(&|p| p.memory.usage_bytes).or_else(zero),
            rss_bytes: total(&|p| p.memory.rss_bytes),
            page_faults: total(&|p| p.memory.page_faults),
            major_page_faults: total(&|p| p.memory.major_page_faults),
            psi: None,
        },
        swap,
        io: None,
        process: v1::ProcessUsage {
            timestamp: timestamp_ns,
            process_count: total(&|p| p.process.process_count).or_else(zero),
        },
    }
}

/// A container's identity in stats, as ListContainers reports it.
fn container_attributes(entry: &Entry) -> Result<v1::ContainerAttributes, NamingError> {
    let status = container_status(entry, &StatusImage::default())?;
    Ok(v1::ContainerAttributes {
        id: entry.id.clone(),
        metadata: status.metadata,
        labels: status.labels,
        annotations: status.annotations,
    })
}

/// A sandbox's identity in stats: the metadata its Docker name records
/// (none for a sandbox not named by the CRI), its labels and annotations.
fn sandbox_attributes(entry: &Entry) -> v1::PodSandboxAttributes {
    let owned = |(key, value): (&str, &str)| (key.to_owned(), value.to_owned());
    v1::PodSandboxAttributes {
        id: entry.id.clone(),
        metadata: naming::parse_sandbox_name(&entry.name).ok(),
        labels: entry.cri_labels().map(owned).collect(),
        annotations: entry.annotations().map(owned).collect(),
    }
}

/// The index filter for ListContainerStats: running containers only, the
/// other fields as in ListContainers (empty filters nothing).
fn container_filter(filter: Option<&v1::ContainerStatsFilter>) -> ContainerFilter {
    let non_empty = |text: &str| Some(text.to_owned()).filter(|text| !text.is_empty());
    let running = ContainerFilter {
        state: Some(CriState::Running),
        ..ContainerFilter::default()
    };
    let Some(filter) = filter else {
        return running;
    };
    ContainerFilter {
        id_prefix: non_empty(&filter.id),
        sandbox_id: non_empty(&filter.pod_sandbox_id),
        labels: filter
            .label_selector
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        ..running
    }
}

/// The index filter for ListPodSandboxStats: ready sandboxes only.
fn sandbox_filter(filter: Option<&v1::PodSandboxStatsFilter>) -> SandboxFilter {
    let ready = SandboxFilter {
        ready: Some(true),
        ..SandboxFilter::default()
    };
    let Some(filter) = filter else {
        return ready;
    };
    SandboxFilter {
        id_prefix: Some(filter.id.clone()).filter(|id| !id.is_empty()),
        labels: filter
            .label_selector
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        ..ready
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::fs;

    use serde_json::json;

    use super::*;
    use crate::docker::ApiVersion;
    use crate::grpc::{Code, Status};
    use crate::stats::LayerLimits;

    const T0: i64 = 1_700_000_000_000_000_000;
    const SECOND: i64 = 1_000_000_000;
    const SANDBOX: &str = "5d1b";
    const APP: &str = "c0ffee";
    const SIDECAR: &str = "5eed";
    /// The managed containerd's overlayfs snapshotter, under the data root.
    const CONTAINERD_OVERLAYFS: &str = "containerd/daemon/io.containerd.snapshotter.v1.overlayfs";

    /// A node with one cgroup v2 hierarchy and a `/proc` in a temporary
    /// directory, dockerd on the cgroupfs driver.
    struct Fixture {
        dir: tempfile::TempDir,
        node: Node,
        container_cpu: CpuSampler,
        pod_cpu: CpuSampler,
        container_files: KeptFiles,
        pod_files: KeptFiles,
        layers: LayerSizes,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::with_engine(
                |_| json!({"Driver": "overlay2", "DockerRootDir": "/var/lib/docker"}),
            )
        }

        /// A node whose dockerd uses the containerd image store, its data
        /// root and the managed containerd's root in the temporary
        /// directory, and whose mount table is the file `mountinfo` there.
        fn containerd() -> Fixture {
            let mut fixture = Fixture::with_engine(|dir| {
                let root = dir.join("data");
                fs::create_dir_all(root.join(CONTAINERD_OVERLAYFS)).unwrap();
                json!({
                    "Driver": "overlayfs",
                    "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
                    "DockerRootDir": root,
                })
            });
            fixture.layers = LayerSizes::with_mountinfo(
                LayerLimits {
                    refresh_after: std::time::Duration::ZERO,
                    ..LayerLimits::default()
                },
                fixture.dir.path().join("mountinfo"),
            );
            fixture
        }

        /// `info` makes dockerd's `/info` from the temporary directory.
        fn with_engine(info: impl FnOnce(&Path) -> serde_json::Value) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let info = crate::codec::json::FromJson::from_json(&info(dir.path())).unwrap();
            let engine = Arc::new(Engine::new(ApiVersion::new(1, 44), &info));
            let mountinfo = format!(
                "41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n",
                dir.path().join("cgroup").display()
            );
            let proc_root = dir.path().join("proc");
            let locator = CgroupLocator::from_mountinfo(
                &mountinfo,
                &proc_root,
                v1::CgroupDriver::Cgroupfs,
                CgroupVersion::V2,
            )
            .unwrap();
            Fixture {
                node: Node {
                    locator,
                    layers_dir: engine
                        .storage_dirs(Path::is_dir)
                        .layers
                        .display()
                        .to_string(),
                    engine,
                    proc_root,
                    read_threads: 1,
                },
                dir,
                container_cpu: CpuSampler::new(),
                pod_cpu: CpuSampler::new(),
                container_files: KeptFiles::new(0),
                pod_files: KeptFiles::new(0),
                layers: LayerSizes::default(),
            }
        }

        fn reader(&self, timestamp_ns: i64) -> Reader<'_> {
            Reader {
                node: &self.node,
                container_cpu: &self.container_cpu,
                pod_cpu: &self.pod_cpu,
                container_files: &self.container_files,
                pod_files: &self.pod_files,
                layers: &self.layers,
                timestamp_ns,
            }
        }

        /// Writes the v2 files of the cgroup at `path` (below the mount).
        fn cgroup(&self, path: &str, cpu_usec: u64, memory: u64, tasks: u64) {
            let dir = self.dir.path().join("cgroup").join(path);
            fs::create_dir_all(&dir).unwrap();
            let write = |name: &str, text: String| fs::write(dir.join(name), text).unwrap();
            write("cpu.stat", format!("usage_usec {cpu_usec}\n"));
            write("memory.current", format!("{memory}\n"));
            write(
                "memory.stat",
                format!("anon {}\ninactive_file 1000\npgfault 7\n", memory / 2),
            );
            write("memory.max", "max\n".to_owned());
            write("pids.current", format!("{tasks}\n"));
        }

        fn net_dev(&self, pid: u32) {
            let dir = self.node.proc_root.join(pid.to_string()).join("net");
            fs::create_dir_all(&dir).unwrap();
            fs::write(
                dir.join("dev"),
                "Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n\
                 eth0: 736 8 0 0 0 0 0 0 586 7 0 0 0 0 0 0\n",
            )
            .unwrap();
        }
    }

    /// An indexed container or sandbox as dockerd would describe it.
    fn entry(id: &str, kind: &str, name: &str, status: &str, pid: i64, parent: &str) -> Entry {
        let inspect = json!({
            "Id": id,
            "Name": format!("/{name}"),
            "State": {"Status": status, "Pid": pid},
            "HostConfig": {"CgroupParent": parent},
            "Config": {"Labels": {
                "io.kubernetes.docker.type": kind,
                "io.kubernetes.sandbox.id": SANDBOX,
                "tier": "web",
                "annotation.seen": "yes",
            }},
        });
        Entry::from_inspect(&crate::codec::json::FromJson::from_json(&inspect).unwrap()).unwrap()
    }

    fn sandbox(status: &str, parent: &str) -> Entry {
        entry(
            SANDBOX,
            "podsandbox",
            "k8s_POD_web_prod_uid1_0",
            status,
            4242,
            parent,
        )
    }

    fn container(id: &str, name: &str, status: &str) -> Arc<Entry> {
        let pid = if status == "running" { 4343 } else { 0 };
        let name = format!("k8s_{name}_web_prod_uid1_0");
        Arc::new(entry(id, "container", &name, status, pid, ""))
    }

    fn value(v: Option<v1::UInt64Value>) -> u64 {
        v.unwrap().value
    }

    #[test]
    fn a_running_container_has_its_cgroup_figures_and_identity() {
        let fixture = Fixture::new();
        fixture.cgroup(&format!("docker/{APP}"), 2_000_000, 50_000_000, 3);
        let app = container(APP, "app", "running");
        let reader = fixture.reader(T0);
        let usage = reader.usage(&app).unwrap().unwrap();
        let stats = reader.container_stats(&app, Some(&usage)).unwrap();
        let attributes = stats.attributes.unwrap();
        assert_eq!(attributes.id, APP);
        assert_eq!(attributes.metadata.unwrap().name, "app");
        assert_eq!(
            attributes.labels.get("tier").map(String::as_str),
            Some("web")
        );
        assert!(!attributes.labels.contains_key("io.kubernetes.sandbox.id"));
        assert_eq!(
            attributes.annotations.get("seen").map(String::as_str),
            Some("yes")
        );
        let cpu = stats.cpu.unwrap();
        assert_eq!(cpu.timestamp, T0);
        assert_eq!(value(cpu.usage_core_nano_seconds), 2_000_000_000);
        assert_eq!(cpu.usage_nano_cores, None);
        assert_eq!(value(stats.memory.unwrap().working_set_bytes), 49_999_000);
        // No overlay2 layer directory: no writable layer figures.
        assert_eq!(stats.writable_layer, None);

        // A second of CPU over two seconds: half a core.
        fixture.cgroup(&format!("docker/{APP}"), 3_000_000, 50_000_000, 3);
        let later = fixture
            .reader(T0 + 2 * SECOND)
            .usage(&app)
            .unwrap()
            .unwrap();
        assert_eq!(value(later.cpu.usage_nano_cores), 500_000_000);
    }

    #[test]
    fn stopped_and_vanished_containers_have_no_figures() {
        let fixture = Fixture::new();
        let reader = fixture.reader(T0);
        let exited = container(APP, "app", "exited");
        assert_eq!(reader.usage(&exited).unwrap(), None);
        let stats = reader.container_stats(&exited, None).unwrap();
        assert_eq!(stats.attributes.unwrap().id, APP);
        assert_eq!((stats.cpu, stats.memory), (None, None));
        // Running as far as the index knows, but its cgroup is gone.
        let gone = container(SIDECAR, "sidecar", "running");
        assert_eq!(reader.usage(&gone).unwrap(), None);
    }

    #[test]
    fn a_writable_layer_is_reported_on_dockerd_s_root_once_measured() {
        let fixture = Fixture::new();
        let upper = fixture.dir.path().join("upper");
        fs::create_dir_all(&upper).unwrap();
        fs::write(upper.join("file"), vec![1u8; 10_000]).unwrap();
        let mut app = (*container(APP, "app", "exited")).clone();
        app.upper_dir = upper.display().to_string();
        let reader = fixture.reader(T0);
        assert_eq!(
            reader.container_stats(&app, None).unwrap().writable_layer,
            None
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let layer = loop {
            if let Some(layer) = reader.container_stats(&app, None).unwrap().writable_layer {
                break layer;
            }
            assert!(std::time::Instant::now() < deadline, "no walk finished");
            thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(layer.fs_id.unwrap().mountpoint, "/var/lib/docker");
        assert!(value(layer.used_bytes) >= 10_000);
        assert_eq!(value(layer.inodes_used), 2);
    }

    /// Polls `entry`'s stats until its writable layer has at least `bytes`.
    fn layer_of(reader: &Reader<'_>, entry: &Entry, bytes: u64) -> v1::FilesystemUsage {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let layer = reader.container_stats(entry, None).unwrap().writable_layer;
            if let Some(layer) = layer.filter(|l| value(l.used_bytes) >= bytes) {
                return layer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no walk found {bytes} bytes"
            );
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_snapshotter_s_layer_is_found_by_the_rootfs_mount_and_kept_once_stopped() {
        let fixture = Fixture::containerd();
        let root = fixture.dir.path().join("data");
        let snapshots = root.join(CONTAINERD_OVERLAYFS).join("snapshots");
        let upper = snapshots.join("3/fs");
        fs::create_dir_all(&upper).unwrap();
        fs::write(upper.join("data"), vec![1u8; 10_000]).unwrap();
        let mountinfo = fixture.dir.path().join("mountinfo");
        fs::write(
            &mountinfo,
            format!(
                "24 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 51 24 0:40 / {} rw - overlay overlay rw,lowerdir={}/1/fs,upperdir={},workdir={}/3/work\n",
                root.join("rootfs/overlayfs").join(APP).display(),
                snapshots.display(),
                upper.display(),
                snapshots.display(),
            ),
        )
        .unwrap();
        let mut app = (*container(APP, "app", "running")).clone();
        app.layer_driver = "overlayfs".to_owned();
        let reader = fixture.reader(T0);

        let layer = layer_of(&reader, &app, 10_000);
        assert_eq!(
            layer.fs_id.unwrap().mountpoint,
            root.join(CONTAINERD_OVERLAYFS).display().to_string()
        );
        assert_eq!(value(layer.inodes_used), 2);

        // Stopped: the rootfs is unmounted, the snapshot stays.
        fs::write(&mountinfo, "24 1 8:1 / / rw - ext4 /dev/sda1 rw\n").unwrap();
        app.state = crate::index::State::Exited;
        fs::write(upper.join("more"), vec![1u8; 20_000]).unwrap();
        let layer = layer_of(&reader, &app, 30_000);
        assert_eq!(value(layer.inodes_used), 3);
    }

    #[test]
    fn a_snapshotter_s_layer_never_seen_running_is_not_reported() {
        let fixture = Fixture::containerd();
        fs::write(fixture.dir.path().join("mountinfo"), "").unwrap();
        let mut app = (*container(APP, "app", "exited")).clone();
        app.layer_driver = "overlayfs".to_owned();
        let reader = fixture.reader(T0);
        for _ in 0..3 {
            let stats = reader.container_stats(&app, None).unwrap();
            assert_eq!(stats.writable_layer, None);
        }
        // Nothing is known to walk, so nothing was queued.
        thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(fixture.layers.walks_completed(), 0);
        // Running but not mounted where expected: looked for once, then left
        // alone for a while.
        app.state = crate::index::State::Running;
        app.pid = 4343;
        for _ in 0..3 {
            let stats = reader.container_stats(&app, None).unwrap();
            assert_eq!(stats.writable_layer, None);
            thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(fixture.layers.walks_completed(), 1);
    }

    #[test]
    fn a_pod_without_a_cgroup_sums_its_sandbox_and_running_containers() {
        let fixture = Fixture::new();
        fixture.cgroup(&format!("docker/{SANDBOX}"), 1_000, 1_000_000, 1);
        fixture.cgroup(&format!("docker/{APP}"), 2_000_000, 50_000_000, 3);
        fixture.net_dev(4242);
        let members = [
            container(APP, "app", "running"),
            container(SIDECAR, "sidecar", "exited"),
        ];
        let stats = fixture
            .reader(T0)
            .pod_stats(&sandbox("running", ""), &members)
            .unwrap();
        let attributes = stats.attributes.unwrap();
        assert_eq!(attributes.id, SANDBOX);
        assert_eq!(attributes.metadata.unwrap().namespace, "prod");
        assert_eq!(
            attributes.labels.get("tier").map(String::as_str),
            Some("web")
        );
        let linux = stats.linux.unwrap();
        let listed: Vec<String> = linux
            .containers
            .iter()
            .map(|c| c.attributes.clone().unwrap().id)
            .collect();
        assert_eq!(listed, [APP]);
        assert_eq!(
            value(linux.cpu.unwrap().usage_core_nano_seconds),
            2_001_000_000
        );
        let memory = linux.memory.unwrap();
        assert_eq!(value(memory.working_set_bytes), 50_998_000);
        assert_eq!(memory.available_bytes, None);
        assert_eq!(value(linux.process.unwrap().process_count), 4);
        let network = linux.network.unwrap();
        assert_eq!(value(network.default_interface.unwrap().rx_bytes), 736);
    }

    #[test]
    fn a_pod_cgroup_is_read_whole_when_the_sandbox_has_one() {
        let fixture = Fixture::new();
        fixture.cgroup("kubepods/pod1", 9_000_000, 80_000_000, 6);
        fixture.cgroup(&format!("kubepods/pod1/{APP}"), 2_000_000, 50_000_000, 3);
        let mut app = (*container(APP, "app", "running")).clone();
        app.cgroup_parent = "/kubepods/pod1".to_owned();
        let stats = fixture
            .reader(T0)
            .pod_stats(&sandbox("running", "/kubepods/pod1"), &[Arc::new(app)])
            .unwrap();
        let linux = stats.linux.unwrap();
        assert_eq!(
            value(linux.cpu.unwrap().usage_core_nano_seconds),
            9_000_000_000
        );
        assert!(linux.memory.unwrap().available_bytes.is_none());
        assert_eq!(value(linux.process.unwrap().process_count), 6);
        assert_eq!(linux.containers.len(), 1);
        // No net/dev for the sandbox's pid: no network figures.
        assert_eq!(linux.network, None);
    }

    #[test]
    fn a_sandbox_that_is_not_ready_has_only_its_identity() {
        let fixture = Fixture::new();
        let stats = fixture
            .reader(T0)
            .pod_stats(&sandbox("exited", ""), &[])
            .unwrap();
        assert_eq!(stats.attributes.unwrap().id, SANDBOX);
        assert_eq!(stats.linux, None);
    }

    #[test]
    fn sums_add_what_adds_up_and_leave_out_the_rest() {
        let fixture = Fixture::new();
        fixture.cgroup("a", 1_000, 3_000, 1);
        fixture.cgroup("b", 2_000, 5_000, 2);
        let read = |path: &str| {
            let cgroup = fixture.node.locator.pod(path).unwrap().unwrap();
            let read = |files: &mut stats::Files<'_>| {
                stats::read_usage(&cgroup, files, &fixture.container_cpu, path, T0)
            };
            fixture.container_files.read_unkept(read).unwrap()
        };
        let sum = sum_usage(&[read("/a"), read("/b")], T0);
        assert_eq!(value(sum.cpu.usage_core_nano_seconds), 3_000_000);
        assert_eq!(sum.cpu.usage_nano_cores, None);
        assert_eq!(value(sum.memory.usage_bytes), 8_000);
        assert_eq!(value(sum.memory.working_set_bytes), 6_000);
        assert_eq!(value(sum.memory.page_faults), 14);
        assert_eq!(value(sum.process.process_count), 3);
        assert_eq!((sum.io, sum.swap), (None, None));

        let empty = sum_usage(&[], T0);
        assert_eq!(value(empty.memory.working_set_bytes), 0);
        assert_eq!(empty.memory.rss_bytes, None);
        assert_eq!(empty.process.timestamp, T0);
    }

    #[test]
    fn list_filters_select_running_containers_and_ready_sandboxes() {
        assert_eq!(container_filter(None).state, Some(CriState::Running));
        let filter = container_filter(Some(&v1::ContainerStatsFilter {
            id: String::new(),
            pod_sandbox_id: SANDBOX.to_owned(),
            label_selector: HashMap::from([("tier".to_owned(), "web".to_owned())]),
        }));
        assert_eq!(filter.id_prefix, None);
        assert_eq!(filter.state, Some(CriState::Running));
        assert_eq!(filter.sandbox_id.as_deref(), Some(SANDBOX));
        assert!(filter.matches(&container(APP, "app", "running")));
        assert!(!filter.matches(&container(APP, "app", "exited")));

        assert_eq!(sandbox_filter(None).ready, Some(true));
        let filter = sandbox_filter(Some(&v1::PodSandboxStatsFilter {
            id: SANDBOX.to_owned(),
            label_selector: HashMap::from([("tier".to_owned(), "db".to_owned())]),
        }));
        assert_eq!(filter.id_prefix.as_deref(), Some(SANDBOX));
        assert!(!filter.matches(&sandbox("running", "")));
    }

    #[test]
    fn lists_are_read_in_order_on_threads_only_when_long_enough() {
        let names = |n: usize| (0..n).collect::<Vec<usize>>();
        let on = |threads: usize, n: usize| {
            let subjects = names(n);
            let readers = Mutex::new(HashSet::new());
            let read = read_all(threads, &subjects, |i| {
                readers.lock().unwrap().insert(thread::current().id());
                i * 2
            });
            assert_eq!(read, subjects.iter().map(|i| i * 2).collect::<Vec<_>>());
            readers.into_inner().unwrap().len()
        };
        assert_eq!(on(4, 0), 0);
        assert_eq!(on(4, MIN_SUBJECTS_PER_THREAD * 2 - 1), 1);
        assert_eq!(on(4, MIN_SUBJECTS_PER_THREAD * 2), 2);
        assert_eq!(on(4, 1000), 4);
        assert_eq!(on(1, 1000), 1);
    }

    #[test]
    fn a_panic_while_reading_on_another_thread_reaches_the_caller() {
        let subjects: Vec<usize> = (0..MIN_SUBJECTS_PER_THREAD * 2).collect();
        let last = subjects.len() - 1;
        let outcome = std::panic::catch_unwind(|| {
            read_all(2, &subjects, |&i| {
                assert!(i != last, "subject {i} cannot be read");
            })
        });
        let panic = outcome.unwrap_err();
        assert_eq!(
            panic.downcast_ref::<String>().map(String::as_str),
            Some(format!("subject {last} cannot be read").as_str())
        );
    }

    #[test]
    fn unknown_ids_are_not_found() {
        let status = Status::from(StatsServiceError::not_found("container", "abc"));
        assert_eq!(status.code, Code::NotFound);
        assert!(status.message.contains("\"abc\""), "{}", status.message);
    }

    /// The stats calls over a fake dockerd's containers as the index sees
    /// them, on the node of a [`Fixture`]; dockerd is never asked about
    /// the node, which is known already.
    struct Calls {
        docker: Arc<crate::docker::fake::FakeDocker>,
        index: Arc<Index>,
        stats: StatsService,
        /// Where the fixture's cgroups live.
        cgroups: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Calls {
        fn new() -> Calls {
            let Fixture { dir, node, .. } = Fixture::new();
            let docker = crate::cri::testing::docker();
            let index = crate::cri::testing::index(&docker);
            let mut stats = StatsService::new(
                Arc::clone(&docker) as Arc<dyn DockerApi>,
                Arc::clone(&index),
            );
            stats.node = Mutex::new(Some(Arc::new(node)));
            Calls {
                docker,
                index,
                stats,
                cgroups: dir.path().join("cgroup"),
                _dir: dir,
            }
        }

        /// A running sandbox (pod `name`) with a cgroup; returns its ID.
        fn sandbox(&self, name: &str) -> String {
            let docker_name = format!("k8s_POD_{name}_prod_uid-{name}_0");
            let id = crate::cri::testing::add_container(
                &self.docker,
                &self.index,
                &docker_name,
                "podsandbox",
                "",
            );
            self.start(&id, true);
            id
        }

        /// A container `name` of `sandbox` labelled `tier=<name>`,
        /// running if `running`, with a cgroup if `cgroup`.
        fn container(&self, sandbox: &str, name: &str, running: bool, cgroup: bool) -> String {
            let docker_name = format!("k8s_{name}_web_prod_uid-1_0");
            let id = crate::cri::testing::add_container(
                &self.docker,
                &self.index,
                &docker_name,
                "container",
                sandbox,
            );
            self.docker.edit_container(&id, |container| {
                container
                    .config
                    .labels
                    .insert("tier".to_owned(), name.to_owned());
            });
            if running {
                self.start(&id, cgroup);
            } else {
                self.index.refresh(&id).unwrap();
            }
            id
        }

        fn start(&self, id: &str, cgroup: bool) {
            use crate::docker::DockerApi;
            self.docker.start_container(id).unwrap();
            self.index.refresh(id).unwrap();
            if cgroup {
                let dir = self.cgroups.join("docker").join(id);
                fs::create_dir_all(&dir).unwrap();
                for (file, text) in [
                    ("cpu.stat", "usage_usec 1000\n"),
                    ("memory.current", "4096\n"),
                    ("memory.stat", "anon 4096\ninactive_file 0\n"),
                    ("memory.max", "max\n"),
                    ("pids.current", "1\n"),
                ] {
                    fs::write(dir.join(file), text).unwrap();
                }
            }
        }
    }

    fn code(err: StatsServiceError) -> Code {
        Status::from(err).code
    }

    fn ids_of_containers(stats: &[v1::ContainerStats]) -> Vec<String> {
        stats
            .iter()
            .map(|one| one.attributes.clone().unwrap().id)
            .collect()
    }

    fn ids_of_pods(stats: &[v1::PodSandboxStats]) -> Vec<String> {
        stats
            .iter()
            .map(|one| one.attributes.clone().unwrap().id)
            .collect()
    }

    #[test]
    fn container_stats_of_an_unknown_or_empty_id_are_refused() {
        let calls = Calls::new();
        assert_eq!(
            code(calls.stats.container_stats("f00d").unwrap_err()),
            Code::NotFound
        );
        assert_eq!(
            code(calls.stats.container_stats("").unwrap_err()),
            Code::InvalidArgument
        );
    }

    #[test]
    fn stats_while_dockerd_cannot_describe_the_node_are_unavailable_and_nothing_is_cached() {
        let mut calls = Calls::new();
        let pod = calls.sandbox("web");
        let app = calls.container(&pod, "app", true, true);
        calls.stats.node = Mutex::new(None);
        calls.docker.fail("info", crate::docker::fake::refused());
        assert_eq!(
            code(calls.stats.container_stats(&app).unwrap_err()),
            Code::Unavailable
        );
        assert!(
            calls.stats.node.lock().unwrap().is_none(),
            "a failure is not cached"
        );
    }

    #[test]
    fn container_stats_of_a_running_container_carry_its_cgroup_figures() {
        let calls = Calls::new();
        let pod = calls.sandbox("web");
        let app = calls.container(&pod, "app", true, true);
        let stats = calls.stats.container_stats(&app).unwrap();
        assert_eq!(stats.attributes.unwrap().id, app);
        assert_eq!(value(stats.cpu.unwrap().usage_core_nano_seconds), 1_000_000);
    }

    #[test]
    fn a_container_whose_cgroup_went_away_mid_call_has_only_its_identity() {
        let calls = Calls::new();
        let pod = calls.sandbox("web");
        let app = calls.container(&pod, "app", true, false);
        let stats = calls.stats.container_stats(&app).unwrap();
        assert_eq!(stats.attributes.unwrap().id, app);
        assert_eq!((stats.cpu, stats.memory), (None, None));
        let listed = calls.stats.list_container_stats(None).unwrap();
        assert_eq!(ids_of_containers(&listed), Vec::<String>::new());
    }

    #[test]
    fn container_stats_lists_leave_out_stopped_containers_and_apply_the_filter() {
        let calls = Calls::new();
        let web = calls.sandbox("web");
        let db = calls.sandbox("db");
        let app = calls.container(&web, "app", true, true);
        calls.container(&web, "init", false, false);
        let store = calls.container(&db, "store", true, true);
        let all = calls.stats.list_container_stats(None).unwrap();
        let mut listed = ids_of_containers(&all);
        listed.sort();
        assert_eq!(listed, [app.clone(), store.clone()]);
        let of_web = v1::ContainerStatsFilter {
            pod_sandbox_id: web.clone(),
            ..v1::ContainerStatsFilter::default()
        };
        let listed = calls.stats.list_container_stats(Some(&of_web)).unwrap();
        assert_eq!(ids_of_containers(&listed), [app]);
        let labelled = v1::ContainerStatsFilter {
            label_selector: HashMap::from([("tier".to_owned(), "store".to_owned())]),
            ..v1::ContainerStatsFilter::default()
        };
        let listed = calls.stats.list_container_stats(Some(&labelled)).unwrap();
        assert_eq!(ids_of_containers(&listed), [store]);
    }

    #[test]
    fn pod_sandbox_stats_of_an_unknown_sandbox_are_not_found() {
        let calls = Calls::new();
        assert_eq!(
            code(calls.stats.pod_sandbox_stats("f00d").unwrap_err()),
            Code::NotFound
        );
    }

    #[test]
    fn kept_files_close_at_the_next_list_once_their_container_stops_or_goes() {
        use crate::docker::DockerApi;
        let calls = Calls::new();
        let web = calls.sandbox("web");
        let app = calls.container(&web, "app", true, true);
        let store = calls.container(&web, "store", true, true);
        calls.stats.list_container_stats(None).unwrap();
        let kept = calls.stats.container_files.open();
        // cpu.stat, memory.current, memory.stat, memory.max, pids.current.
        assert_eq!(kept, 10);
        calls.stats.list_container_stats(None).unwrap();
        assert_eq!(calls.stats.container_files.open(), kept);

        calls
            .docker
            .stop_container(&app, std::time::Duration::ZERO, None)
            .unwrap();
        calls.index.refresh(&app).unwrap();
        calls.stats.list_container_stats(None).unwrap();
        assert_eq!(calls.stats.container_files.open(), kept / 2);

        calls.docker.remove_container(&store).unwrap();
        calls.index.forget(&store);
        // The pod has no cgroup of its own: its sandbox container's are
        // read for the sum, and kept.
        calls.stats.list_pod_sandbox_stats(None).unwrap();
        assert_eq!(calls.stats.container_files.open(), kept / 2);
        assert_eq!(calls.stats.container_files.subjects_kept(), 1);

        calls
            .docker
            .stop_container(&web, std::time::Duration::ZERO, None)
            .unwrap();
        calls.index.refresh(&web).unwrap();
        calls.stats.list_pod_sandbox_stats(None).unwrap();
        assert_eq!(calls.stats.container_files.open(), 0);
        assert_eq!(calls.stats.container_files.subjects_kept(), 0);
    }

    #[test]
    fn a_stopped_sandbox_has_only_its_identity_and_is_left_out_of_lists() {
        use crate::docker::DockerApi;
        let calls = Calls::new();
        let web = calls.sandbox("web");
        calls
            .docker
            .stop_container(&web, std::time::Duration::ZERO, None)
            .unwrap();
        calls.index.refresh(&web).unwrap();
        let stats = calls.stats.pod_sandbox_stats(&web).unwrap();
        assert_eq!(stats.attributes.unwrap().id, web);
        assert_eq!(stats.linux, None);
        let listed = calls.stats.list_pod_sandbox_stats(None).unwrap();
        assert_eq!(ids_of_pods(&listed), Vec::<String>::new());
    }

    #[test]
    fn pod_sandbox_stats_lists_hold_each_pod_s_own_running_containers() {
        let calls = Calls::new();
        let web = calls.sandbox("web");
        let db = calls.sandbox("db");
        let app = calls.container(&web, "app", true, true);
        let store = calls.container(&db, "store", true, true);
        let members = |stats: &v1::PodSandboxStats| {
            ids_of_containers(&stats.linux.clone().unwrap().containers)
        };
        let all = calls.stats.list_pod_sandbox_stats(None).unwrap();
        let mut pods: Vec<(String, Vec<String>)> = all
            .iter()
            .map(|stats| (stats.attributes.clone().unwrap().id, members(stats)))
            .collect();
        pods.sort();
        let mut expected = vec![(web.clone(), vec![app]), (db, vec![store])];
        expected.sort();
        assert_eq!(pods, expected);
        let only_web = v1::PodSandboxStatsFilter {
            id: web.clone(),
            ..v1::PodSandboxStatsFilter::default()
        };
        let listed = calls.stats.list_pod_sandbox_stats(Some(&only_web)).unwrap();
        assert_eq!(ids_of_pods(&listed), [web]);
    }
}
