//! `cargo xtask bench`: figures for the README, measured against a live CRI
//! endpoint with an independent gRPC client (tonic).
//!
//! Without `--endpoint` it builds the release binary, starts it on a
//! temporary socket against the local dockerd (or the engine that
//! `--docker-endpoint unix:///path` names), and also reports the
//! stripped binary size, idle RSS and the runtime crate count. With
//! `--endpoint unix:///path` it measures any CRI runtime already running
//! there, so dockshim and another runtime can be compared in one sitting.
//!
//! The pod sandbox figures (latency of ListPodSandbox and PodSandboxStatus
//! with [`BENCH_SANDBOXES`] sandboxes, Docker calls per warm call, and
//! RunPodSandbox against a raw docker create+start) run on a second
//! dockshim whose `--docker-endpoint` is a counting proxy in front of
//! dockerd, so the Docker calls are counted from outside dockshim; Status
//! is timed there again first, for its Docker calls per warm call. With
//! `--endpoint` they run only when `--sandboxes` is given, without the
//! Docker call count. Host-network sandboxes need no CNI configuration.
//!
//! The container figures run in those sandboxes, one running busybox
//! container in each: CreateContainer and StartContainer against a raw
//! docker create and start of a container joining a raw sandbox's
//! namespaces, latency and Docker calls per warm call of ListContainers and
//! ContainerStatus, ExecSync latency, and Status latency while
//! [`HELD_EXECS`] ExecSync calls of `sleep 30` hold every regular worker.
//! With `--endpoint` they run when `--containers` is given (which brings
//! the sandbox figures along).
//!
//! The stats figures follow in the same pods: latency and Docker calls per
//! warm call of ContainerStats, ListContainerStats and ListPodSandboxStats.
//! Then a pod start with those pods present, timed as one: RunPodSandbox,
//! CreateContainer and StartContainer of one more pod, against a raw
//! docker create and start of a sandbox and of a container joining its
//! namespaces. Each such pod's container is then killed behind the
//! runtime's back (`docker kill`) to time how soon ContainerStatus reports
//! it exited, and the pod is removed again before the next sample.
//! Last, with the pods still present, the idle figures: the server's CPU
//! use and the Docker calls it makes while no RPC arrives, over
//! [`IDLE_WINDOW`]. They need the server's process and the proxy, so they
//! run only without `--endpoint`.
//!
//! Every sandbox and container the bench creates is removed, also after a
//! failure, and the bench fails if one is left behind.
//!
//! `--server PATH` starts that dockshim binary instead of building one,
//! so an earlier build can be measured beside the current one.
//!
//! With `--kubelet-load PODS SECONDS` none of the above runs: instead the
//! kubelet's periodic calls at their default periods, against PODS pods,
//! and what they cost the runtime and dockerd (see [`kubelet_load`]).
//!
//! It prints figures; it asserts nothing. The client itself always runs
//! optimised: the debug build rebuilds it and hands over (see
//! [`run_optimised`]).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dockshim::api::v1;
use dockshim::cri::labels::{
    CONTAINER_TYPE_CONTAINER, CONTAINER_TYPE_LABEL, CONTAINER_TYPE_SANDBOX,
};
use dockshim::docker::{
    path_with_query, ContainerCreate, ContainerSummary, CreateHostConfig, DockerClient, DockerError,
};
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

use crate::XtaskError;

mod kubelet_load;

const DEFAULT_CALLS: usize = 20_000;
const WARMUP_CALLS: usize = 500;
/// Concurrent callers sharing one connection in the throughput run.
const CONCURRENT_CALLERS: usize = 8;
/// How long the started server may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server idles before its RSS counts as idle.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

const VERSION: &str = "/runtime.v1.RuntimeService/Version";
const STATUS: &str = "/runtime.v1.RuntimeService/Status";
const LIST_IMAGES: &str = "/runtime.v1.ImageService/ListImages";
const IMAGE_FS_INFO: &str = "/runtime.v1.ImageService/ImageFsInfo";

/// Distinct images added for the ListImages figure.
const BENCH_IMAGES: usize = 50;
/// Where they are tagged; all removed at the end.
const BENCH_REPOSITORY: &str = "dockshim-bench/image";
/// Measured calls of each image RPC, after the warm-up ones.
const IMAGE_CALLS: usize = 500;
const IMAGE_WARMUP_CALLS: usize = 20;
/// The dockerd the bench runs against unless `--docker-endpoint` names
/// another engine.
const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// An empty tar archive (two zero blocks): each bench image is an empty
/// layer whose configuration differs by a label.
const EMPTY_TAR: [u8; 1024] = [0; 1024];

const RUN_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/RunPodSandbox";
const STOP_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/StopPodSandbox";
const REMOVE_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/RemovePodSandbox";
const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";
const POD_SANDBOX_STATUS: &str = "/runtime.v1.RuntimeService/PodSandboxStatus";

/// Sandboxes present while ListPodSandbox and PodSandboxStatus are timed;
/// also the number of RunPodSandbox and raw create+start samples, and of
/// containers (one per sandbox).
const BENCH_SANDBOXES: usize = 30;
/// Calls of each sandbox RPC before timing starts.
const SANDBOX_WARMUP_CALLS: usize = 20;
/// How long the index gets to take in the events of the new sandboxes
/// before list calls count as warm.
const SANDBOX_SETTLE: Duration = Duration::from_secs(1);
/// Sandbox image unless `DOCKSHIM_TEST_PAUSE_IMAGE` names another.
const DEFAULT_PAUSE_IMAGE: &str = "127.0.0.1:5000/dockshim-test/pause:3.10";
const PAUSE_IMAGE_VARIABLE: &str = "DOCKSHIM_TEST_PAUSE_IMAGE";
/// Label on every sandbox, container and raw container of one run (value:
/// the bench's process ID), so cleanup and the leftover check see only the
/// bench's own.
const RUN_LABEL: &str = "dockshim-bench";
/// Namespace of the bench's sandboxes.
const SANDBOX_NAMESPACE: &str = "dockshim-bench";

const CREATE_CONTAINER: &str = "/runtime.v1.RuntimeService/CreateContainer";
const START_CONTAINER: &str = "/runtime.v1.RuntimeService/StartContainer";
const STOP_CONTAINER: &str = "/runtime.v1.RuntimeService/StopContainer";
const REMOVE_CONTAINER: &str = "/runtime.v1.RuntimeService/RemoveContainer";
const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
const CONTAINER_STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";
const EXEC_SYNC: &str = "/runtime.v1.RuntimeService/ExecSync";

/// Container image unless `DOCKSHIM_TEST_BUSYBOX_IMAGE` names another.
const DEFAULT_BUSYBOX_IMAGE: &str = "127.0.0.1:5000/dockshim-test/busybox:latest";
const BUSYBOX_IMAGE_VARIABLE: &str = "DOCKSHIM_TEST_BUSYBOX_IMAGE";
/// What every bench container runs: nothing, for longer than the bench.
const CONTAINER_COMMAND: [&str; 2] = ["sleep", "3600"];
/// Name of the container in each bench sandbox, and of the directory
/// holding its log file in the sandbox's log directory.
const CONTAINER_NAME: &str = "bench";
/// ListContainers and ContainerStatus are each timed `calls /
/// CONTAINER_QUERY_SHARE` times, as Status is: enough samples for a p99,
/// and the run stays short.
const CONTAINER_QUERY_SHARE: usize = 10;
/// What ExecSync runs.
const EXEC_COMMAND: [&str; 1] = ["true"];
/// Timed ExecSync calls, after the warm-up ones; each starts a process in
/// the container, which takes tens of milliseconds.
const EXEC_CALLS: usize = 100;
const EXEC_WARMUP_CALLS: usize = 5;
/// ExecSync's own timeout, as a kubelet probe sets one.
const EXEC_TIMEOUT_SECS: i64 = 10;
/// Slow ExecSync calls held in flight while Status is timed: as many as
/// dockshim has regular workers, so only its quick lane is left.
const HELD_EXECS: usize = dockshim::server::DEFAULT_MAX_WORKERS;
/// What each held ExecSync runs: longer than the Status calls take.
const HELD_EXEC_COMMAND: [&str; 2] = ["sleep", "30"];
/// The held ExecSyncs' own timeout, with room for a loaded machine.
const HELD_EXEC_TIMEOUT_SECS: i64 = 120;
/// How long the held ExecSyncs get to start.
const HELD_EXEC_START: Duration = Duration::from_secs(60);
/// Docker's network and IPC mode that joins another container's namespace.
const JOIN_CONTAINER_PREFIX: &str = "container:";
/// Docker's IPC mode of a container whose IPC namespace others may join.
const SHAREABLE_IPC_MODE: &str = "shareable";

