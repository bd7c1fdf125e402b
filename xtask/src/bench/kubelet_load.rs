//! `cargo xtask bench --kubelet-load PODS SECONDS`: what a CRI runtime
//! costs a node in the steady state of a kubelet with PODS pods, measured
//! from outside over SECONDS without running a kubelet.
//!
//! Set-up: PODS host-network sandboxes with one running busybox container
//! each, made through the CRI endpoint measured: a dockshim started for the
//! run behind the counting proxy (so its Docker calls are counted), or,
//! with `--endpoint`, any runtime already listening there. They are
//! removed after the window, also after a failure.
//!
//! The load is the kubelet's periodic CRI traffic at its default periods,
//! read from kubernetes/kubernetes pkg/kubelet (a 1.29 or later tree: it
//! has `genericPlegRelistPeriod` and `ImageMaximumGCAge`); every activity
//! starts at the window's start, as `wait.Until` runs its function at once:
//! - every 1 s, the PLEG relist (`genericPlegRelistPeriod`,
//!   `GenericPLEG.relist` → `GetPods(all)`): ListPodSandbox and
//!   ListContainers, unfiltered;
//! - every 2 s, housekeeping (`housekeepingPeriod`, `HandlePodCleanups` →
//!   `runtimeCache.ForceUpdateIfOlder` → `GetPods(running)`):
//!   ListPodSandbox of ready sandboxes and ListContainers of running ones;
//! - every 5 s, the runtime health check (`wait.Until(kl.updateRuntimeUp,
//!   5*time.Second)` in `Kubelet.Run`): Status;
//! - every 10 s, the node status (`nodeStatusUpdateFrequency`, whose
//!   `VersionInfo` setter asks the runtime): Version;
//! - every 10 s, the eviction manager's summary (`evictionMonitoringPeriod`,
//!   the CRI stats provider's `ListPodStats` and `ImageFsStats`):
//!   ListContainers, ListPodSandbox, ListContainerStats, ImageFsInfo; with
//!   `--pod-stats-from-cri` (the `PodAndContainerStatsFromCRI` gate)
//!   ListPodSandboxStats instead of ListContainerStats;
//! - every 30 s, the image cache behind the node status' image list
//!   (`realImageGCManager.Start`): ListImages;
//! - every 60 s, container garbage collection (`ContainerGCPeriod`,
//!   `evictContainers` and `evictSandboxes`): ListContainers twice and
//!   ListPodSandbox, unfiltered;
//! - every 300 s, image detection and image garbage collection
//!   (`realImageGCManager.Start`, `ImageGCPeriod`): ListImages,
//!   ListPodSandbox, ListContainers, ImageFsInfo.
//!
//! PodSandboxStatus and ContainerStatus follow only a relist that found a
//! pod changed, which in this steady state is none; a pod worker's resync
//! (`--sync-frequency`, 1 min) reads the PLEG's cache, not the runtime.
//! Probes, metrics-server scrapes and log reads are not part of the load.
//! As the kubelet does, runtime and image calls go over two connections;
//! the activities run in turn on one client thread.
//!
//! With `--idle-baseline`, an idle window of the same length comes first,
//! the pods present and no call made, and its figures are printed too:
//! dockerd's CPU time is the whole daemon's, and a shared dockerd works for
//! others in the same window.
//!
//! Figures, one `kubelet-load <what>: <value>` line each: the runtime's and
//! dockerd's CPU seconds (utime + stime from /proc/<pid>/stat) over the
//! window, the runtime's RSS at its end and its peak, the CRI calls made
//! per method, and the Docker calls the runtime made (counted only for the
//! dockshim the bench starts). Processes are found by the unix socket they
//! listen on, or named with `--runtime-pid` and `--docker-pid`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use dockshim::api::v1;
use tonic::client::Grpc;
use tonic::transport::Channel;

