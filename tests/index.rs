//! The state index against the real dockerd on /var/run/docker.sock: it
//! follows containers through their life within milliseconds of dockerd's
//! events, publishes their changes in order, recognises sandboxes made the
//! way cri-dockerd makes them, ignores unlabelled containers, and answers
//! warm queries without Docker calls. Losing the event stream is tested
//! with a scripted dockerd in the unit tests (restarting the shared dockerd
//! is not an option here).
//!
//! Tests that need dockerd print why and pass when the socket or the test
//! images are absent (under tests/run.sh they fail). Other work on the
//! machine may create labelled containers at the same time, so the tests
//! only look at their own containers. Every container created here carries
//! `dockshim-test=1` and the test run's label, and is removed by a drop
//! guard, also when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dockshim::docker::{path_with_query, DockerClient};
use dockshim::index::{
    ContainerFilter, CriState, EventKind, Index, Kind, Received, SandboxFilter, State, Subscription,
};
use serde_json::{json, Value};

/// The engine under test: `DOCKSHIM_TEST_DOCKER_SOCKET` (tests/run.sh sets
/// it for each engine of its matrix), else the machine's dockerd.
fn docker_sock() -> String {
    std::env::var("DOCKSHIM_TEST_DOCKER_SOCKET")
        .unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}
const BUSYBOX: &str = "127.0.0.1:5000/dockshim-test/busybox:latest";
const PAUSE: &str = "127.0.0.1:5000/dockshim-test/pause:3.10";

/// How long a change may take to show in the index before a test fails;
/// the printed delays are what to look at.
const SHOW_WITHIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

fn dockerd() -> Option<DockerClient> {
    if !Path::new(&docker_sock()).exists() {
        common::missing_environment(format!(
            "{} does not exist, no dockerd to test against",
            docker_sock()
        ));
        return None;
    }
    let client = DockerClient::new(
        &format!("unix://{}", docker_sock()),
        Duration::from_secs(60),
    )
    .unwrap();
    client.negotiate().unwrap();
    Some(client)
}

/// The test image named by `variable` (as tests/run.sh sets it), if dockerd
/// has it.
fn image(client: &DockerClient, variable: &str, default: &str) -> Option<String> {
    let name = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    if client
        .get_json::<Value>(&format!("/images/{name}/json"))
        .is_err()
    {
        common::missing_environment(format!(
            "test image {name} is missing (tests/images/build.sh makes it)"
        ));
        return None;
    }
    Some(name)
}

fn busybox(client: &DockerClient) -> Option<String> {
    image(client, "DOCKSHIM_TEST_BUSYBOX_IMAGE", BUSYBOX)
}

fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "dockshim-test-index-{}-{what}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container removed (with force) on drop.
struct Container {
    client: DockerClient,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(err) = self
            .client
            .delete(&format!("/containers/{}?force=1&v=1", self.id))
        {
            if err.api_status() != Some(404) {
                eprintln!("cleanup: removing container {}: {err}", self.id);
            }
        }
    }
}

impl Container {
    fn start(&self) {
        let status = self
            .client
            .post(&format!("/containers/{}/start", self.id), None)
            .unwrap();
        assert_eq!(status, 204);
    }

    fn kill(&self) {
        let status = self
            .client
            .post(&format!("/containers/{}/kill", self.id), None)
            .unwrap();
        assert_eq!(status, 204);
    }

    fn remove(&self) {
        let status = self
            .client
            .delete(&format!("/containers/{}?force=1&v=1", self.id))
            .unwrap();
        assert_eq!(status, 204);
    }
}

fn create(client: &DockerClient, name: &str, image: &str, labels: Value) -> Container {
    let mut labels = labels;
    labels["dockshim-test"] = json!("1");
    labels[common::TEST_RUN_LABEL] = json!(common::test_run_id());
    let body = json!({
        "Image": image,
        "Cmd": ["/bin/busybox", "sleep", "300"],
        "Labels": labels,
    });
    let created: Value = client
        .post_json(
            &path_with_query("/containers/create", &[("name", name)]),
            &body,
        )
        .unwrap();
    Container {
        client: client.clone(),
        id: created["Id"].as_str().unwrap().to_owned(),
    }
}

/// A container labelled as a CRI container of sandbox `sandbox_id`.
fn cri_container(client: &DockerClient, image: &str, sandbox_id: &str) -> Container {
    create(
        client,
        &unique_name("ctr"),
        image,
        json!({
            "io.kubernetes.docker.type": "container",
            "io.kubernetes.sandbox.id": sandbox_id,
        }),
    )
}

