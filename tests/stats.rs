//! The stats readers against real containers on this host's dockerd: a
//! busy loop whose CPU time shows up, a container holding a known amount of
//! memory, its writable layer and its network counters.
//!
//! Tests print why and pass when dockerd is not reachable (under
//! tests/run.sh they fail). Containers carry the label
//! `dockshim-stats-test=1` and the test run's label, and are removed by drop
//! guards, also when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use dockshim::api::v1;
use dockshim::stats::{
    self, cgroup, cpu, memory, network, process, CgroupLocator, CgroupVersion, CpuSampler, Files,
    LayerLocation, LayerSizes,
};

const IMAGE: &str = "127.0.0.1:5000/dockshim-test/busybox:latest";
/// What the memory test's container writes to its /dev/shm (tmpfs, so the
/// pages are charged to its cgroup and cannot be reclaimed without swap).
const SHM_BYTES: u64 = 50_000_000;
/// What it writes to its writable layer.
const LAYER_FILE_BYTES: u64 = 1_000_000;
const MEMORY_LIMIT: u64 = 200 << 20;
const WAIT: Duration = Duration::from_secs(30);

fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|err| format!("docker {args:?}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// dockerd's cgroup driver and version, or `None` (with the reason printed)
/// when dockerd cannot be reached.
fn host() -> Option<CgroupLocator> {
    let info = match docker(&["info", "--format", "{{.CgroupDriver}} {{.CgroupVersion}}"]) {
        Ok(info) => info,
        Err(err) => {
            common::missing_environment(format!("no dockerd to test against ({err})"));
            return None;
        }
    };
    let (driver, version) = info.split_once(' ').unwrap();
    let driver = cgroup::driver_from_docker_info(driver).unwrap();
    let version = CgroupVersion::from_docker_info(version).unwrap();
    Some(CgroupLocator::discover(Path::new("/proc"), driver, version).unwrap())
}

/// A container made with `docker create` and `docker start`, removed with
/// force, by its ID, on drop.
struct Container {
    id: String,
}

impl Container {
    /// Created, then started: the guard exists before the start, so a
    /// start that fails (`docker run -d` would leave the created container
    /// behind) removes the container too.
    fn run(options: &[&str], script: &str) -> Container {
        let run_label = common::test_run_label();
        let mut args = vec!["create", "--label", "dockshim-stats-test=1"];
        args.extend_from_slice(&["--label", &run_label]);
        args.extend_from_slice(options);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        let container = Container {
            id: docker(&args).unwrap(),
        };
        docker(&["start", &container.id]).unwrap();
        container
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "--format", format, &self.id]).unwrap()
    }

    fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}").parse().unwrap()
    }

    fn cgroup(&self, locator: &CgroupLocator) -> std::sync::Arc<stats::Cgroup> {
        let parent = self.inspect("{{.HostConfig.CgroupParent}}");
        locator.container(&self.id, &parent, self.pid()).unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(err) = docker(&["rm", "-f", &self.id]) {
            eprintln!("cleanup: {err}");
        }
    }
}

fn now() -> i64 {
    stats::unix_nanos(SystemTime::now())
}