use super::{
    call, check_no_leftovers, connect, container_config, cpu_seconds, engine_summary, env_or,
    machine_summary, proc_status_field, remove_containers, remove_sandboxes,
    running_bench_containers, sandbox_config, server_binary, start_behind_proxy, CountingProxy,
    Created, Options, PodBench, CREATE_CONTAINER, DEFAULT_PAUSE_IMAGE, IMAGE_FS_INFO,
    LIST_CONTAINERS, LIST_CONTAINER_STATS, LIST_IMAGES, LIST_POD_SANDBOX, LIST_POD_SANDBOX_STATS,
    PAUSE_IMAGE_VARIABLE, RUN_POD_SANDBOX, START_CONTAINER, STATUS, VERSION,
};
use crate::XtaskError;

/// `genericPlegRelistPeriod` in pkg/kubelet/kubelet.go.
const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// `housekeepingPeriod` in pkg/kubelet/kubelet.go.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(2);
/// The period of `updateRuntimeUp`, written inline in `Kubelet.Run`
/// (pkg/kubelet/kubelet.go).
const RUNTIME_UP_PERIOD: Duration = Duration::from_secs(5);
/// The default of `nodeStatusUpdateFrequency`
/// (pkg/kubelet/apis/config/v1beta1/defaults.go).
const NODE_STATUS_PERIOD: Duration = Duration::from_secs(10);
/// `evictionMonitoringPeriod` in pkg/kubelet/kubelet.go.
const EVICTION_MONITORING_PERIOD: Duration = Duration::from_secs(10);
/// The image cache refresh written inline in `realImageGCManager.Start`
/// (pkg/kubelet/images/image_gc_manager.go).
const IMAGE_CACHE_PERIOD: Duration = Duration::from_secs(30);
/// `ContainerGCPeriod` in pkg/kubelet/kubelet.go.
const CONTAINER_GC_PERIOD: Duration = Duration::from_secs(60);
/// `ImageGCPeriod` in pkg/kubelet/kubelet.go, which is also the period of
/// `detectImages` in `realImageGCManager.Start`.
const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// The CRI version the kubelet sends in VersionRequest
/// (`kubeRuntimeAPIVersion` in pkg/kubelet/kuberuntime).
const KUBELET_CRI_VERSION: &str = "0.1.0";
/// How long the runtime gets after the pods are made, so the work of
/// making them (event handling, first stats readings) stays out of the
/// window.
const LOAD_SETTLE: Duration = Duration::from_secs(5);
/// systemd's PID: with socket activation it holds the listening socket
/// too, but it is not the process measured.
const INIT_PID: u32 = 1;
/// The `Flags` of a listening socket in /proc/net/unix (`__SO_ACCEPTCON`).
const LISTENING_FLAGS: &str = "00010000";

/// One CRI call the kubelet makes, with its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    ListPodSandbox,
    ListReadyPodSandboxes,
    ListContainers,
    ListRunningContainers,
    Status,
    Version,
    ListContainerStats,
    ListPodSandboxStats,
    ImageFsInfo,
    ListImages,
}

impl Call {
    /// The CRI method, as the figures name it.
    fn method(self) -> &'static str {
        let path = match self {
            Call::ListPodSandbox | Call::ListReadyPodSandboxes => LIST_POD_SANDBOX,
            Call::ListContainers | Call::ListRunningContainers => LIST_CONTAINERS,
            Call::Status => STATUS,
            Call::Version => VERSION,
            Call::ListContainerStats => LIST_CONTAINER_STATS,
            Call::ListPodSandboxStats => LIST_POD_SANDBOX_STATS,
            Call::ImageFsInfo => IMAGE_FS_INFO,
            Call::ListImages => LIST_IMAGES,
        };
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// One of the kubelet's periodic activities and the calls it makes, in
/// order.
struct Activity {
    period: Duration,
    calls: &'static [Call],
}

/// The kubelet's periodic activities at their default periods (see the
/// module documentation for where each comes from).
fn kubelet_activities(pod_stats_from_cri: bool) -> [Activity; 8] {
    let stats_pass: &'static [Call] = if pod_stats_from_cri {
        &[
            Call::ListContainers,
            Call::ListPodSandbox,
            Call::ListPodSandboxStats,
            Call::ImageFsInfo,
        ]
    } else {
        &[
            Call::ListContainers,
            Call::ListPodSandbox,
            Call::ListContainerStats,
            Call::ImageFsInfo,
        ]
    };
    [
        Activity {
            period: RELIST_PERIOD,
            calls: &[Call::ListPodSandbox, Call::ListContainers],
        },
        Activity {
            period: HOUSEKEEPING_PERIOD,
            calls: &[Call::ListReadyPodSandboxes, Call::ListRunningContainers],
        },
        Activity {
            period: RUNTIME_UP_PERIOD,
            calls: &[Call::Status],
        },
        Activity {
            period: NODE_STATUS_PERIOD,
            calls: &[Call::Version],
        },
        Activity {
            period: EVICTION_MONITORING_PERIOD,
            calls: stats_pass,
        },
        Activity {
            period: IMAGE_CACHE_PERIOD,
            calls: &[Call::ListImages],
        },
        Activity {
            period: CONTAINER_GC_PERIOD,
            calls: &[
                Call::ListContainers,
                Call::ListContainers,
                Call::ListPodSandbox,
            ],
        },
        Activity {
            period: IMAGE_GC_PERIOD,
            calls: &[
                Call::ListImages,
                Call::ListPodSandbox,
                Call::ListContainers,
                Call::ImageFsInfo,
            ],
        },
    ]
}

