//! Parsers for the kinds of value flags take: Go-style durations, endpoints,
//! paths, addresses, CIDRs and the small enumerations.
//!
//! Each is a pure function from text to a typed value. They do no I/O — a
//! group name is not looked up, a directory is not checked for existence —
//! and they know nothing of flag names: the caller wraps an [`Invalid`] into
//! a `CliError` that names the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::{DefaultNetwork, HairpinMode, NetworkPlugin};
use crate::network::default_network::validate_pod_cidrs;

/// `sockaddr_un.sun_path` on Linux holds 108 bytes including the final NUL.
const MAX_SOCKET_PATH_LEN: usize = 107;

/// Fraction digits past this many are below a nanosecond even for hours.
const MAX_FRACTION_DIGITS: usize = 19;

/// A value was rejected: what kind of value was expected, and why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) kind: &'static str,
    pub(crate) reason: String,
}

impl Invalid {
    fn new(kind: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid {
            kind,
            reason: reason.into(),
        }
    }
}

/// A duration in Go's `time.ParseDuration` form: `0`, or a sequence of
/// decimal numbers each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`),
/// as in `1h2m3s4ms` or `1.5h`. Negative durations are refused.
pub(crate) fn duration(text: &str) -> Result<Duration, Invalid> {
    const KIND: &str = "duration";
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(Invalid::new(KIND, "empty"));
    }
    if text.starts_with('-') {
        return Err(Invalid::new(KIND, "must not be negative"));
    }
    let out_of_range = || Invalid::new(KIND, "too large");
    let mut total_nanos: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after_point) => split_digits(after_point),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(Invalid::new(
                KIND,
                "expected a number, such as 90s or 1m30s",
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos = unit_nanos(unit)?;

        // `whole` is all ASCII digits, so parsing can only fail by overflowing.
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| out_of_range())?
        };
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(out_of_range)?;
        if !fraction.is_empty() {
            let kept = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
            let numerator: u128 = kept.parse().map_err(|_| out_of_range())?;
            let denominator = 10u128.pow(kept.len() as u32);
            // numerator < 10^19 and unit_nanos < 2^42, so the product fits in
            // u128, and the quotient is below unit_nanos, so it fits in u64.
            let fraction_nanos = numerator * u128::from(unit_nanos) / denominator;
            let fraction_nanos = u64::try_from(fraction_nanos).map_err(|_| out_of_range())?;
            part = part.checked_add(fraction_nanos).ok_or_else(out_of_range)?;
        }
        total_nanos = total_nanos.checked_add(part).ok_or_else(out_of_range)?;
        rest = after;
    }
    Ok(Duration::from_nanos(total_nanos))
}

/// A duration as [`duration`] reads it back exactly: `0`, or each unit from
/// hours down to nanoseconds that is not zero, as in `1h2m3s4ms`.
pub(crate) fn format_duration(duration: Duration) -> String {
    // Hours from the whole seconds and the rest of the hour in nanoseconds:
    // both fit a u64, so no 128-bit formatting is linked.
    const UNITS: [(&str, u64); 5] = [
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let hours = duration.as_secs() / 3600;
    let mut nanos = duration.as_secs() % 3600 * 1_000_000_000 + u64::from(duration.subsec_nanos());
    if hours == 0 && nanos == 0 {
        return "0".to_owned();
    }
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    for (unit, unit_nanos) in UNITS {
        let count = nanos / unit_nanos;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            nanos %= unit_nanos;
        }
    }
    text
}

/// Splits off the leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    let len = text.bytes().take_while(u8::is_ascii_digit).count();
    text.split_at(len)
}

fn unit_nanos(unit: &str) -> Result<u64, Invalid> {
    match unit {
        "ns" => Ok(1),
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => Ok(1_000),
        "ms" => Ok(1_000_000),
        "s" => Ok(1_000_000_000),
        "m" => Ok(60 * 1_000_000_000),
        "h" => Ok(3_600 * 1_000_000_000),
        "" => Err(Invalid::new(
            "duration",
            "missing unit (ns, us, ms, s, m or h)",
        )),
        other => Err(Invalid::new(
            "duration",
            format!("unknown unit {other:?} (expected ns, us, ms, s, m or h)"),
        )),
    }
}

/// The CRI endpoint: `fd://`, `unix://PATH` or an absolute `PATH`; a path
/// comes back as `unix://PATH`.
pub(crate) fn runtime_endpoint(text: &str) -> Result<String, Invalid> {
    if text == "fd://" {
        return Ok(text.to_owned());
    }
    if text.starts_with("fd://") {
        return Err(Invalid::new(
            "endpoint",
            "named sockets are not supported; fd:// uses the first socket systemd passes",
        ));
    }
    unix_endpoint(text)
}

