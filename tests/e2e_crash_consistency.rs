//! Calls that fail half-way leave nothing behind, end to end with the real
//! binary and the real dockerd: a StartContainer that cannot open the
//! container's log file leaves nothing running.
//! Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::busybox_image;
use common::docker::get_json;
use common::pod::World;
use dockshim::cri::v1 as cri;
use tonic::Code;

/// StartContainer calls made against a missing log directory.
const FAILED_STARTS: usize = 4;

fn is_running(id: &str) -> bool {
    get_json(&format!("/containers/{id}/json"))["State"]["Running"]
        .as_bool()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_without_a_log_directory_fails_and_leaves_nothing_running() {
    let world = World::start().await;
    let log_dir = world.logs.path().to_path_buf();
    std::fs::remove_dir_all(&log_dir).unwrap();
    let mut ids = Vec::new();
    for n in 0..FAILED_STARTS {
        let config = world.config(&format!("app{n}"), &busybox_image(), "sleep 300");
        let id = world.create(config).await.unwrap();
        let status = world.client.start_container(&id).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains(&log_dir.display().to_string()),
            "{status:?}"
        );
        assert!(!is_running(&id), "container {id} runs after a failed start");
        // The log file is opened first: the container never ran.
        assert_eq!(
            world.status(&id).await.state,
            cri::ContainerState::ContainerCreated as i32
        );
        ids.push(id);
    }
    assert!(
        ids.iter().all(|id| !is_running(id)),
        "a container started later on its own"
    );

    // The same request succeeds once the kubelet's directory is back.
    std::fs::create_dir(&log_dir).unwrap();
    let config = world.config("app", &busybox_image(), "echo up; sleep 300");
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    assert!(is_running(&id));
    let log = common::pod::wait_for_log_line(&log_dir.join("app.log"), " stdout F up");
    assert!(log.ends_with(" stdout F up\n"), "{log:?}");
    world.clean_up().await;
}
