//! CRI security settings turned into Docker's `User`, `GroupAdd` and
//! `SecurityOpt` values. The pieces take plain CRI fields so that both the
//! sandbox and its containers use them.
//!
//! - user: `uid`, `uid:gid`, `name` or `name:gid`; a group without a user is
//!   refused, as is a user given both as a number and as a name.
//! - SELinux: `label=user:…`, `label=role:…`, `label=type:…`,
//!   `label=level:…`, one per part that is set.
//! - seccomp: RuntimeDefault → nothing (Docker's default profile);
//!   Unconfined → `seccomp=unconfined`; Localhost → the profile's JSON
//!   inlined as `seccomp=<json>`, which is how the Engine API takes a custom
//!   profile. An absent profile means Docker's default here; a caller with
//!   another default (the CRI's unconfined for containers) passes it.
//! - AppArmor: RuntimeDefault → nothing; Unconfined → `apparmor=unconfined`;
//!   Localhost → `apparmor=<profile name>`. On a node whose dockerd runs
//!   without AppArmor (`GET /info` lists no `name=apparmor` security
//!   option) Docker drops every AppArmor option without a word, so a
//!   Localhost profile is refused there ([`check_apparmor_on_node`]);
//!   RuntimeDefault and Unconfined still pass, as unconfined is all such a
//!   node gives.
//!
//! The inputs from the node, a Localhost seccomp profile (read through
//! [`SeccompProfiles`], which the caller implements) and whether dockerd
//! has AppArmor, are handed in; apart from [`NodeSeccompProfiles`], the
//! node's implementation, this module does no I/O.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::SandboxConfigError;
use crate::api::v1;
use crate::api::v1::security_profile::ProfileType;

/// `SecurityOpt` that stops processes from gaining privileges (setuid,
/// file capabilities) through `execve`.
pub const NO_NEW_PRIVILEGES: &str = "no-new-privileges";
/// Largest seccomp profile accepted; Docker's own default profile is about
/// 25 KiB.
pub const MAX_SECCOMP_PROFILE_BYTES: u64 = 1024 * 1024;
/// Prefix of a Localhost profile in the deprecated string fields (and
/// sometimes of AppArmor profile names).
const LOCALHOST_PREFIX: &str = "localhost/";

/// Where Localhost seccomp profiles come from.
pub trait SeccompProfiles: fmt::Debug {
    /// The contents of the file at `path`. An implementation reads at most
    /// `limit + 1` bytes, so that a file over `limit` is noticed without
    /// reading all of it.
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
}

/// Reads Localhost seccomp profiles from the node's filesystem.
///
/// The profile must be a regular file named by its own path: it is opened
/// with `O_NONBLOCK` (a FIFO there would otherwise hold the worker until a
/// writer came) and `O_NOFOLLOW`, and checked with `fstat` before a byte
/// is read. Anything else is an error of kind `InvalidInput`, which
/// [`seccomp_option`] turns into `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Copy)]
pub struct NodeSeccompProfiles;

impl SeccompProfiles for NodeSeccompProfiles {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let not_a_profile =
            |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(|err| match err.raw_os_error() {
                Some(code) if code == Errno::ELOOP as i32 => not_a_profile("it is a symlink"),
                _ => err,
            })?;
        let meta = file.metadata()?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a special file"
            };
            return Err(not_a_profile(&format!("it is {what}, not a regular file")));
        }
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Docker's `User` for the CRI user fields; empty keeps the image's user.
pub fn user(
    run_as_user: Option<i64>,
    run_as_username: &str,
    run_as_group: Option<i64>,
) -> Result<String, SandboxConfigError> {
    let user = match (run_as_user, run_as_username) {
        (Some(_), name) if !name.is_empty() => {
            return Err(SandboxConfigError::invalid(
                "run_as_username",
                "run_as_user and run_as_username are mutually exclusive",
            ))
        }
        (Some(uid), _) => id("run_as_user", uid)?.to_string(),
        (None, "") => String::new(),
        (None, name) => {
            if name.contains(':') || name.chars().any(char::is_control) {
                return Err(SandboxConfigError::invalid(
                    "run_as_username",
                    format!("{name:?} holds ':' or a control character"),
                ));
            }
            name.to_owned()
        }
    };
    match run_as_group {
        None => Ok(user),
        Some(_) if user.is_empty() => Err(SandboxConfigError::invalid(
            "run_as_group",
            "a group needs run_as_user or run_as_username",
        )),
        Some(gid) => Ok(format!("{user}:{}", id("run_as_group", gid)?)),
    }
}

