//! The CNI runner, hairpin setup and namespace entry against Debian's real
//! CNI plugins (`/usr/lib/cni`): bridge + host-local + firewall + portmap on
//! a private subnet, pods being network namespaces the test creates with
//! `ip netns add`. Needs root, as `tests/run.sh` runs the suite.
//!
//! Every test has its own bridge (`dshtest<hex>`), subnet (`10.209.<n>.0/24`),
//! host-local data directory and namespaces; a drop guard deletes what the
//! test attached, then the namespaces and the bridge, also when it fails.
//! Traffic only flows between namespaces the test created. The firewall and
//! portmap plugins leave their shared top-level chains (`CNI-FORWARD`,
//! `CNI-HOSTPORT-*`) in place, as they do on any CNI node; each pod's own
//! rules are removed by DEL and the tests check that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::cni_pod::{bridge_plugin, chained_plugins, conflist};
use common::unique;
use dockshim::network::cni::{CniOptions, PortMapping};
use dockshim::network::cni_config::load_default;
use dockshim::network::hairpin::HairpinMode;
use dockshim::network::{
    run_in_netns, CniError, CniNetwork, CniRunner, Hairpin, PodAttachment, PodIps, RuntimeArgs,
};
use tempfile::TempDir;

/// Where Debian's containernetworking-plugins puts the plugins.
const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// Where `ip netns add` bind-mounts the namespaces it creates.
const NETNS_DIR: &str = "/run/netns";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    fn new() -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the CNI tests create namespaces and bridges: run them as root (tests/run.sh)"
        );
        let name = format!("dockshim-test-{:08x}", unique());
        run_ok("ip", &["netns", "add", &name]);
        Netns {
            path: Path::new(NETNS_DIR).join(&name),
            name,
        }
    }

    fn delete(&self) {
        if self.path.exists() {
            let _ = run("ip", &["netns", "del", &self.name]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A bridge network for one test: its configuration, the runner, and what
/// is attached; everything is torn down on drop.
struct TestNet {
    dir: TempDir,
    bridge: String,
    octet: u8,
    network: CniNetwork,
    runner: CniRunner,
    /// Pods ADDed and not yet DELeted, with the arguments DEL must repeat.
    attached: RefCell<Vec<(PodAttachment, RuntimeArgs)>>,
}

impl TestNet {
    /// `plugins` follow the bridge plugin in the list.
    fn new(plugins: &[serde_json::Value], extra_bin_dir: Option<&Path>) -> TestNet {
        let id = unique();
        let bridge = format!("dshtest{:04x}", id & 0xffff);
        let octet = (id >> 16) as u8 % 250 + 1;
        let dir = tempfile::Builder::new()
            .prefix("dockshim-cni")
            .tempdir()
            .unwrap();
        let conf_dir = dir.path().join("net.d");
        fs::create_dir(&conf_dir).unwrap();
        let subnet = format!("10.209.{octet}.0/24");
        let mut list = vec![bridge_plugin(&bridge, &subnet, &dir.path().join("ipam"))];
        list.extend_from_slice(plugins);
        let conflist = conflist(&format!("dshtest-{id:08x}"), list);
        fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).unwrap();
        let mut bin_dirs: Vec<PathBuf> = extra_bin_dir.map(Path::to_path_buf).into_iter().collect();
        bin_dirs.push(PathBuf::from(CNI_BIN_DIR));
        let network = load_default(&conf_dir, &bin_dirs).unwrap();
        let runner = CniRunner::with_processes(CniOptions {
            bin_dirs,
            cache_dir: dir.path().join("cache"),
            ipv6_dual_stack: false,
        });
        TestNet {
            dir,
            bridge,
            octet,
            network,
            runner,
            attached: RefCell::new(Vec::new()),
        }
    }

    /// bridge → firewall → portmap.
    fn standard() -> TestNet {
        TestNet::new(&chained_plugins(), None)
    }

    fn pod(&self, netns: &Netns) -> PodAttachment {
        PodAttachment {
            sandbox_id: format!("{:08x}{:08x}", unique(), unique()),
            namespace: "default".to_owned(),
            name: netns.name.clone(),
            uid: format!("uid-{:08x}", unique()),
            netns: Some(netns.path.clone()),
        }
    }

    fn add(&self, pod: &PodAttachment, args: &RuntimeArgs) -> Result<PodIps, CniError> {
        // Recorded first: a failed ADD has already rolled back, and a DEL
        // of a pod that holds nothing is harmless.
        self.attached.borrow_mut().push((pod.clone(), args.clone()));
        self.runner.add(&self.network, pod, args)
    }

    /// DEL with the arguments the ADD had: `portmap` only removes its
    /// rules when it is given the mappings again.
    fn del(&self, pod: &PodAttachment) -> Result<(), CniError> {
        let args = self
            .attached
            .borrow()
            .iter()
            .find(|(p, _)| p == pod)
            .map(|(_, args)| args.clone())
            .unwrap_or_default();
        let result = self.runner.del(&self.network, pod, &args);
        if result.is_ok() {
            self.attached.borrow_mut().retain(|(p, _)| p != pod);
        }
        result
    }

    /// Addresses host-local has handed out and not released.
    fn reservations(&self) -> Vec<IpAddr> {
        let dir = self.dir.path().join("ipam").join(&self.network.name);
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect()
    }

    /// The host ends of the veths on the bridge.
    fn bridge_ports(&self) -> Vec<String> {
        let dir = Path::new("/sys/class/net").join(&self.bridge).join("brif");
        let mut ports: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        ports.sort();
        ports
    }

    fn in_subnet(&self, ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [10, 209, self.octet])
    }

    fn cache_file(&self, pod: &PodAttachment) -> PathBuf {
        self.dir
            .path()
            .join("cache/results")
            .join(format!("{}-{}-eth0", self.network.name, pod.sandbox_id))
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for (pod, args) in self.attached.borrow().iter() {
            if let Err(err) = self.runner.del(&self.network, pod, args) {
                eprintln!("cleanup: {err}");
            }
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

fn primary_v4(ips: &PodIps) -> Ipv4Addr {
    match ips.primary {
        Some(IpAddr::V4(v4)) => v4,
        other => panic!("expected an IPv4 pod address, got {other:?}"),
    }
}

/// `ping` from inside `from`; busybox's when iputils is not installed.
fn ping(from: &Netns, to: Ipv4Addr) -> bool {
    let to = to.to_string();
    let has_ping = Command::new("ping").arg("-V").output().is_ok();
    let mut args = vec!["netns", "exec", &from.name];
    if !has_ping {
        args.push("busybox");
    }
    args.extend(["ping", "-c1", "-W2", &to]);
    run("ip", &args).status.success()
}

#[test]
fn two_pods_get_distinct_addresses_reach_each_other_and_leave_nothing_behind() {
    let net = TestNet::standard();
    let (ns_a, ns_b) = (Netns::new(), Netns::new());
    let (pod_a, pod_b) = (net.pod(&ns_a), net.pod(&ns_b));

    let ip_a = primary_v4(&net.add(&pod_a, &RuntimeArgs::default()).unwrap());
    let ip_b = primary_v4(&net.add(&pod_b, &RuntimeArgs::default()).unwrap());
    assert!(
        net.in_subnet(ip_a.into()) && net.in_subnet(ip_b.into()),
        "{ip_a} {ip_b}"
    );
    assert_ne!(ip_a, ip_b);
    let mut reserved = net.reservations();
    reserved.sort();
    let mut expected = vec![IpAddr::from(ip_a), IpAddr::from(ip_b)];
    expected.sort();
    assert_eq!(reserved, expected);
    assert_eq!(net.bridge_ports().len(), 2);
    assert!(net.cache_file(&pod_a).is_file());

    assert!(ping(&ns_a, ip_b), "{} cannot ping {ip_b}", ns_a.name);

    // A socket made inside a namespace stays there: a listener opened in
    // pod B is reached from pod A, and sees A's address.
    let listener = run_in_netns(&ns_b.path, || TcpListener::bind((ip_b, 0)))
        .unwrap()
        .unwrap();
    let target = SocketAddr::new(ip_b.into(), listener.local_addr().unwrap().port());
    run_in_netns(&ns_a.path, || {
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
    })
    .unwrap()
    .unwrap();
    let (_, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), IpAddr::from(ip_a));

    net.del(&pod_a).unwrap();
    net.del(&pod_b).unwrap();
    assert_eq!(net.reservations(), Vec::<IpAddr>::new());
    assert_eq!(net.bridge_ports(), Vec::<String>::new());
    assert!(!net.cache_file(&pod_a).exists());

    // DEL is idempotent: the kubelet repeats StopPodSandbox.
    net.del(&pod_a).unwrap();
}

#[test]
fn hairpin_veth_sets_the_pods_bridge_port_and_promiscuous_bridge_the_bridge() {
    let net = TestNet::standard();
    let ns = Netns::new();
    let pod = net.pod(&ns);
    net.add(&pod, &RuntimeArgs::default()).unwrap();

    let hairpin = Hairpin::system();
    let veth = hairpin.host_veth(&ns.path, "eth0").unwrap();
    let veth_name = veth.name.to_str().unwrap().to_owned();
    assert_eq!(net.bridge_ports(), std::slice::from_ref(&veth_name));
    let mode_file = Path::new("/sys/class/net")
        .join(&veth_name)
        .join("brport/hairpin_mode");
    assert_eq!(fs::read_to_string(&mode_file).unwrap().trim(), "0");

    hairpin
        .configure(HairpinMode::HairpinVeth, &ns.path, "eth0")
        .unwrap();
    assert_eq!(fs::read_to_string(&mode_file).unwrap().trim(), "1");

    let flags_file = Path::new("/sys/class/net").join(&net.bridge).join("flags");
    let flags = || {
        let text = fs::read_to_string(&flags_file).unwrap();
        u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap()
    };
    assert_eq!(flags() & 0x100, 0);
    hairpin
        .configure(HairpinMode::PromiscuousBridge, &ns.path, "eth0")
        .unwrap();
    assert_eq!(flags() & 0x100, 0x100);

    net.del(&pod).unwrap();
    assert!(!Path::new("/sys/class/net").join(&veth_name).exists());
}

#[test]
fn hairpin_on_a_namespace_without_the_interface_says_so() {
    let ns = Netns::new();
    let err = Hairpin::system()
        .configure(HairpinMode::HairpinVeth, &ns.path, "eth0")
        .unwrap_err();
    assert!(err.to_string().contains("no interface eth0"), "{err}");
}

#[test]
fn port_mappings_reach_the_portmap_plugin_and_go_with_del() {
    let net = TestNet::standard();
    let ns = Netns::new();
    let pod = net.pod(&ns);
    let host_port = 30000 + (unique() % 20000) as i32;
    let args = RuntimeArgs {
        port_mappings: vec![PortMapping {
            host_port,
            container_port: 80,
            protocol: "TCP".to_owned(),
            host_ip: String::new(),
        }],
        ..RuntimeArgs::default()
    };
    let ip = primary_v4(&net.add(&pod, &args).unwrap());
    let dnat = format!("--to-destination {ip}:80");
    let rules = run_ok("iptables", &["-t", "nat", "-S"]);
    assert!(
        rules
            .lines()
            .any(|l| l.contains(&format!("--dport {host_port}")) && l.contains(&dnat)),
        "no DNAT of port {host_port} to {ip}:80 in:\n{rules}"
    );

    net.del(&pod).unwrap();
    let rules = run_ok("iptables", &["-t", "nat", "-S"]);
    assert!(
        !rules.contains(&dnat),
        "DNAT to {ip}:80 left behind:\n{rules}"
    );
}

#[test]
fn del_after_the_namespace_is_gone_still_releases_the_address() {
    let net = TestNet::standard();
    let ns = Netns::new();
    let pod = net.pod(&ns);
    net.add(&pod, &RuntimeArgs::default()).unwrap();
    assert_eq!(net.reservations().len(), 1);

    ns.delete();
    assert!(!ns.path.exists());
    net.del(&pod).unwrap();
    assert_eq!(net.reservations(), Vec::<IpAddr>::new());
    // The kernel deletes the pod's veth pair when it destroys the
    // namespace, a little after the last handle on it closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !net.bridge_ports().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(net.bridge_ports(), Vec::<String>::new());
}

#[test]
fn failing_plugin_gives_its_cni_error_and_the_add_leaves_no_reservation() {
    let bin = tempfile::tempdir().unwrap();
    let source = bin.path().join("dshfail.txt");
    let script = bin.path().join("dshfail");
    fs::write(
        &source,
        "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n\
         echo '{\"cniVersion\":\"1.0.0\",\"code\":101,\"msg\":\"injected failure\",\"details\":\"by the test\"}'\n\
         exit 1\nfi\n",
    )
    .unwrap();
    // Written by `cp`, so no child forked by another test thread holds a
    // write descriptor to it when it runs ("Text file busy").
    run_ok("cp", &[source.to_str().unwrap(), script.to_str().unwrap()]);
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let net = TestNet::new(&[serde_json::json!({"type": "dshfail"})], Some(bin.path()));
    let ns = Netns::new();
    let pod = net.pod(&ns);

    let err = net.add(&pod, &RuntimeArgs::default()).unwrap_err();
    match err.root_cause() {
        CniError::Plugin {
            plugin,
            code,
            msg,
            details,
            ..
        } => {
            assert_eq!(
                (plugin.as_str(), *code, msg.as_str(), details.as_str()),
                ("dshfail", 101, "injected failure", "by the test")
            );
        }
        other => panic!("expected the plugin's error, got {other}"),
    }
    assert!(
        matches!(err, CniError::Add { cleanup: None, .. }),
        "the rollback failed: {err}"
    );
    assert_eq!(net.reservations(), Vec::<IpAddr>::new());
    assert_eq!(net.bridge_ports(), Vec::<String>::new());
    assert!(!net.cache_file(&pod).exists());
}
