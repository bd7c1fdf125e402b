//! The `log-keeper` thread: every running container that has a CRI log
//! file is followed, also when StartContainer is not what started the
//! following — after a dockshim restart, and after dockerd's log streams
//! broke (dockerd restarted with live-restore, or was briefly away).
//!
//! It compares the state index with the log manager once the index is
//! warm and then every [`SWEEP_EVERY`]; a container that has run for
//! [`ADOPT_AFTER`] but is not followed is resumed from the last line its
//! file holds, so nothing is written twice and nothing is lost.
//! The comparison reads only the index and the log manager: a warm node
//! with every log followed costs no Docker call. It must not follow a
//! container that RemoveContainer is removing, so each resume holds the
//! lock RemoveContainer holds (`ContainerService::log_lock`). A log path
//! that is a symlink is cri-dockerd's (see `is_symlink`) and left alone.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::index::{ContainerFilter, CriState, Index};
use crate::logs::{LogError, LogManager};
use crate::supervisor::{self, Duty, Ended, OnDeath};

/// The thread's name, as `/proc/self/task/*/comm` shows it.
pub const KEEPER_THREAD_NAME: &str = "log-keeper";
/// Without the keeper, logs that dockerd's restart cut are never followed
/// again, silently, so its death stops dockshim (see `crate::supervisor`).
const KEEPER_DUTY: Duty = Duty {
    name: KEEPER_THREAD_NAME,
    on_death: OnDeath::Exit,
    loss: "container logs cut by a dockerd or dockshim restart are not followed again",
};
/// How often the index and the log manager are compared without a reason.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How long a container must have run before the keeper adopts it:
/// StartContainer follows a container it starts within milliseconds, and
/// must not find the keeper (of this dockshim or of a second one on the
/// same dockerd, as in tests) there first.
pub const ADOPT_AFTER: Duration = Duration::from_secs(5);
/// How long a container whose log could not be resumed is left alone, so
/// a persistent failure costs one Docker call a minute, not one a sweep.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How often the keeper looks whether the index is warm yet.
const WARM_CHECK: Duration = Duration::from_millis(100);

/// What the keeper thread works with.
#[derive(Debug)]
pub struct LogKeeper {
    pub(super) index: Weak<Index>,
    pub(super) logs: Arc<LogManager>,
    pub(super) log_lock: Arc<Mutex<()>>,
}

impl LogKeeper {
    /// Starts the thread. It runs until the index is dropped.
    pub fn spawn(self) -> io::Result<()> {
        supervisor::spawn(KEEPER_DUTY, move || {
            self.run();
            Ended::Released
        })
    }

    fn run(self) {
        let mut failed: HashMap<String, Instant> = HashMap::new();
        loop {
            let Some(index) = self.index.upgrade() else {
                return;
            };
            // A cold index would answer with Docker calls, from stale
            // state; the keeper waits until it is warm again.
            let pause = if index.is_warm() {
                self.sweep(&index, &mut failed);
                SWEEP_EVERY
            } else {
                WARM_CHECK
            };
            drop(index);
            thread::sleep(pause);
        }
    }

    /// Resumes every running container with a log file that is not
    /// followed.
    fn sweep(&self, index: &Index, failed: &mut HashMap<String, Instant>) {
        let running = ContainerFilter {
            state: Some(CriState::Running),
            ..ContainerFilter::default()
        };
        let Ok(containers) = index.containers(&running) else {
            return;
        };
        let now = Instant::now();
        failed.retain(|id, at| {
            now.saturating_duration_since(*at) < RETRY_AFTER
                && containers.iter().any(|entry| entry.id == *id)
        });
        let adopt_before = now_ns().saturating_sub(duration_ns(ADOPT_AFTER));
        for entry in containers {
            if entry.log_path.is_empty()
                || entry.started_ns > adopt_before
                || failed.contains_key(&entry.id)
                || self.logs.is_following(&entry.id)
                || is_symlink(Path::new(&entry.log_path))
            {
                continue;
            }
            let _removal = self.log_lock.lock().unwrap_or_else(PoisonError::into_inner);
            // RemoveContainer may have run while the lock was awaited.
            let still_running = index
                .container(&entry.id)
                .ok()
                .flatten()
                .is_some_and(|now| now.is_running());
            if !still_running {
                continue;
            }
            match self
                .logs
                .resume(&entry.id, Path::new(&entry.log_path), entry.tty)
            {
                Ok(()) => log::info!("following the output of container {} again", entry.id),
                Err(LogError::AlreadyFollowed(_)) => {}
                Err(err) => {
                    log::warn!(
                        "cannot follow the output of container {} into {}: {err}",
                        entry.id,
                        entry.log_path
                    );
                    failed.insert(entry.id.clone(), now);
                }
            }
        }
    }
}

/// Whether `path` is a symlink: cri-dockerd links a container's CRI log
/// path to Docker's json-file log, which the kubelet reads through the
/// link; the containers it started keep that log, not dockshim's.
fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ns)
}

fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cri::labels::LOG_PATH_LABEL;
    use crate::cri::testing::ContainerSetup;

    /// A running container of `setup`, started at `started_at`, whose CRI
    /// log file is `path`; the log manager's dockerd is not there, so no
    /// log can be followed.
    fn running_with_log(setup: &ContainerSetup, path: &Path, started_at: &str) -> String {
        let id = setup.running_container();
        setup.docker.edit_container(&id, |container| {
            container
                .config
                .labels
                .insert(LOG_PATH_LABEL.to_owned(), path.display().to_string());
            container.state.started_at = started_at.to_owned();
        });
        setup.index.refresh(&id).unwrap();
        id
    }

    const LONG_AGO: &str = "2020-01-01T00:00:00Z";

    #[test]
    fn a_log_that_cannot_be_resumed_is_tried_again_only_after_a_while() {
        let setup = ContainerSetup::new();
        let dir = tempfile::tempdir().unwrap();
        let id = running_with_log(&setup, &dir.path().join("0.log"), LONG_AGO);
        let keeper = setup.service.log_keeper();
        let mut failed = HashMap::new();
        keeper.sweep(&setup.index, &mut failed);
        let first = *failed.get(&id).expect("a failed resume");
        keeper.sweep(&setup.index, &mut failed);
        assert_eq!(failed.get(&id), Some(&first), "not tried again yet");
        assert!(!setup.service.logs.is_following(&id));
    }

    #[test]
    fn a_container_within_the_adoption_delay_is_left_to_start_container() {
        let setup = ContainerSetup::new();
        let dir = tempfile::tempdir().unwrap();
        // Any start after the adoption delay's beginning, the future too.
        running_with_log(&setup, &dir.path().join("0.log"), "2200-01-01T00:00:00Z");
        let mut failed = HashMap::new();
        setup.service.log_keeper().sweep(&setup.index, &mut failed);
        assert!(failed.is_empty());
        assert!(!dir.path().join("0.log").exists());
    }

    #[test]
    fn a_log_path_cri_dockerd_linked_is_left_alone() {
        let setup = ContainerSetup::new();
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("0.log");
        std::os::unix::fs::symlink(dir.path().join("json.log"), &link).unwrap();
        running_with_log(&setup, &link, LONG_AGO);
        let mut failed = HashMap::new();
        setup.service.log_keeper().sweep(&setup.index, &mut failed);
        assert!(failed.is_empty());
        assert!(!dir.path().join("json.log").exists());
    }
}
