//! Reading a CNI result (spec versions 0.3.x, 0.4.0 and 1.0.0, plus the
//! `ip4`/`ip6` form before 0.3.0) into the pod's IPs.
//!
//! It owns the choice of primary and additional IP; it never runs a plugin.

use std::net::IpAddr;

use serde_json::Value;

use super::CniError;
use crate::codec::json::{Fields, FromJson};

/// The pod's addresses from an ADD result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps {
    /// IPv4 if the pod has one, else IPv6; `None` if the result holds no
    /// address for the pod's interface.
    pub primary: Option<IpAddr>,
    /// The other family's address, on a dual-stack node only.
    pub additional: Vec<IpAddr>,
}

pub(super) fn parse_result(plugin: &str, output: &[u8]) -> Result<Value, CniError> {
    let bad = |reason: String| CniError::BadResult {
        plugin: plugin.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(output).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("not a JSON object".to_owned()));
    }
    Ok(value)
}

struct ResultInterface {
    sandbox: String,
}

impl FromJson for ResultInterface {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ResultInterface {
            sandbox: fields.field("sandbox"),
        })
    }
}

struct ResultIp {
    address: String,
    interface: Option<usize>,
}

impl FromJson for ResultIp {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(ResultIp {
            address: fields.required("address"),
            interface: fields.opt("interface"),
        })
    }
}

/// The `ip4`/`ip6` entries of results before version 0.3.0.
struct LegacyIp {
    ip: String,
}

impl FromJson for LegacyIp {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(LegacyIp {
            ip: fields.required("ip"),
        })
    }
}

struct CniResult {
    interfaces: Vec<ResultInterface>,
    ips: Vec<ResultIp>,
    ip4: Option<LegacyIp>,
    ip6: Option<LegacyIp>,
}

impl FromJson for CniResult {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(CniResult {
            interfaces: fields.field("interfaces"),
            ips: fields.field("ips"),
            ip4: fields.opt("ip4"),
            ip6: fields.opt("ip6"),
        })
    }
}

/// The pod's addresses in a final ADD result: those on an interface inside
/// the sandbox, or without an interface index.
pub(super) fn pod_ips(result: &Value, dual_stack: bool) -> Result<PodIps, CniError> {
    let bad = |reason: String| CniError::BadResult {
        plugin: "(final result)".to_owned(),
        reason,
    };
    let parsed = CniResult::from_json(result).map_err(|e| bad(e.to_string()))?;
    let in_sandbox = |ip: &&ResultIp| match ip.interface {
        None => true,
        Some(index) => parsed
            .interfaces
            .get(index)
            .is_some_and(|interface| !interface.sandbox.is_empty()),
    };
    let addresses = parsed
        .ips
        .iter()
        .filter(in_sandbox)
        .map(|ip| ip.address.as_str())
        .chain(parsed.ip4.iter().map(|ip| ip.ip.as_str()))
        .chain(parsed.ip6.iter().map(|ip| ip.ip.as_str()));
    let mut ipv4 = None;
    let mut ipv6 = None;
    for cidr in addresses {
        let address = cidr.split_once('/').map_or(cidr, |(address, _)| address);
        let ip: IpAddr = address
            .parse()
            .map_err(|_| bad(format!("address {cidr:?} is not IP/PREFIX")))?;
        let slot = if ip.is_ipv4() { &mut ipv4 } else { &mut ipv6 };
        slot.get_or_insert(ip);
    }
    Ok(match (ipv4, ipv6) {
        (Some(v4), Some(v6)) if dual_stack => PodIps {
            primary: Some(v4),
            additional: vec![v6],
        },
        (v4, v6) => PodIps {
            primary: v4.or(v6),
            additional: Vec::new(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_ips_come_from_sandbox_interfaces_only() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/proc/1/ns/net"}],
            "ips": [
                {"address": "10.88.0.1/24", "interface": 0},
                {"address": "fd00::9/64", "interface": 1},
                {"address": "10.88.0.9/24", "interface": 1}
            ]
        });
        let ips = pod_ips(&result, false).unwrap();
        assert_eq!(ips.primary, Some("10.88.0.9".parse().unwrap()));
        let ips = pod_ips(&result, true).unwrap();
        assert_eq!(ips.additional, ["fd00::9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn ipv6_only_pod_has_an_ipv6_primary() {
        let result =
            json!({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "fd00::3/64"}]});
        let ips = pod_ips(&result, true).unwrap();
        assert_eq!(ips.primary, Some("fd00::3".parse().unwrap()));
        assert!(ips.additional.is_empty());
    }

    #[test]
    fn an_address_without_its_field_or_on_a_negative_interface_is_a_bad_result() {
        for result in [
            json!({"ips": [{"interface": 0}]}),
            json!({"ips": [{"address": "10.88.0.9/24", "interface": -1}]}),
        ] {
            let err = pod_ips(&result, false).unwrap_err();
            assert!(matches!(err, CniError::BadResult { .. }), "{err}");
        }
    }

    #[test]
    fn pre_0_3_results_are_understood() {
        let result = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/16"}});
        assert_eq!(
            pod_ips(&result, false).unwrap().primary,
            Some("10.1.2.3".parse().unwrap())
        );
    }
}
