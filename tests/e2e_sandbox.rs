//! Pod sandboxes end to end: the real binary, the real dockerd and Debian's
//! real CNI plugins (bridge + host-local + firewall + portmap, loopback) on
//! a private subnet and bridge of each test's own. Needs root, as
//! `tests/run.sh` runs the suite.
//!
//! Every sandbox carries the CRI labels `dockshim-e2e=<test>` and
//! `dockshim-test-run=<test run>`; a drop guard force-removes whatever still
//! carries the first, so a failing test leaves no container behind. Traffic flows only between the test's own sandboxes
//! and the host's loopback and bridge addresses. Commands run inside a pod
//! through throwaway busybox containers that join the sandbox's network
//! namespace (`docker run --rm --network container:<sandbox>`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::client::CriClient;
use common::cni_pod::{bridge_plugin, chained_plugins, conflist, CniGuard};
use common::fixture::{Dockshim, Options, Restarted};
use common::pod::{host_network, RUN_LABEL};
use common::{
    busybox_image, eventually, pause_image, test_run_id, test_run_label, unique, TEST_RUN_LABEL,
};
use dockshim::api::v1 as cri;
use tempfile::TempDir;
use tonic::Code;

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

/// One test's world: a bridge network, dockshim configured for it, and the
/// guard that removes the test's containers.
struct World {
    /// Declared first: dropped (containers removed) before dockshim stops.
    _guard: CniGuard,
    dockshim: Dockshim,
    client: CriClient,
    dir: TempDir,
    octet: u8,
    network_name: String,
    run_id: String,
}

/// How a test's dockshim and network differ from the default.
struct Setup {
    /// After the bridge plugin; `None`: firewall and portmap.
    plugins: Option<Vec<serde_json::Value>>,
    sandbox_image: String,
    oom_score_adj: i32,
    extra_args: Vec<String>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            plugins: None,
            sandbox_image: pause_image(),
            oom_score_adj: 0,
            extra_args: Vec::new(),
        }
    }
}

impl World {
    async fn start() -> World {
        World::start_with(Setup::default()).await
    }