/// Every run of an activity in a window of length `window`, as (offset
/// from the window's start, index into `activities`), in time order; runs
/// due at the same moment keep the order of `activities`.
fn timetable(activities: &[Activity], window: Duration) -> Vec<(Duration, usize)> {
    let mut runs = Vec::new();
    for (index, activity) in activities.iter().enumerate() {
        let mut at = Duration::ZERO;
        while at < window && !activity.period.is_zero() {
            runs.push((at, index));
            at += activity.period;
        }
    }
    runs.sort_unstable();
    runs
}

/// CRI calls per method that `runs` of `activities` make.
fn calls_per_method(
    activities: &[Activity],
    runs: &[(Duration, usize)],
) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for &(_, index) in runs {
        for call in activities.get(index).map_or(&[][..], |a| a.calls) {
            *counts.entry(call.method()).or_insert(0) += 1;
        }
    }
    counts
}

pub(super) fn run(
    root: &Path,
    options: &Options,
    pods: usize,
    window: Duration,
) -> Result<(), XtaskError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| XtaskError::Bench(format!("tokio runtime: {err}")))?;
    let docker_endpoint = format!("unix://{}", options.docker_socket.display());
    println!("machine: {}", machine_summary());
    println!("docker engine: {}", engine_summary(&docker_endpoint)?);
    let image = env_or(PAUSE_IMAGE_VARIABLE, DEFAULT_PAUSE_IMAGE);

    match &options.endpoint {
        Some(socket) => {
            let runtime_pid = match options.runtime_pid {
                Some(pid) => pid,
                None => listening_pid(socket, "--runtime-pid")?,
            };
            let bench = PodBench::new(socket, &docker_endpoint, None, Some(runtime_pid), image, 0)?;
            load_figures(&runtime, &bench, options, pods, window)
        }
        None => {
            let binary = server_binary(root, options)?;
            let (proxy, _, started) = start_behind_proxy(&binary, &options.docker_socket, &image)?;
            let socket = started.dir.path().join("dockshim.sock");
            let bench = PodBench::new(
                &socket,
                &docker_endpoint,
                Some(&proxy),
                Some(started.child.id()),
                image,
                0,
            )?;
            load_figures(&runtime, &bench, options, pods, window)
        }
    }
}

/// Makes the pods, runs the load, prints the figures and removes the pods;
/// what is left behind is an error.
fn load_figures(
    runtime: &tokio::runtime::Runtime,
    bench: &PodBench<'_>,
    options: &Options,
    pods: usize,
    window: Duration,
) -> Result<(), XtaskError> {
    let mut created = Created::default();
    let measured = runtime.block_on(async {
        make_pods(bench, pods, &mut created).await?;
        std::thread::sleep(LOAD_SETTLE);
        run_load(bench, options, pods, window).await
    });
    let containers_removed = runtime.block_on(remove_containers(bench.socket, &created.containers));
    let sandboxes_removed = runtime.block_on(remove_sandboxes(bench.socket, &created.sandboxes));
    let leftovers = check_no_leftovers(&bench.docker, &bench.run);
    let mut outcome = Ok(());
    for result in [measured, containers_removed, sandboxes_removed, leftovers] {
        match (result, &outcome) {
            (Err(err), Ok(())) => outcome = Err(err),
            (Err(err), Err(_)) => eprintln!("bench: also: {err}"),
            (Ok(()), _) => {}
        }
    }
    outcome
}

