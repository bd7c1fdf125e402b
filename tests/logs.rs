//! CRI log files written from real containers' output through the real
//! dockerd on /var/run/docker.sock.
//!
//! Tests print why and pass when the socket is absent (under tests/run.sh
//! they fail). Containers carry the label `dockshim-test=1` and the test
//! run's label, and are removed by drop guards, also when an assertion
//! fails. All tests share one `LogManager`, so the process has
//! exactly one log writer thread however many containers are followed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use dockshim::docker::DockerClient;
use dockshim::logs::format::{parse_cri_line, CriStream, Tag};
use dockshim::logs::{validate_log_path, LogError, LogManager, LOG_THREAD_NAME};

/// The engine under test: `DOCKSHIM_TEST_DOCKER_SOCKET` (tests/run.sh sets
/// it for each engine of its matrix), else the machine's dockerd.
fn docker_sock() -> String {
    std::env::var("DOCKSHIM_TEST_DOCKER_SOCKET")
        .unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}

fn busybox() -> String {
    std::env::var("DOCKSHIM_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/dockshim-test/busybox:latest".to_owned())
}

/// The shared manager, or `None` (with the reason printed) without dockerd.
fn manager() -> Option<Arc<LogManager>> {
    if !Path::new(&docker_sock()).exists() {
        common::missing_environment(format!(
            "{} does not exist, no dockerd to test against",
            docker_sock()
        ));
        return None;
    }
    static MANAGER: OnceLock<Arc<LogManager>> = OnceLock::new();
    let manager = MANAGER.get_or_init(|| {
        let docker = DockerClient::new(&docker_sock(), Duration::from_secs(30)).unwrap();
        docker.negotiate().unwrap();
        LogManager::start(docker)
    });
    Some(Arc::clone(manager))
}

/// A running container, removed on drop.
struct Container(String);

