//! A pod with a network namespace of its own: dockshim started with a CNI
//! configuration of the test's own (Debian's bridge + host-local +
//! firewall + portmap plugins, on a private /24 and a bridge named for the
//! test), one sandbox run through it, and containers that join the
//! sandbox's namespaces as the kubelet's do. A drop guard force-removes
//! every container labelled with the test's run ID, the bridge, and the
//! iptables rules a pod that was never stopped leaves behind, so a failing
//! test leaves nothing. The configuration's pieces and the guard serve
//! the other tests on networks of their own too. Needs root.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};

use dockshim::api::v1 as cri;
use tempfile::TempDir;

use super::client::CriClient;
use super::fixture::{Dockshim, Options};
use super::pod::{self, RUN_LABEL};
use super::unique;

/// The pods' subnets are `10.212.<octet>.0/24`, apart from the other
/// network tests' `10.211.0.0/16`.
const SUBNET_PREFIX: &str = "10.212";

fn run(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program).args(args).output().ok()
}

/// The namespaces the kubelet asks for, for the sandbox and again for each
/// container, when the pod does not share its process namespace: the pod's
/// network and IPC, a process namespace per container.
fn pod_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..cri::NamespaceOption::default()
    }
}

/// Debian's bridge plugin on `bridge`, handing out addresses of `subnet`
/// by host-local, which keeps its reservations in `data_dir`; the bridge
/// is the pods' gateway, without masquerading or hairpin mode.
pub fn bridge_plugin(bridge: &str, subnet: &str, data_dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": false,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": data_dir.display().to_string(),
        }
    })
}

/// What follows the bridge plugin on a pod network: firewall (accepts the
/// pods' traffic despite Docker's FORWARD policy), then portmap.
pub fn chained_plugins() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"type": "firewall"}),
        serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
    ]
}

/// A network configuration list `name` of `plugins`, in order.
pub fn conflist(name: &str, plugins: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": plugins,
    })
}

/// Removes what a test's pod may leave on the host.
pub struct CniGuard {
    run_id: String,
    bridge: String,
    /// `dnat name: "<network>"` marks portmap's rules.
    network_name: String,
    /// The firewall plugin's rules name the pod's address.
    subnet_prefix: String,
}

impl CniGuard {
    /// A guard for the containers labelled `run_id`, the bridge `bridge`,
    /// the portmap rules of network `network_name` and the firewall rules
    /// naming addresses that start with `subnet_prefix`.
    pub fn new(
        run_id: String,
        bridge: String,
        network_name: String,
        subnet_prefix: String,
    ) -> CniGuard {
        CniGuard {
            run_id,
            bridge,
            network_name,
            subnet_prefix,
        }
    }

    fn remove_iptables_rules(&self) {
        // `-S` prints the comment's inner quotes escaped: `\"<network>\"`.
        let marker = format!("\\\"{}\\\"", self.network_name);
        let nat = run("iptables", &["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"])
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        for rule in nat
            .lines()
            .filter(|l| l.starts_with("-A") && l.contains(&marker))
        {
            let _ = run("sh", &["-c", &format!("iptables -t nat -D {}", &rule[3..])]);
            if let Some(chain) = rule.split_whitespace().last() {
                let _ = run("iptables", &["-t", "nat", "-F", chain]);
                let _ = run("iptables", &["-t", "nat", "-X", chain]);
            }
        }
        let filter = run("iptables", &["-S", "CNI-FORWARD"])
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        for rule in filter
            .lines()
            .filter(|l| l.starts_with("-A") && l.contains(&self.subnet_prefix))
        {
            let _ = run("sh", &["-c", &format!("iptables -D {}", &rule[3..])]);
        }
    }
}

