//! Developer tasks that produce committed files, run as `cargo xtask TASK`.
//!
//! - `codegen [--check]`: proto/api.proto → src/api/{runtime.v1.rs, services.rs}
//! - `man [--check]`: `dockshim::cli::man_page()` → packaging/dockshim.8, and
//!   `dockshim::cli::example_config()` → packaging/dockshim.toml
//! - `bench [--endpoint unix:///path | --server PATH] [--calls N] [--sandboxes]
//!   [--containers]`: prints latency and size figures (writes nothing)
//! - `bench --kubelet-load PODS SECONDS [--endpoint unix:///path | --server PATH]
//!   [--pod-stats-from-cri] [--idle-baseline] [--runtime-pid PID]
//!   [--docker-pid PID]`: the kubelet's periodic calls against PODS pods
//!   for SECONDS, and the CPU and memory they cost the runtime and dockerd
//! - `lines`: the production lines of `src/`, per module (writes nothing)
//!
//! With `--check` nothing is written: the task fails, naming the file, when
//! the committed copy differs from what it would produce. This crate never
//! ships and is not a default workspace member.

#[cfg(feature = "bench")]
mod bench;
mod codegen;
mod lines;
#[cfg(feature = "man")]
mod man;
mod services;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask codegen [--check]\n       cargo xtask man [--check]\n       cargo xtask bench [--endpoint unix:///path | --server PATH] [--calls N] [--sandboxes] [--containers]\n       cargo xtask lines\n       cargo xtask bench --kubelet-load PODS SECONDS [--endpoint unix:///path | --server PATH] [--docker-endpoint unix:///path] [--pod-stats-from-cri] [--idle-baseline] [--runtime-pid PID] [--docker-pid PID]";

/// Everything a task can fail with.
#[derive(Debug)]
pub enum XtaskError {
    Usage(String),
    Io { path: PathBuf, source: io::Error },
    Proto(protox::Error),
    ProstBuild(io::Error),
    Descriptor(String),
    Rustfmt { path: PathBuf, detail: String },
    Stale { path: PathBuf, task: &'static str },
    Bench(String),
}

impl XtaskError {
    pub fn io(path: &Path, source: io::Error) -> XtaskError {
        XtaskError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for XtaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XtaskError::Usage(message) => write!(f, "{message}\n{USAGE}"),
            XtaskError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            XtaskError::Proto(err) => write!(f, "cannot compile proto/api.proto: {err}"),
            XtaskError::ProstBuild(err) => write!(f, "prost-build failed: {err}"),
            XtaskError::Descriptor(message) => write!(f, "unexpected descriptor: {message}"),
            XtaskError::Rustfmt { path, detail } => {
                write!(f, "rustfmt failed on {}: {detail}", path.display())
            }
            XtaskError::Bench(message) => write!(f, "bench: {message}"),
            XtaskError::Stale { path, task } => write!(
                f,
                "{} is out of date; run `cargo xtask {task}` and commit the result",
                path.display()
            ),
        }
    }
}

impl std::error::Error for XtaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            XtaskError::Io { source, .. } => Some(source),
            XtaskError::Proto(err) => Some(err),
            XtaskError::ProstBuild(err) => Some(err),
            _ => None,
        }
    }
}

/// Writes `contents` to `root/relative`, or with `check` only compares them.
pub fn write_or_check(
    root: &Path,
    relative: &str,
    contents: &[u8],
    check: bool,
    task: &'static str,
) -> Result<(), XtaskError> {
    let path = &root.join(relative);
    if check {
        let committed = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(XtaskError::io(path, err)),
        };
        if committed != contents {
            return Err(XtaskError::Stale {
                path: PathBuf::from(relative),
                task,
            });
        }
        return Ok(());
    }
    std::fs::write(path, contents).map_err(|err| XtaskError::io(path, err))
}

/// The workspace root: xtask/ lives directly below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn run(args: &[String]) -> Result<(), XtaskError> {
    let (task, flags) = match args.split_first() {
        Some((task, flags)) => (task.as_str(), flags),
        None => return Err(XtaskError::Usage("no task given".to_string())),
    };
    #[cfg(feature = "bench")]
    if task == "bench" {
        return bench::run(&workspace_root(), flags);
    }
    if task == "lines" && flags.is_empty() {
        return lines::run(&workspace_root());
    }
    let check = match flags {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => {
            return Err(XtaskError::Usage(format!(
                "unexpected arguments: {}",
                flags.join(" ")
            )))
        }
    };
    let root = workspace_root();
    match task {
        "codegen" => codegen::run(&root, check),
        #[cfg(feature = "man")]
        "man" => man::run(&root, check),
        #[cfg(not(feature = "man"))]
        "man" => Err(XtaskError::Usage(
            "`man` needs the `man` feature (on by default)".to_string(),
        )),
        other => Err(XtaskError::Usage(format!("unknown task `{other}`"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}
