//! Memory and swap of a cgroup, with the kubelet's definitions: the working
//! set is usage minus inactive file pages (cache the kernel can drop
//! without asking anyone), floored at zero; available is the limit minus the
//! working set, when there is a limit.
//!
//! v1 reads `memory.usage_in_bytes`, `memory.limit_in_bytes` and the
//! subtree-wide `total_*` keys of `memory.stat` (falling back to the plain
//! keys); v2 reads `memory.current`, `memory.max`, `memory.stat` and, when
//! swap is accounted, `memory.swap.current` and `memory.swap.max`. This
//! module reads nothing else.

use std::path::Path;

use super::cgroup::{Cgroup, CgroupVersion};
use super::files::Files;
use super::StatsError;
use crate::api::v1;

/// v1 has no word for "no limit": it reports the largest page-aligned
/// value below 2^63 (9223372036854771712 with 4 KiB pages, less with larger
/// pages). Any limit from here up is taken as none; no machine has 4 EiB.
pub const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// One memory reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFigures {
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss_bytes: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
    /// `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// `None` when swap is not accounted.
    pub swap: Option<SwapFigures>,
}

/// One swap reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapFigures {
    pub usage_bytes: u64,
    /// `None` when unlimited or unknown (v1 only limits memory and swap
    /// together).
    pub limit_bytes: Option<u64>,
}

impl MemoryFigures {
    /// The limit minus the working set, floored at zero; `None` without a
    /// limit.
    pub fn available_bytes(&self) -> Option<u64> {
        self.limit_bytes
            .map(|limit| limit.saturating_sub(self.working_set_bytes))
    }

    /// The CRI message, without pressure figures (see `psi`).
    pub fn to_cri(&self, timestamp_ns: i64) -> v1::MemoryUsage {
        v1::MemoryUsage {
            timestamp: timestamp_ns,
            working_set_bytes: Some(value(self.working_set_bytes)),
            available_bytes: self.available_bytes().map(value),
            usage_bytes: Some(value(self.usage_bytes)),
            rss_bytes: self.rss_bytes.map(value),
            page_faults: self.page_faults.map(value),
            major_page_faults: self.major_page_faults.map(value),
            psi: None,
        }
    }
}

impl SwapFigures {
    pub fn to_cri(&self, timestamp_ns: i64) -> v1::SwapUsage {
        v1::SwapUsage {
            timestamp: timestamp_ns,
            swap_available_bytes: self
                .limit_bytes
                .map(|limit| value(limit.saturating_sub(self.usage_bytes))),
            swap_usage_bytes: Some(value(self.usage_bytes)),
        }
    }
}

fn value(value: u64) -> v1::UInt64Value {
    v1::UInt64Value { value }
}

/// Reads the cgroup's memory figures.
pub fn read(cgroup: &Cgroup, files: &mut Files<'_>) -> Result<MemoryFigures, StatsError> {
    let dir = cgroup.memory_dir();
    match cgroup.version() {
        CgroupVersion::V1 => read_v1(dir, files),
        CgroupVersion::V2 => read_v2(dir, files),
    }
}

fn read_v1(dir: &Path, files: &mut Files<'_>) -> Result<MemoryFigures, StatsError> {
    let usage_bytes = files.u64(dir, "memory.usage_in_bytes")?;
    // The limit is read into the buffer that holds `memory.stat`, so the
    // optional keys are looked up first and their errors raised after the
    // limit's, in the order a reading has always failed in.
    let (inactive_file, optional) = {
        let stat = files.keyed(dir, "memory.stat")?;
        let inactive_file = stat.require_first_of(&["total_inactive_file", "inactive_file"])?;
        let optional = [
            ["total_swap", "swap"],
            ["total_rss", "rss"],
            ["total_pgfault", "pgfault"],
            ["total_pgmajfault", "pgmajfault"],
        ]
        .map(|keys| stat.first_of(&keys));
        (inactive_file, optional)
    };
    let limit = files.u64(dir, "memory.limit_in_bytes")?;
    let [swap, rss_bytes, page_faults, major_page_faults] = optional;
    let swap = swap?.map(|usage_bytes| SwapFigures {
        usage_bytes,
        limit_bytes: None,
    });
    Ok(MemoryFigures {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file),
        rss_bytes: rss_bytes?,
        page_faults: page_faults?,
        major_page_faults: major_page_faults?,
        limit_bytes: Some(limit).filter(|&l| l < V1_UNLIMITED_FLOOR),
        swap,
    })
}

