//! Containers end to end: the real binary and the real dockerd, in
//! host-network sandboxes (`common::pod`) so that no CNI plugin is
//! involved. Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::busybox_image;
use common::fixture::{Options, Restarted};
use common::pod::{wait_for_log_line, World, LOG_WAIT};
use common::proxy::DockerProxy;
use dockshim::api::v1 as cri;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_runs_logs_execs_stops_and_is_removed() {
    let world = World::start().await;
    let config = world.config("app", &busybox_image(), "echo hello; sleep 300");
    let id = world.create(config).await.unwrap();
    assert_eq!(
        world.status(&id).await.state,
        cri::ContainerState::ContainerCreated as i32
    );
    world.client.start_container(&id).await.unwrap();

    let listed = world.client.list_containers(None).await.unwrap();
    let ours = listed.iter().find(|c| c.id == id).unwrap();
    assert_eq!(ours.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(ours.pod_sandbox_id, world.sandbox_id);
    let by_sandbox = world
        .client
        .list_containers(Some(cri::ContainerFilter {
            pod_sandbox_id: world.sandbox_id.clone(),
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            ..cri::ContainerFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        by_sandbox.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let status = world.status(&id).await;
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);
    assert_eq!(status.metadata.unwrap().name, "app");
    let verbose = world.client.container_status(&id, true).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&verbose.info["info"]).unwrap();
    assert!(info["pid"].as_i64().unwrap() > 0, "{info}");
    assert_eq!(info["sandboxID"], world.sandbox_id.as_str());
    assert_eq!(info["config"]["Entrypoint"][0], "sh", "{info}");
    let pod_network = format!("container:{}", world.sandbox_id);
    assert_eq!(info["hostConfig"]["NetworkMode"], pod_network.as_str());

    let log_file = world.logs.path().join("app.log");
    let log = wait_for_log_line(&log_file, " stdout F hello");
    assert!(
        log.lines().any(|line| line.ends_with(" stdout F hello")),
        "{log:?}"
    );

    let echo = world
        .client
        .exec_sync(&id, &["echo", "hi"], 10)
        .await
        .unwrap();
    assert_eq!((echo.stdout.as_slice(), echo.exit_code), (&b"hi\n"[..], 0));
    let failing = world
        .client
        .exec_sync(&id, &["sh", "-c", "exit 3"], 10)
        .await
        .unwrap();
    assert_eq!(failing.exit_code, 3);

    world.client.stop_container(&id, 1).await.unwrap();
    let stopped = world.status(&id).await;
    assert_eq!(stopped.state, cri::ContainerState::ContainerExited as i32);
    assert!(
        [137, 143].contains(&stopped.exit_code),
        "{}",
        stopped.exit_code
    );
    assert!(!stopped.reason.is_empty());
    let exec_err = world
        .client
        .exec_sync(&id, &["echo", "hi"], 10)
        .await
        .unwrap_err();
    assert_eq!(exec_err.code(), Code::FailedPrecondition, "{exec_err:?}");

    world.client.remove_container(&id).await.unwrap();
    world.client.remove_container(&id).await.unwrap();
    let err = world.client.container_status(&id, false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(!log_file.exists());
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_containers_images_and_sandboxes_are_handled() {
    let world = World::start().await;
    let missing = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    world.client.stop_container(missing, 1).await.unwrap();
    world.client.remove_container(missing).await.unwrap();

    let image = "127.0.0.1:5000/dockshim-test/no-such-image:none";
    let err = world
        .create(world.config("noimage", image, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains(image), "{err:?}");

    let err = world
        .client
        .create_container(
            missing,
            world.config("nosandbox", &busybox_image(), "true"),
            world.sandbox_config.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.clean_up().await;
}

const GET_CONTAINER_EVENTS: &str = "/runtime.v1.RuntimeService/GetContainerEvents";

/// The numbers of the `line-<n>` lines in a CRI log file, in file order.
fn counter_lines(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| line.split_once(" stdout F line-"))
        .map(|(_, n)| n.parse().unwrap())
        .collect()
}

/// Asserts that `numbers` is 0, 1, 2, … without a gap or a repeat.
fn assert_consecutive(numbers: &[u64], log: &str) {
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected.as_slice(), "log file:\n{log}");
}

/// Waits until the log at `path` has a `line-<n>` line with n ≥ `at_least`.
fn wait_for_counter(path: &Path, at_least: u64) -> String {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let done = counter_lines(&log).last().is_some_and(|n| *n >= at_least);
        if done || Instant::now() >= deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A container printing `line-0`, `line-1`, … every 50 ms.
const COUNTER: &str = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.05; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_events_come_in_lifecycle_order_with_the_pod_status() {
    let world = World::start().await;
    let mut events = world
        .client
        .server_stream::<_, cri::ContainerEventResponse>(
            GET_CONTAINER_EVENTS,
            cri::GetEventsRequest {},
        )
        .await
        .unwrap();
    let id = world
        .create(world.config("evented", &busybox_image(), "sleep 300"))
        .await
        .unwrap();
    world.client.start_container(&id).await.unwrap();
    world.client.stop_container(&id, 0).await.unwrap();
    world.client.remove_container(&id).await.unwrap();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 4 && Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_secs(10), events.message()).await;
        let event = next.unwrap().unwrap().unwrap();
        if event.container_id == id {
            seen.push(event);
        }
    }
    let kinds: Vec<i32> = seen.iter().map(|e| e.container_event_type).collect();
    assert_eq!(
        kinds,
        [
            cri::ContainerEventType::ContainerCreatedEvent as i32,
            cri::ContainerEventType::ContainerStartedEvent as i32,
            cri::ContainerEventType::ContainerStoppedEvent as i32,
            cri::ContainerEventType::ContainerDeletedEvent as i32,
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    let uid = world.sandbox_config.metadata.as_ref().unwrap().uid.clone();
    for event in &seen {
        let pod = event.pod_sandbox_status.as_ref().unwrap();
        assert_eq!(pod.id, world.sandbox_id);
        assert_eq!(pod.metadata.as_ref().unwrap().uid, uid);
    }
    let stopped = &seen[2];
    let status = stopped
        .containers_statuses
        .iter()
        .find(|s| s.id == id)
        .unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerExited as i32);
    assert!(seen[3].containers_statuses.iter().all(|s| s.id != id));
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_lists_match_the_lists_and_unsupported_calls_say_why() {
    let world = World::start().await;
    let id = world
        .create(world.config("listed", &busybox_image(), "sleep 300"))
        .await
        .unwrap();
    let filter = cri::ContainerFilter {
        pod_sandbox_id: world.sandbox_id.clone(),
        ..cri::ContainerFilter::default()
    };
    let mut stream = world
        .client
        .server_stream::<_, cri::StreamContainersResponse>(
            "/runtime.v1.RuntimeService/StreamContainers",
            cri::StreamContainersRequest {
                filter: Some(filter),
            },
        )
        .await
        .unwrap();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        streamed.extend(batch.containers.into_iter().map(|c| c.id));
    }
    assert_eq!(streamed, std::slice::from_ref(&id));

    let mut sandboxes = world
        .client
        .server_stream::<_, cri::StreamPodSandboxesResponse>(
            "/runtime.v1.RuntimeService/StreamPodSandboxes",
            cri::StreamPodSandboxesRequest {
                filter: Some(cri::PodSandboxFilter {
                    id: world.sandbox_id.clone(),
                    ..cri::PodSandboxFilter::default()
                }),
            },
        )
        .await
        .unwrap();
    let batch = sandboxes.message().await.unwrap().unwrap();
    assert_eq!(batch.pod_sandboxes.len(), 1);
    assert_eq!(batch.pod_sandboxes[0].id, world.sandbox_id);

    let err = world
        .client
        .call::<_, cri::CheckpointContainerResponse>(
            "/runtime.v1.RuntimeService/CheckpointContainer",
            tonic::Request::new(cri::CheckpointContainerRequest {
                container_id: id.clone(),
                location: "/tmp/checkpoint.tar".to_owned(),
                timeout: 10,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("dockerd"), "{err:?}");

    let update = |sandbox: String| cri::UpdatePodSandboxResourcesRequest {
        pod_sandbox_id: sandbox,
        ..cri::UpdatePodSandboxResourcesRequest::default()
    };
    let path = "/runtime.v1.RuntimeService/UpdatePodSandboxResources";
    world
        .client
        .call::<_, cri::UpdatePodSandboxResourcesResponse>(
            path,
            tonic::Request::new(update(world.sandbox_id.clone())),
        )
        .await
        .unwrap();
    let err = world
        .client
        .call::<_, cri::UpdatePodSandboxResourcesResponse>(
            path,
            tonic::Request::new(update("f".repeat(64))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_resume_after_a_dockshim_crash_without_gaps_or_repeats() {
    let world = World::start().await;
    let id = world
        .create(world.config("counter", &busybox_image(), COUNTER))
        .await
        .unwrap();
    world.client.start_container(&id).await.unwrap();
    let log_file = world.logs.path().join("counter.log");
    let before = wait_for_counter(&log_file, 5);
    assert!(counter_lines(&before).len() >= 6, "{before}");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(world.dockshim.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let crashed_at = counter_lines(&std::fs::read_to_string(&log_file).unwrap()).len() as u64;
    // The container goes on printing while nobody follows it.
    std::thread::sleep(Duration::from_millis(500));
    let restarted_log = world.logs.path().join("restarted.stderr");
    let restarted = Restarted::spawn(&world.dockshim, restarted_log);

    let after = wait_for_counter(&log_file, crashed_at + 20);
    assert_consecutive(&counter_lines(&after), &after);
    assert!(
        counter_lines(&after).len() as u64 > crashed_at + 20,
        "{after}"
    );
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_followed_again_once_dockerd_is_back() {
    let proxy = DockerProxy::start();
    let world = World::start_with_options(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    })
    .await;
    let id = world
        .create(world.config("outage", &busybox_image(), COUNTER))
        .await
        .unwrap();
    world.client.start_container(&id).await.unwrap();
    let log_file = world.logs.path().join("outage.log");
    wait_for_counter(&log_file, 5);

    proxy.kill();
    std::thread::sleep(Duration::from_millis(500));
    let cut_at = counter_lines(&std::fs::read_to_string(&log_file).unwrap()).len() as u64;
    proxy.revive();

    let after = wait_for_counter(&log_file, cut_at + 20);
    assert_consecutive(&counter_lines(&after), &after);
    assert!(counter_lines(&after).len() as u64 > cut_at + 20, "{after}");
    world.clean_up().await;
}

/// Opens a GetContainerEvents stream and waits `quiet` for its first
/// answer: the stream if it stays open and silent, else the error status.
async fn open_events(
    world: &World,
    quiet: Duration,
) -> Result<tonic::Streaming<cri::ContainerEventResponse>, tonic::Status> {
    let mut stream = world
        .client
        .server_stream::<_, cri::ContainerEventResponse>(
            GET_CONTAINER_EVENTS,
            cri::GetEventsRequest {},
        )
        .await?;
    match tokio::time::timeout(quiet, stream.message()).await {
        Ok(Err(status)) => Err(status),
        Err(_) | Ok(Ok(_)) => Ok(stream),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_and_a_vanished_client_frees_its_place() {
    let world = World::start().await;
    let quiet = Duration::from_millis(300);
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(open_events(&world, quiet).await.unwrap());
    }
    let refused = open_events(&world, quiet).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    drop(open);
    let freed = common::eventually(Duration::from_secs(3), || async {
        open_events(&world, quiet).await.is_ok()
    })
    .await;
    assert!(freed, "closed event streams must give their places back");
    world.clean_up().await;
}
