//! The cgroup files the stats readers keep open between calls, per
//! subject (a container, or a pod), so that a steady list of stats costs a
//! `pread` per file instead of a path walk, an open and a close.
//!
//! A kept file is safe to reread: the cgroup files the readers use are
//! seq files, which the kernel formats afresh for a read at offset 0, so a
//! handle gives current figures for as long as its cgroup exists, and
//! fails (`ENODEV`) once it is removed. A read that fails closes the handle and opens the path again
//! (see [`Files`]), so a subject whose cgroup was removed and made again
//! at the same path reads the new one, and a vanished one fails as it
//! would have without kept files.
//!
//! Open files are a shared resource, so the total is capped
//! ([`MAX_KEPT_FILES`], and a quarter of the soft open-file limit), reads
//! past the cap open and close as before, and the caller drops the
//! subjects that are gone ([`KeptFiles::retain`]). This module keeps and
//! closes handles; what a file means is the readers'.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::files::{FileKeeper, Files};

/// Most files kept open at once. Each costs about 4 KiB of kernel memory
/// once read (the seq file's page-sized buffer, kept until the close, and
/// charged to dockshim's cgroup), so this bounds that to 4 MiB: the five
/// files of a v1 cgroup or the ten of a v2 one, for about 200 or 100
/// cgroups (a pod's, its sandbox's and its containers'). Past it, reads
/// open and close as they did before files were kept.
pub const MAX_KEPT_FILES: usize = 1024;
/// A read buffer that grew past this (a long `cgroup.procs`) is not kept
/// for later readings.
const MAX_KEPT_BUFFER_BYTES: usize = 64 * 1024;
/// Read buffers kept for later readings: one per thread that reads at once.
const MAX_KEPT_BUFFERS: usize = 8;

/// The files kept for every subject of one kind, by subject ID.
#[derive(Debug)]
pub struct KeptFiles {
    subjects: Mutex<HashMap<String, Arc<Mutex<SubjectFiles>>>>,
    shared: Arc<Shared>,
}

