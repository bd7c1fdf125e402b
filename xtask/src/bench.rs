//! `cargo xtask bench`: figures for the README, measured against a live CRI
//! endpoint with an independent gRPC client (tonic).
//!
//! Without `--endpoint` it builds the release binary, starts it on a
//! temporary socket against the local dockerd, and also reports the
//! stripped binary size, idle RSS and the runtime crate count. With
//! `--endpoint unix:///path` it measures any CRI runtime already running
//! there, so dockshim and another runtime can be compared in one sitting.
//! It prints figures; it asserts nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dockshim::cri::v1;
use dockshim::docker::{path_with_query, DockerClient};
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

use crate::XtaskError;

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
/// The dockerd the bench images are created in.
const DOCKER_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// An empty tar archive (two zero blocks): each bench image is an empty
/// layer whose configuration differs by a label.
const EMPTY_TAR: [u8; 1024] = [0; 1024];

struct Options {
    endpoint: Option<PathBuf>,
    calls: usize,
}

fn parse(flags: &[String]) -> Result<Options, XtaskError> {
    let mut options = Options {
        endpoint: None,
        calls: DEFAULT_CALLS,
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
            "--calls" => {
                let calls = value()?;
                options.calls = calls
                    .parse()
                    .map_err(|_| XtaskError::Usage(format!("--calls {calls}: not a count")))?;
            }
            other => return Err(XtaskError::Usage(format!("unknown bench flag `{other}`"))),
        }
    }
    Ok(options)
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
    let options = parse(flags)?;
    // One client thread: on a small machine a multi-threaded client would
    // compete with the server for the same cores and blur its latency.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| XtaskError::Bench(format!("tokio runtime: {err}")))?;

    let (socket, started) = match &options.endpoint {
        Some(path) => (path.clone(), None),
        None => {
            let started = start_dockshim(root)?;
            (started.dir.path().join("dockshim.sock"), Some(started))
        }
    };
    println!("machine: {}", machine_summary());
    if let Some(started) = &started {
        let binary = root.join("target/release/dockshim");
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
    image_figures(&runtime, &socket)?;

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
    fn create(count: usize) -> Result<BenchImages, XtaskError> {
        let docker_error = |err| XtaskError::Bench(format!("dockerd: {err}"));
        let docker =
            DockerClient::new(DOCKER_ENDPOINT, Duration::from_secs(60)).map_err(docker_error)?;
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
fn image_figures(runtime: &tokio::runtime::Runtime, socket: &Path) -> Result<(), XtaskError> {
    let images = BenchImages::create(BENCH_IMAGES)?;
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

fn start_dockshim(root: &Path) -> Result<Started, XtaskError> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "dockshim",
            "--bin",
            "dockshim",
        ])
        .current_dir(root)
        .status()
        .map_err(|err| XtaskError::Bench(format!("cargo build: {err}")))?;
    if !status.success() {
        return Err(XtaskError::Bench("cargo build --release failed".to_owned()));
    }
    let dir = tempfile::tempdir().map_err(|err| XtaskError::Bench(format!("tempdir: {err}")))?;
    let socket = dir.path().join("dockshim.sock");
    let child = Command::new(root.join("target/release/dockshim"))
        .arg("--container-runtime-endpoint")
        .arg(format!("unix://{}", socket.display()))
        .arg("--root-directory")
        .arg(dir.path().join("root"))
        .args(["--network-plugin", "none", "--log-level", "warn"])
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
