//! `SandboxService`: the state the five pod sandbox calls share — dockerd,
//! the state index, the checkpoint store, the owed CNI teardowns, the CNI
//! runner, hairpin setup and the ImageService that brings the sandbox image
//! — and `SandboxError`, why one of those calls failed.
//!
//! The calls themselves live in `run`, `stop`, `remove`, `status` and
//! `list`; retrying owed teardowns lives in `owed`. This module starts no threads: the index it is given has
//! already started its own.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::SandboxConfigError;
use crate::api::services::ImageService;
use crate::cli::{Config, HairpinMode, NetworkPlugin};
use crate::docker::{DockerApi, DockerError, Engine};
use crate::grpc::{Code, Status};
use crate::index::{Index, IndexError};
use crate::network::cni::CniOptions;
use crate::network::{CniConfigError, CniError, CniRunner, Hairpin, HairpinError, NetworkSource};
use crate::store::{CheckpointError, CheckpointStore, OwedTeardownError, OwedTeardowns};

/// Seconds the sandbox container and, on StopPodSandbox, the pod's
/// containers get between SIGTERM and SIGKILL (cri-dockerd's fixed value).
pub const SANDBOX_STOP_GRACE_SECS: u32 = 10;

/// The node-wide settings the sandbox calls read.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub image: String,
    pub oom_score_adj: i32,
    pub network_plugin: NetworkPlugin,
    pub hairpin_mode: HairpinMode,
    pub networks: NetworkSource,
}

impl SandboxSettings {
    pub fn from_config(config: &Config) -> SandboxSettings {
        SandboxSettings {
            image: config.pod_infra_container_image.clone(),
            oom_score_adj: config.sandbox_oom_score_adj,
            network_plugin: config.network_plugin,
            hairpin_mode: config.hairpin_mode,
            networks: NetworkSource::new(
                config.cni_conf_dir.clone(),
                config.cni_bin_dirs.clone(),
                &config.default_network,
            ),
        }
    }
}

/// What the pod sandbox calls work with.
pub struct SandboxService {
    pub(super) docker: Arc<dyn DockerApi>,
    pub(super) index: Arc<Index>,
    pub(super) checkpoints: CheckpointStore,
    pub(super) owed: OwedTeardowns,
    pub(super) cni: CniRunner,
    pub(super) hairpin: Hairpin,
    pub(super) images: Arc<dyn ImageService>,
    pub(super) settings: SandboxSettings,
    /// RunPodSandbox calls under way, by Docker name: a repeated call waits
    /// for the first instead of making a second sandbox.
    pub(super) in_flight: Mutex<HashMap<String, Arc<Flight>>>,
    /// Held while a sandbox's network is torn down, so that concurrent
    /// Stop and Remove calls run CNI DEL once.
    pub(super) teardown: Mutex<()>,
}

impl fmt::Debug for SandboxService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxService")
            .field("settings", &self.settings)
            .field("checkpoints", &self.checkpoints.dir())
            .finish_non_exhaustive()
    }
}

impl SandboxService {
    /// The sandbox calls for `config`, over an index that is running and an
    /// ImageService for the sandbox image.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        index: Arc<Index>,
        images: Arc<dyn ImageService>,
        config: &Config,
    ) -> Result<SandboxService, SandboxError> {
        Ok(SandboxService {
            docker,
            index,
            checkpoints: CheckpointStore::open(&config.root_directory)?,
            owed: OwedTeardowns::open(&config.root_directory)?,
            cni: CniRunner::with_processes(CniOptions {
                bin_dirs: config.cni_bin_dirs.clone(),
                cache_dir: config.cni_cache_dir.clone(),
                ipv6_dual_stack: config.ipv6_dual_stack,
            }),
            hairpin: Hairpin::system(),
            images,
            settings: SandboxSettings::from_config(config),
            in_flight: Mutex::new(HashMap::new()),
            teardown: Mutex::new(()),
        })
    }

    /// What the engine is and can do (`GET /info`, asked once).
    pub(super) fn engine(&self) -> Result<Arc<Engine>, SandboxError> {
        self.docker
            .engine()
            .map_err(|err| SandboxError::docker("read what dockerd is and can do", err))
    }
}

/// One RunPodSandbox under way; duplicates wait on it.
#[derive(Debug, Default)]
pub(super) struct Flight {
    outcome: Mutex<Option<Result<String, Status>>>,
    done: Condvar,
}

impl Flight {
    pub(super) fn finish(&self, outcome: Result<String, Status>) {
        *lock(&self.outcome) = Some(outcome);
        self.done.notify_all();
    }