/// Checks the supplemental groups policy: only `Merge`, Docker's only
/// behaviour, can be honoured.
pub fn supplemental_groups_policy(policy: i32) -> Result<(), SandboxConfigError> {
    match v1::SupplementalGroupsPolicy::try_from(policy) {
        Ok(v1::SupplementalGroupsPolicy::Merge) => Ok(()),
        Ok(v1::SupplementalGroupsPolicy::Strict) => Err(SandboxConfigError::unsupported(
            "supplemental_groups_policy",
            "Docker always adds the groups the image's /etc/group gives the user (Strict)",
        )),
        Err(_) => Err(SandboxConfigError::invalid(
            "supplemental_groups_policy",
            format!("unknown policy {policy}"),
        )),
    }
}

/// Docker's `GroupAdd` for the CRI supplemental groups.
pub fn group_add(groups: &[i64]) -> Result<Vec<String>, SandboxConfigError> {
    groups
        .iter()
        .map(|&gid| id("supplemental_groups", gid).map(|gid| gid.to_string()))
        .collect()
}

/// The `label=` options for the SELinux label parts that are set.
pub fn selinux_options(
    options: Option<&v1::SeLinuxOption>,
) -> Result<Vec<String>, SandboxConfigError> {
    let Some(options) = options else {
        return Ok(Vec::new());
    };
    let parts = [
        ("user", &options.user),
        ("role", &options.role),
        ("type", &options.r#type),
        ("level", &options.level),
    ];
    let mut opts = Vec::new();
    for (part, value) in parts {
        if value.is_empty() {
            continue;
        }
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(SandboxConfigError::invalid(
                format!("selinux_options.{part}"),
                format!("{value:?} holds whitespace or a control character"),
            ));
        }
        opts.push(format!("label={part}:{value}"));
    }
    Ok(opts)
}

/// The `seccomp=` option for `profile`, or `None` for Docker's default.
pub fn seccomp_option(
    profile: Option<&v1::SecurityProfile>,
    profiles: &dyn SeccompProfiles,
) -> Result<Option<String>, SandboxConfigError> {
    let Some(profile) = profile else {
        return Ok(None);
    };
    match profile_type("seccomp", profile)? {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("seccomp=unconfined".to_owned())),
        ProfileType::Localhost => {
            let path = &profile.localhost_ref;
            if !path.starts_with('/') {
                return Err(SandboxConfigError::invalid(
                    "seccomp.localhost_ref",
                    format!("{path:?} is not an absolute path"),
                ));
            }
            let bytes = profiles
                .read(Path::new(path), MAX_SECCOMP_PROFILE_BYTES)
                .map_err(|err| match err.kind() {
                    // Not a regular file: no state of the node makes it
                    // a profile, so the request is what is wrong.
                    io::ErrorKind::InvalidInput => SandboxConfigError::invalid(
                        "seccomp.localhost_ref",
                        format!("{path:?} cannot be a seccomp profile: {err}"),
                    ),
                    _ => SandboxConfigError::SeccompProfile {
                        path: path.clone(),
                        reason: "cannot read it".to_owned(),
                        source: Some(err),
                    },
                })?;
            Ok(Some(format!("seccomp={}", compact_profile(path, &bytes)?)))
        }
    }
}

/// The profile the deprecated `seccomp_profile_path` string names, for a
/// request that sets only that field: `runtime/default` or
/// `docker/default` (or empty) → Docker's default, `unconfined`,
/// `localhost/<absolute path>`.
pub fn deprecated_seccomp_profile(
    path: &str,
) -> Result<Option<v1::SecurityProfile>, SandboxConfigError> {
    let profile = |profile_type: ProfileType, localhost_ref: &str| v1::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.to_owned(),
    };
    match path {
        "" => Ok(None),
        "runtime/default" | "docker/default" => Ok(Some(profile(ProfileType::RuntimeDefault, ""))),
        "unconfined" => Ok(Some(profile(ProfileType::Unconfined, ""))),
        _ => match path.strip_prefix(LOCALHOST_PREFIX) {
            Some(file) => Ok(Some(profile(ProfileType::Localhost, file))),
            None => Err(SandboxConfigError::invalid(
                "seccomp_profile_path",
                format!(
                    "{path:?} is none of runtime/default, docker/default, unconfined, \
                     localhost/<path>"
                ),
            )),
        },
    }
}

