//! StartContainer, StopContainer, RemoveContainer, ExecSync and
//! ReopenContainerLog. Stop and Remove are idempotent: a container that is
//! gone already is success. Every change is told to the index at once,
//! also after a failed start, for which dockerd sends no event.

use std::path::Path;
use std::sync::PoisonError;
use std::time::Duration;

use super::error::ContainerError;
use super::service::ContainerService;
use crate::cri::exec::{exec_sync, ExecOutput};
use crate::failpoint::{self, FailPoint};
use crate::grpc::CallContext;
use crate::logs::LogError;

impl ContainerService {
    /// StartContainer; starts following the output into the CRI log file
    /// when the container has one. The log file is opened before the
    /// start, and a failure after dockerd started the container stops it
    /// again: a failed call leaves no running container behind.
    pub fn start_container(&self, id: &str) -> Result<(), ContainerError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
        let log_path = Path::new(&entry.log_path);
        let log_file = if entry.log_path.is_empty() {
            None
        } else {
            self.logs.prepare(&entry.id, log_path)?
        };
        failpoint::reached(FailPoint::StartContainerLogOpened);
        let started = self.docker.start_container(&entry.id);
        failpoint::reached(FailPoint::StartContainerStarted);
        let refreshed = self.index.refresh(&entry.id);
        match started {
            Ok(_) => {}
            // dockerd answered: the start did not happen.
            Err(err) if err.is_refusal() => {
                refreshed?;
                return Err(ContainerError::docker("start the container", err));
            }
            // No answer: the container may run all the same.
            Err(err) => {
                return Err(self.stop_after_failed_start(
                    &entry.id,
                    ContainerError::docker("start the container", err),
                ))
            }
        }
        let followed = refreshed
            .map_err(ContainerError::from)
            .and_then(|refreshed| {
                let Some(file) = log_file else {
                    return Ok(());
                };
                let tty = refreshed.as_ref().map_or(entry.tty, |entry| entry.tty);
                match self.logs.follow_prepared(&entry.id, log_path, file, tty) {
                    Ok(()) | Err(LogError::AlreadyFollowed(_)) => Ok(()),
                    Err(err) => Err(err.into()),
                }
            });
        if let Err(err) = followed {
            return Err(self.stop_after_failed_start(&entry.id, err));
        }
        failpoint::reached(FailPoint::StartContainerReady);
        log::info!("started container {}", entry.id);
        Ok(())
    }

    /// Kills container `id`, which a failed StartContainer may have left
    /// running, and waits until it is stopped; returns `cause` with what
    /// the cleanup gave.
    fn stop_after_failed_start(&self, id: &str, cause: ContainerError) -> ContainerError {
        let cleanup = self
            .docker
            .stop_container(id, Duration::ZERO, Some(self.request_timeout))
            .err();
        if let Err(err) = self.index.refresh(id) {
            log::warn!("container {id}: {err}");
        }
        ContainerError::StartRolledBack {
            id: id.to_owned(),
            cause: Box::new(cause),
            cleanup,
        }
    }

    /// StopContainer with `timeout_secs` between the stop signal and
    /// SIGKILL.
    pub fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), ContainerError> {
        let Some(entry) = self.index.container(id)? else {
            return Ok(());
        };
        let grace = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(0));
        // dockerd answers only after the grace period and the kill.
        let budget = self.request_timeout + grace;
        self.docker
            .stop_container(&entry.id, grace, Some(budget))
            .map_err(|err| ContainerError::docker("stop the container", err))?;
        self.index.refresh(&entry.id)?;
        Ok(())
    }

    /// RemoveContainer: the container, its anonymous volumes and its CRI
    /// log file.
    pub fn remove_container(&self, id: &str) -> Result<(), ContainerError> {
        let Some(entry) = self.index.container(id)? else {
            return Ok(());
        };
        let _removal = self.log_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.docker
            .remove_container(&entry.id)
            .map_err(|err| ContainerError::docker("remove the container", err))?;
        if entry.log_path.is_empty() {
            self.logs.stop(&entry.id)?;
        } else {
            self.logs.remove(&entry.id, Path::new(&entry.log_path))?;
        }
        self.index.forget(&entry.id);
        log::info!("removed container {}", entry.id);
        Ok(())
    }

    /// ExecSync: runs `cmd` in the running container `id`; `timeout_secs`
    /// of 0 means no limit besides the call's deadline.
    pub fn exec_sync(
        &self,
        ctx: &CallContext,
        id: &str,
        cmd: &[String],
        timeout_secs: i64,
    ) -> Result<ExecOutput, ContainerError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
        if !entry.is_running() {
            return Err(ContainerError::NotRunning {
                id: entry.id.clone(),
            });
        }
        let timeout = u64::try_from(timeout_secs)
            .ok()
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs);
        // Read from the index, which costs no Docker call while it is warm;
        // a cold one would answer with Docker calls from a reconcile, so
        // the container counts as running until the index is warm again.
        let running = || {
            !self.index.is_warm()
                || self
                    .index
                    .container(&entry.id)
                    .ok()
                    .flatten()
                    .is_some_and(|now| now.is_running())
        };
        Ok(exec_sync(
            self.docker.as_ref(),
            self.host.as_ref(),
            &entry.id,
            cmd,
            timeout,
            ctx,
            &running,
        )?)
    }

    /// ReopenContainerLog: the kubelet rotated the log file.
    pub fn reopen_container_log(&self, id: &str) -> Result<(), ContainerError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
        if !entry.is_running() {
            return Err(ContainerError::NotRunning {
                id: entry.id.clone(),
            });
        }
        Ok(self.logs.reopen(&entry.id)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cri::testing::ContainerSetup;
    use crate::docker::fake::{refused, status};
    use crate::docker::DockerApi;
    use crate::grpc::{Code, Status};

    fn setup() -> ContainerSetup {
        ContainerSetup::new()
    }

    fn code(err: ContainerError) -> Code {
        Status::from(err).code
    }

    #[test]
    fn stopping_an_unknown_container_is_ok_without_a_docker_call() {
        let setup = setup();
        setup.service.stop_container("f00d", 10).unwrap();
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn stopping_a_container_dockerd_lost_is_ok() {
        let setup = setup();
        let id = setup.running_container();
        setup.docker.remove_container(&id).unwrap();
        setup.service.stop_container(&id, 10).unwrap();
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            [format!("stop_container {id}")]
        );
    }

    #[test]
    fn stopping_a_stopped_container_is_ok() {
        let setup = setup();
        let id = setup.container();
        setup.service.stop_container(&id, 10).unwrap();
        setup.service.stop_container(&id, 10).unwrap();
    }

    #[test]
    fn a_stop_dockerd_fails_keeps_dockerds_code() {
        let setup = setup();
        let id = setup.running_container();
        setup
            .docker
            .fail("stop_container", status(500, "runc did not answer"));
        let err = setup.service.stop_container(&id, 10).unwrap_err();
        assert_eq!(code(err), Code::Unknown);
    }

    #[test]
    fn removing_a_container_twice_is_ok() {
        let setup = setup();
        let id = setup.container();
        setup.service.remove_container(&id).unwrap();
        setup.service.remove_container(&id).unwrap();
        assert!(setup.docker.container(&id).is_none());
        assert!(setup.index.container(&id).unwrap().is_none());
        assert_eq!(setup.docker.calls_of("remove_container").len(), 1);
    }

    #[test]
    fn removing_a_container_dockerd_lost_is_ok_and_forgets_it() {
        let setup = setup();
        let id = setup.container();
        setup.docker.remove_container(&id).unwrap();
        setup.service.remove_container(&id).unwrap();
        assert!(setup.index.container(&id).unwrap().is_none());
    }

    #[test]
    fn a_remove_dockerd_refuses_keeps_the_container_known() {
        let setup = setup();
        let id = setup.container();
        setup
            .docker
            .fail("remove_container", status(409, "removal in progress"));
        let err = setup.service.remove_container(&id).unwrap_err();
        assert_eq!(code(err), Code::FailedPrecondition);
        assert!(setup.index.container(&id).unwrap().is_some());
    }

    #[test]
    fn starting_an_unknown_container_is_not_found() {
        let setup = setup();
        let err = setup.service.start_container("f00d").unwrap_err();
        assert_eq!(code(err), Code::NotFound);
    }

    #[test]
    fn a_start_dockerd_refuses_is_not_rolled_back() {
        let setup = setup();
        let id = setup.container();
        setup
            .docker
            .fail("start_container", status(500, "exec format error"));
        let err = setup.service.start_container(&id).unwrap_err();
        assert_eq!(code(err), Code::Unknown);
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_start_without_an_answer_is_rolled_back_with_a_stop() {
        let setup = setup();
        let id = setup.container();
        setup.docker.fail("start_container", refused());
        let err = setup.service.start_container(&id).unwrap_err();
        assert!(
            matches!(err, ContainerError::StartRolledBack { cleanup: None, .. }),
            "{err:?}"
        );
        assert_eq!(code(err), Code::Unavailable);
        assert_eq!(
            setup.docker.calls_of("stop_container"),
            [format!("stop_container {id}")]
        );
    }

    #[test]
    fn a_rollback_whose_stop_fails_reports_both_failures() {
        let setup = setup();
        let id = setup.container();
        setup.docker.fail("start_container", refused());
        setup
            .docker
            .fail("stop_container", status(500, "cannot kill"));
        let err = setup.service.start_container(&id).unwrap_err();
        assert!(
            matches!(
                err,
                ContainerError::StartRolledBack {
                    cleanup: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("cannot kill"), "{err}");
    }

    #[test]
    fn exec_sync_in_a_stopped_container_fails_without_a_docker_call() {
        let setup = setup();
        let id = setup.container();
        let ctx = CallContext::new("/runtime.v1.RuntimeService/ExecSync", None);
        let err = setup
            .service
            .exec_sync(&ctx, &id, &["true".to_owned()], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::FailedPrecondition);
        assert_eq!(setup.docker.calls_of("create_exec"), Vec::<String>::new());
    }

    #[test]
    fn exec_sync_reads_the_exit_code_dockerd_recorded() {
        let setup = setup();
        let id = setup.running_container();
        let ctx = CallContext::new("/runtime.v1.RuntimeService/ExecSync", None);
        let output = setup
            .service
            .exec_sync(&ctx, &id, &["true".to_owned()], 0)
            .unwrap();
        assert_eq!(output.exit_code, 0);
        assert_eq!(
            setup.docker.calls_of("start_exec"),
            [format!("start_exec exec-{id}")]
        );
    }

    #[test]
    fn exec_sync_in_a_container_that_stopped_meanwhile_keeps_dockerds_conflict() {
        let setup = setup();
        let id = setup.running_container();
        setup
            .docker
            .stop_container(&id, Duration::ZERO, None)
            .unwrap();
        let ctx = CallContext::new("/runtime.v1.RuntimeService/ExecSync", None);
        let err = setup
            .service
            .exec_sync(&ctx, &id, &["true".to_owned()], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::FailedPrecondition);
    }

    fn exec_ctx(deadline: Option<std::time::Instant>) -> CallContext {
        CallContext::new("/runtime.v1.RuntimeService/ExecSync", deadline)
    }

    /// A non-TTY exec frame of `stream` (1 stdout, 2 stderr).
    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn exec_sync_in_an_unknown_container_is_not_found_without_a_docker_call() {
        let setup = setup();
        let err = setup
            .service
            .exec_sync(&exec_ctx(None), "f00d", &["true".to_owned()], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::NotFound);
        assert_eq!(setup.docker.calls_of("create_exec"), Vec::<String>::new());
    }

    #[test]
    fn an_empty_exec_sync_command_is_an_invalid_argument_without_a_docker_call() {
        let setup = setup();
        let id = setup.running_container();
        let err = setup
            .service
            .exec_sync(&exec_ctx(None), &id, &[], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::InvalidArgument);
        assert_eq!(setup.docker.calls_of("create_exec"), Vec::<String>::new());
    }

    #[test]
    fn exec_sync_answers_both_streams_and_a_failing_exit_code() {
        let setup = setup();
        let id = setup.running_container();
        let mut output = frame(1, b"out\n");
        output.extend(frame(2, b"err\n"));
        setup.docker.set_exec_output(output, 3);
        let output = setup
            .service
            .exec_sync(&exec_ctx(None), &id, &["false".to_owned()], 0)
            .unwrap();
        assert_eq!(
            (output.stdout.as_slice(), output.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(output.exit_code, 3);
    }

    #[test]
    fn exec_sync_while_dockerd_is_down_is_unavailable() {
        let setup = setup();
        let id = setup.running_container();
        setup.docker.fail("create_exec", refused());
        let err = setup
            .service
            .exec_sync(&exec_ctx(None), &id, &["true".to_owned()], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::Unavailable);
    }

    #[test]
    fn exec_sync_in_a_container_dockerd_lost_is_not_found() {
        let setup = setup();
        let id = setup.running_container();
        setup.docker.remove_container(&id).unwrap();
        let err = setup
            .service
            .exec_sync(&exec_ctx(None), &id, &["true".to_owned()], 0)
            .unwrap_err();
        assert_eq!(code(err), Code::NotFound);
    }

    #[test]
    fn exec_sync_past_the_call_deadline_is_deadline_exceeded_and_its_process_is_killed() {
        let setup = setup();
        let id = setup.running_container();
        setup.docker.hang_execs(4242);
        let deadline = std::time::Instant::now() + Duration::from_millis(50);
        let err = setup
            .service
            .exec_sync(
                &exec_ctx(Some(deadline)),
                &id,
                &["sleep".to_owned(), "30".to_owned()],
                0,
            )
            .unwrap_err();
        let status = Status::from(err);
        assert_eq!(status.code, Code::DeadlineExceeded, "{status:?}");
        assert!(status.message.ends_with("and was killed"), "{status:?}");
        // The kill asked dockerd for the process and its container.
        let exec_id = format!("exec-{id}");
        assert_eq!(
            setup.docker.calls_of("inspect_exec"),
            [format!("inspect_exec {exec_id}")]
        );
        assert_eq!(
            setup.docker.calls_of("inspect_container").last(),
            Some(&format!("inspect_container {id}"))
        );
    }

    #[test]
    fn exec_sync_in_a_container_that_stops_while_it_runs_fails_the_precondition() {
        let setup = setup();
        let id = setup.running_container();
        setup.docker.hang_execs(4242);
        let stopper = {
            let (docker, index, id) = (
                std::sync::Arc::clone(&setup.docker),
                std::sync::Arc::clone(&setup.index),
                id.clone(),
            );
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                docker.stop_container(&id, Duration::ZERO, None).unwrap();
                index.refresh(&id).unwrap();
            })
        };
        let err = setup
            .service
            .exec_sync(
                &exec_ctx(None),
                &id,
                &["sleep".to_owned(), "30".to_owned()],
                0,
            )
            .unwrap_err();
        stopper.join().unwrap();
        let status = Status::from(err);
        assert_eq!(status.code, Code::FailedPrecondition, "{status:?}");
        assert!(status.message.contains("stopped while"), "{status:?}");
    }

    #[test]
    fn reopening_the_log_of_an_unknown_container_is_not_found() {
        let setup = setup();
        let err = setup.service.reopen_container_log("f00d").unwrap_err();
        assert_eq!(code(err), Code::NotFound);
    }

    #[test]
    fn reopening_the_log_of_a_container_that_is_not_running_fails_the_precondition() {
        let setup = setup();
        let id = setup.container();
        let err = setup.service.reopen_container_log(&id).unwrap_err();
        assert!(matches!(err, ContainerError::NotRunning { .. }), "{err:?}");
        assert_eq!(code(err), Code::FailedPrecondition);
    }

    #[test]
    fn reopening_a_log_whose_output_is_not_followed_fails_the_precondition() {
        let setup = setup();
        let id = setup.running_container();
        let err = setup.service.reopen_container_log(&id).unwrap_err();
        assert!(
            matches!(err, ContainerError::Logs(LogError::NotFollowed(_))),
            "{err:?}"
        );
        assert_eq!(code(err), Code::FailedPrecondition);
    }

    /// Gives container `id` the CRI log file `path`.
    fn with_log_path(setup: &ContainerSetup, id: &str, path: &Path) {
        setup.docker.edit_container(id, |container| {
            container.config.labels.insert(
                crate::cri::labels::LOG_PATH_LABEL.to_owned(),
                path.display().to_string(),
            );
        });
        setup.index.refresh(id).unwrap();
    }

    #[test]
    fn a_start_whose_log_directory_is_missing_starts_nothing() {
        let setup = setup();
        let id = setup.container();
        let dir = tempfile::tempdir().unwrap();
        with_log_path(&setup, &id, &dir.path().join("gone/0.log"));
        let err = setup.service.start_container(&id).unwrap_err();
        assert_eq!(code(err), Code::FailedPrecondition);
        assert_eq!(
            setup.docker.calls_of("start_container"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_start_whose_output_cannot_be_followed_is_rolled_back_with_a_stop() {
        let setup = setup();
        let id = setup.container();
        let dir = tempfile::tempdir().unwrap();
        with_log_path(&setup, &id, &dir.path().join("0.log"));
        // The log manager reads the output from a dockerd that is not there.
        let err = setup.service.start_container(&id).unwrap_err();
        assert!(
            matches!(err, ContainerError::StartRolledBack { cleanup: None, .. }),
            "{err:?}"
        );
        assert_eq!(code(err), Code::Unavailable);
        assert!(!setup.docker.container(&id).unwrap().state.running);
        assert!(!setup.index.container(&id).unwrap().unwrap().is_running());
    }

    #[test]
    fn removing_a_container_deletes_its_log_file() {
        let setup = setup();
        let id = setup.container();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, "").unwrap();
        with_log_path(&setup, &id, &log);
        setup.service.remove_container(&id).unwrap();
        assert!(!log.exists());
    }

    #[test]
    fn a_log_file_that_cannot_be_deleted_fails_the_removal_until_a_retry_can() {
        let setup = setup();
        let id = setup.container();
        let dir = tempfile::tempdir().unwrap();
        // A directory where the log file should be: unlinking it fails.
        let log = dir.path().join("0.log");
        std::fs::create_dir_all(log.join("kept")).unwrap();
        with_log_path(&setup, &id, &log);
        let err = setup.service.remove_container(&id).unwrap_err();
        assert_eq!(code(err), Code::Internal);
        assert!(setup.docker.container(&id).is_none());
        assert!(
            setup.index.container(&id).unwrap().is_some(),
            "kept for the retry"
        );
        std::fs::remove_dir_all(&log).unwrap();
        setup.service.remove_container(&id).unwrap();
        assert!(setup.index.container(&id).unwrap().is_none());
    }
}
