//! The attach endpoints: `POST /containers/{id}/attach` (hijacked) and
//! `POST /containers/{id}/resize` (API 1.41).
//!
//! This module only builds those calls. Copying the streams, and what a
//! client's TTY size means, belong to the streaming sessions. IDs are
//! checked before they are put into a path, as in `exec`.

use super::hijack::Hijacked;
use super::request::{check_path_id, path_with_query};
use super::{DockerClient, DockerError};

impl DockerClient {
    /// `POST /containers/{container}/attach?stream=1&stdin=..&stdout=..&stderr=..`:
    /// the returned connection carries the container's stdio from now on
    /// (no logs from before), multiplexed unless the container has a TTY.
    /// A stopped container is status 409, with dockerd's message.
    pub fn attach_container(
        &self,
        container: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<Hijacked, DockerError> {
        check_path_id(container, "container ID or name")?;
        let flag = |on: bool| if on { "1" } else { "0" };
        let path = path_with_query(
            &format!("/containers/{container}/attach"),
            &[
                ("stream", "1"),
                ("stdin", flag(stdin)),
                ("stdout", flag(stdout)),
                ("stderr", flag(stderr)),
            ],
        );
        self.hijack("POST", &path, None)
    }

    /// `POST /containers/{container}/resize?h=..&w=..`: the size of the
    /// container's TTY, in characters.
    pub fn resize_container(
        &self,
        container: &str,
        height: u16,
        width: u16,
    ) -> Result<(), DockerError> {
        check_path_id(container, "container ID or name")?;
        let (height, width) = (height.to_string(), width.to_string());
        let path = path_with_query(
            &format!("/containers/{container}/resize"),
            &[("h", &height), ("w", &width)],
        );
        self.post(&path, None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::Code;
    use std::time::Duration;

    #[test]
    fn ids_that_could_change_the_path_are_refused_before_any_call() -> Result<(), DockerError> {
        // No socket exists there: a refused ID never gets as far as dialling.
        let client = DockerClient::new("unix:///nonexistent/docker.sock", Duration::from_secs(1))?;
        for bad in ["", "../x", "a/b", "a?b"] {
            let attach = client.attach_container(bad, true, true, false);
            assert!(
                matches!(&attach, Err(e) if e.code() == Code::InvalidArgument),
                "{bad}"
            );
            let resize = client.resize_container(bad, 24, 80);
            assert!(
                matches!(&resize, Err(e) if e.code() == Code::InvalidArgument),
                "{bad}"
            );
        }
        Ok(())
    }
}
