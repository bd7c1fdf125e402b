//! The security context of a container, checked where it matters: inside
//! the running container on the real dockerd, from `/proc` and from what
//! commands may do, not from `docker inspect`. Each test runs a table of
//! variations as containers of one host-network sandbox (`common::pod`).
//! Where the host cannot give a setting (no AppArmor, no SELinux, a
//! bounding set without every capability) the test prints why it skips
//! the effect and checks instead how the request is answered.
//! Needs root, as `tests/run.sh` runs the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::busybox_image;
use common::pod::{World, RUN_LABEL};
use dockshim::api::v1 as cri;
use dockshim::api::v1::security_profile::ProfileType;
use dockshim::api::v1::NamespaceMode;
use tonic::Code;

/// A main process that runs until stopped and exits at once on SIGTERM
/// (as PID 1 it would otherwise ignore it and every stop would wait out
/// the grace period).
const RUN_UNTIL_STOPPED: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done";
/// Seconds an exec inside a container may take.
const EXEC_TIMEOUT_SECS: i64 = 10;
/// Docker's default capability set (Docker Engine 20.10, the oldest
/// dockshim supports, and unchanged since).
const DOCKER_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];
/// The capabilities the tests name, with their bit numbers from
/// `linux/capability.h`.
const CAPABILITY_BITS: [(&str, u32); 16] = [
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("NET_BIND_SERVICE", 10),
    ("NET_ADMIN", 12),
    ("NET_RAW", 13),
    ("SYS_CHROOT", 18),
    ("SYS_TIME", 25),
    ("MKNOD", 27),
    ("AUDIT_WRITE", 29),
    ("SETFCAP", 31),
];

type Security = cri::LinuxContainerSecurityContext;

/// A busybox container `name` in `world`'s sandbox, in a PID namespace of
/// its own (the kubelet's default) so that PID 1 is its main process, with
/// the security context `edit` makes.
fn config(world: &World, name: &str, edit: impl FnOnce(&mut Security)) -> cri::ContainerConfig {
    let mut config = world.config(name, &busybox_image(), RUN_UNTIL_STOPPED);
    let security = security(&mut config);
    security.namespace_options.as_mut().unwrap().pid = NamespaceMode::Container as i32;
    edit(security);
    config
}

fn security(config: &mut cri::ContainerConfig) -> &mut Security {
    config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
}

