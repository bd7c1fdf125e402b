//! Bytes and inodes of containers' writable layers, measured by one
//! background thread (`layer-sizes`) and served from a cache.
//!
//! A graph driver names a layer's directory (overlay2's `UpperDir`). The
//! containerd image store names none: there the layer is the upper
//! directory of the overlay mounted as the container's root filesystem
//! while it runs, which the thread finds in `/proc/self/mountinfo` once per
//! container and remembers, so a stopped container keeps its figures. A
//! container never seen running there has none: its snapshot's directory
//! is known only to containerd's metadata database.
//!
//! A walk can take seconds on a layer with many files, so no call ever
//! waits for one: [`LayerSizes::get`] answers from the cache, and when the
//! entry is missing or old it queues a walk and answers with what it had
//! (nothing, the first time). At most one walk per container is queued or
//! running; the queue is bounded, and a request that finds it full is
//! simply made again by a later call. The thread starts on the first walk
//! (after `main` has set up its signal mask) and ends
//! when the [`LayerSizes`] is dropped.
//!
//! A walk counts like `du -x`: bytes are allocated blocks, symlinks are
//! counted but not followed, other filesystems are not entered, a file with
//! several hard links counts once, and entries that vanish mid-walk are
//! skipped. A walk stops after a bounded number of entries and reports the
//! partial figures as incomplete.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::files::read_bounded;
use super::mountinfo::{overlay_upper_dir, MOUNTINFO_MAX};
use super::unix_nanos;
use crate::api::v1;
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// The thread's name, as `ps -L` and panics show it.
const THREAD_NAME: &str = "layer-sizes";
/// The next walk starts another thread after a death, but the container
/// whose walk died stays queued forever and its figures freeze: Status
/// reports it (see `crate::supervisor`).
const DUTY: Duty = Duty {
    name: THREAD_NAME,
    on_death: OnDeath::Report,
    loss: "some containers' writable-layer figures are no longer measured",
};
/// Size of a block as `st_blocks` counts them.
const BLOCK_BYTES: u64 = 512;
/// The mount table of the mount namespace dockerd mounts containers in.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Bounds of the walker; [`LayerLimits::default`] suits a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimits {
    /// Entries one walk visits before it stops (a layer with millions of
    /// files would otherwise hold the thread and its memory for minutes).
    pub max_entries: u64,
    /// Age after which a cached figure is measured again.
    pub refresh_after: Duration,
    /// Walks waiting for the thread.
    pub queue_capacity: usize,
    /// Containers whose figures are kept.
    pub max_cached: usize,
    /// How long a running container whose root filesystem was not found
    /// mounted is left before mountinfo is read for it again.
    pub locate_retry: Duration,
}

impl Default for LayerLimits {
    fn default() -> LayerLimits {
        LayerLimits {
            max_entries: 1_000_000,
            // cAdvisor refreshes its filesystem figures once a minute too.
            refresh_after: Duration::from_secs(60),
            queue_capacity: 1024,
            max_cached: 8192,
            locate_retry: Duration::from_secs(10),
        }
    }
}

/// One measurement of a writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerUsage {
    /// When the walk finished, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    pub used_bytes: u64,
    pub inodes_used: u64,
    /// False when the walk stopped at `max_entries`: the figures are then
    /// a lower bound.
    pub complete: bool,
}

impl LayerUsage {
    /// The CRI message; `mountpoint` names the filesystem the layers live
    /// on, the same one ImageFsInfo reports, so the kubelet adds them up.
    pub fn to_cri(&self, mountpoint: &str) -> v1::FilesystemUsage {
        v1::FilesystemUsage {
            timestamp: self.timestamp_ns,
            fs_id: Some(v1::FilesystemIdentifier {
                mountpoint: mountpoint.to_owned(),
            }),
            used_bytes: Some(v1::UInt64Value {
                value: self.used_bytes,
            }),
            inodes_used: Some(v1::UInt64Value {
                value: self.inodes_used,
            }),
        }
    }
}

/// Where a container's writable layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerLocation {
    /// The layer's own directory, as a graph driver names it.
    Dir(PathBuf),
    /// The mount point of a running container's root filesystem, an
    /// overlay whose upper directory is the layer.
    RootfsMount(PathBuf),
    /// The directory found while the container ran, if it was seen
    /// running: it is stopped, and its root filesystem unmounted.
    Remembered,
}