/// `pods` host-network pods of one running busybox container each, made
/// as the kubelet makes them; every ID goes into `created` as soon as it
/// exists.
async fn make_pods(
    bench: &PodBench<'_>,
    pods: usize,
    created: &mut Created,
) -> Result<(), XtaskError> {
    let mut grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    for i in 0..pods {
        // Made by the kubelet before it creates a container.
        let log_directory = bench.log_directory(i).join(super::CONTAINER_NAME);
        fs::create_dir_all(&log_directory).map_err(|err| XtaskError::io(&log_directory, err))?;
        let request = v1::RunPodSandboxRequest {
            config: Some(sandbox_config(bench, i)),
            runtime_handler: String::new(),
        };
        let sandbox_id = call::<_, v1::RunPodSandboxResponse>(&mut grpc, RUN_POD_SANDBOX, request)
            .await?
            .pod_sandbox_id;
        created.sandboxes.push(sandbox_id.clone());
        let request = v1::CreateContainerRequest {
            pod_sandbox_id: sandbox_id,
            config: Some(container_config(bench)),
            sandbox_config: Some(sandbox_config(bench, i)),
        };
        let container_id =
            call::<_, v1::CreateContainerResponse>(&mut grpc, CREATE_CONTAINER, request)
                .await?
                .container_id;
        created.containers.push(container_id.clone());
        let request = v1::StartContainerRequest { container_id };
        call::<_, v1::StartContainerResponse>(&mut grpc, START_CONTAINER, request).await?;
    }
    Ok(())
}