impl Drop for CniGuard {
    fn drop(&mut self) {
        let filter = format!("label={RUN_LABEL}={}", self.run_id);
        if let Some(ids) = run("docker", &["ps", "-aq", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = run("docker", &["rm", "-f", "-v", id]);
            }
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        self.remove_iptables_rules();
    }
}

/// One test's dockshim, client and CNI-networked sandbox.
pub struct CniPod {
    /// Declared first: dropped (containers, bridge and rules removed)
    /// before dockshim stops.
    pub guard: CniGuard,
    pub dockshim: Dockshim,
    pub client: CriClient,
    /// The sandbox's log directory.
    pub logs: TempDir,
    /// host-local's reservations.
    pub ipam: TempDir,
    pub run_id: String,
    pub octet: u8,
    pub sandbox_id: String,
    pub sandbox_config: cri::PodSandboxConfig,
}

impl CniPod {
    /// Starts dockshim on a network of the test's own and runs the pod
    /// `name` on it; `extra_args` go to dockshim.
    pub async fn start(name: &str, extra_args: Vec<String>) -> CniPod {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the pod tests create containers and bridges: run them as root (tests/run.sh)"
        );
        let id = unique();
        let run_id = format!("{id:08x}");
        let bridge = format!("dshpod{:04x}", id & 0xffff);
        let octet = (id >> 16) as u8 % 250 + 1;
        let network_name = format!("dshpod-{run_id}");
        let ipam = tempfile::Builder::new()
            .prefix("dockshim-ipam")
            .tempdir()
            .unwrap();
        let subnet = format!("{SUBNET_PREFIX}.{octet}.0/24");
        let mut plugins = vec![bridge_plugin(&bridge, &subnet, ipam.path())];
        plugins.extend(chained_plugins());
        let conflist = conflist(&network_name, plugins);
        let guard = CniGuard::new(
            run_id.clone(),
            bridge,
            network_name,
            format!("{SUBNET_PREFIX}.{octet}."),
        );
        let dockshim = Dockshim::start_with(Options {
            cni_conflist: Some(conflist.to_string()),
            extra_args: pod::dockshim_args(extra_args),
            ..Options::default()
        });
        let client = dockshim.client().await;
        let logs = tempfile::Builder::new()
            .prefix("dockshim-container")
            .tempdir()
            .unwrap();
        let metadata = cri::PodSandboxMetadata {
            name: name.to_owned(),
            namespace: "e2e".to_owned(),
            uid: format!("uid-{run_id}-{name}"),
            attempt: 0,
        };
        let sandbox_config = cri::PodSandboxConfig {
            hostname: name.to_owned(),
            ..pod::sandbox_config(metadata, &run_id, logs.path(), pod_namespaces())
        };
        let sandbox_id = pod::run_sandbox(&client, &sandbox_config).await;
        CniPod {
            guard,
            dockshim,
            client,
            logs,
            ipam,
            run_id,
            octet,
            sandbox_id,
            sandbox_config,
        }
    }

    /// The pod's IPv4 address as PodSandboxStatus reports it.
    pub async fn ip(&self) -> Ipv4Addr {
        let status = self
            .client
            .pod_sandbox_status(&self.sandbox_id, false)
            .await
            .unwrap()
            .status
            .unwrap();
        let ip = status.network.unwrap().ip;
        ip.parse()
            .unwrap_or_else(|_| panic!("pod IP {ip:?} is not IPv4"))
    }

    /// Whether `ip` is one host-local hands out on this test's subnet.
    pub fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        let prefix: Vec<u8> = SUBNET_PREFIX
            .split('.')
            .map(|part| part.parse().unwrap())
            .chain([self.octet])
            .collect();
        ip.octets()[..3] == prefix[..] && ip.octets()[3] > 1
    }

    /// A container `name` of `image` running `command`, in the pod's
    /// namespaces, logging to `<name>.log`.
    pub fn config(&self, name: &str, image: &str, command: &[&str]) -> cri::ContainerConfig {
        pod::container_config(name, image, command, &self.run_id, pod_namespaces())
    }

    /// Creates and starts a container in the pod; returns its ID.
    pub async fn run(&self, config: cri::ContainerConfig) -> String {
        let id = self
            .client
            .create_container(&self.sandbox_id, config, self.sandbox_config.clone())
            .await
            .unwrap_or_else(|status| panic!("CreateContainer: {status:?}"));
        self.client
            .start_container(&id)
            .await
            .unwrap_or_else(|status| panic!("StartContainer: {status:?}"));
        id
    }

    /// Stops the pod's containers at once, as the kubelet does for a pod
    /// with no termination grace period (a container's first process
    /// ignores SIGTERM unless it handles it), then stops and removes the
    /// sandbox (CNI DEL, containers gone), and checks that host-local
    /// released the pod's address.
    pub async fn clean_up(&self) {
        let filter = cri::ContainerFilter {
            pod_sandbox_id: self.sandbox_id.clone(),
            ..cri::ContainerFilter::default()
        };
        for container in self.client.list_containers(Some(filter)).await.unwrap() {
            self.client.stop_container(&container.id, 0).await.unwrap();
        }
        pod::stop_and_remove_sandbox(&self.client, &self.sandbox_id).await;
        let reserved = std::fs::read_dir(self.ipam.path())
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|network| std::fs::read_dir(network.path()).into_iter().flatten())
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .parse::<Ipv4Addr>()
                    .is_ok()
            })
            .count();
        assert_eq!(reserved, 0, "the pod's address is still reserved");
    }
}