impl Container {
    fn run(tty: bool, script: &str) -> Container {
        let run_label = common::test_run_label();
        let mut args = vec!["run", "-d", "--label", "dockshim-test=1"];
        args.extend_from_slice(&["--label", &run_label]);
        if tty {
            args.push("-t");
        }
        let image = busybox();
        args.extend([image.as_str(), "sh", "-c", script]);
        let output = Command::new("docker").args(&args).output().unwrap();
        assert!(
            output.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Container(String::from_utf8(output.stdout).unwrap().trim().to_owned())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn log_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    dir
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    validate_log_path(dir.path(), Path::new("app/0.log")).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_end(manager: &LogManager, id: &str) {
    wait_until("the log stream to end", Duration::from_secs(30), || {
        !manager.is_following(id)
    });
}

/// A file's lines as (stream, tag, message), checking every line is a CRI
/// line with a parseable timestamp.
fn cri_lines(path: &Path) -> Vec<(CriStream, Tag, String)> {
    let content = std::fs::read(path).unwrap();
    assert!(content.is_empty() || content.ends_with(b"\n"));
    content
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let parsed = parse_cri_line(line)
                .unwrap_or_else(|| panic!("not a CRI line: {:?}", String::from_utf8_lossy(line)));
            (
                parsed.stream,
                parsed.tag,
                String::from_utf8(parsed.message.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// The full lines of one stream, P pieces joined to their F.
fn joined(lines: &[(CriStream, Tag, String)], stream: CriStream) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (s, tag, message) in lines {
        if *s != stream {
            continue;
        }
        current.push_str(message);
        if *tag == Tag::Full {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[test]
fn stdout_and_stderr_become_exact_cri_lines() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let path = log_path(&dir);
    let container = Container::run(
        false,
        r#"echo out; echo err >&2; printf partial; sleep 1; echo " done""#,
    );
    manager.follow(&container.0, &path, false).unwrap();
    wait_for_end(&manager, &container.0);
    let lines = cri_lines(&path);
    let stdout: Vec<_> = lines
        .iter()
        .filter(|l| l.0 == CriStream::Stdout)
        .cloned()
        .collect();
    let stderr: Vec<_> = lines
        .iter()
        .filter(|l| l.0 == CriStream::Stderr)
        .cloned()
        .collect();
    assert_eq!(
        stdout,
        vec![
            (CriStream::Stdout, Tag::Full, "out".to_owned()),
            (CriStream::Stdout, Tag::Full, "partial done".to_owned()),
        ]
    );
    assert_eq!(
        stderr,
        vec![(CriStream::Stderr, Tag::Full, "err".to_owned())]
    );
}

#[test]
fn output_left_without_a_newline_at_exit_is_written_as_a_partial_line() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    // dockerd logs the unterminated "tail" only once the process is gone,
    // and usually ends the follow before sending it: several containers
    // make it near certain that some stream ends first.
    let containers: Vec<Container> = (0..3)
        .map(|_| Container::run(false, "printf abc; sleep 1; echo def; printf tail"))
        .collect();
    for (i, container) in containers.iter().enumerate() {
        let path = validate_log_path(dir.path(), Path::new(&format!("app/{i}.log"))).unwrap();
        manager.follow(&container.0, &path, false).unwrap();
    }
    for (i, container) in containers.iter().enumerate() {
        wait_for_end(&manager, &container.0);
        let path = dir.path().join(format!("app/{i}.log"));
        assert_eq!(
            cri_lines(&path),
            vec![
                (CriStream::Stdout, Tag::Full, "abcdef".to_owned()),
                (CriStream::Stdout, Tag::Partial, "tail".to_owned()),
            ],
            "container {i}"
        );
    }
}

#[test]
fn a_100_kib_line_is_split_into_partial_chunks_ending_full() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let path = log_path(&dir);
    let container = Container::run(false, r#"head -c 102400 /dev/zero | tr '\0' a; echo"#);
    manager.follow(&container.0, &path, false).unwrap();
    wait_for_end(&manager, &container.0);
    let lines = cri_lines(&path);
    assert!(lines.len() > 1, "{} lines", lines.len());
    let (last, pieces) = lines.split_last().unwrap();
    assert!(pieces.iter().all(|l| l.1 == Tag::Partial));
    assert_eq!(last.1, Tag::Full);
    assert!(lines
        .iter()
        .all(|l| l.2.len() <= dockshim::logs::MAX_LINE_SIZE));
    assert_eq!(joined(&lines, CriStream::Stdout), vec!["a".repeat(102400)]);
}

#[test]
fn tty_output_is_stdout() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let path = log_path(&dir);
    let container = Container::run(true, "echo hello; echo oops >&2");
    manager.follow(&container.0, &path, true).unwrap();
    wait_for_end(&manager, &container.0);
    let lines = cri_lines(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l.0 == CriStream::Stdout && l.1 == Tag::Full));
    assert_eq!(lines[0].2.trim_end_matches('\r'), "hello");
    assert_eq!(lines[1].2.trim_end_matches('\r'), "oops");
}

#[test]
fn reopen_after_rename_writes_later_lines_to_a_new_file() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let path = log_path(&dir);
    let container = Container::run(false, "echo before; sleep 2; echo after");
    manager.follow(&container.0, &path, false).unwrap();
    wait_until("the first line", Duration::from_secs(10), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains("before"))
    });
    let rotated = path.with_extension("log.20240101-000000");
    std::fs::rename(&path, &rotated).unwrap();
    manager.reopen(&container.0).unwrap();
    wait_for_end(&manager, &container.0);
    let messages = |p: &Path| -> Vec<String> { cri_lines(p).into_iter().map(|l| l.2).collect() };
    assert_eq!(messages(&rotated), vec!["before"]);
    assert_eq!(messages(&path), vec!["after"]);

    let err = manager.reopen(&container.0).unwrap_err();
    assert!(matches!(err, LogError::NotFollowed(_)), "{err}");
}

#[test]
fn resume_after_a_stop_neither_repeats_nor_loses_lines() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let path = log_path(&dir);
    let container = Container::run(
        false,
        "i=0; while [ $i -lt 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); \
         [ $((i % 20)) = 0 ] && sleep 0.1; done",
    );
    manager.follow(&container.0, &path, false).unwrap();
    wait_until("some lines", Duration::from_secs(10), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.lines().count() > 30)
    });
    manager.stop(&container.0).unwrap();
    assert!(!manager.is_following(&container.0));
    thread::sleep(Duration::from_millis(300));
    manager.resume(&container.0, &path, false).unwrap();
    wait_for_end(&manager, &container.0);
    let lines = cri_lines(&path);
    let expected = |prefix: &str| (0..200).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    assert_eq!(joined(&lines, CriStream::Stdout), expected("out"));
    assert_eq!(joined(&lines, CriStream::Stderr), expected("err"));
}

#[test]
fn log_paths_outside_the_pod_directory_are_refused() {
    let dir = log_dir();
    std::os::unix::fs::symlink("/etc", dir.path().join("evil")).unwrap();
    for bad in [
        "../0.log",
        "app/../../0.log",
        "/var/log/0.log",
        "evil/0.log",
    ] {
        let err = validate_log_path(dir.path(), Path::new(bad)).unwrap_err();
        assert!(matches!(err, LogError::InvalidPath(_)), "{bad}: {err}");
    }
}

#[test]
fn twenty_followed_containers_share_one_writer_thread() {
    let Some(manager) = manager() else { return };
    let dir = log_dir();
    let containers: Vec<Container> = (0..20)
        .map(|i| Container::run(false, &format!("sleep 1; echo c{i}; sleep 2")))
        .collect();
    for (i, container) in containers.iter().enumerate() {
        let path = validate_log_path(dir.path(), Path::new(&format!("app/{i}.log"))).unwrap();
        manager.follow(&container.0, &path, false).unwrap();
    }
    let writers = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim() == LOG_THREAD_NAME)
        .count();
    assert_eq!(writers, 1);
    for (i, container) in containers.iter().enumerate() {
        wait_for_end(&manager, &container.0);
        let path = dir.path().join(format!("app/{i}.log"));
        let messages: Vec<String> = cri_lines(&path).into_iter().map(|l| l.2).collect();
        assert_eq!(messages, vec![format!("c{i}")]);
    }
}
