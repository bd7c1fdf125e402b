//! The built-in default network: the configuration list pods join while
//! `--cni-conf-dir` holds no configuration file (`--default-network=auto`),
//! made from the node's pod CIDR.
//!
//! It lives in memory and is never written into `--cni-conf-dir`. That
//! directory belongs to the operator and to the tools that manage it (a
//! network add-on writes its own file there, and the first file in lexical
//! order wins): a file of ours would be a configuration like theirs, winning
//! or losing by its name, outliving the empty directory that was its only
//! reason to exist, and needing a marker to be told apart from theirs on
//! the next start. In memory, it cannot override anything, it is out of
//! use as soon as a file appears, it follows the pod CIDR when
//! UpdateRuntimeConfig changes it, and dockshim needs no write access to
//! `/etc`.
//!
//! The list is bridge (the pods' gateway, masquerading their traffic to
//! other networks, hairpin mode so a pod reaches itself through a port
//! mapping) with host-local addresses, then firewall, because dockerd sets
//! the `FORWARD` policy to `DROP` and would otherwise drop everything pods
//! send beyond the host, then portmap for host ports. Loopback is not in
//! the list: `CniRunner` brings up every pod's loopback itself. The bridge
//! name is also the network's name, so a second dockshim on another bridge
//! has its own host-local reservations (`/var/lib/cni/networks/NAME`),
//! rule comments and cached results.
//!
//! [`NetworkSource`] decides when it is used: only while the configuration
//! directory that `cni_config` reads holds no file at all, and only once its
//! plugins are installed.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::cni_config::{
    display_dirs, find_plugin, load_default, CniNetwork, CniPlugin, NetworkOrigin,
};
use super::CniConfigError;

/// `--default-network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultNetwork {
    /// Nothing: NetworkReady stays false until a configuration appears.
    Off,
    /// The built-in bridge network; `bridge` names its bridge and the
    /// network, `None` leaving the name to the network module.
    Auto { bridge: Option<String> },
}

impl DefaultNetwork {
    /// The flag value that selects this setting.
    pub fn flag_value(&self) -> String {
        match self {
            DefaultNetwork::Off => "off".to_owned(),
            DefaultNetwork::Auto { bridge: None } => "auto".to_owned(),
            DefaultNetwork::Auto {
                bridge: Some(bridge),
            } => format!("auto:{bridge}"),
        }
    }
}

/// The bridge, and the network, when `--default-network` names none.
pub const DEFAULT_BRIDGE: &str = "dockshim0";

/// The subnet pods get addresses from before any pod CIDR is known. It is
/// the default of no container or cluster network we know of, so a node
/// that already runs one keeps working: Docker's own pools (172.17.0.0/16
/// to 172.31.0.0/16, 192.168.0.0/16), podman's and containerd's example
/// (10.88.0.0/16, then 10.89.0.0/16 for podman's further networks),
/// CRI-O's (10.85.0.0/16), flannel's and most kubeadm guides'
/// (10.244.0.0/16), Calico's (192.168.0.0/16), k3s's (10.42.0.0/16,
/// 10.43.0.0/16) and the kubeadm Service range (10.96.0.0/12). A /16 is
/// far more addresses than one node runs pods.
pub const DEFAULT_SUBNET: &str = "10.86.0.0/16";

/// Every plugin the network runs, IPAM included; all must be installed.
pub const PLUGINS: [&str; 4] = ["bridge", "host-local", "firewall", "portmap"];

/// The CNI version of the list; Debian 12's plugins (1.1.1) speak it.
const CNI_VERSION: &str = "1.0.0";

/// host-local needs a network address, the gateway, at least one pod
/// address and, for IPv4, a broadcast address.
const MIN_HOST_BITS: u8 = 2;

/// The built-in network on one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltInNetwork {
    bridge: String,
}

impl BuiltInNetwork {
    /// The network on `bridge`, or on [`DEFAULT_BRIDGE`].
    pub fn new(bridge: Option<&str>) -> BuiltInNetwork {
        BuiltInNetwork {
            bridge: bridge.unwrap_or(DEFAULT_BRIDGE).to_owned(),
        }
    }