/// Runs `read` over files opened and closed as read.
fn unkept<R>(read: impl FnOnce(&mut Files<'_>) -> R) -> R {
    read(&mut Files::unkept(&mut Vec::new()))
}

#[test]
fn a_container_whose_start_fails_is_removed_by_its_guard() {
    if host().is_none() {
        return;
    }
    let probe = format!("dockshim-stats-probe={:08x}", common::unique());
    let options = [
        "--label",
        probe.as_str(),
        "--entrypoint",
        "/no/such/program",
    ];
    let started = std::panic::catch_unwind(|| Container::run(&options, "true"));
    assert!(started.is_err(), "a container without its program started");
    let filter = format!("label={probe}");
    assert_eq!(docker(&["ps", "-aq", "--filter", &filter]).unwrap(), "");
}

#[test]
fn the_cgroup_from_the_pid_is_the_one_dockerd_computes() {
    let Some(locator) = host() else { return };
    let container = Container::run(&[], "exec sleep 3600");
    let parent = container.inspect("{{.HostConfig.CgroupParent}}");
    let from_pid = locator
        .container(&container.id, &parent, container.pid())
        .unwrap();
    let computed = locator.container(&container.id, &parent, 0).unwrap();
    assert_eq!(from_pid, computed);
    assert!(from_pid.cpu_dir().is_dir(), "{from_pid:?}");
    assert!(from_pid.memory_dir().is_dir(), "{from_pid:?}");
    assert_eq!(unkept(|files| process::count(&from_pid, files)).unwrap(), 1);
}

#[test]
fn a_busy_loop_shows_up_as_cpu_time_and_rate() {
    let Some(locator) = host() else { return };
    // Half a core at most, so the rate has a known ceiling.
    let container = Container::run(&["--cpus", "0.5"], "while :; do :; done");
    let cgroup = container.cgroup(&locator);
    let sampler = CpuSampler::new();

    let first_at = now();
    let first = unkept(|files| cpu::usage_ns(&cgroup, files)).unwrap();
    assert_eq!(sampler.observe(&container.id, first_at, first), None);
    thread::sleep(Duration::from_secs(2));
    let second_at = now();
    let second = unkept(|files| cpu::usage_ns(&cgroup, files)).unwrap();
    assert!(
        second > first,
        "CPU time did not grow: {first} then {second}"
    );
    let rate = sampler.observe(&container.id, second_at, second).unwrap();
    assert!(
        (10_000_000..=600_000_000).contains(&rate),
        "a loop capped at half a core ran at {rate} nanocores"
    );

    let read =
        |files: &mut Files<'_>| stats::read_usage(&cgroup, files, &sampler, &container.id, now());
    let usage = unkept(read).unwrap();
    assert!(usage.cpu.usage_core_nano_seconds.unwrap().value >= second);
}

#[test]
fn memory_held_in_shm_is_working_set_and_the_layer_is_measured() {
    let Some(locator) = host() else { return };
    let limit = MEMORY_LIMIT.to_string();
    let container = Container::run(
        &["--memory", &limit],
        &format!(
            "head -c {LAYER_FILE_BYTES} /dev/zero > /layer-file; \
             head -c {SHM_BYTES} /dev/zero > /dev/shm/fill; \
             touch /dev/shm/done; exec sleep 3600"
        ),
    );
    let cgroup = container.cgroup(&locator);
    let deadline = Instant::now() + WAIT;
    let figures = loop {
        let figures = unkept(|files| memory::read(&cgroup, files)).unwrap();
        let written = Command::new("docker")
            .args(["exec", &container.id, "test", "-e", "/dev/shm/done"])
            .status()
            .unwrap()
            .success();
        if written {
            break unkept(|files| memory::read(&cgroup, files)).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the container did not fill /dev/shm: {figures:?}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let slack = 30_000_000;
    assert!(
        (SHM_BYTES..SHM_BYTES + slack).contains(&figures.working_set_bytes),
        "{figures:?}"
    );
    assert!(
        figures.usage_bytes >= figures.working_set_bytes,
        "{figures:?}"
    );
    // tmpfs pages are shared memory, not the anonymous memory of a process.
    assert!(figures.rss_bytes.unwrap() < slack, "{figures:?}");
    assert!(figures.page_faults.unwrap() > 0, "{figures:?}");
    assert_eq!(figures.limit_bytes, Some(MEMORY_LIMIT));
    assert_eq!(
        figures.available_bytes(),
        Some(MEMORY_LIMIT - figures.working_set_bytes)
    );

    // The writable layer holds the file written before the shm fill. A
    // graph driver names its directory; the containerd image store mounts
    // the container's root filesystem under dockerd's root instead.
    let upper_dir = container.inspect("{{with .GraphDriver.Data}}{{.UpperDir}}{{end}}");
    let location = if upper_dir.is_empty() || upper_dir == "<no value>" {
        let root = docker(&["info", "--format", "{{.DockerRootDir}}"]).unwrap();
        let driver = docker(&["info", "--format", "{{.Driver}}"]).unwrap();
        LayerLocation::RootfsMount(
            Path::new(&root)
                .join("rootfs")
                .join(driver)
                .join(&container.id),
        )
    } else {
        LayerLocation::Dir(upper_dir.into())
    };
    let sizes = LayerSizes::default();
    assert_eq!(sizes.get(&container.id, &location), None);
    let deadline = Instant::now() + WAIT;
    let layer = loop {
        if let Some(layer) = sizes.get(&container.id, &location) {
            break layer;
        }
        assert!(
            Instant::now() < deadline,
            "no layer figures within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(layer.complete);
    assert!(
        (LAYER_FILE_BYTES..LAYER_FILE_BYTES + 1_000_000).contains(&layer.used_bytes),
        "{layer:?}"
    );
    assert!(layer.inodes_used >= 2, "{layer:?}");
}

#[test]
fn a_container_on_the_bridge_has_eth0_counters() {
    let Some(_) = host() else { return };
    if let Err(err) = docker(&["network", "inspect", "--format", "{{.Name}}", "bridge"]) {
        eprintln!("skipped: dockerd has no bridge network to give a container eth0 ({err})");
        return;
    }
    let container = Container::run(&[], "exec sleep 3600");
    let read =
        |files: &mut Files<'_>| network::read(Path::new("/proc"), container.pid(), files, now());
    let usage = unkept(read).unwrap();
    let default: v1::NetworkInterfaceUsage = usage.default_interface.expect("no eth0");
    assert_eq!(default.name, "eth0");
    assert!(default.rx_bytes.is_some());
    assert!(usage.interfaces.iter().all(|i| i.name != "lo"));
}
