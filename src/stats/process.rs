//! How many tasks a cgroup holds, for the CRI's process count.
//!
//! `pids.current` is the kernel's own count of tasks (threads included),
//! kept by the pids controller; where that controller is not there, the
//! lines of `cgroup.procs` (processes) are counted instead. This module
//! reads those two files and nothing else.

use super::cgroup::Cgroup;
use super::files::{parse_error, Files};
use super::StatsError;
use crate::api::v1;

/// `cgroup.procs`: one pid per line, at most 8 bytes each; this is room
/// for over a hundred thousand processes.
pub const CGROUP_PROCS_MAX: u64 = 1 << 20;

/// The number of tasks in the cgroup.
pub fn count(cgroup: &Cgroup, files: &mut Files<'_>) -> Result<u64, StatsError> {
    let dir = cgroup.pids_dir();
    match files.u64(dir, "pids.current") {
        Err(err) if err.is_gone() => {}
        result => return result,
    }
    let text = files.text(dir, "cgroup.procs", CGROUP_PROCS_MAX)?;
    let mut processes: u64 = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.parse::<u32>().is_err() {
            let path = dir.join("cgroup.procs");
            return Err(parse_error(&path, format!("{line:?} is not a pid")));
        }
        processes = processes.saturating_add(1);
    }
    Ok(processes)
}

/// The CRI message for a count.
pub fn to_cri(count: u64, timestamp_ns: i64) -> v1::ProcessUsage {
    v1::ProcessUsage {
        timestamp: timestamp_ns,
        process_count: Some(v1::UInt64Value { value: count }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::fixture::{self, Tree};

    #[test]
    fn the_pids_controller_count_is_read() {
        for (version, driver) in fixture::LAYOUTS {
            let tree = Tree::new(version, driver);
            assert_eq!(
                fixture::unkept(|files| count(&tree.container_cgroup(), files)).unwrap(),
                3,
                "{version:?} {driver:?}"
            );
        }
    }

    #[test]
    fn without_the_pids_controller_processes_are_counted() {
        for (version, driver) in fixture::LAYOUTS {
            let tree = Tree::new(version, driver);
            tree.remove_container("pids.current");
            assert_eq!(
                fixture::unkept(|files| count(&tree.container_cgroup(), files)).unwrap(),
                2,
                "{version:?} {driver:?}"
            );
            tree.write_container("cgroup.procs", "");
            assert_eq!(
                fixture::unkept(|files| count(&tree.container_cgroup(), files)).unwrap(),
                0
            );
            tree.write_container("cgroup.procs", "12\nnot-a-pid\n");
            assert!(matches!(
                fixture::unkept(|files| count(&tree.container_cgroup(), files)),
                Err(StatsError::Parse { .. })
            ));
        }
    }

    #[test]
    fn the_cri_message_carries_the_count() {
        let usage = to_cri(4, 9);
        assert_eq!(usage.timestamp, 9);
        assert_eq!(usage.process_count, Some(v1::UInt64Value { value: 4 }));
    }
}
