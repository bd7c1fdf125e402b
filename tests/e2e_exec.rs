//! ExecSync end to end when the container goes away under the command:
//! the real binary, the real dockerd, a pod container in a host-network
//! sandbox (`common::pod`). Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::busybox_image;
use common::pod::World;
use tonic::Code;

/// ExecSync's own timeout in these tests: far beyond what an answer may
/// take, so a call that runs into it has missed the container's end.
const EXEC_TIMEOUT_SECS: i64 = 60;

/// Longest an ExecSync may take to answer once its container is gone.
const PROMPT_ANSWER: Duration = Duration::from_secs(15);

/// `docker rm -f` of one container, through the CLI (which honours
/// `DOCKER_HOST`, as the engine matrix sets it).
fn force_remove(id: &str) {
    let out = Command::new("docker")
        .args(["rm", "-f", id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker rm -f {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_answers_promptly_when_its_container_is_force_removed() {
    let world = World::start().await;
    let config = world.config("victim", &busybox_image(), "sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();

    let client = world.client.clone();
    let exec_id = id.clone();
    let started = Instant::now();
    let exec = tokio::spawn(async move {
        client
            .exec_sync(&exec_id, &["sleep", "30"], EXEC_TIMEOUT_SECS)
            .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let removed_id = id.clone();
    tokio::task::spawn_blocking(move || force_remove(&removed_id))
        .await
        .unwrap();
    let removed = started.elapsed();
    let answer = tokio::time::timeout(Duration::from_secs(90), exec)
        .await
        .expect("ExecSync never answered")
        .unwrap();
    let took = started.elapsed();
    eprintln!("ExecSync answered {took:?} after it started ({removed:?} to remove): {answer:?}");
    assert!(
        took < removed + PROMPT_ANSWER,
        "ExecSync answered {took:?} after it started, the container was gone after {removed:?}"
    );
    match answer {
        // Engines that end the stream (Docker 29) record the removal's kill.
        Ok(response) => assert_eq!(response.exit_code, 137, "{response:?}"),
        // Those that never end it (Docker 20.10 and 27) record no exit code.
        Err(status) => {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert!(status.message().contains(&id), "{status:?}");
        }
    }

    world.client.remove_container(&id).await.unwrap();
    world.clean_up().await;
}
