//! The node as the handlers read and change it — mount table, swap, the
//! files of `/proc/<pid>`, a cgroup's process list, a process's OOM score
//! adjustment — behind [`Host`], so that logic is tested without root.
//! [`Node`] reads through `stats::files`' bounded readers; a process gone
//! mid-read reads as absent, as every caller treats it as done. Pinning
//! and signalling stay with `pidfd`. Which processes to change, and what
//! makes one a container's, is the caller's to decide.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use crate::pidfd::PidFd;
use crate::stats::files::{read_bounded, KEYED_FILE_MAX};
use crate::stats::mountinfo::MOUNTINFO_MAX;
use crate::stats::process::CGROUP_PROCS_MAX;
use crate::stats::StatsError;

#[cfg(test)]
mod recording;
#[cfg(test)]
pub use recording::RecordingHost;

const MOUNTINFO_PATH: &str = "/proc/self/mountinfo";
/// The node's swap areas, one line of headings first.
const SWAPS_PATH: &str = "/proc/swaps";
const PROC_ROOT: &str = "/proc";
/// Where the cgroup hierarchies are mounted: one directory per v1
/// hierarchy, named for its controllers, or the v2 hierarchy itself.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The node's side of the CRI handlers.
pub trait Host: fmt::Debug + Send + Sync {
    /// `/proc/self/mountinfo`, whole.
    fn mountinfo(&self) -> io::Result<String>;
    /// Whether the node has a swap area; an unreadable table reads as none.
    fn has_swap(&self) -> bool;
    /// Every PID with a directory in `/proc` now.
    fn pids(&self) -> io::Result<Vec<i32>>;
    /// `/proc/<pid>/<name>` (`stat`, `cgroup`, `comm`, `oom_score_adj`);
    /// `None` once the process is gone.
    fn process_file(&self, pid: i32, name: &str) -> Option<String>;
    /// The PID namespace of `pid` as (device, inode) of its nsfs file.
    fn pid_namespace(&self, pid: i32) -> Option<(u64, u64)>;
    /// `cgroup.procs` of `cgroup`, a directory below the cgroup mount
    /// root; `None` once the cgroup is gone.
    fn cgroup_procs(&self, cgroup: &Path) -> io::Result<Option<String>>;
    /// Writes `value` to the `oom_score_adj` of process `pid` if
    /// `is_member` accepts its `/proc/<pid>/cgroup`; `false` when it does
    /// not. Both files are the same process's: opened beneath one handle
    /// on `/proc/<pid>`, with the process pinned until the file is open.
    /// An error of kind `NotFound` once the process is gone.
    fn write_oom_score_adj(
        &self,
        pid: i32,
        value: i32,
        is_member: &dyn Fn(&str) -> bool,
    ) -> io::Result<bool>;
}

/// The network namespace of process `pid`, as CNI and setns name it.
pub fn netns_path(pid: i64) -> PathBuf {
    PathBuf::from(format!("{PROC_ROOT}/{pid}/ns/net"))
}

/// The node dockshim runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Node;

impl Host for Node {
    fn mountinfo(&self) -> io::Result<String> {
        read_kernel_file(Path::new(MOUNTINFO_PATH), MOUNTINFO_MAX)
    }

    fn has_swap(&self) -> bool {
        read_bounded(Path::new(SWAPS_PATH), KEYED_FILE_MAX)
            .map(|text| text.lines().skip(1).any(|line| !line.trim().is_empty()))
            .unwrap_or(false)
    }

    fn pids(&self) -> io::Result<Vec<i32>> {
        let entries = fs::read_dir(PROC_ROOT)?.collect::<io::Result<Vec<_>>>()?;
        Ok(entries
            .iter()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect())
    }

    fn process_file(&self, pid: i32, name: &str) -> Option<String> {
        read_bounded(
            &Path::new(PROC_ROOT).join(pid.to_string()).join(name),
            KEYED_FILE_MAX,
        )
        .ok()
    }