/// What stores of different kinds of subject share: the count of open
/// files against the cap, and the read buffers.
#[derive(Debug)]
struct Shared {
    open: AtomicUsize,
    cap: usize,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl KeptFiles {
    /// A store that keeps at most `cap` files open.
    pub fn new(cap: usize) -> KeptFiles {
        KeptFiles {
            subjects: Mutex::default(),
            shared: Arc::new(Shared {
                open: AtomicUsize::new(0),
                cap,
                buffers: Mutex::default(),
            }),
        }
    }

    /// A store for another kind of subject (a sandbox's ID names both its
    /// pod and its own container), under the same cap.
    pub fn sharing_cap(&self) -> KeptFiles {
        KeptFiles {
            subjects: Mutex::default(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// The cap for a process whose soft open-file limit is `soft_limit`:
    /// the smaller of [`MAX_KEPT_FILES`] and a quarter of the limit, so
    /// sockets, pipes and the Docker connections keep the rest.
    pub fn cap_within(soft_limit: u64) -> usize {
        usize::try_from(soft_limit / 4)
            .map_or(MAX_KEPT_FILES, |quarter| quarter.min(MAX_KEPT_FILES))
    }

    /// Runs `read` over subject `id`'s kept files and a reused buffer.
    pub fn read<R>(&self, id: &str, read: impl FnOnce(&mut Files<'_>) -> R) -> R {
        let subject = self.subject(id);
        let mut buf = self.shared.take_buffer();
        let result = {
            let mut kept = subject.lock().unwrap_or_else(PoisonError::into_inner);
            read(&mut Files::kept(&mut *kept, &mut buf))
        };
        self.shared.give_buffer(buf);
        result
    }

    /// Subject `id`'s files, a place for them made on its first reading.
    fn subject(&self, id: &str) -> Arc<Mutex<SubjectFiles>> {
        let mut subjects = self.subjects();
        if let Some(subject) = subjects.get(id) {
            return Arc::clone(subject);
        }
        let subject = Arc::new(Mutex::new(SubjectFiles {
            files: Vec::new(),
            shared: Arc::clone(&self.shared),
        }));
        subjects.insert(id.to_owned(), Arc::clone(&subject));
        subject
    }

    /// Runs `read` over files opened and closed as it reads them, and a
    /// reused buffer.
    pub fn read_unkept<R>(&self, read: impl FnOnce(&mut Files<'_>) -> R) -> R {
        let mut buf = self.shared.take_buffer();
        let result = read(&mut Files::unkept(&mut buf));
        self.shared.give_buffer(buf);
        result
    }

    /// Closes the files of every subject `keep` says is gone.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.subjects().retain(|id, _| keep(id));
    }

    /// How many files are open, in this store and those sharing its cap.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// How many subjects have a place for files in this store.
    pub fn subjects_kept(&self) -> usize {
        self.subjects().len()
    }

    /// The table holds whole entries inserted and removed at once: a panic
    /// elsewhere cannot leave it half-written.
    fn subjects(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<SubjectFiles>>>> {
        self.subjects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    fn take_buffer(&self) -> Vec<u8> {
        self.buffers().pop().unwrap_or_default()
    }

    fn give_buffer(&self, buf: Vec<u8>) {
        let mut buffers = self.buffers();
        if buf.capacity() <= MAX_KEPT_BUFFER_BYTES && buffers.len() < MAX_KEPT_BUFFERS {
            buffers.push(buf);
        }
    }

    fn buffers(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One subject's open files, each with the directory it was opened in.
#[derive(Debug)]
pub struct SubjectFiles {
    files: Vec<KeptFile>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct KeptFile {
    /// Shared by the files of one directory.
    dir: Arc<Path>,
    name: &'static str,
    file: File,
}

impl FileKeeper for SubjectFiles {
    fn get(&self, dir: &Path, name: &'static str) -> Option<&File> {
        self.position(dir, name).map(|at| &self.files[at].file)
    }

    /// Keeps `file` if the cap leaves room; otherwise it closes when
    /// dropped here.
    fn keep(&mut self, dir: &Path, name: &'static str, file: File) {
        let open = &self.shared.open;
        // A subject's cgroup that moved (a restarted container found in
        // another place) leaves the old directory's files behind.
        self.files.retain(|kept| {
            kept.name != name || {
                open.fetch_sub(1, Ordering::Relaxed);
                false
            }
        });
        let cap = self.shared.cap;
        if open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_err()
        {
            return;
        }
        let dir = match self.files.iter().find(|kept| same_dir(&kept.dir, dir)) {
            Some(kept) => Arc::clone(&kept.dir),
            None => Arc::from(dir),
        };
        self.files.push(KeptFile { dir, name, file });
    }

    fn close(&mut self, dir: &Path, name: &'static str) {
        if let Some(at) = self.position(dir, name) {
            self.files.swap_remove(at);
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl SubjectFiles {
    fn position(&self, dir: &Path, name: &'static str) -> Option<usize> {
        self.files
            .iter()
            .position(|kept| kept.name == name && same_dir(&kept.dir, dir))
    }
}

impl Drop for SubjectFiles {
    fn drop(&mut self) {
        self.shared
            .open
            .fetch_sub(self.files.len(), Ordering::Relaxed);
    }
}

/// Byte equality: both sides are built the same way, and comparing
/// `Path`s component by component would cost more than the read saves.
fn same_dir(a: &Path, b: &Path) -> bool {
    a.as_os_str() == b.as_os_str()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::fs;
    use std::io::Write as _;
    use std::os::fd::{AsRawFd, RawFd};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::stats::cgroup::{CgroupLocator, CgroupVersion};
    use crate::stats::{cpu, memory, process, psi, Cgroup, StatsError};

    impl KeptFiles {
        /// The descriptors kept for `id`, to tell a reused handle from a
        /// new one.
        fn fds(&self, id: &str) -> Vec<RawFd> {
            let Some(subject) = self.subjects().get(id).cloned() else {
                return Vec::new();
            };
            let kept = subject.lock().unwrap();
            kept.files
                .iter()
                .map(|kept| kept.file.as_raw_fd())
                .collect()
        }
    }

    fn number(store: &KeptFiles, id: &str, dir: &Path, name: &'static str) -> u64 {
        store.read(id, |files| files.u64(dir, name)).unwrap()
    }

    #[test]
    fn a_file_is_opened_once_and_reread_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pids.current"), "3\n").unwrap();
        let store = KeptFiles::new(8);
        assert_eq!(number(&store, "c1", dir.path(), "pids.current"), 3);
        assert_eq!(store.open(), 1);
        let fds = store.fds("c1");

        // The kept handle reads the file it opened, from its start, even
        // once another file took its name.
        fs::rename(dir.path().join("pids.current"), dir.path().join("old")).unwrap();
        fs::write(dir.path().join("pids.current"), "99\n").unwrap();
        fs::write(dir.path().join("old"), "12\n").unwrap();
        assert_eq!(number(&store, "c1", dir.path(), "pids.current"), 12);
        assert_eq!(store.fds("c1"), fds);
        assert_eq!(store.open(), 1);
    }

    #[test]
    fn the_files_of_a_subject_that_goes_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["memory.current", "pids.current"] {
            fs::write(dir.path().join(name), "1\n").unwrap();
        }
        let store = KeptFiles::new(8);
        for id in ["c1", "c2"] {
            number(&store, id, dir.path(), "memory.current");
            number(&store, id, dir.path(), "pids.current");
        }
        assert_eq!(store.open(), 4);
        store.retain(|id| id == "c2");
        assert_eq!(store.open(), 2);
        assert_eq!(store.subjects_kept(), 1);
        assert!(store.fds("c1").is_empty());
    }

    #[test]
    fn past_the_cap_files_are_opened_read_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["cpu.stat", "memory.current", "pids.current"];
        for (value, name) in names.iter().enumerate() {
            fs::write(dir.path().join(name), format!("{value}\n")).unwrap();
        }
        let containers = KeptFiles::new(2);
        let pods = containers.sharing_cap();
        for _ in 0..2 {
            for (value, name) in names.iter().enumerate() {
                let read = number(&containers, "c1", dir.path(), name);
                assert_eq!(read, u64::try_from(value).unwrap());
            }
            assert_eq!(number(&pods, "p1", dir.path(), "pids.current"), 2);
            assert_eq!(containers.open(), 2);
            assert_eq!(pods.open(), 2);
        }
        assert!(pods.fds("p1").is_empty());
    }

    #[test]
    fn the_cap_leaves_most_of_the_open_file_limit_to_the_rest() {
        assert_eq!(KeptFiles::cap_within(1024), 256);
        assert_eq!(KeptFiles::cap_within(4096), MAX_KEPT_FILES);
        assert_eq!(KeptFiles::cap_within(1 << 20), MAX_KEPT_FILES);
        assert_eq!(KeptFiles::cap_within(u64::MAX), MAX_KEPT_FILES);
        assert_eq!(KeptFiles::cap_within(0), 0);
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pids.current"), "5\n").unwrap();
        let store = KeptFiles::new(0);
        assert_eq!(number(&store, "c1", dir.path(), "pids.current"), 5);
        assert_eq!(store.open(), 0);
    }

    #[test]
    fn a_cgroup_found_elsewhere_replaces_the_files_of_the_old_one() {
        let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::write(old.path().join("pids.current"), "1\n").unwrap();
        fs::write(new.path().join("pids.current"), "2\n").unwrap();
        let store = KeptFiles::new(8);
        assert_eq!(number(&store, "c1", old.path(), "pids.current"), 1);
        assert_eq!(number(&store, "c1", new.path(), "pids.current"), 2);
        assert_eq!(store.open(), 1);
        assert_eq!(number(&store, "c1", new.path(), "pids.current"), 2);
    }

    #[test]
    fn a_kept_file_that_fails_is_closed_and_its_path_opened_again() {
        // A process's proc files fail (ESRCH) once it has ended, as a
        // removed cgroup's fail with ENODEV.
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let dir = PathBuf::from(format!("/proc/{}", child.id()));
        let store = KeptFiles::new(8);
        let read = || store.read("c1", |files| files.text(&dir, "stat", 4096).map(str::len));
        assert!(read().unwrap() > 0);
        assert_eq!(store.open(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        let err = read().unwrap_err();
        assert!(err.is_gone(), "{err}");
        assert_eq!(store.open(), 0);
    }

    #[test]
    fn a_file_over_its_limit_is_refused_whether_kept_or_not() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        let store = KeptFiles::new(8);
        let limit =
            |store: &KeptFiles| store.read("c1", |files| files.limit(dir.path(), "memory.max"));
        assert_eq!(limit(&store).unwrap(), None);
        fs::write(dir.path().join("memory.max"), "9".repeat(100)).unwrap();
        assert!(matches!(limit(&store), Err(StatsError::TooLarge { .. })));
        assert!(matches!(
            store.read_unkept(|files| files.limit(dir.path(), "memory.max")),
            Err(StatsError::TooLarge { .. })
        ));
    }

    /// Cgroups made for a test in every hierarchy the readers use, each
    /// with processes moved in; the processes are killed and the cgroups
    /// removed on drop.
    struct HostCgroup {
        cgroup: Cgroup,
        children: Vec<Child>,
    }

    impl HostCgroup {
        /// `None` (with the reason printed) where this host has no such
        /// hierarchy or the test cannot make cgroups.
        fn make(version: CgroupVersion, name: &str) -> Option<HostCgroup> {
            if !nix::unistd::geteuid().is_root() {
                eprintln!("skipped: making cgroups needs root");
                return None;
            }
            let driver = crate::api::v1::CgroupDriver::Cgroupfs;
            let locator = match CgroupLocator::discover(Path::new("/proc"), driver, version) {
                Ok(locator) => locator,
                Err(err) => {
                    eprintln!("skipped: {version:?}: {err}");
                    return None;
                }
            };
            let cgroup = locator.pod(name).unwrap().unwrap();
            let made = HostCgroup {
                cgroup,
                children: Vec::new(),
            };
            for dir in made.dirs() {
                fs::create_dir(&dir).unwrap();
            }
            Some(made)
        }

        fn dirs(&self) -> Vec<PathBuf> {
            let mut dirs: Vec<PathBuf> = [
                self.cgroup.cpu_dir(),
                self.cgroup.memory_dir(),
                self.cgroup.pids_dir(),
            ]
            .map(Path::to_owned)
            .to_vec();
            dirs.dedup();
            dirs
        }

        /// A shell that waits for a line on its stdin, then runs `script`.
        fn spawn(&mut self, script: &str) -> &mut Child {
            let child = Command::new("sh")
                .args(["-c", &format!("read go; {script}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            for dir in self.dirs() {
                fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
            }
            self.children.push(child);
            self.children.last_mut().unwrap()
        }

        fn remove(&mut self) {
            for mut child in self.children.drain(..) {
                let _ = child.kill();
                let _ = child.wait();
            }
            for dir in self.dirs() {
                let _ = fs::remove_dir(dir);
            }
        }
    }

    impl Drop for HostCgroup {
        fn drop(&mut self) {
            self.remove();
        }
    }

    /// What the readers tell of a cgroup through `files`; memory figures
    /// only where the memory controller is there.
    #[derive(Debug)]
    struct Figures {
        cpu_ns: u64,
        memory: Option<memory::MemoryFigures>,
        processes: u64,
        pressure: usize,
    }

    fn figures(cgroup: &Cgroup, files: &mut Files<'_>) -> Result<Figures, StatsError> {
        let memory_kept = cgroup.memory_dir().join("memory.stat").exists();
        let mut pressure = 0;
        for resource in [psi::Resource::Cpu, psi::Resource::Memory, psi::Resource::Io] {
            pressure += usize::from(psi::read(cgroup, resource, files)?.is_some());
        }
        Ok(Figures {
            cpu_ns: cpu::usage_ns(cgroup, files)?,
            memory: memory_kept
                .then(|| memory::read(cgroup, files))
                .transpose()?,
            processes: process::count(cgroup, files)?,
            pressure,
        })
    }

    /// Every file the readers keep, reread through the handle opened on
    /// the first reading, shows what changed since (CPU time, memory,
    /// tasks, a limit written), on this kernel's v1 hierarchies and v2
    /// hierarchy, whichever it mounts; pressure files are reread and
    /// parsed. Once the cgroup is removed the handles fail and close, and
    /// a cgroup made again at the same path is read afresh.
    #[test]
    fn on_this_kernel_kept_cgroup_files_give_fresh_figures_until_the_cgroup_goes() {
        for version in [CgroupVersion::V1, CgroupVersion::V2] {
            let name = format!("/dockshim-kept-{:?}-{}", version, std::process::id());
            let Some(mut host) = HostCgroup::make(version, &name) else {
                continue;
            };
            let cgroup = host.cgroup.clone();
            let shm = PathBuf::from(format!("/dev/shm{name}"));
            let store = KeptFiles::new(64);
            let read = || store.read("c1", |files| figures(&cgroup, files));

            let filler = host.spawn(&format!(
                "head -c 8000000 /dev/zero > {}; echo done; exec sleep 60",
                shm.display()
            ));
            let before = read().unwrap();
            let kept = store.fds("c1");
            assert!(!kept.is_empty(), "{version:?}");
            assert_eq!(before.processes, 1, "{version:?}");

            writeln!(filler.stdin.as_mut().unwrap(), "go").unwrap();
            let mut done = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(filler.stdout.as_mut().unwrap(), 5),
                &mut done,
            )
            .unwrap();
            assert_eq!(done, "done\n");
            host.spawn("exec sleep 60");
            let limit_file = match version {
                CgroupVersion::V1 => "memory.limit_in_bytes",
                CgroupVersion::V2 => "memory.max",
            };
            let limit_path = cgroup.memory_dir().join(limit_file);
            if limit_path.exists() {
                fs::write(&limit_path, "67108864").unwrap();
            }

            let after = read().unwrap();
            assert_eq!(store.fds("c1"), kept, "{version:?}: a handle was reopened");
            assert!(
                after.cpu_ns > before.cpu_ns,
                "{version:?}: {before:?} {after:?}"
            );
            assert_eq!(after.processes, 2, "{version:?}");
            assert_eq!(after.pressure, before.pressure, "{version:?}");
            if let (Some(before), Some(after)) = (before.memory, after.memory) {
                assert!(
                    after.working_set_bytes >= before.working_set_bytes + 4_000_000,
                    "{version:?}: {before:?} {after:?}"
                );
                assert_eq!(after.limit_bytes, Some(67_108_864), "{version:?}");
            }

            let open = store.open();
            host.remove();
            fs::remove_file(&shm).unwrap();
            let err = read().unwrap_err();
            assert!(err.is_gone(), "{version:?}: {err}");
            assert!(
                store.open() < open,
                "{version:?}: a failed handle stayed open"
            );

            for dir in host.dirs() {
                fs::create_dir(&dir).unwrap();
            }
            let again = read().unwrap();
            assert_eq!(again.processes, 0, "{version:?}");
            assert!(again.cpu_ns < after.cpu_ns, "{version:?}: {again:?}");
            assert_eq!(store.open(), open, "{version:?}");
            eprintln!("{version:?}: {open} files kept, reread fresh: {after:?}");
        }
    }
}
