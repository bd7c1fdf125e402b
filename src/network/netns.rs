//! Running code inside another network namespace, given by a path such as
//! `/proc/<pid>/ns/net` or `/var/run/netns/<name>`.
//!
//! `setns` changes the namespace of the calling thread only, and a thread
//! that has changed it must never run anything else: so the closure runs on
//! a fresh thread that enters the namespace, runs it and exits. The caller's
//! thread is never moved. Inside the closure, sockets (netlink included)
//! belong to the pod's namespace; `/sys/class/net` and `/proc/self/net` do
//! NOT follow it (sysfs shows the namespace it was mounted in, and
//! `/proc/self` is the thread-group leader), so read `/proc/thread-self/net`
//! or use netlink there.
//!
//! A path of the form `/proc/<pid>/ns/net` is opened pinned to the
//! process (see [`crate::pidfd`]): if the process ended while the path was
//! opened, its PID may already name another process, and the namespace
//! opened is refused as gone rather than entered.
//!
//! This module owns no policy about what runs inside; it must not be used to
//! enter any other kind of namespace.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::thread;

use nix::sched::{setns, CloneFlags};

use super::NetnsError;
use crate::pidfd::{open_pinned, pid_of_proc_path};
use crate::supervisor::spawn_scoped_named;

/// The name of the throwaway threads, as seen in `/proc/<pid>/task/*/comm`.
const NETNS_THREAD_NAME: &str = "netns";

/// Runs `f` inside the network namespace at `netns` on a new thread that
/// exits afterwards, and returns what `f` returned. A panic in `f` is
/// re-raised in the caller.
pub fn run_in_netns<T, F>(netns: &Path, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    // Opened here, not on the new thread, so a missing path is reported
    // without starting one.
    let namespace = open_namespace(netns).map_err(|source| NetnsError::Open {
        path: netns.to_path_buf(),
        source,
    })?;
    // The thread leaves its outcome here rather than returning it, so that
    // its body has one type whatever `T` is (see `spawn_scoped_named`).
    let mut outcome = None;
    thread::scope(|scope| {
        let thread = spawn_scoped_named(
            scope,
            NETNS_THREAD_NAME.to_owned(),
            Box::new(|| {
                outcome = Some(setns(&namespace, CloneFlags::CLONE_NEWNET).map(|()| f()));
            }),
        )
        .map_err(NetnsError::Spawn)?;
        match thread.join() {
            Ok(()) => Ok(()),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })?;
    match outcome {
        Some(Ok(value)) => Ok(value),
        Some(Err(errno)) => Err(NetnsError::Enter {
            path: netns.to_path_buf(),
            errno,
        }),
        // The thread returned, and it sets the outcome before it does.
        None => unreachable!("the netns thread ended without an outcome"),
    }
}

/// Opens the namespace file, pinned to its process when the path is one
/// of a process's own.
fn open_namespace(netns: &Path) -> io::Result<File> {
    let mut read = OpenOptions::new();
    read.read(true);
    match pid_of_proc_path(netns) {
        Some(pid) => open_pinned(pid, netns, &read),
        None => read.open(netns),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::mpsc;

    use nix::errno::Errno;

    /// The identity of the calling thread's network namespace.
    fn current_netns() -> PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    /// A new network namespace held open by a parked thread, whose path
    /// stays valid until the returned sender is dropped. Needs root, as
    /// `tests/run.sh` runs the suite.
    fn new_netns() -> (PathBuf, PathBuf, mpsc::Sender<()>) {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        thread::spawn(move || {
            let entered = nix::sched::unshare(CloneFlags::CLONE_NEWNET).map(|()| {
                let tid = nix::unistd::gettid();
                (
                    PathBuf::from(format!("/proc/self/task/{tid}/ns/net")),
                    current_netns(),
                )
            });
            ready_tx.send(entered).unwrap();
            // Parked until the test is done; the thread dies with its namespace.
            let _ = stop_rx.recv();
        });
        let (path, identity) = ready_rx
            .recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("unshare(CLONE_NEWNET) needs root: {e}"));
        (path, identity, stop_tx)
    }

    #[test]
    fn closure_runs_inside_the_namespace_and_the_caller_stays_put() {
        let before = current_netns();
        let (path, identity, _keep) = new_netns();
        assert_ne!(identity, before);
        let inside = run_in_netns(&path, current_netns).unwrap();
        assert_eq!(inside, identity);
        assert_eq!(current_netns(), before);
    }

    #[test]
    fn closure_may_borrow_from_the_caller() {
        let (path, _, _keep) = new_netns();
        let mut seen = Vec::new();
        run_in_netns(&path, || seen.push(current_netns())).unwrap();
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn a_missing_namespace_cannot_be_opened() {
        let err = run_in_netns(Path::new("/proc/self/ns/absent"), || ()).unwrap_err();
        assert!(
            matches!(&err, NetnsError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_namespace_is_refused() {
        let err = run_in_netns(Path::new("/proc/self/status"), || ()).unwrap_err();
        assert!(
            matches!(
                err,
                NetnsError::Enter {
                    errno: Errno::EINVAL,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_panic_inside_reaches_the_caller() {
        let (path, _, _keep) = new_netns();
        let caught = std::panic::catch_unwind(|| {
            let _ = run_in_netns(&path, || panic!("inside"));
        });
        assert!(caught.is_err());
    }
}
