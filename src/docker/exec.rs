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

use serde_json::Value;

use crate::codec::json::{object_of, unless_empty, Fields, FromJson};

/// The JSON body of `POST /containers/{id}/exec`.
///
/// Empty `env`, `user` and `working_dir` are left out of the JSON, so the
/// container's own settings apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecCreate {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Must be repeated in [`ExecStart::tty`]: the engine multiplexes the
    /// output according to the start body, not this one.
    pub tty: bool,
    /// The program and its arguments; not run through a shell.
    pub cmd: Vec<String>,
    /// `KEY=value` strings added to the container's environment.
    pub env: Vec<String>,
    /// `uid`, `uid:gid`, `name` or `name:gid`.
    pub user: String,
    pub working_dir: String,
}

impl ExecCreate {
    /// The request body, empty settings left out.
    pub fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("AttachStdin", Some(self.attach_stdin.into())),
            ("AttachStdout", Some(self.attach_stdout.into())),
            ("AttachStderr", Some(self.attach_stderr.into())),
            ("Tty", Some(self.tty.into())),
            ("Cmd", Some(self.cmd.as_slice().into())),
            ("Env", unless_empty(self.env.as_slice())),
            ("User", unless_empty(self.user.as_str())),
            ("WorkingDir", unless_empty(self.working_dir.as_str())),
        ]))
    }
}

/// The JSON body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStart {
    /// Always false here: a detached start answers at once and hijacks
    /// nothing.
    pub detach: bool,
    pub tty: bool,
}

impl ExecStart {
    /// The request body.
    pub fn to_json(&self) -> Value {
        Value::Object(object_of([
            ("Detach", Some(self.detach.into())),
            ("Tty", Some(self.tty.into())),
        ]))
    }
}

/// `GET /exec/{id}/json`, the fields dockshim reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecInspect {
    pub id: String,
    pub running: bool,
    /// `None` (JSON `null`) until the process has ended.
    pub exit_code: Option<i32>,
    /// The process's PID in the host's PID namespace (dockerd's own); 0
    /// before the process started and when it could not start.
    pub pid: i32,
    pub container_id: String,
}

impl FromJson for ExecInspect {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ExecInspect {
            id: fields.field("ID"),
            running: fields.field("Running"),
            exit_code: fields.opt("ExitCode"),
            pid: fields.field("Pid"),
            container_id: fields.field("ContainerID"),
        })
    }
}

/// The answer to `POST /containers/{id}/exec`.
pub(super) struct ExecCreated {
    pub(super) id: String,
}

impl FromJson for ExecCreated {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ExecCreated {
            id: fields.required("Id"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codec::json;
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
            body.to_json(),
            serde_json::from_str::<Value>(
                r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["echo","hi"]}"#
            )?
        );
        let body = ExecCreate {
            env: vec!["A=b".to_owned()],
            user: "1000:1000".to_owned(),
            working_dir: "/tmp".to_owned(),
            ..body
        };
        let json = body.to_json();
        assert_eq!(
            (&json["Env"], &json["User"], &json["WorkingDir"]),
            (&json!(["A=b"]), &json!("1000:1000"), &json!("/tmp"))
        );
        Ok(())
    }

    #[test]
    fn start_body_repeats_tty() -> Result<(), serde_json::Error> {
        let body = ExecStart {
            detach: false,
            tty: true,
        };
        assert_eq!(body.to_json().to_string(), r#"{"Detach":false,"Tty":true}"#);
        Ok(())
    }

    #[test]
    fn inspect_reads_a_null_exit_code_as_still_unknown() -> Result<(), serde_json::Error> {
        let running: ExecInspect = json::decode(
            r#"{"ID":"abc","Running":true,"ExitCode":null,"Pid":4242,"ContainerID":"c1",
                "ProcessConfig":{"tty":false,"entrypoint":"sleep","arguments":["30"]}}"#,
        )?;
        assert!(running.running);
        assert_eq!(running.exit_code, None);
        assert_eq!(running.pid, 4242);
        // As dockerd 20.10 answers for a command that is not in the image.
        let failed: ExecInspect = json::decode(
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