    /// The network's name, which is also its bridge's.
    pub fn name(&self) -> &str {
        &self.bridge
    }

    /// The configuration for pods addressed from `pod_cidr` (one CIDR, or
    /// an IPv4 and an IPv6 one separated by a comma), else from
    /// [`DEFAULT_SUBNET`].
    pub fn network(&self, pod_cidr: Option<&str>) -> Result<CniNetwork, String> {
        let subnets = subnets(pod_cidr.unwrap_or(DEFAULT_SUBNET))?;
        let ranges: Vec<Value> = subnets.iter().map(|s| json!([{ "subnet": s }])).collect();
        let routes: Vec<Value> = subnets
            .iter()
            .map(|s| match s.contains(':') {
                true => json!({ "dst": "::/0" }),
                false => json!({ "dst": "0.0.0.0/0" }),
            })
            .collect();
        let config = json!({
            "cniVersion": CNI_VERSION,
            "name": self.bridge,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": ranges,
                        "routes": routes,
                    },
                },
                { "type": "firewall" },
                { "type": "portmap", "capabilities": { "portMappings": true } },
            ],
        });
        let plugin = |plugin_type: &str| CniPlugin {
            plugin_type: plugin_type.to_owned(),
            capabilities: BTreeMap::new(),
        };
        let mut portmap = plugin("portmap");
        portmap.capabilities.insert("portMappings".to_owned(), true);
        Ok(CniNetwork {
            origin: NetworkOrigin::BuiltIn { subnets },
            name: self.bridge.clone(),
            cni_version: CNI_VERSION.to_owned(),
            plugins: vec![plugin("bridge"), plugin("firewall"), portmap],
            config,
        })
    }
}

/// Checks a pod CIDR list as `--pod-cidr` and UpdateRuntimeConfig take it:
/// one CIDR, or an IPv4 and an IPv6 one separated by a comma.
pub fn validate_pod_cidrs(cidrs: &str) -> Result<(), String> {
    let families = cidrs
        .split(',')
        .map(|cidr| parse_cidr(cidr).map(|(ip, _)| ip.is_ipv4()))
        .collect::<Result<Vec<bool>, String>>()?;
    match families.as_slice() {
        [_] | [true, false] | [false, true] => Ok(()),
        [_, _] => Err("a dual-stack pair needs one IPv4 and one IPv6 CIDR".to_owned()),
        _ => Err("at most two CIDRs, one IPv4 and one IPv6".to_owned()),
    }
}