/// The cache of layer figures and the handle on the walking thread.
#[derive(Debug)]
pub struct LayerSizes {
    shared: Arc<Shared>,
    /// `None` until the first walk starts the thread.
    walks: Mutex<Option<SyncSender<Walk>>>,
}

#[derive(Debug)]
struct Walk {
    id: String,
    location: LayerLocation,
}

/// What the callers and the thread share.
#[derive(Debug)]
struct Shared {
    cache: Mutex<Cache>,
    completed: AtomicU64,
    limits: LayerLimits,
    /// [`MOUNTINFO`] outside tests.
    mountinfo: PathBuf,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// Containers with a walk queued or running.
    in_flight: HashSet<String>,
    /// Running containers whose root filesystem was not found mounted, and
    /// when that was last looked for.
    unlocated: HashMap<String, Instant>,
}

#[derive(Debug, Clone)]
struct Entry {
    usage: LayerUsage,
    measured: Instant,
    /// The upper directory found in mountinfo, for a layer located by its
    /// root filesystem's mount point.
    found_dir: Option<PathBuf>,
}

impl Default for LayerSizes {
    fn default() -> LayerSizes {
        LayerSizes::new(LayerLimits::default())
    }
}

impl LayerSizes {
    /// An empty cache; no thread runs until the first walk.
    pub fn new(limits: LayerLimits) -> LayerSizes {
        LayerSizes::with_mountinfo(limits, PathBuf::from(MOUNTINFO))
    }

    /// Like [`LayerSizes::new`], finding root filesystems in the mount
    /// table at `mountinfo`.
    pub(crate) fn with_mountinfo(limits: LayerLimits, mountinfo: PathBuf) -> LayerSizes {
        LayerSizes {
            shared: Arc::new(Shared {
                cache: Mutex::new(Cache::default()),
                completed: AtomicU64::new(0),
                limits,
                mountinfo,
            }),
            walks: Mutex::new(None),
        }
    }

    /// The last figures of container `id`, whose writable layer is at
    /// `location`; queues a walk when there are none or they are old.
    /// Never blocks on a walk.
    pub fn get(&self, id: &str, location: &LayerLocation) -> Option<LayerUsage> {
        let limits = &self.shared.limits;
        let (cached, walk) = {
            let mut cache = self.shared.cache();
            let entry = cache.entries.get(id);
            let cached = entry.map(|e| e.usage);
            let stale = entry.is_none_or(|e| e.measured.elapsed() >= limits.refresh_after);
            let walkable = match location {
                LayerLocation::Dir(_) => true,
                LayerLocation::RootfsMount(_) => cache
                    .unlocated
                    .get(id)
                    .is_none_or(|at| at.elapsed() >= limits.locate_retry),
                LayerLocation::Remembered => entry.is_some_and(|e| e.found_dir.is_some()),
            };
            let walk = stale && walkable && cache.in_flight.insert(id.to_owned());
            (cached, walk)
        };
        if walk && !self.queue(id, location) {
            self.shared.cache().in_flight.remove(id);
        }
        cached
    }

    /// Forgets every container `keep` says is gone.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut cache = self.shared.cache();
        cache.entries.retain(|id, _| keep(id));
        cache.unlocated.retain(|id, _| keep(id));
    }

    /// Walks finished since this cache was made, failed ones included.
    #[cfg(test)]
    pub fn walks_completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }

    /// Hands a walk to the thread, starting it if need be; false if the
    /// queue is full or the thread cannot start.
    fn queue(&self, id: &str, location: &LayerLocation) -> bool {
        let mut walks = self.walks.lock().unwrap_or_else(PoisonError::into_inner);
        if walks.is_none() {
            match spawn(Arc::clone(&self.shared)) {
                Ok(sender) => *walks = Some(sender),
                Err(err) => {
                    log::warn!("cannot start the {THREAD_NAME} thread: {err}");
                    return false;
                }
            }
        }
        let Some(sender) = walks.as_ref() else {
            return false;
        };
        let walk = Walk {
            id: id.to_owned(),
            location: location.clone(),
        };
        match sender.try_send(walk) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            // The thread is gone (it panicked): the next call starts another.
            Err(TrySendError::Disconnected(_)) => {
                *walks = None;
                false
            }
        }
    }
}

