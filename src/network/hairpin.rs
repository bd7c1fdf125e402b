//! `--hairpin-mode`: letting a pod reach itself through a service address
//! that a bridge sends back out of the port it came in on.
//!
//! - `hairpin-veth`: find the host end of the pod's veth and set
//!   `/sys/class/net/<host veth>/brport/hairpin_mode` to 1.
//! - `promiscuous-bridge`: set the bridge the host veth is enslaved to
//!   promiscuous.
//! - `none`: nothing.
//!
//! The host veth is found with netlink: inside the pod's namespace, the pod
//! interface's `IFLA_LINK` is its peer's index in the host namespace; on the
//! host, the link with that index whose own `IFLA_LINK` points back at the
//! pod interface is the one. Indexes repeat across namespaces, hence the
//! check both ways.
//!
//! Namespace, netlink and sysfs access sit behind [`LinkOps`] and an
//! injectable sysfs root so the policy here is tested without privileges.
//! This module does not create or delete interfaces; that is the CNI
//! plugins' work.

use std::fs;
use std::path::{Path, PathBuf};

use super::netlink::{self, Link};
use super::netns::run_in_netns;
use super::HairpinError;

/// `--hairpin-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HairpinMode {
    /// dockshim sets `hairpin_mode` on the host end of the pod's veth.
    HairpinVeth,
    /// The bridge is promiscuous; left to the CNI bridge plugin.
    PromiscuousBridge,
    /// Nothing is done.
    None,
}

impl HairpinMode {
    /// The flag value that selects this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            HairpinMode::HairpinVeth => "hairpin-veth",
            HairpinMode::PromiscuousBridge => "promiscuous-bridge",
            HairpinMode::None => "none",
        }
    }
}

/// Where sysfs is mounted on a normal host.
pub const SYSFS_ROOT: &str = "/sys";

/// The link operations hairpin setup needs.
pub trait LinkOps {
    /// The links of the network namespace at `netns`.
    fn links_in_netns(&self, netns: &Path) -> Result<Vec<Link>, HairpinError>;
    /// The links of dockshim's own network namespace.
    fn host_links(&self) -> Result<Vec<Link>, HairpinError>;
    /// Turns on the promiscuous flag of a host link.
    fn set_promiscuous(&self, link: &Link) -> Result<(), HairpinError>;
}

/// [`LinkOps`] on the running kernel: netlink, with the pod's namespace
/// entered on a throwaway thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLinks;

impl LinkOps for SystemLinks {
    fn links_in_netns(&self, netns: &Path) -> Result<Vec<Link>, HairpinError> {
        run_in_netns(netns, netlink::dump_links)
            .map_err(HairpinError::Netns)?
            .map_err(HairpinError::Netlink)
    }

    fn host_links(&self) -> Result<Vec<Link>, HairpinError> {
        netlink::dump_links().map_err(HairpinError::Netlink)
    }

    fn set_promiscuous(&self, link: &Link) -> Result<(), HairpinError> {
        netlink::set_promiscuous(link.index, true).map_err(HairpinError::Netlink)
    }
}

/// Applies `--hairpin-mode` to pods.
#[derive(Debug, Clone)]
pub struct Hairpin<L: LinkOps = SystemLinks> {
    links: L,
    sysfs_root: PathBuf,
}

impl Hairpin<SystemLinks> {
    /// Hairpin setup on this host.
    pub fn system() -> Hairpin<SystemLinks> {
        Hairpin::new(SystemLinks, PathBuf::from(SYSFS_ROOT))
    }
}

impl<L: LinkOps> Hairpin<L> {
    pub fn new(links: L, sysfs_root: PathBuf) -> Hairpin<L> {
        Hairpin { links, sysfs_root }
    }

    /// Applies `mode` to the pod whose interface `ifname` lives in the
    /// network namespace at `netns`.
    pub fn configure(
        &self,
        mode: HairpinMode,
        netns: &Path,
        ifname: &str,
    ) -> Result<(), HairpinError> {
        match mode {
            HairpinMode::None => Ok(()),
            HairpinMode::HairpinVeth => {
                let veth = self.host_veth(netns, ifname)?;
                self.set_hairpin_veth(&veth)
            }
            HairpinMode::PromiscuousBridge => {
                let (veth, host_links) = self.host_veth_and_links(netns, ifname)?;
                let bridge = veth
                    .master
                    .and_then(|master| host_links.iter().find(|l| l.index == master))
                    .ok_or_else(|| HairpinError::NotOnBridge {
                        veth: veth.name.clone(),
                    })?;
                self.links.set_promiscuous(bridge)
            }
        }
    }