/// A unix socket endpoint, `unix://PATH` or an absolute `PATH`, returned as
/// `unix://PATH`.
pub(crate) fn unix_endpoint(text: &str) -> Result<String, Invalid> {
    const KIND: &str = "endpoint";
    let path = match text.strip_prefix("unix://") {
        Some(path) => path,
        None if text.starts_with('/') => text,
        None if text.contains("://") => {
            return Err(Invalid::new(KIND, "only unix:// endpoints are supported"));
        }
        None => {
            return Err(Invalid::new(
                KIND,
                "expected unix://PATH or an absolute path",
            ))
        }
    };
    if !path.starts_with('/') {
        return Err(Invalid::new(KIND, "the socket path must be absolute"));
    }
    if path.ends_with('/') {
        return Err(Invalid::new(KIND, "the socket path names a directory"));
    }
    if path.contains('\0') {
        return Err(Invalid::new(KIND, "the socket path contains a NUL byte"));
    }
    if path.len() > MAX_SOCKET_PATH_LEN {
        return Err(Invalid::new(
            KIND,
            format!("the socket path is longer than {MAX_SOCKET_PATH_LEN} bytes"),
        ));
    }
    Ok(format!("unix://{path}"))
}

/// An absolute directory path.
pub(crate) fn absolute_path(text: &str) -> Result<PathBuf, Invalid> {
    const KIND: &str = "path";
    if text.is_empty() {
        return Err(Invalid::new(KIND, "empty"));
    }
    if !text.starts_with('/') {
        return Err(Invalid::new(KIND, "must be absolute"));
    }
    if text.contains('\0') {
        return Err(Invalid::new(KIND, "contains a NUL byte"));
    }
    Ok(PathBuf::from(text))
}

/// A comma-separated list of absolute directory paths.
pub(crate) fn absolute_path_list(text: &str) -> Result<Vec<PathBuf>, Invalid> {
    text.split(',')
        .map(|entry| match entry {
            "" => Err(Invalid::new(
                "path",
                "empty entry in the comma-separated list",
            )),
            entry => absolute_path(entry),
        })
        .collect()
}

