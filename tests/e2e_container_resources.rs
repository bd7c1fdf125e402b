//! Container resources, mounts and devices, checked where they matter:
//! inside the running container on the real dockerd — its cgroup files,
//! `/proc`, what it can read, write and mount — and in ContainerStatus.
//! UpdateContainerResources is checked the same way on a running
//! container. Refusals are checked to be clear (code and field) and to
//! leave no container behind. Where the host cannot give a setting (no
//! swap accounting, no loop device, no mount rights) the test prints why
//! it skips the effect. Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::busybox_image;
use common::pod::{World, RUN_LABEL};
use dockshim::api::v1 as cri;
use dockshim::api::v1::MountPropagation;
use tempfile::TempDir;
use tonic::Code;

/// A main process that runs until stopped and exits at once on SIGTERM.
const RUN_UNTIL_STOPPED: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";
/// As [`RUN_UNTIL_STOPPED`], after noting the main process's OOM score
/// adjustment in `/tmp/oom_score_adj`.
const NOTE_OOM_SCORE_ADJ: &str = "cat /proc/self/oom_score_adj > /tmp/oom_score_adj; \
     trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";
/// Seconds an exec inside a container may take.
const EXEC_TIMEOUT_SECS: i64 = 10;
/// What [`read_files`] gives for a file the container does not have.
const ABSENT: &str = "<absent>";
const MIB: i64 = 1024 * 1024;
/// No container has this ID.
const MISSING_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The cgroup version dockerd runs containers under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cgroup {
    V1,
    V2,
}

impl Cgroup {
    fn of_dockerd() -> Cgroup {
        match common::docker::get_json("/info")["CgroupVersion"].as_str() {
            Some("2") => Cgroup::V2,
            _ => Cgroup::V1,
        }
    }

    /// Paths inside the container of its own cgroup files: Docker mounts
    /// each v1 hierarchy, or the v2 one in a private cgroup namespace, with
    /// the container's cgroup at its root.
    fn memory_limit(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            Cgroup::V2 => "/sys/fs/cgroup/memory.max",
        }
    }

    fn swap_limit(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
            Cgroup::V2 => "/sys/fs/cgroup/memory.swap.max",
        }
    }

    fn cpu_weight(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/cpu/cpu.shares",
            Cgroup::V2 => "/sys/fs/cgroup/cpu.weight",
        }
    }

    fn cpuset_cpus(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/cpuset/cpuset.cpus",
            Cgroup::V2 => "/sys/fs/cgroup/cpuset.cpus",
        }
    }

    fn cpuset_mems(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/cpuset/cpuset.mems",
            Cgroup::V2 => "/sys/fs/cgroup/cpuset.mems",
        }
    }

    fn pids_max(self) -> &'static str {
        match self {
            Cgroup::V1 => "/sys/fs/cgroup/pids/pids.max",
            Cgroup::V2 => "/sys/fs/cgroup/pids.max",
        }
    }

    /// The CPU quota and period as one line, `quota period` as v2's
    /// `cpu.max` has them.
    async fn cpu_max(self, world: &World, id: &str) -> String {
        match self {
            Cgroup::V1 => read_files(
                world,
                id,
                &[
                    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
                ],
            )
            .await
            .join(" "),
            Cgroup::V2 => read_files(world, id, &["/sys/fs/cgroup/cpu.max"]).await[0].clone(),
        }
    }

    /// Whether `value` read from the weight file is what Docker writes for
    /// `shares`. On v2 runc converts shares to a weight; runc releases
    /// differ in the formula, so either is accepted.
    fn weight_matches(self, value: &str, shares: u64) -> bool {
        match self {
            Cgroup::V1 => value == shares.to_string(),
            Cgroup::V2 => {
                let linear = 1 + (shares - 2) * 9999 / 262_142;
                let log = (shares as f64).log2();
                let curved = 10f64
                    .powf((log * log + 125.0 * log) / 612.0 - 7.0 / 34.0)
                    .ceil() as u64;
                [linear, curved].iter().any(|w| value == w.to_string())
            }
        }
    }

    /// The swap file's content for `memory` plus `swap` bytes: v1 holds
    /// the total, v2 the swap alone.
    fn swap_value(self, memory: i64, swap: i64) -> String {
        match self {
            Cgroup::V1 => (memory + swap).to_string(),
            Cgroup::V2 => swap.to_string(),
        }
    }
}

