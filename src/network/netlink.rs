//! The few rtnetlink messages dockshim needs, hand-rolled over a
//! `NETLINK_ROUTE` socket: a dump of the links (`RTM_GETLINK`) of the
//! namespace the calling thread is in, and switching a link's promiscuous
//! flag (`RTM_NEWLINK` with `IFF_PROMISC`).
//!
//! It owns the byte layout (`nlmsghdr`, `ifinfomsg`, `rtattr`, all in host
//! byte order as the kernel speaks them) and every limit on what is read
//! back. It does not choose a namespace — a socket belongs to the namespace
//! of the thread that opens it, so callers enter one first (see `netns`) —
//! and it knows nothing about pods, bridges or hairpin policy.
//!
//! Parsing follows what a kernel answer must look like: every length is
//! checked against the bytes actually received before it is used, nothing is
//! allocated from a length read off the wire, and an answer for another
//! sequence number is skipped.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};

use super::NetlinkError;

/// Receive buffer for one datagram. The kernel sizes dump datagrams to at
/// most 32 KiB (or the reader's buffer, if smaller); twice that leaves room.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Links accepted from one dump. A node with this many interfaces is
/// already broken; the limit bounds the memory a dump can take.
pub const MAX_LINKS: usize = 65_536;

/// How long one `recv` may wait for the kernel, in seconds; it answers at
/// once, so running into this means the socket is wedged.
const RECV_TIMEOUT_SECS: i64 = 5;

/// A dump the kernel marks interrupted (links changed while it ran) is
/// started over this many times before giving up.
const MAX_DUMP_ATTEMPTS: usize = 3;

/// `IFNAMSIZ`: interface names, NUL included.
const IFNAMSIZ: usize = 16;

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTA_HDRLEN: usize = 4;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;

const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINK_NETNSID: u16 = 37;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER` are flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `IFF_PROMISC` in `ifi_flags`.
pub const IFF_PROMISC: u32 = 0x100;

/// A network interface as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index, unique within its namespace only.
    pub index: u32,
    /// The name, bytes as the kernel has them.
    pub name: OsString,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_LINK`: for a veth, the peer's index — in the peer's namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: present when `link` is in another namespace.
    pub link_netnsid: Option<i32>,
    /// `IFLA_MASTER`: the bridge (or bond) the interface is enslaved to.
    pub master: Option<u32>,
}

/// Every link of the calling thread's network namespace.
pub fn dump_links() -> Result<Vec<Link>, NetlinkError> {
    let socket = RouteSocket::open()?;
    for seq in 1..=MAX_DUMP_ATTEMPTS {
        // A sequence number per attempt: stray datagrams of an
        // interrupted dump are then skipped, not mixed in.
        let seq = seq as u32;
        socket.send(&getlink_dump_request(seq))?;
        let mut links = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = socket.recv()?;
            match parse_dump(datagram.bytes(), seq, &mut links)? {
                DumpProgress::More { interrupted: i } => interrupted |= i,
                DumpProgress::Done { interrupted: i } => {
                    interrupted |= i;
                    break;
                }
            }
        }
        if !interrupted {
            return Ok(links);
        }
    }
    Err(NetlinkError::Interrupted(MAX_DUMP_ATTEMPTS))
}

/// Turns the promiscuous flag of the link `index` (in the calling thread's
/// namespace) on or off, as `ip link set <dev> promisc on|off` does.
pub fn set_promiscuous(index: u32, on: bool) -> Result<(), NetlinkError> {
    let socket = RouteSocket::open()?;
    let seq = 1;
    let flags = if on { IFF_PROMISC } else { 0 };
    socket.send(&setlink_flags_request(seq, index, flags, IFF_PROMISC)?)?;
    loop {
        let datagram = socket.recv()?;
        if parse_ack(datagram.bytes(), seq, "set link flags")? {
            return Ok(());
        }
    }
}

/// An rtnetlink socket bound to the calling thread's namespace.
struct RouteSocket {
    fd: OwnedFd,
}

/// One received datagram and the buffer holding it.
struct Datagram {
    buf: Vec<u8>,
    len: usize,
}