fn read_v2(dir: &Path, files: &mut Files<'_>) -> Result<MemoryFigures, StatsError> {
    let usage_bytes = files.u64(dir, "memory.current")?;
    let (inactive_file, rss_bytes, page_faults, major_page_faults) = {
        let stat = files.keyed(dir, "memory.stat")?;
        (
            stat.require("inactive_file")?,
            stat.get("anon")?,
            stat.get("pgfault")?,
            stat.get("pgmajfault")?,
        )
    };
    Ok(MemoryFigures {
        usage_bytes,
        working_set_bytes: usage_bytes.saturating_sub(inactive_file),
        rss_bytes,
        page_faults,
        major_page_faults,
        // The root cgroup has no memory.max: nothing limits it.
        limit_bytes: absent_as_none(files.limit(dir, "memory.max"))?.flatten(),
        swap: read_swap_v2(dir, files)?,
    })
}

/// Swap files exist only when the kernel accounts swap.
fn read_swap_v2(dir: &Path, files: &mut Files<'_>) -> Result<Option<SwapFigures>, StatsError> {
    let Some(usage_bytes) = absent_as_none(files.u64(dir, "memory.swap.current"))? else {
        return Ok(None);
    };
    let limit_bytes = absent_as_none(files.limit(dir, "memory.swap.max"))?.flatten();
    Ok(Some(SwapFigures {
        usage_bytes,
        limit_bytes,
    }))
}

