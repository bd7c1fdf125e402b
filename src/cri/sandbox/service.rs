//! `SandboxService`: the state the five pod sandbox calls share — dockerd,
//! the state index, the checkpoint store, the owed CNI teardowns, the CNI
//! runner, hairpin setup, the node's processes (to find a running
//! cri-dockerd) and the ImageService that brings the sandbox image
//! — and nothing else: why a call failed is `error`'s `SandboxError`.
//!
//! The calls themselves live in `run`, `stop`, `remove`, `status` and
//! `list`; retrying owed teardowns lives in `owed`. This module starts no threads: the index it is given has
//! already started its own.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::SandboxError;
use crate::api::services::ImageService;
use crate::api::v1;
use crate::cri::answers::EncodedAnswers;
use crate::docker::{DockerApi, Engine};
use crate::grpc::Status;
use crate::host::{Host, Node};
use crate::index::Index;
use crate::network::cni::CniOptions;
use crate::network::hairpin::HairpinMode;
use crate::network::{CniRunner, Hairpin, NetworkPlugin, NetworkSource};
use crate::store::{CheckpointStore, OwedTeardowns, PodSandboxCheckpoint};

/// Seconds the sandbox container and, on StopPodSandbox, the pod's
/// containers get between SIGTERM and SIGKILL (cri-dockerd's fixed value).
pub const SANDBOX_STOP_GRACE_SECS: u32 = 10;

/// The node-wide settings the sandbox calls read.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// `--root-directory`, where checkpoints and owed teardowns are kept.
    pub root_directory: PathBuf,
    /// `--cni-bin-dir`, `--cni-cache-dir` and `--ipv6-dual-stack`.
    pub cni: CniOptions,
    /// `--pod-infra-container-image`.
    pub image: String,
    /// `--sandbox-oom-score-adj`.
    pub oom_score_adj: i32,
    /// `--network-plugin`.
    pub network_plugin: NetworkPlugin,
    /// `--hairpin-mode`.
    pub hairpin_mode: HairpinMode,
    /// `--cni-conf-dir` and `--default-network`.
    pub networks: NetworkSource,
    /// `--migrate-from-cri-dockerd`, read by `migrate_from_cri_dockerd`.
    pub migration: CriDockerdMigration,
}

/// cri-dockerd's `--cri-dockerd-root-directory` default, which
/// `--migrate-from-cri-dockerd=auto` looks in.
pub const CRI_DOCKERD_ROOT_DIRECTORY: &str = "/var/lib/cri-dockerd";

/// `--migrate-from-cri-dockerd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriDockerdMigration {
    /// From [`CRI_DOCKERD_ROOT_DIRECTORY`], when what is found there shows
    /// that cri-dockerd served this dockerd and has stopped.
    Auto,
    /// Never.
    Off,
    /// From this absolute root directory of cri-dockerd, which must hold a
    /// `sandbox` directory.
    From(PathBuf),
}

impl CriDockerdMigration {
    /// The flag value that selects this setting.
    pub fn flag_value(&self) -> String {
        match self {
            CriDockerdMigration::Auto => "auto".to_owned(),
            CriDockerdMigration::Off => "off".to_owned(),
            CriDockerdMigration::From(dir) => dir.to_string_lossy().into_owned(),
        }
    }
}

/// The checkpoints ListPodSandbox has read (see `list.rs`).
#[derive(Debug, Default)]
pub(super) struct ListedCheckpoints {
    /// The checkpoint directory's mtime when it was listed, while the
    /// listing can be trusted until that changes.
    pub(super) settled: Option<SystemTime>,
    /// In ID order, as the store lists them.
    pub(super) by_id: Vec<(String, PodSandboxCheckpoint)>,
    /// Moves every time the directory is listed again.
    pub(super) generation: u64,
}

/// What the pod sandbox calls work with.
pub struct SandboxService {
    pub(super) docker: Arc<dyn DockerApi>,
    pub(super) index: Arc<Index>,
    pub(super) checkpoints: CheckpointStore,
    pub(super) owed: OwedTeardowns,
    pub(super) cni: CniRunner,
    pub(super) hairpin: Hairpin,
    pub(super) host: Arc<dyn Host>,
    pub(super) images: Arc<dyn ImageService>,
    pub(crate) settings: SandboxSettings,
    /// RunPodSandbox calls under way, by Docker name: a repeated call waits
    /// for the first instead of making a second sandbox.
    pub(super) in_flight: Mutex<HashMap<String, Arc<Flight>>>,
    /// Held while a sandbox's network is torn down, so that concurrent
    /// Stop and Remove calls run CNI DEL once.
    pub(super) teardown: Mutex<()>,
    /// What ListPodSandbox has read of the checkpoints (see `list`).
    pub(super) listed: Mutex<ListedCheckpoints>,
    /// ListPodSandbox's encoded answers, by filter and the generations of
    /// the index and of the checkpoint listing.
    pub(super) answers: EncodedAnswers<v1::PodSandboxFilter, (u64, u64)>,
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
    /// The sandbox calls with `settings`, over an index that is running and
    /// an ImageService for the sandbox image.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        index: Arc<Index>,
        images: Arc<dyn ImageService>,
        settings: SandboxSettings,
    ) -> Result<SandboxService, SandboxError> {
        Ok(SandboxService {
            docker,
            index,
            checkpoints: CheckpointStore::open(&settings.root_directory)?,
            owed: OwedTeardowns::open(&settings.root_directory)?,
            cni: CniRunner::with_processes(settings.cni.clone()),
            hairpin: Hairpin::system(),
            host: Arc::new(Node),
            images,
            settings,
            in_flight: Mutex::new(HashMap::new()),
            teardown: Mutex::new(()),
            listed: Mutex::default(),
            answers: EncodedAnswers::default(),
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

/// Locks a mutex whose data stays usable after a holder panicked: every
/// value guarded here is replaced whole.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