impl Datagram {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl RouteSocket {
    fn open() -> Result<RouteSocket, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|errno| NetlinkError::Socket {
            action: "socket",
            errno,
        })?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|errno| NetlinkError::Socket {
            action: "bind",
            errno,
        })?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::seconds(RECV_TIMEOUT_SECS),
        )
        .map_err(|errno| NetlinkError::Socket {
            action: "set receive timeout",
            errno,
        })?;
        Ok(RouteSocket { fd })
    }

    fn send(&self, request: &[u8]) -> Result<(), NetlinkError> {
        let kernel = NetlinkAddr::new(0, 0);
        let sent =
            sendto(self.fd.as_raw_fd(), request, &kernel, MsgFlags::empty()).map_err(|errno| {
                NetlinkError::Socket {
                    action: "send",
                    errno,
                }
            })?;
        if sent != request.len() {
            return Err(NetlinkError::Malformed(format!(
                "sent {sent} of {} request bytes",
                request.len()
            )));
        }
        Ok(())
    }

    fn recv(&self) -> Result<Datagram, NetlinkError> {
        let mut buf = vec![0; RECV_BUFFER_BYTES];
        // MSG_TRUNC makes a netlink socket return the datagram's real
        // length, so a datagram cut short by the buffer is detected.
        let len = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(NetlinkError::Socket {
                        action: "recv",
                        errno,
                    })
                }
                Ok(len) => break len,
            }
        };
        if len > buf.len() {
            return Err(NetlinkError::Truncated {
                len,
                buffer: RECV_BUFFER_BYTES,
            });
        }
        Ok(Datagram { buf, len })
    }
}

/// The header of every netlink message.
struct MessageHeader {
    len: usize,
    kind: u16,
    flags: u16,
    seq: u32,
}

