//! `IndexSource`: the three Docker calls the index makes, behind a trait so
//! tests can feed the index scripted containers and event streams.
//!
//! The `DockerClient` implementation owns the filters that keep dockerd's
//! answers down to dockshim's containers. Nothing here interprets what it
//! fetches.

use std::time::{Duration, SystemTime};

use super::entry::TYPE_LABEL;
use crate::docker::{ContainerInspect, DockerApi, DockerClient, DockerError, Event, JsonStream};

/// Where the index learns about containers.
pub trait IndexSource: Send + Sync {
    /// IDs of every container, running or not, that carries the
    /// `io.kubernetes.docker.type` label.
    fn list(&self) -> Result<Vec<String>, DockerError>;

    /// One container; `Ok(None)` when it does not exist (any more).
    fn inspect(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError>;

    /// Container events from `since` on, forever. A feed that has seen
    /// nothing for `idle` says so with [`Polled::Idle`] and stays usable.
    fn follow_events(
        &self,
        since: SystemTime,
        idle: Duration,
    ) -> Result<Box<dyn EventFeed>, DockerError>;
}

/// A live event stream.
pub trait EventFeed: Send {
    /// Blocks until an event arrives, the idle time passes, or the stream
    /// ends. An error ends the stream too.
    fn next_event(&mut self) -> Result<Polled, DockerError>;
}

/// What an [`EventFeed`] has to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    Event(Event),
    /// Nothing happened within the idle time.
    Idle,
    /// The stream ended cleanly (dockerd closed it).
    Ended,
}

/// The list filter: the label's presence, whatever its value, so that a
/// container with a value dockshim does not know is still seen (and then
/// ignored by `Entry::from_inspect`).
fn label_filter() -> String {
    format!(r#"{{"label":["{TYPE_LABEL}"]}}"#)
}

/// The events filter: container events of labelled containers only, so an
/// idle dockshim is not woken by everything else on the host.
fn event_filter() -> String {
    format!(r#"{{"type":["container"],"label":["{TYPE_LABEL}"]}}"#)
}

impl IndexSource for DockerClient {
    fn list(&self) -> Result<Vec<String>, DockerError> {
        let containers = self.list_containers(true, Some(&label_filter()))?;
        Ok(containers.into_iter().map(|c| c.id).collect())
    }

    fn inspect(&self, id: &str) -> Result<Option<ContainerInspect>, DockerError> {
        DockerApi::inspect_container(self, id)
    }

    fn follow_events(
        &self,
        since: SystemTime,
        idle: Duration,
    ) -> Result<Box<dyn EventFeed>, DockerError> {
        let mut stream = self.events(Some(since), Some(&event_filter()))?;
        stream.set_idle_timeout(Some(idle));
        Ok(Box::new(stream))
    }
}

impl EventFeed for JsonStream<Event> {
    fn next_event(&mut self) -> Result<Polled, DockerError> {
        match self.next() {
            Some(Ok(event)) => Ok(Polled::Event(event)),
            Some(Err(err)) if matches!(err.root(), DockerError::Timeout { .. }) => Ok(Polled::Idle),
            Some(Err(err)) => Err(err),
            None => Ok(Polled::Ended),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_json_maps_naming_the_type_label() -> Result<(), serde_json::Error> {
        let list: serde_json::Value = serde_json::from_str(&label_filter())?;
        assert_eq!(
            list,
            serde_json::json!({"label": ["io.kubernetes.docker.type"]})
        );
        let events: serde_json::Value = serde_json::from_str(&event_filter())?;
        assert_eq!(
            events,
            serde_json::json!({"type": ["container"], "label": ["io.kubernetes.docker.type"]})
        );
        Ok(())
    }
}
