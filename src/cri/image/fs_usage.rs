//! The figures behind ImageFsInfo, measured by one background thread
//! (`image-fs-usage`) and served from a cache.
//!
//! The filesystem is the directory that holds the unpacked layers
//! (`Engine::storage_dirs`): dockerd's root directory under a graph
//! driver, the snapshotter's directory of dockerd's containerd under the
//! containerd image store. Images and writable layers are both kept there.
//!
//! Images: the bytes of every distinct unpacked layer. A layer shared by
//! many images is stored once, so each image's layer sizes are learnt once
//! (image configurations never change: `GET /images/{id}/json` for the
//! layer list, `GET /images/{id}/history` for their sizes) and summed over
//! the distinct layer chains. The containerd image store also keeps every
//! image's compressed layers, manifests and configuration in its content
//! store: their blocks are added, from one listing of its flat blob
//! directories. Inodes: the filesystem holding the layers (`statfs`), as
//! there is no per-store count. Containers: the writable layers' bytes
//! (`SizeRw`), which dockerd must walk to compute, so they are refreshed
//! less often.
//!
//! This module walks no directory tree and never measures on a CRI call:
//! calls read the last figures; a pull or removal asks for a refresh. The
//! image list comes from the [`ImageListing`] ListImages reads, so a
//! refresh while no image changed makes no `GET /images/json`. The thread
//! stops when its [`Refresher`] is dropped.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::listing::ImageListing;
use super::FsUsageError;
use crate::docker::{DockerApi, DockerError, HistoryItem, ImageSummary, StorageDirs};
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// The thread's name, as `ps -L` and panics show it.
const THREAD_NAME: &str = "image-fs-usage";
/// Without the thread ImageFsInfo keeps answering its last figures, which
/// the kubelet's image garbage collection would trust: Status reports the
/// death (see `crate::supervisor`).
const DUTY: Duty = Duty {
    name: THREAD_NAME,
    on_death: OnDeath::Report,
    loss: "the image filesystem figures (ImageFsInfo) are no longer refreshed",
};
/// How often the figures are refreshed without being asked.
const REFRESH_INTERVAL: Duration = Duration::from_secs(15);
/// How often the containers' writable-layer sizes are recomputed; each
/// time dockerd walks every container's writable layer.
const CONTAINER_SIZE_INTERVAL: Duration = Duration::from_secs(60);
/// Listings of the containers' sizes tried in a row before the last figure
/// is kept (see `Measurer::container_bytes`).
const CONTAINER_SIZE_ATTEMPTS: u32 = 3;
/// The content store's blob directories, one per digest algorithm, each
/// holding a file per blob named by its digest.
const CONTENT_BLOBS: &str = "blobs";
/// Blobs one listing counts before it stops: a store holds a few per image
/// (layers, configuration, manifests), so this many means something else
/// is there.
const MAX_BLOBS: u64 = 1_000_000;
/// Size of a block as `st_blocks` counts them.
const BLOCK_BYTES: u64 = 512;

/// One measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsFigures {
    /// When it was taken, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The directory holding the layers: `DockerRootDir`, or the
    /// containerd snapshotter's directory.
    pub mountpoint: String,
    /// Bytes of the distinct image layers, and of the content store.
    pub image_bytes: u64,
    /// Inodes in use on the filesystem holding the mountpoint.
    pub inodes_used: u64,
    /// Bytes of all containers' writable layers.
    pub container_bytes: u64,
}

/// The last figures, shared by the thread and the handlers.
#[derive(Debug, Default)]
pub struct FsUsage {
    state: Mutex<State>,
    measured: Condvar,
}

#[derive(Debug, Default)]
struct State {
    figures: Option<FsFigures>,
    last_error: Option<String>,
}

impl FsUsage {
    /// The last figures; before the first measurement, waits for it up to
    /// `wait`. The error says why there are none yet.
    pub fn latest(&self, wait: Duration) -> Result<FsFigures, String> {
        let state = self.state();
        let (state, _) = self
            .measured
            .wait_timeout_while(state, wait, |s| {
                s.figures.is_none() && s.last_error.is_none()
            })
            .unwrap_or_else(PoisonError::into_inner);
        match (&state.figures, &state.last_error) {
            (Some(figures), _) => Ok(figures.clone()),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Err(format!("no measurement within {wait:?}")),
        }
    }

    fn publish(&self, result: Result<FsFigures, String>) {
        let mut state = self.state();
        match result {
            Ok(figures) => {
                state.figures = Some(figures);
                state.last_error = None;
            }
            // Older figures stay: ImageFsInfo keeps answering (with their
            // timestamp) while dockerd is briefly away.
            Err(error) => state.last_error = Some(error),
        }
        self.measured.notify_all();
    }

