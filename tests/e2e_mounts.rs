//! Read-only and image mounts, checked inside the running container on the
//! engine under test: whether a submount under a read-only host path can
//! be written, whether a mounted image can be read and not written, and
//! how ContainerStatus reports it. Where the engine (at the API version
//! dockshim speaks with it) or the kernel cannot give a kind of mount,
//! the test prints why it skips the effect and checks that the refusal
//! says so. Needs root (containers, and a tmpfs mounted on the host), as
//! `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::busybox_image;
use common::docker::get_json;
use common::pod::World;
use dockshim::api::v1 as cri;
use dockshim::api::v1::MountPropagation;
use dockshim::docker::{ApiVersion, MAX_API_VERSION};
use tempfile::TempDir;
use tonic::Code;

/// A main process that runs until stopped and exits at once on SIGTERM.
const RUN_UNTIL_STOPPED: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";
/// Seconds an exec inside a container may take.
const EXEC_TIMEOUT_SECS: i64 = 10;
/// What a write to a read-only mount fails with.
const READ_ONLY_FS: &str = "Read-only file system";
/// The API that brought `ReadOnlyNonRecursive` and `ReadOnlyForceRecursive`
/// (Docker Engine API version history, v1.44).
const API_READ_ONLY_MOUNT_KINDS: ApiVersion = ApiVersion::new(1, 44);
/// The API that brought mounts of `Type: image` (version history, v1.48).
const API_IMAGE_MOUNTS: ApiVersion = ApiVersion::new(1, 48);
/// The first kernel with `mount_setattr(2)`.
const KERNEL_MOUNT_SETATTR: (u32, u32) = (5, 12);

/// What the engine under test is, read from dockerd itself.
struct EngineUnderTest {
    version: String,
    /// The API dockshim speaks with it: the engine's newest or dockshim's,
    /// whichever is older.
    api: ApiVersion,
    kernel: String,
}

impl EngineUnderTest {
    fn read() -> EngineUnderTest {
        let version = get_json("/version");
        let engine_api = ApiVersion::parse(version["ApiVersion"].as_str().unwrap()).unwrap();
        let info = get_json("/info");
        EngineUnderTest {
            version: version["Version"].as_str().unwrap().to_owned(),
            api: engine_api.min(MAX_API_VERSION),
            kernel: info["KernelVersion"].as_str().unwrap().to_owned(),
        }
    }

    /// Why a mount cannot be recursively read-only here, if it cannot.
    fn no_recursive_read_only(&self) -> Option<String> {
        if self.api < API_READ_ONLY_MOUNT_KINDS {
            return Some(format!(
                "Docker {} at API {} has no recursively read-only mounts",
                self.version, self.api
            ));
        }
        let mut numbers = self
            .kernel
            .split(|c: char| !c.is_ascii_digit())
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let kernel = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        (kernel < KERNEL_MOUNT_SETATTR)
            .then(|| format!("Linux {} has no mount_setattr(2)", self.kernel))
    }

    /// Why an image cannot be mounted here, if it cannot.
    fn no_image_mounts(&self) -> Option<String> {
        (self.api < API_IMAGE_MOUNTS).then(|| {
            format!(
                "Docker {} at API {} cannot mount images",
                self.version, self.api
            )
        })
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// Whether the host's mount table has a mount at `path`.
fn host_has_mount_at(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    table
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

/// A temporary directory holding a file `top` and a tmpfs mounted at
/// `sub`; on drop the tmpfs is unmounted (lazily if busy) before the
/// directory is removed.
struct SubmountedDir {
    dir: TempDir,
}

impl SubmountedDir {
    fn new() -> SubmountedDir {
        let dir = tempfile::Builder::new()
            .prefix("dockshim-submount")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("top"), "top\n").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let submounted = SubmountedDir { dir };
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "tmpfs",
                sub.to_str().unwrap(),
            ],
        );
        submounted
    }

