//! Pod sandboxes: the pure translation of a CRI `PodSandboxConfig` into
//! what dockerd and the node need — the sandbox container's create body
//! (`translate`), the pod's `resolv.conf` (`dns`), the sysctl rules
//! (`sysctl`) and the security options shared with containers
//! (`security`).
//!
//! Nothing here performs I/O or keeps state: handlers call these functions,
//! then talk to dockerd, CNI and the checkpoint store themselves. Every
//! refusal is a [`SandboxConfigError`] that names the offending field and
//! maps itself to a gRPC code.

pub mod dns;
mod error;
pub mod security;
pub mod sysctl;
pub mod translate;

pub use error::SandboxConfigError;
pub use security::SeccompProfiles;
pub use translate::{
    sandbox_create_body, sandbox_namespace_options, sandbox_namespaces, SandboxNamespaces,
    SandboxOptions,
};
