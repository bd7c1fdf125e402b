//! Process file descriptors (pidfds, Linux 5.3 and newer): a handle on one
//! process that no recycled PID can redirect, used to trust what is opened
//! under `/proc/<pid>/`.
//!
//! A PID read from dockerd or from a `cgroup.procs` list may belong to
//! another process by the time `/proc/<pid>/…` is opened: the process
//! ended and the kernel gave its PID to a new one. The order that closes
//! the gap is: open a pidfd for the PID, open the `/proc` file, then ask
//! the pidfd whether its process still exists. While it exists (a zombie
//! included) its PID cannot be reused, so the file opened in between
//! belongs to it. What the pidfd cannot tell is whether the process it
//! was opened for is the one the PID was read for; callers that can
//! check identity (a container's cgroup) do so through the file they
//! opened.
//!
//! Signals go through the pidfd too, so they never reach a process that
//! was given the PID later.
//!
//! It owns the two raw system calls (`pidfd_open`, `pidfd_send_signal`)
//! that neither `std` nor `nix` wrap. On a kernel without them the files
//! are opened by path as before, and a debug line says so.

use std::ffi::{c_int, c_long, c_uint};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::Signal;

/// Where the kernel's process files are mounted.
const PROC_ROOT: &str = "/proc";

/// A pidfd: the process it was opened for, for as long as it is held.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// A pidfd for `pid`: `Ok(None)` on a kernel without pidfds, an error
    /// of kind `NotFound` when no process has that PID.
    pub fn open(pid: u32) -> io::Result<Option<PidFd>> {
        let raw_pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "PID out of range"))?;
        let flags: c_uint = 0;
        // SAFETY: pidfd_open(2) takes a PID and flags by value and touches
        // no memory of ours; it returns a new descriptor or -1.
        let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, flags) };
        match Errno::result(ret) {
            Ok(fd) => {
                let fd = c_int::try_from(fd).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "pidfd_open returned no descriptor",
                    )
                })?;
                // SAFETY: the kernel returned `fd` as a new descriptor that
                // nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                Ok(Some(PidFd { fd, pid }))
            }
            Err(Errno::ENOSYS) => {
                log::debug!("no pidfd_open on this kernel; /proc/{pid} is opened unpinned");
                Ok(None)
            }
            Err(Errno::ESRCH) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no process {pid}"),
            )),
            Err(errno) => Err(errno.into()),
        }
    }

    /// The PID the pidfd was opened for.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process still exists (running or a zombie), so that
    /// its PID has not been given to another one.
    pub fn is_alive(&self) -> io::Result<bool> {
        match self.send(0) {
            Ok(()) => Ok(true),
            Err(Errno::ESRCH) => Ok(false),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Sends `signal` to the process, never to one that has its PID
    /// since; `ESRCH` once it has ended.
    pub fn signal(&self, signal: Signal) -> Result<(), Errno> {
        self.send(signal as c_int)
    }

    fn send(&self, signal: c_int) -> Result<(), Errno> {
        let no_info: *const libc::siginfo_t = ptr::null();
        let no_flags: c_uint = 0;
        // SAFETY: pidfd_send_signal(2) reads no memory of ours when the
        // info pointer is null, which the call accepts, and the descriptor
        // is held by `self` for the length of the call.
        let ret: c_long = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                no_info,
                no_flags,
            )
        };
        Errno::result(ret).map(drop)
    }
}

/// `/proc/<pid>/<relative>`, opened with `options` only if the process
/// that had `pid` when the pidfd was opened still has it afterwards; an
/// error of kind `NotFound` otherwise.
pub fn open_proc_file(pid: u32, relative: &Path, options: &OpenOptions) -> io::Result<File> {
    open_pinned(pid, &proc_path(pid, relative), options)
}

/// Opens `path`, a file of process `pid`'s under `/proc` (or under another
/// root standing for it), by the rule of [`open_proc_file`].
pub fn open_pinned(pid: u32, path: &Path, options: &OpenOptions) -> io::Result<File> {
    let pidfd = PidFd::open(pid)?;
    open_checked(pidfd.as_ref(), path, options)
}

/// Opens `path`, then refuses it if `pidfd`'s process has ended since.
fn open_checked(pidfd: Option<&PidFd>, path: &Path, options: &OpenOptions) -> io::Result<File> {
    let file = options.open(path)?;
    match pidfd {
        Some(pidfd) if !pidfd.is_alive()? => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "process {} ended while {} was opened",
                pidfd.pid(),
                path.display()
            ),
        )),
        _ => Ok(file),
    }
}

/// `/proc/<pid>/<relative>`.
pub fn proc_path(pid: u32, relative: &Path) -> PathBuf {
    Path::new(PROC_ROOT).join(pid.to_string()).join(relative)
}

/// The PID in a path of the form `/proc/<pid>/…`, if it is one.
pub fn pid_of_proc_path(path: &Path) -> Option<u32> {
    let rest = path.strip_prefix(PROC_ROOT).ok()?;
    let first = rest.components().next()?;
    let digits = first.as_os_str().to_str()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::Command;

    #[test]
    fn a_live_process_is_alive_and_an_ended_one_is_not() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pidfd = PidFd::open(child.id())
            .unwrap()
            .expect("a kernel with pidfds");
        assert!(pidfd.is_alive().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!pidfd.is_alive().unwrap());
    }

    #[test]
    fn a_signal_reaches_the_pinned_process_and_not_a_later_one() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pidfd = PidFd::open(child.id())
            .unwrap()
            .expect("a kernel with pidfds");
        pidfd.signal(Signal::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32)
        );
        assert_eq!(pidfd.signal(Signal::SIGKILL), Err(Errno::ESRCH));
    }

    #[test]
    fn a_zombie_still_holds_its_pid() {
        let mut child = Command::new("true").spawn().unwrap();
        let pidfd = PidFd::open(child.id())
            .unwrap()
            .expect("a kernel with pidfds");
        // Not reaped yet: the PID cannot be reused.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(pidfd.is_alive().unwrap());
        child.wait().unwrap();
        assert!(!pidfd.is_alive().unwrap());
    }

    #[test]
    fn a_process_file_opens_while_its_process_lives() {
        let mut text = String::new();
        open_proc_file(
            std::process::id(),
            Path::new("comm"),
            OpenOptions::new().read(true),
        )
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
        assert!(!text.is_empty());
    }

    #[test]
    fn a_file_opened_after_the_pinned_process_ended_is_refused() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pidfd = PidFd::open(child.id())
            .unwrap()
            .expect("a kernel with pidfds");
        // The process ends after its pidfd was opened: whatever is opened
        // now may belong to a process that was given the PID since.
        child.kill().unwrap();
        child.wait().unwrap();
        let err = open_checked(
            Some(&pidfd),
            Path::new("/proc/self/comm"),
            OpenOptions::new().read(true),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("ended"), "{err}");
    }

    #[test]
    fn a_pid_no_process_has_is_not_found() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let err =
            open_proc_file(pid, Path::new("comm"), OpenOptions::new().read(true)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn proc_paths_name_their_pid() {
        assert_eq!(pid_of_proc_path(Path::new("/proc/42/ns/net")), Some(42));
        assert_eq!(
            proc_path(42, Path::new("ns/net")),
            Path::new("/proc/42/ns/net")
        );
        for other in [
            "/proc/self/ns/net",
            "/var/run/netns/x",
            "/proc/0/ns/net",
            "/proc//ns",
        ] {
            assert_eq!(pid_of_proc_path(Path::new(other)), None, "{other}");
        }
    }
}
