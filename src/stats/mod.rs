//! Resource usage of containers and pods, read from the kernel rather than
//! from dockerd's stats API (which samples for about a second per
//! container): CPU, memory, swap, pressure and task counts from the cgroup
//! filesystem, network counters from `/proc/<pid>/net/dev`, and writable
//! layer sizes from a background walk of the layer directory.
//!
//! This module holds the readers the stats RPCs are built on. It reads
//! files under roots its callers pass in (`/proc`, the mount points found
//! in `mountinfo`, a layer's `UpperDir` or a root overlay's upper
//! directory) and returns plain figures or CRI messages; it never calls
//! dockerd, knows nothing of the handlers, and never walks a directory on
//! a caller's thread. Every file read has a named size limit, and content
//! the kernel would not write is a [`StatsError`], never a panic or a
//! guess.
//!
//! Map: `cgroup` finds a container's or pod's cgroup directories; `cpu`,
//! `memory`, `process` and `psi` read them; `network` reads a pod's
//! interface counters; all of them read through `files`, which bounds
//! every read, into handles `kept` open between calls; `layer` measures
//! writable layers; `mountinfo` parses the mount table both find mounts
//! in; [`read_usage`] puts one cgroup's figures together.

pub mod cgroup;
pub mod cpu;
mod error;
pub mod files;
pub mod kept;
pub mod layer;
pub mod memory;
pub mod mountinfo;
pub mod network;
pub mod process;
pub mod psi;

#[cfg(test)]
mod fixture;

use std::time::{SystemTime, UNIX_EPOCH};

pub use cgroup::{Cgroup, CgroupLocator, CgroupVersion};
pub use cpu::CpuSampler;
pub use error::StatsError;
pub use files::Files;
pub use kept::KeptFiles;
pub use layer::{LayerLimits, LayerLocation, LayerSizes, LayerUsage};

use crate::api::v1;
use psi::Resource;

/// What one cgroup tells, in the CRI's shapes, all stamped with the same
/// timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupUsage {
    /// `usage_nano_cores` is absent on the first reading of a subject.
    pub cpu: v1::CpuUsage,
    pub memory: v1::MemoryUsage,
    /// `None` where swap is not accounted.
    pub swap: Option<v1::SwapUsage>,
    /// `None` without pressure figures (cgroup v1, PSI off).
    pub io: Option<v1::IoUsage>,
    pub process: v1::ProcessUsage,
}

/// Reads `cgroup` through `files` at `timestamp_ns` (see [`unix_nanos`]);
/// `key` names the subject in `sampler`, which turns successive CPU
/// readings into a rate. Pressure figures are best-effort: a pressure file
/// that cannot be read is logged and left out rather than failing the
/// reading.
pub fn read_usage(
    cgroup: &Cgroup,
    files: &mut Files<'_>,
    sampler: &CpuSampler,
    key: &str,
    timestamp_ns: i64,
) -> Result<CgroupUsage, StatsError> {
    let usage_ns = cpu::usage_ns(cgroup, files)?;
    let nano_cores = sampler.observe(key, timestamp_ns, usage_ns);
    let memory = memory::read(cgroup, files)?;
    let processes = process::count(cgroup, files)?;
    let mut pressure = |resource| {
        psi::read(cgroup, resource, files).unwrap_or_else(|err| {
            log::debug!("pressure of {key}: {err}");
            None
        })
    };
    let (cpu_psi, memory_psi) = (pressure(Resource::Cpu), pressure(Resource::Memory));
    let io_psi = pressure(Resource::Io);
    let value = |value| Some(v1::UInt64Value { value });
    Ok(CgroupUsage {
        cpu: v1::CpuUsage {
            timestamp: timestamp_ns,
            usage_core_nano_seconds: value(usage_ns),
            usage_nano_cores: nano_cores.and_then(value),
            psi: cpu_psi,
        },
        memory: v1::MemoryUsage {
            psi: memory_psi,
            ..memory.to_cri(timestamp_ns)
        },
        swap: memory.swap.map(|swap| swap.to_cri(timestamp_ns)),
        io: io_psi.map(|psi| v1::IoUsage {
            timestamp: timestamp_ns,
            psi: Some(psi),
        }),
        process: process::to_cri(processes, timestamp_ns),
    })
}