/// The window: checks the pods run, follows the timetable, prints the
/// figures.
async fn run_load(
    bench: &PodBench<'_>,
    options: &Options,
    pods: usize,
    window: Duration,
) -> Result<(), XtaskError> {
    // Runtime and image service each get a connection, as the kubelet's
    // remote runtime and image clients dial separately.
    let mut runtime_grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let mut image_grpc = Grpc::new(connect(bench.socket.to_path_buf()).await?);
    let (_, running) = running_bench_containers(&mut runtime_grpc, bench).await?;
    if running != pods {
        return Err(XtaskError::Bench(format!(
            "ListContainers shows {running} of the {pods} load containers running"
        )));
    }

    let runtime_pid = bench
        .server
        .ok_or_else(|| XtaskError::Bench("no runtime process to measure".to_owned()))?;
    let docker_pid = match options.docker_pid {
        Some(pid) => pid,
        None => listening_pid(&options.docker_socket, "--docker-pid")?,
    };
    let activities = kubelet_activities(options.pod_stats_from_cri);
    let runs = timetable(&activities, window);
    let mut in_calls = Duration::ZERO;
    let mut most_late = Duration::ZERO;

    // The pods present and no call arriving: what the runtime and a
    // possibly shared dockerd spend without the load.
    let idle = if options.idle_baseline {
        let meter = Meter::start(runtime_pid, docker_pid, bench.proxy)?;
        std::thread::sleep(window);
        Some(meter.read()?)
    } else {
        None
    };

    let load_before = load_average();
    let meter = Meter::start(runtime_pid, docker_pid, bench.proxy)?;
    let start = meter.start;
    for &(offset, index) in &runs {
        let due = start + offset;
        let now = Instant::now();
        if due > now {
            // Nothing is in flight between two activities.
            std::thread::sleep(due - now);
        } else {
            most_late = most_late.max(now - due);
        }
        let calls = activities
            .get(index)
            .map_or(&[][..], |activity| activity.calls);
        for &kubelet_call in calls {
            let began = Instant::now();
            make_call(kubelet_call, &mut runtime_grpc, &mut image_grpc).await?;
            in_calls += began.elapsed();
        }
    }
    let until_end = (start + window).saturating_duration_since(Instant::now());
    std::thread::sleep(until_end);
    let used = meter.read()?;
    let load_after = load_average();
    let Used {
        seconds: elapsed,
        runtime_cpu,
        docker_cpu,
        docker_calls,
    } = used;

    let figure = |what: &str, value: String| println!("kubelet-load {what}: {value}");
    figure("pods", pods.to_string());
    figure("window", format!("{elapsed:.1} s"));
    figure(
        "schedule",
        if options.pod_stats_from_cri {
            "kubelet defaults, PodAndContainerStatsFromCRI".to_owned()
        } else {
            "kubelet defaults".to_owned()
        },
    );
    figure("runtime process", process_name(runtime_pid));
    figure("dockerd process", process_name(docker_pid));
    figure("runtime CPU", format!("{runtime_cpu:.2} s"));
    figure("dockerd CPU", format!("{docker_cpu:.2} s"));
    figure(
        "runtime+dockerd CPU",
        format!(
            "{:.2} s ({:.3} % of one core)",
            runtime_cpu + docker_cpu,
            (runtime_cpu + docker_cpu) / elapsed * 100.0
        ),
    );
    figure(
        "runtime RSS at end",
        format!("{} KiB", status_kib(runtime_pid, "VmRSS")?),
    );
    figure(
        "runtime peak RSS",
        format!("{} KiB", status_kib(runtime_pid, "VmHWM")?),
    );
    // Every run was made: a failed call ends the load.
    let made = calls_per_method(&activities, &runs);
    let total: u64 = made.values().sum();
    figure(
        "CRI calls",
        format!("{total} ({:.1} per second)", total as f64 / elapsed),
    );
    for (method, count) in &made {
        figure(&format!("CRI calls {method}"), count.to_string());
    }
    figure(
        "CRI time in calls",
        format!(
            "{:.3} s ({:.2} ms per call)",
            in_calls.as_secs_f64(),
            in_calls.as_secs_f64() * 1e3 / total.max(1) as f64
        ),
    );
    figure(
        "most behind schedule",
        format!("{:.1} ms", most_late.as_secs_f64() * 1e3),
    );
    figure(
        "Docker API calls",
        match docker_calls {
            Some(count) => format!("{count} ({:.2} per second)", count as f64 / elapsed),
            None => "not counted (no proxy with --endpoint)".to_owned(),
        },
    );
    figure(
        "machine load average",
        format!("{load_before} at start, {load_after} at end"),
    );
    if let Some(idle) = idle {
        figure("idle window", format!("{:.1} s", idle.seconds));
        figure("idle runtime CPU", format!("{:.2} s", idle.runtime_cpu));
        figure("idle dockerd CPU", format!("{:.2} s", idle.docker_cpu));
        figure(
            "idle Docker API calls",
            match idle.docker_calls {
                Some(count) => count.to_string(),
                None => "not counted (no proxy with --endpoint)".to_owned(),
            },
        );
    }
    Ok(())
}

/// Readings of the runtime's and dockerd's CPU time and of the proxy's
/// count at the start of a window.
struct Meter<'a> {
    runtime_pid: u32,
    docker_pid: u32,
    proxy: Option<&'a CountingProxy>,
    start: Instant,
    runtime_cpu: f64,
    docker_cpu: f64,
    docker_calls: Option<u64>,
}

/// What a window cost, from a [`Meter`].
struct Used {
    seconds: f64,
    runtime_cpu: f64,
    docker_cpu: f64,
    /// Docker calls the runtime made; `None` without the proxy.
    docker_calls: Option<u64>,
}

impl<'a> Meter<'a> {
    fn start(
        runtime_pid: u32,
        docker_pid: u32,
        proxy: Option<&'a CountingProxy>,
    ) -> Result<Meter<'a>, XtaskError> {
        Ok(Meter {
            runtime_pid,
            docker_pid,
            proxy,
            runtime_cpu: cpu_seconds(runtime_pid)?,
            docker_cpu: cpu_seconds(docker_pid)?,
            docker_calls: proxy.map(CountingProxy::requests),
            start: Instant::now(),
        })
    }

    fn read(&self) -> Result<Used, XtaskError> {
        Ok(Used {
            seconds: self.start.elapsed().as_secs_f64(),
            runtime_cpu: cpu_seconds(self.runtime_pid)? - self.runtime_cpu,
            docker_cpu: cpu_seconds(self.docker_pid)? - self.docker_cpu,
            docker_calls: self
                .proxy
                .zip(self.docker_calls)
                .map(|(proxy, before)| proxy.requests() - before),
        })
    }
}