/// A group name or numeric ID; resolved later, when the socket is created.
pub(crate) fn group(text: &str) -> Result<String, Invalid> {
    const KIND: &str = "group";
    if text.is_empty() {
        return Err(Invalid::new(KIND, "empty"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/')
    {
        return Err(Invalid::new(
            KIND,
            "contains whitespace, a control character, ':' or '/'",
        ));
    }
    Ok(text.to_owned())
}

/// An image reference; the registry resolves it, this only refuses what can
/// never be one.
pub(crate) fn image(text: &str) -> Result<String, Invalid> {
    const KIND: &str = "image reference";
    if text.is_empty() {
        return Err(Invalid::new(KIND, "empty"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new(
            KIND,
            "contains whitespace or a control character",
        ));
    }
    Ok(text.to_owned())
}

/// One CIDR, or an IPv4 and an IPv6 CIDR separated by a comma.
pub(crate) fn cidrs(text: &str) -> Result<String, Invalid> {
    validate_pod_cidrs(text)
        .map(|()| text.to_owned())
        .map_err(|reason| Invalid::new("CIDR", reason))
}

/// An absolute cgroup path such as `/system.slice/docker.service`.
pub(crate) fn cgroup(text: &str) -> Result<String, Invalid> {
    const KIND: &str = "cgroup path";
    if !text.starts_with('/') {
        return Err(Invalid::new(
            KIND,
            "must be absolute, below the cgroup root",
        ));
    }
    if text.contains('\0') {
        return Err(Invalid::new(KIND, "contains a NUL byte"));
    }
    if text
        .split('/')
        .any(|component| component == "." || component == "..")
    {
        return Err(Invalid::new(KIND, "must not contain . or .. components"));
    }
    Ok(text.to_owned())
}

pub(crate) fn network_plugin(text: &str) -> Result<NetworkPlugin, Invalid> {
    match text {
        "cni" => Ok(NetworkPlugin::Cni),
        "none" => Ok(NetworkPlugin::None),
        _ => Err(Invalid::new("network plugin", "expected cni or none")),
    }
}

/// Linux interface names fit `IFNAMSIZ` (16 bytes) with their final NUL.
const MAX_BRIDGE_NAME_LEN: usize = 15;

/// `auto`, `auto:BRIDGE` or `off`. The bridge name is also the CNI
/// network's name, so it must be both a Linux interface name and a CNI
/// network name.
pub(crate) fn default_network(text: &str) -> Result<DefaultNetwork, Invalid> {
    const KIND: &str = "default network";
    match text.split_once(':') {
        None if text == "auto" => Ok(DefaultNetwork::Auto { bridge: None }),
        None if text == "off" => Ok(DefaultNetwork::Off),
        Some(("auto", bridge)) => {
            let mut bytes = bridge.bytes();
            let valid = bridge.len() <= MAX_BRIDGE_NAME_LEN
                && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if valid {
                Ok(DefaultNetwork::Auto {
                    bridge: Some(bridge.to_owned()),
                })
            } else {
                Err(Invalid::new(
                    KIND,
                    format!(
                        "bridge {bridge:?}: expected 1 to {MAX_BRIDGE_NAME_LEN} letters, digits, \
                         '_', '.' or '-', starting with a letter or digit"
                    ),
                ))
            }
        }
        _ => Err(Invalid::new(KIND, "expected auto, auto:BRIDGE or off")),
    }
}

pub(crate) fn hairpin_mode(text: &str) -> Result<HairpinMode, Invalid> {
    match text {
        "hairpin-veth" => Ok(HairpinMode::HairpinVeth),
        "promiscuous-bridge" | "promisc-bridge" => Ok(HairpinMode::PromiscuousBridge),
        "none" => Ok(HairpinMode::None),
        _ => Err(Invalid::new(
            "hairpin mode",
            "expected hairpin-veth, promiscuous-bridge or none",
        )),
    }
}

/// `IP` (port 0: any free port) or `IP:PORT`, IPv6 written `[IP]` or
/// `[IP]:PORT`; a bare IPv6 address without brackets is also accepted.
pub(crate) fn bind_addr(text: &str) -> Result<SocketAddr, Invalid> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip = text
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text);
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| Invalid::new("address", "expected IP or IP:PORT, with IPv6 in brackets"))
}

/// `IP:PORT`, IPv6 in brackets.
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, Invalid> {
    text.parse()
        .map_err(|_| Invalid::new("address", "expected IP:PORT, with IPv6 in brackets"))
}

pub(crate) fn oom_score_adj(text: &str) -> Result<i32, Invalid> {
    const KIND: &str = "score";
    let score: i32 = text
        .parse()
        .map_err(|err| Invalid::new(KIND, format!("{err}")))?;
    if !(-1000..=1000).contains(&score) {
        return Err(Invalid::new(KIND, "must be from -1000 to 1000"));
    }
    Ok(score)
}

/// The value of `--switch=VALUE`.
pub(crate) fn boolean(text: &str) -> Result<bool, Invalid> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Invalid::new("boolean", "expected true or false")),
    }
}