const CONTAINER_STATS: &str = "/runtime.v1.RuntimeService/ContainerStats";
const LIST_CONTAINER_STATS: &str = "/runtime.v1.RuntimeService/ListContainerStats";
const LIST_POD_SANDBOX_STATS: &str = "/runtime.v1.RuntimeService/ListPodSandboxStats";
/// Timed ContainerStats calls, cycling through the bench containers.
const CONTAINER_STATS_CALLS: usize = 500;
/// Timed calls of each list stats RPC; each reads every container's cgroup.
const LIST_STATS_CALLS: usize = 200;
/// Wait between the first CPU reading of the bench containers and the
/// timed stats calls: dockshim computes `usage_nano_cores` only from
/// readings at least a second apart, so this is a second and a margin.
const CPU_RATE_WAIT: Duration = Duration::from_millis(1_200);
/// Timed pod starts on each side, CRI and raw: each one creates and
/// removes a pod, so a few suffice for a median and keep the run short.
const POD_START_RUNS: usize = 10;
/// How often ContainerStatus is asked whether a killed container exited.
const KILL_NOTICE_POLL: Duration = Duration::from_millis(1);
/// When to stop waiting for a killed container to be reported exited.
const KILL_NOTICE_GIVE_UP: Duration = Duration::from_secs(30);
/// How long the server is left alone, pods present, for the idle figures.
const IDLE_WINDOW: Duration = Duration::from_secs(30);

/// Longest request head the counting proxy parses; past it the connection
/// is no longer counted (dockshim never sends one that long).
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Read size of the counting proxy.
const PROXY_BUFFER: usize = 64 * 1024;

struct Options {
    endpoint: Option<PathBuf>,
    /// The engine's socket: the started dockshim's `--docker-endpoint`, and
    /// where bench images and raw baselines are made.
    docker_socket: PathBuf,
    calls: usize,
    sandboxes: bool,
    containers: bool,
    /// `--kubelet-load PODS SECONDS`: only the kubelet-shaped load runs.
    kubelet_load: Option<(usize, Duration)>,
    /// The load's PodAndContainerStatsFromCRI schedule.
    pod_stats_from_cri: bool,
    /// An idle window before the load, for dockerd's background.
    idle_baseline: bool,
    /// The runtime process the load measures with `--endpoint`, when the
    /// socket's listener cannot be found or is ambiguous.
    runtime_pid: Option<u32>,
    /// dockerd's process, likewise.
    docker_pid: Option<u32>,
    /// `--server PATH`: the dockshim binary to start instead of building one.
    server: Option<PathBuf>,
}

fn parse(flags: &[String]) -> Result<Options, XtaskError> {
    let mut options = Options {
        endpoint: None,
        docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
        calls: DEFAULT_CALLS,
        sandboxes: false,
        containers: false,
        kubelet_load: None,
        pod_stats_from_cri: false,
        idle_baseline: false,
        runtime_pid: None,
        docker_pid: None,
        server: None,
    };
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let mut value = || {
            flags
                .next()
                .ok_or_else(|| XtaskError::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--endpoint" => {
                let endpoint = value()?;
                let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
                options.endpoint = Some(PathBuf::from(path));
            }
            "--docker-endpoint" => {
                let endpoint = value()?;
                let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
                options.docker_socket = PathBuf::from(path);
            }
            "--calls" => {
                let calls = value()?;
                options.calls = calls
                    .parse()
                    .map_err(|_| XtaskError::Usage(format!("--calls {calls}: not a count")))?;
            }
            "--kubelet-load" => {
                let pods = value()?;
                let pods = pods.parse().map_err(|_| {
                    XtaskError::Usage(format!("--kubelet-load {pods}: not a count"))
                })?;
                let seconds = value()?;
                let seconds = seconds.parse().map_err(|_| {
                    XtaskError::Usage(format!("--kubelet-load {pods} {seconds}: not seconds"))
                })?;
                options.kubelet_load = Some((pods, Duration::from_secs(seconds)));
            }
            "--pod-stats-from-cri" => options.pod_stats_from_cri = true,
            "--idle-baseline" => options.idle_baseline = true,
            "--runtime-pid" => options.runtime_pid = Some(parse_pid(flag, value()?)?),
            "--docker-pid" => options.docker_pid = Some(parse_pid(flag, value()?)?),
            "--server" => options.server = Some(PathBuf::from(value()?)),
            "--sandboxes" => options.sandboxes = true,
            "--containers" => options.containers = true,
            other => return Err(XtaskError::Usage(format!("unknown bench flag `{other}`"))),
        }
    }
    Ok(options)
}

fn parse_pid(flag: &str, value: &str) -> Result<u32, XtaskError> {
    value
        .parse()
        .map_err(|_| XtaskError::Usage(format!("{flag} {value}: not a process ID")))
}