    fn host_path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn sub(&self) -> std::path::PathBuf {
        self.dir.path().join("sub")
    }
}

impl Drop for SubmountedDir {
    fn drop(&mut self) {
        let sub = self.sub();
        let _ = Command::new("umount").arg(&sub).output();
        if host_has_mount_at(&sub) {
            let _ = Command::new("umount").arg("-l").arg(&sub).output();
        }
    }
}

fn read_only(host_path: &str, container_path: &str) -> cri::Mount {
    cri::Mount {
        host_path: host_path.to_owned(),
        container_path: container_path.to_owned(),
        readonly: true,
        propagation: MountPropagation::PropagationPrivate as i32,
        ..cri::Mount::default()
    }
}

fn image_mount(image: &str, container_path: &str, sub_path: &str) -> cri::Mount {
    cri::Mount {
        container_path: container_path.to_owned(),
        readonly: true,
        image: Some(cri::ImageSpec {
            image: image.to_owned(),
            ..cri::ImageSpec::default()
        }),
        image_sub_path: sub_path.to_owned(),
        ..cri::Mount::default()
    }
}

/// Creates and starts a busybox container `name` with `mounts`; the error
/// of whichever step failed.
async fn try_run(
    world: &World,
    name: &str,
    mounts: Vec<cri::Mount>,
) -> Result<String, tonic::Status> {
    let mut config = world.config(name, &busybox_image(), RUN_UNTIL_STOPPED);
    config.mounts = mounts;
    let id = world.create(config).await?;
    world.client.start_container(&id).await?;
    Ok(id)
}

async fn run_container(world: &World, name: &str, mounts: Vec<cri::Mount>) -> String {
    try_run(world, name, mounts)
        .await
        .unwrap_or_else(|status| panic!("{name}: {status:?}"))
}

/// `sh -c script` inside container `id`: exit code and stderr.
async fn sh(world: &World, id: &str, script: &str) -> (i32, String) {
    let reply = world
        .client
        .exec_sync(id, &["sh", "-c", script], EXEC_TIMEOUT_SECS)
        .await
        .unwrap_or_else(|status| panic!("exec {script:?} in {id}: {status:?}"));
    (
        reply.exit_code,
        String::from_utf8_lossy(&reply.stderr).into_owned(),
    )
}

/// Asserts that `script` succeeds inside container `id`.
async fn succeeds(world: &World, id: &str, script: &str) {
    let (code, stderr) = sh(world, id, script).await;
    assert_eq!(code, 0, "{script:?} in {id}: {stderr}");
}

/// Asserts that `script`, a write, fails on a read-only file system.
async fn is_read_only(world: &World, id: &str, script: &str) {
    let (code, stderr) = sh(world, id, script).await;
    assert_ne!(code, 0, "{script:?} in {id} succeeded");
    assert!(stderr.contains(READ_ONLY_FS), "{script:?}: {stderr:?}");
}