/// Creates and starts the container; the error of whichever step failed.
async fn create_and_start(
    world: &World,
    sandbox_id: &str,
    sandbox_config: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> Result<String, tonic::Status> {
    let id = world
        .client
        .create_container(sandbox_id, config, sandbox_config.clone())
        .await?;
    world.client.start_container(&id).await?;
    Ok(id)
}

/// Runs the container `name` in `world`'s sandbox with the security
/// context `edit` makes; panics if it does not start.
async fn run(world: &World, name: &str, edit: impl FnOnce(&mut Security)) -> String {
    try_run(world, name, edit)
        .await
        .unwrap_or_else(|status| panic!("{name}: {status:?}"))
}

async fn try_run(
    world: &World,
    name: &str,
    edit: impl FnOnce(&mut Security),
) -> Result<String, tonic::Status> {
    let config = config(world, name, edit);
    create_and_start(world, &world.sandbox_id, &world.sandbox_config, config).await
}

/// `sh -c script` inside container `id`: exit code, stdout, stderr.
async fn sh(world: &World, id: &str, script: &str) -> (i32, String, String) {
    let reply = world
        .client
        .exec_sync(id, &["sh", "-c", script], EXEC_TIMEOUT_SECS)
        .await
        .unwrap_or_else(|status| panic!("exec {script:?} in {id}: {status:?}"));
    (
        reply.exit_code,
        String::from_utf8_lossy(&reply.stdout).into_owned(),
        String::from_utf8_lossy(&reply.stderr).into_owned(),
    )
}

/// The stdout of `script` inside container `id`, which must succeed.
async fn output(world: &World, id: &str, script: &str) -> String {
    let (code, stdout, stderr) = sh(world, id, script).await;
    assert_eq!(code, 0, "{script:?} in {id}: {stdout}{stderr}");
    stdout.trim_end().to_owned()
}

/// The stderr of `script` inside container `id`, which must fail.
async fn failure(world: &World, id: &str, script: &str) -> String {
    let (code, stdout, stderr) = sh(world, id, script).await;
    assert_ne!(code, 0, "{script:?} in {id} succeeded: {stdout}");
    stderr
}

/// The value of `key` in `/proc/<pid>/status` of both the container's
/// main process (PID 1) and a process exec'd into it, which must agree.
async fn proc_status(world: &World, id: &str, key: &str) -> String {
    let main = output(world, id, "cat /proc/1/status").await;
    let exec = output(world, id, "cat /proc/self/status").await;
    let (main, exec) = (status_field(&main, key), status_field(&exec, key));
    assert_eq!(
        main, exec,
        "{key} of the main process and of an exec in {id}"
    );
    main
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_owned()
}

/// A capability mask as `/proc/<pid>/status` prints it.
fn mask(names: &[&str]) -> String {
    let bits = names.iter().fold(0u64, |bits, name| {
        let (_, bit) = CAPABILITY_BITS
            .iter()
            .find(|(known, _)| known == name)
            .unwrap_or_else(|| panic!("no bit number for {name}"));
        bits | 1 << bit
    });
    format!("{bits:016x}")
}

/// Docker's default capabilities with `add` added and `drop` removed.
fn default_capabilities_with(add: &[&'static str], drop: &[&str]) -> String {
    let names: Vec<&str> = DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .chain(add)
        .copied()
        .filter(|name| !drop.contains(name))
        .collect();
    mask(&names)
}

/// Every capability the kernel knows, as `/proc/<pid>/status` prints a
/// mask.
fn all_capabilities() -> String {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    format!("{:016x}", (1u64 << (last + 1)) - 1)
}

/// The capabilities this host can give a container at most: its bounding
/// set, as `/proc/<pid>/status` prints a mask.
fn host_bounding_set() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status_field(&status, "CapBnd")
}

/// Why this host's bounding set cannot give a container every capability
/// the kernel knows, if it cannot. Docker 20.10 still asks runc for all of
/// them for `ALL` and privileged, which then fail to start; newer engines
/// ask only for what their own bounding set holds, and start.
fn missing_host_capabilities() -> Option<String> {
    let bounding = host_bounding_set();
    let all = all_capabilities();
    (bounding != all).then(|| {
        format!(
            "the host's bounding set {bounding} is not every capability the kernel knows ({all})"
        )
    })
}

/// Why AppArmor cannot confine containers here, if it cannot.
fn apparmor_missing() -> Option<&'static str> {
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|value| value.trim() == "Y");
    if !enabled {
        return Some("the kernel has no AppArmor enabled");
    }
    let info = common::docker::get_json("/info");
    let listed = info["SecurityOptions"]
        .as_array()
        .is_some_and(|options| options.iter().any(|o| o == "name=apparmor"));
    (!listed).then_some("dockerd does not list apparmor among its security options")
}

/// The Docker names of the run's containers whose name holds `part`.
fn docker_names_with(world: &World, part: &str) -> Vec<String> {
    let filter = format!("label={RUN_LABEL}={}", world.run_id);
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker ps: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|name| name.contains(part))
        .map(str::to_owned)
        .collect()
}

/// The namespace link `/proc/<pid>/ns/<kind>` of a host process; `self`
/// gives the host's own, since the tests run in the namespaces dockerd
/// runs in.
fn host_namespace(pid: &str, kind: &str) -> String {
    let link = format!("/proc/{pid}/ns/{kind}");
    std::fs::read_link(&link)
        .unwrap_or_else(|e| panic!("{link}: {e}"))
        .display()
        .to_string()
}

/// The host PID of container `id`'s main process.
fn host_pid(id: &str) -> String {
    common::docker::get_json(&format!("/containers/{id}/json"))["State"]["Pid"].to_string()
}