/// The `apparmor=` option for `profile`, or `None` for Docker's default.
pub fn apparmor_option(
    profile: Option<&v1::SecurityProfile>,
) -> Result<Option<String>, SandboxConfigError> {
    let Some(profile) = profile else {
        return Ok(None);
    };
    match profile_type("apparmor", profile)? {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("apparmor=unconfined".to_owned())),
        ProfileType::Localhost => {
            let reference = &profile.localhost_ref;
            let name = reference
                .strip_prefix(LOCALHOST_PREFIX)
                .unwrap_or(reference);
            if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(SandboxConfigError::invalid(
                    "apparmor.localhost_ref",
                    format!("{reference:?} is not an AppArmor profile name"),
                ));
            }
            Ok(Some(format!("apparmor={name}")))
        }
    }
}

/// Refuses a Localhost AppArmor `profile` on a node without AppArmor,
/// where Docker would drop it and run the process unconfined;
/// `node_has_apparmor` is whether dockerd lists `name=apparmor` among its
/// security options.
pub fn check_apparmor_on_node(
    profile: Option<&v1::SecurityProfile>,
    node_has_apparmor: bool,
) -> Result<(), SandboxConfigError> {
    let Some(profile) = profile else {
        return Ok(());
    };
    if node_has_apparmor || profile_type("apparmor", profile)? != ProfileType::Localhost {
        return Ok(());
    }
    Err(SandboxConfigError::NodeSetup(format!(
        "AppArmor profile {:?}: AppArmor is not enabled on this node",
        profile.localhost_ref
    )))
}

fn profile_type(
    field: &str,
    profile: &v1::SecurityProfile,
) -> Result<ProfileType, SandboxConfigError> {
    ProfileType::try_from(profile.profile_type).map_err(|_| {
        SandboxConfigError::invalid(
            format!("{field}.profile_type"),
            format!("unknown profile type {}", profile.profile_type),
        )
    })
}

/// The profile as one line of JSON: Docker takes it inside a `key=value`
/// option, where a newline would not survive.
fn compact_profile(path: &str, bytes: &[u8]) -> Result<String, SandboxConfigError> {
    let refuse = |reason: String| SandboxConfigError::SeccompProfile {
        path: path.to_owned(),
        reason,
        source: None,
    };
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_SECCOMP_PROFILE_BYTES) {
        return Err(refuse(format!(
            "larger than {MAX_SECCOMP_PROFILE_BYTES} bytes"
        )));
    }
    let profile: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|err| refuse(format!("not JSON: {err}")))?;
    if !profile.is_object() {
        return Err(refuse("not a JSON object".to_owned()));
    }
    Ok(profile.to_string())
}

