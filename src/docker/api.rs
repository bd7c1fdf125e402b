//! `DockerApi`: the Docker calls the CRI handlers make, each typed, and the
//! answers that are not failures folded into its result — a missing
//! container or image is `None` or [`Removed::AlreadyGone`], a container
//! that is stopped already is [`Stopped::NotRunning`], a name in use is
//! [`CreateOutcome::NameInUse`] — so that no caller reads an HTTP status.
//!
//! [`DockerClient`] implements it over dockerd; tests give the handlers a
//! recording fake (`docker::fake`) instead. Endpoint paths and versions
//! are decided here and in the client, never by the callers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::exec::ExecCreated;
use super::request::check_path_id;
use super::{
    path_with_query, ApiVersion, ContainerCreate, ContainerInspect, ContainerSummary, Created,
    DockerClient, DockerError, Engine, Event, ExecCreate, ExecInspect, ExecStart, Hijacked,
    HistoryItem, ImageInspect, ImageSummary, Info, PullProgress, Resources, Updated, Version,
};
use crate::codec::json;

/// A pull's progress messages; see [`DockerClient::pull`].
pub type PullStream = Box<dyn Iterator<Item = Result<PullProgress, DockerError>> + Send>;

/// An event stream; see [`DockerApi::image_events`].
pub type EventStream = Box<dyn Iterator<Item = Result<Event, DockerError>> + Send>;

/// The events filter of [`DockerApi::image_events`]: image events carry no
/// container label, so they need a stream of their own.
const IMAGE_EVENTS_FILTER: &str = r#"{"type":["image"]}"#;

/// How a create by name ended when dockerd did not fail.
#[derive(Debug)]
pub enum CreateOutcome {
    Created(Created),
    /// Another container holds the name (409); dockerd's answer.
    NameInUse(DockerError),
}

/// How a stop ended when dockerd did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// dockerd answered 304: the container was not running.
    NotRunning,
    /// No such container.
    NotFound,
}

/// How a remove ended when dockerd did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Removed,
    AlreadyGone,
}

/// The Docker calls of the CRI handlers. Those without an endpoint named
/// here are [`DockerClient`]'s own; `timeout`s of `None` mean the client's.
pub trait DockerApi: Send + Sync + fmt::Debug {
    fn api_version(&self) -> Option<ApiVersion>;
    /// Negotiates the API version unless that happened already: dockerd
    /// may have been down when dockshim started.
    fn ensure_negotiated(&self) -> Result<(), DockerError>;
    fn ping(&self, timeout: Duration) -> Result<(), DockerError>;
    fn version(&self) -> Result<Version, DockerError>;
    fn info(&self) -> Result<Info, DockerError>;
    fn engine(&self) -> Result<Arc<Engine>, DockerError>;