    async fn start_with(setup: Setup) -> World {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the sandbox tests create containers and bridges: run them as root (tests/run.sh)"
        );
        let id = unique();
        let bridge = format!("dshsbx{:04x}", id & 0xffff);
        let octet = (id >> 16) as u8 % 250 + 1;
        let run_id = format!("{id:08x}");
        let dir = tempfile::Builder::new()
            .prefix("dockshim-sandbox")
            .tempdir()
            .unwrap();
        let network_name = format!("dshsbx-{run_id}");
        let subnet = format!("10.211.{octet}.0/24");
        let mut plugins = vec![bridge_plugin(&bridge, &subnet, &dir.path().join("ipam"))];
        plugins.extend(setup.plugins.unwrap_or_else(chained_plugins));
        let conflist = conflist(&network_name, plugins);
        let mut args: Vec<String> = vec![
            "--pod-infra-container-image".into(),
            setup.sandbox_image,
            "--sandbox-oom-score-adj".into(),
            setup.oom_score_adj.to_string(),
        ];
        args.extend(setup.extra_args);
        let guard = CniGuard::new(
            run_id.clone(),
            bridge,
            network_name.clone(),
            format!("10.211.{octet}."),
        );
        let dockshim = Dockshim::start_with(Options {
            cni_conflist: Some(conflist.to_string()),
            extra_args: args,
            ..Options::default()
        });
        let client = dockshim.client().await;
        World {
            _guard: guard,
            dockshim,
            client,
            dir,
            octet,
            network_name,
            run_id,
        }
    }

    /// A sandbox configuration for pod `name` of this test.
    fn config(&self, name: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_owned(),
                namespace: "e2e".to_owned(),
                uid: format!("uid-{}-{name}", self.run_id),
                attempt: 0,
            }),
            hostname: name.to_owned(),
            labels: HashMap::from([
                (RUN_LABEL.to_owned(), self.run_id.clone()),
                (TEST_RUN_LABEL.to_owned(), test_run_id().to_owned()),
                ("app".to_owned(), name.to_owned()),
            ]),
            annotations: HashMap::from([("note".to_owned(), format!("pod {name}"))]),
            linux: Some(cri::LinuxPodSandboxConfig::default()),
            ..cri::PodSandboxConfig::default()
        }
    }

    fn host_network_config(&self, name: &str) -> cri::PodSandboxConfig {
        let mut config = self.config(name);
        config.linux = Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(host_network()),
                ..cri::LinuxSandboxSecurityContext::default()
            }),
            ..cri::LinuxPodSandboxConfig::default()
        });
        config
    }

    async fn run(&self, config: cri::PodSandboxConfig) -> String {
        self.client
            .run_pod_sandbox(config)
            .await
            .unwrap_or_else(|status| panic!("RunPodSandbox: {status:?}"))
    }

    /// RunPodSandbox naming Docker's runtime handler explicitly, as a
    /// RuntimeClass with `handler: docker` makes the kubelet do.
    async fn run_with_docker_handler(&self, config: cri::PodSandboxConfig) -> String {
        let request = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: "docker".to_owned(),
        };
        let response: cri::RunPodSandboxResponse = self
            .client
            .call(
                common::client::RUN_POD_SANDBOX,
                tonic::Request::new(request),
            )
            .await
            .unwrap_or_else(|status| panic!("RunPodSandbox: {status:?}"));
        response.pod_sandbox_id
    }

    async fn status(&self, id: &str) -> cri::PodSandboxStatus {
        self.client
            .pod_sandbox_status(id, false)
            .await
            .unwrap()
            .status
            .unwrap()
    }

    async fn stop_and_remove(&self, id: &str) {
        self.client.stop_pod_sandbox(id).await.unwrap();
        self.client.remove_pod_sandbox(id).await.unwrap();
    }

    /// The pod's IPv4 address as PodSandboxStatus reports it.
    async fn ip(&self, id: &str) -> Ipv4Addr {
        let network = self.status(id).await.network.unwrap();
        network
            .ip
            .parse()
            .unwrap_or_else(|_| panic!("pod IP {:?} is not IPv4", network.ip))
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 211, self.octet, 1)
    }

    fn in_subnet(&self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == [10, 211, self.octet] && ip.octets()[3] > 1
    }

    /// Addresses host-local has handed out and not released.
    fn reservations(&self) -> Vec<String> {
        let dir = self.dir.path().join("ipam").join(&self.network_name);
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().ok()?;
                name.parse::<Ipv4Addr>().is_ok().then_some(name)
            })
            .collect()
    }

    fn checkpoints(&self) -> Vec<String> {
        let args = self.dockshim.same_args();
        let root = args
            .iter()
            .position(|a| a == "--root-directory")
            .map(|i| PathBuf::from(&args[i + 1]))
            .unwrap();
        let Ok(entries) = fs::read_dir(root.join("sandbox")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().ok()?;
                (e.file_type().unwrap().is_file() && !name.starts_with('.')).then_some(name)
            })
            .collect()
    }

    /// IDs of this test's containers in dockerd, in any state.
    fn containers(&self) -> Vec<String> {
        let filter = format!("label={RUN_LABEL}={}", self.run_id);
        run_ok("docker", &["ps", "-aq", "--no-trunc", "--filter", &filter])
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `command` in a busybox container sharing the sandbox's network
/// namespace (and so its resolv.conf); returns whether it succeeded and
/// its output.
fn in_pod(sandbox: &str, command: &[&str]) -> (bool, String) {
    let network = format!("container:{sandbox}");
    let image = busybox_image();
    let run_label = test_run_label();
    let mut args = vec![
        "run",
        "--rm",
        "--label",
        "dockshim-test=1",
        "--label",
        &run_label,
        "--network",
        &network,
        &image,
    ];
    args.extend_from_slice(command);
    let output = run("docker", &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Starts busybox httpd on `port` inside the sandbox, serving a page that
/// says `body`; the server container is labelled for the guard.
fn serve_in_pod(world: &World, sandbox: &str, port: u16, body: &str) {
    let network = format!("container:{sandbox}");
    let label = format!("{RUN_LABEL}={}", world.run_id);
    let script = format!(
        "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {port} -h /www"
    );
    run_ok(
        "docker",
        &[
            "run",
            "-d",
            "--label",
            &label,
            "--label",
            &test_run_label(),
            "--network",
            &network,
            &busybox_image(),
            "sh",
            "-c",
            &script,
        ],
    );
}

/// GETs `/` from `addr`, retrying while the server starts.
fn http_get(addr: &str) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)) {
            Ok(mut stream) => {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if !answer.is_empty() {
                    return Ok(answer);
                }
                last = "empty answer".to_owned();
            }
            Err(err) => last = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

fn docker_inspect(id: &str) -> serde_json::Value {
    common::docker::get_json(&format!("/containers/{id}/json"))
}

fn free_port() -> u16 {
    30000 + (unique() % 20000) as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_network_sandbox_lifecycle() {
    let world = World::start().await;
    let id = world.run_with_docker_handler(world.config("web")).await;

    let status = world.status(&id).await;
    assert_eq!(status.id, id);
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.runtime_handler, "docker");
    let listed = world
        .client
        .list_pod_sandbox(filter(&id, None, &[]))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].runtime_handler, "docker");
    let metadata = status.metadata.unwrap();
    assert_eq!(
        (metadata.name.as_str(), metadata.namespace.as_str()),
        ("web", "e2e")
    );
    assert_eq!(status.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        status.annotations.get("note").map(String::as_str),
        Some("pod web")
    );
    assert!(status.created_at > 0);
    let options = status.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(options.network, cri::NamespaceMode::Pod as i32);
    let ip = world.ip(&id).await;
    assert!(world.in_subnet(ip), "pod IP {ip} outside the test subnet");
    assert_eq!(world.reservations().len(), 1);
    let inspect = docker_inspect(&id);
    assert!(inspect["Name"]
        .as_str()
        .unwrap()
        .starts_with("/k8s_POD_web_e2e_"));
    assert_eq!(
        inspect["Config"]["Labels"]["io.kubernetes.docker.type"],
        "podsandbox"
    );
    assert_eq!(inspect["Config"]["Labels"]["annotation.note"], "pod web");
    assert_eq!(inspect["Config"]["Hostname"], "web");

    world.client.stop_pod_sandbox(&id).await.unwrap();
    let status = world.status(&id).await;
    assert_eq!(status.state, cri::PodSandboxState::SandboxNotready as i32);
    assert_eq!(status.network.unwrap().ip, "");
    assert_eq!(
        status.runtime_handler, "docker",
        "the network teardown keeps the recorded handler"
    );
    assert!(
        world.reservations().is_empty(),
        "stop must release the pod IP"
    );

    world.client.remove_pod_sandbox(&id).await.unwrap();
    let err = world
        .client
        .pod_sandbox_status(&id, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(world.containers().is_empty());
    assert!(world.checkpoints().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_whose_container_was_removed_is_notready_until_stopped_and_removed() {
    let world = World::start().await;
    let config = world.config("vanished");
    let uid = config.metadata.as_ref().unwrap().uid.clone();
    let id = world.run_with_docker_handler(config).await;
    let ip = world.ip(&id).await;

    run_ok("docker", &["rm", "-f", &id]);
    // The index drops the container when dockerd's destroy event arrives;
    // from then on only the checkpoint remembers the sandbox, and its
    // status carries no labels.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = world.status(&id).await;
        if status.labels.is_empty() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index still knows the removed container: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(status.id, id);
    assert_eq!(status.state, cri::PodSandboxState::SandboxNotready as i32);
    let metadata = status.metadata.unwrap();
    assert_eq!(
        (
            metadata.name.as_str(),
            metadata.namespace.as_str(),
            metadata.uid.as_str(),
            metadata.attempt
        ),
        ("vanished", "e2e", uid.as_str(), 0)
    );
    assert_eq!(status.created_at, 0);
    assert_eq!(status.network.unwrap().ip, ip.to_string());
    assert_eq!(status.runtime_handler, "docker");
    let listed = world
        .client
        .list_pod_sandbox(filter(&id, None, &[]))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0].state,
        cri::PodSandboxState::SandboxNotready as i32
    );
    assert_eq!(listed[0].metadata.as_ref().unwrap().name, "vanished");
    assert_eq!(listed[0].runtime_handler, "docker");
    assert_eq!(world.reservations().len(), 1, "CNI DEL is still owed");

    world.client.stop_pod_sandbox(&id).await.unwrap();
    assert!(
        world.reservations().is_empty(),
        "stop must run CNI DEL for the removed container"
    );
    let status = world.status(&id).await;
    assert_eq!(status.state, cri::PodSandboxState::SandboxNotready as i32);
    assert_eq!(status.network.unwrap().ip, "");
    world.client.remove_pod_sandbox(&id).await.unwrap();

    assert!(world.checkpoints().is_empty());
    assert!(world.containers().is_empty());
    let err = world
        .client
        .pod_sandbox_status(&id, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = world
        .client
        .list_pod_sandbox(filter(&id, None, &[]))
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_sandbox_lifecycle() {
    let world = World::start().await;
    let id = world.run(world.host_network_config("hostnet")).await;

    let status = world.status(&id).await;
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.network.unwrap().ip, "");
    let options = status.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(options.network, cri::NamespaceMode::Node as i32);
    assert_eq!(docker_inspect(&id)["HostConfig"]["NetworkMode"], "host");
    assert!(
        world.reservations().is_empty(),
        "a host-network pod gets no pod IP"
    );

    world.stop_and_remove(&id).await;
    assert!(world.containers().is_empty());
    assert!(world.checkpoints().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_remove_twice_and_of_unknown_sandboxes_succeed() {
    let world = World::start().await;
    let id = world.run(world.config("twice")).await;

    world.client.stop_pod_sandbox(&id).await.unwrap();
    world.client.stop_pod_sandbox(&id).await.unwrap();
    world.client.remove_pod_sandbox(&id).await.unwrap();
    world.client.remove_pod_sandbox(&id).await.unwrap();
    world.client.stop_pod_sandbox(&id).await.unwrap();
    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    world.client.stop_pod_sandbox(unknown).await.unwrap();
    world.client.remove_pod_sandbox(unknown).await.unwrap();

    assert!(world.containers().is_empty());
    assert!(world.checkpoints().is_empty());
    assert!(world.reservations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_each_other_by_pod_ip() {
    let world = World::start().await;
    let a = world.run(world.config("ping-a")).await;
    let b = world.run(world.config("ping-b")).await;
    let ip_b = world.ip(&b).await;
    assert_ne!(world.ip(&a).await, ip_b);

    let (ok, output) = in_pod(&a, &["ping", "-c", "1", "-W", "3", &ip_b.to_string()]);
    assert!(ok, "ping from pod a to {ip_b} failed: {output}");

    world.stop_and_remove(&a).await;
    world.stop_and_remove(&b).await;
    assert!(world.reservations().is_empty());
}

fn port_mapping(container_port: i32, host_port: i32) -> cri::PortMapping {
    cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port,
        host_port,
        host_ip: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_port_is_reachable_on_loopback_until_stop() {
    let world = World::start().await;
    let host_port = free_port();
    let mut config = world.config("ports");
    config.port_mappings = vec![port_mapping(8080, i32::from(host_port))];
    let id = world.run(config).await;
    serve_in_pod(&world, &id, 8080, "hello-from-the-pod");

    let answer = http_get(&format!("127.0.0.1:{host_port}")).expect("GET through the host port");
    assert!(answer.contains("hello-from-the-pod"), "{answer}");

    world.client.stop_pod_sandbox(&id).await.unwrap();
    let rules = run_ok("iptables", &["-t", "nat", "-S"]);
    assert!(
        !rules.contains(&format!("--dport {host_port} ")),
        "port {host_port} still forwarded after stop:\n{rules}"
    );
    world.client.remove_pod_sandbox(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_reaches_itself_through_its_own_host_port() {
    let world = World::start().await;
    let host_port = free_port();
    let mut config = world.config("hairpin");
    config.port_mappings = vec![port_mapping(8080, i32::from(host_port))];
    let id = world.run(config).await;
    serve_in_pod(&world, &id, 8080, "hairpin-ok");
    let target = format!("{} {host_port}", world.gateway());
    // busybox's wget crashes in this image; nc speaks the request itself.
    let probe = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target}");

    let mut last = String::new();
    let reached = (0..20).any(|_| {
        let (ok, output) = in_pod(&id, &["sh", "-c", &probe]);
        last = output;
        ok && last.contains("hairpin-ok")
    });

    assert!(reached, "the pod did not reach itself at {target}: {last}");
    world.stop_and_remove(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_config_is_the_pods_resolv_conf() {
    let world = World::start().await;
    let mut config = world.config("dns");
    config.dns_config = Some(cri::DnsConfig {
        servers: vec!["192.0.2.53".to_owned()],
        searches: vec!["e2e.svc.cluster.local".to_owned()],
        options: vec!["ndots:5".to_owned(), "timeout:2".to_owned()],
    });
    let id = world.run(config).await;

    let (ok, resolv) = in_pod(&id, &["cat", "/etc/resolv.conf"]);

    assert!(ok, "{resolv}");
    assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    assert!(resolv.contains("search e2e.svc.cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5 timeout:2"), "{resolv}");
    world.stop_and_remove(&id).await;
}

/// A failed RunPodSandbox leaves nothing: no container, no checkpoint, no
/// address reserved.
fn assert_nothing_left(world: &World) {
    assert_eq!(world.containers(), Vec::<String>::new(), "containers left");
    assert_eq!(
        world.checkpoints(),
        Vec::<String>::new(),
        "checkpoints left"
    );
    assert_eq!(world.reservations(), Vec::<String>::new(), "addresses left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_cni_plugin_leaves_nothing_behind() {
    let world = World::start_with(Setup {
        plugins: Some(vec![serde_json::json!({
            "type": "tuning",
            "sysctl": {"net.ipv4.conf.eth0.dockshim_no_such_knob": "1"},
        })]),
        ..Setup::default()
    })
    .await;

    let err = world
        .client
        .run_pod_sandbox(world.config("cnifail"))
        .await
        .unwrap_err();

    assert!(
        err.message().contains("set up the pod network"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("tuning"), "{}", err.message());
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_sandbox_image_names_the_flag_and_leaves_nothing() {
    let world = World::start_with(Setup {
        sandbox_image: "127.0.0.1:5000/dockshim-test/no-such-pause:none".to_owned(),
        ..Setup::default()
    })
    .await;

    let err = world
        .client
        .run_pod_sandbox(world.config("noimage"))
        .await
        .unwrap_err();

    assert!(
        err.message().contains("--pod-infra-container-image"),
        "{}",
        err.message()
    );
    assert_nothing_left(&world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_oom_score_adj_fails_cleanly_without_cap_sys_resource() {
    let world = World::start_with(Setup {
        oom_score_adj: -998,
        ..Setup::default()
    })
    .await;

    let result = world.client.run_pod_sandbox(world.config("oom")).await;

    match result {
        Err(err) => {
            assert!(
                err.message().contains("start the sandbox container"),
                "{}",
                err.message()
            );
            assert_nothing_left(&world);
        }
        // A host that grants CAP_SYS_RESOURCE accepts the value.
        Ok(id) => world.stop_and_remove(&id).await,
    }
}

fn filter(
    id: &str,
    state: Option<cri::PodSandboxState>,
    labels: &[(&str, &str)],
) -> Option<cri::PodSandboxFilter> {
    Some(cri::PodSandboxFilter {
        id: id.to_owned(),
        state: state.map(|state| cri::PodSandboxStateValue {
            state: state as i32,
        }),
        label_selector: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sandboxes_are_listed_with_each_filter() {
    let world = World::start().await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(world.run(world.config(&format!("many-{n}"))).await);
    }
    for id in &ids[..5] {
        world.client.stop_pod_sandbox(id).await.unwrap();
    }
    let run = [(RUN_LABEL, world.run_id.as_str())];
    let list = |f| world.client.list_pod_sandbox(f);

    let all = list(filter("", None, &run)).await.unwrap();
    let ready = list(filter("", Some(cri::PodSandboxState::SandboxReady), &run))
        .await
        .unwrap();
    let not_ready = list(filter(
        "",
        Some(cri::PodSandboxState::SandboxNotready),
        &run,
    ))
    .await
    .unwrap();
    let by_id = list(filter(&ids[7][..16], None, &[])).await.unwrap();
    let by_app = list(filter(
        "",
        None,
        &[(RUN_LABEL, &world.run_id), ("app", "many-3")],
    ))
    .await
    .unwrap();
    let unfiltered = list(None).await.unwrap();

    assert_eq!(all.len(), 20);
    assert_eq!(ready.len(), 15);
    assert!(ready.iter().all(|s| !ids[..5].contains(&s.id)));
    assert_eq!(not_ready.len(), 5);
    assert!(not_ready.iter().all(|s| ids[..5].contains(&s.id)));
    assert_eq!(by_id.iter().map(|s| &s.id).collect::<Vec<_>>(), [&ids[7]]);
    assert_eq!(by_app.len(), 1);
    assert_eq!(by_app[0].id, ids[3]);
    assert_eq!(by_app[0].metadata.as_ref().unwrap().name, "many-3");
    assert!(ids.iter().all(|id| unfiltered.iter().any(|s| &s.id == id)));

    for id in &ids {
        world.stop_and_remove(id).await;
    }
    assert!(world.reservations().is_empty());
    assert!(world.checkpoints().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_made_with_cri_dockerd_names_and_labels_is_recognised() {
    let world = World::start().await;
    let uid = format!("uid-legacy-{}", world.run_id);
    let name = format!("k8s_POD_legacy_e2e_{uid}_2");
    let labels = [
        "io.kubernetes.docker.type=podsandbox".to_owned(),
        "io.kubernetes.container.name=POD".to_owned(),
        "io.kubernetes.pod.name=legacy".to_owned(),
        "io.kubernetes.pod.namespace=e2e".to_owned(),
        format!("io.kubernetes.pod.uid={uid}"),
        "annotation.kubernetes.io/config.source=api".to_owned(),
        format!("{RUN_LABEL}={}", world.run_id),
        test_run_label(),
    ];
    let mut args = vec!["run", "-d", "--network", "none", "--name", &name];
    for label in &labels {
        args.extend(["--label", label.as_str()]);
    }
    let image = pause_image();
    args.push(&image);
    let id = run_ok("docker", &args).trim().to_owned();

    // dockerd reports the new container on its event stream a moment
    // after `docker run` returns, its creation and its start as two events;
    // with every test's dockshim inspecting every test's containers, that
    // moment can stretch to seconds, and a slow runtime widens the gap
    // in which the sandbox is listed but not yet ready.
    let listing = || async {
        world
            .client
            .list_pod_sandbox(filter("", None, &[(RUN_LABEL, &world.run_id)]))
            .await
            .unwrap()
    };
    // The create and start events come one after the other: until the
    // index has taken in the start, the sandbox is rightly NOTREADY.
    eventually(Duration::from_secs(30), || async {
        listing()
            .await
            .iter()
            .any(|sandbox| sandbox.state == cri::PodSandboxState::SandboxReady as i32)
    })
    .await;
    let listed = listing().await;

    assert_eq!(listed.len(), 1, "{listed:?}");
    let sandbox = &listed[0];
    assert_eq!(sandbox.id, id);
    assert_eq!(sandbox.state, cri::PodSandboxState::SandboxReady as i32);
    let metadata = sandbox.metadata.as_ref().unwrap();
    assert_eq!(
        (
            metadata.name.as_str(),
            metadata.namespace.as_str(),
            metadata.uid.as_str(),
            metadata.attempt
        ),
        ("legacy", "e2e", uid.as_str(), 2)
    );
    assert_eq!(
        sandbox
            .labels
            .get("io.kubernetes.pod.name")
            .map(String::as_str),
        Some("legacy")
    );
    assert!(!sandbox.labels.contains_key("io.kubernetes.docker.type"));
    assert!(!sandbox.labels.contains_key("io.kubernetes.container.name"));
    assert_eq!(
        sandbox
            .annotations
            .get("kubernetes.io/config.source")
            .map(String::as_str),
        Some("api")
    );
    let status = world.status(&id).await;
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);

    world.stop_and_remove(&id).await;
    assert!(world.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_runs_make_one_sandbox() {
    let world = World::start().await;
    let config = world.config("dup");
    let other = world.client.clone();

    let (first, second) = tokio::join!(
        world.client.run_pod_sandbox(config.clone()),
        other.run_pod_sandbox(config.clone())
    );
    let third = world.client.run_pod_sandbox(config).await;

    let id = first.unwrap();
    assert_eq!(second.unwrap(), id);
    assert_eq!(third.unwrap(), id);
    assert_eq!(world.containers(), std::slice::from_ref(&id));
    assert_eq!(world.reservations().len(), 1);
    world.stop_and_remove(&id).await;
}

fn restart(dockshim: &Dockshim, dir: &Path) -> Restarted {
    Restarted::start(dockshim, dir.join("restarted.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_network_teardown_survive_kill_9() {
    let world = World::start().await;
    let id = world.run(world.config("crash")).await;
    let ip = world.ip(&id).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(world.dockshim.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let _restarted = restart(&world.dockshim, world.dir.path());
    let client = CriClient::connect(world.dockshim.socket()).await;
    let listed = client
        .list_pod_sandbox(filter("", None, &[(RUN_LABEL, &world.run_id)]))
        .await
        .unwrap();
    let status = client
        .pod_sandbox_status(&id, false)
        .await
        .unwrap()
        .status
        .unwrap();

    assert_eq!(listed.iter().map(|s| &s.id).collect::<Vec<_>>(), [&id]);
    assert_eq!(listed[0].state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.network.unwrap().ip, ip.to_string());
    client.stop_pod_sandbox(&id).await.unwrap();
    assert!(
        world.reservations().is_empty(),
        "stop after a restart must release the IP"
    );
    client.remove_pod_sandbox(&id).await.unwrap();
    assert!(world.containers().is_empty());
    assert!(world.checkpoints().is_empty());
}