/// A dockshim started for the run; killed when dropped.
struct Started {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Started {
    fn drop(&mut self) {
        // The child may already be gone; nothing else to do either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(root: &Path, flags: &[String]) -> Result<(), XtaskError> {
    if cfg!(debug_assertions) {
        return run_optimised(root, flags);
    }
    let options = parse(flags)?;
    if let Some((pods, window)) = options.kubelet_load {
        return kubelet_load::run(root, &options, pods, window);
    }
    // One client thread: on a small machine a multi-threaded client would
    // compete with the server for the same cores and blur its latency.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| XtaskError::Bench(format!("tokio runtime: {err}")))?;

    let docker_endpoint = format!("unix://{}", options.docker_socket.display());
    let (socket, started) = match &options.endpoint {
        Some(path) => (path.clone(), None),
        None => {
            let dir = tempdir()?;
            let started = start_dockshim(
                &server_binary(root, &options)?,
                dir,
                &["--docker-endpoint", &docker_endpoint],
            )?;
            (started.dir.path().join("dockshim.sock"), Some(started))
        }
    };
    println!("machine: {}", machine_summary());
    println!("docker engine: {}", engine_summary(&docker_endpoint)?);
    if let Some(started) = &started {
        let binary = server_binary(root, &options)?;
        let size = fs::metadata(&binary)
            .map_err(|err| XtaskError::io(&binary, err))?
            .len();
        println!(
            "binary: {} bytes stripped ({:.2} MiB)",
            size,
            size as f64 / 1048576.0
        );
        println!(
            "runtime crates (cargo tree -e normal): {}",
            runtime_crate_count(root)?
        );
        std::thread::sleep(IDLE_SETTLE);
        println!("idle RSS: {} KiB", rss_kib(started.child.id())?);
    }

    runtime.block_on(async {
        let channel = connect(socket.clone()).await?;
        let mut grpc = Grpc::new(channel.clone());
        for _ in 0..WARMUP_CALLS {
            call::<_, v1::VersionResponse>(&mut grpc, VERSION, v1::VersionRequest::default())
                .await?;
        }
        let mut times = Vec::with_capacity(options.calls);
        for _ in 0..options.calls {
            let start = Instant::now();
            call::<_, v1::VersionResponse>(&mut grpc, VERSION, v1::VersionRequest::default())
                .await?;
            times.push(start.elapsed());
        }
        report(&format!("Version, {} sequential calls", options.calls), &mut times);

        let mut times = Vec::with_capacity(options.calls / 10);
        for _ in 0..options.calls / 10 {
            let start = Instant::now();
            call::<_, v1::StatusResponse>(&mut grpc, STATUS, v1::StatusRequest::default()).await?;
            times.push(start.elapsed());
        }
        report(&format!("Status, {} sequential calls", options.calls / 10), &mut times);

        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENT_CALLERS {
            let mut grpc = Grpc::new(channel.clone());
            let calls = options.calls / CONCURRENT_CALLERS;
            tasks.push(tokio::spawn(async move {
                for _ in 0..calls {
                    call::<_, v1::VersionResponse>(
                        &mut grpc,
                        VERSION,
                        v1::VersionRequest::default(),
                    )
                    .await?;
                }
                Ok::<(), XtaskError>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|err| XtaskError::Bench(format!("caller task: {err}")))??;
        }
        let elapsed = start.elapsed();
        let total = options.calls / CONCURRENT_CALLERS * CONCURRENT_CALLERS;
        println!(
            "Version, {total} calls from {CONCURRENT_CALLERS} concurrent callers on one connection: {:.0} calls/s",
            total as f64 / elapsed.as_secs_f64()
        );
        Ok::<(), XtaskError>(())
    })?;
    image_figures(&runtime, &socket, &docker_endpoint)?;

    let image = env_or(PAUSE_IMAGE_VARIABLE, DEFAULT_PAUSE_IMAGE);
    if started.is_some() {
        // A second instance, so the proxy's small cost is not in the
        // figures above.
        let (proxy, proxy_endpoint, sandboxed) = start_behind_proxy(
            &server_binary(root, &options)?,
            &options.docker_socket,
            &image,
        )?;
        let socket = sandboxed.dir.path().join("dockshim.sock");
        // The raw baseline goes through the proxy as well, so both sides
        // of the difference pay for it.
        let bench = PodBench::new(
            &socket,
            &proxy_endpoint,
            Some(&proxy),
            Some(sandboxed.child.id()),
            image,
            options.calls,
        )?;
        pod_figures(&runtime, &bench, true)?;
    } else if options.sandboxes || options.containers {
        let bench = PodBench::new(&socket, &docker_endpoint, None, None, image, options.calls)?;
        pod_figures(&runtime, &bench, options.containers)?;
    }

    if let Some(started) = &started {
        println!("RSS after the run: {} KiB", rss_kib(started.child.id())?);
        println!(
            "server CPU time for the run: {:.2} s",
            cpu_seconds(started.child.id())?
        );
    }
    Ok(())
}

/// Images created in dockerd for the run, each under its own tag in
/// [`BENCH_REPOSITORY`]; deleted (tag and image) when dropped.
struct BenchImages {
    docker: DockerClient,
    tags: Vec<String>,
}

impl BenchImages {
    fn create(docker_endpoint: &str, count: usize) -> Result<BenchImages, XtaskError> {
        let docker_error = |err| XtaskError::Bench(format!("dockerd: {err}"));
        let docker =
            DockerClient::new(docker_endpoint, Duration::from_secs(60)).map_err(docker_error)?;
        docker.negotiate().map_err(docker_error)?;
        let mut images = BenchImages {
            docker,
            tags: Vec::with_capacity(count),
        };
        for i in 0..count {
            let tag = i.to_string();
            let label = format!("LABEL dockshim-bench={i}");
            let path = path_with_query(
                "/images/create",
                &[
                    ("fromSrc", "-"),
                    ("repo", BENCH_REPOSITORY),
                    ("tag", &tag),
                    ("changes", &label),
                ],
            );
            images
                .docker
                .request(
                    "POST",
                    &path,
                    &[("Content-Type", "application/x-tar")],
                    Some(&EMPTY_TAR),
                    None,
                )
                .map_err(docker_error)?;
            images.tags.push(format!("{BENCH_REPOSITORY}:{tag}"));
        }
        Ok(images)
    }
}

impl Drop for BenchImages {
    fn drop(&mut self) {
        for tag in &self.tags {
            // Deleting the only tag deletes the image; a failure leaves a
            // tag under dockshim-bench/ to remove by hand.
            if let Err(err) = self.docker.delete(&format!("/images/{tag}")) {
                eprintln!("bench: cannot remove {tag}: {err}");
            }
        }
    }
}

/// ListImages latency with [`BENCH_IMAGES`] more images than dockerd had,
/// and ImageFsInfo latency.
fn image_figures(
    runtime: &tokio::runtime::Runtime,
    socket: &Path,
    docker_endpoint: &str,
) -> Result<(), XtaskError> {
    let images = BenchImages::create(docker_endpoint, BENCH_IMAGES)?;
    runtime.block_on(async {
        let mut grpc = Grpc::new(connect(socket.to_path_buf()).await?);
        let start = Instant::now();
        let listed: v1::ListImagesResponse =
            call(&mut grpc, LIST_IMAGES, v1::ListImagesRequest::default()).await?;
        let first = start.elapsed();
        for _ in 0..IMAGE_WARMUP_CALLS {
            call::<_, v1::ListImagesResponse>(&mut grpc, LIST_IMAGES, v1::ListImagesRequest::default())
                .await?;
        }
        let mut times = Vec::with_capacity(IMAGE_CALLS);
        for _ in 0..IMAGE_CALLS {
            let start = Instant::now();
            call::<_, v1::ListImagesResponse>(&mut grpc, LIST_IMAGES, v1::ListImagesRequest::default())
                .await?;
            times.push(start.elapsed());
        }
        report(
            &format!(
                "ListImages, {} images ({} added), {IMAGE_CALLS} sequential calls (first call {:.1} ms)",
                listed.images.len(),
                images.tags.len(),
                first.as_secs_f64() * 1e3
            ),
            &mut times,
        );

        let start = Instant::now();
        call::<_, v1::ImageFsInfoResponse>(&mut grpc, IMAGE_FS_INFO, v1::ImageFsInfoRequest::default())
            .await?;
        let first = start.elapsed();
        let mut times = Vec::with_capacity(IMAGE_CALLS);
        for _ in 0..IMAGE_CALLS {
            let start = Instant::now();
            call::<_, v1::ImageFsInfoResponse>(
                &mut grpc,
                IMAGE_FS_INFO,
                v1::ImageFsInfoRequest::default(),
            )
            .await?;
            times.push(start.elapsed());
        }
        report(
            &format!(
                "ImageFsInfo, {IMAGE_CALLS} sequential calls (first call {:.1} ms)",
                first.as_secs_f64() * 1e3
            ),
            &mut times,
        );
        Ok::<(), XtaskError>(())
    })
}

/// What the pod figures work with and create their objects in.
struct PodBench<'a> {
    /// The CRI endpoint measured.
    socket: &'a Path,
    /// Where the raw baselines go.
    docker: DockerClient,
    /// Counts the Docker calls of the runtime measured, when there is one.
    proxy: Option<&'a CountingProxy>,
    /// The process of the runtime measured, when known: the bench started
    /// it, or the kubelet-shaped load found it.
    server: Option<u32>,
    pause_image: String,
    busybox_image: String,
    /// This run's [`RUN_LABEL`] value: the bench's process ID.
    run: String,
    /// Parent of every sandbox's log directory; deleted when dropped.
    log_root: tempfile::TempDir,
    /// Timed calls of ListPodSandbox and PodSandboxStatus; ListContainers
    /// and ContainerStatus get `calls / CONTAINER_QUERY_SHARE`.
    calls: usize,
}

impl<'a> PodBench<'a> {
    fn new(
        socket: &'a Path,
        docker_endpoint: &str,
        proxy: Option<&'a CountingProxy>,
        server: Option<u32>,
        pause_image: String,
        calls: usize,
    ) -> Result<PodBench<'a>, XtaskError> {
        let docker =
            DockerClient::new(docker_endpoint, Duration::from_secs(60)).map_err(docker_error)?;
        docker.negotiate().map_err(docker_error)?;
        Ok(PodBench {
            socket,
            docker,
            proxy,
            server,
            pause_image,
            busybox_image: env_or(BUSYBOX_IMAGE_VARIABLE, DEFAULT_BUSYBOX_IMAGE),
            run: std::process::id().to_string(),
            log_root: tempdir()?,
            calls,
        })
    }

    /// The log directory of sandbox `i`.
    fn log_directory(&self, i: usize) -> PathBuf {
        self.log_root.path().join(i.to_string())
    }
}

/// Sandbox figures: RunPodSandbox against raw create+start, then
/// ListPodSandbox and PodSandboxStatus with [`BENCH_SANDBOXES`] present.
/// With `containers`, then the container, stats, pod start and idle
/// figures in those sandboxes.
/// Everything created is removed, and what is left behind is an error.
fn pod_figures(
    runtime: &tokio::runtime::Runtime,
    bench: &PodBench<'_>,
    containers: bool,
) -> Result<(), XtaskError> {
    let mut created = Created::default();
    let measured = runtime.block_on(async {
        measure_status(bench).await?;
        measure_sandboxes(bench, &mut created).await?;
        if containers {
            measure_containers(bench, &mut created).await?;
            measure_stats(bench, &created).await?;
            measure_pod_start(bench, &mut created).await?;
            measure_idle(bench)?;
        }
        Ok(())
    });
    let containers_removed = runtime.block_on(remove_containers(bench.socket, &created.containers));
    let sandboxes_removed = runtime.block_on(remove_sandboxes(bench.socket, &created.sandboxes));
    let raw_removed = remove_raw(&bench.docker, &created.raw);
    let leftovers = check_no_leftovers(&bench.docker, &bench.run);
    let mut outcome = Ok(());
    for result in [
        measured,
        containers_removed,
        sandboxes_removed,
        raw_removed,
        leftovers,
    ] {
        match (result, &outcome) {
            (Err(err), Ok(())) => outcome = Err(err),
            (Err(err), Err(_)) => eprintln!("bench: also: {err}"),
            (Ok(()), _) => {}
        }
    }
    outcome
}

/// What a pod run created and must remove: sandbox and container IDs as
/// the CRI knows them, and raw container IDs.
#[derive(Default)]
struct Created {
    sandboxes: Vec<String>,
    containers: Vec<String>,
    /// Each one after the raw container whose namespaces it joins.
    raw: Vec<String>,
}

fn docker_error(err: DockerError) -> XtaskError {
    XtaskError::Bench(format!("dockerd: {err}"))
}

/// Status on the runtime behind the proxy, warmed up first: its Docker
/// calls per warm call.
async fn measure_status(bench: &PodBench<'_>) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let calls = bench.calls / CONTAINER_QUERY_SHARE;
    let (mut times, status_calls) = time_calls::<_, v1::StatusResponse>(
        &mut grpc,
        STATUS,
        SANDBOX_WARMUP_CALLS,
        calls,
        bench.proxy,
        |_| v1::StatusRequest::default(),
    )
    .await?;
    report(
        &format!("Status, warm, {calls} sequential calls"),
        &mut times,
    );
    report_docker_calls("Status", status_calls, calls);
    Ok(())
}

async fn measure_sandboxes(bench: &PodBench<'_>, created: &mut Created) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let mut raw_times = Vec::with_capacity(BENCH_SANDBOXES);
    let mut run_times = Vec::with_capacity(BENCH_SANDBOXES);
    let before = bench.proxy.map(CountingProxy::requests);
    // Interleaved, so a drift in dockerd's speed hits both sides alike.
    for i in 0..BENCH_SANDBOXES {
        let start = Instant::now();
        create_and_start_raw(bench, &raw_sandbox(&bench.pause_image, &bench.run), created)?;
        raw_times.push(start.elapsed());

        let request = v1::RunPodSandboxRequest {
            config: Some(sandbox_config(bench, i)),
            runtime_handler: String::new(),
        };
        let start = Instant::now();
        let response: v1::RunPodSandboxResponse = call(&mut grpc, RUN_POD_SANDBOX, request).await?;
        run_times.push(start.elapsed());
        created.sandboxes.push(response.pod_sandbox_id);
    }
    // The raw side made exactly two calls (create, start) per sandbox.
    let run_calls = docker_calls(bench.proxy, before)
        .map(|count| count.saturating_sub(2 * BENCH_SANDBOXES as u64));
    report_against_raw(
        "RunPodSandbox (host network)",
        &mut run_times,
        "raw docker create+start",
        &mut raw_times,
    );
    if let Some(count) = run_calls {
        println!(
            "RunPodSandbox, Docker API calls: {count} in {BENCH_SANDBOXES} calls ({:.1} per call)",
            count as f64 / BENCH_SANDBOXES as f64
        );
    }

    // The index learns of the new sandboxes from dockerd's event stream.
    std::thread::sleep(SANDBOX_SETTLE);
    let listed: v1::ListPodSandboxResponse = call(
        &mut grpc,
        LIST_POD_SANDBOX,
        v1::ListPodSandboxRequest::default(),
    )
    .await?;
    let ours = listed
        .items
        .iter()
        .filter(|item| item.labels.get(RUN_LABEL) == Some(&bench.run))
        .count();
    if ours != BENCH_SANDBOXES {
        return Err(XtaskError::Bench(format!(
            "ListPodSandbox shows {ours} of the {BENCH_SANDBOXES} bench sandboxes"
        )));
    }
    let (mut times, list_calls) = time_calls::<_, v1::ListPodSandboxResponse>(
        &mut grpc,
        LIST_POD_SANDBOX,
        SANDBOX_WARMUP_CALLS,
        bench.calls,
        bench.proxy,
        |_| v1::ListPodSandboxRequest::default(),
    )
    .await?;
    report(
        &format!(
            "ListPodSandbox, {} sandboxes, {} sequential calls",
            listed.items.len(),
            bench.calls
        ),
        &mut times,
    );
    report_docker_calls("ListPodSandbox", list_calls, bench.calls);

    let (mut times, status_calls) = time_calls::<_, v1::PodSandboxStatusResponse>(
        &mut grpc,
        POD_SANDBOX_STATUS,
        SANDBOX_WARMUP_CALLS,
        bench.calls,
        bench.proxy,
        |i| v1::PodSandboxStatusRequest {
            pod_sandbox_id: created.sandboxes[i % created.sandboxes.len()].clone(),
            verbose: false,
        },
    )
    .await?;
    report(
        &format!(
            "PodSandboxStatus, {BENCH_SANDBOXES} sandboxes in turn, {} sequential calls",
            bench.calls
        ),
        &mut times,
    );
    report_docker_calls("PodSandboxStatus", status_calls, bench.calls);
    Ok(())
}

/// Container figures, one running container in each sandbox of
/// `created`: CreateContainer and StartContainer against raw docker create
/// and start of a container joining a raw sandbox's namespaces, then
/// ListContainers, ContainerStatus and ExecSync.
async fn measure_containers(bench: &PodBench<'_>, created: &mut Created) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let sandboxes = created.sandboxes.clone();
    let raw_sandboxes = created.raw.clone();
    let mut raw_create_times = Vec::with_capacity(BENCH_SANDBOXES);
    let mut raw_start_times = Vec::with_capacity(BENCH_SANDBOXES);
    let mut create_times = Vec::with_capacity(BENCH_SANDBOXES);
    let mut start_times = Vec::with_capacity(BENCH_SANDBOXES);
    for i in 0..sandboxes.len() {
        // Made by the kubelet before it creates a container.
        let log_directory = bench.log_directory(i).join(CONTAINER_NAME);
        fs::create_dir_all(&log_directory).map_err(|err| XtaskError::io(&log_directory, err))?;
    }
    let before = bench.proxy.map(CountingProxy::requests);
    // Interleaved, so a drift in dockerd's speed hits both sides alike.
    for (i, (sandbox, raw_sandbox)) in sandboxes.iter().zip(&raw_sandboxes).enumerate() {
        let body = raw_container(&bench.busybox_image, &bench.run, raw_sandbox);
        let start = Instant::now();
        let raw: ContainerSummary = bench
            .docker
            .post_json("/containers/create", &body.to_json())
            .map_err(docker_error)?;
        raw_create_times.push(start.elapsed());
        created.raw.push(raw.id.clone());
        let start = Instant::now();
        bench
            .docker
            .post(&format!("/containers/{}/start", raw.id), None)
            .map_err(docker_error)?;
        raw_start_times.push(start.elapsed());

        let request = v1::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config(bench)),
            sandbox_config: Some(sandbox_config(bench, i)),
        };
        let start = Instant::now();
        let response: v1::CreateContainerResponse =
            call(&mut grpc, CREATE_CONTAINER, request).await?;
        create_times.push(start.elapsed());
        created.containers.push(response.container_id.clone());
        let request = v1::StartContainerRequest {
            container_id: response.container_id,
        };
        let start = Instant::now();
        call::<_, v1::StartContainerResponse>(&mut grpc, START_CONTAINER, request).await?;
        start_times.push(start.elapsed());
    }
    let containers = created.containers.len();
    // The raw side made exactly two calls (create, start) per container.
    let lifecycle_calls =
        docker_calls(bench.proxy, before).map(|count| count.saturating_sub(2 * containers as u64));
    report_against_raw(
        "CreateContainer (host-network pod)",
        &mut create_times,
        "raw docker create",
        &mut raw_create_times,
    );
    report_against_raw(
        "StartContainer",
        &mut start_times,
        "raw docker start",
        &mut raw_start_times,
    );
    if let Some(count) = lifecycle_calls {
        println!(
            "CreateContainer+StartContainer, Docker API calls: {count} for {containers} containers ({:.1} per container)",
            count as f64 / containers.max(1) as f64
        );
    }

