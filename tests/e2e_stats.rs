//! The stats calls end to end: the real binary and the real dockerd, in
//! host-network sandboxes (`common::pod`). A busy loop whose CPU use shows
//! up, a container holding a known amount of memory and a file in its
//! writable layer, the list filters, pod figures that add up their
//! containers', and the metrics calls built from those figures. Needs
//! root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::busybox_image;
use common::fixture::Options;
use common::pod::{wait_for_log_line, World, RUN_LABEL};
use common::proxy::DockerProxy;
use dockshim::api::v1 as cri;
use tonic::Code;

/// What the memory container writes to /dev/shm (tmpfs, charged to its
/// cgroup and not reclaimable without swap); the sandbox's /dev/shm holds
/// 64 MiB.
const SHM_BYTES: u64 = 50_000_000;
/// What it writes to its writable layer.
const LAYER_FILE_BYTES: u64 = 1_000_000;
/// What else a busybox shell and the kernel's accounting may add.
const MEMORY_SLACK: u64 = 30_000_000;
/// Longer than the shortest interval a CPU rate is measured over.
const RATE_INTERVAL: Duration = Duration::from_millis(1500);
/// How long the writable layer's background walk gets.
const WALK_WAIT: Duration = Duration::from_secs(30);

fn value(v: Option<cri::UInt64Value>) -> u64 {
    v.expect("a figure").value
}