/// A file that does not exist reads as `None`.
fn absent_as_none<T>(result: Result<T, StatsError>) -> Result<Option<T>, StatsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_gone() => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::fixture::{self, Tree};

    const CGROUPFS: v1::CgroupDriver = v1::CgroupDriver::Cgroupfs;
    const SYSTEMD: v1::CgroupDriver = v1::CgroupDriver::Systemd;

    #[test]
    fn fixtures_read_as_the_kubelet_defines_them() {
        for (version, driver) in fixture::LAYOUTS {
            let figures = fixture::unkept(|files| {
                read(&Tree::new(version, driver).container_cgroup(), files)
            })
            .unwrap();
            let expected = match version {
                // Copied from a busybox container holding 50 MB in /dev/shm.
                CgroupVersion::V1 => MemoryFigures {
                    usage_bytes: 50_745_344,
                    working_set_bytes: 50_745_344 - 4096,
                    rss_bytes: Some(49_152),
                    page_faults: Some(1229),
                    major_page_faults: Some(1),
                    limit_bytes: None,
                    swap: Some(SwapFigures {
                        usage_bytes: 0,
                        limit_bytes: None,
                    }),
                },
                CgroupVersion::V2 => MemoryFigures {
                    usage_bytes: 50_896_896,
                    working_set_bytes: 50_896_896 - 4096,
                    rss_bytes: Some(49_152),
                    page_faults: Some(1229),
                    major_page_faults: Some(1),
                    limit_bytes: Some(104_857_600),
                    swap: Some(SwapFigures {
                        usage_bytes: 8192,
                        limit_bytes: None,
                    }),
                },
            };
            assert_eq!(figures, expected, "{version:?} {driver:?}");
        }
    }

    #[test]
    fn the_working_set_never_goes_below_zero() {
        // The kernel updates usage and memory.stat at different times.
        for version in [CgroupVersion::V1, CgroupVersion::V2] {
            let tree = Tree::new(version, CGROUPFS);
            let (usage, stat) = match version {
                CgroupVersion::V1 => ("memory.usage_in_bytes", "total_inactive_file 9000\n"),
                CgroupVersion::V2 => ("memory.current", "inactive_file 9000\n"),
            };
            tree.write_container(usage, "4096\n");
            tree.write_container("memory.stat", stat);
            let figures = fixture::unkept(|files| read(&tree.container_cgroup(), files)).unwrap();
            assert_eq!(figures.working_set_bytes, 0, "{version:?}");
            assert_eq!(figures.rss_bytes, None, "{version:?}");
        }
    }

    #[test]
    fn available_is_the_limit_minus_the_working_set() {
        let tree = Tree::new(CgroupVersion::V1, SYSTEMD);
        tree.write_container("memory.limit_in_bytes", "104857600\n");
        let figures = fixture::unkept(|files| read(&tree.container_cgroup(), files)).unwrap();
        assert_eq!(figures.limit_bytes, Some(104_857_600));
        assert_eq!(figures.available_bytes(), Some(104_857_600 - 50_741_248));
        let cri = figures.to_cri(7);
        assert_eq!(cri.available_bytes.unwrap().value, 104_857_600 - 50_741_248);
        assert_eq!(cri.working_set_bytes.unwrap().value, 50_741_248);
        assert_eq!(cri.timestamp, 7);

        // Over the limit (usage counts pages charged just before reclaim).
        tree.write_container("memory.limit_in_bytes", "4096\n");
        assert_eq!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files))
                .unwrap()
                .available_bytes(),
            Some(0)
        );
    }

    #[test]
    fn unlimited_memory_has_no_available_figure() {
        let tree = Tree::new(CgroupVersion::V1, CGROUPFS);
        for unlimited in ["9223372036854771712\n", "9223372036854710272\n"] {
            tree.write_container("memory.limit_in_bytes", unlimited);
            let figures = fixture::unkept(|files| read(&tree.container_cgroup(), files)).unwrap();
            assert_eq!(figures.limit_bytes, None, "{unlimited}");
            assert_eq!(figures.to_cri(1).available_bytes, None);
        }
        let tree = Tree::new(CgroupVersion::V2, SYSTEMD);
        tree.write_container("memory.max", "max\n");
        assert_eq!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files))
                .unwrap()
                .available_bytes(),
            None
        );
    }

    #[test]
    fn swap_is_reported_only_where_accounted() {
        let tree = Tree::new(CgroupVersion::V2, CGROUPFS);
        tree.write_container("memory.swap.max", "1048576\n");
        let swap = fixture::unkept(|files| read(&tree.container_cgroup(), files))
            .unwrap()
            .swap
            .unwrap();
        let cri = swap.to_cri(3);
        assert_eq!(cri.swap_usage_bytes.unwrap().value, 8192);
        assert_eq!(cri.swap_available_bytes.unwrap().value, 1_048_576 - 8192);
        tree.remove_container("memory.swap.current");
        assert_eq!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files))
                .unwrap()
                .swap,
            None
        );

        let tree = Tree::new(CgroupVersion::V1, CGROUPFS);
        tree.write_container(
            "memory.stat",
            "total_inactive_file 0\ntotal_rss 1\ntotal_pgfault 2\ntotal_pgmajfault 3\n",
        );
        assert_eq!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files))
                .unwrap()
                .swap,
            None
        );
    }

    #[test]
    fn odd_memory_files_are_errors_not_guesses() {
        let tree = Tree::new(CgroupVersion::V2, CGROUPFS);
        tree.write_container("memory.stat", "anon 1\n");
        let err = fixture::unkept(|files| read(&tree.container_cgroup(), files)).unwrap_err();
        assert!(err.to_string().contains("no inactive_file line"), "{err}");
        tree.write_container("memory.stat", "inactive_file lots\n");
        assert!(matches!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files)),
            Err(StatsError::Parse { .. })
        ));
        tree.write_container("memory.stat", "inactive_file 0\n");
        tree.write_container("memory.max", "unlimited\n");
        assert!(matches!(
            fixture::unkept(|files| read(&tree.container_cgroup(), files)),
            Err(StatsError::Parse { .. })
        ));
    }

    #[test]
    fn a_removed_cgroup_reads_as_gone() {
        let tree = Tree::new(CgroupVersion::V1, CGROUPFS);
        let cgroup = tree.container_cgroup();
        std::fs::remove_dir_all(cgroup.memory_dir()).unwrap();
        assert!(fixture::unkept(|files| read(&cgroup, files))
            .unwrap_err()
            .is_gone());
    }
}