    // The index learns of the new containers from dockerd's event stream.
    std::thread::sleep(SANDBOX_SETTLE);
    let (listed, ours) = running_bench_containers(&mut grpc, bench).await?;
    if ours != containers {
        return Err(XtaskError::Bench(format!(
            "ListContainers shows {ours} of the {containers} bench containers running"
        )));
    }
    let query_calls = bench.calls / CONTAINER_QUERY_SHARE;
    let (mut times, list_calls) = time_calls::<_, v1::ListContainersResponse>(
        &mut grpc,
        LIST_CONTAINERS,
        SANDBOX_WARMUP_CALLS,
        query_calls,
        bench.proxy,
        |_| v1::ListContainersRequest::default(),
    )
    .await?;
    report(
        &format!(
            "ListContainers, {listed} containers ({containers} running in the bench's sandboxes), {query_calls} sequential calls"
        ),
        &mut times,
    );
    report_docker_calls("ListContainers", list_calls, query_calls);

    let (mut times, status_calls) = time_calls::<_, v1::ContainerStatusResponse>(
        &mut grpc,
        CONTAINER_STATUS,
        SANDBOX_WARMUP_CALLS,
        query_calls,
        bench.proxy,
        |i| v1::ContainerStatusRequest {
            container_id: created.containers[i % containers].clone(),
            verbose: false,
        },
    )
    .await?;
    report(
        &format!(
            "ContainerStatus, {containers} containers in turn, {query_calls} sequential calls"
        ),
        &mut times,
    );
    report_docker_calls("ContainerStatus", status_calls, query_calls);

    let exec_request = |_: usize| v1::ExecSyncRequest {
        container_id: created.containers[0].clone(),
        cmd: EXEC_COMMAND.iter().map(|word| (*word).to_owned()).collect(),
        timeout: EXEC_TIMEOUT_SECS,
    };
    let first: v1::ExecSyncResponse = call(&mut grpc, EXEC_SYNC, exec_request(0)).await?;
    if first.exit_code != 0 {
        return Err(XtaskError::Bench(format!(
            "ExecSync {EXEC_COMMAND:?} exited with {}: {}",
            first.exit_code,
            String::from_utf8_lossy(&first.stderr)
        )));
    }
    let (mut times, exec_calls) = time_calls::<_, v1::ExecSyncResponse>(
        &mut grpc,
        EXEC_SYNC,
        EXEC_WARMUP_CALLS,
        EXEC_CALLS,
        bench.proxy,
        &exec_request,
    )
    .await?;
    report(
        &format!("ExecSync {EXEC_COMMAND:?}, one container, {EXEC_CALLS} sequential calls"),
        &mut times,
    );
    report_docker_calls("ExecSync", exec_calls, EXEC_CALLS);
    measure_status_under_exec_load(bench, &created.containers[0]).await
}

