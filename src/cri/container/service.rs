//! `ContainerService`: the state the container calls share — dockerd, the
//! state index and the log manager — the node facts the create body needs
//! (mount propagation, seccomp profiles, swap, and from dockerd the cgroup
//! driver and whether it has AppArmor); why one of those calls failed is
//! `error`'s `ContainerError`.
//!
//! The calls themselves live in `create`, `lifecycle`, `list` and
//! `update`. This module starts no threads: the index and the log manager
//! it is given run their own, and the log keeper it hands out is spawned
//! by the caller.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::image_names::ImageNamesCache;
use super::keeper::LogKeeper;
use super::{ContainerError, HostMounts, HostPropagation};
use crate::api::v1;
use crate::cri::answers::EncodedAnswers;
use crate::docker::{DockerApi, Engine, DEFAULT_REQUEST_TIMEOUT};
use crate::host::Host;
use crate::index::Index;
use crate::logs::LogManager;

/// What the container calls work with.
pub struct ContainerService {
    pub(super) docker: Arc<dyn DockerApi>,
    pub(super) index: Arc<Index>,
    pub(super) logs: Arc<LogManager>,
    /// The node's mounts, swap and process files.
    pub(super) host: Arc<dyn Host>,
    /// Budget of one dockerd call (`--runtime-request-timeout`).
    pub(super) request_timeout: Duration,
    /// The tags and digests ContainerStatus reports, per image ID.
    pub(super) image_names: ImageNamesCache,
    /// Held by RemoveContainer and by the log keeper while it resumes a
    /// log, so a container being removed is never followed again.
    pub(super) log_lock: Arc<Mutex<()>>,
    /// ListContainers' encoded answers, by filter and index generation.
    pub(super) answers: EncodedAnswers<v1::ContainerFilter, u64>,
}

impl fmt::Debug for ContainerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerService")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl ContainerService {
    /// The container calls over a running index and log manager;
    /// `request_timeout` of zero means dockerd's default budget.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        index: Arc<Index>,
        logs: Arc<LogManager>,
        host: Arc<dyn Host>,
        request_timeout: Duration,
    ) -> ContainerService {
        let request_timeout = if request_timeout.is_zero() {
            DEFAULT_REQUEST_TIMEOUT
        } else {
            request_timeout
        };
        ContainerService {
            docker,
            index,
            logs,
            host,
            request_timeout,
            image_names: ImageNamesCache::default(),
            log_lock: Arc::new(Mutex::new(())),
            answers: EncodedAnswers::default(),
        }
    }

    /// The keeper that follows running containers' output whenever
    /// StartContainer did not (see `keeper`); the caller spawns it.
    pub fn log_keeper(&self) -> LogKeeper {
        LogKeeper {
            index: Arc::downgrade(&self.index),
            logs: Arc::clone(&self.logs),
            log_lock: Arc::clone(&self.log_lock),
        }
    }

    /// The state index the container calls answer from.
    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// What the engine is and can do (`GET /info`, asked once).
    pub(super) fn engine(&self) -> Result<Arc<Engine>, ContainerError> {
        self.docker
            .engine()
            .map_err(|err| ContainerError::docker("read what dockerd is and can do", err))
    }
}

/// The node's mount table as the host gives it, read on each question:
/// mounts come and go.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeMounts<'a>(pub(super) &'a dyn Host);

impl HostMounts for NodeMounts<'_> {
    /// The mount table lists real paths, so `path` is resolved first: a
    /// symbolic link on the way (`/var/run` → `/run`) may lead onto
    /// another mount than the one its spelling suggests.
    fn propagation(&self, path: &Path) -> io::Result<HostPropagation> {
        let resolved = resolve_existing_part(path)?;
        let text = self.0.mountinfo()?;
        propagation_in(&text, &resolved).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no mount in the node's mount table holds {resolved:?}"),
            )
        })
    }
}

/// `path` with its deepest existing ancestor (or itself) resolved to its
/// real path and the rest, which dockerd creates at the start, appended
/// as spelled.
pub(super) fn resolve_existing_part(path: &Path) -> io::Result<PathBuf> {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        match std::fs::canonicalize(existing) {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(err);
                };
                missing.push(name);
                existing = parent;
            }
            Err(err) => return Err(err),
        }
    }
}

/// The propagation of the mount holding `path` in the mountinfo `table`:
/// the mount with the longest mount point that is `path` or one of its
/// ancestors; the last one listed wins a tie, as it is mounted on top.
pub(super) fn propagation_in(table: &str, path: &Path) -> Option<HostPropagation> {
    let mut best: Option<(usize, HostPropagation)> = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4).map(|field| unescape(field)) else {
            continue;
        };
        if !path.starts_with(&mount_point) {
            continue;
        }
        let optional = fields.iter().skip(6).take_while(|field| **field != "-");
        let mut propagation = HostPropagation::Private;
        for field in optional {
            if field.starts_with("shared:") {
                propagation = HostPropagation::Shared;
            } else if field.starts_with("master:") && propagation == HostPropagation::Private {
                propagation = HostPropagation::Slave;
            }
        }
        let depth = mount_point.components().count();
        if best.is_none_or(|(best_depth, _)| depth >= best_depth) {
            best = Some((depth, propagation));
        }
    }
    best.map(|(_, propagation)| propagation)
}

/// A mountinfo path with its `\NNN` octal escapes (space, tab, newline,
/// backslash) decoded.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], escaped) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /mnt/data rw,relatime master:7 - tmpfs tmpfs rw
31 30 0:27 / /mnt/data/private rw,relatime - tmpfs tmpfs rw
32 22 0:28 / /mnt/with\\040space rw shared:9 master:3 - tmpfs tmpfs rw
";

    #[test]
    fn the_deepest_mount_holding_a_path_gives_its_propagation() {
        let cases = [
            ("/var/lib/x", Some(HostPropagation::Shared)),
            ("/mnt/data", Some(HostPropagation::Slave)),
            ("/mnt/data/sub", Some(HostPropagation::Slave)),
            ("/mnt/data/private/a", Some(HostPropagation::Private)),
            ("/mnt/database", Some(HostPropagation::Shared)),
            ("/mnt/with space/f", Some(HostPropagation::Shared)),
        ];
        for (path, expected) in cases {
            assert_eq!(propagation_in(TABLE, Path::new(path)), expected, "{path}");
        }
        assert_eq!(propagation_in("", Path::new("/x")), None);
    }

    #[test]
    fn a_symlinked_host_path_is_looked_up_where_it_leads() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let real = dir.path().canonicalize()?.join("real");
        std::fs::create_dir(&real)?;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link)?;
        let cases = [
            (link.clone(), real.clone()),
            (link.join("missing/deeper"), real.join("missing/deeper")),
            (real.join("missing"), real.join("missing")),
        ];
        for (given, expected) in &cases {
            assert_eq!(&resolve_existing_part(given)?, expected, "{given:?}");
        }
        let table = format!(
            "22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n\
             40 22 0:30 / {} rw - tmpfs tmpfs rw\n",
            real.display()
        );
        let given = link.join("missing/deeper");
        assert_eq!(
            propagation_in(&table, &resolve_existing_part(&given)?),
            Some(HostPropagation::Private)
        );
        assert_eq!(
            propagation_in(&table, &given),
            Some(HostPropagation::Shared),
            "the unresolved spelling finds the wrong mount"
        );
        Ok(())
    }
}
