//! StartContainer, StopContainer, RemoveContainer, ExecSync and
//! ReopenContainerLog. Stop and Remove are idempotent: a container that is
//! gone already is success. Every change is told to the index at once,
//! also after a failed start, for which dockerd sends no event.

use std::path::Path;
use std::sync::PoisonError;
use std::time::Duration;

use super::service::{ContainerError, ContainerService};
use crate::cri::exec::{exec_sync, ExecOutput};
use crate::docker::path_with_query;
use crate::grpc::CallContext;
use crate::logs::LogError;

impl ContainerService {
    /// StartContainer; starts following the output into the CRI log file
    /// when the container has one.
    pub fn start_container(&self, id: &str) -> Result<(), ContainerError> {
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.to_owned() })?;
        let started = self
            .docker
            .post(&format!("/containers/{}/start", entry.id), None);
        let refreshed = self.index.refresh(&entry.id)?;
        started.map_err(|err| ContainerError::docker("start the container", err))?;
        if !entry.log_path.is_empty() {
            let tty = refreshed.as_ref().map_or(entry.tty, |entry| entry.tty);
            // The log keeper may have seen the container run first.
            match self.logs.follow(&entry.id, Path::new(&entry.log_path), tty) {
                Ok(()) | Err(LogError::AlreadyFollowed(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        log::info!("started container {}", entry.id);
        Ok(())
    }

    /// StopContainer with `timeout_secs` between the stop signal and
    /// SIGKILL.
    pub fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), ContainerError> {
        let Some(entry) = self.index.container(id)? else {
            return Ok(());
        };
        let grace = u64::try_from(timeout_secs).unwrap_or(0);
        let path = path_with_query(
            &format!("/containers/{}/stop", entry.id),
            &[("t", &grace.to_string())],
        );
        // dockerd answers only after the grace period and the kill.
        let budget = self.request_timeout + Duration::from_secs(grace);
        match self.docker.request("POST", &path, &[], None, Some(budget)) {
            Ok(_) => {}
            Err(err) if err.api_status() == Some(404) => {}
            Err(err) => return Err(ContainerError::docker("stop the container", err)),
        }
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
        let path = path_with_query(
            &format!("/containers/{}", entry.id),
            &[("force", "1"), ("v", "1")],
        );
        match self.docker.delete(&path) {
            Ok(_) => {}
            Err(err) if err.api_status() == Some(404) => {}
            Err(err) => return Err(ContainerError::docker("remove the container", err)),
        }
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
        Ok(exec_sync(&self.docker, &entry.id, cmd, timeout, ctx)?)
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