/// A user or group ID: Linux IDs are unsigned 32-bit numbers.
fn id(field: &str, value: i64) -> Result<u32, SandboxConfigError> {
    u32::try_from(value).map_err(|_| {
        SandboxConfigError::invalid(field, format!("{value} is not a valid user or group ID"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use crate::grpc::{Code, Status};

    use super::*;

    /// Profiles held in memory, keyed by path.
    #[derive(Debug, Default)]
    pub(crate) struct FakeProfiles(pub(crate) HashMap<PathBuf, Vec<u8>>);

    impl FakeProfiles {
        pub(crate) fn with(path: &str, contents: &str) -> FakeProfiles {
            FakeProfiles(HashMap::from([(
                PathBuf::from(path),
                contents.as_bytes().to_vec(),
            )]))
        }
    }

    impl SeccompProfiles for FakeProfiles {
        fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
            let bytes = self.0.get(path).ok_or(io::ErrorKind::NotFound)?;
            let keep = usize::try_from(limit + 1).unwrap().min(bytes.len());
            Ok(bytes[..keep].to_vec())
        }
    }

    fn profile(profile_type: ProfileType, localhost_ref: &str) -> v1::SecurityProfile {
        v1::SecurityProfile {
            profile_type: profile_type as i32,
            localhost_ref: localhost_ref.to_owned(),
        }
    }

    fn code(err: SandboxConfigError) -> Code {
        Status::from(err).code
    }

    #[test]
    fn users_and_groups_become_docker_user_strings() {
        let cases = [
            (None, "", None, ""),
            (Some(0), "", None, "0"),
            (Some(1000), "", None, "1000"),
            (Some(1000), "", Some(2000), "1000:2000"),
            (None, "nobody", None, "nobody"),
            (None, "nobody", Some(65534), "nobody:65534"),
        ];
        for (uid, name, gid, expected) in cases {
            assert_eq!(
                user(uid, name, gid).unwrap(),
                expected,
                "{uid:?} {name} {gid:?}"
            );
        }
    }

    #[test]
    fn impossible_users_are_refused() {
        let cases = [
            (None, "", Some(5), "run_as_group: a group needs"),
            (Some(1), "root", None, "mutually exclusive"),
            (Some(-1), "", None, "run_as_user: -1"),
            (Some(1 << 32), "", None, "run_as_user: 4294967296"),
            (Some(1), "", Some(-2), "run_as_group: -2"),
            (None, "a:b", None, "run_as_username: \"a:b\""),
            (None, "a\n", None, "run_as_username"),
        ];
        for (uid, name, gid, message) in cases {
            let err = user(uid, name, gid).unwrap_err();
            assert!(err.to_string().contains(message), "{err} lacks {message}");
            assert_eq!(code(err), Code::InvalidArgument);
        }
    }

    #[test]
    fn supplemental_groups_become_strings_and_negative_ones_are_refused() {
        assert_eq!(group_add(&[5, 0, 65534]).unwrap(), ["5", "0", "65534"]);
        assert!(group_add(&[]).unwrap().is_empty());
        let err = group_add(&[1, -1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "supplemental_groups: -1 is not a valid user or group ID"
        );
    }

    #[test]
    fn selinux_parts_become_label_options() {
        let all = v1::SeLinuxOption {
            user: "system_u".to_owned(),
            role: "system_r".to_owned(),
            r#type: "spc_t".to_owned(),
            level: "s0:c1,c2".to_owned(),
        };
        assert_eq!(
            selinux_options(Some(&all)).unwrap(),
            [
                "label=user:system_u",
                "label=role:system_r",
                "label=type:spc_t",
                "label=level:s0:c1,c2"
            ]
        );
        let level_only = v1::SeLinuxOption {
            level: "s0".to_owned(),
            ..v1::SeLinuxOption::default()
        };
        assert_eq!(
            selinux_options(Some(&level_only)).unwrap(),
            ["label=level:s0"]
        );
        assert!(selinux_options(None).unwrap().is_empty());
        let bad = v1::SeLinuxOption {
            r#type: "spc_t\nlabel=disable".to_owned(),
            ..v1::SeLinuxOption::default()
        };
        let err = selinux_options(Some(&bad)).unwrap_err();
        assert!(err.to_string().starts_with("selinux_options.type"), "{err}");
    }

    #[test]
    fn seccomp_profiles_become_security_options() {
        let profiles = FakeProfiles::with(
            "/var/lib/kubelet/seccomp/audit.json",
            "{\n  \"defaultAction\": \"SCMP_ACT_LOG\"\n}\n",
        );
        let cases = [
            (None, None),
            (Some(profile(ProfileType::RuntimeDefault, "")), None),
            (
                Some(profile(ProfileType::Unconfined, "")),
                Some("seccomp=unconfined"),
            ),
            (
                Some(profile(
                    ProfileType::Localhost,
                    "/var/lib/kubelet/seccomp/audit.json",
                )),
                Some("seccomp={\"defaultAction\":\"SCMP_ACT_LOG\"}"),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                seccomp_option(given.as_ref(), &profiles)
                    .unwrap()
                    .as_deref(),
                expected,
                "{given:?}"
            );
        }
    }

    #[test]
    fn unusable_seccomp_profiles_are_refused() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024));
        let profiles = FakeProfiles(HashMap::from([
            (PathBuf::from("/list.json"), b"[]".to_vec()),
            (PathBuf::from("/broken.json"), b"{".to_vec()),
            (PathBuf::from("/big.json"), big.into_bytes()),
        ]));
        let cases = [
            (
                "relative.json",
                Code::InvalidArgument,
                "not an absolute path",
            ),
            (
                "/missing.json",
                Code::FailedPrecondition,
                "cannot read it: entity not found",
            ),
            ("/list.json", Code::FailedPrecondition, "not a JSON object"),
            ("/broken.json", Code::FailedPrecondition, "not JSON"),
            (
                "/big.json",
                Code::FailedPrecondition,
                "larger than 1048576 bytes",
            ),
        ];
        for (path, expected_code, message) in cases {
            let given = profile(ProfileType::Localhost, path);
            let err = seccomp_option(Some(&given), &profiles).unwrap_err();
            assert!(err.to_string().contains(message), "{err} lacks {message}");
            assert_eq!(code(err), expected_code, "{path}");
        }
        let unknown = v1::SecurityProfile {
            profile_type: 7,
            localhost_ref: String::new(),
        };
        let err = seccomp_option(Some(&unknown), &profiles).unwrap_err();
        assert_eq!(
            err.to_string(),
            "seccomp.profile_type: unknown profile type 7"
        );
    }

    #[test]
    fn deprecated_seccomp_paths_map_to_profiles() {
        let cases = [
            ("", None),
            (
                "runtime/default",
                Some(profile(ProfileType::RuntimeDefault, "")),
            ),
            (
                "docker/default",
                Some(profile(ProfileType::RuntimeDefault, "")),
            ),
            ("unconfined", Some(profile(ProfileType::Unconfined, ""))),
            (
                "localhost//p.json",
                Some(profile(ProfileType::Localhost, "/p.json")),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(
                deprecated_seccomp_profile(path).unwrap(),
                expected,
                "{path}"
            );
        }
        assert!(deprecated_seccomp_profile("strict").is_err());
    }

    #[test]
    fn apparmor_profiles_become_security_options() {
        let cases = [
            (None, None),
            (Some(profile(ProfileType::RuntimeDefault, "")), None),
            (
                Some(profile(ProfileType::Unconfined, "")),
                Some("apparmor=unconfined"),
            ),
            (
                Some(profile(ProfileType::Localhost, "k8s-deny-write")),
                Some("apparmor=k8s-deny-write"),
            ),
            (
                Some(profile(ProfileType::Localhost, "localhost/k8s-deny-write")),
                Some("apparmor=k8s-deny-write"),
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(
                apparmor_option(given.as_ref()).unwrap().as_deref(),
                expected,
                "{given:?}"
            );
        }
        for bad in ["", "localhost/", "two words"] {
            let given = profile(ProfileType::Localhost, bad);
            assert!(apparmor_option(Some(&given)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_localhost_apparmor_profile_needs_apparmor_on_the_node() {
        let localhost = profile(ProfileType::Localhost, "k8s-deny-write");
        let err = check_apparmor_on_node(Some(&localhost), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AppArmor profile \"k8s-deny-write\": AppArmor is not enabled on this node"
        );
        assert_eq!(code(err), Code::FailedPrecondition);
        assert!(check_apparmor_on_node(Some(&localhost), true).is_ok());
        for lenient in [
            None,
            Some(profile(ProfileType::RuntimeDefault, "")),
            Some(profile(ProfileType::Unconfined, "")),
        ] {
            assert!(
                check_apparmor_on_node(lenient.as_ref(), false).is_ok(),
                "{lenient:?}"
            );
        }
    }

    #[test]
    fn a_localhost_profile_that_is_not_a_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let file = dir.path().join("real.json");
        std::fs::write(&file, "{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for (path, what) in [
            (&fifo, "a FIFO"),
            (&dir.path().to_path_buf(), "a directory"),
            (&PathBuf::from("/dev/null"), "a device"),
            (&link, "a symlink"),
        ] {
            let given = profile(ProfileType::Localhost, path.to_str().unwrap());
            let err = seccomp_option(Some(&given), &NodeSeccompProfiles).unwrap_err();
            assert!(err.to_string().contains(what), "{err} lacks {what}");
            assert_eq!(code(err), Code::InvalidArgument, "{}", path.display());
        }
        let given = profile(ProfileType::Localhost, file.to_str().unwrap());
        assert_eq!(
            seccomp_option(Some(&given), &NodeSeccompProfiles).unwrap(),
            Some("seccomp={}".to_owned())
        );
    }
}
