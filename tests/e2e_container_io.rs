//! Containers' input and output end to end, through the gRPC API of the real
//! binary and the real dockerd: the CRI log files dockshim writes (streams,
//! partial and long lines, reopening after rotation), ExecSync's exit codes,
//! output cap and timeout, the idempotence and timing of StopContainer and
//! RemoveContainer, how soon a container killed behind dockshim's back is
//! listed as exited, and log paths that would leave the pod's log
//! directory. Needs root and dockerd, as `tests/run.sh` provides.
//!
//! Log files are read as the kubelet reads them: each line is
//! `<RFC3339Nano> <stdout|stderr> <F|P> <message>`, parsed here without
//! dockshim's own parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::busybox_image;
use common::pod::{wait_for_log_line, World, LOG_WAIT, RUN_LABEL};
use dockshim::api::v1 as cri;
use dockshim::cri::exec::MAX_EXEC_OUTPUT_BYTES;
use tonic::Code;

/// The longest message of one CRI log line (src/logs/format.rs); dockerd
/// also cuts lines at 16 KiB.
const MAX_LINE_SIZE: usize = 16 * 1024;
/// What one ExecSync reply may carry: the kubelet's and dockshim's 16 MiB
/// gRPC message limit.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How far a log timestamp may lie from the test's own clock readings.
const CLOCK_SLACK: Duration = Duration::from_secs(5);
/// How long ListContainers may take to show a container killed outside
/// dockshim as exited: far below the index's periodic reconcile, so only
/// dockerd's event stream can have told it. The latency itself is printed
/// here and measured by `cargo xtask bench` (a few ms).
const KILL_NOTICE_LIMIT: Duration = Duration::from_secs(10);

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogLine {
    /// Nanoseconds since the Unix epoch.
    nanos: i128,
    stream: String,
    tag: String,
    message: String,
}

impl LogLine {
    fn is(&self, stream: &str, tag: &str, message: &str) -> bool {
        (
            self.stream.as_str(),
            self.tag.as_str(),
            self.message.as_str(),
        ) == (stream, tag, message)
    }
}