/// `RTM_GETLINK` with `NLM_F_DUMP`: all links, any family.
fn getlink_dump_request(seq: u32) -> [u8; NLMSG_HDRLEN + IFINFOMSG_LEN] {
    let mut request = [0; NLMSG_HDRLEN + IFINFOMSG_LEN];
    write_header(&mut request, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
    request
}

/// `RTM_NEWLINK` on an existing link changing only the `change` bits of its
/// flags to those in `flags`.
fn setlink_flags_request(
    seq: u32,
    index: u32,
    flags: u32,
    change: u32,
) -> Result<[u8; NLMSG_HDRLEN + IFINFOMSG_LEN], NetlinkError> {
    let index = i32::try_from(index)
        .map_err(|_| NetlinkError::Malformed(format!("interface index {index} out of range")))?;
    let mut request = [0; NLMSG_HDRLEN + IFINFOMSG_LEN];
    write_header(&mut request, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    // ifinfomsg: family (u8), pad (u8), type (u16), index (i32), flags, change.
    request[20..24].copy_from_slice(&index.to_ne_bytes());
    request[24..28].copy_from_slice(&flags.to_ne_bytes());
    request[28..32].copy_from_slice(&change.to_ne_bytes());
    Ok(request)
}

fn write_header(request: &mut [u8; NLMSG_HDRLEN + IFINFOMSG_LEN], kind: u16, flags: u16, seq: u32) {
    // The request is a fixed 32 bytes, so its length always fits a u32.
    let len = (NLMSG_HDRLEN + IFINFOMSG_LEN) as u32;
    request[0..4].copy_from_slice(&len.to_ne_bytes());
    request[4..6].copy_from_slice(&kind.to_ne_bytes());
    request[6..8].copy_from_slice(&flags.to_ne_bytes());
    request[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
}

/// Where a dump stands after one datagram.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum DumpProgress {
    More { interrupted: bool },
    Done { interrupted: bool },
}

/// Adds the links in one datagram of the dump `seq` to `links`. Public
/// for the fuzz targets in fuzz/ only.
#[doc(hidden)]
pub fn parse_dump(
    datagram: &[u8],
    seq: u32,
    links: &mut Vec<Link>,
) -> Result<DumpProgress, NetlinkError> {
    let mut interrupted = false;
    for message in Messages::new(datagram) {
        let (header, payload) = message?;
        if header.seq != seq {
            continue;
        }
        interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
        match header.kind {
            NLMSG_DONE => {
                // A dump may end with a negative errno in place of DONE's
                // usual zero.
                if let Some(errno) = read_i32(payload, 0).filter(|e| *e < 0) {
                    return Err(NetlinkError::Kernel {
                        request: "dump links",
                        errno: Errno::from_raw(errno.saturating_neg()),
                    });
                }
                return Ok(DumpProgress::Done { interrupted });
            }
            NLMSG_ERROR => {
                let errno = read_i32(payload, 0).ok_or_else(|| {
                    NetlinkError::Malformed("error message without an errno".to_owned())
                })?;
                return Err(NetlinkError::Kernel {
                    request: "dump links",
                    errno: Errno::from_raw(errno.saturating_neg()),
                });
            }
            RTM_NEWLINK => {
                if links.len() >= MAX_LINKS {
                    return Err(NetlinkError::TooManyLinks(MAX_LINKS));
                }
                links.push(parse_link(payload)?);
            }
            _ => {}
        }
    }
    Ok(DumpProgress::More { interrupted })
}

/// Looks for the acknowledgement of request `seq`: `Ok(true)` once it
/// arrived, `Ok(false)` if this datagram holds none. Public for the fuzz
/// targets in fuzz/ only.
#[doc(hidden)]
pub fn parse_ack(datagram: &[u8], seq: u32, request: &'static str) -> Result<bool, NetlinkError> {
    for message in Messages::new(datagram) {
        let (header, payload) = message?;
        if header.seq != seq || header.kind != NLMSG_ERROR {
            continue;
        }
        let errno = read_i32(payload, 0)
            .ok_or_else(|| NetlinkError::Malformed("error message without an errno".to_owned()))?;
        if errno == 0 {
            return Ok(true);
        }
        return Err(NetlinkError::Kernel {
            request,
            errno: Errno::from_raw(errno.saturating_neg()),
        });
    }
    Ok(false)
}

/// The messages of one datagram, each checked to lie within it.
struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    fn new(datagram: &'a [u8]) -> Messages<'a> {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(MessageHeader, &'a [u8]), NetlinkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = split_message(self.rest);
        match &result {
            Ok((header, _)) => {
                // The padded length may run past the end of the last message.
                let advance = align4(header.len).min(self.rest.len());
                self.rest = &self.rest[advance..];
            }
            Err(_) => self.rest = &[],
        }
        Some(result)
    }
}

fn split_message(bytes: &[u8]) -> Result<(MessageHeader, &[u8]), NetlinkError> {
    let malformed = |why: String| Err(NetlinkError::Malformed(why));
    if bytes.len() < NLMSG_HDRLEN {
        return malformed(format!("{} trailing bytes", bytes.len()));
    }
    let (Some(len), Some(kind), Some(flags), Some(seq)) = (
        read_u32(bytes, 0),
        read_u16(bytes, 4),
        read_u16(bytes, 6),
        read_u32(bytes, 8),
    ) else {
        return malformed("short header".to_owned());
    };
    let len = len as usize;
    if len < NLMSG_HDRLEN || len > bytes.len() {
        return malformed(format!(
            "message length {len} with {} bytes left",
            bytes.len()
        ));
    }
    let header = MessageHeader {
        len,
        kind,
        flags,
        seq,
    };
    Ok((header, &bytes[NLMSG_HDRLEN..len]))
}

/// An `RTM_NEWLINK` payload: `ifinfomsg` and its attributes.
fn parse_link(payload: &[u8]) -> Result<Link, NetlinkError> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(NetlinkError::Malformed(format!(
            "link message of {} bytes",
            payload.len()
        )));
    }
    let (Some(index), Some(flags)) = (read_i32(payload, 4), read_u32(payload, 8)) else {
        return Err(NetlinkError::Malformed("short ifinfomsg".to_owned()));
    };
    let index = u32::try_from(index)
        .map_err(|_| NetlinkError::Malformed(format!("negative interface index {index}")))?;
    let mut link = Link {
        index,
        name: OsString::new(),
        flags,
        link: None,
        link_netnsid: None,
        master: None,
    };
    let mut rest = &payload[IFINFOMSG_LEN..];
    while !rest.is_empty() {
        let (Some(len), Some(kind)) = (read_u16(rest, 0), read_u16(rest, 2)) else {
            return Err(NetlinkError::Malformed(format!(
                "{} trailing attribute bytes",
                rest.len()
            )));
        };
        let len = usize::from(len);
        if len < RTA_HDRLEN || len > rest.len() {
            return Err(NetlinkError::Malformed(format!(
                "attribute length {len} with {} bytes left",
                rest.len()
            )));
        }
        let value = &rest[RTA_HDRLEN..len];
        match kind & NLA_TYPE_MASK {
            IFLA_IFNAME => link.name = parse_ifname(value)?,
            IFLA_LINK => link.link = Some(exact_u32(value, "IFLA_LINK")?),
            IFLA_MASTER => link.master = Some(exact_u32(value, "IFLA_MASTER")?),
            IFLA_LINK_NETNSID => {
                link.link_netnsid = Some(exact_u32(value, "IFLA_LINK_NETNSID")? as i32);
            }
            _ => {}
        }
        rest = &rest[align4(len).min(rest.len())..];
    }
    if link.name.is_empty() {
        return Err(NetlinkError::Malformed(format!(
            "interface {index} has no name"
        )));
    }
    Ok(link)
}

fn parse_ifname(value: &[u8]) -> Result<OsString, NetlinkError> {
    let name = value.split(|b| *b == 0).next().unwrap_or_default();
    if name.len() >= IFNAMSIZ {
        return Err(NetlinkError::Malformed(format!(
            "interface name of {} bytes",
            name.len()
        )));
    }
    Ok(OsString::from_vec(name.to_vec()))
}

fn exact_u32(value: &[u8], what: &str) -> Result<u32, NetlinkError> {
    match value.try_into() {
        Ok(bytes) => Ok(u32::from_ne_bytes(bytes)),
        Err(_) => Err(NetlinkError::Malformed(format!(
            "{what} of {} bytes",
            value.len()
        ))),
    }
}

fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_i32(bytes: &[u8], at: usize) -> Option<i32> {
    read_u32(bytes, at).map(|v| v as i32)
}

// The transcripts below are little-endian, as the kernel writes them on
// x86 and arm64.
#[cfg(all(test, target_endian = "little"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A dump datagram as the kernel sends it from inside a pod: `lo`, and
    /// `eth0` (index 3), a veth whose peer is index 7 in namespace id 0,
    /// carrying an attribute the parser does not know (IFLA_MTU) and one
    /// with the nested flag (IFLA_LINKINFO) before the ones it does.
    const POD_DUMP: &[u8] = &[
        // nlmsghdr: len 48, RTM_NEWLINK, NLM_F_MULTI, seq 1, pid 4242
        48, 0, 0, 0, 16, 0, 2, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0,
        // ifinfomsg: AF_UNSPEC, ARPHRD_LOOPBACK (772), index 1, flags UP|LOOPBACK|RUNNING, change 0
        0, 0, 4, 3, 1, 0, 0, 0, 0x49, 0, 1, 0, 0, 0, 0, 0,
        // IFLA_IFNAME "lo\0" (len 7, padded to 8)
        7, 0, 3, 0, b'l', b'o', 0, 0, // IFLA_MTU 65536
        8, 0, 4, 0, 0, 0, 1, 0,
        // nlmsghdr: len 76, RTM_NEWLINK, NLM_F_MULTI, seq 1, pid 4242
        76, 0, 0, 0, 16, 0, 2, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0,
        // ifinfomsg: AF_UNSPEC, ARPHRD_ETHER (1), index 3, flags UP|BROADCAST|RUNNING|MULTICAST
        0, 0, 1, 0, 3, 0, 0, 0, 0x43, 0x10, 1, 0, 0, 0, 0, 0,
        // IFLA_LINKINFO (18 | NLA_F_NESTED), holding IFLA_INFO_KIND "veth\0"
        16, 0, 18, 0x80, 9, 0, 1, 0, b'v', b'e', b't', b'h', 0, 0, 0, 0,
        // IFLA_IFNAME "eth0\0" (len 9, padded to 12)
        9, 0, 3, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0, // IFLA_LINK 7
        8, 0, 5, 0, 7, 0, 0, 0, // IFLA_LINK_NETNSID 0
        8, 0, 37, 0, 0, 0, 0, 0,
    ];

    /// The end of the same dump.
    const DUMP_DONE: &[u8] = &[
        20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0, 0, 0, 0, 0,
    ];

    /// A host-side veth (index 7) enslaved to bridge index 5, its peer
    /// index 3 in namespace id 1.
    const HOST_VETH: &[u8] = &[
        // nlmsghdr: len 76, RTM_NEWLINK, NLM_F_MULTI, seq 2
        76, 0, 0, 0, 16, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0x43, 0x10, 1, 0,
        0, 0, 0, 0, // IFLA_IFNAME "veth1a2b3c4d\0" (len 17, padded to 20)
        17, 0, 3, 0, b'v', b'e', b't', b'h', b'1', b'a', b'2', b'b', b'3', b'c', b'4', b'd', 0, 0,
        0, 0, // IFLA_MASTER 5
        8, 0, 10, 0, 5, 0, 0, 0, // IFLA_LINK 3
        8, 0, 5, 0, 3, 0, 0, 0, // IFLA_LINK_NETNSID 1
        8, 0, 37, 0, 1, 0, 0, 0,
    ];

    #[test]
    fn dump_request_is_a_getlink_dump() {
        assert_eq!(
            getlink_dump_request(9),
            [
                32, 0, 0, 0, 18, 0, 0x01, 0x03, 9, 0, 0, 0, 0, 0, 0, 0, //
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]
        );
    }

    #[test]
    fn promiscuous_request_changes_only_the_promisc_flag() {
        assert_eq!(
            setlink_flags_request(4, 5, IFF_PROMISC, IFF_PROMISC).unwrap(),
            [
                32, 0, 0, 0, 16, 0, 0x05, 0, 4, 0, 0, 0, 0, 0, 0, 0, //
                0, 0, 0, 0, 5, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0,
            ]
        );
    }

    #[test]
    fn pod_dump_yields_names_and_veth_peer() {
        let mut links = Vec::new();
        let progress = parse_dump(POD_DUMP, 1, &mut links).unwrap();
        assert_eq!(progress, DumpProgress::More { interrupted: false });
        assert_eq!(
            links,
            [
                Link {
                    index: 1,
                    name: "lo".into(),
                    flags: 0x10049,
                    link: None,
                    link_netnsid: None,
                    master: None,
                },
                Link {
                    index: 3,
                    name: "eth0".into(),
                    flags: 0x11043,
                    link: Some(7),
                    link_netnsid: Some(0),
                    master: None,
                },
            ]
        );
        assert_eq!(
            parse_dump(DUMP_DONE, 1, &mut links).unwrap(),
            DumpProgress::Done { interrupted: false }
        );
    }

    #[test]
    fn host_veth_has_its_bridge_as_master() {
        let mut links = Vec::new();
        parse_dump(HOST_VETH, 2, &mut links).unwrap();
        assert_eq!(links[0].name, "veth1a2b3c4d");
        assert_eq!(links[0].master, Some(5));
        assert_eq!(links[0].link, Some(3));
        assert_eq!(links[0].link_netnsid, Some(1));
    }

    #[test]
    fn messages_of_another_sequence_are_skipped() {
        let mut links = Vec::new();
        assert_eq!(
            parse_dump(POD_DUMP, 2, &mut links).unwrap(),
            DumpProgress::More { interrupted: false }
        );
        assert!(links.is_empty());
    }

    #[test]
    fn interrupted_dump_is_reported() {
        let mut datagram = DUMP_DONE.to_vec();
        datagram[6] |= NLM_F_DUMP_INTR as u8;
        assert_eq!(
            parse_dump(&datagram, 1, &mut Vec::new()).unwrap(),
            DumpProgress::Done { interrupted: true }
        );
    }

    #[test]
    fn a_dump_ending_in_the_most_negative_errno_is_a_kernel_error() {
        // Found by the netlink fuzz target: negating i32::MIN overflowed.
        let mut datagram = DUMP_DONE.to_vec();
        datagram[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
        let err = parse_dump(&datagram, 1, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, NetlinkError::Kernel { .. }), "{err}");
    }

    #[test]
    fn message_longer_than_the_datagram_is_refused() {
        let mut datagram = POD_DUMP[..48].to_vec();
        datagram[0] = 200;
        let err = parse_dump(&datagram, 1, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("message length 200"), "{err}");
    }

    #[test]
    fn attribute_running_past_its_message_is_refused() {
        let mut datagram = POD_DUMP[..48].to_vec();
        datagram[32] = 40;
        let err = parse_dump(&datagram, 1, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("attribute length 40"), "{err}");
    }

    #[test]
    fn trailing_bytes_after_the_last_message_are_refused() {
        let mut datagram = DUMP_DONE.to_vec();
        datagram.extend_from_slice(&[1, 2, 3]);
        // DONE ends the dump before the garbage is reached.
        assert!(parse_dump(&datagram, 1, &mut Vec::new()).is_ok());
        let mut datagram = POD_DUMP[..48].to_vec();
        datagram.extend_from_slice(&[1, 2, 3]);
        let err = parse_dump(&datagram, 1, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("3 trailing bytes"), "{err}");
    }

    #[test]
    fn overlong_interface_name_is_refused() {
        let mut datagram = HOST_VETH[..32].to_vec();
        let name = b"abcdefghijklmnopq\0";
        datagram.extend_from_slice(&[(4 + name.len()) as u8, 0, 3, 0]);
        datagram.extend_from_slice(name);
        datagram.extend_from_slice(&[0, 0]);
        let len = datagram.len() as u8;
        datagram[0] = len;
        let err = parse_dump(&datagram, 2, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("name of 17 bytes"), "{err}");
    }

    #[test]
    fn link_attribute_of_the_wrong_size_is_refused() {
        let mut datagram = HOST_VETH.to_vec();
        // Shrink IFLA_LINK's declared length to 6.
        datagram[60] = 6;
        let err = parse_dump(&datagram, 2, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("IFLA_LINK of 2 bytes"), "{err}");
    }

    #[test]
    fn kernel_error_becomes_its_errno() {
        // NLMSG_ERROR carrying -EPERM (-1) and the offending request's header.
        let datagram = [
            36, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
            0xff, 0xff, 0xff, 0xff, //
            32, 0, 0, 0, 16, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ];
        let err = parse_ack(&datagram, 1, "set link flags").unwrap_err();
        assert!(
            matches!(
                err,
                NetlinkError::Kernel {
                    errno: Errno::EPERM,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_dump(&datagram, 1, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                NetlinkError::Kernel {
                    errno: Errno::EPERM,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_errno_is_an_acknowledgement() {
        let datagram = [
            36, 0, 0, 0, 2, 0, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0, //
            0, 0, 0, 0, //
            32, 0, 0, 0, 16, 0, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(parse_ack(&datagram, 3, "set link flags").unwrap());
        assert!(!parse_ack(&datagram, 4, "set link flags").unwrap());
    }

    #[test]
    fn link_limit_stops_a_runaway_dump() {
        let mut links = vec![
            Link {
                index: 1,
                name: "x".into(),
                flags: 0,
                link: None,
                link_netnsid: None,
                master: None,
            };
            MAX_LINKS
        ];
        let err = parse_dump(POD_DUMP, 1, &mut links).unwrap_err();
        assert!(matches!(err, NetlinkError::TooManyLinks(_)), "{err}");
    }

    #[test]
    fn this_threads_namespace_has_a_loopback_link() {
        let links = dump_links().unwrap();
        assert!(links.iter().any(|l| l.name == "lo"), "{links:?}");
    }
}
