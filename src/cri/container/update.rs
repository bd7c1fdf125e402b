//! UpdateContainerResources: change a container's CPU, memory, cpuset and
//! process limits in place with `POST /containers/{id}/update`, then its
//! OOM score adjustment, then tell the index so ContainerStatus shows the
//! new limits at once.
//!
//! Docker's update cannot change the OOM score adjustment, which the
//! kubelet recomputes when it resizes a Burstable pod's memory request in
//! place; so once dockerd applied the rest, the new value is written to
//! `/proc/<pid>/oom_score_adj` of every process of a running container.
//! The processes are those of the container's cgroup (`cgroup.procs`),
//! found from `/proc/<main pid>/cgroup`. That needs nothing but the
//! kernel's files and numbers the processes as dockshim's own PID
//! namespace does, the numbering `/proc` uses; `GET /containers/{id}/top`
//! would instead have dockerd run `ps` on the node and leave dockshim to
//! find the PID column in its output. The cgroup must be the container's
//! own (its last path element holds the container ID), so a main PID the
//! kernel has since given to another process is never written to. Each
//! listed process is pinned with a pidfd, its own `cgroup` file is checked
//! the same way, and its `oom_score_adj` opened beneath the same handle on
//! `/proc/<pid>` before the pidfd confirms the process still lives, so a
//! PID that changed hands after the list was read is skipped too. The
//! list is read again after writing until it shows no process not yet
//! written (at most `MAX_PASSES` reads), so a process forked from one
//! not yet written is not missed; processes forked later inherit the value
//! from their parent. A process started by a later exec gets the value
//! the container was created with: runc gives every process it starts the
//! value of the container's configuration, which Docker cannot change.
//! ContainerStatus reports the main process's value.
//! Raising the value needs no privilege; lowering it needs
//! CAP_SYS_RESOURCE, and a write the kernel refuses is FAILED_PRECONDITION
//! naming oom_score_adj and the process.
//!
//! The request is all or nothing as far as it can be checked beforehand:
//! a setting Docker cannot apply (see `resources`: a per-container
//! hugepage limit, a cgroup file by name, removing a limit, a new OOM
//! score adjustment for a container that is not running), Windows
//! resources, and runtime-specific annotations (dockshim defines none) are
//! refused before dockerd is asked, so nothing changes. What can only fail
//! afterwards — a limit dockerd dropped with no more than a warning, an
//! OOM score adjustment the kernel refuses — fails the call with the rest
//! left applied. This module must not build the update body itself;
//! `resources::update_resources_body` owns that.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::create::drops_a_limit;
use super::error::ContainerError;
use super::resources::{oom_score_update, update_resources_body, OomScoreUpdate};
use super::service::ContainerService;
use super::ContainerConfigError;
use crate::api::v1;
use crate::pidfd::PidFd;

/// Where the kernel's process files are mounted.
const PROC_ROOT: &str = "/proc";
/// Where the cgroup hierarchies are mounted: one directory per v1
/// hierarchy, named for its controllers, or the v2 hierarchy itself.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The file listing the processes of a cgroup.
const CGROUP_PROCS: &str = "cgroup.procs";
/// Reads of a container's process list while giving its processes a new
/// OOM score adjustment; a container that forks faster than that is left
/// to inheritance.
const MAX_PASSES: usize = 4;
/// Upper bound on a process list or `/proc/<pid>/cgroup` read: room for
/// half a million PIDs.
const MAX_KERNEL_FILE_BYTES: u64 = 4 * 1024 * 1024;