    /// `POST /containers/create?name=..`.
    fn create_container(
        &self,
        name: &str,
        body: &ContainerCreate,
    ) -> Result<CreateOutcome, DockerError>;
    /// `GET /containers/{id}/json`; `id` may also be a name.
    fn inspect_container(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError>;
    /// The same, as dockerd wrote it.
    fn inspect_container_json(&self, id: &str) -> Result<Option<serde_json::Value>, DockerError>;
    /// `POST /containers/{id}/start`.
    fn start_container(&self, id: &str) -> Result<(), DockerError>;
    /// `POST /containers/{id}/stop?t=..`, answered after the grace period.
    fn stop_container(
        &self,
        id: &str,
        grace: Duration,
        timeout: Option<Duration>,
    ) -> Result<Stopped, DockerError>;
    /// `DELETE /containers/{id}?force=1&v=1`, anonymous volumes included.
    fn remove_container(&self, id: &str) -> Result<Removed, DockerError>;
    /// `POST /containers/{id}/update`; returns dockerd's warnings.
    fn update_container(&self, id: &str, resources: &Resources)
        -> Result<Vec<String>, DockerError>;
    /// `GET /containers/json?all=1&filters={"ancestor":[id]}`.
    fn containers_of_image(&self, id: &str) -> Result<Vec<ContainerSummary>, DockerError>;
    /// `GET /containers/json?all=1&size=1`; `None` when a container vanished
    /// while listed, which fails the listing on the containerd image store.
    fn container_sizes(&self) -> Result<Option<Vec<ContainerSummary>>, DockerError>;

    /// `GET /images/{name}/json`.
    fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>, DockerError>;
    /// `GET /images/json`.
    fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError>;
    /// `GET /images/{id}/history`.
    fn image_history(&self, id: &str) -> Result<Option<Vec<HistoryItem>>, DockerError>;
    /// `DELETE /images/{name}`, without force: one reference, or the image.
    fn remove_image(&self, name: &str) -> Result<Removed, DockerError>;
    /// `GET /events?since=..&filters={"type":["image"]}`: image events from
    /// `since` on, forever. The stream yields a timeout error after `idle`
    /// without an event and stays usable.
    fn image_events(&self, since: SystemTime, idle: Duration) -> Result<EventStream, DockerError>;
    /// [`DockerClient::pull`], whose stream yields a timeout error after
    /// `idle` without a message and stays usable.
    fn pull_image(
        &self,
        from_image: &str,
        tag: &str,
        registry_auth: Option<&str>,
        head_timeout: Option<Duration>,
        idle: Duration,
    ) -> Result<PullStream, DockerError>;

    fn create_exec(
        &self,
        container: &str,
        config: &ExecCreate,
        timeout: Option<Duration>,
    ) -> Result<String, DockerError>;
    fn start_exec(&self, exec_id: &str, tty: bool) -> Result<Hijacked, DockerError>;
    fn inspect_exec(
        &self,
        exec_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecInspect, DockerError>;
    /// `POST /exec/{id}/resize?h=..&w=..`: a TTY session's size, in
    /// characters.
    fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError>;
    /// `POST /containers/{id}/attach?stream=1&stdin=..&stdout=..&stderr=..`:
    /// the returned connection carries the container's stdio from now on
    /// (no logs from before), multiplexed unless the container has a TTY.
    fn attach_container(
        &self,
        container: &str,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<Hijacked, DockerError>;
    /// `POST /containers/{id}/resize?h=..&w=..`: the size of the
    /// container's TTY, in characters.
    fn resize_container(&self, container: &str, height: u16, width: u16)
        -> Result<(), DockerError>;
}

/// `Ok(None)` for a 404 answer.
fn found<T>(result: Result<T, DockerError>) -> Result<Option<T>, DockerError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.api_status() == Some(404) => Ok(None),
        Err(err) => Err(err),
    }
}

/// [`Removed`] for a delete's result.
fn removed(result: Result<u16, DockerError>) -> Result<Removed, DockerError> {
    found(result).map(|done| done.map_or(Removed::AlreadyGone, |_| Removed::Removed))
}

impl DockerApi for DockerClient {
    fn api_version(&self) -> Option<ApiVersion> {
        DockerClient::api_version(self)
    }

    fn ensure_negotiated(&self) -> Result<(), DockerError> {
        if self.api_version().is_none() {
            self.negotiate()?;
        }
        Ok(())
    }

    fn ping(&self, timeout: Duration) -> Result<(), DockerError> {
        DockerClient::ping(self, timeout)
    }

    fn version(&self) -> Result<Version, DockerError> {
        DockerClient::version(self)
    }

    fn info(&self) -> Result<Info, DockerError> {
        DockerClient::info(self)
    }

    fn engine(&self) -> Result<Arc<Engine>, DockerError> {
        DockerClient::engine(self)
    }

    fn create_container(
        &self,
        name: &str,
        body: &ContainerCreate,
    ) -> Result<CreateOutcome, DockerError> {
        let path = path_with_query("/containers/create", &[("name", name)]);
        match self.post_json(&path, &body.to_json()) {
            Ok(created) => Ok(CreateOutcome::Created(created)),
            Err(err) if err.api_status() == Some(409) => Ok(CreateOutcome::NameInUse(err)),
            Err(err) => Err(err),
        }
    }

    fn inspect_container(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
        found(DockerClient::inspect_container(self, id))
    }

    fn inspect_container_json(&self, id: &str) -> Result<Option<serde_json::Value>, DockerError> {
        check_path_id(id, "container ID")?;
        found(self.get_json(&format!("/containers/{id}/json")))
    }

    fn start_container(&self, id: &str) -> Result<(), DockerError> {
        check_path_id(id, "container ID")?;
        self.post(&format!("/containers/{id}/start"), None)
            .map(drop)
    }

    fn stop_container(
        &self,
        id: &str,
        grace: Duration,
        timeout: Option<Duration>,
    ) -> Result<Stopped, DockerError> {
        check_path_id(id, "container ID")?;
        let grace = grace.as_secs().to_string();
        let path = path_with_query(&format!("/containers/{id}/stop"), &[("t", &grace)]);
        Ok(
            match found(self.request("POST", &path, &[], None, timeout))? {
                Some(response) if response.status == 304 => Stopped::NotRunning,
                Some(_) => Stopped::Stopped,
                None => Stopped::NotFound,
            },
        )
    }

    fn remove_container(&self, id: &str) -> Result<Removed, DockerError> {
        check_path_id(id, "container ID")?;
        let path = path_with_query(&format!("/containers/{id}"), &[("force", "1"), ("v", "1")]);
        removed(self.delete(&path))
    }