fn warm_index(client: &DockerClient) -> Arc<Index> {
    let index = Index::start(client.clone()).unwrap();
    assert!(
        index.wait_warm(Duration::from_secs(10)),
        "index not warm after 10 s"
    );
    index
}

/// Polls every 5 ms until `condition` holds; returns how long that took,
/// or fails the test after [`SHOW_WITHIN`].
fn shows_within(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            let took = start.elapsed();
            eprintln!("index shows {what} after {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < SHOW_WITHIN,
            "index did not show {what} within {SHOW_WITHIN:?}"
        );
        thread::sleep(POLL);
    }
}

fn state_of(index: &Index, id: &str) -> Option<State> {
    index.get(id).unwrap().map(|entry| entry.state)
}

/// The kinds of the events about `id` queued on `sub` within a short wait.
fn events_about(sub: &Subscription, id: &str) -> Vec<EventKind> {
    let mut kinds = Vec::new();
    while let Received::Event(event) = sub.recv_timeout(Duration::from_millis(500)) {
        if event.entry.id == id {
            kinds.push(event.kind);
        }
    }
    kinds
}

#[test]
fn index_follows_a_container_through_its_life_within_milliseconds() {
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let index = warm_index(&client);
    let sub = index.subscribe(256);
    let sandbox_id = unique_name("sandbox");

    let container = cri_container(&client, &image, &sandbox_id);
    let id = container.id.clone();
    shows_within("CREATED", || state_of(&index, &id) == Some(State::Created));
    let entry = index.container(&id).unwrap().unwrap();
    assert_eq!(entry.kind, Kind::Container);
    assert_eq!(entry.sandbox_id, sandbox_id);
    assert_eq!(entry.cri_state(), CriState::Created);
    assert!(entry.created_ns > 0);
    assert_eq!((entry.started_ns, entry.finished_ns), (0, 0));
    assert_eq!(entry.image, image);
    assert!(entry.image_id.starts_with("sha256:"), "{}", entry.image_id);
    assert!(
        entry.name.starts_with("dockshim-test-index-"),
        "{}",
        entry.name
    );

    container.start();
    shows_within("RUNNING", || state_of(&index, &id) == Some(State::Running));
    let entry = index.container(&id).unwrap().unwrap();
    assert!(entry.pid > 0);
    assert!(entry.started_ns >= entry.created_ns);

    container.kill();
    shows_within("EXITED after docker kill", || {
        state_of(&index, &id) == Some(State::Exited)
    });
    let entry = index.container(&id).unwrap().unwrap();
    assert_eq!(entry.exit_code, 137);
    assert_eq!(entry.cri_state(), CriState::Exited);
    assert!(entry.finished_ns >= entry.started_ns);

    container.remove();
    shows_within("removal", || index.get(&id).unwrap().is_none());

    assert_eq!(
        events_about(&sub, &id),
        [
            EventKind::Created,
            EventKind::Started,
            EventKind::Stopped,
            EventKind::Deleted
        ]
    );
    assert!(!sub.is_lagged());
}

#[test]
fn warm_queries_make_no_docker_calls() {
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let sandbox_id = unique_name("sandbox");
    let container = cri_container(&client, &image, &sandbox_id);
    let index = warm_index(&client);
    let by_sandbox = ContainerFilter {
        sandbox_id: Some(sandbox_id.clone()),
        ..ContainerFilter::default()
    };
    // Containers made by other work on the machine make the index inspect
    // them; a window in which an event arrived does not count.
    for _ in 0..20 {
        let (calls, events) = (index.docker_calls(), index.events_received());
        for _ in 0..100 {
            assert_eq!(index.containers(&by_sandbox).unwrap().len(), 1);
            index.sandboxes(&SandboxFilter::default()).unwrap();
            assert!(index.get(&container.id).unwrap().is_some());
            index.containers_of(&sandbox_id).unwrap();
        }
        if index.events_received() == events {
            assert_eq!(index.docker_calls(), calls, "warm queries called dockerd");
            return;
        }
    }
    panic!("events kept arriving; could not measure a quiet window");
}

#[test]
fn containers_without_the_type_label_are_ignored() {
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let index = warm_index(&client);
    let plain = create(&client, &unique_name("plain"), &image, json!({}));
    plain.start();
    assert!(index.refresh(&plain.id).unwrap().is_none());
    thread::sleep(Duration::from_millis(200));
    assert!(index.get(&plain.id).unwrap().is_none());
}

