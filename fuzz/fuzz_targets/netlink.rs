//! The rtnetlink parser (`network::netlink`): the datagrams of an
//! `RTM_GETLINK` dump and the acknowledgements of requests, as the kernel
//! sends them (host byte order).
//!
//! Input: the request's sequence number (four bytes), then datagrams, each
//! a two-byte length and that many bytes.
//!
//! Asserts, for every input: no panic; a dump never collects more than
//! `MAX_LINKS` links, each with a name of 1 to 15 bytes without NUL; the
//! links a dump collected, written again as one dump datagram, parse to
//! the same links; an acknowledgement is found only in a datagram that
//! holds an `NLMSG_ERROR` for this sequence number.
#![cfg_attr(afl, no_main)]

use std::os::unix::ffi::OsStrExt;

use dockshim::network::netlink::{parse_ack, parse_dump, DumpProgress, Link, MAX_LINKS};
use dockshim_fuzz::Cursor;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_LINK_NETNSID: u16 = 37;

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let seq = cursor.u32();
    let mut datagrams = Vec::new();
    while !cursor.is_empty() {
        let len = usize::from(cursor.u16());
        datagrams.push(cursor.take(len));
    }

    let mut links = Vec::new();
    let mut done = false;
    for datagram in &datagrams {
        match parse_dump(datagram, seq, &mut links) {
            Ok(DumpProgress::Done { .. }) => {
                done = true;
                break;
            }
            Ok(DumpProgress::More { .. }) => {}
            Err(_) => break,
        }
    }
    assert!(links.len() <= MAX_LINKS);
    for link in &links {
        let name = link.name.as_bytes();
        assert!(
            !name.is_empty() && name.len() < 16 && !name.contains(&0),
            "{link:?}"
        );
    }
    if done {
        let again = dump_datagram(&links, seq);
        let mut reread = Vec::new();
        assert_eq!(
            parse_dump(&again, seq, &mut reread).ok(),
            Some(DumpProgress::Done { interrupted: false })
        );
        assert_eq!(reread, links);
    }

    for datagram in &datagrams {
        if let Ok(true) = parse_ack(datagram, seq, "fuzz") {
            assert!(holds_error_for(datagram, seq));
        }
    }
}

fn message(out: &mut Vec<u8>, kind: u16, seq: u32, payload: &[u8]) {
    let len = 16 + payload.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&2u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// `links` as one datagram of a dump, ended by `NLMSG_DONE`.
fn dump_datagram(links: &[Link], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for link in links {
        let mut payload = vec![0u8; 4];
        payload.extend_from_slice(&(link.index as i32).to_ne_bytes());
        payload.extend_from_slice(&link.flags.to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        let mut name = link.name.as_bytes().to_vec();
        name.push(0);
        attribute(&mut payload, IFLA_IFNAME, &name);
        if let Some(peer) = link.link {
            attribute(&mut payload, IFLA_LINK, &peer.to_ne_bytes());
        }
        if let Some(master) = link.master {
            attribute(&mut payload, IFLA_MASTER, &master.to_ne_bytes());
        }
        if let Some(netnsid) = link.link_netnsid {
            attribute(&mut payload, IFLA_LINK_NETNSID, &netnsid.to_ne_bytes());
        }
        message(&mut out, RTM_NEWLINK, seq, &payload);
    }
    message(&mut out, NLMSG_DONE, seq, &0i32.to_ne_bytes());
    out
}

/// Whether a well-formed message of `datagram` is an `NLMSG_ERROR` for `seq`.
fn holds_error_for(datagram: &[u8], seq: u32) -> bool {
    let mut rest = datagram;
    while rest.len() >= 16 {
        let field =
            |at: usize| u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let len = field(0) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < 16 || len > rest.len() {
            return false;
        }
        if kind == NLMSG_ERROR && field(8) == seq {
            return true;
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    false
}

dockshim_fuzz::fuzz_target!(run);