    fn update_container(
        &self,
        id: &str,
        resources: &Resources,
    ) -> Result<Vec<String>, DockerError> {
        check_path_id(id, "container ID")?;
        self.post_json(&format!("/containers/{id}/update"), &resources.to_json())
            .map(|updated: Updated| updated.warnings)
    }

    fn containers_of_image(&self, id: &str) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = serde_json::json!({ "ancestor": [id] }).to_string();
        self.list_containers(true, Some(&filters))
    }

    fn container_sizes(&self) -> Result<Option<Vec<ContainerSummary>>, DockerError> {
        found(self.get_json(&path_with_query(
            "/containers/json",
            &[("all", "1"), ("size", "1")],
        )))
    }

    fn inspect_image(&self, name: &str) -> Result<Option<ImageInspect>, DockerError> {
        found(self.get_json(&format!("/images/{name}/json")))
    }

    fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        self.get_json("/images/json")
    }

    fn image_history(&self, id: &str) -> Result<Option<Vec<HistoryItem>>, DockerError> {
        found(self.get_json(&format!("/images/{id}/history")))
    }

    fn remove_image(&self, name: &str) -> Result<Removed, DockerError> {
        removed(self.delete(&format!("/images/{name}")))
    }

    fn image_events(&self, since: SystemTime, idle: Duration) -> Result<EventStream, DockerError> {
        let mut stream = self.events(Some(since), Some(IMAGE_EVENTS_FILTER))?;
        stream.set_idle_timeout(Some(idle));
        Ok(Box::new(stream))
    }

    fn pull_image(
        &self,
        from_image: &str,
        tag: &str,
        registry_auth: Option<&str>,
        head_timeout: Option<Duration>,
        idle: Duration,
    ) -> Result<PullStream, DockerError> {
        let mut stream = self.pull(from_image, tag, registry_auth, head_timeout)?;
        stream.set_idle_timeout(Some(idle));
        Ok(Box::new(stream))
    }

    /// A missing container is status 404; a stopped or paused one 409,
    /// with dockerd's message.
    fn create_exec(
        &self,
        container: &str,
        config: &ExecCreate,
        timeout: Option<Duration>,
    ) -> Result<String, DockerError> {
        check_path_id(container, "container ID or name")?;
        let path = format!("/containers/{container}/exec");
        let body = config.to_json().to_string();
        let response = self.request("POST", &path, &[], Some(body.as_bytes()), timeout)?;
        let created: ExecCreated = json::decode(&response.body)
            .map_err(|err| DockerError::Json(err).in_call("POST", &path))?;
        check_path_id(&created.id, "exec ID from dockerd")
            .map_err(|err| err.in_call("POST", &path))?;
        Ok(created.id)
    }

    /// Not detached: the returned connection carries the process's stdio
    /// (multiplexed unless `tty`, which must be the create call's).
    fn start_exec(&self, exec_id: &str, tty: bool) -> Result<Hijacked, DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let path = format!("/exec/{exec_id}/start");
        let body = ExecStart { detach: false, tty }.to_json().to_string();
        self.hijack("POST", &path, Some(body.as_bytes()))
    }

    fn inspect_exec(
        &self,
        exec_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ExecInspect, DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let path = format!("/exec/{exec_id}/json");
        let response = self.request("GET", &path, &[], None, timeout)?;
        json::decode(&response.body).map_err(|err| DockerError::Json(err).in_call("GET", &path))
    }

    fn resize_exec(&self, exec_id: &str, height: u16, width: u16) -> Result<(), DockerError> {
        check_path_id(exec_id, "exec ID")?;
        let (height, width) = (height.to_string(), width.to_string());
        let path = path_with_query(
            &format!("/exec/{exec_id}/resize"),
            &[("h", &height), ("w", &width)],
        );
        self.post(&path, None).map(drop)
    }

    /// A stopped container is status 409, with dockerd's message.
    fn attach_container(
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

    fn resize_container(
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

    #[test]
    fn ids_that_could_change_the_path_are_refused_before_any_call() -> Result<(), DockerError> {
        // No socket exists there: a refused ID never gets as far as dialling.
        let client = DockerClient::new("unix:///nonexistent/docker.sock", Duration::from_secs(1))?;
        for bad in ["", "../x", "a/b", "a?b"] {
            let attach = client.attach_container(bad, true, true, false);
            assert!(
                matches!(&attach, Err(e) if matches!(e, DockerError::InvalidRequest(_))),
                "{bad}"
            );
            let resize = client.resize_container(bad, 24, 80);
            assert!(
                matches!(&resize, Err(e) if matches!(e, DockerError::InvalidRequest(_))),
                "{bad}"
            );
            let resize = client.resize_exec(bad, 24, 80);
            assert!(
                matches!(&resize, Err(e) if matches!(e, DockerError::InvalidRequest(_))),
                "{bad}"
            );
        }
        Ok(())
    }
}