#[test]
fn refresh_shows_a_handlers_own_change_at_once() {
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let index = warm_index(&client);
    let container = cri_container(&client, &image, "s");
    let created = index.refresh(&container.id).unwrap().unwrap();
    assert_eq!(created.state, State::Created);
    container.start();
    let running = index.refresh(&container.id).unwrap().unwrap();
    assert_eq!(running.state, State::Running);
    container.remove();
    assert!(index.refresh(&container.id).unwrap().is_none());
    assert!(index.get(&container.id).unwrap().is_none());
}

#[test]
fn a_sandbox_made_the_way_cri_dockerd_makes_it_is_recognised() {
    let Some(client) = dockerd() else { return };
    let Some(pause) = image(&client, "DOCKSHIM_TEST_PAUSE_IMAGE", PAUSE) else {
        return;
    };
    let index = warm_index(&client);
    let uid = unique_name("uid");
    let body = json!({
        "Image": pause,
        "Hostname": "web",
        "Labels": {
            "io.kubernetes.docker.type": "podsandbox",
            "io.kubernetes.container.name": "POD",
            "io.kubernetes.pod.name": "web",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.pod.uid": uid,
            "annotation.kubernetes.io/config.source": "api",
            "dockshim-test": "1",
            common::TEST_RUN_LABEL: common::test_run_id(),
        },
        "HostConfig": { "NetworkMode": "none", "IpcMode": "shareable" },
    });
    let name = format!("k8s_POD_web_default_{uid}_0");
    let created: Value = client
        .post_json(
            &path_with_query("/containers/create", &[("name", &name)]),
            &body,
        )
        .unwrap();
    let sandbox = Container {
        client: client.clone(),
        id: created["Id"].as_str().unwrap().to_owned(),
    };
    sandbox.start();
    shows_within("the sandbox READY", || {
        index
            .sandbox(&sandbox.id)
            .unwrap()
            .is_some_and(|entry| entry.is_ready())
    });
    let by_uid = SandboxFilter {
        labels: [("io.kubernetes.pod.uid".to_owned(), uid.clone())].into(),
        ready: Some(true),
        ..SandboxFilter::default()
    };
    let found = index.sandboxes(&by_uid).unwrap();
    assert_eq!(found.len(), 1);
    let entry = &found[0];
    assert_eq!(entry.id, sandbox.id);
    assert_eq!(entry.name, name);
    assert_eq!(entry.sandbox_id, sandbox.id);
    assert_eq!(
        (entry.network_mode.as_str(), entry.ipc_mode.as_str()),
        ("none", "shareable")
    );
    let labels: Vec<&str> = entry.cri_labels().map(|(key, _)| key).collect();
    assert_eq!(
        labels,
        [
            "dockshim-test",
            common::TEST_RUN_LABEL,
            "io.kubernetes.pod.name",
            "io.kubernetes.pod.namespace",
            "io.kubernetes.pod.uid"
        ]
    );
    let annotations: Vec<_> = entry.annotations().collect();
    assert_eq!(annotations, [("kubernetes.io/config.source", "api")]);
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_the_index_back() {
    let Some(client) = dockerd() else { return };
    let Some(image) = busybox(&client) else {
        return;
    };
    let index = warm_index(&client);
    let slow = index.subscribe(4);
    let sandbox_id = unique_name("sandbox");
    // Five containers, each created, started, killed and removed: twenty
    // changes for a queue of four.
    let containers: Vec<Container> = (0..5)
        .map(|_| cri_container(&client, &image, &sandbox_id))
        .collect();
    for container in &containers {
        container.start();
    }
    for container in &containers {
        container.kill();
    }
    let last = &containers[4].id;
    shows_within("the last kill", || {
        state_of(&index, last) == Some(State::Exited)
    });
    for container in &containers {
        container.remove();
    }
    shows_within("every removal", || {
        containers
            .iter()
            .all(|c| index.get(&c.id).unwrap().is_none())
    });
    assert!(slow.is_lagged());
    assert!(index.lagged_subscribers() >= 1);
    let mut queued = 0;
    while let Received::Event(_) = slow.try_recv() {
        queued += 1;
    }
    assert_eq!(queued, 4);
    assert!(matches!(slow.try_recv(), Received::Closed { lagged: true }));
}
