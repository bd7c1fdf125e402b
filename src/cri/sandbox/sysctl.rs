//! Which sysctls a sandbox may set.
//!
//! A sysctl set on a sandbox must only affect that pod, so it must live in
//! a kernel namespace the pod owns. The rules follow Kubernetes' list of
//! namespaced sysctls:
//!
//! - the network namespace holds every `net.*` sysctl;
//! - the IPC namespace holds `kernel.sem`, every `kernel.shm*` and
//!   `kernel.msg*`, and every `fs.mqueue.*`;
//! - nothing else is namespaced as far as Kubernetes is concerned (`vm.*`,
//!   `kernel.hostname` — the hostname comes from the CRI `hostname` —,
//!   `kernel.pid_max`, ...), and is refused.
//!
//! A namespaced sysctl is refused when the pod shares that namespace with
//! the host (host network, host IPC), since setting it would change the
//! node. Whether a namespaced sysctl is "safe" or merely allowed by the
//! node's `--allowed-unsafe-sysctls` is the kubelet's decision, taken before
//! the request arrives; dockshim does not second-guess it.
//!
//! Names follow Kubernetes' syntax: lowercase segments of letters, digits,
//! `-` and `_`, starting and ending with a letter or digit, separated by
//! `.` or `/` (the `sysctl.d` slash form, where `.` and `/` trade places),
//! at most 253 characters. Values must be one line: a control character
//! other than tab is refused. Names are passed to Docker as given.

use std::borrow::Cow;
use std::collections::HashMap;

use super::SandboxConfigError;

/// Longest sysctl name Kubernetes accepts.
pub const MAX_SYSCTL_NAME_CHARS: usize = 253;

/// Sysctls namespaced by exact name.
const NAMESPACED_NAMES: [(&str, SysctlNamespace); 1] = [("kernel.sem", SysctlNamespace::Ipc)];
/// Sysctls namespaced by prefix of their dotted name.
const NAMESPACED_PREFIXES: [(&str, SysctlNamespace); 4] = [
    ("kernel.shm", SysctlNamespace::Ipc),
    ("kernel.msg", SysctlNamespace::Ipc),
    ("fs.mqueue.", SysctlNamespace::Ipc),
    ("net.", SysctlNamespace::Net),
];

/// The kernel namespace that isolates a sysctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Ipc,
    Net,
}

/// The namespace that holds the sysctl named `name` (in either form), or
/// `None` if it is not namespaced.
pub fn namespace_of(name: &str) -> Option<SysctlNamespace> {
    let dotted = dotted_name(name);
    NAMESPACED_NAMES
        .iter()
        .find(|(exact, _)| dotted == *exact)
        .or_else(|| {
            NAMESPACED_PREFIXES
                .iter()
                .find(|(prefix, _)| dotted.starts_with(prefix))
        })
        .map(|(_, namespace)| *namespace)
}

/// `name` in the dotted form: a name whose first separator is `/` uses the
/// slash form, in which `.` and `/` have traded places.
pub fn dotted_name(name: &str) -> Cow<'_, str> {
    match name.find(['.', '/']) {
        Some(at) if name.as_bytes()[at] == b'/' => Cow::Owned(
            name.chars()
                .map(|c| match c {
                    '/' => '.',
                    '.' => '/',
                    other => other,
                })
                .collect(),
        ),
        _ => Cow::Borrowed(name),
    }
}

