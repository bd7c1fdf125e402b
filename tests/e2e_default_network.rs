//! The built-in default network, end to end: dockshim started with an empty
//! `--cni-conf-dir` and Debian's plugins in /usr/lib/cni serves pods on a
//! bridge of its own, until a configuration file appears and wins.
//!
//! Each test names its own bridge (which also names the network, so
//! host-local keeps its reservations in `/var/lib/cni/networks/<bridge>`)
//! and gives dockshim a pod CIDR of its own in 10.213.0.0/16, apart from
//! the other network tests' 10.211.0.0/16 and 10.212.0.0/16 and from
//! docker0. A guard removes the test's containers, bridges, iptables rules
//! and reservations, whatever the test's outcome. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::client::CriClient;
use common::cni_pod::{bridge_plugin, chained_plugins, conflist, CniGuard};
use common::fixture::{Dockshim, Options, CNI_BIN_DIR};
use common::{busybox_image, missing_environment, pod, unique};
use dockshim::api::v1 as cri;

/// The plugins the built-in network runs, besides loopback.
const PLUGINS: [&str; 5] = ["bridge", "host-local", "firewall", "portmap", "loopback"];

/// Where host-local keeps its reservations when the configuration names
/// no `dataDir`, as the built-in network's does not.
const HOST_LOCAL_DATA_DIR: &str = "/var/lib/cni/networks";

/// The port the pod's web server listens on.
const POD_PORT: u16 = 8080;

/// How long the pod's web server may take to answer its first request.
const SERVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The page the pod serves.
const PAGE: &str = "served-from-the-pod";

/// What the built-in network leaves on the host besides what `CniGuard`
/// removes: the bridge plugin's masquerading rules and chains, which
/// carry the network's name in their comment, and host-local's
/// reservation directory.
struct BuiltInGuard {
    network: String,
}

