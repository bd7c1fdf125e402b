//! Host-network pods end to end: a container whose network namespace mode
//! is POD joins its sandbox's network, and in a host-network sandbox that
//! is the host's. The real binary against the real dockerd; needs root, as
//! `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::busybox_image;
use common::pod::{container_config, World};
use dockshim::api::v1 as cri;

/// The interface names of a `/proc/net/dev` listing.
fn interfaces(proc_net_dev: &str) -> BTreeSet<String> {
    proc_net_dev
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .collect()
}

/// The output of `command` run in the container, which must succeed.
async fn run_in(world: &World, id: &str, command: &[&str]) -> String {
    let result = world.client.exec_sync(id, command, 10).await.unwrap();
    assert_eq!(
        result.exit_code,
        0,
        "{command:?}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8(result.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_network_container_in_a_host_network_sandbox_sees_the_hosts_network() {
    let world = World::start().await;
    let pod_network = cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        ..cri::NamespaceOption::default()
    };
    let config = container_config(
        "podnet",
        &busybox_image(),
        &["sleep", "300"],
        &world.run_id,
        pod_network,
    );
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    assert_eq!(
        world.status(&id).await.state,
        cri::ContainerState::ContainerRunning as i32
    );

    let host_namespace = std::fs::read_link("/proc/self/ns/net").unwrap();
    let namespace = run_in(&world, &id, &["readlink", "/proc/self/ns/net"]).await;
    assert_eq!(namespace.trim(), host_namespace.to_str().unwrap());
    let host_interfaces = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let seen = interfaces(&run_in(&world, &id, &["cat", "/proc/net/dev"]).await);
    assert_eq!(seen, host_interfaces);
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let name = run_in(&world, &id, &["hostname"]).await;
    assert_eq!(name.trim(), host_name.trim());

    world.client.stop_container(&id, 0).await.unwrap();
    world.client.remove_container(&id).await.unwrap();
    world.clean_up().await;
}