/// Checks every sysctl of a sandbox whose network and IPC namespaces are
/// the host's when `host_network` and `host_ipc` say so.
pub fn validate_sysctls(
    sysctls: &HashMap<String, String>,
    host_network: bool,
    host_ipc: bool,
) -> Result<(), SandboxConfigError> {
    let mut names: Vec<&str> = sysctls.keys().map(String::as_str).collect();
    // A stable order makes the reported sysctl the same on every retry.
    names.sort_unstable();
    for name in names {
        let field = || format!("linux.sysctls[{name:?}]");
        check_name(name).map_err(|reason| SandboxConfigError::invalid(field(), reason))?;
        match namespace_of(name) {
            None => {
                return Err(SandboxConfigError::invalid(
                    field(),
                    "not a namespaced sysctl: setting it would change the whole node",
                ))
            }
            Some(SysctlNamespace::Net) if host_network => {
                return Err(SandboxConfigError::invalid(
                    field(),
                    "a network sysctl cannot be set in a pod that uses the host network",
                ))
            }
            Some(SysctlNamespace::Ipc) if host_ipc => {
                return Err(SandboxConfigError::invalid(
                    field(),
                    "an IPC sysctl cannot be set in a pod that uses the host IPC namespace",
                ))
            }
            Some(_) => {}
        }
        let value = &sysctls[name];
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SandboxConfigError::invalid(
                field(),
                format!("value {value:?} holds a newline or another control character"),
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_SYSCTL_NAME_CHARS {
        return Err(format!(
            "the name is longer than {MAX_SYSCTL_NAME_CHARS} characters"
        ));
    }
    let segment_ok = |segment: &str| {
        let bytes = segment.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let inner = |b: &u8| edge(b) || *b == b'-' || *b == b'_';
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => edge(first) && edge(last) && bytes.iter().all(inner),
            _ => false,
        }
    };
    if name.split(['.', '/']).all(segment_ok) {
        Ok(())
    } else {
        Err(
            "not a sysctl name: lowercase letters, digits, '-' and '_' in segments \
             separated by '.' or '/'"
                .to_owned(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::grpc::{Code, Status};

    use super::*;

    fn one(name: &str, value: &str) -> HashMap<String, String> {
        HashMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn namespaces_follow_the_kubernetes_rules() {
        let cases = [
            ("net.ipv4.ip_local_port_range", Some(SysctlNamespace::Net)),
            ("net.core.somaxconn", Some(SysctlNamespace::Net)),
            (
                "net/ipv4/conf/eth0.100/forwarding",
                Some(SysctlNamespace::Net),
            ),
            ("kernel.shm_rmid_forced", Some(SysctlNamespace::Ipc)),
            ("kernel.shmmax", Some(SysctlNamespace::Ipc)),
            ("kernel.msgmax", Some(SysctlNamespace::Ipc)),
            ("kernel.sem", Some(SysctlNamespace::Ipc)),
            ("fs.mqueue.msg_max", Some(SysctlNamespace::Ipc)),
            ("kernel.sem_next_id", None),
            ("kernel.hostname", None),
            ("kernel.pid_max", None),
            ("vm.overcommit_memory", None),
            ("fs.file-max", None),
            ("network.x", None),
        ];
        for (name, namespace) in cases {
            assert_eq!(namespace_of(name), namespace, "{name}");
        }
    }

    #[test]
    fn the_slash_form_trades_dots_and_slashes() {
        assert_eq!(
            dotted_name("net/ipv4/conf/eth0.100/forwarding"),
            "net.ipv4.conf.eth0/100.forwarding"
        );
        assert_eq!(dotted_name("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(dotted_name("kernel"), "kernel");
    }

    #[test]
    fn namespaced_sysctls_are_accepted_in_private_namespaces() {
        let sysctls = HashMap::from([
            (
                "net.ipv4.ip_unprivileged_port_start".to_owned(),
                "0".to_owned(),
            ),
            (
                "net.ipv4.ip_local_port_range".to_owned(),
                "32768\t60999".to_owned(),
            ),
            ("kernel.shm_rmid_forced".to_owned(), "1".to_owned()),
            ("kernel.msgmax".to_owned(), "65536".to_owned()),
            (
                "net/ipv4/conf/eth0.100/forwarding".to_owned(),
                "1".to_owned(),
            ),
        ]);
        assert!(validate_sysctls(&sysctls, false, false).is_ok());
        assert!(validate_sysctls(&HashMap::new(), true, true).is_ok());
    }

    #[test]
    fn host_namespaces_refuse_their_sysctls_only() {
        let net = one("net.core.somaxconn", "1024");
        let ipc = one("kernel.shmmax", "1");
        assert!(validate_sysctls(&net, false, true).is_ok());
        assert!(validate_sysctls(&ipc, true, false).is_ok());
        let err = validate_sysctls(&net, true, false).unwrap_err();
        assert!(err.to_string().contains("host network"), "{err}");
        let err = validate_sysctls(&ipc, false, true).unwrap_err();
        assert!(err.to_string().contains("host IPC"), "{err}");
    }

    #[test]
    fn unnamespaced_malformed_and_multiline_sysctls_are_refused_by_name() {
        let long_name = format!("net.{}", "a".repeat(MAX_SYSCTL_NAME_CHARS));
        let cases = [
            ("vm.overcommit_memory", "1", "not a namespaced sysctl"),
            ("kernel.hostname", "evil", "not a namespaced sysctl"),
            ("Net.ipv4.ip_forward", "1", "not a sysctl name"),
            ("net..ipv4", "1", "not a sysctl name"),
            ("net.ipv4.", "1", "not a sysctl name"),
            ("net.ipv4.-x", "1", "not a sysctl name"),
            ("net/../../etc", "1", "not a sysctl name"),
            ("", "1", "not a sysctl name"),
            (&long_name, "1", "longer than 253"),
            ("net.ipv4.ip_forward", "1\nkernel.pid_max=1", "newline"),
            ("net.ipv4.ip_forward", "1\0", "control character"),
        ];
        for (name, value, reason) in cases {
            let err = validate_sysctls(&one(name, value), false, false).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("linux.sysctls[{name:?}]")),
                "{message}"
            );
            assert!(message.contains(reason), "{message} lacks {reason}");
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }
    }
}