impl Shared {
    /// The cache holds plain values replaced whole: a panic elsewhere cannot
    /// leave it half-written.
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory to walk for a layer at `location`, and whether it was
    /// found in mountinfo (to be remembered).
    fn locate(&self, id: &str, location: LayerLocation) -> io::Result<(PathBuf, bool)> {
        let mount_point = match location {
            LayerLocation::Dir(dir) => return Ok((dir, false)),
            LayerLocation::RootfsMount(mount_point) => Some(mount_point),
            LayerLocation::Remembered => None,
        };
        let remembered = self
            .cache()
            .entries
            .get(id)
            .and_then(|e| e.found_dir.clone());
        // A snapshot's directory stays the container's for its whole life.
        if let Some(dir) = remembered {
            return Ok((dir, true));
        }
        let Some(mount_point) = mount_point else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "its root filesystem was never seen mounted",
            ));
        };
        let mountinfo = read_bounded(&self.mountinfo, MOUNTINFO_MAX).map_err(io::Error::other)?;
        match overlay_upper_dir(&mountinfo, &mount_point) {
            Some(dir) => {
                self.cache().unlocated.remove(id);
                Ok((dir, true))
            }
            None => {
                let mut cache = self.cache();
                if cache.unlocated.len() >= self.limits.max_cached {
                    cache.unlocated.clear();
                }
                cache.unlocated.insert(id.to_owned(), Instant::now());
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no overlay with an upper directory is mounted at {}",
                        mount_point.display()
                    ),
                ))
            }
        }
    }

    fn finish(&self, id: String, result: io::Result<(Measured, Option<PathBuf>)>) {
        let mut cache = self.cache();
        cache.in_flight.remove(&id);
        match result {
            Ok((measured, found_dir)) => {
                if !cache.entries.contains_key(&id) && cache.entries.len() >= self.limits.max_cached
                {
                    evict_oldest(&mut cache.entries);
                }
                let usage = LayerUsage {
                    timestamp_ns: unix_nanos(SystemTime::now()),
                    used_bytes: measured.bytes,
                    inodes_used: measured.inodes,
                    complete: measured.complete,
                };
                let entry = Entry {
                    usage,
                    measured: Instant::now(),
                    found_dir,
                };
                cache.entries.insert(id, entry);
            }
            // Usually a container removed since the call that asked; its
            // old figures, if any, stay until the caller prunes them.
            Err(err) => log::debug!("writable layer of container {id}: {err}"),
        }
        // Counted under the lock: whoever sees the count sees the entry.
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

fn evict_oldest(entries: &mut HashMap<String, Entry>) {
    let oldest = entries
        .iter()
        .min_by_key(|(_, e)| e.measured)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        entries.remove(&id);
    }
}

fn spawn(shared: Arc<Shared>) -> io::Result<SyncSender<Walk>> {
    let (sender, receiver) = mpsc::sync_channel::<Walk>(shared.limits.queue_capacity);
    supervisor::spawn(DUTY, move || {
        // Ends when the LayerSizes, which holds the only sender, is dropped.
        while let Ok(walk) = receiver.recv() {
            let result = shared
                .locate(&walk.id, walk.location)
                .and_then(|(dir, found)| {
                    let measured = measure(&dir, shared.limits.max_entries)?;
                    Ok((measured, found.then_some(dir)))
                });
            shared.finish(walk.id, result);
        }
        Ended::Released
    })?;
    Ok(sender)
}

/// The figures of one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub bytes: u64,
    pub inodes: u64,
    pub complete: bool,
}

