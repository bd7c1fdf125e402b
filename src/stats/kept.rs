//! The cgroup and proc files the stats readers keep open between calls,
//! per subject (a container, or a pod), so that a steady list of stats
//! costs a `pread` per file instead of a path walk, an open and a close.
//!
//! A kept file is safe to reread: the cgroup and proc files the readers
//! use are seq files, which the kernel formats afresh for a read at
//! offset 0, so a handle gives current figures for as long as its cgroup
//! or process exists, and fails (`ENODEV` for a removed cgroup) once it
//! does not. A read that fails closes the handle and opens the path again
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

use super::files::Files;

/// Most files kept open at once: a node's 110 pods, each a pod cgroup, a
/// sandbox and a container with the ten files a v2 cgroup is read from,
/// and room to spare.
pub const MAX_KEPT_FILES: usize = 4096;
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
    /// [`MAX_KEPT_FILES`], or a quarter of the limit, which sockets, pipes
    /// and the Docker connections need more.
    pub fn cap_within(soft_limit: u64) -> usize {
        usize::try_from(soft_limit / 4)
            .map_or(MAX_KEPT_FILES, |quarter| quarter.min(MAX_KEPT_FILES))
    }

    /// Runs `read` over subject `id`'s kept files and a reused buffer.
    pub fn read<R>(&self, id: &str, read: impl FnOnce(&mut Files<'_>) -> R) -> R {
        let subject = {
            let mut subjects = self.subjects();
            match subjects.get(id) {
                Some(subject) => Arc::clone(subject),
                None => {
                    let subject = Arc::new(Mutex::new(SubjectFiles {
                        files: Vec::new(),
                        shared: Arc::clone(&self.shared),
                    }));
                    subjects.insert(id.to_owned(), Arc::clone(&subject));
                    subject
                }
            }
        };
        let mut buf = self.shared.take_buffer();
        let result = {
            let mut kept = subject.lock().unwrap_or_else(PoisonError::into_inner);
            read(&mut Files::kept(&mut kept, &mut buf))
        };
        self.shared.give_buffer(buf);
        result
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

impl SubjectFiles {
    /// The open file `dir/name`, if kept.
    pub(super) fn get(&self, dir: &Path, name: &'static str) -> Option<&File> {
        self.position(dir, name).map(|at| &self.files[at].file)
    }

    /// Keeps `file`, just opened as `dir/name`, if the cap leaves room;
    /// otherwise it closes when dropped here.
    pub(super) fn keep(&mut self, dir: &Path, name: &'static str, file: File) {
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

    /// Closes `dir/name`, if kept.
    pub(super) fn close(&mut self, dir: &Path, name: &'static str) {
        if let Some(at) = self.position(dir, name) {
            self.files.swap_remove(at);
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

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