/// Nanoseconds since the epoch of dockerd's log timestamp format:
/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, nine fraction digits, UTC.
fn parse_timestamp(text: &str) -> Option<i128> {
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if bytes.len() != 30
        || separators.iter().any(|&(at, byte)| bytes[at] != byte)
        || bytes[19] != b'.'
        || bytes[29] != b'Z'
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i128> {
        let digits = &text[from..to];
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let fraction = number(20, 29)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of the proleptic Gregorian date, counting
    // years from March so that the leap day ends a year.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(seconds * 1_000_000_000 + fraction)
}

fn unix_nanos(time: SystemTime) -> i128 {
    i128::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

/// Parses a whole log file, asserting every line is a CRI log line whose
/// timestamp lies between `since` and now, and that timestamps never go
/// back within a stream.
fn parse_log(content: &str, since: SystemTime) -> Vec<LogLine> {
    let earliest = unix_nanos(since - CLOCK_SLACK);
    let latest = unix_nanos(SystemTime::now() + CLOCK_SLACK);
    assert!(
        content.is_empty() || content.ends_with('\n'),
        "the file ends inside a line: {content:?}"
    );
    let lines: Vec<LogLine> = content
        .lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let (Some(timestamp), Some(stream), Some(tag), Some(message)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("not a CRI log line: {line:?}");
            };
            let nanos = parse_timestamp(timestamp)
                .unwrap_or_else(|| panic!("not an RFC3339Nano UTC timestamp: {line:?}"));
            assert!(
                (earliest..=latest).contains(&nanos),
                "timestamp far from the test's clock: {line:?}"
            );
            assert!(["stdout", "stderr"].contains(&stream), "{line:?}");
            assert!(["F", "P"].contains(&tag), "{line:?}");
            LogLine {
                nanos,
                stream: stream.to_owned(),
                tag: tag.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect();
    for stream in ["stdout", "stderr"] {
        let times: Vec<i128> = lines
            .iter()
            .filter(|line| line.stream == stream)
            .map(|line| line.nanos)
            .collect();
        assert!(
            times.windows(2).all(|pair| pair[0] <= pair[1]),
            "{stream} timestamps go back in {content:?}"
        );
    }
    lines
}

/// The log file once every one of `suffixes` ends a line, or after
/// `common::pod::LOG_WAIT`.
fn wait_for_log_lines(path: &Path, suffixes: &[&str]) -> String {
    let mut content = String::new();
    for suffix in suffixes {
        content = wait_for_log_line(path, suffix);
    }
    content
}

/// Creates and starts a busybox container `name` running `script`.
async fn run(world: &World, name: &str, script: &str) -> String {
    let id = world
        .create(world.config(name, &busybox_image(), script))
        .await
        .unwrap_or_else(|status| panic!("CreateContainer {name}: {status:?}"));
    world
        .client
        .start_container(&id)
        .await
        .unwrap_or_else(|status| panic!("StartContainer {name}: {status:?}"));
    id
}

/// IDs of the test's containers (not its sandbox) dockerd still has.
fn docker_containers(world: &World) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={RUN_LABEL}={}", world.run_id),
            "--filter",
            "label=io.kubernetes.docker.type=container",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_lands_in_the_cri_log_by_stream_with_partial_and_long_lines_intact() {
    let world = World::start().await;
    let since = SystemTime::now();
    run(&world, "streams", "echo out1; echo err1 >&2; echo out2").await;
    run(
        &world,
        "partial",
        "printf abc; sleep 1; echo def; printf tail",
    )
    .await;
    run(
        &world,
        "long",
        "head -c 102400 /dev/zero | tr '\\0' x; echo; echo done",
    )
    .await;

    let content = wait_for_log_lines(
        &world.logs.path().join("streams.log"),
        &[" stdout F out2", " stderr F err1"],
    );
    let lines = parse_log(&content, since);
    let of = |stream: &str| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|line| line.stream == stream)
            .map(|line| (line.tag.clone(), line.message.clone()))
            .collect()
    };
    let full = |message: &str| ("F".to_owned(), message.to_owned());
    assert_eq!(of("stdout"), [full("out1"), full("out2")], "{content:?}");
    assert_eq!(of("stderr"), [full("err1")], "{content:?}");
    assert_eq!(lines.len(), 3, "{content:?}");

    // dockerd hands on a line only once it is complete, so the piece
    // written before the pause is joined to the rest; the container's last
    // output had no newline and stays a partial line (src/logs/format.rs).
    let content = wait_for_log_line(&world.logs.path().join("partial.log"), " stdout P tail");
    let lines = parse_log(&content, since);
    assert_eq!(lines.len(), 2, "{content:?}");
    assert!(lines[0].is("stdout", "F", "abcdef"), "{content:?}");
    assert!(lines[1].is("stdout", "P", "tail"), "{content:?}");

    let content = wait_for_log_line(&world.logs.path().join("long.log"), " stdout F done");
    let mut lines = parse_log(&content, since);
    assert!(lines.pop().unwrap().is("stdout", "F", "done"));
    let (last, chunks) = lines.split_last().unwrap();
    assert_eq!(lines.len(), 102_400_usize.div_ceil(MAX_LINE_SIZE));
    for chunk in chunks {
        assert_eq!((chunk.stream.as_str(), chunk.tag.as_str()), ("stdout", "P"));
        assert_eq!(chunk.message.len(), MAX_LINE_SIZE);
    }
    assert_eq!((last.stream.as_str(), last.tag.as_str()), ("stdout", "F"));
    let joined: String = lines.iter().map(|line| line.message.as_str()).collect();
    assert_eq!(joined, "x".repeat(102_400));
    world.clean_up().await;
}

/// The numbers of `lineN` messages in a log file, in file order.
fn counter_values(content: &str, since: SystemTime) -> Vec<u64> {
    parse_log(content, since)
        .iter()
        .map(|line| {
            assert_eq!((line.stream.as_str(), line.tag.as_str()), ("stdout", "F"));
            line.message
                .strip_prefix("line")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_rotation_continues_in_a_fresh_file_without_loss_or_repeats() {
    let world = World::start().await;
    let since = SystemTime::now();
    let script = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done";
    let id = run(&world, "counter", script).await;
    let path = world.logs.path().join("counter.log");
    let rotated = world.logs.path().join("counter.log.1");
    wait_for_log_line(&path, " stdout F line3");
    std::fs::rename(&path, &rotated).unwrap();
    world.client.reopen_container_log(&id).await.unwrap();
    let deadline = Instant::now() + LOG_WAIT;
    while std::fs::read_to_string(&path).map_or(0, |content| content.lines().count()) < 3
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.client.stop_container(&id, 0).await.unwrap();

    let old = counter_values(&std::fs::read_to_string(&rotated).unwrap(), since);
    let new = counter_values(&std::fs::read_to_string(&path).unwrap(), since);
    assert!(old.len() >= 4, "{old:?}");
    assert!(new.len() >= 3, "{new:?}");
    let all: Vec<u64> = old.iter().chain(&new).copied().collect();
    let expected: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(all, expected, "rotated file {old:?}, new file {new:?}");

    // The CRI: once reopening a stopped container's log fails, no new file
    // may appear.
    let rotated_again = world.logs.path().join("counter.log.2");
    std::fs::rename(&path, &rotated_again).unwrap();
    let err = world.client.reopen_container_log(&id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("not running"), "{err:?}");
    assert!(!path.exists());

    let missing = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let err = world
        .client
        .reopen_container_log(missing)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    world.client.remove_container(&id).await.unwrap();
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_reports_exit_codes_separate_streams_capped_output_and_timeouts() {
    let world = World::start().await;
    let id = run(&world, "exec", "sleep 300").await;
    let exec = |cmd: &'static [&'static str], timeout: i64| {
        let client = world.client.clone();
        let id = id.clone();
        async move { client.exec_sync(&id, cmd, timeout).await }
    };

    for (cmd, code) in [
        (&["true"][..], 0),
        (&["sh", "-c", "exit 3"][..], 3),
        (&["sh", "-c", "no-such-command"][..], 127),
    ] {
        let reply = exec(cmd, 10).await.unwrap();
        assert_eq!(reply.exit_code, code, "{cmd:?}: {reply:?}");
    }
    // dockerd cannot start a missing binary: its own exit code and message.
    // Docker 20.10 and 27 answer 126, Docker 29 127 as a shell would.
    let reply = exec(&["no-such-binary"], 10).await.unwrap();
    assert!(matches!(reply.exit_code, 126 | 127), "{reply:?}");
    let text = String::from_utf8_lossy(&reply.stdout);
    assert!(text.contains("executable file not found"), "{text}");

    let reply = exec(&["sh", "-c", "echo out; echo err >&2; echo out2"], 10)
        .await
        .unwrap();
    assert_eq!(reply.stdout, b"out\nout2\n");
    assert_eq!(reply.stderr, b"err\n");
    assert_eq!(reply.exit_code, 0);

    let started = Instant::now();
    let reply = exec(&["head", "-c", "20000000", "/dev/zero"], 60)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("20 MB of exec output answered in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(reply.exit_code, 0);
    assert!(reply.stderr.is_empty());
    // Cut to what fits in one reply, not refused: src/cri/exec.rs.
    assert_eq!(reply.stdout.len(), MAX_EXEC_OUTPUT_BYTES);
    assert!(reply.stdout.iter().all(|&b| b == 0));
    let reply_size = prost::Message::encoded_len(&reply);
    assert!(reply_size <= MAX_MESSAGE_BYTES, "{reply_size}");

    let started = Instant::now();
    let err = exec(&["sleep", "60"], 2).await.unwrap_err();
    let took = started.elapsed();
    eprintln!("ExecSync with a 2 s timeout returned after {took:?}");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let ps = exec(&["ps", "-o", "pid,args"], 10).await.unwrap();
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(table.contains("sleep 300"), "{table}");
    assert!(!table.contains("sleep 60"), "{table}");
    world.clean_up().await;
}

/// The CRI state and exit code of container `id`.
async fn state_and_exit_code(world: &World, id: &str) -> (i32, i32) {
    let status = world.status(id).await;
    (status.state, status.exit_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_remove_are_idempotent_honour_the_grace_period_and_force_removal() {
    let world = World::start().await;
    let stubborn = "trap '' TERM; echo ready; sleep 300";
    let now = run(&world, "stop-now", stubborn).await;
    let graceful = run(&world, "stop-grace", stubborn).await;
    let running = run(&world, "remove-running", "echo ready; sleep 300").await;
    for name in ["stop-now", "stop-grace", "remove-running"] {
        let path = world.logs.path().join(format!("{name}.log"));
        let content = wait_for_log_line(&path, " stdout F ready");
        assert!(
            content.ends_with(" stdout F ready\n"),
            "{name}: {content:?}"
        );
    }
    let exited = cri::ContainerState::ContainerExited as i32;

    let grace = async {
        let started = Instant::now();
        world.client.stop_container(&graceful, 2).await.unwrap();
        started.elapsed()
    };
    let immediate = async {
        let started = Instant::now();
        world.client.stop_container(&now, 0).await.unwrap();
        let took = started.elapsed();
        assert_eq!(state_and_exit_code(&world, &now).await, (exited, 137));
        world.client.stop_container(&now, 0).await.unwrap();
        world.client.remove_container(&now).await.unwrap();
        world.client.remove_container(&now).await.unwrap();
        world.client.stop_container(&now, 0).await.unwrap();
        let err = world
            .client
            .container_status(&now, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");

        // The CRI: a running container must be forcibly removed.
        let log = world.logs.path().join("remove-running.log");
        assert!(log.exists());
        world.client.remove_container(&running).await.unwrap();
        let err = world
            .client
            .container_status(&running, false)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert!(!log.exists());
        took
    };
    let (grace_took, immediate_took) = tokio::join!(grace, immediate);
    eprintln!("StopContainer took {immediate_took:?} with timeout 0, {grace_took:?} with 2");
    assert!(
        immediate_took < Duration::from_millis(1000),
        "{immediate_took:?}"
    );
    assert!(
        grace_took >= Duration::from_secs(2) && grace_took < Duration::from_secs(4),
        "{grace_took:?}"
    );
    assert_eq!(state_and_exit_code(&world, &graceful).await, (exited, 137));
    world.client.stop_container(&graceful, 2).await.unwrap();
    world.client.remove_container(&graceful).await.unwrap();
    assert_eq!(docker_containers(&world), Vec::<String>::new());
    world.clean_up().await;
}

/// Kills a fresh container with `docker kill` and returns how long after
/// that command returned ListContainers first showed it exited.
async fn kill_notice_latency(world: &World, name: &str) -> Duration {
    let id = run(world, name, "sleep 300").await;
    let filter = cri::ContainerFilter {
        id: id.clone(),
        ..cri::ContainerFilter::default()
    };
    let state = |containers: Vec<cri::Container>| containers.first().map(|c| c.state);
    let listed = world.client.list_containers(Some(filter.clone())).await;
    assert_eq!(
        state(listed.unwrap()),
        Some(cri::ContainerState::ContainerRunning as i32)
    );
    let killed = Command::new("docker").args(["kill", &id]).output().unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let returned = Instant::now();
    let give_up = returned + KILL_NOTICE_LIMIT;
    loop {
        let listed = world.client.list_containers(Some(filter.clone())).await;
        if state(listed.unwrap()) == Some(cri::ContainerState::ContainerExited as i32) {
            let latency = returned.elapsed();
            world.client.remove_container(&id).await.unwrap();
            return latency;
        }
        assert!(
            Instant::now() < give_up,
            "{name} not listed as exited within {KILL_NOTICE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_outside_dockshim_is_listed_exited_from_dockerd_s_events() {
    let world = World::start().await;
    let latency = kill_notice_latency(&world, "killed").await;
    eprintln!("killed container listed as exited {latency:?} after docker kill returned");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_paths_leaving_the_log_directory_are_refused_and_create_nothing() {
    let world = World::start().await;
    let outside = tempfile::Builder::new()
        .prefix("dockshim-outside")
        .tempdir()
        .unwrap();
    std::os::unix::fs::symlink(outside.path(), world.logs.path().join("linked")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("target.log"),
        world.logs.path().join("planted.log"),
    )
    .unwrap();
    let escape = world.logs.path().parent().unwrap().join("escape.log");
    assert!(!escape.exists());
    for (name, log_path) in [
        ("parent", "../escape.log"),
        ("absolute", "/abs.log"),
        ("dir-symlink", "linked/app.log"),
        ("file-symlink", "planted.log"),
    ] {
        let mut config = world.config(name, &busybox_image(), "true");
        config.log_path = log_path.to_owned();
        let err = world.create(config).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{log_path}: {err:?}");
        assert!(err.message().contains("log path"), "{log_path}: {err:?}");
    }
    assert_eq!(docker_containers(&world), Vec::<String>::new());
    assert!(!escape.exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    let listed = world.client.list_containers(None).await.unwrap();
    assert!(
        listed.iter().all(|c| c.pod_sandbox_id != world.sandbox_id),
        "{listed:?}"
    );
    world.clean_up().await;
}
