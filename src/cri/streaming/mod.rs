//! Exec, Attach and PortForward before their URL is issued: the checks the
//! kubelet and cri-dockerd make on the request, and on the container or
//! sandbox as the state index sees it. Why a request is refused, why a
//! session fails and why a forwarded port cannot be dialled is `error`'s.
//!
//! A request that passes becomes the [`StreamRequest`] its one-time URL
//! stands for, with the container or sandbox ID written out in full: the
//! session later acts on exactly what was checked, even if the caller gave
//! a prefix. A refused request gets no URL.
//!
//! This module makes no Docker call of its own (the index answers) and
//! issues no token: the streaming server does. What a redeemed URL runs on
//! dockerd is `docker_sessions`'s, and port-forward connections are made
//! by `sandbox_dialer`: the protocol library `crate::streaming` calls them
//! through its `Sessions` and `PortDialer` traits.

pub mod docker_sessions;
mod error;
pub mod sandbox_dialer;

pub use error::{DockerSessionError, SandboxDialError, StreamRequestError};

use crate::api::v1;
use crate::index::Index;
use crate::streaming::session::{Attach, Exec, PortForward, StreamRequest};

/// Exec: a command, at least one stream, no stderr with a tty, and a
/// running container.
pub fn validate_exec(
    index: &Index,
    request: v1::ExecRequest,
) -> Result<StreamRequest, StreamRequestError> {
    if request.cmd.is_empty() {
        return Err(StreamRequestError::NoCommand);
    }
    check_streams(request.stdin, request.stdout, request.stderr, request.tty)?;
    let container_id = running_container(index, &request.container_id)?;
    Ok(StreamRequest::Exec(Exec {
        container_id,
        cmd: request.cmd,
        tty: request.tty,
        stdin: request.stdin,
        stdout: request.stdout,
        stderr: request.stderr,
    }))
}

/// Attach: at least one stream, no stderr with a tty, and a running
/// container.
pub fn validate_attach(
    index: &Index,
    request: v1::AttachRequest,
) -> Result<StreamRequest, StreamRequestError> {
    check_streams(request.stdin, request.stdout, request.stderr, request.tty)?;
    let container_id = running_container(index, &request.container_id)?;
    Ok(StreamRequest::Attach(Attach {
        container_id,
        tty: request.tty,
        stdin: request.stdin,
        stdout: request.stdout,
        stderr: request.stderr,
    }))
}

/// PortForward: valid ports and a ready sandbox. No ports is valid: the
/// client then names a port in each stream it opens.
pub fn validate_port_forward(
    index: &Index,
    request: v1::PortForwardRequest,
) -> Result<StreamRequest, StreamRequestError> {
    let ports = request
        .port
        .iter()
        .map(|&port| {
            u16::try_from(port)
                .ok()
                .filter(|port| *port != 0)
                .ok_or(StreamRequestError::BadPort { port })
        })
        .collect::<Result<Vec<u16>, _>>()?;
    let sandbox = index.sandbox(&request.pod_sandbox_id)?.ok_or_else(|| {
        StreamRequestError::SandboxNotFound {
            id: request.pod_sandbox_id.clone(),
        }
    })?;
    if !sandbox.is_ready() {
        return Err(StreamRequestError::SandboxNotReady {
            id: sandbox.id.clone(),
        });
    }
    Ok(StreamRequest::PortForward(PortForward {
        pod_sandbox_id: sandbox.id.clone(),
        ports,
    }))
}

fn check_streams(
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), StreamRequestError> {
    if !(stdin || stdout || stderr) {
        return Err(StreamRequestError::NoStreams);
    }
    if tty && stderr {
        return Err(StreamRequestError::TtyWithStderr);
    }
    Ok(())
}

