//! The two systemd protocols the server speaks: socket activation
//! (`LISTEN_PID`/`LISTEN_FDS`, see sd_listen_fds(3)) and readiness
//! notification (`NOTIFY_SOCKET`, see sd_notify(3)).
//!
//! It reads and clears environment variables, so it must run while the
//! process has a single thread that reads the environment (at start-up).
//! It never starts or stops services and ignores every other systemd
//! variable.

use std::env;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};

use super::ServerError;

/// The first passed descriptor; systemd passes them from here upwards.
const SD_LISTEN_FDS_START: i32 = 3;

/// Takes the listening socket systemd passed to this process.
///
/// Checks that the variables are meant for this process (`LISTEN_PID`)
/// and that descriptor 3 is a listening unix stream socket, then clears
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` so that children do not
/// try to take it again. Only the first descriptor is used.
pub(super) fn take_listen_fd() -> Result<UnixListener, ServerError> {
    let activation = |reason: String| ServerError::Activation { reason };
    let pid = env::var("LISTEN_PID").map_err(|_| {
        activation("fd:// needs socket activation, but LISTEN_PID is not set".to_owned())
    })?;
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(activation(format!(
            "LISTEN_PID is {pid:?}, not this process ({})",
            std::process::id()
        )));
    }
    let count = env::var("LISTEN_FDS").unwrap_or_default();
    match count.trim().parse::<u32>() {
        Ok(n) if n >= 1 => {
            if n > 1 {
                log::warn!("systemd passed {n} sockets; using the first only");
            }
        }
        _ => {
            return Err(activation(format!(
                "LISTEN_FDS is {count:?}, expected at least 1"
            )))
        }
    }
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        env::remove_var(name);
    }
    // `/proc/self/fd/3` exists exactly when descriptor 3 is open; checking
    // it first keeps `OwnedFd` from ever holding a closed descriptor.
    let fd_path = format!("/proc/self/fd/{SD_LISTEN_FDS_START}");
    std::fs::symlink_metadata(&fd_path).map_err(|err| {
        activation(format!(
            "descriptor {SD_LISTEN_FDS_START} is not open: {err}"
        ))
    })?;
    // SAFETY: descriptor 3 is open (checked just above), systemd handed it
    // to this process (LISTEN_PID matched), and nothing else in the process
    // owns it: the variables that announce it were cleared above, so it is
    // taken at most once.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    check_listening_unix_socket(&fd).map_err(activation)?;
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|err| activation(format!("cannot set close-on-exec on the socket: {err}")))?;
    let listener = UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|err| activation(format!("cannot make the socket non-blocking: {err}")))?;
    Ok(listener)
}

fn check_listening_unix_socket(fd: &OwnedFd) -> Result<(), String> {
    let kind = getsockopt(fd, sockopt::SockType)
        .map_err(|err| format!("descriptor {SD_LISTEN_FDS_START} is not a socket: {err}"))?;
    if kind != SockType::Stream {
        return Err(format!(
            "descriptor {SD_LISTEN_FDS_START} is a {kind:?} socket, not a stream"
        ));
    }
    getsockname::<UnixAddr>(fd.as_raw_fd())
        .map_err(|_| format!("descriptor {SD_LISTEN_FDS_START} is not a unix socket"))?;
    match getsockopt(fd, sockopt::AcceptConn) {
        Ok(true) => Ok(()),
        _ => Err(format!("descriptor {SD_LISTEN_FDS_START} is not listening")),
    }
}

/// Sends state changes to systemd when it asked for them.
#[derive(Debug)]
pub(super) struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`: a path, or an abstract name written `@name`.
    pub(super) fn from_env() -> Notifier {
        let Some(value) = env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        match notify_address(&value) {
            Ok(target) => Notifier {
                target: Some(target),
            },
            Err(err) => {
                log::warn!("ignoring NOTIFY_SOCKET {value:?}: {err}");
                Notifier { target: None }
            }
        }
    }

    /// Sends one state line such as `READY=1`; failures are logged only,
    /// since the server works the same without systemd listening.
    pub(super) fn notify(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let sent = UnixDatagram::unbound()
            .and_then(|socket| socket.send_to_addr(state.as_bytes(), target));
        if let Err(err) = sent {
            log::warn!("cannot notify systemd of {state}: {err}");
        }
    }
}

fn notify_address(value: &OsStr) -> std::io::Result<SocketAddr> {
    match value.as_bytes().split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        Some((b'/', _)) => SocketAddr::from_pathname(Path::new(value)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "expected an absolute path or @abstract-name",
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn notify_sends_the_state_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            target: Some(notify_address(path.as_os_str()).unwrap()),
        };
        notifier.notify("READY=1");
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn notify_sends_the_state_to_an_abstract_socket() {
        let name = format!("dockshim-test-notify-{}", std::process::id());
        let systemd =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier {
            target: Some(notify_address(OsStr::new(&format!("@{name}"))).unwrap()),
        };
        notifier.notify("STOPPING=1");
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn relative_notify_socket_is_refused() {
        assert!(notify_address(OsStr::new("run/notify")).is_err());
        assert!(notify_address(OsStr::new("")).is_err());
    }
}
