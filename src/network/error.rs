//! The errors of pod networking: `CniConfigError`, why no usable network
//! configuration was found; `NetnsError`, why code could not run in a
//! pod's network namespace; `NetlinkError`, a failed netlink exchange;
//! `HairpinError`, why hairpin mode could not be set. The CNI plugins' own
//! errors are `cni`'s. What each means to the kubelet is `cri`'s to say.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// Why no usable network configuration was found.
#[derive(Debug)]
pub enum CniConfigError {
    /// The configuration directory cannot be listed.
    ReadDir { dir: PathBuf, source: io::Error },
    /// No file in the directory is a usable configuration; `skipped`
    /// says why each candidate was passed over.
    NoUsableConfig {
        dir: PathBuf,
        skipped: Vec<(PathBuf, String)>,
    },
    /// A configuration recorded for a later teardown is not one.
    Recorded { file: PathBuf, reason: String },
    /// The directory holds no configuration and the built-in default
    /// network cannot serve in its place.
    BuiltIn { dir: PathBuf, reason: String },
}

impl fmt::Display for CniConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CniConfigError::ReadDir { dir, source } => {
                write!(
                    f,
                    "cannot read CNI config directory {}: {source}",
                    dir.display()
                )
            }
            CniConfigError::NoUsableConfig { dir, skipped } if skipped.is_empty() => {
                write!(f, "no CNI network config found in {}", dir.display())
            }
            CniConfigError::NoUsableConfig { dir, skipped } => {
                write!(f, "no usable CNI network config in {}", dir.display())?;
                for (file, why) in skipped {
                    write!(f, "; {}: {why}", file.display())?;
                }
                Ok(())
            }
            CniConfigError::Recorded { file, reason } => write!(
                f,
                "the recorded CNI network config of {} is unusable: {reason}",
                file.display()
            ),
            CniConfigError::BuiltIn { dir, reason } => write!(
                f,
                "no CNI network config found in {}, and the built-in default network \
                 cannot serve: {reason}",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for CniConfigError {}

/// Why the closure could not be run in the namespace.
#[derive(Debug)]
pub enum NetnsError {
    /// The namespace path cannot be opened (gone, or not ours to open).
    Open { path: PathBuf, source: io::Error },
    /// `setns` refused: the path is not a network namespace, or we lack the
    /// privilege.
    Enter { path: PathBuf, errno: Errno },
    /// No thread could be started.
    Spawn(io::Error),
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::Open { path, source } => {
                write!(
                    f,
                    "cannot open network namespace {}: {source}",
                    path.display()
                )
            }
            NetnsError::Enter { path, errno } => write!(
                f,
                "cannot enter network namespace {}: {}",
                path.display(),
                errno.desc()
            ),
            NetnsError::Spawn(source) => {
                write!(
                    f,
                    "cannot start a thread to enter a network namespace: {source}"
                )
            }
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::Open { source, .. } | NetnsError::Spawn(source) => Some(source),
            NetnsError::Enter { errno, .. } => Some(errno),
        }
    }
}

/// A failed netlink exchange.
#[derive(Debug)]
pub enum NetlinkError {
    /// A socket call failed; `action` names it.
    Socket { action: &'static str, errno: Errno },
    /// The kernel answered the request with an error.
    Kernel { request: &'static str, errno: Errno },
    /// The bytes received are not a well-formed answer.
    Malformed(String),
    /// A datagram of `len` bytes was larger than the `buffer`.
    Truncated { len: usize, buffer: usize },
    /// More links than the limit it carries.
    TooManyLinks(usize),
    /// The link list kept changing during each of the dumps it counts.
    Interrupted(usize),
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetlinkError::Socket { action, errno } => {
                write!(f, "netlink {action}: {}", errno.desc())
            }
            NetlinkError::Kernel { request, errno } => {
                write!(f, "netlink {request}: {}", errno.desc())
            }
            NetlinkError::Malformed(why) => write!(f, "malformed netlink answer: {why}"),
            NetlinkError::Truncated { len, buffer } => write!(
                f,
                "netlink datagram of {len} bytes exceeds the {buffer}-byte buffer"
            ),
            NetlinkError::TooManyLinks(limit) => write!(f, "more than {limit} network interfaces"),
            NetlinkError::Interrupted(attempts) => write!(
                f,
                "the interface list changed during each of {attempts} dumps"
            ),
        }
    }
}

impl std::error::Error for NetlinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetlinkError::Socket { errno, .. } | NetlinkError::Kernel { errno, .. } => Some(errno),
            _ => None,
        }
    }
}

/// Why hairpin mode could not be set.
#[derive(Debug)]
pub enum HairpinError {
    /// The pod's namespace could not be entered.
    Netns(NetnsError),
    /// Listing or changing links failed.
    Netlink(NetlinkError),
    /// The pod's namespace has no interface of that name.
    NoInterface { ifname: String, netns: PathBuf },
    /// The pod interface has no peer in another namespace: not a veth to
    /// the host.
    NoPeer { ifname: String },
    /// No host interface is the pod interface's peer.
    PeerNotOnHost { ifname: String, peer_index: u32 },
    /// The host veth is not a bridge port.
    NotOnBridge { veth: OsString },
    /// Sysfs shows a different interface under that name: it was mounted
    /// in another network namespace than the one dockshim runs in.
    SysfsMismatch { path: PathBuf, expected: u32 },
    /// Reading or writing sysfs failed.
    Sysfs { path: PathBuf, source: io::Error },
}

impl fmt::Display for HairpinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HairpinError::Netns(err) => write!(f, "hairpin: {err}"),
            HairpinError::Netlink(err) => write!(f, "hairpin: {err}"),
            HairpinError::NoInterface { ifname, netns } => write!(
                f,
                "hairpin: no interface {ifname} in network namespace {}",
                netns.display()
            ),
            HairpinError::NoPeer { ifname } => write!(
                f,
                "hairpin: pod interface {ifname} has no peer in another namespace (not a veth)"
            ),
            HairpinError::PeerNotOnHost { ifname, peer_index } => write!(
                f,
                "hairpin: the peer of pod interface {ifname} (index {peer_index}) is not in the host namespace"
            ),
            HairpinError::NotOnBridge { veth } => write!(
                f,
                "hairpin: host veth {} is not attached to a bridge",
                veth.to_string_lossy()
            ),
            HairpinError::SysfsMismatch { path, expected } => write!(
                f,
                "hairpin: {} is not interface index {expected}: sysfs belongs to another network namespace",
                path.display()
            ),
            HairpinError::Sysfs { path, source } => {
                write!(f, "hairpin: {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for HairpinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HairpinError::Netns(err) => Some(err),
            HairpinError::Netlink(err) => Some(err),
            HairpinError::Sysfs { source, .. } => Some(source),
            _ => None,
        }
    }
}