/// Makes one kubelet call, runtime calls over `runtime`, image calls over
/// `image`.
async fn make_call(
    kubelet_call: Call,
    runtime: &mut Grpc<Channel>,
    image: &mut Grpc<Channel>,
) -> Result<(), XtaskError> {
    match kubelet_call {
        Call::ListPodSandbox => {
            let request = v1::ListPodSandboxRequest::default();
            call::<_, v1::ListPodSandboxResponse>(runtime, LIST_POD_SANDBOX, request).await?;
        }
        Call::ListReadyPodSandboxes => {
            let request = v1::ListPodSandboxRequest {
                filter: Some(v1::PodSandboxFilter {
                    state: Some(v1::PodSandboxStateValue {
                        state: v1::PodSandboxState::SandboxReady as i32,
                    }),
                    ..v1::PodSandboxFilter::default()
                }),
            };
            call::<_, v1::ListPodSandboxResponse>(runtime, LIST_POD_SANDBOX, request).await?;
        }
        Call::ListContainers => {
            let request = v1::ListContainersRequest::default();
            call::<_, v1::ListContainersResponse>(runtime, LIST_CONTAINERS, request).await?;
        }
        Call::ListRunningContainers => {
            let request = v1::ListContainersRequest {
                filter: Some(v1::ContainerFilter {
                    state: Some(v1::ContainerStateValue {
                        state: v1::ContainerState::ContainerRunning as i32,
                    }),
                    ..v1::ContainerFilter::default()
                }),
            };
            call::<_, v1::ListContainersResponse>(runtime, LIST_CONTAINERS, request).await?;
        }
        Call::Status => {
            let request = v1::StatusRequest::default();
            call::<_, v1::StatusResponse>(runtime, STATUS, request).await?;
        }
        Call::Version => {
            let request = v1::VersionRequest {
                version: KUBELET_CRI_VERSION.to_owned(),
            };
            call::<_, v1::VersionResponse>(runtime, VERSION, request).await?;
        }
        Call::ListContainerStats => {
            let request = v1::ListContainerStatsRequest::default();
            call::<_, v1::ListContainerStatsResponse>(runtime, LIST_CONTAINER_STATS, request)
                .await?;
        }
        Call::ListPodSandboxStats => {
            let request = v1::ListPodSandboxStatsRequest::default();
            call::<_, v1::ListPodSandboxStatsResponse>(runtime, LIST_POD_SANDBOX_STATS, request)
                .await?;
        }
        Call::ImageFsInfo => {
            let request = v1::ImageFsInfoRequest::default();
            call::<_, v1::ImageFsInfoResponse>(image, IMAGE_FS_INFO, request).await?;
        }
        Call::ListImages => {
            let request = v1::ListImagesRequest::default();
            call::<_, v1::ListImagesResponse>(image, LIST_IMAGES, request).await?;
        }
    }
    Ok(())
}

/// The process listening on the unix socket `socket`: the one holding the
/// socket's inode (from /proc/net/unix) among its descriptors, leaving out
/// systemd, which holds it too under socket activation. `flag` is how the
/// user names the process instead.
fn listening_pid(socket: &Path, flag: &str) -> Result<u32, XtaskError> {
    let table_path = Path::new("/proc/net/unix");
    let table = fs::read_to_string(table_path).map_err(|err| XtaskError::io(table_path, err))?;
    // The socket may have been bound under another spelling of its path
    // (/var/run is a link to /run).
    let wanted = fs::canonicalize(socket).map_err(|err| XtaskError::io(socket, err))?;
    let inodes = listening_inodes(&table, |bound| {
        Path::new(bound) == socket || fs::canonicalize(bound).is_ok_and(|path| path == wanted)
    });
    let own = std::process::id();
    let mut holders = Vec::new();
    let processes = fs::read_dir("/proc").map_err(|err| XtaskError::io(Path::new("/proc"), err))?;
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || pid == INIT_PID {
            continue;
        }
        // Processes that ended meanwhile, or whose descriptors are not
        // readable, are not the listener.
        let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = descriptors.flatten().any(|descriptor| {
            fs::read_link(descriptor.path())
                .ok()
                .and_then(|target| socket_inode(&target.to_string_lossy()))
                .is_some_and(|inode| inodes.contains(&inode))
        });
        if holds {
            holders.push(pid);
        }
    }
    match holders.as_slice() {
        [pid] => Ok(*pid),
        [] => Err(XtaskError::Bench(format!(
            "no process listens on {}; name it with {flag} PID",
            socket.display()
        ))),
        several => Err(XtaskError::Bench(format!(
            "processes {several:?} all hold {}; name one with {flag} PID",
            socket.display()
        ))),
    }
}