fn ids(stats: &[cri::ContainerStats]) -> Vec<String> {
    let mut ids: Vec<String> = stats
        .iter()
        .map(|s| s.attributes.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    ids
}

/// Creates and starts a container `name` running `script` in the world's
/// sandbox, with `labels` added.
async fn run(world: &World, name: &str, script: &str, labels: &[(&str, &str)]) -> String {
    let mut config = world.config(name, &busybox_image(), script);
    for (key, value) in labels {
        config.labels.insert((*key).to_owned(), (*value).to_owned());
    }
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_container_s_cpu_time_grows_and_gets_a_rate() {
    let world = World::start().await;
    let id = run(&world, "busy", "while :; do :; done", &[]).await;

    let first = world.client.container_stats(&id).await.unwrap();
    let attributes = first.attributes.unwrap();
    assert_eq!(attributes.id, id);
    assert_eq!(attributes.metadata.unwrap().name, "busy");
    assert_eq!(
        attributes.labels.get(RUN_LABEL).map(String::as_str),
        Some(world.run_id.as_str())
    );
    let first_cpu = first.cpu.unwrap();
    assert!(first_cpu.timestamp > 0);
    tokio::time::sleep(RATE_INTERVAL).await;

    let second = world.client.container_stats(&id).await.unwrap();
    let second_cpu = second.cpu.unwrap();
    assert!(second_cpu.timestamp > first_cpu.timestamp);
    assert!(
        value(second_cpu.usage_core_nano_seconds) > value(first_cpu.usage_core_nano_seconds),
        "{first_cpu:?} then {second_cpu:?}"
    );
    let rate = value(second_cpu.usage_nano_cores);
    // A busy loop on one of the machine's cores: well above idle.
    assert!(rate > 100_000_000, "{second_cpu:?}");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_held_in_shm_is_working_set_and_the_layer_shows_the_written_file() {
    let world = World::start().await;
    let shm_file = format!("/dev/shm/fill-{}", world.run_id);
    let script = format!(
        "head -c {LAYER_FILE_BYTES} /dev/zero > /layer-file; \
         head -c {SHM_BYTES} /dev/zero > {shm_file}; \
         echo filled; exec sleep 3600"
    );
    let id = run(&world, "mem", &script, &[]).await;
    // No stats call before the file is written: the first one starts the
    // layer walk.
    let log = wait_for_log_line(&world.logs.path().join("mem.log"), " stdout F filled");
    assert!(
        log.contains("filled"),
        "the container did not fill: {log:?}"
    );

    let stats = world.client.container_stats(&id).await.unwrap();
    let memory = stats.memory.unwrap();
    let working_set = value(memory.working_set_bytes);
    assert!(
        (SHM_BYTES..SHM_BYTES + MEMORY_SLACK).contains(&working_set),
        "{memory:?}"
    );
    assert!(value(memory.usage_bytes) >= working_set, "{memory:?}");

    let image_fs = world.client.image_fs_info().await.unwrap();
    let image_mountpoint = image_fs.image_filesystems[0]
        .fs_id
        .as_ref()
        .unwrap()
        .mountpoint
        .clone();
    let deadline = tokio::time::Instant::now() + WALK_WAIT;
    let layer = loop {
        let stats = world.client.container_stats(&id).await.unwrap();
        if let Some(layer) = stats.writable_layer {
            break layer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no writable layer figures after {WALK_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(value(layer.used_bytes) >= LAYER_FILE_BYTES, "{layer:?}");
    assert!(value(layer.inodes_used) >= 1, "{layer:?}");
    assert_eq!(layer.fs_id.unwrap().mountpoint, image_mountpoint);
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_sandbox_and_label_and_pods_add_up_their_containers() {
    let world = World::start().await;
    let web = run(&world, "web", "exec sleep 3600", &[("tier", "web")]).await;
    let db = run(&world, "db", "exec sleep 3600", &[("tier", "db")]).await;
    let done = run(&world, "done", "true", &[("tier", "web")]).await;

    // A second pod of the same run, with a container of its own.
    let mut other_config = world.sandbox_config.clone();
    let metadata = other_config.metadata.as_mut().unwrap();
    metadata.name = "other".to_owned();
    metadata.uid = format!("uid-other-{}", world.run_id);
    let other = world
        .client
        .run_pod_sandbox(other_config.clone())
        .await
        .unwrap();
    let elsewhere = world
        .client
        .create_container(
            &other,
            world.config("elsewhere", &busybox_image(), "exec sleep 3600"),
            other_config,
        )
        .await
        .unwrap();
    world.client.start_container(&elsewhere).await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            world.status(&done).await.state == cri::ContainerState::ContainerExited as i32
        })
        .await,
        "the short container did not exit"
    );

    let by_sandbox = |sandbox: &str| cri::ContainerStatsFilter {
        pod_sandbox_id: sandbox.to_owned(),
        ..cri::ContainerStatsFilter::default()
    };
    // Running containers only: the exited one is left out.
    let mut ours = vec![web.clone(), db.clone()];
    ours.sort();
    let listed = world
        .client
        .list_container_stats(Some(by_sandbox(&world.sandbox_id)))
        .await
        .unwrap();
    assert_eq!(ids(&listed), ours);
    assert!(listed.iter().all(|s| s.cpu.is_some() && s.memory.is_some()));
    let listed = world
        .client
        .list_container_stats(Some(by_sandbox(&other)))
        .await
        .unwrap();
    assert_eq!(ids(&listed), [elsewhere.as_str()]);
    let web_only = cri::ContainerStatsFilter {
        label_selector: HashMap::from([
            ("tier".to_owned(), "web".to_owned()),
            (RUN_LABEL.to_owned(), world.run_id.clone()),
        ]),
        ..cri::ContainerStatsFilter::default()
    };
    let listed = world
        .client
        .list_container_stats(Some(web_only.clone()))
        .await
        .unwrap();
    assert_eq!(ids(&listed), [web.as_str()]);
    let by_id = cri::ContainerStatsFilter {
        id: db[..12].to_owned(),
        ..cri::ContainerStatsFilter::default()
    };
    let listed = world
        .client
        .list_container_stats(Some(by_id))
        .await
        .unwrap();
    assert_eq!(ids(&listed), [db.as_str()]);
    let streamed = world
        .client
        .stream_container_stats(Some(web_only))
        .await
        .unwrap();
    let streamed: Vec<cri::ContainerStats> = streamed
        .into_iter()
        .flat_map(|m| m.container_stats)
        .collect();
    assert_eq!(ids(&streamed), [web.as_str()]);

    // The pod: its running containers listed, its figures their sum and
    // its sandbox container's.
    let pod = world
        .client
        .pod_sandbox_stats(&world.sandbox_id)
        .await
        .unwrap();
    let attributes = pod.attributes.unwrap();
    assert_eq!(attributes.id, world.sandbox_id);
    assert_eq!(attributes.metadata.unwrap().name, "pod");
    let linux = pod.linux.unwrap();
    assert_eq!(ids(&linux.containers), ours);
    let sum = |pick: &dyn Fn(&cri::ContainerStats) -> u64| -> u64 {
        linux.containers.iter().map(pick).sum()
    };
    let cpu = linux.cpu.as_ref().unwrap();
    assert!(
        value(cpu.usage_core_nano_seconds)
            >= sum(&|c| value(c.cpu.as_ref().unwrap().usage_core_nano_seconds))
    );
    let memory = linux.memory.as_ref().unwrap();
    assert!(
        value(memory.working_set_bytes)
            >= sum(&|c| value(c.memory.as_ref().unwrap().working_set_bytes))
    );
    // Two sleeping containers and the sandbox's pause process.
    assert!(value(linux.process.as_ref().unwrap().process_count) >= 3);
    assert!(linux.network.unwrap().timestamp > 0);

    let run_label = HashMap::from([(RUN_LABEL.to_owned(), world.run_id.clone())]);
    let pods = world
        .client
        .list_pod_sandbox_stats(Some(cri::PodSandboxStatsFilter {
            id: String::new(),
            label_selector: run_label.clone(),
        }))
        .await
        .unwrap();
    let mut pod_ids: Vec<String> = pods
        .iter()
        .map(|p| p.attributes.as_ref().unwrap().id.clone())
        .collect();
    pod_ids.sort();
    let mut expected = vec![world.sandbox_id.clone(), other.clone()];
    expected.sort();
    assert_eq!(pod_ids, expected);
    let streamed = world
        .client
        .stream_pod_sandbox_stats(Some(cri::PodSandboxStatsFilter {
            id: other.clone(),
            label_selector: run_label,
        }))
        .await
        .unwrap();
    let streamed: Vec<cri::PodSandboxStats> = streamed
        .into_iter()
        .flat_map(|m| m.pod_sandbox_stats)
        .collect();
    assert_eq!(streamed.len(), 1);
    let other_linux = streamed[0].linux.as_ref().unwrap();
    assert_eq!(ids(&other_linux.containers), [elsewhere.as_str()]);

    world.client.stop_pod_sandbox(&other).await.unwrap();
    world.client.remove_pod_sandbox(&other).await.unwrap();
    world.clean_up().await;
}

/// The descriptors dockshim (`pid`) holds on files whose path names
/// container `id`: its cgroup files.
fn files_naming(pid: u32, id: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_s_cgroup_files_stay_open_between_lists_and_close_once_it_is_removed() {
    let world = World::start().await;
    let id = run(&world, "kept", "exec sleep 3600", &[]).await;
    let pid = world.dockshim.pid();
    let ours = cri::ContainerStatsFilter {
        id: id.clone(),
        ..cri::ContainerStatsFilter::default()
    };

    let listed = world
        .client
        .list_container_stats(Some(ours.clone()))
        .await
        .unwrap();
    assert_eq!(ids(&listed), [id.as_str()]);
    let kept = files_naming(pid, &id);
    assert!(kept > 0, "no cgroup file of {id} kept open");
    let listed = world
        .client
        .list_container_stats(Some(ours.clone()))
        .await
        .unwrap();
    assert!(listed[0].cpu.is_some() && listed[0].memory.is_some());
    assert_eq!(files_naming(pid, &id), kept, "a second list opened more");

    world.client.stop_container(&id, 0).await.unwrap();
    world.client.remove_container(&id).await.unwrap();
    let listed = world.client.list_container_stats(None).await.unwrap();
    assert!(!ids(&listed).contains(&id));
    assert_eq!(
        files_naming(pid, &id),
        0,
        "a removed container's files stay open"
    );
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_of_unknown_ids_are_not_found() {
    let world = World::start().await;
    let err = world
        .client
        .container_stats("0000deadbeef")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = world
        .client
        .pod_sandbox_stats("0000deadbeef")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // A sandbox's ID is no container's, and a container's no sandbox's.
    let err = world
        .client
        .container_stats(&world.sandbox_id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_warm_the_stats_calls_make_no_docker_call() {
    let proxy = DockerProxy::start();
    let world = World::start_with_options(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    })
    .await;
    let id = run(&world, "idle", "exec sleep 3600", &[]).await;
    // The first call asks dockerd for its cgroup setup and root directory.
    world.client.container_stats(&id).await.unwrap();
    // Let the index take in the start's events.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every dockshim's index inspects the containers other tests start at
    // the same time, so only what the stats calls could ask is counted:
    // this pod's containers, the daemon-wide endpoints and Docker's stats.
    for path in [
        id.as_str(),
        world.sandbox_id.as_str(),
        "/info",
        "/_ping",
        "/version",
        "/containers/json",
        "/images",
        "/system",
        "/stats",
    ] {
        proxy.delay(path, Duration::from_secs(2));
    }
    world.client.container_stats(&id).await.unwrap();
    world.client.list_container_stats(None).await.unwrap();
    world
        .client
        .pod_sandbox_stats(&world.sandbox_id)
        .await
        .unwrap();
    world.client.list_pod_sandbox_stats(None).await.unwrap();
    assert_eq!(proxy.delayed_requests(), 0);
    proxy.clear_delays();
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_described_and_a_running_container_s_cpu_is_listed() {
    let world = World::start().await;
    let id = run(&world, "counted", "exec sleep 3600", &[]).await;

    let described: cri::ListMetricDescriptorsResponse = world
        .client
        .call(
            "/runtime.v1.RuntimeService/ListMetricDescriptors",
            tonic::Request::new(cri::ListMetricDescriptorsRequest {}),
        )
        .await
        .unwrap();
    assert!(!described.descriptors.is_empty());
    let label_counts: HashMap<String, usize> = described
        .descriptors
        .iter()
        .map(|d| (d.name.clone(), d.label_keys.len()))
        .collect();
    assert_eq!(label_counts.len(), described.descriptors.len());
    assert!(label_counts.contains_key("container_cpu_usage_seconds_total"));

    let listed: cri::ListPodSandboxMetricsResponse = world
        .client
        .call(
            "/runtime.v1.RuntimeService/ListPodSandboxMetrics",
            tonic::Request::new(cri::ListPodSandboxMetricsRequest {}),
        )
        .await
        .unwrap();
    let pod = listed
        .pod_metrics
        .iter()
        .find(|p| p.pod_sandbox_id == world.sandbox_id)
        .expect("our pod's metrics");
    let container = pod
        .container_metrics
        .iter()
        .find(|c| c.container_id == id)
        .expect("the running container's metrics");
    let cpu = container
        .metrics
        .iter()
        .find(|m| m.name == "container_cpu_usage_seconds_total")
        .expect("its CPU time");
    assert_eq!(cpu.metric_type, cri::MetricType::Counter as i32);
    assert_eq!(cpu.label_values[0], "counted");
    for metric in pod
        .metrics
        .iter()
        .chain(pod.container_metrics.iter().flat_map(|c| &c.metrics))
    {
        assert_eq!(
            Some(&metric.label_values.len()),
            label_counts.get(&metric.name),
            "{metric:?}"
        );
    }

    let mut streamed = world
        .client
        .server_stream::<_, cri::StreamPodSandboxMetricsResponse>(
            "/runtime.v1.RuntimeService/StreamPodSandboxMetrics",
            cri::StreamPodSandboxMetricsRequest {},
        )
        .await
        .unwrap();
    let mut streamed_ids = Vec::new();
    while let Some(message) = streamed.message().await.unwrap() {
        streamed_ids.extend(
            message
                .pod_sandbox_metrics
                .into_iter()
                .map(|p| p.pod_sandbox_id),
        );
    }
    assert!(streamed_ids.contains(&world.sandbox_id), "{streamed_ids:?}");
    world.clean_up().await;
}