    /// The host end of the veth whose pod end is `ifname` in `netns`.
    pub fn host_veth(&self, netns: &Path, ifname: &str) -> Result<Link, HairpinError> {
        self.host_veth_and_links(netns, ifname)
            .map(|(veth, _)| veth)
    }

    fn host_veth_and_links(
        &self,
        netns: &Path,
        ifname: &str,
    ) -> Result<(Link, Vec<Link>), HairpinError> {
        let pod_links = self.links.links_in_netns(netns)?;
        let pod_if = pod_links.iter().find(|l| l.name == ifname).ok_or_else(|| {
            HairpinError::NoInterface {
                ifname: ifname.to_owned(),
                netns: netns.to_path_buf(),
            }
        })?;
        let peer_index = match (pod_if.link, pod_if.link_netnsid) {
            (Some(peer), Some(_)) => peer,
            _ => {
                return Err(HairpinError::NoPeer {
                    ifname: ifname.to_owned(),
                })
            }
        };
        let host_links = self.links.host_links()?;
        let veth = host_links
            .iter()
            .find(|l| l.index == peer_index && l.link == Some(pod_if.index))
            .cloned()
            .ok_or_else(|| HairpinError::PeerNotOnHost {
                ifname: ifname.to_owned(),
                peer_index,
            })?;
        Ok((veth, host_links))
    }

    fn set_hairpin_veth(&self, veth: &Link) -> Result<(), HairpinError> {
        let dir = self.sysfs_root.join("class/net").join(&veth.name);
        self.check_sysfs_index(&dir, veth.index)?;
        let brport = dir.join("brport");
        if !brport.is_dir() {
            return Err(HairpinError::NotOnBridge {
                veth: veth.name.clone(),
            });
        }
        let path = brport.join("hairpin_mode");
        fs::write(&path, b"1").map_err(|source| HairpinError::Sysfs { path, source })
    }

    /// Makes sure the sysfs directory describes the link we found, not a
    /// namesake in whatever namespace sysfs was mounted in.
    fn check_sysfs_index(&self, dir: &Path, expected: u32) -> Result<(), HairpinError> {
        let path = dir.join("ifindex");
        let text = fs::read_to_string(&path).map_err(|source| HairpinError::Sysfs {
            path: path.clone(),
            source,
        })?;
        if text.trim().parse::<u32>().ok() != Some(expected) {
            return Err(HairpinError::SysfsMismatch { path, expected });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            flags: 0,
            link: None,
            link_netnsid: None,
            master: None,
        }
    }

    /// Links as a pod on a bridge sees them: eth0 (3) in the pod, its peer
    /// veth (7) on the host enslaved to bridge cni0 (5). Another host
    /// interface also has index 3 — indexes repeat across namespaces.
    struct FakeLinks {
        pod: Vec<Link>,
        host: Vec<Link>,
        promiscuous: RefCell<Vec<u32>>,
    }

    impl FakeLinks {
        fn bridged() -> FakeLinks {
            let eth0 = Link {
                link: Some(7),
                link_netnsid: Some(0),
                ..link(3, "eth0")
            };
            let veth = Link {
                link: Some(3),
                link_netnsid: Some(1),
                master: Some(5),
                ..link(7, "vethabc")
            };
            FakeLinks {
                pod: vec![link(1, "lo"), eth0],
                host: vec![link(1, "lo"), link(3, "docker0"), link(5, "cni0"), veth],
                promiscuous: RefCell::new(Vec::new()),
            }
        }
    }

    impl LinkOps for FakeLinks {
        fn links_in_netns(&self, _netns: &Path) -> Result<Vec<Link>, HairpinError> {
            Ok(self.pod.clone())
        }

        fn host_links(&self) -> Result<Vec<Link>, HairpinError> {
            Ok(self.host.clone())
        }

        fn set_promiscuous(&self, link: &Link) -> Result<(), HairpinError> {
            self.promiscuous.borrow_mut().push(link.index);
            Ok(())
        }
    }

