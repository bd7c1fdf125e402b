//! `RecordingHost`: a node made of given files for handler tests, built
//! only under `cfg(test)`. It records every process file asked for and
//! every OOM score adjustment written, so a test can check which
//! processes a handler looked at and changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Host;

/// A node made of given files, recording what is read and written.
#[derive(Debug, Default)]
pub struct RecordingHost {
    pub mountinfo: String,
    pub swap: bool,
    /// `(pid, file name)` → content; a missing key is a gone process.
    pub files: BTreeMap<(i32, String), String>,
    pub namespaces: BTreeMap<i32, (u64, u64)>,
    /// Cgroup directory → its `cgroup.procs`; a missing key is a gone
    /// cgroup.
    pub cgroups: BTreeMap<PathBuf, String>,
    /// The processes whose `oom_score_adj` the kernel refuses to change.
    pub unwritable: BTreeSet<i32>,
    /// The `(pid, file name)` reads, in order.
    pub reads: Mutex<Vec<(i32, String)>>,
    /// The `(pid, value)` OOM score adjustments written, in order.
    pub oom_score_adj_writes: Mutex<Vec<(i32, i32)>>,
}

#[allow(clippy::unwrap_used, clippy::expect_used)]
impl RecordingHost {
    /// Gives `pid` the file `name` holding `content`.
    pub fn with_file(mut self, pid: i32, name: &str, content: &str) -> RecordingHost {
        self.files
            .insert((pid, name.to_owned()), content.to_owned());
        self
    }

    /// Gives the node the cgroup `path` holding `pids`.
    pub fn with_cgroup(mut self, path: &str, pids: &[i32]) -> RecordingHost {
        let list = pids.iter().map(|pid| format!("{pid}\n")).collect();
        self.cgroups.insert(PathBuf::from(path), list);
        self
    }

    /// The `(pid, file name)` reads so far.
    pub fn reads(&self) -> Vec<(i32, String)> {
        self.reads.lock().unwrap().clone()
    }

    /// The `(pid, value)` OOM score adjustments written so far.
    pub fn oom_score_adj_writes(&self) -> Vec<(i32, i32)> {
        self.oom_score_adj_writes.lock().unwrap().clone()
    }
}

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

    fn cgroup_procs(&self, cgroup: &Path) -> io::Result<Option<String>> {
        Ok(self.cgroups.get(cgroup).cloned())
    }

    fn write_oom_score_adj(
        &self,
        pid: i32,
        value: i32,
        is_member: &dyn Fn(&str) -> bool,
    ) -> io::Result<bool> {
        let membership = self
            .process_file(pid, "cgroup")
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if !is_member(&membership) {
            return Ok(false);
        }
        if self.unwritable.contains(&pid) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        self.oom_score_adj_writes.lock().unwrap().push((pid, value));
        Ok(true)
    }
}
