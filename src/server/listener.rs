//! The listening socket: parsing `--container-runtime-endpoint`, claiming
//! the socket path, binding it with the right owner and mode, and removing
//! it again.
//!
//! A unix socket path is claimed by an exclusive `flock` on `<path>.lock`,
//! held for the life of the process, in every mode: a socket passed by
//! systemd (`fd://`) is claimed through the path it is bound to, so a
//! second dockshim (of either mode) fails while one serves it. Only the
//! lock holder may remove or replace a socket it bound itself, so a
//! second dockshim started by mistake fails without disturbing the first,
//! and a socket left behind by a crash (no holder) is replaced. The lock
//! file itself is never removed: unlinking it would let two later
//! instances lock two different files. The socket is bound, given mode
//! 0660 and its group, and only then listens, so no client can connect
//! before the permissions are final. A socket passed by systemd is used
//! as it is: never removed, its mode and owner never changed.
//!
//! The socket's directory is the administrator's and may be reached
//! through a symlink (`/var/run`); the names in it are not trusted. The
//! directory is opened once, and the lock file, the stale-socket check,
//! the mode, the group and the removal all go through that handle without
//! following a symlink at the last component: a symlink planted at the
//! socket or lock path is refused, never followed, and nothing but a
//! socket is ever removed.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::socket::{
    bind, getsockname, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::{fchmodat, fstat, fstatat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, unlinkat, Gid, Group, UnlinkatFlags};

use super::systemd::take_listen_fd;
use super::ServerError;

/// Mode of the socket: the owner (root) and the socket group may connect.
const SOCKET_MODE: u32 = 0o660;
/// Mode of a socket directory dockshim has to create.
const SOCKET_DIR_MODE: u32 = 0o755;
/// Mode of the lock file; only its owner needs it.
const LOCK_FILE_MODE: u32 = 0o600;
/// What is appended to the socket's name to name its lock file.
const LOCK_SUFFIX: &str = ".lock";
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

/// The bound, listening socket, and the claim on its path.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) listener: UnixListener,
    /// `None` only for a socket systemd bound to no path (abstract or
    /// unnamed), which no second instance can take over.
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
            let listener = take_listen_fd()?;
            let claim = claim_activated(&listener)?;
            Ok(Bound { listener, claim })
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

/// A socket path's directory, opened once, and the socket's name in it.
#[derive(Debug)]
struct SocketPlace {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
}

impl SocketPlace {
    /// Opens the directory of `path` (following symlinks up to and
    /// including the directory itself: they are the administrator's).
    fn open(path: &Path) -> Result<SocketPlace, ServerError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(ServerError::io(
                "open the directory of",
                path,
                Errno::EINVAL.into(),
            ));
        };
        let dir = open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| ServerError::io("open directory", dir, err.into()))?;
        Ok(SocketPlace {
            dir,
            name: name.to_owned(),
            path: path.to_owned(),
        })
    }

    /// What is at the socket's name, without following a symlink there.
    fn inspect(&self) -> Result<Option<FileStat>, Errno> {
        match fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    /// Removes the entry at the socket's name if, and only if, it is a
    /// socket. `unlinkat` never follows a symlink, so even an entry
    /// swapped in after the check loses only its name, never a target.
    fn remove_socket(&self) -> Result<bool, ServerError> {
        match self.inspect() {
            Ok(Some(stat)) if is_socket(&stat) => {}
            Ok(Some(_)) => {
                return Err(ServerError::NotASocket {
                    path: self.path.clone(),
                })
            }
            Ok(None) => return Ok(false),
            Err(errno) => return Err(ServerError::io("inspect", &self.path, errno.into())),
        }
        match unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(ServerError::io("remove socket", &self.path, errno.into())),
        }
    }

    /// Takes the lock `<name>.lock` beside the socket, failing at once if
    /// a live process holds it. The lock file is opened beneath the
    /// directory handle without following a symlink, and must be a
    /// regular file.
    fn lock(&self) -> Result<Flock<File>, ServerError> {
        let mut lock_name = self.name.clone();
        lock_name.push(LOCK_SUFFIX);
        let mut lock_path = self.path.as_os_str().to_owned();
        lock_path.push(LOCK_SUFFIX);
        let lock_path = PathBuf::from(lock_path);
        let fd = openat(
            &self.dir,
            lock_name.as_os_str(),
            OFlag::O_RDWR
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(LOCK_FILE_MODE),
        )
        .map_err(|errno| match errno {
            Errno::ELOOP => ServerError::NotALockFile {
                path: lock_path.clone(),
                reason: "it is a symlink",
            },
            errno => ServerError::io("open lock file", &lock_path, errno.into()),
        })?;
        let stat = fstat(&fd)
            .map_err(|err| ServerError::io("inspect lock file", &lock_path, err.into()))?;
        if SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return Err(ServerError::NotALockFile {
                path: lock_path,
                reason: "it is not a regular file",
            });
        }
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(held),
            Err((_, Errno::EWOULDBLOCK)) => Err(ServerError::InUse {
                socket: self.path.clone(),
                lock: lock_path,
            }),
            Err((_, errno)) => Err(ServerError::io("lock", &lock_path, errno.into())),
        }
    }
}

fn is_socket(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFSOCK
}

/// The lock on a socket path; dropping it removes the socket when
/// dockshim bound it.
#[derive(Debug)]
pub(super) struct SocketClaim {
    place: SocketPlace,
    /// False for a socket systemd passed: systemd owns it.
    remove_on_drop: bool,
    /// Held, not read: the lock lasts as long as this value.
    _lock: Flock<File>,
}