    pub(super) fn wait(&self) -> Result<String, Status> {
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            outcome = self
                .done
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Why a pod sandbox call failed.
#[derive(Debug)]
pub enum SandboxError {
    /// The request is refused before anything is created.
    Config(SandboxConfigError),
    /// The request lacks a part it needs.
    Missing(&'static str),
    /// The sandbox image is neither present nor pullable.
    Image {
        image: String,
        source: Status,
    },
    /// A Docker call failed; `action` says what it was for.
    Docker {
        action: &'static str,
        source: DockerError,
    },
    Index(IndexError),
    Checkpoint(CheckpointError),
    OwedTeardown(OwedTeardownError),
    CniConfig(CniConfigError),
    Cni(CniError),
    Hairpin(HairpinError),
    /// The sandbox's `resolv.conf` could not be written.
    ResolvConf {
        path: String,
        source: io::Error,
    },
    /// The sandbox container runs but dockerd reports no process.
    NoProcess {
        id: String,
    },
    /// No sandbox with this ID.
    NotFound {
        id: String,
    },
    /// A RunPodSandbox step failed; everything done before it was undone,
    /// except what `cleanup` lists.
    RunFailed {
        step: &'static str,
        cause: Box<SandboxError>,
        cleanup: Vec<SandboxError>,
    },
}

impl SandboxError {
    pub(super) fn docker(action: &'static str, source: DockerError) -> SandboxError {
        SandboxError::Docker { action, source }
    }

    /// The gRPC code this failure maps to.
    pub fn code(&self) -> Code {
        match self {
            SandboxError::Config(err) => err.code(),
            SandboxError::Missing(_) => Code::InvalidArgument,
            SandboxError::Image { source, .. } => source.code,
            SandboxError::Docker { source, .. } => source.code(),
            SandboxError::Index(err) => err.code(),
            SandboxError::Checkpoint(err) => err.code(),
            SandboxError::OwedTeardown(err) => err.code(),
            SandboxError::CniConfig(_) => Code::FailedPrecondition,
            SandboxError::Cni(err) => err.code(),
            SandboxError::Hairpin(err) => err.code(),
            SandboxError::ResolvConf { .. } | SandboxError::NoProcess { .. } => Code::Internal,
            SandboxError::NotFound { .. } => Code::NotFound,
            SandboxError::RunFailed { cause, .. } => cause.code(),
        }
    }
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::Config(err) => err.fmt(f),
            SandboxError::Missing(what) => write!(f, "the request has no {what}"),
            SandboxError::Image { image, source } => write!(
                f,
                "sandbox image {image:?} (--pod-infra-container-image) is not present and \
                 cannot be pulled: {}",
                source.message
            ),
            SandboxError::Docker { action, source } => write!(f, "cannot {action}: {source}"),
            SandboxError::Index(err) => err.fmt(f),
            SandboxError::Checkpoint(err) => err.fmt(f),
            SandboxError::OwedTeardown(err) => err.fmt(f),
            SandboxError::CniConfig(err) => write!(f, "CNI network configuration: {err}"),
            SandboxError::Cni(err) => err.fmt(f),
            SandboxError::Hairpin(err) => write!(f, "hairpin mode: {err}"),
            SandboxError::ResolvConf { path, source } => {
                write!(f, "cannot write the sandbox's resolv.conf {path}: {source}")
            }
            SandboxError::NoProcess { id } => {
                write!(f, "sandbox container {id} has no process after its start")
            }
            SandboxError::NotFound { id } => write!(f, "pod sandbox {id} not found"),
            SandboxError::RunFailed {
                step,
                cause,
                cleanup,
            } => {
                write!(f, "RunPodSandbox failed to {step}: {cause}")?;
                if cleanup.is_empty() {
                    f.write_str("; everything created was removed")
                } else {
                    f.write_str("; cleanup also failed:")?;
                    for err in cleanup {
                        write!(f, " [{err}]")?;
                    }
                    Ok(())
                }
            }
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Config(err) => Some(err),
            SandboxError::Docker { source, .. } => Some(source),
            SandboxError::Index(err) => Some(err),
            SandboxError::Checkpoint(err) => Some(err),
            SandboxError::OwedTeardown(err) => Some(err),
            SandboxError::CniConfig(err) => Some(err),
            SandboxError::Cni(err) => Some(err),
            SandboxError::Hairpin(err) => Some(err),
            SandboxError::ResolvConf { source, .. } => Some(source),
            SandboxError::RunFailed { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<SandboxConfigError> for SandboxError {
    fn from(err: SandboxConfigError) -> SandboxError {
        SandboxError::Config(err)
    }
}

impl From<IndexError> for SandboxError {
    fn from(err: IndexError) -> SandboxError {
        SandboxError::Index(err)
    }
}

impl From<CheckpointError> for SandboxError {
    fn from(err: CheckpointError) -> SandboxError {
        SandboxError::Checkpoint(err)
    }
}

impl From<OwedTeardownError> for SandboxError {
    fn from(err: OwedTeardownError) -> SandboxError {
        SandboxError::OwedTeardown(err)
    }
}

impl From<CniError> for SandboxError {
    fn from(err: CniError) -> SandboxError {
        SandboxError::Cni(err)
    }
}

impl From<SandboxError> for Status {
    fn from(err: SandboxError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// Locks a mutex whose data stays usable after a holder panicked: every
/// value guarded here is replaced whole.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