/// The number of containers of `world`'s test run, for checking that a
/// refusal left nothing behind.
async fn containers_of_the_run(world: &World) -> usize {
    world
        .client
        .list_containers(None)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.pod_sandbox_id == world.sandbox_id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_keeps_a_submount_writable() {
    let world = World::start().await;
    let dir = SubmountedDir::new();
    let id = run_container(
        &world,
        "non-recursive",
        vec![read_only(&dir.host_path(), "/ro")],
    )
    .await;

    succeeds(&world, &id, "test \"$(cat /ro/top)\" = top").await;
    is_read_only(&world, &id, "touch /ro/new").await;
    succeeds(&world, &id, "echo inside > /ro/sub/written").await;
    assert_eq!(
        std::fs::read_to_string(dir.sub().join("written")).unwrap(),
        "inside\n"
    );
    let status = world.status(&id).await;
    let mount = status
        .mounts
        .iter()
        .find(|m| m.container_path == "/ro")
        .unwrap_or_else(|| panic!("no /ro in {:?}", status.mounts));
    assert_eq!(
        (mount.host_path.as_str(), mount.readonly),
        (&*dir.host_path(), true)
    );
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursively_read_only_mount_makes_its_submount_read_only() {
    let world = World::start().await;
    let engine = EngineUnderTest::read();
    let dir = SubmountedDir::new();
    let mount = cri::Mount {
        recursive_read_only: true,
        ..read_only(&dir.host_path(), "/rro")
    };

    if let Some(reason) = engine.no_recursive_read_only() {
        eprintln!("skipped: {reason}");
        let status = try_run(&world, "recursive", vec![mount]).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status
                .message()
                .starts_with("mounts[0].recursive_read_only: Docker ")
                && status.message().contains(&engine.version),
            "{status:?}"
        );
        assert_eq!(containers_of_the_run(&world).await, 0);
        world.clean_up().await;
        return;
    }
    let id = run_container(&world, "recursive", vec![mount]).await;
    succeeds(&world, &id, "test \"$(cat /rro/top)\" = top").await;
    is_read_only(&world, &id, "touch /rro/new").await;
    is_read_only(&world, &id, "touch /rro/sub/new").await;
    assert!(!dir.sub().join("new").exists());
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_read_only_with_writes_or_propagation_is_refused() {
    let world = World::start().await;
    let dir = tempfile::Builder::new()
        .prefix("dockshim-rro")
        .tempdir()
        .unwrap();
    let host_path = dir.path().display().to_string();
    let cases = [
        cri::Mount {
            readonly: false,
            recursive_read_only: true,
            ..read_only(&host_path, "/rro")
        },
        cri::Mount {
            recursive_read_only: true,
            propagation: MountPropagation::PropagationHostToContainer as i32,
            ..read_only(&host_path, "/rro")
        },
        cri::Mount {
            recursive_read_only: true,
            propagation: MountPropagation::PropagationBidirectional as i32,
            ..read_only(&host_path, "/rro")
        },
    ];
    for mount in cases {
        let status = try_run(&world, "refused", vec![mount.clone()])
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{mount:?}: {status:?}"
        );
        assert!(
            status
                .message()
                .starts_with("mounts[0].recursive_read_only: a recursively read-only mount must"),
            "{status:?}"
        );
    }
    assert_eq!(containers_of_the_run(&world).await, 0);
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_volume_is_mounted_read_only_and_reported_by_its_image() {
    let world = World::start().await;
    let engine = EngineUnderTest::read();
    let image = busybox_image();
    let mounts = vec![
        image_mount(&image, "/img", ""),
        image_mount(&image, "/img-etc", "etc"),
    ];

    if let Some(reason) = engine.no_image_mounts() {
        eprintln!("skipped: {reason}");
        let status = try_run(&world, "image-volume", mounts).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().starts_with("mounts[0].image: Docker ")
                && status.message().contains(&engine.version),
            "{status:?}"
        );
        assert_eq!(containers_of_the_run(&world).await, 0);
        world.clean_up().await;
        return;
    }
    let id = run_container(&world, "image-volume", mounts).await;
    succeeds(&world, &id, "ls /img/bin/busybox").await;
    succeeds(
        &world,
        &id,
        "test -f /img-etc/passwd && test ! -e /img-etc/bin",
    )
    .await;
    is_read_only(&world, &id, "touch /img/new").await;
    is_read_only(&world, &id, "touch /img-etc/new").await;

    let status = world.status(&id).await;
    for path in ["/img", "/img-etc"] {
        let mount = status
            .mounts
            .iter()
            .find(|m| m.container_path == path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", status.mounts));
        assert_eq!(
            (
                mount.image.as_ref().map(|spec| spec.image.as_str()),
                mount.host_path.as_str(),
                mount.readonly
            ),
            (Some(image.as_str()), "", true),
            "{mount:?}"
        );
    }
    world.clean_up().await;
}
