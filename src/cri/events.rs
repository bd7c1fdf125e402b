//! GetContainerEvents: the state index's change events, as the CRI
//! container events the kubelet's evented PLEG consumes.
//!
//! Each event carries the status of the pod sandbox it concerns and the
//! statuses of all that sandbox's containers as the index holds them when
//! the event is sent. Sandboxes are reported too, under their own ID, as
//! other CRI runtimes do. The index never waits for a client: each stream
//! has a bounded queue, and a client that lets it fill is cut off with
//! `RESOURCE_EXHAUSTED` (the kubelet then relists and subscribes again).
//! Streams are capped at [`MAX_STREAMS`] because each holds a worker
//! thread for as long as the client listens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::api::services::Sink;
use crate::api::v1;
use crate::cri::container::ContainerService;
use crate::cri::sandbox::SandboxService;
use crate::grpc::{CallContext, Status};
use crate::index::{EventKind, Index, IndexEvent, Kind, Received};

/// Events one stream may have queued before its client counts as gone.
pub const STREAM_QUEUE: usize = 1024;
/// Event streams open at once.
pub const MAX_STREAMS: usize = 8;
/// How often a stream with nothing to send checks that its client is
/// still there and the server is not shutting down.
const CANCEL_CHECK: Duration = Duration::from_millis(250);

/// Counts the open event streams.
#[derive(Debug, Default)]
pub struct EventStreams {
    open: AtomicUsize,
}

/// One open stream's place under [`MAX_STREAMS`]; given back on drop.
struct Slot<'a> {
    open: &'a AtomicUsize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EventStreams {
    fn take_slot(&self) -> Result<Slot<'_>, Status> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < MAX_STREAMS).then_some(open + 1)
            });
        match taken {
            Ok(_) => Ok(Slot { open: &self.open }),
            Err(_) => Err(Status::resource_exhausted(format!(
                "{MAX_STREAMS} container event streams are open already"
            ))),
        }
    }

    /// Serves one GetContainerEvents call until the client goes, the
    /// server shuts down, or the client falls [`STREAM_QUEUE`] events
    /// behind.
    pub fn serve(
        &self,
        ctx: &CallContext,
        index: &Index,
        sandboxes: &SandboxService,
        containers: &ContainerService,
        sink: &mut Sink<'_, v1::ContainerEventResponse>,
    ) -> Result<(), Status> {
        let _slot = self.take_slot()?;
        let subscription = index.subscribe(STREAM_QUEUE);
        loop {
            if ctx.is_cancelled() {
                return Err(Status::cancelled(
                    "the container event stream was cancelled",
                ));
            }
            match subscription.recv_timeout(CANCEL_CHECK) {
                Received::Event(event) => {
                    sink.send(&response(&event, index, sandboxes, containers))?;
                }
                Received::Empty => {}
                Received::Closed { lagged: true } => {
                    return Err(Status::resource_exhausted(format!(
                        "the client fell more than {STREAM_QUEUE} container events behind; \
                         list the pods again and resubscribe"
                    )));
                }
                Received::Closed { lagged: false } => {
                    return Err(Status::unavailable("the state index has stopped"));
                }
            }
        }
    }
}

/// The CRI event for one index event.
fn response(
    event: &IndexEvent,
    index: &Index,
    sandboxes: &SandboxService,
    containers: &ContainerService,
) -> v1::ContainerEventResponse {
    let entry = &event.entry;
    let (sandbox_id, known_sandbox) = match entry.kind {
        Kind::Sandbox => (entry.id.as_str(), Some(entry.as_ref())),
        Kind::Container => (entry.sandbox_id.as_str(), event.sandbox.as_deref()),
    };
    let pod_sandbox_status = sandboxes.status_for_event(sandbox_id, known_sandbox, entry);
    let mut members = index.containers_of(sandbox_id).unwrap_or_else(|err| {
        log::debug!("container event for {}: {err}", entry.id);
        Vec::new()
    });
    // A container that changed again or went away since the event still
    // appears, as the event saw it, unless the event is its deletion.
    let listed = members.iter().any(|member| member.id == entry.id);
    if entry.kind == Kind::Container && !listed && event.kind != EventKind::Deleted {
        members.push(std::sync::Arc::clone(entry));
    }
    let containers_statuses = members
        .iter()
        .filter_map(|member| containers.status_of(member).ok())
        .collect();
    v1::ContainerEventResponse {
        container_id: entry.id.clone(),
        container_event_type: event_type(event.kind) as i32,
        created_at: event.timestamp_ns,
        pod_sandbox_status: Some(pod_sandbox_status),
        containers_statuses,
    }
}