fn assert_refused(result: Result<String, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err(message);
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(message), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_groups_and_capabilities_take_effect_inside() {
    let world = World::start().await;

    let ids = run(&world, "ids", |s| {
        s.run_as_user = Some(cri::Int64Value { value: 1000 });
        s.run_as_group = Some(cri::Int64Value { value: 3000 });
        s.supplemental_groups = vec![4000, 5000];
    })
    .await;
    assert_eq!(output(&world, &ids, "id -u; id -g").await, "1000\n3000");
    assert_eq!(
        proc_status(&world, &ids, "Uid").await,
        "1000\t1000\t1000\t1000"
    );
    assert_eq!(
        proc_status(&world, &ids, "Gid").await,
        "3000\t3000\t3000\t3000"
    );
    // Docker lists the primary group among the supplemental ones.
    assert_eq!(proc_status(&world, &ids, "Groups").await, "3000 4000 5000");
    // A non-root user keeps the bounding set but no effective capability.
    assert_eq!(proc_status(&world, &ids, "CapEff").await, mask(&[]));

    let nobody = run(&world, "nobody", |s| {
        s.run_as_username = "nobody".to_owned()
    })
    .await;
    assert_eq!(
        output(&world, &nobody, "id -u; id -g; id -un").await,
        "65534\n65534\nnobody"
    );
    let nobody_group = run(&world, "nobody-group", |s| {
        s.run_as_username = "nobody".to_owned();
        s.run_as_group = Some(cri::Int64Value { value: 1234 });
    })
    .await;
    assert_eq!(
        output(&world, &nobody_group, "id -u; id -g").await,
        "65534\n1234"
    );

    // The image's /etc/passwd is read when the container starts, so an
    // unknown name is accepted by CreateContainer and fails the start with
    // dockerd's reason.
    let unknown = world
        .create(config(&world, "unknown-user", |s| {
            s.run_as_username = "no-such-user".to_owned();
        }))
        .await
        .unwrap();
    let status = world.client.start_container(&unknown).await.unwrap_err();
    assert!(
        status.message().contains("cannot start the container")
            && status.message().contains("no-such-user"),
        "{status:?}"
    );
    assert_ne!(
        world.status(&unknown).await.state,
        cri::ContainerState::ContainerRunning as i32
    );

    let plain = run(&world, "caps-default", |_| {}).await;
    let docker_default = default_capabilities_with(&[], &[]);
    assert_eq!(proc_status(&world, &plain, "CapEff").await, docker_default);
    assert_eq!(proc_status(&world, &plain, "CapBnd").await, docker_default);

    let changed = run(&world, "caps-add-drop", |s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_ADMIN".to_owned(), "sys_time".to_owned()],
            drop_capabilities: vec!["CAP_CHOWN".to_owned()],
            add_ambient_capabilities: Vec::new(),
        });
    })
    .await;
    let expected = default_capabilities_with(&["NET_ADMIN", "SYS_TIME"], &["CHOWN"]);
    assert_eq!(proc_status(&world, &changed, "CapEff").await, expected);
    assert_eq!(proc_status(&world, &changed, "CapBnd").await, expected);
    let denied = failure(&world, &changed, "touch /tmp/f && chown 1:1 /tmp/f").await;
    assert!(denied.contains("Operation not permitted"), "{denied}");

    let none = run(&world, "caps-drop-all", |s| {
        s.capabilities = Some(cri::Capability {
            drop_capabilities: vec!["ALL".to_owned()],
            ..cri::Capability::default()
        });
    })
    .await;
    assert_eq!(proc_status(&world, &none, "CapEff").await, mask(&[]));
    assert_eq!(proc_status(&world, &none, "CapBnd").await, mask(&[]));

    let only = run(&world, "caps-only-one", |s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".to_owned()],
            drop_capabilities: vec!["all".to_owned()],
            add_ambient_capabilities: Vec::new(),
        });
    })
    .await;
    assert_eq!(
        proc_status(&world, &only, "CapEff").await,
        mask(&["NET_BIND_SERVICE"])
    );

    let all = try_run(&world, "caps-add-all", |s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["ALL".to_owned()],
            ..cri::Capability::default()
        });
    })
    .await;
    match (all, missing_host_capabilities()) {
        (Err(status), Some(reason)) => {
            eprintln!("skipping the effect of adding ALL capabilities: {reason}");
            assert!(
                status.message().contains("cannot start the container"),
                "{status:?}"
            );
        }
        (all, _) => {
            let all = all.unwrap();
            assert_eq!(
                proc_status(&world, &all, "CapEff").await,
                host_bounding_set()
            );
            assert_eq!(
                proc_status(&world, &all, "CapBnd").await,
                host_bounding_set()
            );
        }
    }

    let no_new_privs = run(&world, "no-new-privs", |s| s.no_new_privs = true).await;
    assert_eq!(proc_status(&world, &no_new_privs, "NoNewPrivs").await, "1");
    assert_eq!(proc_status(&world, &plain, "NoNewPrivs").await, "0");

    let refused = try_run(&world, "ambient", |s| {
        s.capabilities = Some(cri::Capability {
            add_ambient_capabilities: vec!["NET_BIND_SERVICE".to_owned()],
            ..cri::Capability::default()
        });
    })
    .await;
    assert_refused(
        refused,
        Code::Unimplemented,
        "capabilities.add_ambient_capabilities",
    );
    let refused = try_run(&world, "bad-cap", |s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET ADMIN".to_owned()],
            ..cri::Capability::default()
        });
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "\"NET ADMIN\"");
    // dockerd itself refuses a well-formed name it does not know.
    let refused = try_run(&world, "unknown-cap", |s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NOT_A_CAPABILITY".to_owned()],
            ..cri::Capability::default()
        });
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "CAP_NOT_A_CAPABILITY");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_settings_take_effect_inside() {
    let world = World::start().await;

    let writable = run(&world, "rootfs-rw", |_| {}).await;
    output(&world, &writable, "touch /x /tmp/x").await;
    // Docker mounts no tmpfs on /tmp: a read-only root leaves only the
    // mounts (/dev/shm here) writable.
    let readonly = run(&world, "rootfs-ro", |s| s.readonly_rootfs = true).await;
    for path in ["/x", "/tmp/x"] {
        let err = failure(&world, &readonly, &format!("touch {path}")).await;
        assert!(err.contains("Read-only file system"), "{path}: {err}");
    }
    output(&world, &readonly, "touch /dev/shm/x").await;

    // An empty list keeps Docker's defaults, which match the kubelet's.
    let defaults = run(&world, "paths-default", |_| {}).await;
    let mounts = output(&world, &defaults, "cat /proc/self/mountinfo").await;
    assert!(is_masked_file(&mounts, "/proc/keys"), "{mounts}");
    assert!(is_mounted_read_only(&mounts, "/proc/sys"), "{mounts}");
    assert_eq!(
        output(&world, &defaults, "wc -c < /proc/timer_list").await,
        "0"
    );
    assert_eq!(
        output(&world, &defaults, "cat /etc/group").await,
        "root:x:0:\nnogroup:x:65534:"
    );

    // An explicit list replaces Docker's: what it names is masked or
    // read-only, Docker's own defaults are not.
    let explicit = run(&world, "paths-explicit", |s| {
        s.masked_paths = vec!["/proc/keys".to_owned(), "/etc/group".to_owned()];
        s.readonly_paths = vec!["/tmp".to_owned()];
    })
    .await;
    let mounts = output(&world, &explicit, "cat /proc/self/mountinfo").await;
    assert!(is_masked_file(&mounts, "/etc/group"), "{mounts}");
    assert_eq!(output(&world, &explicit, "cat /etc/group").await, "");
    assert!(!is_masked_file(&mounts, "/proc/timer_list"), "{mounts}");
    assert_ne!(
        output(&world, &explicit, "wc -c < /proc/timer_list").await,
        "0"
    );
    assert!(is_mounted_read_only(&mounts, "/tmp"), "{mounts}");
    assert!(!is_mounted_read_only(&mounts, "/proc/sys"), "{mounts}");
    let err = failure(&world, &explicit, "touch /tmp/x").await;
    assert!(err.contains("Read-only file system"), "{err}");
    output(&world, &explicit, "touch /x").await;

    let refused = try_run(&world, "paths-relative", |s| {
        s.readonly_paths = vec!["tmp".to_owned()];
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "readonly_paths: \"tmp\"");
    world.clean_up().await;
}

/// Whether `/proc/self/mountinfo` shows `path` masked: a file bind-mounted
/// from a `null` device node.
fn is_masked_file(mountinfo: &str, path: &str) -> bool {
    mount_entry(mountinfo, path).is_some_and(|fields| fields[3] == "/null")
}

fn is_mounted_read_only(mountinfo: &str, path: &str) -> bool {
    mount_entry(mountinfo, path)
        .is_some_and(|fields| fields[5].split(',').any(|option| option == "ro"))
}

/// The fields of the last mount at `path` (the one that is seen).
fn mount_entry<'a>(mountinfo: &'a str, path: &str) -> Option<Vec<&'a str>> {
    mountinfo
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .rfind(|fields| fields.len() > 5 && fields[4] == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seccomp_profiles_take_effect_inside() {
    let world = World::start().await;
    let profiles = tempfile::Builder::new()
        .prefix("dockshim-seccomp")
        .tempdir()
        .unwrap();
    let deny_mkdir = profiles.path().join("deny-mkdir.json");
    std::fs::write(
        &deny_mkdir,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
            ]
        }"#,
    )
    .unwrap();
    let deny_mkdir = deny_mkdir.display().to_string();
    let profile = |profile_type: ProfileType, localhost_ref: &str| cri::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.to_owned(),
    };

    let runtime_default = run(&world, "seccomp-default", |s| {
        s.seccomp = Some(profile(ProfileType::RuntimeDefault, ""));
    })
    .await;
    assert_eq!(proc_status(&world, &runtime_default, "Seccomp").await, "2");
    let unconfined = run(&world, "seccomp-unconfined", |s| {
        s.seccomp = Some(profile(ProfileType::Unconfined, ""));
    })
    .await;
    assert_eq!(proc_status(&world, &unconfined, "Seccomp").await, "0");
    // Unconfined is the CRI's default for a container.
    let absent = run(&world, "seccomp-absent", |_| {}).await;
    assert_eq!(proc_status(&world, &absent, "Seccomp").await, "0");

    let localhost = run(&world, "seccomp-localhost", |s| {
        s.seccomp = Some(profile(ProfileType::Localhost, &deny_mkdir));
    })
    .await;
    #[allow(deprecated)]
    let legacy = run(&world, "seccomp-legacy-path", |s| {
        s.seccomp_profile_path = format!("localhost/{deny_mkdir}");
    })
    .await;
    for id in [&localhost, &legacy] {
        assert_eq!(proc_status(&world, id, "Seccomp").await, "2");
        let err = failure(&world, id, "mkdir /tmp/d").await;
        assert!(err.contains("Operation not permitted"), "{err}");
        output(&world, id, "touch /tmp/f && rm /tmp/f").await;
    }
    output(&world, &unconfined, "mkdir /tmp/d").await;

    let missing = profiles.path().join("missing.json").display().to_string();
    let refused = try_run(&world, "seccomp-missing", |s| {
        s.seccomp = Some(profile(ProfileType::Localhost, &missing));
    })
    .await;
    assert_refused(
        refused,
        Code::FailedPrecondition,
        &format!("seccomp profile {missing:?}: cannot read it"),
    );
    let refused = try_run(&world, "seccomp-relative", |s| {
        s.seccomp = Some(profile(ProfileType::Localhost, "deny-mkdir.json"));
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "seccomp.localhost_ref");
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_privilege_follow_what_the_host_offers() {
    let world = World::start().await;
    let profile = |profile_type: ProfileType, localhost_ref: &str| cri::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.to_owned(),
    };

    let default = try_run(&world, "apparmor-default", |s| {
        s.apparmor = Some(profile(ProfileType::RuntimeDefault, ""));
    })
    .await
    .unwrap();
    let unconfined = run(&world, "apparmor-unconfined", |s| {
        s.apparmor = Some(profile(ProfileType::Unconfined, ""));
    })
    .await;
    let localhost = try_run(&world, "apparmor-missing", |s| {
        s.apparmor = Some(profile(ProfileType::Localhost, "dockshim-no-such-profile"));
    })
    .await;
    match apparmor_missing() {
        None => {
            let label = output(&world, &default, "cat /proc/self/attr/current").await;
            assert!(label.starts_with("docker-default"), "{label}");
            let label = output(&world, &unconfined, "cat /proc/self/attr/current").await;
            assert_eq!(label, "unconfined");
            let status = localhost.expect_err("a profile the kernel lacks was applied");
            assert!(
                status.message().contains("dockshim-no-such-profile"),
                "{status:?}"
            );
        }
        Some(reason) => {
            // Docker would drop the profile and run the container
            // unconfined, so dockshim refuses it; RuntimeDefault and
            // Unconfined mean unconfined here and are accepted.
            eprintln!("skipping AppArmor's effect: {reason}");
            assert_refused(
                localhost,
                Code::FailedPrecondition,
                "AppArmor profile \"dockshim-no-such-profile\": AppArmor is not enabled on this \
                 node",
            );
            let left = docker_names_with(&world, "apparmor-missing");
            assert!(left.is_empty(), "left behind: {left:?}");
        }
    }
    let refused = try_run(&world, "apparmor-bad", |s| {
        s.apparmor = Some(profile(ProfileType::Localhost, "two words"));
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "apparmor.localhost_ref");
    #[allow(deprecated)]
    let refused = try_run(&world, "apparmor-legacy-bad", |s| {
        s.apparmor_profile = "strict".to_owned();
    })
    .await;
    assert_refused(
        refused,
        Code::InvalidArgument,
        "apparmor_profile: \"strict\"",
    );

    let labelled = try_run(&world, "selinux-level", |s| {
        s.selinux_options = Some(cri::SeLinuxOption {
            level: "s0:c1,c2".to_owned(),
            ..cri::SeLinuxOption::default()
        });
    })
    .await;
    if Path::new("/sys/fs/selinux/enforce").exists() {
        let label = output(&world, &labelled.unwrap(), "cat /proc/self/attr/current").await;
        assert!(label.ends_with(":s0:c1,c2"), "{label}");
    } else {
        // Docker accepts labels and ignores them without SELinux.
        eprintln!("skipping SELinux's effect: the host has no SELinux (/sys/fs/selinux)");
        labelled.unwrap();
    }
    let refused = try_run(&world, "selinux-bad", |s| {
        s.selinux_options = Some(cri::SeLinuxOption {
            r#type: "spc_t label=disable".to_owned(),
            ..cri::SeLinuxOption::default()
        });
    })
    .await;
    assert_refused(refused, Code::InvalidArgument, "selinux_options.type");

    let privileged = try_run(&world, "privileged", |s| {
        s.privileged = true;
        s.masked_paths = vec!["/proc/keys".to_owned()];
        s.seccomp = Some(profile(ProfileType::RuntimeDefault, ""));
    })
    .await;
    match (privileged, missing_host_capabilities()) {
        (Err(status), Some(reason)) => {
            eprintln!("skipping the effect of privileged: {reason}");
            assert!(
                status.message().contains("cannot start the container"),
                "{status:?}"
            );
        }
        (privileged, _) => {
            let id = privileged.unwrap();
            assert_eq!(
                proc_status(&world, &id, "CapEff").await,
                host_bounding_set()
            );
            // No seccomp and no masking: Docker ignores both when privileged.
            assert_eq!(proc_status(&world, &id, "Seccomp").await, "0");
            let mounts = output(&world, &id, "cat /proc/self/mountinfo").await;
            assert!(!is_masked_file(&mounts, "/proc/keys"), "{mounts}");
            // The host's devices, which no unprivileged container gets: /dev/kmsg,
            // and /dev/mem where the kernel has one.
            let devices = output(&world, &id, "ls /dev").await;
            for device in ["kmsg", "mem"] {
                if Path::new("/dev").join(device).exists() {
                    assert!(devices.lines().any(|name| name == device), "{devices}");
                }
            }
        }
    }
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_modes_take_effect_inside() {
    let world = World::start().await;
    let pause_pid = host_pid(&world.sandbox_id);
    let namespace_of = |kind: NamespaceMode| {
        move |s: &mut Security| s.namespace_options.as_mut().unwrap().pid = kind as i32
    };

    let own = run(
        &world,
        "pid-container",
        namespace_of(NamespaceMode::Container),
    )
    .await;
    let own_pid_ns = output(&world, &own, "readlink /proc/self/ns/pid").await;
    assert_ne!(own_pid_ns, host_namespace(&pause_pid, "pid"));
    assert_eq!(
        output(&world, &own, "tr '\\0' ' ' < /proc/1/cmdline").await,
        format!("sh -c {RUN_UNTIL_STOPPED}")
    );

    let pod = run(&world, "pid-pod", namespace_of(NamespaceMode::Pod)).await;
    assert_eq!(
        output(&world, &pod, "readlink /proc/self/ns/pid").await,
        host_namespace(&pause_pid, "pid")
    );
    let first = output(&world, &pod, "tr '\\0' ' ' < /proc/1/cmdline").await;
    assert!(
        first.contains("trap stop TERM"),
        "PID 1 is not the pause: {first}"
    );

    let node = run(&world, "pid-node", namespace_of(NamespaceMode::Node)).await;
    assert_eq!(
        output(&world, &node, "readlink /proc/self/ns/pid").await,
        host_namespace("self", "pid")
    );
    assert_eq!(
        output(&world, &node, "cat /proc/1/comm").await,
        std::fs::read_to_string("/proc/1/comm").unwrap().trim_end()
    );

    let target = run(&world, "pid-target", |s| {
        let options = s.namespace_options.as_mut().unwrap();
        options.pid = NamespaceMode::Target as i32;
        options.target_id = own.clone();
    })
    .await;
    assert_eq!(
        output(&world, &target, "readlink /proc/self/ns/pid").await,
        own_pid_ns
    );

    // IPC: the sandbox's for POD, a private one for CONTAINER.
    let pause_ipc = host_namespace(&pause_pid, "ipc");
    let host_ipc = host_namespace("self", "ipc");
    assert_ne!(pause_ipc, host_ipc);
    let ipc_pod = run(&world, "ipc-pod", |_| {}).await;
    assert_eq!(
        output(&world, &ipc_pod, "readlink /proc/self/ns/ipc").await,
        pause_ipc
    );
    let ipc_own = run(&world, "ipc-container", |s| {
        s.namespace_options.as_mut().unwrap().ipc = NamespaceMode::Container as i32;
    })
    .await;
    let private = output(&world, &ipc_own, "readlink /proc/self/ns/ipc").await;
    assert!(private != pause_ipc && private != host_ipc, "{private}");
    let refused = try_run(&world, "ipc-node", |s| {
        s.namespace_options.as_mut().unwrap().ipc = NamespaceMode::Node as i32;
    })
    .await;
    assert_refused(
        refused,
        Code::InvalidArgument,
        "namespace_options.ipc: NODE disagrees with the sandbox",
    );

    // A sandbox in the host's IPC and PID namespaces, for NODE containers.
    let mut host_sandbox = world.sandbox_config.clone();
    host_sandbox.metadata.as_mut().unwrap().name = "host-namespaces".to_owned();
    host_sandbox.metadata.as_mut().unwrap().uid = format!("uid-host-{}", world.run_id);
    let options = host_sandbox
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap();
    options.ipc = NamespaceMode::Node as i32;
    options.pid = NamespaceMode::Node as i32;
    let host_sandbox_id = world
        .client
        .run_pod_sandbox(host_sandbox.clone())
        .await
        .unwrap();
    let node_config = config(&world, "ipc-node", |s| {
        let options = s.namespace_options.as_mut().unwrap();
        options.ipc = NamespaceMode::Node as i32;
        options.pid = NamespaceMode::Node as i32;
    });
    let ipc_node = create_and_start(&world, &host_sandbox_id, &host_sandbox, node_config)
        .await
        .unwrap();
    assert_eq!(
        output(&world, &ipc_node, "readlink /proc/self/ns/ipc").await,
        host_ipc
    );
    assert_eq!(
        output(&world, &ipc_node, "readlink /proc/self/ns/pid").await,
        host_namespace("self", "pid")
    );
    world
        .client
        .stop_pod_sandbox(&host_sandbox_id)
        .await
        .unwrap();
    world
        .client
        .remove_pod_sandbox(&host_sandbox_id)
        .await
        .unwrap();

    // User namespaces: the host's is the only one Docker can give a pod.
    let userns = |mode: NamespaceMode, mapped: bool| cri::UserNamespace {
        mode: mode as i32,
        uids: if mapped {
            vec![cri::IdMapping {
                host_id: 100_000,
                container_id: 0,
                length: 65536,
            }]
        } else {
            Vec::new()
        },
        gids: if mapped {
            vec![cri::IdMapping {
                host_id: 100_000,
                container_id: 0,
                length: 65536,
            }]
        } else {
            Vec::new()
        },
    };
    let host_users = run(&world, "userns-node", |s| {
        s.namespace_options.as_mut().unwrap().userns_options =
            Some(userns(NamespaceMode::Node, false));
    })
    .await;
    assert_eq!(
        output(&world, &host_users, "readlink /proc/self/ns/user").await,
        host_namespace("self", "user")
    );
    let refused = try_run(&world, "userns-pod", |s| {
        s.namespace_options.as_mut().unwrap().userns_options =
            Some(userns(NamespaceMode::Pod, true));
    })
    .await;
    assert_refused(
        refused,
        Code::Unimplemented,
        "namespace_options.userns_options",
    );
    let refused = try_run(&world, "userns-container", |s| {
        s.namespace_options.as_mut().unwrap().userns_options =
            Some(userns(NamespaceMode::Container, false));
    })
    .await;
    assert_refused(
        refused,
        Code::InvalidArgument,
        "namespace_options.userns_options: mode CONTAINER",
    );
    world.clean_up().await;
}
