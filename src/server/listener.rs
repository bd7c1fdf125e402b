//! The listening socket: parsing `--container-runtime-endpoint`, claiming
//! the socket path, binding it with the right owner and mode, and removing
//! it again.
//!
//! A unix socket path is claimed by an exclusive `flock` on `<path>.lock`,
//! held for the life of the process. Only the lock holder may remove or
//! replace the socket, so a second dockshim started by mistake fails
//! without disturbing the first, and a socket left behind by a crash (no
//! holder) is replaced. The lock file itself is never removed: unlinking it
//! would let two later instances lock two different files. The socket is
//! bound, given mode 0660 and its group, and only then listens, so no
//! client can connect before the permissions are final. A socket passed by
//! systemd (`fd://`) is used as it is and never removed.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::unistd::{chown, Gid, Group};

use super::systemd::take_listen_fd;
use super::ServerError;

/// Mode of the socket: the owner (root) and the socket group may connect.
const SOCKET_MODE: u32 = 0o660;
/// Mode of a socket directory dockshim has to create.
const SOCKET_DIR_MODE: u32 = 0o755;
/// Mode of the lock file; only its owner needs it.
const LOCK_FILE_MODE: u32 = 0o600;

/// Where to listen, as given by `--container-runtime-endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `unix:///path` or `/path`.
    Unix(PathBuf),
    /// `fd://`: the socket systemd passes (socket activation).
    Activated,
}

impl Endpoint {
    pub(super) fn parse(endpoint: &str) -> Result<Endpoint, ServerError> {
        let refuse = |reason| ServerError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        if endpoint == "fd://" {
            return Ok(Endpoint::Activated);
        }
        let path = match endpoint.strip_prefix("unix://") {
            Some(path) => path,
            None if endpoint.contains("://") => {
                return Err(refuse("only unix:///path, /path and fd:// are supported"))
            }
            None => endpoint,
        };
        if !path.starts_with('/') {
            return Err(refuse("the socket path must be absolute"));
        }
        if path.ends_with('/') {
            return Err(refuse("the socket path names a directory"));
        }
        Ok(Endpoint::Unix(PathBuf::from(path)))
    }
}

/// The bound, listening socket, and the claim on its path when dockshim
/// created it.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) listener: UnixListener,
    pub(super) claim: Option<SocketClaim>,
}

/// Binds `endpoint`; `group` is a group name or a numeric gid that gets
/// the socket.
pub(super) fn bind_endpoint(
    endpoint: &Endpoint,
    group: Option<&str>,
) -> Result<Bound, ServerError> {
    match endpoint {
        Endpoint::Activated => {
            if group.is_some() {
                log::warn!("--socket-group is ignored for a socket passed by systemd");
            }
            Ok(Bound {
                listener: take_listen_fd()?,
                claim: None,
            })
        }
        Endpoint::Unix(path) => {
            let gid = group.map(resolve_group).transpose()?;
            let (listener, claim) = bind_unix(path, gid)?;
            Ok(Bound {
                listener,
                claim: Some(claim),
            })
        }
    }
}

/// The lock on a socket path; dropping it removes the socket.
#[derive(Debug)]
pub(super) struct SocketClaim {
    socket: PathBuf,
    /// Held, not read: the lock lasts as long as this value.
    _lock: Flock<File>,
}

impl Drop for SocketClaim {
    fn drop(&mut self) {
        match fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => log::warn!("cannot remove socket {}: {err}", self.socket.display()),
        }
    }
}

fn bind_unix(path: &Path, gid: Option<Gid>) -> Result<(UnixListener, SocketClaim), ServerError> {
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .map_err(|err| ServerError::io("create directory", dir, err))?;
    }
    let lock = lock_path(path)?;
    remove_stale_socket(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|err| ServerError::io("create socket for", path, err.into()))?;
    let address = UnixAddr::new(path).map_err(|err| ServerError::io("bind", path, err.into()))?;
    bind(fd.as_raw_fd(), &address).map_err(|err| ServerError::io("bind", path, err.into()))?;
    // From here on the file exists and is ours: the claim removes it on
    // every error path below.
    let claim = SocketClaim {
        socket: path.to_owned(),
        _lock: lock,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|err| ServerError::io("set the mode of", path, err))?;
    if let Some(gid) = gid {
        // The owner stays the user dockshim runs as (root in production).
        chown(path, None, Some(gid))
            .map_err(|err| ServerError::io("set the group of", path, err.into()))?;
    }
    listen(&fd, Backlog::MAXCONN).map_err(|err| ServerError::io("listen on", path, err.into()))?;
    Ok((UnixListener::from(fd), claim))
}