/// Status latency while [`HELD_EXECS`] ExecSync calls of
/// [`HELD_EXEC_COMMAND`] run in `container`. The ExecSyncs come from a
/// thread and connection of their own, as the kubelet's probes would;
/// Status is timed once dockerd shows every one of their processes, and
/// the figure waits for them to end.
async fn measure_status_under_exec_load(
    bench: &PodBench<'_>,
    container: &str,
) -> Result<(), XtaskError> {
    let socket = bench.socket.to_path_buf();
    let id = container.to_owned();
    let load = std::thread::Builder::new()
        .name("held-execs".to_owned())
        .spawn(move || hold_execs(socket, id))
        .map_err(|err| XtaskError::Bench(format!("cannot start the ExecSync thread: {err}")))?;
    let started = Instant::now();
    while held_execs_running(&bench.docker, container)? < HELD_EXECS {
        if load.is_finished() || started.elapsed() > HELD_EXEC_START {
            return Err(XtaskError::Bench(format!(
                "only {} of {HELD_EXECS} ExecSyncs started",
                held_execs_running(&bench.docker, container)?
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let calls = bench.calls / CONTAINER_QUERY_SHARE;
    let (mut times, _) =
        time_calls::<_, v1::StatusResponse>(&mut grpc, STATUS, 0, calls, None, |_| {
            v1::StatusRequest::default()
        })
        .await?;
    report(
        &format!(
            "Status while {HELD_EXECS} ExecSync({}) run, {calls} sequential calls",
            HELD_EXEC_COMMAND.join(" ")
        ),
        &mut times,
    );
    load.join()
        .map_err(|_| XtaskError::Bench("the ExecSync thread panicked".to_owned()))?
}

/// Makes [`HELD_EXECS`] concurrent ExecSync calls in `container` and
/// waits for their answers.
fn hold_execs(socket: PathBuf, container: String) -> Result<(), XtaskError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| XtaskError::Bench(format!("tokio runtime: {err}")))?;
    runtime.block_on(async {
        let grpc = Grpc::new(connect(socket).await?);
        let calls: Vec<_> = (0..HELD_EXECS)
            .map(|_| {
                let mut grpc = grpc.clone();
                let request = v1::ExecSyncRequest {
                    container_id: container.clone(),
                    cmd: HELD_EXEC_COMMAND
                        .iter()
                        .map(|word| (*word).to_owned())
                        .collect(),
                    timeout: HELD_EXEC_TIMEOUT_SECS,
                };
                tokio::spawn(async move {
                    call::<_, v1::ExecSyncResponse>(&mut grpc, EXEC_SYNC, request).await
                })
            })
            .collect();
        for held in calls {
            held.await
                .map_err(|err| XtaskError::Bench(format!("ExecSync task: {err}")))??;
        }
        Ok(())
    })
}

/// How many processes of `container` run [`HELD_EXEC_COMMAND`], as
/// dockerd's `/top` lists them: each is a row whose last column is the
/// quoted command line.
fn held_execs_running(docker: &DockerClient, container: &str) -> Result<usize, XtaskError> {
    let top = docker
        .request(
            "GET",
            &format!("/containers/{container}/top"),
            &[],
            None,
            None,
        )
        .map_err(docker_error)?;
    let row_end = format!("\"{}\"]", HELD_EXEC_COMMAND.join(" "));
    Ok(String::from_utf8_lossy(&top.body).matches(&row_end).count())
}

/// ContainerStats, cycling through the bench containers, then
/// ListContainerStats and ListPodSandboxStats selecting the bench's pods by
/// [`RUN_LABEL`]. A first reading of every container and pod, then
/// [`CPU_RATE_WAIT`], so the timed calls include the `usage_nano_cores`
/// computation.
async fn measure_stats(bench: &PodBench<'_>, created: &Created) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let containers = created.containers.len();
    let ours = HashMap::from([(RUN_LABEL.to_owned(), bench.run.clone())]);
    let list_request = |_: usize| v1::ListContainerStatsRequest {
        filter: Some(v1::ContainerStatsFilter {
            label_selector: ours.clone(),
            ..v1::ContainerStatsFilter::default()
        }),
    };
    let pod_request = |_: usize| v1::ListPodSandboxStatsRequest {
        filter: Some(v1::PodSandboxStatsFilter {
            label_selector: ours.clone(),
            ..v1::PodSandboxStatsFilter::default()
        }),
    };
    call::<_, v1::ListContainerStatsResponse>(&mut grpc, LIST_CONTAINER_STATS, list_request(0))
        .await?;
    call::<_, v1::ListPodSandboxStatsResponse>(&mut grpc, LIST_POD_SANDBOX_STATS, pod_request(0))
        .await?;
    std::thread::sleep(CPU_RATE_WAIT);

    let container_request = |i: usize| v1::ContainerStatsRequest {
        container_id: created.containers[i % containers].clone(),
    };
    let (mut times, stats_calls) = time_calls::<_, v1::ContainerStatsResponse>(
        &mut grpc,
        CONTAINER_STATS,
        containers,
        CONTAINER_STATS_CALLS,
        bench.proxy,
        container_request,
    )
    .await?;
    report(
        &format!(
            "ContainerStats, {containers} containers in turn, {CONTAINER_STATS_CALLS} sequential calls"
        ),
        &mut times,
    );
    report_docker_calls("ContainerStats", stats_calls, CONTAINER_STATS_CALLS);

    let listed: v1::ListContainerStatsResponse =
        call(&mut grpc, LIST_CONTAINER_STATS, list_request(0)).await?;
    let with_cpu = listed
        .stats
        .iter()
        .filter(|stats| {
            stats
                .cpu
                .as_ref()
                .is_some_and(|cpu| cpu.usage_nano_cores.is_some())
        })
        .count();
    if listed.stats.len() != containers || with_cpu != containers {
        return Err(XtaskError::Bench(format!(
            "ListContainerStats gives {} entries, {with_cpu} with usage_nano_cores, for the {containers} bench containers",
            listed.stats.len()
        )));
    }
    let (mut times, list_calls) = time_calls::<_, v1::ListContainerStatsResponse>(
        &mut grpc,
        LIST_CONTAINER_STATS,
        SANDBOX_WARMUP_CALLS,
        LIST_STATS_CALLS,
        bench.proxy,
        list_request,
    )
    .await?;
    report(
        &format!(
            "ListContainerStats, {containers} containers, {LIST_STATS_CALLS} sequential calls"
        ),
        &mut times,
    );
    report_docker_calls("ListContainerStats", list_calls, LIST_STATS_CALLS);

    let listed: v1::ListPodSandboxStatsResponse =
        call(&mut grpc, LIST_POD_SANDBOX_STATS, pod_request(0)).await?;
    let sandboxes = created.sandboxes.len();
    if listed.stats.len() != sandboxes {
        return Err(XtaskError::Bench(format!(
            "ListPodSandboxStats gives {} entries for the {sandboxes} bench sandboxes",
            listed.stats.len()
        )));
    }
    let (mut times, pod_calls) = time_calls::<_, v1::ListPodSandboxStatsResponse>(
        &mut grpc,
        LIST_POD_SANDBOX_STATS,
        SANDBOX_WARMUP_CALLS,
        LIST_STATS_CALLS,
        bench.proxy,
        pod_request,
    )
    .await?;
    report(
        &format!("ListPodSandboxStats, {sandboxes} sandboxes, {LIST_STATS_CALLS} sequential calls"),
        &mut times,
    );
    report_docker_calls("ListPodSandboxStats", pod_calls, LIST_STATS_CALLS);
    Ok(())
}

/// A pod start timed as one, [`POD_START_RUNS`] times, with the bench's
/// pods present: RunPodSandbox, CreateContainer and StartContainer of one
/// more pod, against a raw docker create and start of a sandbox and then
/// of a container joining its namespaces. Each sample's pod and raw pair
/// are removed before the next sample, so every sample, and the idle
/// figures after, see the same pods. Every ID goes into `created` as soon
/// as it exists and leaves it once removed, so the cleanup after a failure
/// meets only what is still there.
async fn measure_pod_start(bench: &PodBench<'_>, created: &mut Created) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let present = created.sandboxes.len();
    let mut raw_times = Vec::with_capacity(POD_START_RUNS);
    let mut start_times = Vec::with_capacity(POD_START_RUNS);
    let mut start_calls = bench.proxy.map(|_| 0);
    let mut kill_notice_times = Vec::with_capacity(POD_START_RUNS);
    // Interleaved, so a drift in dockerd's speed hits both sides alike.
    for run in 0..POD_START_RUNS {
        // Past the indices of the pods present, so names and log
        // directories stay apart from theirs.
        let i = BENCH_SANDBOXES + run;
        // Made by the kubelet before it creates a container.
        let log_directory = bench.log_directory(i).join(CONTAINER_NAME);
        fs::create_dir_all(&log_directory).map_err(|err| XtaskError::io(&log_directory, err))?;

        let start = Instant::now();
        let raw_sandbox_id =
            create_and_start_raw(bench, &raw_sandbox(&bench.pause_image, &bench.run), created)?;
        let raw_container_id = create_and_start_raw(
            bench,
            &raw_container(&bench.busybox_image, &bench.run, &raw_sandbox_id),
            created,
        )?;
        raw_times.push(start.elapsed());

        let before = bench.proxy.map(CountingProxy::requests);
        let start = Instant::now();
        let request = v1::RunPodSandboxRequest {
            config: Some(sandbox_config(bench, i)),
            runtime_handler: String::new(),
        };
        let sandbox_id = call::<_, v1::RunPodSandboxResponse>(&mut grpc, RUN_POD_SANDBOX, request)
            .await?
            .pod_sandbox_id;
        created.sandboxes.push(sandbox_id.clone());
        let request = v1::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(container_config(bench)),
            sandbox_config: Some(sandbox_config(bench, i)),
        };
        let container_id =
            call::<_, v1::CreateContainerResponse>(&mut grpc, CREATE_CONTAINER, request)
                .await?
                .container_id;
        created.containers.push(container_id.clone());
        let request = v1::StartContainerRequest {
            container_id: container_id.clone(),
        };
        call::<_, v1::StartContainerResponse>(&mut grpc, START_CONTAINER, request).await?;
        start_times.push(start.elapsed());
        start_calls = start_calls
            .zip(docker_calls(bench.proxy, before))
            .map(|(total, count)| total + count);
        kill_notice_times.push(kill_notice(bench, &mut grpc, &container_id).await?);

        stop_and_remove_container(&mut grpc, &container_id).await?;
        created.containers.retain(|id| *id != container_id);
        stop_and_remove_sandbox(&mut grpc, &sandbox_id).await?;
        created.sandboxes.retain(|id| *id != sandbox_id);
        // The container first: it is in the sandbox's namespaces.
        for raw_id in [raw_container_id, raw_sandbox_id] {
            remove_raw(&bench.docker, std::slice::from_ref(&raw_id))?;
            created.raw.retain(|id| *id != raw_id);
        }
    }
    report_against_raw(
        &format!(
            "pod start (RunPodSandbox+CreateContainer+StartContainer), {present} pods present"
        ),
        &mut start_times,
        "raw docker create+start ×2",
        &mut raw_times,
    );
    if let Some(count) = start_calls {
        println!(
            "pod start, Docker API calls: {count} in {POD_START_RUNS} pod starts ({:.1} per pod start)",
            count as f64 / POD_START_RUNS as f64
        );
    }
    report(
        &format!("docker kill until ContainerStatus says EXITED, {present} pods present"),
        &mut kill_notice_times,
    );
    Ok(())
}

/// Kills container `id` behind the runtime's back (a crash, the OOM
/// killer) and times how long ContainerStatus takes to report it exited.
async fn kill_notice(
    bench: &PodBench<'_>,
    grpc: &mut Grpc<Channel>,
    id: &str,
) -> Result<Duration, XtaskError> {
    bench
        .docker
        .post(&format!("/containers/{id}/kill"), None)
        .map_err(docker_error)?;
    let killed = Instant::now();
    loop {
        let request = v1::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let status: v1::ContainerStatusResponse = call(grpc, CONTAINER_STATUS, request).await?;
        let state = status.status.map(|status| status.state);
        if state == Some(v1::ContainerState::ContainerExited as i32) {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > KILL_NOTICE_GIVE_UP {
            return Err(XtaskError::Bench(format!(
                "container {id} still not reported exited {KILL_NOTICE_GIVE_UP:?} after docker kill"
            )));
        }
        // Nothing else is in flight on this client between two calls.
        std::thread::sleep(KILL_NOTICE_POLL);
    }
}

/// Creates and starts the raw container `body` describes, registering it
/// in `created` before starting it; returns its ID.
fn create_and_start_raw(
    bench: &PodBench<'_>,
    body: &ContainerCreate,
    created: &mut Created,
) -> Result<String, XtaskError> {
    let container: ContainerSummary = bench
        .docker
        .post_json("/containers/create", &body.to_json())
        .map_err(docker_error)?;
    created.raw.push(container.id.clone());
    bench
        .docker
        .post(&format!("/containers/{}/start", container.id), None)
        .map_err(docker_error)?;
    Ok(container.id)
}

/// The server's CPU use and Docker calls over [`IDLE_WINDOW`] in which no
/// RPC arrives, with the bench's pods present. Needs the server's process
/// and the proxy; without them says so.
fn measure_idle(bench: &PodBench<'_>) -> Result<(), XtaskError> {
    let (Some(pid), Some(proxy)) = (bench.server, bench.proxy) else {
        println!("idle figures: not measured (no server process or proxy with --endpoint)");
        return Ok(());
    };
    let cpu_before = cpu_seconds(pid)?;
    let calls_before = proxy.requests();
    let start = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu_before;
    let calls = proxy.requests() - calls_before;
    println!(
        "idle with {BENCH_SANDBOXES} pods, {:.0} s: server CPU {:.2} s ({:.3} % of one core); Docker API calls {calls} ({:.1} per minute)",
        elapsed,
        cpu,
        cpu / elapsed * 100.0,
        calls as f64 * 60.0 / elapsed
    );
    Ok(())
}

/// Sequential calls of the RPC at `path`: `warmup` untimed, then `calls`
/// timed, the `i`-th of each made by `request(i)`. Returns the times and
/// the Docker calls the proxy, if any, saw during the timed ones.
async fn time_calls<Req, Resp>(
    grpc: &mut Grpc<Channel>,
    path: &'static str,
    warmup: usize,
    calls: usize,
    proxy: Option<&CountingProxy>,
    request: impl Fn(usize) -> Req,
) -> Result<(Vec<Duration>, Option<u64>), XtaskError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    for i in 0..warmup {
        call::<_, Resp>(grpc, path, request(i)).await?;
    }
    let before = proxy.map(CountingProxy::requests);
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls {
        let request = request(i);
        let start = Instant::now();
        call::<_, Resp>(grpc, path, request).await?;
        times.push(start.elapsed());
    }
    Ok((times, docker_calls(proxy, before)))
}

/// Requests the proxy forwarded since `before`; `None` without a proxy.
fn docker_calls(proxy: Option<&CountingProxy>, before: Option<u64>) -> Option<u64> {
    Some(proxy?.requests() - before?)
}

fn report_docker_calls(what: &str, docker_calls: Option<u64>, calls: usize) {
    match docker_calls {
        Some(count) => println!(
            "{what}, Docker API calls when warm: {count} in {calls} calls ({:.3} per call)",
            count as f64 / calls.max(1) as f64
        ),
        None => println!("{what}, Docker API calls: not counted (no proxy with --endpoint)"),
    }
}

/// Prints the p50 of `ours` and of `raw`, measured in the same loop, and
/// the difference.
fn report_against_raw(what: &str, ours: &mut [Duration], raw_what: &str, raw: &mut [Duration]) {
    let ours_p50 = median(ours);
    let raw_p50 = median(raw);
    println!(
        "{what}, {} calls: p50 {:.1} ms; {raw_what} p50 {:.1} ms; overhead {:+.1} ms",
        ours.len(),
        ours_p50.as_secs_f64() * 1e3,
        raw_p50.as_secs_f64() * 1e3,
        (ours_p50.as_secs_f64() - raw_p50.as_secs_f64()) * 1e3,
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// A plain container of the sandbox image, as a raw docker user would
/// create it for the same job: host network, an IPC namespace other
/// containers may join, nothing else.
fn raw_sandbox(image: &str, run: &str) -> ContainerCreate {
    ContainerCreate {
        image: image.to_owned(),
        labels: [(RUN_LABEL.to_owned(), run.to_owned())].into(),
        host_config: CreateHostConfig {
            network_mode: "host".to_owned(),
            ipc_mode: SHAREABLE_IPC_MODE.to_owned(),
            ..CreateHostConfig::default()
        },
        ..ContainerCreate::default()
    }
}

/// The raw counterpart of a bench container, as a docker user would put a
/// process into the raw sandbox `joined`: its network and IPC namespaces,
/// the host's UTS namespace (it is a host-network pod), the same command.
fn raw_container(image: &str, run: &str, joined: &str) -> ContainerCreate {
    let join = format!("{JOIN_CONTAINER_PREFIX}{joined}");
    ContainerCreate {
        image: image.to_owned(),
        entrypoint: CONTAINER_COMMAND
            .iter()
            .map(|word| (*word).to_owned())
            .collect(),
        labels: [(RUN_LABEL.to_owned(), run.to_owned())].into(),
        host_config: CreateHostConfig {
            network_mode: join.clone(),
            ipc_mode: join,
            uts_mode: "host".to_owned(),
            ..CreateHostConfig::default()
        },
        ..ContainerCreate::default()
    }
}

fn sandbox_config(bench: &PodBench<'_>, i: usize) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: format!("bench-{i}"),
            uid: format!("dockshim-bench-{}-{i}", bench.run),
            namespace: SANDBOX_NAMESPACE.to_owned(),
            attempt: 0,
        }),
        log_directory: bench.log_directory(i).to_string_lossy().into_owned(),
        labels: HashMap::from([(RUN_LABEL.to_owned(), bench.run.clone())]),
        linux: Some(v1::LinuxPodSandboxConfig {
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(v1::NamespaceOption {
                    network: v1::NamespaceMode::Node as i32,
                    ..v1::NamespaceOption::default()
                }),
                ..v1::LinuxSandboxSecurityContext::default()
            }),
            ..v1::LinuxPodSandboxConfig::default()
        }),
        ..v1::PodSandboxConfig::default()
    }
}

