//! The exec endpoints: `POST /containers/{id}/exec` (create),
//! `POST /exec/{id}/start` (hijacked), `GET /exec/{id}/json` (inspect) and
//! `POST /exec/{id}/resize`, with their typed bodies (API 1.41).
//!
//! This module only builds and decodes those calls. Reading the session's
//! output, deadlines, and killing a process that outlives its caller belong
//! to `cri::exec`. Every ID is checked before it is put into a path, so a
//! value taken from a CRI request can never change the endpoint called.
//! `vendor-docs/docker-engine-api.md` ("Exec") describes each field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::hijack::Hijacked;
use super::request::{check_path_id, path_with_query};
use super::{DockerClient, DockerError};

/// The JSON body of `POST /containers/{id}/exec`.
///
/// Empty `env`, `user` and `working_dir` are left out of the JSON, so the
/// container's own settings apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecCreate {
    #[serde(rename = "AttachStdin")]
    pub attach_stdin: bool,
    #[serde(rename = "AttachStdout")]
    pub attach_stdout: bool,
    #[serde(rename = "AttachStderr")]
    pub attach_stderr: bool,
    /// Must be repeated in [`ExecStart::tty`]: the engine multiplexes the
    /// output according to the start body, not this one.
    #[serde(rename = "Tty")]
    pub tty: bool,
    /// The program and its arguments; not run through a shell.
    #[serde(rename = "Cmd")]
    pub cmd: Vec<String>,
    /// `KEY=value` strings added to the container's environment.
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `uid`, `uid:gid`, `name` or `name:gid`.
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(rename = "WorkingDir", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
}

/// The JSON body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExecStart {
    /// Always false here: a detached start answers at once and hijacks
    /// nothing.
    #[serde(rename = "Detach")]
    pub detach: bool,
    #[serde(rename = "Tty")]
    pub tty: bool,
}

/// `GET /exec/{id}/json`, the fields dockshim reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Running")]
    pub running: bool,
    /// `None` (JSON `null`) until the process has ended.
    #[serde(rename = "ExitCode")]
    pub exit_code: Option<i32>,
    /// The process's PID in the host's PID namespace (dockerd's own); 0
    /// before the process started and when it could not start.
    #[serde(rename = "Pid")]
    pub pid: i32,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
}

#[derive(Deserialize)]
struct ExecCreated {
    #[serde(rename = "Id")]
    id: String,
}

impl DockerClient {
    /// `POST /containers/{container}/exec`: registers a command to run in a
    /// running container and returns the exec ID. A missing container is
    /// status 404; a stopped or paused one 409, with dockerd's message.
    /// `timeout` bounds the call (`None`: the client's own).
    pub fn create_exec(
        &self,
        container: &str,
        config: &ExecCreate,
        timeout: Option<Duration>,
    ) -> Result<String, DockerError> {
        check_path_id(container, "container ID or name")?;
        let path = format!("/containers/{container}/exec");
        let body = serde_json::to_vec(config)
            .map_err(|err| DockerError::Json(err).in_call("POST", &path))?;
        let response = self.request("POST", &path, &[], Some(&body), timeout)?;
        let created: ExecCreated = serde_json::from_slice(&response.body)
            .map_err(|err| DockerError::Json(err).in_call("POST", &path))?;
        check_path_id(&created.id, "exec ID from dockerd")
            .map_err(|err| err.in_call("POST", &path))?;
        Ok(created.id)
    }

    /// `POST /exec/{exec_id}/start`, not detached: the returned connection
    /// carries the process's stdio (multiplexed unless `tty`). `tty` must be
    /// the value the exec was created with.
    pub fn start_exec(&self, exec_id: &str, tty: bool) -> Result<Hijacked, DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let path = format!("/exec/{exec_id}/start");
        let body = ExecStart { detach: false, tty };
        let body = serde_json::to_vec(&body)
            .map_err(|err| DockerError::Json(err).in_call("POST", &path))?;
        self.hijack("POST", &path, Some(&body))
    }

    /// `GET /exec/{exec_id}/json`. `timeout` bounds the call (`None`: the
    /// client's own).
    pub fn inspect_exec(
        &self,
        exec_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecInspect, DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let path = format!("/exec/{exec_id}/json");
        let response = self.request("GET", &path, &[], None, timeout)?;
        serde_json::from_slice(&response.body)
            .map_err(|err| DockerError::Json(err).in_call("GET", &path))
    }

    /// `POST /exec/{exec_id}/resize?h=..&w=..`: the terminal size of a TTY
    /// session, in characters.
    pub fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let (height, width) = (height.to_string(), width.to_string());
        let path = path_with_query(
            &format!("/exec/{exec_id}/resize"),
            &[("h", &height), ("w", &width)],
        );
        self.post(&path, None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::Code;

    #[test]
    fn create_body_uses_engine_names_and_leaves_out_empty_settings() -> Result<(), serde_json::Error>
    {
        let body = ExecCreate {
            attach_stdout: true,
            attach_stderr: true,
            cmd: vec!["echo".to_owned(), "hi".to_owned()],
            ..ExecCreate::default()
        };
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["echo","hi"]}"#
        );
        let body = ExecCreate {
            env: vec!["A=b".to_owned()],
            user: "1000:1000".to_owned(),
            working_dir: "/tmp".to_owned(),
            ..body
        };
        let text = serde_json::to_string(&body)?;
        assert!(
            text.ends_with(r#""Env":["A=b"],"User":"1000:1000","WorkingDir":"/tmp"}"#),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn start_body_repeats_tty() -> Result<(), serde_json::Error> {
        let body = ExecStart {
            detach: false,
            tty: true,
        };
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"Detach":false,"Tty":true}"#
        );
        Ok(())
    }

    #[test]
    fn inspect_reads_a_null_exit_code_as_still_unknown() -> Result<(), serde_json::Error> {
        let running: ExecInspect = serde_json::from_str(
            r#"{"ID":"abc","Running":true,"ExitCode":null,"Pid":4242,"ContainerID":"c1",
                "ProcessConfig":{"tty":false,"entrypoint":"sleep","arguments":["30"]}}"#,
        )?;
        assert!(running.running);
        assert_eq!(running.exit_code, None);
        assert_eq!(running.pid, 4242);
        // As dockerd 20.10 answers for a command that is not in the image.
        let failed: ExecInspect = serde_json::from_str(
            r#"{"ID":"abc","Running":false,"ExitCode":126,"Pid":0,"ContainerID":"c1"}"#,
        )?;
        assert_eq!((failed.running, failed.exit_code), (false, Some(126)));
        Ok(())
    }

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        for bad in ["", "../x", "a/b", "a?b", "-a", "a b", "a%2F"] {
            let err = check_path_id(bad, "exec ID");
            assert!(
                matches!(&err, Err(e) if e.code() == Code::InvalidArgument),
                "{bad}"
            );
        }
        for good in ["0123abcdef", "k8s_web_pod_ns_uid_0", "a.b-c"] {
            assert!(check_path_id(good, "exec ID").is_ok(), "{good}");
        }
    }
}