    /// The state holds plain values replaced whole, so a panic elsewhere
    /// cannot leave it half-written.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Asks the thread for an early refresh; dropping it stops the thread.
#[derive(Debug)]
pub struct Refresher {
    pokes: mpsc::Sender<()>,
}

impl Refresher {
    /// Asks for a refresh soon (after a pull or a removal). Never blocks.
    pub fn poke(&self) {
        // The thread only goes away after the Refresher does.
        let _ = self.pokes.send(());
    }
}

/// Starts the measuring thread, which publishes into `usage`.
pub fn spawn(
    docker: Arc<dyn DockerApi>,
    listing: Arc<ImageListing>,
    usage: Arc<FsUsage>,
) -> io::Result<Refresher> {
    let (pokes, poked) = mpsc::channel();
    supervisor::spawn(DUTY, move || {
        let mut measurer = Measurer::new(docker, listing);
        let mut last_logged_error = None;
        loop {
            let result = measurer.measure().map_err(|err| err.to_string());
            if let Err(error) = &result {
                if last_logged_error.as_ref() != Some(error) {
                    log::warn!("image filesystem usage: {error}");
                    last_logged_error = Some(error.clone());
                }
            } else {
                last_logged_error = None;
            }
            usage.publish(result);
            match poked.recv_timeout(REFRESH_INTERVAL) {
                // Several pokes while measuring ask for one refresh.
                Ok(()) | Err(RecvTimeoutError::Timeout) => while poked.try_recv().is_ok() {},
                Err(RecvTimeoutError::Disconnected) => return Ended::Released,
            }
        }
    })?;
    Ok(Refresher { pokes })
}

/// The thread's own state: what it learnt about each image, and when the
/// container sizes were last computed.
struct Measurer {
    docker: Arc<dyn DockerApi>,
    listing: Arc<ImageListing>,
    dirs: Option<StorageDirs>,
    images: HashMap<String, ImageLayers>,
    containers: Option<(Instant, u64)>,
}

impl Measurer {
    fn new(docker: Arc<dyn DockerApi>, listing: Arc<ImageListing>) -> Measurer {
        Measurer {
            docker,
            listing,
            dirs: None,
            images: HashMap::new(),
            containers: None,
        }
    }

    fn measure(&mut self) -> Result<FsFigures, FsUsageError> {
        let result = self.try_measure();
        if result.is_err() {
            // dockerd may have restarted with another root directory, or
            // its containerd made its snapshotter's directory since.
            self.dirs = None;
        }
        result
    }

    fn try_measure(&mut self) -> Result<FsFigures, FsUsageError> {
        let dirs = match &self.dirs {
            Some(dirs) => dirs.clone(),
            None => {
                let dirs = self.docker.engine()?.storage_dirs(Path::is_dir);
                self.dirs = Some(dirs.clone());
                dirs
            }
        };
        let content_bytes = match &dirs.content {
            Some(content) => content_bytes(content, MAX_BLOBS)?,
            None => 0,
        };
        let image_bytes = self.image_bytes()?.saturating_add(content_bytes);
        let container_bytes = self.container_bytes()?;
        let stat =
            nix::sys::statfs::statfs(&dirs.layers).map_err(|errno| FsUsageError::Statfs {
                path: dirs.layers.display().to_string(),
                errno,
            })?;
        // fsfilcnt_t is u64 or u32 depending on the target: widening.
        #[allow(clippy::unnecessary_cast)]
        let inodes_used = (stat.files() as u64).saturating_sub(stat.files_free() as u64);
        Ok(FsFigures {
            timestamp_ns: unix_nanos(SystemTime::now()),
            mountpoint: dirs.layers.display().to_string(),
            image_bytes,
            inodes_used,
            container_bytes,
        })
    }

    fn image_bytes(&mut self) -> Result<u64, FsUsageError> {
        let summaries = self.listing.list()?;
        let present: HashSet<&str> = summaries.iter().map(|s| s.id.as_str()).collect();
        self.images.retain(|id, _| present.contains(id.as_str()));
        for summary in summaries.iter() {
            if self.images.contains_key(&summary.id) {
                continue;
            }
            // None: removed since the listing; the next refresh will not see it.
            if let Some(layers) = self.learn(summary)? {
                self.images.insert(summary.id.clone(), layers);
            }
        }
        Ok(unique_bytes(self.images.values()))
    }

    fn learn(&self, summary: &ImageSummary) -> Result<Option<ImageLayers>, DockerError> {
        let Some(inspect) = self.docker.inspect_image(&summary.id)? else {
            return Ok(None);
        };
        let Some(history) = self.docker.image_history(&summary.id)? else {
            return Ok(None);
        };
        Ok(Some(layer_sizes(
            &inspect.root_fs.layers,
            &history,
            summary.size,
        )))
    }