impl Drop for SocketClaim {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        if let Err(err) = self.place.remove_socket() {
            log::warn!("cannot remove socket {}: {err}", self.place.path.display());
        }
    }
}

/// Claims the path a socket passed by systemd is bound to, so that no
/// second dockshim replaces it while this one serves it. The socket
/// itself is left exactly as systemd made it.
fn claim_activated(listener: &UnixListener) -> Result<Option<SocketClaim>, ServerError> {
    let address =
        getsockname::<UnixAddr>(listener.as_raw_fd()).map_err(|err| ServerError::Activation {
            reason: format!("cannot read the passed socket's address: {err}"),
        })?;
    let Some(path) = address.path().filter(|path| path.is_absolute()) else {
        log::info!("the socket systemd passed is bound to no path; no lock is taken");
        return Ok(None);
    };
    let place = SocketPlace::open(path)?;
    let lock = place.lock()?;
    Ok(Some(SocketClaim {
        place,
        remove_on_drop: false,
        _lock: lock,
    }))
}

fn bind_unix(path: &Path, gid: Option<Gid>) -> Result<(UnixListener, SocketClaim), ServerError> {
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .map_err(|err| ServerError::io("create directory", dir, err))?;
    }
    let place = SocketPlace::open(path)?;
    let lock = place.lock()?;
    if place.remove_socket()? {
        log::info!("removed stale socket {}", path.display());
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|err| ServerError::io("create socket for", path, err.into()))?;
    let address = UnixAddr::new(path).map_err(|err| ServerError::io("bind", path, err.into()))?;
    // bind(2) creates the last component and fails on anything already
    // there, a symlink included: it never follows one.
    bind(fd.as_raw_fd(), &address).map_err(|err| ServerError::io("bind", path, err.into()))?;
    // From here on the name is ours: the claim removes it (if it is still
    // a socket) on every error path below.
    let claim = SocketClaim {
        place,
        remove_on_drop: true,
        _lock: lock,
    };
    set_owner_and_mode(&claim.place, gid)?;
    listen(&fd, Backlog::MAXCONN).map_err(|err| ServerError::io("listen on", path, err.into()))?;
    Ok((UnixListener::from(fd), claim))
}

/// Gives the socket just bound its mode and group. Neither call follows a
/// symlink at the socket's name: something swapped in there since the
/// bind makes them fail (or change only the link itself), and the final
/// check refuses anything that is not a socket.
fn set_owner_and_mode(place: &SocketPlace, gid: Option<Gid>) -> Result<(), ServerError> {
    let name: &OsStr = place.name.as_os_str();
    fchmodat(
        place.dir.as_fd(),
        name,
        Mode::from_bits_truncate(SOCKET_MODE),
        FchmodatFlags::NoFollowSymlink,
    )
    .map_err(|err| ServerError::io("set the mode of", &place.path, err.into()))?;
    if let Some(gid) = gid {
        // The owner stays the user dockshim runs as (root in production).
        fchownat(
            place.dir.as_fd(),
            name,
            None,
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|err| ServerError::io("set the group of", &place.path, err.into()))?;
    }
    match place.inspect() {
        Ok(Some(stat)) if is_socket(&stat) => Ok(()),
        Ok(_) => Err(ServerError::NotASocket {
            path: place.path.clone(),
        }),
        Err(errno) => Err(ServerError::io("inspect", &place.path, errno.into())),
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
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

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

    #[test]
    fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        drop(UnixListener::bind(&path).unwrap());
        let bound = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap();
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
        drop(bound);
    }

    #[test]
    fn a_symlink_at_the_socket_path_is_neither_followed_nor_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"precious").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("dockshim.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
        assert!(fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let path = dir.path().join("dockshim.sock");
        std::os::unix::fs::symlink(&target, dir.path().join("dockshim.sock.lock")).unwrap();
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(matches!(err, ServerError::NotALockFile { .. }), "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!target.exists(), "the symlink's target was created");
        assert!(!path.exists());
    }

    #[test]
    fn a_lock_path_that_is_not_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        fs::create_dir(dir.path().join("dockshim.sock.lock")).unwrap();
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(
            matches!(
                err,
                ServerError::NotALockFile { .. } | ServerError::Io { .. }
            ),
            "{err}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn the_mode_is_never_set_through_a_symlink_swapped_in_after_the_bind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"precious").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join("dockshim.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let place = SocketPlace::open(&path).unwrap();
        let gid = nix::unistd::getegid();
        assert!(set_owner_and_mode(&place, Some(gid)).is_err());
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_second_instance_on_a_live_socket_fails_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        let first = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap();
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(matches!(err, ServerError::InUse { .. }), "{err}");
        std::os::unix::net::UnixStream::connect(&path).expect("the first socket still answers");
        drop(first);
    }

    #[test]
    fn an_activated_socket_is_locked_and_left_as_systemd_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockshim.sock");
        // What systemd would pass: bound and listening, with its own mode.
        let listener = UnixListener::bind(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let claim = claim_activated(&listener).unwrap().expect("a path to lock");
        let err = bind_endpoint(&Endpoint::Unix(path.clone()), None).unwrap_err();
        assert!(matches!(err, ServerError::InUse { .. }), "{err}");
        let err = claim_activated(&listener).unwrap_err();
        assert!(matches!(err, ServerError::InUse { .. }), "{err}");
        drop(claim);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket(), "the systemd socket is gone");
        assert_eq!(meta.mode() & 0o777, 0o666);
    }
}
