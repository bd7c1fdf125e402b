//! Storage figures end to end, on whichever engine the tests are pointed
//! at (graph drivers and the containerd image store alike): the real
//! binary and the real dockerd, in host-network sandboxes
//! (`common::pod`). A container's writable layer after it writes 5 MiB,
//! before and after it stops, and ImageFsInfo after a pull. Where the
//! figures say the layers are is checked against the kernel's own view: the
//! overlay mounted as a running container's root filesystem. Needs root,
//! as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::busybox_image;
use common::pod::World;
use dockshim::api::v1 as cri;

/// What the writer puts in its writable layer.
const WRITTEN_BYTES: u64 = 5 << 20;
/// How long a writable layer's background walk, or an ImageFsInfo
/// refresh after a pull, gets.
const MEASURE_WAIT: Duration = Duration::from_secs(30);

fn value(v: Option<cri::UInt64Value>) -> u64 {
    v.expect("a figure").value
}

fn mountpoint(usage: &cri::FilesystemUsage) -> PathBuf {
    PathBuf::from(&usage.fs_id.as_ref().expect("a filesystem").mountpoint)
}

/// Creates and starts a container `name` running `script` in the world's
/// sandbox.
async fn run(world: &World, name: &str, script: &str) -> String {
    let config = world.config(name, &busybox_image(), script);
    let id = world.create(config).await.unwrap();
    world.client.start_container(&id).await.unwrap();
    id
}

/// The overlay mounted as the root filesystem of container `id`, as its
/// init process sees it: the upper directory and the lower ones.
fn root_overlay(id: &str) -> (PathBuf, Vec<PathBuf>) {
    let inspect = common::docker::get_json(&format!("/containers/{id}/json"));
    let pid = inspect["State"]["Pid"]
        .as_u64()
        .expect("a running container");
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo
        .lines()
        .rev()
        .find(|line| line.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in {mountinfo}"));
    let options = root
        .split_once(" - overlay ")
        .unwrap_or_else(|| panic!("the root is not an overlay: {root}"))
        .1;
    let option = |name: &str| {
        options
            .split([' ', ','])
            .find_map(|o| o.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {root}"))
            .to_owned()
    };
    let lower = option("lowerdir=").split(':').map(PathBuf::from).collect();
    (PathBuf::from(option("upperdir=")), lower)
}

/// The directory dockshim should name for a writable layer at `upper`: a
/// containerd snapshotter's directory (`<dir>/snapshots/<n>/fs`), or else
/// dockerd's root directory, which holds a graph driver's layers.
fn layers_home(upper: &Path) -> PathBuf {
    let snapshots = upper.parent().and_then(Path::parent);
    match snapshots {
        Some(dir) if dir.file_name().is_some_and(|name| name == "snapshots") => {
            dir.parent().unwrap().to_owned()
        }
        _ => {
            let info = common::docker::get_json("/info");
            PathBuf::from(info["DockerRootDir"].as_str().unwrap())
        }
    }
}

/// Polls ContainerStats of `id` until its writable layer has at least
/// `bytes`.
async fn layer_with(world: &World, id: &str, bytes: u64) -> cri::FilesystemUsage {
    let deadline = tokio::time::Instant::now() + MEASURE_WAIT;
    let mut last = None;
    loop {
        let stats = world.client.container_stats(id).await.unwrap();
        if let Some(layer) = stats.writable_layer {
            if value(layer.used_bytes) >= bytes {
                return layer;
            }
            last = Some(layer);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no writable layer of {bytes} bytes after {MEASURE_WAIT:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_s_5_mib_write_shows_in_its_writable_layer_also_once_stopped() {
    let world = World::start().await;
    let idle = run(&world, "idle", "exec sleep 3600").await;
    let writer = run(&world, "writer", "exec sleep 3600").await;
    let written = world
        .client
        .exec_sync(
            &writer,
            &["sh", "-c", "dd if=/dev/zero of=/data bs=1M count=5 && sync"],
            30,
        )
        .await
        .unwrap();
    assert_eq!(written.exit_code, 0, "{written:?}");

    // The first call asks for the walk, so it sees the written file.
    let layer = layer_with(&world, &writer, WRITTEN_BYTES).await;
    let idle_layer = layer_with(&world, &idle, 0).await;
    assert!(
        value(idle_layer.used_bytes) < WRITTEN_BYTES,
        "{idle_layer:?}"
    );
    assert!(
        value(layer.inodes_used) > value(idle_layer.inodes_used),
        "the file's inode: {layer:?} against {idle_layer:?}"
    );
    let (upper, _) = root_overlay(&writer);
    assert_eq!(
        mountpoint(&layer),
        layers_home(&upper),
        "the layer is at {}",
        upper.display()
    );
    assert_eq!(mountpoint(&idle_layer), mountpoint(&layer));

    world.client.stop_container(&writer, 10).await.unwrap();
    let stopped = world.client.container_stats(&writer).await.unwrap();
    let stopped_layer = stopped.writable_layer.expect("the stopped writer's layer");
    assert!(
        value(stopped_layer.used_bytes) >= WRITTEN_BYTES,
        "{stopped_layer:?}"
    );
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_fs_info_counts_a_pulled_image_where_the_engine_keeps_it() {
    let world = World::start().await;
    let image = busybox_image();
    world.client.pull_image(&image, None).await.unwrap();
    let size = world
        .client
        .image_status(&image, false)
        .await
        .unwrap()
        .image
        .expect("the pulled image")
        .size;
    assert!(size > 0);

    // The pull asked for a refresh; an engine that already had the image
    // counts it at once.
    let deadline = tokio::time::Instant::now() + MEASURE_WAIT;
    let info = loop {
        let info = world.client.image_fs_info().await.unwrap();
        let [images] = info.image_filesystems.as_slice() else {
            panic!("one image filesystem expected: {info:?}");
        };
        if value(images.used_bytes) >= size {
            break info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{info:?} does not count the {size} bytes of {image}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let images = &info.image_filesystems[0];
    assert!(value(images.inodes_used) > 0, "{images:?}");
    let [containers] = info.container_filesystems.as_slice() else {
        panic!("one container filesystem expected: {info:?}");
    };
    assert!(containers.used_bytes.is_some(), "{containers:?}");

    // A container of the image runs on the image's unpacked layers and
    // writes into its own layer: both are where the figures say.
    let id = run(&world, "reader", "exec sleep 3600").await;
    let (upper, lower) = root_overlay(&id);
    let images_dir = mountpoint(images);
    for dir in &lower {
        assert!(
            dir.starts_with(&images_dir),
            "the image layer {} is not under {}",
            dir.display(),
            images_dir.display()
        );
    }
    assert_eq!(
        mountpoint(containers),
        layers_home(&upper),
        "the writable layer is at {}",
        upper.display()
    );
    assert_eq!(images_dir, mountpoint(containers));
    world.clean_up().await;
}
