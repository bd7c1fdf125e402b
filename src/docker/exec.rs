//! The typed bodies of the exec endpoints: `POST /containers/{id}/exec`
//! (create), `POST /exec/{id}/start` (hijacked), `GET /exec/{id}/json`
//! (inspect) and `POST /exec/{id}/resize` (API 1.41).
//!
//! The calls themselves are [`super::DockerApi`]'s, which checks every ID
//! before it is put into a path, so a value taken from a CRI request can
//! never change the endpoint called. Reading the session's output,
//! deadlines, and killing a process that outlives its caller belong to
//! `cri::exec`. `vendor-docs/docker-engine-api.md` ("Exec") describes each
//! field.

use serde::{Deserialize, Serialize};

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

/// The answer to `POST /containers/{id}/exec`.
#[derive(Deserialize)]
pub(super) struct ExecCreated {
    #[serde(rename = "Id")]
    pub(super) id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::request::check_path_id;
    use crate::docker::DockerError;

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
                matches!(&err, Err(e) if matches!(e, DockerError::InvalidRequest(_))),
                "{bad}"
            );
        }
        for good in ["0123abcdef", "k8s_web_pod_ns_uid_0", "a.b-c"] {
            assert!(check_path_id(good, "exec ID").is_ok(), "{good}");
        }
    }
}