/// Inodes of the listening sockets in the text of /proc/net/unix whose
/// path `bound_at` accepts. Each line after the header reads `Num RefCount
/// Protocol Flags Type St Inode [Path]`.
fn listening_inodes(table: &str, bound_at: impl Fn(&str) -> bool) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, _, flags, _, _, inode, path]
                    if *flags == LISTENING_FLAGS && bound_at(path) =>
                {
                    inode.parse().ok()
                }
                _ => None,
            }
        })
        .collect()
}

/// The inode in a descriptor link of the form `socket:[INODE]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A `kB` field of /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64, XtaskError> {
    let value = proc_status_field(pid, field)?;
    value
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| XtaskError::Bench(format!("unreadable {field} {value:?}")))
}

/// `PID (command)`, the command from /proc/<pid>/comm.
fn process_name(pid: u32) -> String {
    let command = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("{pid} ({})", command.trim())
}

/// The one-minute load average, from /proc/loadavg: the machine is shared,
/// and the figures mean little without it.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_kubelet_defaults_relists_every_second_and_asks_status_every_five() {
        let activities = kubelet_activities(false);
        let runs = timetable(&activities, Duration::from_secs(60));
        let calls = calls_per_method(&activities, &runs);
        // 60 relists, 6 stats passes, 1 container GC, 1 image GC.
        assert_eq!(calls["ListPodSandbox"], 60 + 30 + 6 + 1 + 1);
        assert_eq!(calls["ListContainers"], 60 + 30 + 6 + 2 + 1);
        assert_eq!(calls["Status"], 12);
        assert_eq!(calls["Version"], 6);
        assert_eq!(calls["ListContainerStats"], 6);
        assert_eq!(calls["ImageFsInfo"], 6 + 1);
        assert_eq!(calls["ListImages"], 2 + 1);
        assert!(!calls.contains_key("ListPodSandboxStats"));
    }

    #[test]
    fn pod_stats_from_cri_ask_list_pod_sandbox_stats_instead_of_list_container_stats() {
        let activities = kubelet_activities(true);
        let runs = timetable(&activities, Duration::from_secs(20));
        let calls = calls_per_method(&activities, &runs);
        assert_eq!(calls["ListPodSandboxStats"], 2);
        assert!(!calls.contains_key("ListContainerStats"));
    }

    #[test]
    fn the_timetable_is_in_time_order_and_ends_before_the_window() {
        let activities = kubelet_activities(false);
        let window = Duration::from_millis(4_500);
        let runs = timetable(&activities, window);
        assert!(runs.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        assert!(runs.iter().all(|(at, _)| *at < window));
        // The relist comes first at every second: the activities' order.
        assert_eq!(runs[0], (Duration::ZERO, 0));
        let relists = runs.iter().filter(|(_, index)| *index == 0).count();
        assert_eq!(relists, 5);
    }

    #[test]
    fn only_listening_sockets_at_the_path_are_found() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 27337 /run/docker.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31010 /run/docker.sock\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 27400 /run/containerd/containerd.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31011\n";
        let found = listening_inodes(table, |path| path == "/run/docker.sock");
        assert_eq!(found, vec![27337]);
    }

    #[test]
    fn a_socket_descriptor_link_names_its_inode() {
        assert_eq!(socket_inode("socket:[27337]"), Some(27337));
        assert_eq!(socket_inode("pipe:[27337]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }
}