/// `world`'s busybox container `name` running `script`, with `resources`.
fn with_resources(
    world: &World,
    name: &str,
    script: &str,
    resources: cri::LinuxContainerResources,
) -> cri::ContainerConfig {
    let mut config = world.config(name, &busybox_image(), script);
    config.linux.as_mut().unwrap().resources = Some(resources);
    config
}

/// The contents of `paths` in the running container `id`, trimmed, one
/// exec for all; [`ABSENT`] for a file it does not have.
async fn read_files(world: &World, id: &str, paths: &[&str]) -> Vec<String> {
    let script = "for f in \"$@\"; do if [ -e \"$f\" ]; then cat \"$f\"; \
                  else echo '<absent>'; fi; done";
    let mut cmd = vec!["sh", "-c", script, "sh"];
    cmd.extend_from_slice(paths);
    let out = exec(world, id, &cmd).await;
    assert_eq!(out.exit_code, 0, "reading {paths:?}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<String> = text.lines().map(|line| line.trim().to_owned()).collect();
    assert_eq!(lines.len(), paths.len(), "{paths:?}: {text:?}");
    lines
}

async fn exec(world: &World, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
    world
        .client
        .exec_sync(id, cmd, EXEC_TIMEOUT_SECS)
        .await
        .unwrap_or_else(|status| panic!("ExecSync {cmd:?}: {status:?}"))
}

/// A shell command's exit code and stderr inside the container.
async fn sh(world: &World, id: &str, script: &str) -> (i32, String) {
    let out = exec(world, id, &["sh", "-c", script]).await;
    (
        out.exit_code,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn create_and_start(world: &World, config: cri::ContainerConfig) -> String {
    let name = config.metadata.as_ref().unwrap().name.clone();
    let id = world
        .create(config)
        .await
        .unwrap_or_else(|status| panic!("CreateContainer {name}: {status:?}"));
    world
        .client
        .start_container(&id)
        .await
        .unwrap_or_else(|status| panic!("StartContainer {name}: {status:?}"));
    id
}

fn linux_resources(status: &cri::ContainerStatus) -> cri::LinuxContainerResources {
    status
        .resources
        .as_ref()
        .and_then(|resources| resources.linux.clone())
        .expect("ContainerStatus.resources.linux")
}

/// The Docker names of the run's containers whose name holds `part`.
fn docker_names_with(world: &World, part: &str) -> Vec<String> {
    let filter = format!("label={RUN_LABEL}={}", world.run_id);
    let out = Command::new("docker")
        .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker ps: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|name| name.contains(part))
        .map(str::to_owned)
        .collect()
}

/// Whether `/proc/self/mountinfo` of the test has a mount at `path`.
fn host_has_mount_at(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    table
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// A temporary directory bind-mounted onto itself with a propagation of
/// its own (`--make-rshared`, `--make-rprivate`), unmounted with
/// everything below it on drop, before the directory is removed.
struct BindMount {
    dir: TempDir,
}

impl BindMount {
    fn new(make: &str) -> BindMount {
        let dir = tempfile::Builder::new()
            .prefix("dockshim-mount")
            .tempdir()
            .unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        run("mount", &["--bind", &path, &path]);
        let mount = BindMount { dir };
        run("mount", &[make, &path]);
        mount
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn host_path(&self) -> String {
        self.path().display().to_string()
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let path = self.dir.path();
        let _ = Command::new("umount").arg("-R").arg(path).output();
        if host_has_mount_at(path) {
            let _ = Command::new("umount")
                .arg("-R")
                .arg("-l")
                .arg(path)
                .output();
        }
    }
}

fn bind(host_path: &str, container_path: &str, propagation: MountPropagation) -> cri::Mount {
    cri::Mount {
        host_path: host_path.to_owned(),
        container_path: container_path.to_owned(),
        propagation: propagation as i32,
        ..cri::Mount::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_reach_the_cgroup_and_status_and_refused_ones_create_nothing() {
    let world = World::start().await;
    let cgroup = Cgroup::of_dockerd();
    let asked = cri::LinuxContainerResources {
        cpu_shares: 512,
        cpu_quota: 50_000,
        cpu_period: 100_000,
        cpuset_cpus: "0".to_owned(),
        cpuset_mems: "0".to_owned(),
        memory_limit_in_bytes: 64 * MIB,
        memory_swap_limit_in_bytes: 96 * MIB,
        oom_score_adj: 500,
        hugepage_limits: vec![cri::HugepageLimit {
            page_size: "2MB".to_owned(),
            limit: 0,
        }],
        unified: HashMap::from([("pids.max".to_owned(), "64".to_owned())]),
    };
    let id = create_and_start(
        &world,
        with_resources(&world, "limited", NOTE_OOM_SCORE_ADJ, asked),
    )
    .await;

    let files = read_files(
        &world,
        &id,
        &[
            cgroup.cpu_weight(),
            cgroup.cpuset_cpus(),
            cgroup.cpuset_mems(),
            cgroup.memory_limit(),
            cgroup.swap_limit(),
            "/tmp/oom_score_adj",
            cgroup.pids_max(),
        ],
    )
    .await;
    assert!(
        cgroup.weight_matches(&files[0], 512),
        "{cgroup:?}: {files:?}"
    );
    assert_eq!(&files[1..4], ["0", "0", &(64 * MIB).to_string()]);
    if files[4] == ABSENT {
        eprintln!(
            "skipping the swap limit's effect: this kernel has no swap accounting \
             ({} is absent)",
            cgroup.swap_limit()
        );
    } else {
        assert_eq!(
            files[4],
            cgroup.swap_value(64 * MIB, 32 * MIB),
            "{cgroup:?}"
        );
    }
    assert_eq!(files[5], "500", "the main process's oom_score_adj");
    assert_eq!(files[6], "64", "{}", cgroup.pids_max());
    assert_eq!(cgroup.cpu_max(&world, &id).await, "50000 100000");
    let exec_oom = read_files(&world, &id, &["/proc/self/oom_score_adj"]).await;
    assert_eq!(exec_oom, ["500"], "an exec'd process's oom_score_adj");

    let status = linux_resources(&world.status(&id).await);
    assert_eq!(
        (
            status.cpu_shares,
            status.cpu_quota,
            status.cpu_period,
            status.cpuset_cpus.as_str(),
            status.cpuset_mems.as_str(),
            status.memory_limit_in_bytes,
            status.memory_swap_limit_in_bytes,
            status.oom_score_adj
        ),
        (512, 50_000, 100_000, "0", "0", 64 * MIB, 96 * MIB, 500)
    );
    assert_eq!(
        status.unified,
        HashMap::from([("pids.max".to_owned(), "64".to_owned())])
    );

    let cpus = std::thread::available_parallelism().unwrap().get();
    let absent_cpu = (cpus + 5).to_string();
    type Edit = Box<dyn Fn(&mut cri::LinuxContainerResources)>;
    let refused: Vec<(Edit, Code, &str)> = vec![
        (
            Box::new(|r| r.cpu_shares = -2),
            Code::InvalidArgument,
            "cpu_shares: ",
        ),
        (
            Box::new(|r| r.memory_limit_in_bytes = -1),
            Code::InvalidArgument,
            "memory_limit_in_bytes: ",
        ),
        (
            Box::new(|r| r.cpuset_cpus = "all".to_owned()),
            Code::InvalidArgument,
            "cpuset_cpus: ",
        ),
        (
            Box::new(|r| r.oom_score_adj = 1001),
            Code::InvalidArgument,
            "oom_score_adj: ",
        ),
        (
            Box::new(|r| {
                r.memory_limit_in_bytes = 64 * MIB;
                r.memory_swap_limit_in_bytes = 32 * MIB;
            }),
            Code::InvalidArgument,
            "memory_swap_limit_in_bytes: ",
        ),
        (
            Box::new(|r| {
                r.hugepage_limits = vec![cri::HugepageLimit {
                    page_size: "2MB".to_owned(),
                    limit: 2 << 20,
                }]
            }),
            Code::Unimplemented,
            "hugepage_limits[\"2MB\"]: not supported with Docker",
        ),
        (
            Box::new(|r| r.unified = HashMap::from([("pids.max".to_owned(), "-1".to_owned())])),
            Code::InvalidArgument,
            "unified[\"pids.max\"]: \"-1\" is neither",
        ),
        (
            Box::new(|r| r.unified = HashMap::from([("pids.max".to_owned(), "0".to_owned())])),
            Code::Unimplemented,
            "unified[\"pids.max\"]: not supported with Docker",
        ),
        (
            Box::new(|r| {
                r.unified = HashMap::from([("memory.high".to_owned(), "1000".to_owned())])
            }),
            Code::Unimplemented,
            "unified[\"memory.high\"]: not supported with Docker",
        ),
        (
            Box::new(move |r| r.cpuset_cpus = absent_cpu.clone()),
            Code::InvalidArgument,
            "Requested CPUs are not available",
        ),
    ];
    for (number, (edit, code, message)) in refused.into_iter().enumerate() {
        let mut resources = cri::LinuxContainerResources::default();
        edit(&mut resources);
        let name = format!("refused-{number}");
        let config = with_resources(&world, &name, RUN_UNTIL_STOPPED, resources.clone());
        let err = world.create(config).await.unwrap_err();
        assert_eq!(err.code(), code, "{resources:?}: {err:?}");
        assert!(err.message().contains(message), "{resources:?}: {err:?}");
    }
    assert_eq!(docker_names_with(&world, "refused-"), Vec::<String>::new());
    let listed = world.client.list_containers(None).await.unwrap();
    assert!(
        listed
            .iter()
            .all(|c| !c.metadata.as_ref().unwrap().name.starts_with("refused-")),
        "{listed:?}"
    );
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_container_resources_changes_a_running_container_or_nothing() {
    let world = World::start().await;
    let cgroup = Cgroup::of_dockerd();
    let created = cri::LinuxContainerResources {
        cpu_shares: 512,
        cpu_quota: 50_000,
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 * MIB,
        oom_score_adj: 0,
        unified: HashMap::from([("pids.max".to_owned(), "64".to_owned())]),
        ..cri::LinuxContainerResources::default()
    };
    let mut config = with_resources(&world, "resized", RUN_UNTIL_STOPPED, created.clone());
    // A PID namespace of its own, so that its main process is PID 1.
    let security = config.linux.as_mut().unwrap().security_context.as_mut();
    security.unwrap().namespace_options.as_mut().unwrap().pid =
        cri::NamespaceMode::Container as i32;
    let id = create_and_start(&world, config).await;
    let update = |linux: cri::LinuxContainerResources| cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(linux),
        ..cri::UpdateContainerResourcesRequest::default()
    };
    let resized = cri::LinuxContainerResources {
        cpu_shares: 256,
        cpu_quota: 25_000,
        memory_limit_in_bytes: 128 * MIB,
        cpuset_cpus: "0".to_owned(),
        oom_score_adj: 500,
        unified: HashMap::from([("pids.max".to_owned(), "128".to_owned())]),
        ..created.clone()
    };
    world
        .client
        .update_container_resources(update(resized.clone()))
        .await
        .unwrap();

    let paths = [
        cgroup.memory_limit(),
        cgroup.cpu_weight(),
        cgroup.cpuset_cpus(),
        cgroup.pids_max(),
        "/proc/1/oom_score_adj",
    ];
    let applied = read_files(&world, &id, &paths).await;
    assert_eq!(applied[0], (128 * MIB).to_string());
    assert!(cgroup.weight_matches(&applied[1], 256), "{applied:?}");
    assert_eq!(&applied[2..], ["0", "128", "500"]);
    assert_eq!(cgroup.cpu_max(&world, &id).await, "25000 100000");
    let (code, stderr) = sh(
        &world,
        &id,
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm)\" = sleep ] && \
         [ \"$(cat $p/oom_score_adj)\" != 500 ] && exit 1; done; exit 0",
    )
    .await;
    assert_eq!(
        code, 0,
        "a sleep child kept its old oom_score_adj: {stderr}"
    );
    let status = linux_resources(&world.status(&id).await);
    assert_eq!(
        (
            status.memory_limit_in_bytes,
            status.cpu_shares,
            status.cpu_quota,
            status.cpu_period,
            status.cpuset_cpus.as_str(),
            status.unified.get("pids.max").map(String::as_str),
        ),
        (128 * MIB, 256, 25_000, 100_000, "0", Some("128"))
    );
    // Docker keeps the value the container was created with; the status
    // reports the one the main process has now.
    assert_eq!(status.oom_score_adj, 500);

    // Lifting the process limit, and a negative score, which only a host
    // granting CAP_SYS_RESOURCE allows.
    let lowered = world
        .client
        .update_container_resources(update(cri::LinuxContainerResources {
            oom_score_adj: -5,
            unified: HashMap::from([("pids.max".to_owned(), "max".to_owned())]),
            ..resized.clone()
        }))
        .await;
    let now = read_files(&world, &id, &[cgroup.pids_max(), "/proc/1/oom_score_adj"]).await;
    assert_eq!(now[0], "max");
    match lowered {
        Ok(_) => assert_eq!(now[1], "-5"),
        Err(err) => {
            eprintln!(
                "skipping a negative oom_score_adj's effect: {}",
                err.message()
            );
            assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
            assert!(
                err.message()
                    .starts_with("oom_score_adj: cannot give -5 to process")
                    && err.message().contains("CAP_SYS_RESOURCE"),
                "{err:?}"
            );
            assert_eq!(now[1], "500");
        }
    }
    world
        .client
        .update_container_resources(update(resized.clone()))
        .await
        .unwrap();

    let bigger = cri::LinuxContainerResources {
        memory_limit_in_bytes: 256 * MIB,
        cpu_quota: 75_000,
        oom_score_adj: 600,
        ..resized.clone()
    };
    let refused = [
        (
            update(cri::LinuxContainerResources {
                hugepage_limits: vec![cri::HugepageLimit {
                    page_size: "2MB".to_owned(),
                    limit: 2 << 20,
                }],
                ..bigger.clone()
            }),
            Code::Unimplemented,
            "hugepage_limits[\"2MB\"]: not supported with Docker",
        ),
        (
            update(cri::LinuxContainerResources {
                unified: HashMap::from([("pids.max".to_owned(), "lots".to_owned())]),
                ..bigger.clone()
            }),
            Code::InvalidArgument,
            "unified[\"pids.max\"]: \"lots\"",
        ),
        (
            update(cri::LinuxContainerResources {
                oom_score_adj: 1001,
                ..bigger.clone()
            }),
            Code::InvalidArgument,
            "oom_score_adj: 1001",
        ),
        (
            update(cri::LinuxContainerResources {
                memory_limit_in_bytes: 0,
                ..bigger.clone()
            }),
            Code::Unimplemented,
            "memory_limit_in_bytes: not supported with Docker",
        ),
        (
            update(cri::LinuxContainerResources {
                cpu_shares: -1,
                ..bigger.clone()
            }),
            Code::InvalidArgument,
            "cpu_shares: -1 is negative",
        ),
        (
            cri::UpdateContainerResourcesRequest {
                windows: Some(cri::WindowsContainerResources::default()),
                ..update(bigger.clone())
            },
            Code::InvalidArgument,
            "windows: ",
        ),
        (
            cri::UpdateContainerResourcesRequest {
                annotations: HashMap::from([("io.example/x".to_owned(), "1".to_owned())]),
                ..update(bigger.clone())
            },
            Code::Unimplemented,
            "annotations[\"io.example/x\"]: not supported with Docker",
        ),
        (
            cri::UpdateContainerResourcesRequest {
                linux: None,
                ..update(bigger.clone())
            },
            Code::InvalidArgument,
            "linux",
        ),
    ];
    for (request, code, message) in refused {
        let err = world
            .client
            .update_container_resources(request.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{request:?}: {err:?}");
        assert!(err.message().contains(message), "{request:?}: {err:?}");
    }
    assert_eq!(read_files(&world, &id, &paths).await, applied);
    assert_eq!(cgroup.cpu_max(&world, &id).await, "25000 100000");
    assert_eq!(
        linux_resources(&world.status(&id).await).memory_limit_in_bytes,
        128 * MIB
    );

    let err = world
        .client
        .update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: MISSING_ID.to_owned(),
            linux: Some(resized),
            ..cri::UpdateContainerResourcesRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_and_devices_behave_inside_the_container_as_asked() {
    let world = World::start().await;
    let writable = tempfile::Builder::new()
        .prefix("dockshim-rw")
        .tempdir()
        .unwrap();
    let read_only = tempfile::Builder::new()
        .prefix("dockshim-ro")
        .tempdir()
        .unwrap();
    std::fs::write(read_only.path().join("kept"), "kept\n").unwrap();
    let file = writable.path().join("hostfile");
    std::fs::write(&file, "from the host\n").unwrap();
    let missing: PathBuf = writable.path().join("absent/deeper");
    let host_to_container = BindMount::new("--make-rshared");
    std::fs::create_dir(host_to_container.path().join("sub")).unwrap();
    let bidirectional = BindMount::new("--make-rshared");
    std::fs::create_dir(bidirectional.path().join("inner")).unwrap();
    let private = BindMount::new("--make-rprivate");
    // A link on the node's root mount to the shared mount: the mount that
    // counts is the one the link leads to.
    let link = writable.path().join("link-to-shared");
    std::os::unix::fs::symlink(bidirectional.path(), &link).unwrap();

    let mut config = world.config("mounts", &busybox_image(), RUN_UNTIL_STOPPED);
    config.mounts = vec![
        bind(
            writable.path().to_str().unwrap(),
            "/rw",
            MountPropagation::PropagationPrivate,
        ),
        cri::Mount {
            readonly: true,
            ..bind(
                read_only.path().to_str().unwrap(),
                "/ro",
                MountPropagation::PropagationPrivate,
            )
        },
        bind(
            file.to_str().unwrap(),
            "/etc/hostfile",
            MountPropagation::PropagationPrivate,
        ),
        bind(
            missing.to_str().unwrap(),
            "/missing",
            MountPropagation::PropagationPrivate,
        ),
        bind(
            &host_to_container.host_path(),
            "/h2c",
            MountPropagation::PropagationHostToContainer,
        ),
        bind(
            &bidirectional.host_path(),
            "/bidi",
            MountPropagation::PropagationBidirectional,
        ),
        bind(
            link.to_str().unwrap(),
            "/bidi-link",
            MountPropagation::PropagationBidirectional,
        ),
    ];
    config.devices = vec![cri::Device {
        container_path: "/dev/mynull".to_owned(),
        host_path: "/dev/null".to_owned(),
        permissions: "rw".to_owned(),
    }];
    let loop_device = (0..8)
        .map(|n| format!("/dev/loop{n}"))
        .find(|path| Path::new(path).exists());
    if let Some(host_path) = &loop_device {
        config.devices.push(cri::Device {
            container_path: "/dev/myloop".to_owned(),
            host_path: host_path.clone(),
            permissions: "r".to_owned(),
        });
    }
    let security = config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    security.capabilities = Some(cri::Capability {
        add_capabilities: vec!["SYS_ADMIN".to_owned()],
        ..cri::Capability::default()
    });
    let id = create_and_start(&world, config).await;

    // Read-write, read-only and file mounts.
    assert_eq!(
        sh(&world, &id, "echo from-container > /rw/written").await.0,
        0
    );
    assert_eq!(
        std::fs::read_to_string(writable.path().join("written")).unwrap(),
        "from-container\n"
    );
    let (code, stderr) = sh(&world, &id, "echo x > /ro/new").await;
    assert_ne!(code, 0);
    assert!(stderr.contains("Read-only file system"), "{stderr:?}");
    assert_eq!(
        read_files(&world, &id, &["/ro/kept", "/etc/hostfile"]).await,
        ["kept", "from the host"]
    );
    // dockerd creates a missing host path as a directory, as `Binds` do.
    assert!(missing.is_dir(), "{missing:?}");
    assert_eq!(sh(&world, &id, "test -d /missing").await.0, 0);

    // HOST_TO_CONTAINER: a mount made on the host after the start shows.
    let sub = host_to_container.path().join("sub");
    run("mount", &["-t", "tmpfs", "tmpfs", sub.to_str().unwrap()]);
    std::fs::write(sub.join("marker"), "host\n").unwrap();
    assert_eq!(
        read_files(&world, &id, &["/h2c/sub/marker"]).await,
        ["host"]
    );

    // BIDIRECTIONAL: a mount made in the container shows on the host.
    let (code, stderr) = sh(
        &world,
        &id,
        "mount -t tmpfs tmpfs /bidi/inner && echo container > /bidi/inner/marker",
    )
    .await;
    let inner = bidirectional.path().join("inner");
    if code == 0 {
        assert!(
            host_has_mount_at(&inner),
            "no mount at {inner:?} on the host"
        );
        assert_eq!(
            std::fs::read_to_string(inner.join("marker")).unwrap(),
            "container\n"
        );
    } else {
        eprintln!(
            "skipping the bidirectional mount's effect: the container may not mount \
             (exit {code}: {stderr})"
        );
    }

    let status = world.status(&id).await;
    let mounted: HashMap<&str, (bool, i32)> = status
        .mounts
        .iter()
        .map(|m| (m.container_path.as_str(), (m.readonly, m.propagation)))
        .collect();
    let private_rw = (false, MountPropagation::PropagationPrivate as i32);
    assert_eq!(mounted["/rw"], private_rw, "{mounted:?}");
    assert_eq!(
        mounted["/ro"],
        (true, MountPropagation::PropagationPrivate as i32)
    );
    assert_eq!(mounted["/etc/hostfile"], private_rw);
    assert_eq!(
        mounted["/h2c"],
        (false, MountPropagation::PropagationHostToContainer as i32)
    );
    assert_eq!(
        mounted["/bidi"],
        (false, MountPropagation::PropagationBidirectional as i32)
    );
    assert_eq!(
        mounted["/bidi-link"],
        (false, MountPropagation::PropagationBidirectional as i32)
    );

    // Devices: "rw" reads and writes; "r" opens for reading only.
    assert_eq!(
        sh(&world, &id, "echo hi > /dev/mynull && cat /dev/mynull")
            .await
            .0,
        0
    );
    match &loop_device {
        Some(_) => {
            assert_eq!(sh(&world, &id, "true < /dev/myloop").await.0, 0);
            let (code, stderr) = sh(&world, &id, "true > /dev/myloop").await;
            assert_ne!(code, 0);
            assert!(stderr.contains("Operation not permitted"), "{stderr:?}");
        }
        None => eprintln!(
            "skipping the read-only device check: the host has no /dev/loopN, and \
             /dev/null is writable in every container"
        ),
    }

    // A propagation the host mount cannot give is refused at create.
    for (name, propagation, wanted) in [
        (
            "refused-shared",
            MountPropagation::PropagationBidirectional,
            "rshared",
        ),
        (
            "refused-slave",
            MountPropagation::PropagationHostToContainer,
            "rslave",
        ),
    ] {
        let mut config = world.config(name, &busybox_image(), RUN_UNTIL_STOPPED);
        config.mounts = vec![bind(&private.host_path(), "/p", propagation)];
        let err = world.create(config).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains(&private.host_path()) && err.message().contains(wanted),
            "{err:?}"
        );
    }
    assert_eq!(docker_names_with(&world, "refused-"), Vec::<String>::new());
    world.clean_up().await;
}
