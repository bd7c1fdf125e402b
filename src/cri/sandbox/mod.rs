//! Pod sandboxes: the pure translation of a CRI `PodSandboxConfig` into
//! what dockerd and the node need — the sandbox container's create body
//! (`translate`), the pod's `resolv.conf` (`dns`), the sysctl rules
//! (`sysctl`) and the security options shared with containers
//! (`security`).
//!
//! Those translation modules perform no I/O and keep no state. The calls
//! that do — RunPodSandbox (`run`), StopPodSandbox (`stop`),
//! RemovePodSandbox (`remove`), PodSandboxStatus (`status`) and
//! ListPodSandbox (`list`) — are methods of [`SandboxService`] (`service`),
//! which talks to dockerd, the state index, CNI and the checkpoint store;
//! `owed` retries the CNI DELs that failed where no checkpoint remembers
//! them; `migrate` adopts, at start-up, the sandboxes cri-dockerd left.
//! Every refusal of a configuration is a [`SandboxConfigError`] that names
//! the offending field and maps itself to a gRPC code.

pub mod dns;
mod error;
mod list;
mod migrate;
mod owed;
mod remove;
mod run;
pub mod security;
mod service;
mod status;
mod stop;
pub mod sysctl;
pub mod translate;

pub use error::{MigrationError, SandboxConfigError, SandboxError};
pub use migrate::MIGRATED_DIR;
pub use security::SeccompProfiles;
pub use service::{CriDockerdMigration, SandboxService, SandboxSettings, SANDBOX_STOP_GRACE_SECS};
pub use translate::{
    sandbox_create_body, sandbox_namespace_options, sandbox_namespaces, SandboxNamespaces,
    SandboxOptions,
};