    fn pid_namespace(&self, pid: i32) -> Option<(u64, u64)> {
        fs::metadata(format!("{PROC_ROOT}/{pid}/ns/pid"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }

    fn cgroup_procs(&self, cgroup: &Path) -> io::Result<Option<String>> {
        match read_kernel_file(
            &Path::new(CGROUP_ROOT).join(cgroup).join("cgroup.procs"),
            CGROUP_PROCS_MAX,
        ) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            read => read.map(Some),
        }
    }

    fn write_oom_score_adj(
        &self,
        pid: i32,
        value: i32,
        is_member: &dyn Fn(&str) -> bool,
    ) -> io::Result<bool> {
        let pid = u32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
        let pinned = PidFd::open(pid)?;
        let process = File::open(Path::new(PROC_ROOT).join(pid.to_string()))?;
        // `/proc/self/fd/<n>` leads into the directory the handle holds:
        // the process it was opened on, whatever holds the PID now.
        let beneath = PathBuf::from(format!("/proc/self/fd/{}", process.as_raw_fd()));
        if !is_member(&read_kernel_file(&beneath.join("cgroup"), KEYED_FILE_MAX)?) {
            return Ok(false);
        }
        let mut file = File::from(openat(
            &process,
            "oom_score_adj",
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?);
        if let Some(pinned) = pinned {
            if !pinned.is_alive()? {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
        }
        // A process that ends after the open refuses the write with ESRCH.
        match file.write_all(value.to_string().as_bytes()) {
            Err(err) if err.raw_os_error() == Some(Errno::ESRCH as i32) => {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
            written => written.map(|()| true),
        }
    }
}

/// A bounded read as the I/O error it fails with: a process or cgroup that
/// is gone reads as `NotFound`, a removed cgroup's `ENODEV` included.
fn read_kernel_file(path: &Path, limit: u64) -> io::Result<String> {
    read_bounded(path, limit).map_err(|err| match err {
        gone if gone.is_gone() => io::Error::from(io::ErrorKind::NotFound),
        StatsError::Read { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_node_s_own_process_reads_as_alive_with_its_stat() {
        let own = i32::try_from(std::process::id()).unwrap();
        let stat = Node.process_file(own, "stat").unwrap();
        assert!(stat.starts_with(&format!("{own} (")), "{stat}");
        assert!(Node.pids().unwrap().contains(&own));
        assert!(Node.pid_namespace(own).is_some());
    }

    #[test]
    fn a_process_that_is_gone_reads_as_absent() {
        assert_eq!(Node.process_file(i32::MAX, "stat"), None);
        assert_eq!(Node.pid_namespace(i32::MAX), None);
    }

    #[test]
    fn the_node_s_mount_table_holds_its_root() {
        let table = Node.mountinfo().unwrap();
        assert!(table
            .lines()
            .any(|line| line.split(' ').nth(4) == Some("/")));
    }

    #[test]
    fn a_process_s_oom_score_adj_is_written_only_when_its_cgroup_is_accepted() {
        let own = i32::try_from(std::process::id()).unwrap();
        let own_cgroup = Node.process_file(own, "cgroup").unwrap();
        let asked = std::sync::Mutex::new(None);
        let refuse = |membership: &str| {
            *asked.lock().unwrap() = Some(membership.to_owned());
            false
        };
        assert!(!Node.write_oom_score_adj(own, 0, &refuse).unwrap());
        assert_eq!(asked.into_inner().unwrap(), Some(own_cgroup));
        let current = Node.process_file(own, "oom_score_adj").unwrap();
        let same: i32 = current.trim().parse().unwrap();
        assert!(Node.write_oom_score_adj(own, same, &|_| true).unwrap());
    }

    #[test]
    fn a_process_that_ended_is_not_found_when_written() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        let err = Node.write_oom_score_adj(gone, 0, &|_| true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn a_cgroup_that_is_gone_lists_no_processes() {
        let gone = Path::new("no-such-cgroup-of-dockshim");
        assert_eq!(Node.cgroup_procs(gone).unwrap(), None);
        assert_eq!(netns_path(42), Path::new("/proc/42/ns/net"));
    }
}
