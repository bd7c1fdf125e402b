//! `ContainerService`: the state the container calls share — dockerd, the
//! state index and the log manager — the node facts the create body needs
//! (mount propagation, seccomp profiles, swap, and from dockerd the cgroup
//! driver and whether it has AppArmor), and `ContainerError`, why one of
//! those calls failed.
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
use super::{ContainerConfigError, HostMounts, HostPropagation};
use crate::cri::exec::ExecError;
use crate::cri::naming::NamingError;
use crate::docker::{DockerApi, DockerError, Engine, DEFAULT_REQUEST_TIMEOUT};
use crate::grpc::{Code, Status};
use crate::host::Host;
use crate::index::{Index, IndexError};
use crate::logs::{LogError, LogManager};

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

/// Why a container call failed.
#[derive(Debug)]
pub enum ContainerError {
    /// The configuration is refused before anything is created.
    Config(ContainerConfigError),
    /// The request lacks a part it needs.
    Missing(&'static str),
    /// No sandbox with this ID.
    SandboxNotFound {
        id: String,
    },
    /// The image is not in dockerd's image store.
    ImageNotFound {
        image: String,
    },
    /// No container with this ID.
    NotFound {
        id: String,
    },
    /// The call needs a running container.
    NotRunning {
        id: String,
    },
    /// A Docker call failed; `action` says what it was for.
    Docker {
        action: &'static str,
        source: DockerError,
    },
    /// dockerd created the container but dropped a limit it was asked
    /// for, saying so only in `warning`; the container was removed again,
    /// unless `cleanup` says why it could not be.
    LimitDroppedAtCreate {
        id: String,
        warning: String,
        cleanup: Option<DockerError>,
    },
    /// dockerd applied an update but dropped a limit in it, saying so only
    /// in `warning`; the rest of the update stays applied.
    LimitDroppedAtUpdate {
        id: String,
        warning: String,
    },
    /// The new OOM score adjustment could not be given to `process` of
    /// the container, or (`None`) its processes could not be listed.
    OomScoreAdj {
        id: String,
        value: i32,
        process: Option<u32>,
        source: io::Error,
    },
    /// StartContainer failed after dockerd may have started the
    /// container, which was then stopped again, unless `cleanup` says why
    /// it could not be.
    StartRolledBack {
        id: String,
        cause: Box<ContainerError>,
        cleanup: Option<DockerError>,
    },
    Index(IndexError),
    Logs(LogError),
    Exec(ExecError),
    Naming(NamingError),
}

impl ContainerError {
    pub(super) fn docker(action: &'static str, source: DockerError) -> ContainerError {
        ContainerError::Docker { action, source }
    }

    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            ContainerError::Config(err) => err.code(),
            ContainerError::Missing(_) => Code::InvalidArgument,
            ContainerError::SandboxNotFound { .. }
            | ContainerError::ImageNotFound { .. }
            | ContainerError::NotFound { .. } => Code::NotFound,
            ContainerError::NotRunning { .. }
            | ContainerError::LimitDroppedAtCreate { .. }
            | ContainerError::LimitDroppedAtUpdate { .. }
            | ContainerError::OomScoreAdj { .. } => Code::FailedPrecondition,
            ContainerError::Docker { source, .. } => source.code(),
            ContainerError::StartRolledBack { cause, .. } => cause.code(),
            ContainerError::Index(err) => err.code(),
            ContainerError::Logs(err) => err.code(),
            ContainerError::Exec(err) => err.code(),
            ContainerError::Naming(err) => err.code(),
        }
    }
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::Config(err) => err.fmt(f),
            ContainerError::Missing(what) => write!(f, "the request has no {what}"),
            ContainerError::SandboxNotFound { id } => write!(f, "pod sandbox {id} not found"),
            ContainerError::ImageNotFound { image } => {
                write!(f, "image {image:?} is not present on the node")
            }
            ContainerError::NotFound { id } => write!(f, "container {id} not found"),
            ContainerError::NotRunning { id } => write!(f, "container {id} is not running"),
            ContainerError::Docker { action, source } => write!(f, "cannot {action}: {source}"),
            ContainerError::LimitDroppedAtCreate {
                id,
                warning,
                cleanup,
            } => {
                write!(
                    f,
                    "dockerd dropped a limit from the new container {id}: {warning:?}; "
                )?;
                match cleanup {
                    None => f.write_str("the container was removed"),
                    Some(err) => write!(f, "removing the container failed too: {err}"),
                }
            }
            ContainerError::LimitDroppedAtUpdate { id, warning } => write!(
                f,
                "dockerd dropped a limit from the update of container {id}, whose other \
                 settings were applied: {warning:?}"
            ),
            ContainerError::OomScoreAdj {
                id,
                value,
                process,
                source,
            } => {
                match process {
                    Some(pid) => write!(
                        f,
                        "oom_score_adj: cannot give {value} to process {pid} of container {id}: \
                         {source}"
                    )?,
                    None => write!(
                        f,
                        "oom_score_adj: cannot list the processes of container {id} to give them \
                         {value}: {source}"
                    )?,
                }
                if source.kind() == io::ErrorKind::PermissionDenied {
                    f.write_str(" (lowering it needs CAP_SYS_RESOURCE)")?;
                }
                Ok(())
            }
            ContainerError::StartRolledBack { id, cause, cleanup } => {
                write!(f, "{cause}; ")?;
                match cleanup {
                    None => write!(f, "container {id} was stopped again"),
                    Some(err) => write!(f, "stopping container {id} again failed too: {err}"),
                }
            }
            ContainerError::Index(err) => err.fmt(f),
            ContainerError::Logs(err) => err.fmt(f),
            ContainerError::Exec(err) => err.fmt(f),
            ContainerError::Naming(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ContainerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ContainerError::Config(err) => Some(err),
            ContainerError::Docker { source, .. } => Some(source),
            ContainerError::LimitDroppedAtCreate {
                cleanup: Some(err), ..
            } => Some(err),
            ContainerError::OomScoreAdj { source, .. } => Some(source),
            ContainerError::StartRolledBack { cause, .. } => Some(cause.as_ref()),
            ContainerError::Index(err) => Some(err),
            ContainerError::Logs(err) => Some(err),
            ContainerError::Exec(err) => Some(err),
            ContainerError::Naming(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ContainerConfigError> for ContainerError {
    fn from(err: ContainerConfigError) -> ContainerError {
        ContainerError::Config(err)
    }
}

impl From<IndexError> for ContainerError {
    fn from(err: IndexError) -> ContainerError {
        ContainerError::Index(err)
    }
}

impl From<LogError> for ContainerError {
    fn from(err: LogError) -> ContainerError {
        ContainerError::Logs(err)
    }
}

impl From<ExecError> for ContainerError {
    fn from(err: ExecError) -> ContainerError {
        ContainerError::Exec(err)
    }
}

impl From<NamingError> for ContainerError {
    fn from(err: NamingError) -> ContainerError {
        ContainerError::Naming(err)
    }
}

impl From<ContainerError> for Status {
    fn from(err: ContainerError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_rolled_back_keeps_its_cause_code_and_says_the_container_was_stopped() {
        let missing = ContainerError::Logs(LogError::MissingDirectory {
            path: PathBuf::from("/var/log/pods/e2e_pod_uid/app"),
        });
        let err = ContainerError::StartRolledBack {
            id: "c1".to_owned(),
            cause: Box::new(missing),
            cleanup: None,
        };
        assert_eq!(err.code(), Code::FailedPrecondition);
        let text = err.to_string();
        assert!(text.contains("/var/log/pods/e2e_pod_uid/app"), "{text}");
        assert!(text.ends_with("container c1 was stopped again"), "{text}");
    }

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

    #[test]
    fn errors_map_to_grpc_codes() {
        let cases = [
            (
                ContainerError::ImageNotFound {
                    image: "busybox:1".to_owned(),
                },
                Code::NotFound,
            ),
            (
                ContainerError::SandboxNotFound { id: "s".to_owned() },
                Code::NotFound,
            ),
            (
                ContainerError::NotRunning { id: "c".to_owned() },
                Code::FailedPrecondition,
            ),
            (ContainerError::Missing("config"), Code::InvalidArgument),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code, code);
        }
    }

    #[test]
    fn failures_after_dockerd_answered_say_what_was_left_behind() {
        let cases = [
            (
                ContainerError::LimitDroppedAtCreate {
                    id: "c1".to_owned(),
                    warning: "PIDs limit discarded.".to_owned(),
                    cleanup: None,
                },
                "dockerd dropped a limit from the new container c1: \"PIDs limit discarded.\"; \
                 the container was removed",
            ),
            (
                ContainerError::LimitDroppedAtUpdate {
                    id: "c1".to_owned(),
                    warning: "Shares discarded.".to_owned(),
                },
                "dockerd dropped a limit from the update of container c1, whose other settings \
                 were applied: \"Shares discarded.\"",
            ),
            (
                ContainerError::OomScoreAdj {
                    id: "c1".to_owned(),
                    value: -5,
                    process: Some(42),
                    source: io::Error::from(io::ErrorKind::PermissionDenied),
                },
                "oom_score_adj: cannot give -5 to process 42 of container c1: permission denied \
                 (lowering it needs CAP_SYS_RESOURCE)",
            ),
        ];
        for (err, message) in cases {
            let status = Status::from(err);
            assert_eq!(
                (status.code, status.message.as_str()),
                (Code::FailedPrecondition, message)
            );
        }
    }
}