    fn container_bytes(&mut self) -> Result<u64, FsUsageError> {
        if let Some((at, bytes)) = self.containers {
            if at.elapsed() < CONTAINER_SIZE_INTERVAL {
                return Ok(bytes);
            }
        }
        let mut attempt = 1;
        let containers = loop {
            match self.docker.container_sizes()? {
                Some(containers) => break containers,
                // The containerd image store fails the whole listing when a
                // container's snapshot is made or removed while it is
                // listed; that lasts moments.
                None if attempt < CONTAINER_SIZE_ATTEMPTS => {
                    log::debug!("container sizes, attempt {attempt}: a container vanished");
                    attempt += 1;
                }
                // A busy node may always have one: the last figure stands
                // until the next refresh tries again.
                None => return Ok(self.containers.map_or(0, |(_, bytes)| bytes)),
            }
        };
        let bytes = containers
            .iter()
            .map(|c| u64::try_from(c.size_rw).unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        self.containers = Some((Instant::now(), bytes));
        Ok(bytes)
    }
}

/// Bytes of the blobs in a containerd content store at `content`: the
/// allocated blocks of the files in each `blobs/<algorithm>` directory,
/// at most `max_blobs` of them. A store not made yet holds nothing; blobs
/// removed while listed are skipped.
fn content_bytes(content: &Path, max_blobs: u64) -> Result<u64, FsUsageError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| FsUsageError::Content { path, source }
    };
    let blobs = content.join(CONTENT_BLOBS);
    let algorithms = match fs::read_dir(&blobs) {
        Ok(algorithms) => algorithms,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(failed(&blobs)(err)),
    };
    let mut bytes: u64 = 0;
    let mut counted: u64 = 0;
    for algorithm in algorithms {
        let algorithm = algorithm.map_err(failed(&blobs))?.path();
        let Ok(entries) = fs::read_dir(&algorithm) else {
            continue;
        };
        for entry in entries {
            if counted >= max_blobs {
                return Ok(bytes);
            }
            let Ok(meta) = entry.and_then(|e| e.metadata()) else {
                continue;
            };
            if meta.is_file() {
                counted += 1;
                bytes = bytes.saturating_add(meta.blocks().saturating_mul(BLOCK_BYTES));
            }
        }
    }
    Ok(bytes)
}

/// What one image adds to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ImageLayers {
    /// Its layers bottom first: diff ID and bytes.
    Sized(Vec<(String, u64)>),
    /// Its history does not tell the layer sizes apart: its whole size,
    /// counted as if it shared nothing.
    Whole(u64),
}

/// Pairs the layers with their sizes from the history (newest first; steps
/// that made no layer have size 0). A layer may itself be empty, so the
/// sizes are taken from the non-zero steps when they are as many as the
/// layers, else from every step when those are.
fn layer_sizes(diff_ids: &[String], history: &[HistoryItem], image_size: i64) -> ImageLayers {
    let size = |item: &HistoryItem| u64::try_from(item.size).unwrap_or(0);
    let non_zero: Vec<u64> = history.iter().rev().map(size).filter(|&s| s > 0).collect();
    let sizes = if non_zero.len() == diff_ids.len() {
        non_zero
    } else if history.len() == diff_ids.len() {
        history.iter().rev().map(size).collect()
    } else {
        return ImageLayers::Whole(u64::try_from(image_size).unwrap_or(0));
    };
    ImageLayers::Sized(diff_ids.iter().cloned().zip(sizes).collect())
}

/// Bytes of the distinct layers. dockerd stores a layer per chain (the
/// same diff on another base is another layer), so layers are counted once
/// per distinct chain prefix.
fn unique_bytes<'a>(images: impl IntoIterator<Item = &'a ImageLayers>) -> u64 {
    // Chain nodes by (parent node, diff ID); node 0 is the empty base.
    let mut chains: HashMap<(usize, &str), usize> = HashMap::new();
    let mut total: u64 = 0;
    for image in images {
        match image {
            ImageLayers::Whole(bytes) => total = total.saturating_add(*bytes),
            ImageLayers::Sized(layers) => {
                let mut parent = 0;
                for (diff_id, bytes) in layers {
                    let next = chains.len() + 1;
                    parent = *chains.entry((parent, diff_id.as_str())).or_insert_with(|| {
                        total = total.saturating_add(*bytes);
                        next
                    });
                }
            }
        }
    }
    total
}

fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::thread;

    fn history(sizes_newest_first: &[i64]) -> Vec<HistoryItem> {
        sizes_newest_first
            .iter()
            .map(|&size| HistoryItem {
                size,
                ..HistoryItem::default()
            })
            .collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sized(layers: &[(&str, u64)]) -> ImageLayers {
        ImageLayers::Sized(layers.iter().map(|&(d, s)| (d.to_owned(), s)).collect())
    }

    #[test]
    fn history_sizes_pair_with_layers_bottom_first() {
        // CMD (no layer), COPY (20), ENV (no layer), base (100).
        let layers = layer_sizes(&ids(&["base", "copy"]), &history(&[0, 20, 0, 100]), 120);
        assert_eq!(layers, sized(&[("base", 100), ("copy", 20)]));
    }

    #[test]
    fn an_empty_layer_is_paired_when_every_step_made_a_layer() {
        let layers = layer_sizes(&ids(&["base", "empty"]), &history(&[0, 100]), 100);
        assert_eq!(layers, sized(&[("base", 100), ("empty", 0)]));
    }

    #[test]
    fn an_ambiguous_history_counts_the_whole_image() {
        let layers = layer_sizes(&ids(&["a", "b", "c"]), &history(&[0, 5, 0, 7]), 12);
        assert_eq!(layers, ImageLayers::Whole(12));
    }

    #[test]
    fn shared_layers_count_once() {
        let app1 = sized(&[("base", 100), ("app1", 10)]);
        let app2 = sized(&[("base", 100), ("app2", 20)]);
        let base = sized(&[("base", 100)]);
        assert_eq!(unique_bytes([&app1, &app2, &base]), 130);
    }

    #[test]
    fn the_same_diff_on_another_base_is_another_layer() {
        let one = sized(&[("base1", 100), ("config", 1)]);
        let two = sized(&[("base2", 200), ("config", 1)]);
        assert_eq!(unique_bytes([&one, &two]), 302);
    }

    #[test]
    fn whole_images_add_their_size() {
        let shared = sized(&[("base", 100)]);
        assert_eq!(unique_bytes([&shared, &ImageLayers::Whole(50)]), 150);
        assert_eq!(unique_bytes([]), 0);
    }

    #[test]
    fn content_store_blobs_count_by_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let sha256 = dir.path().join("blobs/sha256");
        fs::create_dir_all(&sha256).unwrap();
        fs::create_dir_all(dir.path().join("ingest/partial")).unwrap();
        fs::write(dir.path().join("ingest/partial/data"), vec![1u8; 1 << 20]).unwrap();
        let mut expected = 0;
        for (name, size) in [("a1", 100_000), ("b2", 3_000), ("c3", 0)] {
            let path = sha256.join(name);
            fs::write(&path, vec![1u8; size]).unwrap();
            expected += fs::metadata(&path).unwrap().blocks() * BLOCK_BYTES;
        }
        assert!(expected >= 103_000);
        assert_eq!(content_bytes(dir.path(), MAX_BLOBS).unwrap(), expected);
        assert!(content_bytes(dir.path(), 1).unwrap() < expected);
    }

    #[test]
    fn a_content_store_not_made_yet_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            content_bytes(&dir.path().join("none"), MAX_BLOBS).unwrap(),
            0
        );
    }

    #[test]
    fn a_refresh_while_no_image_changed_lists_no_images() {
        let docker = crate::cri::testing::docker();
        let api = Arc::clone(&docker) as Arc<dyn DockerApi>;
        let listing = Arc::new(ImageListing::new(Arc::clone(&api)));
        listing.list().unwrap();
        assert!(listing.wait_followed(Duration::from_secs(10)));
        let mut measurer = Measurer::new(api, listing);
        let bytes = measurer.image_bytes().unwrap();
        let calls = docker.calls().len();
        assert_eq!(measurer.image_bytes().unwrap(), bytes);
        assert_eq!(docker.calls().len(), calls, "{:?}", docker.calls());
    }

    #[test]
    fn latest_waits_for_the_first_measurement_then_keeps_old_figures() {
        let usage = Arc::new(FsUsage::default());
        let err = usage.latest(Duration::from_millis(10)).unwrap_err();
        assert!(err.contains("no measurement"), "{err}");
        let figures = FsFigures {
            timestamp_ns: 1,
            mountpoint: "/var/lib/docker".into(),
            image_bytes: 2,
            inodes_used: 3,
            container_bytes: 4,
        };
        let publisher = Arc::clone(&usage);
        let published = figures.clone();
        let thread = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            publisher.publish(Ok(published));
        });
        assert_eq!(usage.latest(Duration::from_secs(10)).unwrap(), figures);
        thread.join().unwrap();
        usage.publish(Err("dockerd is away".into()));
        assert_eq!(usage.latest(Duration::ZERO).unwrap(), figures);
    }

    #[test]
    fn a_failed_first_measurement_is_reported() {
        let usage = FsUsage::default();
        usage.publish(Err("docker: connection refused".into()));
        assert_eq!(
            usage.latest(Duration::from_secs(10)).unwrap_err(),
            "docker: connection refused"
        );
    }
}