/// Level names as the `log` crate spells them, in any case; logrus's
/// `warning` is accepted too so that existing command lines keep working.
pub(crate) fn log_level(text: &str) -> Result<log::LevelFilter, Invalid> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Ok(log::LevelFilter::Error),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        _ => Err(Invalid::new(
            "log level",
            "expected error, warn, info, debug or trace",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason<T: std::fmt::Debug>(result: Result<T, Invalid>) -> String {
        match result {
            Ok(value) => panic!("accepted: {value:?}"),
            Err(invalid) => invalid.reason,
        }
    }

    #[test]
    fn durations_in_go_form_parse() {
        let cases = [
            ("0", Duration::ZERO),
            ("90s", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("500ms", Duration::from_millis(500)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0s", Duration::ZERO),
            ("1.0000000000000000000001s", Duration::from_secs(1)),
        ];
        for (text, expected) in cases {
            assert_eq!(duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn formatted_durations_read_back_exactly() {
        let cases = [
            (Duration::ZERO, "0"),
            (Duration::from_secs(4 * 3600), "4h"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(3_723_004), "1h2m3s4ms"),
            (Duration::from_nanos(1_001), "1us1ns"),
            (
                Duration::from_nanos(u64::MAX),
                "5124095h34m33s709ms551us615ns",
            ),
        ];
        for (value, text) in cases {
            assert_eq!(format_duration(value), text);
            assert_eq!(duration(text), Ok(value), "{text}");
        }
    }

    #[test]
    fn the_longest_duration_is_written_in_hours() {
        assert_eq!(
            format_duration(Duration::MAX),
            "5124095576030431h15s999ms999us999ns"
        );
    }

    #[test]
    fn durations_without_number_or_unit_are_refused() {
        assert!(reason(duration("")).contains("empty"));
        assert!(reason(duration("5")).contains("missing unit"));
        assert!(reason(duration("1h30")).contains("missing unit"));
        assert!(reason(duration("3d")).contains("unknown unit \"d\""));
        assert!(reason(duration("s")).contains("expected a number"));
        assert!(reason(duration(".s")).contains("expected a number"));
        assert!(reason(duration("-1s")).contains("negative"));
        assert!(reason(duration("1 s")).contains("unknown unit"));
    }

    #[test]
    fn durations_beyond_u64_nanoseconds_are_refused() {
        assert_eq!(
            duration("5000000h"),
            Ok(Duration::from_secs(5_000_000 * 3600))
        );
        assert!(reason(duration("6000000h")).contains("too large"));
        assert!(reason(duration("99999999999999999999ns")).contains("too large"));
        assert!(reason(duration("5000000h5000000h")).contains("too large"));
        assert!(reason(duration("5124095h34m33.8s")).contains("too large"));
    }

    #[test]
    fn runtime_endpoints_are_normalised_to_unix_urls() {
        assert_eq!(runtime_endpoint("fd://"), Ok("fd://".to_owned()));
        assert_eq!(
            runtime_endpoint("/run/x.sock"),
            Ok("unix:///run/x.sock".to_owned())
        );
        assert_eq!(
            runtime_endpoint("unix:///run/x.sock"),
            Ok("unix:///run/x.sock".to_owned())
        );
        assert!(reason(runtime_endpoint("fd://cri")).contains("named sockets"));
        assert!(reason(runtime_endpoint("tcp://127.0.0.1:1")).contains("only unix://"));
        assert!(reason(runtime_endpoint("unix://run/x.sock")).contains("absolute"));
        assert!(reason(runtime_endpoint("run/x.sock")).contains("absolute path"));
        assert!(reason(runtime_endpoint("unix:///run/")).contains("directory"));
        assert!(reason(runtime_endpoint("unix:///a\0b")).contains("NUL"));
        let longest = format!("/{}", "s".repeat(MAX_SOCKET_PATH_LEN - 1));
        assert!(runtime_endpoint(&longest).is_ok());
        assert!(reason(runtime_endpoint(&format!("{longest}s"))).contains("longer than 107"));
    }

    #[test]
    fn docker_endpoints_must_be_unix_sockets() {
        assert_eq!(
            unix_endpoint("/var/run/docker.sock"),
            Ok("unix:///var/run/docker.sock".into())
        );
        assert!(reason(unix_endpoint("tcp://127.0.0.1:2375")).contains("only unix://"));
        assert!(reason(unix_endpoint("fd://")).contains("only unix://"));
        assert!(reason(unix_endpoint("")).contains("absolute"));
    }

    #[test]
    fn paths_must_be_absolute_and_lists_have_no_empty_entries() {
        assert_eq!(absolute_path("/var/lib/x"), Ok(PathBuf::from("/var/lib/x")));
        assert!(reason(absolute_path("var/lib/x")).contains("absolute"));
        assert!(reason(absolute_path("")).contains("empty"));
        assert_eq!(
            absolute_path_list("/opt/cni/bin,/usr/lib/cni"),
            Ok(vec![
                PathBuf::from("/opt/cni/bin"),
                PathBuf::from("/usr/lib/cni")
            ])
        );
        assert!(reason(absolute_path_list("/a,,/b")).contains("empty entry"));
        assert!(reason(absolute_path_list("/a,")).contains("empty entry"));
        assert!(reason(absolute_path_list("/a,b")).contains("absolute"));
    }

    #[test]
    fn groups_and_images_refuse_whitespace() {
        assert_eq!(group("docker"), Ok("docker".to_owned()));
        assert_eq!(group("999"), Ok("999".to_owned()));
        assert!(group("").is_err() && group("a b").is_err() && group("a:b").is_err());
        assert_eq!(
            image("registry.k8s.io/pause:3.10"),
            Ok("registry.k8s.io/pause:3.10".into())
        );
        assert!(image("").is_err() && image("pause 3.10").is_err() && image("a\tb").is_err());
    }

    #[test]
    fn cidrs_are_checked_as_pod_cidrs() {
        let dual_stack = "10.244.0.0/16,fd00::/64";
        assert_eq!(cidrs(dual_stack), Ok(dual_stack.to_owned()));
        assert_eq!(
            cidrs("10.0.0.0/33").map_err(|invalid| invalid.kind),
            Err("CIDR")
        );
    }

    #[test]
    fn cgroups_are_absolute_without_dot_components() {
        assert_eq!(
            cgroup("/system.slice/docker.service"),
            Ok("/system.slice/docker.service".into())
        );
        assert!(cgroup("system.slice").is_err());
        assert!(cgroup("/a/../b").is_err());
        assert!(cgroup("/a/./b").is_err());
    }

    #[test]
    fn a_default_network_bridge_is_an_interface_and_a_network_name() {
        assert_eq!(
            default_network("auto:pods-0.a_b"),
            Ok(DefaultNetwork::Auto {
                bridge: Some("pods-0.a_b".to_owned())
            })
        );
        assert!(default_network("auto:abcdefghijklmno").is_ok());
        assert!(reason(default_network("auto:abcdefghijklmnop")).contains("1 to 15"));
        assert!(reason(default_network("auto:")).contains("1 to 15"));
        assert!(reason(default_network("auto:-x")).contains("starting with"));
        assert!(reason(default_network("auto:a/b")).contains("bridge \"a/b\""));
        assert!(reason(default_network("off:x")).contains("auto, auto:BRIDGE or off"));
    }

    #[test]
    fn enumerations_accept_their_names_and_aliases() {
        assert_eq!(network_plugin("cni"), Ok(NetworkPlugin::Cni));
        assert_eq!(network_plugin("none"), Ok(NetworkPlugin::None));
        assert!(network_plugin("kubenet").is_err());
        assert_eq!(hairpin_mode("hairpin-veth"), Ok(HairpinMode::HairpinVeth));
        assert_eq!(
            hairpin_mode("promiscuous-bridge"),
            Ok(HairpinMode::PromiscuousBridge)
        );
        assert_eq!(
            hairpin_mode("promisc-bridge"),
            Ok(HairpinMode::PromiscuousBridge)
        );
        assert_eq!(hairpin_mode("none"), Ok(HairpinMode::None));
        assert!(hairpin_mode("veth").is_err());
        assert_eq!(
            default_network("auto"),
            Ok(DefaultNetwork::Auto { bridge: None })
        );
        assert_eq!(default_network("off"), Ok(DefaultNetwork::Off));
        assert!(default_network("on").is_err());
        assert_eq!(log_level("WARNING"), Ok(log::LevelFilter::Warn));
        assert_eq!(log_level("trace"), Ok(log::LevelFilter::Trace));
        assert!(log_level("verbose").is_err());
        assert_eq!(boolean("true"), Ok(true));
        assert_eq!(boolean("false"), Ok(false));
        assert!(boolean("yes").is_err());
    }

    #[test]
    fn bind_addresses_take_an_ip_with_or_without_port() {
        let parse = |text: &str| bind_addr(text).map(|addr| addr.to_string());
        assert_eq!(parse("127.0.0.1"), Ok("127.0.0.1:0".to_owned()));
        assert_eq!(parse("127.0.0.1:10010"), Ok("127.0.0.1:10010".to_owned()));
        assert_eq!(parse("[::1]:10010"), Ok("[::1]:10010".to_owned()));
        assert_eq!(parse("[::1]"), Ok("[::1]:0".to_owned()));
        assert_eq!(parse("::1"), Ok("[::1]:0".to_owned()));
        assert_eq!(parse("0.0.0.0:0"), Ok("0.0.0.0:0".to_owned()));
        assert!(bind_addr("localhost:10010").is_err());
        assert!(bind_addr("[::1]:99999").is_err());
        assert!(bind_addr("127.0.0.1:").is_err());
        assert!(bind_addr("").is_err());
    }

    #[test]
    fn metrics_addresses_need_a_port() {
        assert_eq!(socket_addr("127.0.0.1:9100").map(|a| a.port()), Ok(9100));
        assert!(socket_addr("[::1]:9100").is_ok());
        assert!(socket_addr("127.0.0.1").is_err());
    }

    #[test]
    fn oom_scores_stay_within_the_kernel_range() {
        assert_eq!(oom_score_adj("-998"), Ok(-998));
        assert_eq!(oom_score_adj("-1000"), Ok(-1000));
        assert_eq!(oom_score_adj("1000"), Ok(1000));
        assert!(reason(oom_score_adj("1001")).contains("-1000 to 1000"));
        assert!(reason(oom_score_adj("-1001")).contains("-1000 to 1000"));
        assert!(reason(oom_score_adj("ten")).contains("invalid digit"));
    }
}