/// Walks the tree at `root` (see the module documentation for what
/// counts), visiting at most `max_entries` entries, `root` included.
pub fn measure(root: &Path, max_entries: u64) -> io::Result<Measured> {
    let root_meta = fs::symlink_metadata(root)?;
    let device = root_meta.dev();
    let mut totals = Measured {
        bytes: 0,
        inodes: 0,
        complete: true,
    };
    let mut linked = HashSet::new();
    let mut visited: u64 = 0;
    let mut count = |meta: &fs::Metadata, totals: &mut Measured| {
        // Directories always have several links ("." and "..").
        if !meta.is_dir() && meta.nlink() > 1 && !linked.insert((meta.dev(), meta.ino())) {
            return;
        }
        totals.bytes = totals
            .bytes
            .saturating_add(meta.blocks().saturating_mul(BLOCK_BYTES));
        totals.inodes = totals.inodes.saturating_add(1);
    };
    if max_entries == 0 {
        totals.complete = false;
        return Ok(totals);
    }
    visited += 1;
    count(&root_meta, &mut totals);
    let mut directories = Vec::new();
    if root_meta.is_dir() {
        directories.push(root.to_owned());
    }
    while let Some(dir) = directories.pop() {
        // Removed or made unreadable since it was listed.
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            if visited >= max_entries {
                totals.complete = false;
                return Ok(totals);
            }
            let Ok(entry) = entry else {
                continue;
            };
            // DirEntry::metadata does not follow symlinks.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            visited += 1;
            count(&meta, &mut totals);
            if meta.is_dir() && meta.dev() == device {
                directories.push(entry.path());
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::thread;

    fn at(dir: impl AsRef<Path>) -> LayerLocation {
        LayerLocation::Dir(dir.as_ref().to_owned())
    }

    fn blocks_of(path: &Path) -> u64 {
        fs::symlink_metadata(path).unwrap().blocks() * BLOCK_BYTES
    }

    fn wait_for(sizes: &LayerSizes, walks: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while sizes.walks_completed() < walks {
            assert!(Instant::now() < deadline, "no walk finished within 30 s");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn files_directories_and_symlinks_are_counted_by_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc/ssl")).unwrap();
        fs::write(root.join("etc/ssl/cert.pem"), vec![1u8; 10_000]).unwrap();
        fs::write(root.join("etc/hostname"), "pod\n").unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        let paths = [
            "",
            "etc",
            "etc/ssl",
            "etc/ssl/cert.pem",
            "etc/hostname",
            "passwd",
        ];
        let expected: u64 = paths.iter().map(|p| blocks_of(&root.join(p))).sum();
        let measured = measure(root, 100).unwrap();
        assert_eq!(
            measured,
            Measured {
                bytes: expected,
                inodes: 6,
                complete: true
            }
        );
        assert!(measured.bytes >= 10_000);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("big"), vec![1u8; 1 << 20]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path(), dir.path().join("to-dir")).unwrap();
        symlink(outside.path().join("big"), dir.path().join("to-file")).unwrap();
        symlink(dir.path(), dir.path().join("loop")).unwrap();
        let measured = measure(dir.path(), 100).unwrap();
        assert_eq!(measured.inodes, 4);
        assert!(measured.bytes < 1 << 20, "{measured:?}");
    }

    #[test]
    fn hard_links_count_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("sub/c")).unwrap();
        let measured = measure(dir.path(), 100).unwrap();
        let expected = blocks_of(dir.path())
            + blocks_of(&dir.path().join("a"))
            + blocks_of(&dir.path().join("sub"));
        assert_eq!(measured.inodes, 3);
        assert_eq!(measured.bytes, expected);
    }

    #[test]
    fn a_walk_stops_at_its_entry_cap() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
        }
        let partial = measure(dir.path(), 10).unwrap();
        assert_eq!(partial.inodes, 10);
        assert!(!partial.complete);
        let whole = measure(dir.path(), 51).unwrap();
        assert_eq!(whole.inodes, 51);
        assert!(whole.complete);
        assert!(!measure(dir.path(), 0).unwrap().complete);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = measure(&dir.path().join("gone"), 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_first_get_is_unknown_and_queues_one_walk() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), vec![1u8; 8192]).unwrap();
        let sizes = LayerSizes::default();
        assert_eq!(sizes.get("c1", &at(dir.path())), None);
        wait_for(&sizes, 1);
        let usage = sizes.get("c1", &at(dir.path())).unwrap();
        assert_eq!(usage.inodes_used, 2);
        assert!(usage.used_bytes >= 8192);
        assert!(usage.complete);
        assert!(usage.timestamp_ns > 0);
        // Fresh figures are served without another walk.
        thread::sleep(Duration::from_millis(50));
        assert_eq!(sizes.get("c1", &at(dir.path())), Some(usage));
        assert_eq!(sizes.walks_completed(), 1);

        let cri = usage.to_cri("/var/lib/docker");
        assert_eq!(cri.fs_id.unwrap().mountpoint, "/var/lib/docker");
        assert_eq!(cri.inodes_used.unwrap().value, 2);
    }

    #[test]
    fn at_most_one_walk_per_container_is_in_flight() {
        // A tree that takes the thread a while, and figures that are always
        // old: only the walk in flight holds back the next one.
        let dir = tempfile::tempdir().unwrap();
        for d in 0..20 {
            let sub = dir.path().join(format!("d{d}"));
            fs::create_dir(&sub).unwrap();
            for f in 0..200 {
                fs::write(sub.join(format!("f{f}")), "").unwrap();
            }
        }
        let sizes = LayerSizes::new(LayerLimits {
            refresh_after: Duration::ZERO,
            ..LayerLimits::default()
        });
        let mut gets = 0;
        let mut served = false;
        while gets < 1000 && !served {
            served = sizes.get("c1", &at(dir.path())).is_some();
            gets += 1;
        }
        assert!(gets > 1, "the walk finished before a second get");
        // A get that found the figures (old at once) queued the next walk.
        let expected = 1 + u64::from(served);
        wait_for(&sizes, expected);
        thread::sleep(Duration::from_millis(200));
        assert_eq!(sizes.walks_completed(), expected, "after {gets} gets");
        assert_eq!(sizes.get("c1", &at(dir.path())).unwrap().inodes_used, 4021);
    }

    #[test]
    fn a_failed_walk_is_retried_by_a_later_get() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("diff");
        let sizes = LayerSizes::default();
        assert_eq!(sizes.get("c1", &at(&upper)), None);
        wait_for(&sizes, 1);
        fs::create_dir(&upper).unwrap();
        assert_eq!(sizes.get("c1", &at(&upper)), None);
        wait_for(&sizes, 2);
        assert_eq!(sizes.get("c1", &at(&upper)).unwrap().inodes_used, 1);
    }

    #[test]
    fn a_rootfs_mount_is_looked_up_once_and_its_upper_dir_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("snapshots/3/fs");
        fs::create_dir_all(&upper).unwrap();
        let rootfs = dir.path().join("rootfs/overlayfs/c1");
        let mountinfo = dir.path().join("mountinfo");
        fs::write(
            &mountinfo,
            format!(
                "51 24 0:40 / {} rw - overlay overlay rw,lowerdir=/l,upperdir={},workdir=/w\n",
                rootfs.display(),
                upper.display()
            ),
        )
        .unwrap();
        let sizes = LayerSizes::with_mountinfo(
            LayerLimits {
                refresh_after: Duration::ZERO,
                ..LayerLimits::default()
            },
            mountinfo.clone(),
        );
        let mounted = LayerLocation::RootfsMount(rootfs);
        assert_eq!(sizes.get("c1", &mounted), None);
        wait_for(&sizes, 1);
        assert_eq!(sizes.get("c1", &mounted).unwrap().inodes_used, 1);
        wait_for(&sizes, 2);
        // Unmounted, or the table unreadable: the directory is known.
        fs::remove_file(&mountinfo).unwrap();
        fs::write(upper.join("file"), "x").unwrap();
        sizes.get("c1", &mounted);
        wait_for(&sizes, 3);
        sizes.get("c1", &LayerLocation::Remembered);
        wait_for(&sizes, 4);
        assert_eq!(
            sizes
                .get("c1", &LayerLocation::Remembered)
                .unwrap()
                .inodes_used,
            2
        );
        // Another container was never seen mounted.
        assert_eq!(sizes.get("c2", &LayerLocation::Remembered), None);
        sizes.retain(|id| id != "c1");
        assert_eq!(sizes.get("c1", &LayerLocation::Remembered), None);
    }

    #[test]
    fn the_cache_is_bounded_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = LayerSizes::new(LayerLimits {
            max_cached: 2,
            ..LayerLimits::default()
        });
        for (n, id) in ["c1", "c2", "c3"].into_iter().enumerate() {
            sizes.get(id, &at(dir.path()));
            wait_for(&sizes, n as u64 + 1);
        }
        assert_eq!(
            sizes.get("c1", &at(dir.path())),
            None,
            "the oldest was evicted"
        );
        assert!(sizes.get("c3", &at(dir.path())).is_some());
        sizes.retain(|id| id != "c3");
        assert_eq!(sizes.get("c3", &at(dir.path())), None);
    }

    #[test]
    fn requests_a_full_queue_turns_away_are_made_again() {
        let sizes = LayerSizes::new(LayerLimits {
            queue_capacity: 0,
            ..LayerLimits::default()
        });
        // A rendezvous queue takes a walk only while the thread waits for
        // one, so a burst cannot all be queued; none may be lost for good.
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while ids
            .iter()
            .any(|id| sizes.get(id, &at(dir.path())).is_none())
        {
            assert!(Instant::now() < deadline, "some layer was never measured");
            thread::sleep(Duration::from_millis(1));
        }
    }
}