/// The address and prefix length of `cidr`; a sign before the prefix,
/// which Rust's integer parser would take, is refused.
fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), String> {
    let (ip, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not of the form IP/PREFIX"))?;
    let ip: IpAddr = ip.parse().map_err(|err| format!("{cidr:?}: {err}"))?;
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.parse() {
        Ok(length) if length <= bits && !prefix.starts_with('+') => Ok((ip, length)),
        _ => Err(format!("{cidr:?}: the prefix length must be 0 to {bits}")),
    }
}

/// The subnets of `cidrs` with any host bits cleared, since host-local
/// refuses a subnet written with them (`10.86.3.7/16`).
fn subnets(cidrs: &str) -> Result<Vec<String>, String> {
    cidrs.split(',').map(subnet).collect()
}

fn subnet(cidr: &str) -> Result<String, String> {
    let (ip, prefix) = parse_cidr(cidr).map_err(|reason| format!("pod CIDR {reason}"))?;
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    if bits - prefix < MIN_HOST_BITS {
        return Err(format!(
            "pod CIDR {cidr:?} is too small to give pods addresses (at most /{})",
            bits - MIN_HOST_BITS
        ));
    }
    let network: IpAddr = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    Ok(format!("{network}/{prefix}"))
}

/// How the pods' network is chosen: the directory's configuration, else
/// the built-in default network when it is served.
#[derive(Debug, Clone)]
pub struct NetworkSource {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    /// Known even when not served, so that pods started on it while it
    /// was are still torn down by it.
    built_in: BuiltInNetwork,
    serve_built_in: bool,
}

impl NetworkSource {
    pub fn new(
        conf_dir: PathBuf,
        bin_dirs: Vec<PathBuf>,
        default_network: &DefaultNetwork,
    ) -> NetworkSource {
        let (built_in, serve_built_in) = match default_network {
            DefaultNetwork::Off => (BuiltInNetwork::new(None), false),
            DefaultNetwork::Auto { bridge } => (BuiltInNetwork::new(bridge.as_deref()), true),
        };
        NetworkSource {
            conf_dir,
            bin_dirs,
            built_in,
            serve_built_in,
        }
    }

    /// The network new pods join; `pod_cidr` is the node's, which the
    /// built-in network hands addresses out of.
    pub fn current(&self, pod_cidr: Option<&str>) -> Result<CniNetwork, CniConfigError> {
        match load_default(&self.conf_dir, &self.bin_dirs) {
            Err(CniConfigError::NoUsableConfig { dir, skipped })
                if skipped.is_empty() && self.serve_built_in =>
            {
                self.built_in(dir, pod_cidr)
            }
            Err(CniConfigError::ReadDir { dir, source })
                if source.kind() == io::ErrorKind::NotFound && self.serve_built_in =>
            {
                self.built_in(dir, pod_cidr)
            }
            found => found,
        }
    }

    /// The network to tear down a pod with that was attached to the
    /// network named `attached_to` (`None`: not known). A pod of the
    /// built-in network is torn down by it even after a file took over,
    /// unless that file's network has the same name; a pod of a file's
    /// network never is.
    pub fn for_teardown(&self, attached_to: Option<&str>) -> Result<CniNetwork, CniConfigError> {
        let Some(name) = attached_to else {
            return self.current(None);
        };
        let found = load_default(&self.conf_dir, &self.bin_dirs);
        if name != self.built_in.name() {
            return found;
        }
        match found {
            Ok(network) if network.name == name => Ok(network),
            // DEL does not depend on the subnet: host-local releases the
            // pod's address by container ID, and the bridge, firewall and
            // portmap plugins find what to remove by names and addresses.
            _ => self
                .built_in
                .network(None)
                .map_err(|reason| CniConfigError::BuiltIn {
                    dir: self.conf_dir.clone(),
                    reason,
                }),
        }
    }

    fn built_in(&self, dir: PathBuf, pod_cidr: Option<&str>) -> Result<CniNetwork, CniConfigError> {
        let missing = PLUGINS
            .iter()
            .find(|plugin| find_plugin(plugin, &self.bin_dirs).is_none());
        let network = match missing {
            Some(plugin) => Err(format!(
                "plugin {plugin:?} is not an executable in {}",
                display_dirs(&self.bin_dirs)
            )),
            None => self.built_in.network(pod_cidr),
        };
        network.map_err(|reason| CniConfigError::BuiltIn { dir, reason })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ranges(network: &CniNetwork) -> &Value {
        &network.config["plugins"][0]["ipam"]["ranges"]
    }

    #[test]
    fn without_a_pod_cidr_pods_get_the_default_subnet_on_dockshim0() {
        let network = BuiltInNetwork::new(None).network(None).unwrap();
        assert_eq!(network.name, "dockshim0");
        assert_eq!(network.config["name"], "dockshim0");
        assert_eq!(network.config["plugins"][0]["bridge"], "dockshim0");
        assert_eq!(ranges(&network), &json!([[{ "subnet": "10.86.0.0/16" }]]));
        assert_eq!(
            network.origin,
            NetworkOrigin::BuiltIn {
                subnets: vec!["10.86.0.0/16".to_owned()]
            }
        );
        assert_eq!(
            network.origin.to_string(),
            "built-in default (subnet 10.86.0.0/16)"
        );
    }

    #[test]
    fn the_bridge_is_the_gateway_masquerades_and_hairpins() {
        let network = BuiltInNetwork::new(None).network(None).unwrap();
        let bridge = &network.config["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["routes"], json!([{ "dst": "0.0.0.0/0" }]));
    }

    #[test]
    fn firewall_and_portmap_follow_the_bridge_and_portmap_takes_port_mappings() {
        let network = BuiltInNetwork::new(None).network(None).unwrap();
        let types: Vec<&str> = network.config["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bridge", "firewall", "portmap"]);
        let described: Vec<&str> = network
            .plugins
            .iter()
            .map(|p| p.plugin_type.as_str())
            .collect();
        assert_eq!(described, types);
        assert_eq!(
            network.plugins[2].capabilities.get("portMappings"),
            Some(&true)
        );
        assert!(!network.needs_pod_cidr());
    }

    #[test]
    fn the_pod_cidr_replaces_the_default_subnet() {
        let network = BuiltInNetwork::new(None)
            .network(Some("10.244.3.0/24"))
            .unwrap();
        assert_eq!(ranges(&network), &json!([[{ "subnet": "10.244.3.0/24" }]]));
    }

    #[test]
    fn a_dual_stack_pod_cidr_gives_a_range_set_and_a_default_route_per_family() {
        let network = BuiltInNetwork::new(None)
            .network(Some("10.244.3.0/24,fd00:10:244:3::/64"))
            .unwrap();
        assert_eq!(
            ranges(&network),
            &json!([[{ "subnet": "10.244.3.0/24" }], [{ "subnet": "fd00:10:244:3::/64" }]])
        );
        assert_eq!(
            network.config["plugins"][0]["ipam"]["routes"],
            json!([{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }])
        );
        assert_eq!(
            network.origin.to_string(),
            "built-in default (subnet 10.244.3.0/24, fd00:10:244:3::/64)"
        );
    }

    #[test]
    fn host_bits_of_the_pod_cidr_are_cleared() {
        assert_eq!(subnet("10.244.3.7/16").unwrap(), "10.244.0.0/16");
        assert_eq!(subnet("fd00::1:2/112").unwrap(), "fd00::1:0/112");
        assert_eq!(subnet("10.1.2.3/0").unwrap(), "0.0.0.0/0");
    }

    #[test]
    fn a_pod_cidr_without_room_for_pods_is_refused() {
        assert!(subnet("10.0.0.0/30").is_ok());
        assert!(subnet("10.0.0.0/31").unwrap_err().contains("at most /30"));
        assert!(subnet("fd00::/127").unwrap_err().contains("at most /126"));
        assert!(subnet("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(subnet("10.0.0.0").unwrap_err().contains("IP/PREFIX"));
        assert!(BuiltInNetwork::new(None)
            .network(Some("10.0.0.0/32"))
            .is_err());
    }

    #[test]
    fn a_named_bridge_names_the_network_too() {
        let network = BuiltInNetwork::new(Some("pods7")).network(None).unwrap();
        assert_eq!(network.name, "pods7");
        assert_eq!(network.config["plugins"][0]["bridge"], "pods7");
    }

    #[test]
    fn pod_cidrs_are_one_cidr_or_a_dual_stack_pair() {
        assert_eq!(validate_pod_cidrs("10.244.0.0/16"), Ok(()));
        assert_eq!(validate_pod_cidrs("fd00::/64"), Ok(()));
        assert_eq!(validate_pod_cidrs("10.244.0.0/16,fd00::/64"), Ok(()));
        let reason = |cidrs: &str| validate_pod_cidrs(cidrs).unwrap_err();
        assert!(reason("10.0.0.0/8,10.1.0.0/16").contains("one IPv4 and one IPv6"));
        assert!(reason("10.0.0.0/8,fd00::/64,fd01::/64").contains("at most two"));
        assert!(reason("10.0.0.0/33").contains("0 to 32"));
        assert!(reason("fd00::/129").contains("0 to 128"));
        assert!(reason("10.0.0.0/+8").contains("0 to 32"));
        assert!(reason("10.0.0.0").contains("IP/PREFIX"));
        assert!(reason("10.0.0/8").contains("invalid IP address"));
        assert!(reason("").contains("IP/PREFIX"));
    }
}
