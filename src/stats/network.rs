//! A pod's network counters, from `/proc/<pid>/net/dev` of its sandbox's
//! main process: that file shows the network namespace the process is in,
//! so no `setns` is needed.
//!
//! The kubelet takes `eth0` as a pod's interface and shows it as the
//! default; every other interface but loopback (whose traffic never leaves
//! the pod) is listed beside it. This module reads that one file and
//! nothing else.

use std::path::Path;

use super::files::{parse_error, Files};
use super::StatsError;
use crate::api::v1;

/// A pod with a few hundred interfaces fits, at about 130 bytes a line.
pub const NET_DEV_MAX: u64 = 64 * 1024;
/// The interface the kubelet calls a pod's own.
pub const DEFAULT_INTERFACE: &str = "eth0";
/// The interface whose counters are left out.
const LOOPBACK: &str = "lo";
/// Counters per line: eight receive, eight transmit.
const COUNTERS_PER_LINE: usize = 16;

/// Cumulative counters of one interface, named in the text they were
/// parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters<'a> {
    pub name: &'a str,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

impl InterfaceCounters<'_> {
    fn to_cri(&self) -> v1::NetworkInterfaceUsage {
        let value = |value| Some(v1::UInt64Value { value });
        v1::NetworkInterfaceUsage {
            name: self.name.to_owned(),
            rx_bytes: value(self.rx_bytes),
            rx_errors: value(self.rx_errors),
            tx_bytes: value(self.tx_bytes),
            tx_errors: value(self.tx_errors),
        }
    }
}

/// The CRI message of `<proc_root>/<pid>/net/dev` (see [`to_cri`]).
pub fn read(
    proc_root: &Path,
    pid: u32,
    files: &mut Files<'_>,
    timestamp_ns: i64,
) -> Result<v1::NetworkUsage, StatsError> {
    let dir = proc_root.join(pid.to_string()).join("net");
    let text = files.text(&dir, "dev", NET_DEV_MAX)?;
    let interfaces = parse(&dir, "dev", text)?;
    Ok(to_cri(&interfaces, DEFAULT_INTERFACE, timestamp_ns))
}

/// Parses the text of a `net/dev` file: two header lines (the only ones
/// with `|`), then `name: 16 counters` per interface. A large counter can
/// run into the colon, so lines are split at the colon, not at spaces.
/// `dir` and `file_name` name the file in errors.
pub fn parse<'a>(
    dir: &Path,
    file_name: &str,
    text: &'a str,
) -> Result<Vec<InterfaceCounters<'a>>, StatsError> {
    let mut interfaces = Vec::new();
    for line in text.lines() {
        if line.contains('|') || line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| parse_error(&dir.join(file_name), format!("line {line:?}: {why}"));
        let (name, counters) = line.split_once(':').ok_or_else(|| bad("no colon"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("no interface name"));
        }
        let mut values = [0u64; COUNTERS_PER_LINE];
        let mut fields = counters.split_ascii_whitespace();
        for slot in &mut values {
            let field = fields.next().ok_or_else(|| bad("too few counters"))?;
            *slot = field
                .parse()
                .map_err(|_| bad("a counter is not a number"))?;
        }
        interfaces.push(InterfaceCounters {
            name,
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_dropped: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_dropped: values[11],
        });
    }
    Ok(interfaces)
}

/// The CRI message: `default_name` as the default interface (absent if the
/// pod has none by that name), the others but loopback listed.
pub fn to_cri(
    interfaces: &[InterfaceCounters],
    default_name: &str,
    timestamp_ns: i64,
) -> v1::NetworkUsage {
    v1::NetworkUsage {
        timestamp: timestamp_ns,
        default_interface: interfaces
            .iter()
            .find(|i| i.name == default_name)
            .map(InterfaceCounters::to_cri),
        interfaces: interfaces
            .iter()
            .filter(|i| i.name != default_name && i.name != LOOPBACK)
            .map(InterfaceCounters::to_cri)
            .collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    /// A pod's file as a 6.x kernel writes it, with a counter wide enough
    /// to touch the colon.
    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0
  eth0:     736       8    1    2    0     0          0         0      586       7    3    4    0     0       0          0
net1:123456789012 99999 0 0 0 0 0 0   42 1 0 0 0 0 0 0
";

    #[test]
    fn every_interface_is_parsed_whatever_the_spacing() {
        let interfaces = parse(Path::new("net"), "dev", NET_DEV).unwrap();
        let names: Vec<&str> = interfaces.iter().map(|i| i.name).collect();
        assert_eq!(names, ["lo", "eth0", "net1"]);
        assert_eq!(
            interfaces[1],
            InterfaceCounters {
                name: "eth0",
                rx_bytes: 736,
                rx_packets: 8,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 586,
                tx_packets: 7,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        assert_eq!(interfaces[2].rx_bytes, 123_456_789_012);
        assert_eq!(interfaces[2].tx_bytes, 42);
    }

    #[test]
    fn eth0_is_the_default_and_loopback_is_left_out() {
        let interfaces = parse(Path::new("net"), "dev", NET_DEV).unwrap();
        let usage = to_cri(&interfaces, DEFAULT_INTERFACE, 5);
        assert_eq!(usage.timestamp, 5);
        let default = usage.default_interface.unwrap();
        assert_eq!(default.name, "eth0");
        assert_eq!(default.rx_bytes.unwrap().value, 736);
        assert_eq!(default.rx_errors.unwrap().value, 1);
        assert_eq!(default.tx_bytes.unwrap().value, 586);
        assert_eq!(default.tx_errors.unwrap().value, 3);
        let others: Vec<&str> = usage.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(others, ["net1"]);
    }

    #[test]
    fn a_pod_without_eth0_has_no_default_interface() {
        let interfaces = parse(Path::new("net"), "dev", NET_DEV).unwrap();
        let usage = to_cri(&interfaces[..1], DEFAULT_INTERFACE, 1);
        assert_eq!(usage.default_interface, None);
        assert!(usage.interfaces.is_empty());
    }

    #[test]
    fn odd_lines_are_parse_errors() {
        for odd in [
            "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
            "eth0: 1 2 3",
            ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16",
            "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 -16",
        ] {
            let err = parse(Path::new("net"), "dev", odd).unwrap_err();
            assert!(matches!(err, StatsError::Parse { .. }), "{odd}: {err}");
        }
    }

    #[test]
    fn the_file_of_a_pid_is_read_under_the_proc_root() {
        let proc_root = tempfile::tempdir().unwrap();
        fs::create_dir_all(proc_root.path().join("4242/net")).unwrap();
        fs::write(proc_root.path().join("4242/net/dev"), NET_DEV).unwrap();
        let mut buf = Vec::new();
        let mut files = Files::unkept(&mut buf);
        let usage = read(proc_root.path(), 4242, &mut files, 5).unwrap();
        assert_eq!(usage.interfaces.len(), 1);
        assert_eq!(usage.default_interface.unwrap().name, "eth0");
        let err = read(proc_root.path(), 4243, &mut files, 5).unwrap_err();
        assert!(err.is_gone());
    }
}
