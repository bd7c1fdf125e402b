//! The node as the handlers read it — mount table, swap, the files of
//! `/proc/<pid>` — behind [`Host`], so that logic is tested without root.
//! [`Node`] reads through `stats::files`' bounded readers; a process gone
//! mid-read reads as absent, as every caller treats it as done. Pinning
//! and signalling stay with `pidfd`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::{fmt, fs, io};

use crate::stats::files::{read_bounded, KEYED_FILE_MAX};
use crate::stats::mountinfo::MOUNTINFO_MAX;

const MOUNTINFO_PATH: &str = "/proc/self/mountinfo";
/// The node's swap areas, one line of headings first.
const SWAPS_PATH: &str = "/proc/swaps";
const PROC_ROOT: &str = "/proc";

/// The reads of the node the CRI handlers depend on.
pub trait Host: fmt::Debug + Send + Sync {
    /// `/proc/self/mountinfo`, whole.
    fn mountinfo(&self) -> io::Result<String>;
    /// Whether the node has a swap area; an unreadable table reads as none.
    fn has_swap(&self) -> bool;
    /// Every PID with a directory in `/proc` now.
    fn pids(&self) -> io::Result<Vec<i32>>;
    /// `/proc/<pid>/<name>` (`stat`, `cgroup`, `status`, `oom_score_adj`);
    /// `None` once the process is gone.
    fn process_file(&self, pid: i32, name: &str) -> Option<String>;
    /// The PID namespace of `pid` as (device, inode) of its nsfs file.
    fn pid_namespace(&self, pid: i32) -> Option<(u64, u64)>;
}

/// The node dockshim runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Node;

impl Host for Node {
    fn mountinfo(&self) -> io::Result<String> {
        read_bounded(Path::new(MOUNTINFO_PATH), MOUNTINFO_MAX)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))
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
}

/// A node made of given files, recording every process file asked for,
/// so a test can check which processes a handler looked at.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingHost {
    pub mountinfo: String,
    pub swap: bool,
    /// `(pid, file name)` → content; a missing key is a gone process.
    pub files: std::collections::BTreeMap<(i32, String), String>,
    pub namespaces: std::collections::BTreeMap<i32, (u64, u64)>,
    /// The `(pid, file name)` reads, in order.
    pub reads: std::sync::Mutex<Vec<(i32, String)>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
impl RecordingHost {
    /// Gives `pid` the file `name` holding `content`.
    pub fn with_file(mut self, pid: i32, name: &str, content: &str) -> RecordingHost {
        self.files
            .insert((pid, name.to_owned()), content.to_owned());
        self
    }

    /// The `(pid, file name)` reads so far.
    pub fn reads(&self) -> Vec<(i32, String)> {
        self.reads.lock().unwrap().clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
impl Host for RecordingHost {
    fn mountinfo(&self) -> io::Result<String> {
        Ok(self.mountinfo.clone())
    }

    fn has_swap(&self) -> bool {
        self.swap
    }

    fn pids(&self) -> io::Result<Vec<i32>> {
        let mut pids: Vec<i32> = self.files.keys().map(|(pid, _)| *pid).collect();
        pids.dedup();
        Ok(pids)
    }

    fn process_file(&self, pid: i32, name: &str) -> Option<String> {
        self.reads.lock().unwrap().push((pid, name.to_owned()));
        self.files.get(&(pid, name.to_owned())).cloned()
    }

    fn pid_namespace(&self, pid: i32) -> Option<(u64, u64)> {
        self.namespaces.get(&pid).copied()
    }
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
}