/// The full ID of the running container `id` names.
fn running_container(index: &Index, id: &str) -> Result<String, StreamRequestError> {
    let entry = index
        .container(id)?
        .ok_or_else(|| StreamRequestError::ContainerNotFound { id: id.to_owned() })?;
    if !entry.is_running() {
        return Err(StreamRequestError::ContainerNotRunning {
            id: entry.id.clone(),
        });
    }
    Ok(entry.id.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::fmt;
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::docker::{ContainerInspect, DockerError};
    use crate::grpc::{Code, Status};
    use crate::index::{EventFeed, IndexConfig, IndexSource, Polled};

    const RUNNING: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const EXITED: &str = "2222222222222222222222222222222222222222222222222222222222222222";
    const READY_POD: &str = "3333333333333333333333333333333333333333333333333333333333333333";
    const GONE_POD: &str = "4444444444444444444444444444444444444444444444444444444444444444";

    /// A dockerd holding a fixed set of containers, whose event stream
    /// stays silent.
    struct Fixed(Vec<ContainerInspect>);

    struct Silent(Duration);

    impl EventFeed for Silent {
        fn next_event(&mut self) -> Result<Polled, DockerError> {
            thread::sleep(self.0);
            Ok(Polled::Idle)
        }
    }

    impl IndexSource for Fixed {
        fn list(&self) -> Result<Vec<String>, DockerError> {
            Ok(self.0.iter().map(|c| c.id.clone()).collect())
        }

        fn inspect(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
            Ok(self.0.iter().find(|c| c.id == id).cloned())
        }

        fn follow_events(
            &self,
            _since: SystemTime,
            idle: Duration,
        ) -> Result<Box<dyn EventFeed>, DockerError> {
            Ok(Box::new(Silent(idle)))
        }
    }

    fn inspect(id: &str, kind: &str, status: &str) -> ContainerInspect {
        crate::codec::json::FromJson::from_json(&serde_json::json!({
            "Id": id,
            "Name": format!("/k8s_{id}"),
            "State": {"Status": status, "Running": status == "running"},
            "Config": {"Labels": {
                "io.kubernetes.docker.type": kind,
                "io.kubernetes.sandbox.id": READY_POD,
            }},
        }))
        .unwrap()
    }

    fn index() -> Arc<Index> {
        let source = Fixed(vec![
            inspect(RUNNING, "container", "running"),
            inspect(EXITED, "container", "exited"),
            inspect(READY_POD, "podsandbox", "running"),
            inspect(GONE_POD, "podsandbox", "exited"),
        ]);
        let config = IndexConfig {
            idle_tick: Duration::from_millis(20),
            ..IndexConfig::default()
        };
        Index::start_with(Box::new(source), config).unwrap()
    }

    fn exec(id: &str, cmd: &[&str], streams: (bool, bool, bool), tty: bool) -> v1::ExecRequest {
        v1::ExecRequest {
            container_id: id.to_owned(),
            cmd: cmd.iter().map(|arg| (*arg).to_owned()).collect(),
            tty,
            stdin: streams.0,
            stdout: streams.1,
            stderr: streams.2,
            ..v1::ExecRequest::default()
        }
    }

    fn attach(id: &str, streams: (bool, bool, bool), tty: bool) -> v1::AttachRequest {
        v1::AttachRequest {
            container_id: id.to_owned(),
            tty,
            stdin: streams.0,
            stdout: streams.1,
            stderr: streams.2,
            ..v1::AttachRequest::default()
        }
    }

    fn forward(id: &str, ports: &[i32]) -> v1::PortForwardRequest {
        v1::PortForwardRequest {
            pod_sandbox_id: id.to_owned(),
            port: ports.to_vec(),
        }
    }

    fn code<T: fmt::Debug>(result: Result<T, StreamRequestError>) -> Code {
        Status::from(result.unwrap_err()).code
    }

    #[test]
    fn an_exec_on_a_running_container_is_kept_with_the_full_id() {
        let index = index();
        let request = exec(
            &RUNNING[..12],
            &["sh", "-c", "true"],
            (true, true, false),
            true,
        );
        let validated = validate_exec(&index, request.clone()).unwrap();
        assert_eq!(
            validated,
            StreamRequest::Exec(Exec {
                container_id: RUNNING.to_owned(),
                cmd: request.cmd,
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
            })
        );
    }

    #[test]
    fn exec_refusals_have_their_codes() {
        let index = index();
        let cases = [
            (
                exec(RUNNING, &[], (false, true, false), false),
                Code::InvalidArgument,
            ),
            (
                exec(RUNNING, &["ls"], (false, false, false), false),
                Code::InvalidArgument,
            ),
            (
                exec(RUNNING, &["ls"], (false, true, true), true),
                Code::InvalidArgument,
            ),
            (
                exec("nosuch", &["ls"], (false, true, false), false),
                Code::NotFound,
            ),
            (
                exec(EXITED, &["ls"], (false, true, false), false),
                Code::FailedPrecondition,
            ),
            (
                exec("", &["ls"], (false, true, false), false),
                Code::InvalidArgument,
            ),
            (
                exec(READY_POD, &["ls"], (false, true, false), false),
                Code::NotFound,
            ),
        ];
        for (request, expected) in cases {
            let shown = format!("{request:?}");
            assert_eq!(code(validate_exec(&index, request)), expected, "{shown}");
        }
    }

    #[test]
    fn field_checks_come_before_the_container_is_looked_up() {
        let index = index();
        let err = validate_exec(&index, exec("nosuch", &[], (true, false, false), false));
        assert!(matches!(err, Err(StreamRequestError::NoCommand)));
    }

    #[test]
    fn attach_is_checked_like_exec_without_a_command() {
        let index = index();
        let request = attach(RUNNING, (true, true, true), false);
        assert_eq!(
            validate_attach(&index, request.clone()).unwrap(),
            StreamRequest::Attach(Attach {
                container_id: RUNNING.to_owned(),
                tty: false,
                stdin: true,
                stdout: true,
                stderr: true,
            })
        );
        let cases = [
            (
                attach(RUNNING, (false, false, false), false),
                Code::InvalidArgument,
            ),
            (
                attach(RUNNING, (true, true, true), true),
                Code::InvalidArgument,
            ),
            (
                attach("nosuch", (false, true, false), false),
                Code::NotFound,
            ),
            (
                attach(EXITED, (false, true, false), false),
                Code::FailedPrecondition,
            ),
        ];
        for (request, expected) in cases {
            let shown = format!("{request:?}");
            assert_eq!(code(validate_attach(&index, request)), expected, "{shown}");
        }
    }

    #[test]
    fn port_forward_needs_a_ready_sandbox_and_real_ports() {
        let index = index();
        for ports in [&[][..], &[1, 80, 65535][..]] {
            let validated = validate_port_forward(&index, forward(&READY_POD[..8], ports)).unwrap();
            assert_eq!(
                validated,
                StreamRequest::PortForward(PortForward {
                    pod_sandbox_id: READY_POD.to_owned(),
                    ports: ports.iter().map(|&p| u16::try_from(p).unwrap()).collect(),
                })
            );
        }
        let cases = [
            (forward(READY_POD, &[80, 0]), Code::InvalidArgument),
            (forward(READY_POD, &[65536]), Code::InvalidArgument),
            (forward(READY_POD, &[-1]), Code::InvalidArgument),
            (forward("nosuch", &[80]), Code::NotFound),
            (forward(RUNNING, &[80]), Code::NotFound),
            (forward(GONE_POD, &[80]), Code::FailedPrecondition),
        ];
        for (request, expected) in cases {
            let shown = format!("{request:?}");
            assert_eq!(
                code(validate_port_forward(&index, request)),
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn messages_name_what_is_wrong() {
        let message = |err: StreamRequestError| err.to_string();
        assert_eq!(
            message(StreamRequestError::BadPort { port: 70000 }),
            "port 70000 is not in the range 1-65535"
        );
        assert_eq!(
            message(StreamRequestError::ContainerNotRunning { id: "c".to_owned() }),
            "container c is not running"
        );
    }
}