fn event_type(kind: EventKind) -> v1::ContainerEventType {
    match kind {
        EventKind::Created => v1::ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => v1::ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => v1::ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => v1::ContainerEventType::ContainerDeletedEvent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_beyond_the_cap_are_refused_until_one_closes() {
        let streams = EventStreams::default();
        let slots: Vec<Slot<'_>> = (0..MAX_STREAMS)
            .map(|_| streams.take_slot())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|status| panic!("{status}"));
        let refused = streams.take_slot().err().map(|status| status.code);
        assert_eq!(refused, Some(crate::grpc::Code::ResourceExhausted));
        drop(slots);
        assert!(streams.take_slot().is_ok());
    }

    #[test]
    fn every_index_event_kind_has_its_cri_event_type() {
        let kinds = [
            (EventKind::Created, 0),
            (EventKind::Started, 1),
            (EventKind::Stopped, 2),
            (EventKind::Deleted, 3),
        ];
        for (kind, wire) in kinds {
            assert_eq!(event_type(kind) as i32, wire);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod handler_tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::api::v1::ContainerEventType;
    use crate::cri::testing::{self, SandboxSetup};
    use crate::grpc::{Code, MessageSink};
    use crate::host::RecordingHost;

    /// A client that keeps every event it is sent.
    struct Client(Arc<Mutex<Vec<v1::ContainerEventResponse>>>);

    impl MessageSink for Client {
        fn send(&mut self, message: &[u8]) -> Result<(), Status> {
            let event = prost::Message::decode(message).unwrap();
            self.0.lock().unwrap().push(event);
            Ok(())
        }
    }

    #[test]
    fn a_started_container_s_event_carries_its_pod_and_the_stream_ends_when_cancelled() {
        let setup = SandboxSetup::new();
        let pod = setup.run("web");
        let containers = testing::containers(
            &setup.docker,
            &testing::config(setup.dir.path()),
            Arc::clone(&setup.index),
            Arc::new(RecordingHost::default()),
        );
        let streams = EventStreams::default();
        let ctx = CallContext::new("/runtime.v1.RuntimeService/GetContainerEvents", None);
        let received = Arc::new(Mutex::new(Vec::new()));
        let started = ContainerEventType::ContainerStartedEvent as i32;
        let (app, outcome) = std::thread::scope(|scope| {
            let serving = scope.spawn(|| {
                let mut client = Client(Arc::clone(&received));
                let mut sink = Sink::new(&mut client);
                streams.serve(&ctx, &setup.index, &setup.service, &containers, &mut sink)
            });
            while streams.open.load(Ordering::Acquire) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The slot is taken just before the subscription.
            std::thread::sleep(Duration::from_millis(20));
            let app = setup.container(&pod, "app", true);
            let until = Instant::now() + Duration::from_secs(5);
            while !received
                .lock()
                .unwrap()
                .iter()
                .any(|event| event.container_id == app && event.container_event_type == started)
            {
                assert!(Instant::now() < until, "no start event");
                std::thread::sleep(Duration::from_millis(5));
            }
            ctx.cancel();
            (app, serving.join().unwrap())
        });
        assert_eq!(outcome.unwrap_err().code, Code::Cancelled);
        let events = received.lock().unwrap();
        let event = events
            .iter()
            .find(|event| event.container_id == app && event.container_event_type == started)
            .unwrap();
        let pod_status = event.pod_sandbox_status.as_ref().unwrap();
        assert_eq!(pod_status.id, pod);
        assert_eq!(pod_status.metadata.as_ref().unwrap().name, "web");
        let members: Vec<(&str, i32)> = event
            .containers_statuses
            .iter()
            .map(|status| (status.id.as_str(), status.state))
            .collect();
        assert_eq!(
            members,
            [(app.as_str(), v1::ContainerState::ContainerRunning as i32)]
        );
    }
}