/// `time` in nanoseconds since the Unix epoch, the CRI's timestamps.
pub fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fixture::{Tree, LAYOUTS};

    const T0: i64 = 1_700_000_000_000_000_000;

    fn read(
        cgroup: &Cgroup,
        sampler: &CpuSampler,
        key: &str,
        at: i64,
    ) -> Result<CgroupUsage, StatsError> {
        fixture::unkept(|files| read_usage(cgroup, files, sampler, key, at))
    }

    #[test]
    fn a_cgroup_reads_whole_and_the_second_reading_has_a_rate() {
        for (version, driver) in LAYOUTS {
            let tree = Tree::new(version, driver);
            let cgroup = tree.container_cgroup();
            let sampler = CpuSampler::new();
            let first = read(&cgroup, &sampler, "c1", T0).unwrap();
            assert_eq!(first.cpu.timestamp, T0);
            assert!(first.cpu.usage_core_nano_seconds.unwrap().value > 271_000_000);
            assert_eq!(first.cpu.usage_nano_cores, None);
            assert!(first.memory.working_set_bytes.unwrap().value > 50_000_000);
            assert_eq!(first.process.process_count.unwrap().value, 3);
            assert_eq!(first.memory.timestamp, T0);

            // Half a core over the next two seconds.
            let later = first.cpu.usage_core_nano_seconds.unwrap().value + 1_000_000_000;
            match version {
                CgroupVersion::V1 => tree.write_container("cpuacct.usage", &format!("{later}\n")),
                CgroupVersion::V2 => tree.write_container(
                    "cpu.stat",
                    &format!("usage_usec {}\nuser_usec 1\nsystem_usec 1\n", later / 1000),
                ),
            }
            let second = read(&cgroup, &sampler, "c1", T0 + 2_000_000_000).unwrap();
            let rate = second.cpu.usage_nano_cores.unwrap().value;
            assert_eq!(rate, 500_000_000, "{version:?} {driver:?}");
        }
    }

    #[test]
    fn v2_adds_pressure_and_swap_and_v1_leaves_pressure_out() {
        let v2 = read(
            &Tree::new(CgroupVersion::V2, v1::CgroupDriver::Systemd).container_cgroup(),
            &CpuSampler::new(),
            "c1",
            T0,
        )
        .unwrap();
        assert!(v2.cpu.psi.is_some());
        assert!(v2.memory.psi.is_some());
        assert_eq!(v2.io.unwrap().timestamp, T0);
        assert_eq!(v2.swap.unwrap().swap_usage_bytes.unwrap().value, 8192);

        let v1_usage = read(
            &Tree::new(CgroupVersion::V1, v1::CgroupDriver::Cgroupfs).container_cgroup(),
            &CpuSampler::new(),
            "c1",
            T0,
        )
        .unwrap();
        assert_eq!(v1_usage.cpu.psi, None);
        assert_eq!(v1_usage.io, None);
    }

    #[test]
    fn an_odd_pressure_file_leaves_pressure_out_only() {
        let tree = Tree::new(CgroupVersion::V2, v1::CgroupDriver::Cgroupfs);
        tree.write_container("cpu.pressure", "some avg10=oops\n");
        let usage = read(&tree.container_cgroup(), &CpuSampler::new(), "c1", T0).unwrap();
        assert_eq!(usage.cpu.psi, None);
        assert!(usage.memory.psi.is_some());
    }

    #[test]
    fn a_pod_cgroup_covers_its_containers() {
        for (version, driver) in LAYOUTS {
            let tree = Tree::new(version, driver);
            let pod = tree.locator().pod(tree.parent()).unwrap().unwrap();
            let sampler = CpuSampler::new();
            let pod_usage = read(&pod, &sampler, "pod", T0).unwrap();
            let container = read(&tree.container_cgroup(), &sampler, "c1", T0).unwrap();
            let total = |u: &CgroupUsage| u.cpu.usage_core_nano_seconds.unwrap().value;
            assert!(
                total(&pod_usage) >= total(&container),
                "{version:?} {driver:?}"
            );
            assert!(
                pod_usage.memory.available_bytes.is_some(),
                "{version:?} {driver:?}"
            );
        }
    }

    #[test]
    fn a_stopped_container_reads_as_gone() {
        let tree = Tree::new(CgroupVersion::V2, v1::CgroupDriver::Systemd);
        let cgroup = tree.container_cgroup();
        std::fs::remove_dir_all(cgroup.cpu_dir()).unwrap();
        let err = read(&cgroup, &CpuSampler::new(), "c1", T0).unwrap_err();
        assert!(err.is_gone(), "{err}");
    }

    #[test]
    fn timestamps_are_nanoseconds_since_the_epoch() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1500);
        assert_eq!(unix_nanos(at), 1_500_000_000);
        assert_eq!(
            unix_nanos(UNIX_EPOCH - std::time::Duration::from_secs(1)),
            0
        );
    }
}