impl ContainerService {
    /// UpdateContainerResources.
    pub fn update_container_resources(
        &self,
        request: &v1::UpdateContainerResourcesRequest,
    ) -> Result<(), ContainerError> {
        let id = &request.container_id;
        let entry = self
            .index
            .container(id)?
            .ok_or_else(|| ContainerError::NotFound { id: id.clone() })?;
        if request.windows.is_some() {
            return Err(ContainerConfigError::invalid(
                "windows",
                "Windows resources do not apply to a Linux container",
            )
            .into());
        }
        if let Some(key) = request.annotations.keys().min() {
            return Err(ContainerConfigError::unsupported(
                format!("annotations[{key:?}]"),
                "dockshim has no runtime-specific update options",
            )
            .into());
        }
        let linux = request
            .linux
            .as_ref()
            .ok_or(ContainerError::Missing("linux"))?;
        let node_has_swap = self.host.has_swap();
        let body = update_resources_body(linux, &entry.resources, node_has_swap)?;
        let main_pid = u32::try_from(entry.pid)
            .ok()
            .filter(|pid| *pid > 0 && entry.is_running());
        let oom_score = oom_score_update(linux, &entry.resources, main_pid.is_some())?;
        let updated = self.docker.update_container(&entry.id, &body);
        // Refreshed whatever dockerd answered: a failed update may still
        // have changed some cgroup files before it gave up.
        let refreshed = self.index.refresh(&entry.id);
        let warnings = updated
            .map_err(|err| ContainerError::docker("update the container's resources", err))?;
        refreshed?;
        for warning in &warnings {
            log::warn!("container {}: dockerd: {warning}", entry.id);
        }
        if let Some(warning) = warnings
            .iter()
            .find(|warning| drops_a_limit(warning, node_has_swap))
        {
            return Err(ContainerError::LimitDroppedAtUpdate {
                id: entry.id.clone(),
                warning: warning.clone(),
            });
        }
        if let (OomScoreUpdate::Write(value), Some(pid)) = (oom_score, main_pid) {
            let written = KernelFiles::node().set_oom_score_adj(&entry.id, pid, value)?;
            log::info!(
                "container {}: oom_score_adj {value} given to {written} processes",
                entry.id
            );
        }
        log::info!("updated the resources of container {}", entry.id);
        Ok(())
    }
}

/// Pins a process before its `/proc` files are opened (see
/// [`crate::pidfd`]); `None` when nothing can pin it.
type PinProcess = fn(u32) -> io::Result<Option<PidFd>>;

/// The kernel files an OOM score adjustment is written through, under the
/// directories proc and the cgroup hierarchies are mounted on.
#[derive(Debug, Clone, Copy)]
struct KernelFiles<'a> {
    proc: &'a Path,
    cgroup: &'a Path,
    pin: PinProcess,
}

impl KernelFiles<'static> {
    /// The node's own.
    fn node() -> KernelFiles<'static> {
        KernelFiles {
            proc: Path::new(PROC_ROOT),
            cgroup: Path::new(CGROUP_ROOT),
            pin: PidFd::open,
        }
    }
}

impl KernelFiles<'_> {
    /// Gives `value` as OOM score adjustment to every process of container
    /// `id`, whose main process is `main_pid`; returns how many processes
    /// got it. A container whose main process is gone has none.
    fn set_oom_score_adj(
        &self,
        id: &str,
        main_pid: u32,
        value: i32,
    ) -> Result<usize, ContainerError> {
        let fail = |process, source| ContainerError::OomScoreAdj {
            id: id.to_owned(),
            value,
            process,
            source,
        };
        let Some(procs) = self
            .cgroup_procs_file(id, main_pid)
            .map_err(|err| fail(None, err))?
        else {
            return Ok(0);
        };
        let mut seen = HashSet::new();
        let mut written = 0;
        for _ in 0..MAX_PASSES {
            let listed = match read_kernel_file(&procs) {
                Ok(text) => text,
                // The cgroup goes when the container ends.
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(err) => return Err(fail(None, err)),
            };
            let new: Vec<u32> = listed
                .lines()
                .filter_map(|line| line.trim().parse().ok())
                .filter(|pid| !seen.contains(pid))
                .collect();
            if new.is_empty() {
                break;
            }
            for pid in new {
                seen.insert(pid);
                match self.write_oom_score_adj(id, pid, value) {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(err) if process_ended(&err) => {}
                    Err(err) => return Err(fail(Some(pid), err)),
                }
            }
        }
        Ok(written)
    }

    /// The `cgroup.procs` file of container `id`'s cgroup, which process
    /// `pid` is in; `None` when that process is gone or is in no cgroup of
    /// the container's (its PID was given to another process).
    fn cgroup_procs_file(&self, id: &str, pid: u32) -> io::Result<Option<PathBuf>> {
        let membership = match read_kernel_file(&self.proc.join(pid.to_string()).join("cgroup")) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let candidates = container_cgroups(&membership, id);
        if candidates.is_empty() {
            return Ok(None);
        }
        let found = candidates
            .iter()
            .map(|cgroup| self.cgroup.join(cgroup).join(CGROUP_PROCS))
            .find(|procs| procs.is_file());
        match found {
            Some(procs) => Ok(Some(procs)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "none of the container's cgroups {candidates:?} has a {CGROUP_PROCS} under {}",
                    self.cgroup.display()
                ),
            )),
        }
    }

    /// Writes `value` to process `pid`'s `oom_score_adj` if the process is
    /// container `id`'s; `false` when it is not (the PID was listed in the
    /// container's cgroup, then given to another process). Both files are
    /// opened beneath one handle on the process's directory while the
    /// process is pinned, so the membership read and the file written are
    /// the same process's.
    fn write_oom_score_adj(&self, id: &str, pid: u32, value: i32) -> io::Result<bool> {
        let pinned = (self.pin)(pid)?;
        let process = File::open(self.proc.join(pid.to_string()))?;
        let membership = read_kernel_file_at(&process, "cgroup")?;
        if container_cgroups(&membership, id).is_empty() {
            return Ok(false);
        }
        let mut file = File::from(openat(
            &process,
            "oom_score_adj",
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?);
        if let Some(pinned) = pinned {
            if !pinned.is_alive()? {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
        }
        file.write_all(value.to_string().as_bytes())?;
        Ok(true)
    }
}

/// The directories, relative to the cgroup mount root, of the cgroups a
/// process is in as its `/proc/<pid>/cgroup` `membership` lists them
/// (`<hierarchy>:<controllers>:<path>`), keeping only those that are
/// container `id`'s own: their last path element holds the ID (`<id>`
/// with the cgroupfs driver, `docker-<id>.scope` with systemd's). v1
/// hierarchies come first, each under the directory named for its
/// controllers; named ones (`name=systemd`) are skipped, as they carry no
/// controller. A path leading outside dockshim's cgroup namespace (`..`)
/// is skipped too.
fn container_cgroups(membership: &str, id: &str) -> Vec<PathBuf> {
    membership
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let relative = Path::new(path).strip_prefix("/").ok()?;
            let inside = relative
                .components()
                .all(|part| matches!(part, Component::Normal(_)));
            let own = relative
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.contains(id));
            if !inside || !own || controllers.starts_with("name=") {
                return None;
            }
            Some(Path::new(controllers).join(relative))
        })
        .collect()
}