    /// A sysfs tree with `vethabc` (index 7), a bridge port unless
    /// `bridged` is false.
    fn sysfs(bridged: bool, ifindex: u32) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("class/net/vethabc");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("ifindex"), format!("{ifindex}\n")).unwrap();
        if bridged {
            fs::create_dir(dir.join("brport")).unwrap();
            fs::write(dir.join("brport/hairpin_mode"), "0\n").unwrap();
        }
        root
    }

    const NETNS: &str = "/proc/42/ns/net";

    #[test]
    fn hairpin_veth_writes_one_to_the_host_veths_brport() {
        let root = sysfs(true, 7);
        let hairpin = Hairpin::new(FakeLinks::bridged(), root.path().to_path_buf());
        hairpin
            .configure(HairpinMode::HairpinVeth, Path::new(NETNS), "eth0")
            .unwrap();
        let mode = fs::read_to_string(root.path().join("class/net/vethabc/brport/hairpin_mode"));
        assert_eq!(mode.unwrap(), "1");
    }

    #[test]
    fn host_veth_is_the_peer_that_points_back() {
        let hairpin = Hairpin::new(FakeLinks::bridged(), PathBuf::from("/nonexistent"));
        let veth = hairpin.host_veth(Path::new(NETNS), "eth0").unwrap();
        assert_eq!(veth.name, "vethabc");
    }

    #[test]
    fn veth_without_brport_is_not_on_a_bridge() {
        let root = sysfs(false, 7);
        let hairpin = Hairpin::new(FakeLinks::bridged(), root.path().to_path_buf());
        let err = hairpin
            .configure(HairpinMode::HairpinVeth, Path::new(NETNS), "eth0")
            .unwrap_err();
        assert!(matches!(err, HairpinError::NotOnBridge { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("vethabc is not attached to a bridge"));
    }

    #[test]
    fn sysfs_of_another_namespace_is_detected() {
        let root = sysfs(true, 12);
        let hairpin = Hairpin::new(FakeLinks::bridged(), root.path().to_path_buf());
        let err = hairpin
            .configure(HairpinMode::HairpinVeth, Path::new(NETNS), "eth0")
            .unwrap_err();
        assert!(matches!(err, HairpinError::SysfsMismatch { .. }), "{err}");
        let mode = fs::read_to_string(root.path().join("class/net/vethabc/brport/hairpin_mode"));
        assert_eq!(mode.unwrap(), "0\n");
    }

    #[test]
    fn missing_pod_interface_is_reported() {
        let hairpin = Hairpin::new(FakeLinks::bridged(), PathBuf::from("/nonexistent"));
        let err = hairpin
            .configure(HairpinMode::HairpinVeth, Path::new(NETNS), "net1")
            .unwrap_err();
        assert!(err.to_string().contains("no interface net1"), "{err}");
    }

    #[test]
    fn interface_with_a_peer_in_its_own_namespace_is_not_a_host_veth() {
        let mut links = FakeLinks::bridged();
        links.pod[1].link_netnsid = None;
        let hairpin = Hairpin::new(links, PathBuf::from("/nonexistent"));
        let err = hairpin.host_veth(Path::new(NETNS), "eth0").unwrap_err();
        assert!(matches!(err, HairpinError::NoPeer { .. }), "{err}");
    }

    #[test]
    fn host_link_with_the_index_but_another_peer_is_not_taken() {
        let mut links = FakeLinks::bridged();
        links.host[3].link = Some(9);
        let hairpin = Hairpin::new(links, PathBuf::from("/nonexistent"));
        let err = hairpin.host_veth(Path::new(NETNS), "eth0").unwrap_err();
        assert!(
            matches!(err, HairpinError::PeerNotOnHost { peer_index: 7, .. }),
            "{err}"
        );
    }

    #[test]
    fn promiscuous_bridge_sets_the_veths_master() {
        let hairpin = Hairpin::new(FakeLinks::bridged(), PathBuf::from("/nonexistent"));
        hairpin
            .configure(HairpinMode::PromiscuousBridge, Path::new(NETNS), "eth0")
            .unwrap();
        assert_eq!(*hairpin.links.promiscuous.borrow(), [5]);
    }

    #[test]
    fn promiscuous_bridge_without_a_master_is_not_on_a_bridge() {
        let mut links = FakeLinks::bridged();
        links.host[3].master = None;
        let hairpin = Hairpin::new(links, PathBuf::from("/nonexistent"));
        let err = hairpin
            .configure(HairpinMode::PromiscuousBridge, Path::new(NETNS), "eth0")
            .unwrap_err();
        assert!(matches!(err, HairpinError::NotOnBridge { .. }), "{err}");
    }

    #[test]
    fn mode_none_touches_nothing() {
        struct Untouchable;
        impl LinkOps for Untouchable {
            fn links_in_netns(&self, _: &Path) -> Result<Vec<Link>, HairpinError> {
                panic!("listed pod links")
            }
            fn host_links(&self) -> Result<Vec<Link>, HairpinError> {
                panic!("listed host links")
            }
            fn set_promiscuous(&self, _: &Link) -> Result<(), HairpinError> {
                panic!("set promiscuous")
            }
        }
        let hairpin = Hairpin::new(Untouchable, PathBuf::from("/nonexistent"));
        hairpin
            .configure(HairpinMode::None, Path::new(NETNS), "eth0")
            .unwrap();
    }
}