impl BuiltInGuard {
    /// The bridge plugin's `nat POSTROUTING` rules for the network's pods.
    fn masquerade_rules(&self) -> Vec<String> {
        let marker = format!("name: \\\"{}\\\"", self.network);
        let rules = Command::new("iptables")
            .args(["-t", "nat", "-S", "POSTROUTING"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        rules
            .lines()
            .filter(|l| l.starts_with("-A") && l.contains(&marker))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for BuiltInGuard {
    fn drop(&mut self) {
        for rule in self.masquerade_rules() {
            let _ = Command::new("sh")
                .args(["-c", &format!("iptables -t nat -D {}", &rule[3..])])
                .status();
            if let Some(chain) = rule.split_whitespace().last() {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-F", chain])
                    .status();
                let _ = Command::new("iptables")
                    .args(["-t", "nat", "-X", chain])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(Path::new(HOST_LOCAL_DATA_DIR).join(&self.network));
    }
}

/// The pod's own network and IPC namespaces, as the kubelet asks for them.
fn pod_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..cri::NamespaceOption::default()
    }
}

/// NetworkReady's status and reason, and the verbose `cniConfig` info.
async fn network_status(client: &CriClient) -> (bool, String, serde_json::Value) {
    let status = client.status(true).await.expect("verbose Status");
    let condition = status
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .expect("a NetworkReady condition");
    let info = serde_json::from_str(&status.info["cniConfig"]).expect("cniConfig is JSON");
    (condition.status, condition.message, info)
}

/// The pod's IPv4 address, as PodSandboxStatus reports it.
async fn pod_ip(client: &CriClient, sandbox_id: &str) -> Ipv4Addr {
    let status = client
        .pod_sandbox_status(sandbox_id, false)
        .await
        .unwrap()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    ip.parse()
        .unwrap_or_else(|_| panic!("pod IP {ip:?} is not IPv4"))
}

/// The body of `GET /` from `ip`, retried until the server answers.
fn fetch_page(ip: Ipv4Addr) -> String {
    let addr = SocketAddr::from((ip, POD_PORT));
    let deadline = Instant::now() + SERVE_TIMEOUT;
    loop {
        let answer = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match answer {
            Ok(text) if !text.is_empty() => return text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("the pod did not answer on {addr}: {other:?}"),
        }
    }
}

fn reservation(network: &str, ip: Ipv4Addr) -> PathBuf {
    Path::new(HOST_LOCAL_DATA_DIR)
        .join(network)
        .join(ip.to_string())
}

/// Stops the pod's containers at once, then stops and removes it.
async fn stop_pod(client: &CriClient, sandbox_id: &str) {
    let filter = cri::ContainerFilter {
        pod_sandbox_id: sandbox_id.to_owned(),
        ..cri::ContainerFilter::default()
    };
    for container in client.list_containers(Some(filter)).await.unwrap() {
        client.stop_container(&container.id, 0).await.unwrap();
    }
    pod::stop_and_remove_sandbox(client, sandbox_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_conf_dir_gets_a_working_built_in_network_until_a_file_wins() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the test creates containers and bridges: run it as root (tests/run.sh)"
    );
    if let Some(plugin) = PLUGINS
        .iter()
        .find(|p| !Path::new(CNI_BIN_DIR).join(p).exists())
    {
        missing_environment(format!("no CNI plugin {plugin} in {CNI_BIN_DIR}"));
        return;
    }
    let id = unique();
    let run_id = format!("{id:08x}");
    let octet = (id >> 16) as u8 % 250 + 1;
    let bridge = format!("dshdef{:04x}", id & 0xffff);
    let subnet = format!("10.213.{octet}.0/24");
    let file_bridge = format!("dshdff{:04x}", id & 0xffff);
    let file_network = format!("dshdff-{run_id}");
    let file_subnet = format!("10.214.{octet}.0/24");
    let ipam = tempfile::Builder::new()
        .prefix("dockshim-ipam")
        .tempdir()
        .unwrap();
    let built_in_rules = BuiltInGuard {
        network: bridge.clone(),
    };
    let _file_guard = CniGuard::new(
        run_id.clone(),
        file_bridge.clone(),
        file_network.clone(),
        format!("10.214.{octet}."),
    );
    let _guard = CniGuard::new(
        run_id.clone(),
        bridge.clone(),
        bridge.clone(),
        format!("10.213.{octet}."),
    );
    let dockshim = Dockshim::start_with(Options {
        extra_args: pod::dockshim_args(vec![
            format!("--default-network=auto:{bridge}"),
            format!("--pod-cidr={subnet}"),
        ]),
        ..Options::default()
    });
    let client = dockshim.client().await;

    let (ready, message, info) = network_status(&client).await;
    assert!(ready, "NetworkReady is false: {message}");
    assert_eq!(
        info["source"],
        format!("built-in default (subnet {subnet})")
    );
    assert_eq!(info["name"], bridge.as_str());

    let logs = tempfile::Builder::new()
        .prefix("dockshim-container")
        .tempdir()
        .unwrap();
    let sandbox = |name: &str| cri::PodSandboxConfig {
        hostname: name.to_owned(),
        ..pod::sandbox_config(
            cri::PodSandboxMetadata {
                name: name.to_owned(),
                namespace: "e2e".to_owned(),
                uid: format!("uid-{run_id}-{name}"),
                attempt: 0,
            },
            &run_id,
            logs.path(),
            pod_namespaces(),
        )
    };
    let web = sandbox("web");
    let web_id = pod::run_sandbox(&client, &web).await;
    let ip = pod_ip(&client, &web_id).await;
    assert_eq!(ip.octets()[..3], [10, 213, octet], "pod IP {ip}");
    assert!(ip.octets()[3] > 1, "pod IP {ip} is the gateway's");
    assert!(
        reservation(&bridge, ip).exists(),
        "host-local holds no reservation for {ip}"
    );

    let script = format!(
        "mkdir -p /www && echo {PAGE} > /www/index.html && exec httpd -f -p {POD_PORT} -h /www"
    );
    let server = pod::container_config(
        "httpd",
        &busybox_image(),
        &["sh", "-c", &script],
        &run_id,
        pod_namespaces(),
    );
    let server_id = client
        .create_container(&web_id, server, web.clone())
        .await
        .unwrap_or_else(|status| panic!("CreateContainer: {status:?}"));
    client
        .start_container(&server_id)
        .await
        .unwrap_or_else(|status| panic!("StartContainer: {status:?}"));
    let page = fetch_page(ip);
    assert!(page.contains(PAGE), "the pod answered {page:?}");

    stop_pod(&client, &web_id).await;
    assert!(
        !reservation(&bridge, ip).exists(),
        "the pod's address {ip} is still reserved after StopPodSandbox"
    );

    let early_id = pod::run_sandbox(&client, &sandbox("early")).await;
    let early_ip = pod_ip(&client, &early_id).await;
    assert_eq!(
        early_ip.octets()[..3],
        [10, 213, octet],
        "pod IP {early_ip}"
    );
    assert!(!built_in_rules.masquerade_rules().is_empty());

    let mut plugins = vec![bridge_plugin(&file_bridge, &file_subnet, ipam.path())];
    plugins.extend(chained_plugins());
    let file = dockshim.cni_conf_dir().join("10-operator.conflist");
    std::fs::write(&file, conflist(&file_network, plugins).to_string()).unwrap();

    let (ready, message, info) = network_status(&client).await;
    assert!(ready, "NetworkReady is false: {message}");
    assert_eq!(info["source"], file.display().to_string());
    assert_eq!(info["name"], file_network.as_str());
    let next_id = pod::run_sandbox(&client, &sandbox("next")).await;
    let next_ip = pod_ip(&client, &next_id).await;
    assert_eq!(next_ip.octets()[..3], [10, 214, octet], "pod IP {next_ip}");
    stop_pod(&client, &next_id).await;

    // The pod that joined the built-in network before the file appeared
    // is torn down by the built-in network, not by the file's.
    stop_pod(&client, &early_id).await;
    assert!(
        !reservation(&bridge, early_ip).exists(),
        "{early_ip} is still reserved after StopPodSandbox"
    );
    assert_eq!(built_in_rules.masquerade_rules(), Vec::<String>::new());
}