/// Whether a write to a process's file failed because the process ended.
fn process_ended(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(Errno::ESRCH as i32)
}

/// As [`read_kernel_file`], for the file `name` beneath directory `dir`.
fn read_kernel_file_at(dir: &File, name: &str) -> io::Result<String> {
    let file = File::from(openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?);
    let mut text = String::new();
    file.take(MAX_KERNEL_FILE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

fn read_kernel_file(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    File::open(path)?
        .take(MAX_KERNEL_FILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::fs;

    use super::*;
    use crate::grpc::{Code, Status};

    const ID: &str = "30e4293a3e95afbe0993a87e604a37de94a47c93bf8b24d4cb46dbcfd0fed268";

    /// A proc and a cgroup tree in a temporary directory.
    struct FakeKernel {
        _dir: tempfile::TempDir,
        proc: PathBuf,
        cgroup: PathBuf,
    }

    impl FakeKernel {
        fn new() -> FakeKernel {
            let dir = tempfile::tempdir().unwrap();
            let proc = dir.path().join("proc");
            let cgroup = dir.path().join("cgroup");
            fs::create_dir_all(&proc).unwrap();
            fs::create_dir_all(&cgroup).unwrap();
            FakeKernel {
                _dir: dir,
                proc,
                cgroup,
            }
        }

        fn files(&self) -> KernelFiles<'_> {
            KernelFiles {
                proc: &self.proc,
                cgroup: &self.cgroup,
                // The fake PIDs are no processes of this host.
                pin: |_| Ok(None),
            }
        }

        /// Process `pid` with an OOM score adjustment of 0, in the cgroups
        /// `membership` lists.
        fn process(&self, pid: u32, membership: &str) {
            let dir = self.proc.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("cgroup"), membership).unwrap();
            fs::write(dir.join("oom_score_adj"), "0").unwrap();
        }

        /// The cgroup `path` (under the cgroup root) holding `pids`.
        fn cgroup(&self, path: &str, pids: &[u32]) {
            let dir = self.cgroup.join(path);
            fs::create_dir_all(&dir).unwrap();
            let list: String = pids.iter().map(|pid| format!("{pid}\n")).collect();
            fs::write(dir.join(CGROUP_PROCS), list).unwrap();
        }

        fn oom_score_adj(&self, pid: u32) -> String {
            fs::read_to_string(self.proc.join(format!("{pid}/oom_score_adj"))).unwrap()
        }
    }

    fn v1_membership(id: &str) -> String {
        format!(
            "9:name=systemd:/docker/{id}\n8:pids:/kubepods/pod1/{id}\n\
             2:cpu,cpuacct:/kubepods/pod1/{id}\n0::/docker/{id}\n"
        )
    }

    #[test]
    fn the_container_s_own_cgroups_are_found_from_the_membership_file() {
        assert_eq!(
            container_cgroups(&v1_membership(ID), ID),
            [
                PathBuf::from(format!("pids/kubepods/pod1/{ID}")),
                PathBuf::from(format!("cpu,cpuacct/kubepods/pod1/{ID}")),
                PathBuf::from(format!("docker/{ID}")),
            ]
        );
        let systemd = format!("0::/kubepods.slice/kubepods-pod1.slice/docker-{ID}.scope\n");
        assert_eq!(
            container_cgroups(&systemd, ID),
            [PathBuf::from(format!(
                "kubepods.slice/kubepods-pod1.slice/docker-{ID}.scope"
            ))]
        );
        let elsewhere = [
            "0::/user.slice/session-1.scope\n".to_owned(),
            format!("4:memory:/../../docker/{ID}\n"),
            format!("4:memory:/docker/{ID}/../other\n"),
            format!("0::/docker/{ID}/child-of-no-one\n"),
            "garbage\n".to_owned(),
        ];
        for membership in elsewhere {
            assert!(
                container_cgroups(&membership, ID).is_empty(),
                "{membership}"
            );
        }
    }

    #[test]
    fn every_process_of_the_container_gets_the_new_oom_score_adj() {
        let kernel = FakeKernel::new();
        kernel.process(100, &v1_membership(ID));
        kernel.process(101, &v1_membership(ID));
        // 102 is listed but ends before it is written to.
        kernel.cgroup(&format!("pids/kubepods/pod1/{ID}"), &[100, 101, 102]);
        let written = kernel.files().set_oom_score_adj(ID, 100, 500).unwrap();
        assert_eq!(written, 2);
        assert_eq!(kernel.oom_score_adj(100), "500");
        assert_eq!(kernel.oom_score_adj(101), "500");
    }

    #[test]
    fn a_cgroup_v2_container_s_processes_are_found_too() {
        let kernel = FakeKernel::new();
        let scope = format!("system.slice/docker-{ID}.scope");
        kernel.process(7, &format!("0::/{scope}\n"));
        kernel.cgroup(&scope, &[7]);
        assert_eq!(kernel.files().set_oom_score_adj(ID, 7, -5).unwrap(), 1);
        assert_eq!(kernel.oom_score_adj(7), "-5");
    }

    #[test]
    fn a_main_pid_now_used_by_another_process_is_left_alone() {
        let kernel = FakeKernel::new();
        kernel.process(100, "0::/user.slice/session-1.scope\n");
        kernel.cgroup("user.slice/session-1.scope", &[100]);
        assert_eq!(kernel.files().set_oom_score_adj(ID, 100, 500).unwrap(), 0);
        assert_eq!(kernel.oom_score_adj(100), "0");
        assert_eq!(kernel.files().set_oom_score_adj(ID, 999, 500).unwrap(), 0);
    }

    #[test]
    fn a_listed_pid_given_to_another_process_since_is_left_alone() {
        let kernel = FakeKernel::new();
        kernel.process(100, &v1_membership(ID));
        // 101 was the container's when the list was read; the PID now
        // names a process of the host's.
        kernel.process(101, "0::/user.slice/session-1.scope\n");
        kernel.cgroup(&format!("pids/kubepods/pod1/{ID}"), &[100, 101]);
        assert_eq!(kernel.files().set_oom_score_adj(ID, 100, 500).unwrap(), 1);
        assert_eq!(kernel.oom_score_adj(100), "500");
        assert_eq!(kernel.oom_score_adj(101), "0");
    }

    #[test]
    fn the_node_s_own_processes_are_pinned_while_written() {
        let files = KernelFiles::node();
        // This process is in no container's cgroup: never written.
        let own = std::process::id();
        assert!(!files.write_oom_score_adj(ID, own, 0).unwrap());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let err = files.write_oom_score_adj(ID, gone, 0).unwrap_err();
        assert!(process_ended(&err), "{err}");
    }

    #[test]
    fn a_refused_write_names_oom_score_adj_and_the_process() {
        let kernel = FakeKernel::new();
        kernel.process(100, &v1_membership(ID));
        let unwritable = kernel.proc.join("101");
        fs::create_dir_all(unwritable.join("oom_score_adj")).unwrap();
        fs::write(unwritable.join("cgroup"), v1_membership(ID)).unwrap();
        kernel.cgroup(&format!("pids/kubepods/pod1/{ID}"), &[100, 101]);
        let err = kernel.files().set_oom_score_adj(ID, 100, 500).unwrap_err();
        let status = Status::from(err);
        assert_eq!(status.code, Code::FailedPrecondition);
        assert!(
            status.message.starts_with(&format!(
                "oom_score_adj: cannot give 500 to process 101 of container {ID}"
            )),
            "{}",
            status.message
        );
    }

    #[test]
    fn a_container_cgroup_that_cannot_be_found_is_an_error() {
        let kernel = FakeKernel::new();
        kernel.process(100, &v1_membership(ID));
        let err = kernel.files().set_oom_score_adj(ID, 100, 500).unwrap_err();
        let status = Status::from(err);
        assert_eq!(status.code, Code::FailedPrecondition);
        assert!(
            status.message.starts_with(&format!(
                "oom_score_adj: cannot list the processes of container {ID}"
            )),
            "{}",
            status.message
        );
    }

    #[allow(clippy::unwrap_used, clippy::expect_used)]
    mod handler {
        use super::super::*;
        use crate::cri::testing::ContainerSetup;
        use crate::docker::fake::status;
        use crate::grpc::{Code, Status};

        fn request(id: &str) -> v1::UpdateContainerResourcesRequest {
            v1::UpdateContainerResourcesRequest {
                container_id: id.to_owned(),
                linux: Some(v1::LinuxContainerResources {
                    cpu_shares: 512,
                    ..v1::LinuxContainerResources::default()
                }),
                ..v1::UpdateContainerResourcesRequest::default()
            }
        }

        #[test]
        fn an_update_dockerd_refuses_keeps_its_code() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            setup
                .docker
                .fail("update_container", status(400, "Conflicting options"));
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }

        #[test]
        fn updating_an_unknown_container_is_not_found_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let err = setup
                .service
                .update_container_resources(&request("f00d"))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::NotFound);
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn requests_docker_cannot_apply_are_refused_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            let windows = v1::UpdateContainerResourcesRequest {
                windows: Some(v1::WindowsContainerResources::default()),
                ..request(&id)
            };
            let annotated = v1::UpdateContainerResourcesRequest {
                annotations: [("io.kata.x".to_owned(), "1".to_owned())].into(),
                ..request(&id)
            };
            let no_linux = v1::UpdateContainerResourcesRequest {
                linux: None,
                ..request(&id)
            };
            let cases = [
                (windows, Code::InvalidArgument),
                (annotated, Code::Unimplemented),
                (no_linux, Code::InvalidArgument),
            ];
            for (request, code) in cases {
                let err = setup
                    .service
                    .update_container_resources(&request)
                    .unwrap_err();
                assert_eq!(Status::from(err).code, code, "{request:?}");
            }
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn a_new_oom_score_for_a_stopped_container_is_refused_without_a_docker_call() {
            let setup = ContainerSetup::new();
            let id = setup.container();
            let mut request = request(&id);
            if let Some(linux) = request.linux.as_mut() {
                linux.oom_score_adj = 500;
            }
            let err = setup
                .service
                .update_container_resources(&request)
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::Unimplemented);
            assert!(setup.docker.calls_of("update_container").is_empty());
        }

        #[test]
        fn a_limit_dockerd_dropped_at_update_fails_the_precondition() {
            let setup = ContainerSetup::new();
            let id = setup.running_container();
            setup.docker.set_update_warnings(vec![
                "Your kernel does not support CPU shares or the cgroup is not mounted. \
                 Shares discarded."
                    .to_owned(),
            ]);
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert!(
                matches!(err, ContainerError::LimitDroppedAtUpdate { .. }),
                "{err:?}"
            );
            assert_eq!(Status::from(err).code, Code::FailedPrecondition);
        }

        #[test]
        fn an_update_dockerd_cannot_answer_is_unavailable() {
            let setup = ContainerSetup::new();
            let id = setup.running_container();
            setup
                .docker
                .fail("update_container", crate::docker::fake::refused());
            let err = setup
                .service
                .update_container_resources(&request(&id))
                .unwrap_err();
            assert_eq!(Status::from(err).code, Code::Unavailable);
        }
    }
}