/// The bench container as the kubelet would ask for it in a host-network
/// pod: the pod's network and IPC namespaces, its own PID namespace, a log
/// file in the sandbox's log directory, and the runtime's default seccomp
/// profile, so that dockerd applies the same confinement as to the raw
/// container.
fn container_config(bench: &PodBench<'_>) -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: CONTAINER_NAME.to_owned(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: bench.busybox_image.clone(),
            ..v1::ImageSpec::default()
        }),
        command: CONTAINER_COMMAND
            .iter()
            .map(|word| (*word).to_owned())
            .collect(),
        labels: HashMap::from([(RUN_LABEL.to_owned(), bench.run.clone())]),
        log_path: format!("{CONTAINER_NAME}/0.log"),
        linux: Some(v1::LinuxContainerConfig {
            security_context: Some(v1::LinuxContainerSecurityContext {
                namespace_options: Some(v1::NamespaceOption {
                    network: v1::NamespaceMode::Node as i32,
                    pid: v1::NamespaceMode::Container as i32,
                    ipc: v1::NamespaceMode::Pod as i32,
                    ..v1::NamespaceOption::default()
                }),
                seccomp: Some(v1::SecurityProfile {
                    profile_type: v1::security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..v1::LinuxContainerSecurityContext::default()
            }),
            ..v1::LinuxContainerConfig::default()
        }),
        ..v1::ContainerConfig::default()
    }
}