/// Takes the lock for `socket`, failing at once if a live process holds it.
fn lock_path(socket: &Path) -> Result<Flock<File>, ServerError> {
    let mut lock = socket.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(LOCK_FILE_MODE)
        .open(&lock)
        .map_err(|err| ServerError::io("open lock file", &lock, err))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(held),
        Err((_, Errno::EWOULDBLOCK)) => Err(ServerError::InUse {
            socket: socket.to_owned(),
            lock,
        }),
        Err((_, errno)) => Err(ServerError::io("lock", &lock, errno.into())),
    }
}

/// Removes a socket left by an instance that is gone (we hold the lock);
/// refuses to remove anything that is not a socket.
fn remove_stale_socket(path: &Path) -> Result<(), ServerError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            log::info!("removing stale socket {}", path.display());
            fs::remove_file(path).map_err(|err| ServerError::io("remove stale socket", path, err))
        }
        Ok(_) => Err(ServerError::NotASocket {
            path: path.to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(ServerError::io("inspect", path, err)),
    }
}

/// Resolves `--socket-group`: a group name, or a numeric gid.
fn resolve_group(group: &str) -> Result<Gid, ServerError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(group) {
        Ok(Some(entry)) => Ok(entry.gid),
        Ok(None) => Err(ServerError::UnknownGroup {
            group: group.to_owned(),
        }),
        Err(errno) => Err(ServerError::io("look up group", group, errno.into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn endpoint_forms_are_understood() {
        assert_eq!(
            Endpoint::parse("unix:///run/dockshim.sock").unwrap(),
            Endpoint::Unix("/run/dockshim.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/run/dockshim.sock").unwrap(),
            Endpoint::Unix("/run/dockshim.sock".into())
        );
        assert_eq!(Endpoint::parse("fd://").unwrap(), Endpoint::Activated);
    }

    #[test]
    fn other_endpoint_forms_are_refused() {
        for endpoint in [
            "tcp://127.0.0.1:3735",
            "unix://run/x.sock",
            "run/x.sock",
            "",
            "unix:///run/",
            "fd://3",
        ] {
            let err = Endpoint::parse(endpoint).unwrap_err();
            assert!(
                matches!(err, ServerError::Endpoint { .. }),
                "{endpoint}: {err}"
            );
        }
    }

    #[test]
    fn numeric_group_is_taken_as_a_gid() {
        assert_eq!(resolve_group("4242").unwrap(), Gid::from_raw(4242));
    }

    #[test]
    fn named_group_is_resolved() {
        assert_eq!(resolve_group("root").unwrap(), Gid::from_raw(0));
    }

    #[test]
    fn unknown_group_is_an_error() {
        let err = resolve_group("no-such-group-dockshim").unwrap_err();
        assert!(matches!(err, ServerError::UnknownGroup { .. }), "{err}");
    }

    #[test]
    fn binding_creates_the_directory_and_a_0660_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/dockshim.sock");
        // Our own group: chown to it is allowed without privileges.
        let gid = nix::unistd::getegid();
        let bound = bind_endpoint(&Endpoint::Unix(path.clone()), Some(&gid.to_string())).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid.as_raw());
        drop(bound);
        assert!(!path.exists(), "dropping the claim removes the socket");
        assert!(
            dir.path().join("sub/dir/dockshim.sock.lock").exists(),
            "the lock file stays"
        );
    }

    #[test]
    fn a_regular_file_in_the_way_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        fs::write(&path, b"precious").unwrap();
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn a_too_long_path_fails_to_bind_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x".repeat(120));
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(
            matches!(err, ServerError::Io { action: "bind", .. }),
            "{err}"
        );
        assert!(!path.exists());
    }
}