/// Stops and removes every container in `ids`, going on past failures;
/// the first failure is returned, the others printed.
async fn remove_containers(socket: &Path, ids: &[String]) -> Result<(), XtaskError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut grpc = Grpc::new(connect(socket.to_path_buf()).await?);
    let mut first = Ok(());
    for id in ids {
        if let Err(err) = stop_and_remove_container(&mut grpc, id).await {
            if first.is_ok() {
                first = Err(err);
            } else {
                eprintln!("bench: container {id}: {err}");
            }
        }
    }
    first
}

/// Stops and removes every sandbox in `ids`, going on past failures; the
/// first failure is returned, the others printed.
async fn remove_sandboxes(socket: &Path, ids: &[String]) -> Result<(), XtaskError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut grpc = Grpc::new(connect(socket.to_path_buf()).await?);
    let mut first = Ok(());
    for id in ids {
        if let Err(err) = stop_and_remove_sandbox(&mut grpc, id).await {
            if first.is_ok() {
                first = Err(err);
            } else {
                eprintln!("bench: sandbox {id}: {err}");
            }
        }
    }
    first
}

/// Stops the container at once, without a grace period, and removes it,
/// as the kubelet does.
async fn stop_and_remove_container(grpc: &mut Grpc<Channel>, id: &str) -> Result<(), XtaskError> {
    let stop = v1::StopContainerRequest {
        container_id: id.to_owned(),
        timeout: 0,
    };
    call::<_, v1::StopContainerResponse>(grpc, STOP_CONTAINER, stop).await?;
    let remove = v1::RemoveContainerRequest {
        container_id: id.to_owned(),
    };
    call::<_, v1::RemoveContainerResponse>(grpc, REMOVE_CONTAINER, remove).await?;
    Ok(())
}

/// Stops the sandbox and removes it, as the kubelet does.
async fn stop_and_remove_sandbox(grpc: &mut Grpc<Channel>, id: &str) -> Result<(), XtaskError> {
    let stop = v1::StopPodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    call::<_, v1::StopPodSandboxResponse>(grpc, STOP_POD_SANDBOX, stop).await?;
    let remove = v1::RemovePodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    call::<_, v1::RemovePodSandboxResponse>(grpc, REMOVE_POD_SANDBOX, remove).await?;
    Ok(())
}

/// Force-removes the raw containers newest first, so a container is gone
/// before the one whose namespaces it joined.
fn remove_raw(docker: &DockerClient, ids: &[String]) -> Result<(), XtaskError> {
    let mut first = Ok(());
    for id in ids.iter().rev() {
        if let Err(err) = docker.delete(&format!("/containers/{id}?force=1")) {
            if first.is_ok() {
                first = Err(docker_error(err));
            } else {
                eprintln!("bench: container {id}: {err}");
            }
        }
    }
    first
}

/// Fails, after force-removing them, if containers of this run are left:
/// sandboxes, CRI containers (told apart by `io.kubernetes.docker.type`)
/// or raw ones.
fn check_no_leftovers(docker: &DockerClient, run: &str) -> Result<(), XtaskError> {
    let filters = format!(r#"{{"label":["{RUN_LABEL}={run}"]}}"#);
    let left = docker
        .list_containers(true, Some(&filters))
        .map_err(docker_error)?;
    if left.is_empty() {
        return Ok(());
    }
    let of_type = |kind: &str| {
        left.iter()
            .filter(|container| {
                container
                    .labels
                    .get(CONTAINER_TYPE_LABEL)
                    .map(String::as_str)
                    == Some(kind)
            })
            .count()
    };
    let sandboxes = of_type(CONTAINER_TYPE_SANDBOX);
    let containers = of_type(CONTAINER_TYPE_CONTAINER);
    // dockerd lists newest first: the order `remove_raw` removes in.
    for container in &left {
        if let Err(err) = docker.delete(&format!("/containers/{}?force=1", container.id)) {
            eprintln!("bench: cannot remove leftover {}: {err}", container.id);
        }
    }
    Err(XtaskError::Bench(format!(
        "{} containers left behind ({sandboxes} sandboxes, {containers} CRI containers, {} raw); force-removed",
        left.len(),
        left.len() - sandboxes - containers
    )))
}

/// A unix socket in front of dockerd that forwards bytes both ways, one
/// thread per direction, and counts the HTTP requests clients send.
/// Its threads live until the bench process exits.
struct CountingProxy {
    requests: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(socket: &Path, upstream: &Path) -> Result<CountingProxy, XtaskError> {
        let listener = UnixListener::bind(socket).map_err(|err| XtaskError::io(socket, err))?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        let upstream = upstream.to_path_buf();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = match client {
                    Ok(client) => client,
                    Err(err) => {
                        eprintln!("bench: proxy accept: {err}");
                        return;
                    }
                };
                let upstream = upstream.clone();
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    if let Err(err) = forward(client, &upstream, &counter) {
                        // A peer closing mid-request is expected when
                        // dockshim drops a pooled connection.
                        if err.kind() != io::ErrorKind::BrokenPipe
                            && err.kind() != io::ErrorKind::ConnectionReset
                        {
                            eprintln!("bench: proxy: {err}");
                        }
                    }
                });
            }
        });
        Ok(CountingProxy { requests })
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Copies `client` to a new connection to `upstream` and back, counting
/// each request head before forwarding it, so a caller that has its answer
/// sees the count already raised.
fn forward(mut client: UnixStream, upstream: &Path, requests: &AtomicU64) -> io::Result<()> {
    let mut server = UnixStream::connect(upstream)?;
    let mut from_server = server.try_clone()?;
    let mut to_client = client.try_clone()?;
    std::thread::spawn(move || {
        // Either side closing ends the copy; the client then sees EOF.
        let _ = io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut heads = RequestHeads::default();
    let mut buffer = vec![0; PROXY_BUFFER];
    loop {
        let read = client.read(&mut buffer)?;
        if read == 0 {
            return server.shutdown(Shutdown::Write);
        }
        requests.fetch_add(heads.feed(&buffer[..read]), Ordering::SeqCst);
        server.write_all(&buffer[..read])?;
    }
}

/// Finds request heads in the client side of an HTTP/1.1 connection,
/// skipping `Content-Length` bodies. An upgraded (hijacked) connection or
/// an overlong head stops the counting on that connection.
#[derive(Default)]
struct RequestHeads {
    head: Vec<u8>,
    body_left: usize,
    stopped: bool,
}

impl RequestHeads {
    /// Number of request heads completed by `bytes`.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut count = 0;
        while !bytes.is_empty() && !self.stopped {
            if self.body_left > 0 {
                let skip = self.body_left.min(bytes.len());
                self.body_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let (&byte, rest) = match bytes.split_first() {
                Some(split) => split,
                None => break,
            };
            bytes = rest;
            self.head.push(byte);
            if self.head.len() > MAX_REQUEST_HEAD {
                self.stopped = true;
            } else if self.head.ends_with(b"\r\n\r\n") {
                count += 1;
                let head = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
                for line in head.lines() {
                    if let Some(length) = line.strip_prefix("content-length:") {
                        self.body_left = length.trim().parse().unwrap_or(0);
                    }
                    if line.starts_with("upgrade:") {
                        self.stopped = true;
                    }
                }
                self.head.clear();
            }
        }
        count
    }
}

/// A debug build of this client spends longer encoding and decoding a
/// call than the server spends answering it, which would blur every
/// latency. So the debug build (what `cargo xtask` runs) builds this task
/// with the workspace's `bench-client` profile and hands over to it.
fn run_optimised(root: &Path, flags: &[String]) -> Result<(), XtaskError> {
    cargo_build(root, &["--profile", "bench-client", "--package", "xtask"])?;
    let client = root.join("target/bench-client/xtask");
    let err = Command::new(&client)
        .arg("bench")
        .args(flags)
        .current_dir(root)
        .exec();
    Err(XtaskError::Bench(format!(
        "cannot run {}: {err}",
        client.display()
    )))
}

/// The dockshim binary to start: `--server`'s, or the release build, built
/// now (cargo leaves an up-to-date build alone).
fn server_binary(root: &Path, options: &Options) -> Result<PathBuf, XtaskError> {
    if let Some(server) = &options.server {
        return Ok(server.clone());
    }
    cargo_build(
        root,
        &["--release", "--package", "dockshim", "--bin", "dockshim"],
    )?;
    Ok(root.join("target/release/dockshim"))
}

/// `cargo build --quiet` with `args` in the workspace at `root`.
fn cargo_build(root: &Path, args: &[&str]) -> Result<(), XtaskError> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|err| XtaskError::Bench(format!("cargo build: {err}")))?;
    if !status.success() {
        return Err(XtaskError::Bench(format!(
            "cargo build {} failed",
            args.join(" ")
        )));
    }
    Ok(())
}

/// The value of the environment `variable`, or `default` when unset.
fn env_or(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

fn tempdir() -> Result<tempfile::TempDir, XtaskError> {
    tempfile::tempdir().map_err(|err| XtaskError::Bench(format!("tempdir: {err}")))
}

/// Starts the release binary on `dir/dockshim.sock` with `extra` flags and
/// waits for its socket.
fn start_dockshim(
    binary: &Path,
    dir: tempfile::TempDir,
    extra: &[&str],
) -> Result<Started, XtaskError> {
    let socket = dir.path().join("dockshim.sock");
    let child = Command::new(binary)
        .arg("--container-runtime-endpoint")
        .arg(format!("unix://{}", socket.display()))
        .arg("--root-directory")
        .arg(dir.path().join("root"))
        // Nothing of the machine's: no configuration file, no cri-dockerd
        // state to adopt.
        .args(["--config=", "--migrate-from-cri-dockerd=off"])
        .args(["--network-plugin", "none", "--log-level", "warn"])
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|err| XtaskError::Bench(format!("cannot start dockshim: {err}")))?;
    let mut started = Started { child, dir };
    let deadline = Instant::now() + START_TIMEOUT;
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if let Ok(Some(status)) = started.child.try_wait() {
            return Err(XtaskError::Bench(format!(
                "dockshim exited at start: {status}"
            )));
        }
        if Instant::now() > deadline {
            return Err(XtaskError::Bench(
                "dockshim did not open its socket".to_owned(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(started)
}

/// A dockshim whose Docker calls go through a [`CountingProxy`], with
/// `image` as its sandbox image and an `oom_score_adj` every host can
/// grant; with the proxy's endpoint. Bound in this order, the dockshim is
/// dropped, and stopped, before its proxy.
fn start_behind_proxy(
    binary: &Path,
    docker_socket: &Path,
    image: &str,
) -> Result<(CountingProxy, String, Started), XtaskError> {
    let dir = tempdir()?;
    let proxy_socket = dir.path().join("docker.sock");
    let proxy = CountingProxy::start(&proxy_socket, docker_socket)?;
    let proxy_endpoint = format!("unix://{}", proxy_socket.display());
    let started = start_dockshim(
        binary,
        dir,
        &[
            "--docker-endpoint",
            &proxy_endpoint,
            "--pod-infra-container-image",
            image,
            "--sandbox-oom-score-adj",
            "0",
        ],
    )?;
    Ok((proxy, proxy_endpoint, started))
}

/// How many containers ListContainers shows, and how many of them are this
/// run's and running.
async fn running_bench_containers(
    grpc: &mut Grpc<Channel>,
    bench: &PodBench<'_>,
) -> Result<(usize, usize), XtaskError> {
    let listed: v1::ListContainersResponse =
        call(grpc, LIST_CONTAINERS, v1::ListContainersRequest::default()).await?;
    let running = listed
        .containers
        .iter()
        .filter(|container| container.labels.get(RUN_LABEL) == Some(&bench.run))
        .filter(|container| container.state == v1::ContainerState::ContainerRunning as i32)
        .count();
    Ok((listed.containers.len(), running))
}

async fn connect(socket: PathBuf) -> Result<Channel, XtaskError> {
    // The URI is only a placeholder: every connection goes to the socket.
    let endpoint = Endpoint::from_static("http://localhost");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|err| XtaskError::Bench(format!("cannot connect: {err}")))
}

async fn call<Req, Resp>(
    grpc: &mut Grpc<Channel>,
    path: &'static str,
    request: Req,
) -> Result<Resp, XtaskError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready()
        .await
        .map_err(|err| XtaskError::Bench(format!("{path}: {err}")))?;
    let codec: ProstCodec<Req, Resp> = ProstCodec::default();
    grpc.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
    .map_err(|status| XtaskError::Bench(format!("{path}: {status}")))
}

fn report(what: &str, times: &mut [Duration]) {
    if times.is_empty() {
        return;
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
    );
}

fn runtime_crate_count(root: &Path) -> Result<usize, XtaskError> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--quiet",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--package",
            "dockshim",
        ])
        .current_dir(root)
        .output()
        .map_err(|err| XtaskError::Bench(format!("cargo tree: {err}")))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut crates: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .filter(|(name, _)| *name != "dockshim")
        .map(|(name, _)| name)
        .collect();
    crates.sort_unstable();
    crates.dedup();
    Ok(crates.len())
}

fn proc_status_field(pid: u32, field: &str) -> Result<String, XtaskError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = fs::read_to_string(&path).map_err(|err| XtaskError::io(&path, err))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .map(|rest| rest.trim_start_matches(':').trim().to_owned())
        .ok_or_else(|| XtaskError::Bench(format!("no {field} in {}", path.display())))
}

fn rss_kib(pid: u32) -> Result<u64, XtaskError> {
    let value = proc_status_field(pid, "VmRSS")?;
    value
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| XtaskError::Bench(format!("unreadable VmRSS {value:?}")))
}

/// User plus system CPU time of `pid`, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> Result<f64, XtaskError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = fs::read_to_string(&path).map_err(|err| XtaskError::io(&path, err))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let clock_ticks = 100.0; // USER_HZ is 100 on every Linux architecture dockshim targets.
    Ok((ticks(11) + ticks(12)) as f64 / clock_ticks)
}

fn machine_summary() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

/// The engine under the bench: its release, API version and image store.
fn engine_summary(docker_endpoint: &str) -> Result<String, XtaskError> {
    let docker_error = |err| XtaskError::Bench(format!("dockerd at {docker_endpoint}: {err}"));
    let docker =
        DockerClient::new(docker_endpoint, Duration::from_secs(60)).map_err(docker_error)?;
    let engine = docker.engine().map_err(docker_error)?;
    let store = if engine.image_store.is_containerd() {
        "containerd image store"
    } else {
        "graph driver"
    };
    Ok(format!(
        "Docker {} (API {}), {store} {}",
        engine.version,
        engine.api_version,
        engine.image_store.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::RequestHeads;

    #[test]
    fn request_heads_are_counted_across_reads_and_bodies_are_skipped() {
        let mut heads = RequestHeads::default();
        let first = b"POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 26\r\n\r\n";
        let body = b"{\"Image\":\"GET / HTTP/1.1\"}";
        let second = b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n";
        assert_eq!(heads.feed(&first[..10]), 0);
        assert_eq!(heads.feed(&first[10..]), 1);
        assert_eq!(heads.feed(body), 0);
        assert_eq!(heads.feed(second), 1);
    }

    #[test]
    fn an_upgraded_connection_is_no_longer_counted() {
        let mut heads = RequestHeads::default();
        let upgrade = b"POST /v1.41/exec/x/start HTTP/1.1\r\nUpgrade: tcp\r\n\r\n";
        assert_eq!(heads.feed(upgrade), 1);
        assert_eq!(heads.feed(b"GET / HTTP/1.1\r\n\r\n"), 0);
    }
}
