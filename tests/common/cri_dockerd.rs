//! What cri-dockerd v0.3.x leaves on a node, laid out as it lays it out
//! (see cri-dockerd's core/naming.go, core/helpers.go, core/checkpoint.go,
//! core/logs.go and network/cni/cni.go, summarised in the project's
//! reference notes): sandbox and app containers created through the
//! Docker API with its names and labels, the pod attached by the CNI
//! plugins the way its libcni runs them, libcni's result cache entries,
//! the checkpoint file with its checksum, and the CRI log path as a symlink
//! to Docker's json-file log. Every container also carries the test's
//! labels, so the guards and the run's leak check find it. Needs root.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dockshim::codec::base64::{self, Alphabet};
use dockshim::store::checkpoint::{checksum, CheckpointData, PortMapping};

use super::docker::{docker_socket, get_json};
use super::pod;

/// cri-dockerd's interface name for the pod.
pub const POD_IFNAME: &str = "eth0";
/// The loopback network cri-dockerd attaches every pod to first.
const LOOPBACK_CONF: &str = r#"{"cniVersion":"0.2.0","name":"cni-loopback","type":"loopback"}"#;

/// The pod a cri-dockerd sandbox belongs to.
#[derive(Debug, Clone)]
pub struct PodName {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodName {
    /// The sandbox container's name, `k8s_POD_<name>_<ns>_<uid>_<attempt>`.
    pub fn sandbox_container(&self) -> String {
        format!("k8s_POD_{}_{}_{}_0", self.name, self.namespace, self.uid)
    }

    /// An app container's name, `k8s_<c>_<name>_<ns>_<uid>_<attempt>`.
    pub fn app_container(&self, container: &str) -> String {
        format!(
            "k8s_{container}_{}_{}_{}_0",
            self.name, self.namespace, self.uid
        )
    }

    /// The kubelet's labels of the pod's sandbox and containers.
    fn kubelet_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("io.kubernetes.pod.name".to_owned(), self.name.clone()),
            (
                "io.kubernetes.pod.namespace".to_owned(),
                self.namespace.clone(),
            ),
            ("io.kubernetes.pod.uid".to_owned(), self.uid.clone()),
        ])
    }
}

/// `docker` against the engine under test, with its output; panics when
/// it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", docker_socket()))
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn label_args(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .iter()
        .flat_map(|(key, value)| ["--label".to_owned(), format!("{key}={value}")])
        .collect()
}

/// Creates and starts the sandbox container of `pod` as cri-dockerd's
/// RunPodSandbox does for a pod on a CNI network (no Docker network, a
/// shareable IPC namespace), labelled for the test `run_id`; its ID.
pub fn run_sandbox(pod: &PodName, run_id: &str, image: &str) -> String {
    let mut labels = pod.kubelet_labels();
    labels.insert("io.kubernetes.docker.type".into(), "podsandbox".into());
    labels.insert("io.kubernetes.container.name".into(), "POD".into());
    labels.insert(
        "annotation.kubernetes.io/config.source".into(),
        "api".into(),
    );
    labels.extend(pod::labels(run_id));
    let name = pod.sandbox_container();
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--ipc",
        "shareable",
    ];
    let labels = label_args(&labels);
    args.extend(labels.iter().map(String::as_str));
    args.push(image);
    docker(&args)
}

/// Creates and starts app container `container` of `pod` in `sandbox_id`'s
/// namespaces as cri-dockerd's CreateContainer and StartContainer do, its
/// CRI log `<log_dir>/<container>/0.log` a symlink to Docker's json-file
/// log; its ID.
pub fn run_container(
    pod: &PodName,
    container: &str,
    sandbox_id: &str,
    run_id: &str,
    log_dir: &Path,
    image: &str,
    script: &str,
) -> String {
    let log_path = log_dir.join(container).join("0.log");
    let mut labels = pod.kubelet_labels();
    labels.insert("io.kubernetes.container.name".into(), container.to_owned());
    labels.insert("io.kubernetes.docker.type".into(), "container".into());
    labels.insert("io.kubernetes.sandbox.id".into(), sandbox_id.to_owned());
    labels.insert(
        "io.kubernetes.container.logpath".into(),
        log_path.display().to_string(),
    );
    labels.insert(
        "annotation.io.kubernetes.container.restartCount".into(),
        "0".into(),
    );
    labels.extend(pod::labels(run_id));
    let name = pod.app_container(container);
    let joined = format!("container:{sandbox_id}");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &joined,
        "--ipc",
        &joined,
    ];
    let labels = label_args(&labels);
    args.extend(labels.iter().map(String::as_str));
    args.extend([image, "sh", "-c", script]);
    let id = docker(&args);
    let docker_log = get_json(&format!("/containers/{id}/json"))["LogPath"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    fs::create_dir_all(log_path.parent().unwrap()).unwrap();
    if !docker_log.is_empty() {
        std::os::unix::fs::symlink(&docker_log, &log_path).unwrap();
    }
    id
}

/// The pid of a running container.
pub fn pid_of(id: &str) -> u64 {
    get_json(&format!("/containers/{id}/json"))["State"]["Pid"]
        .as_u64()
        .unwrap()
}

/// `StartedAt` of a container, as dockerd reports it.
pub fn started_at(id: &str) -> String {
    get_json(&format!("/containers/{id}/json"))["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs one CNI plugin `plugin_type` with `command` and `stdin` for the
/// sandbox `id` as libcni does; its stdout.
fn exec_plugin(
    bin_dirs: &[PathBuf],
    plugin_type: &str,
    command: &str,
    env: &[(&str, String)],
    stdin: &[u8],
) -> serde_json::Value {
    let binary = bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no CNI plugin {plugin_type} in {bin_dirs:?}"));
    let cni_path: Vec<String> = bin_dirs.iter().map(|d| d.display().to_string()).collect();
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", cni_path.join(":"))
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "CNI {command} of {plugin_type}: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

/// Attaches the sandbox `id` of `pod`, whose process is `pid`, to the
/// loopback network and then to the one-plugin `conflist`, as cri-dockerd's
/// SetUpPod does through libcni, and caches each result in
/// `<cache_dir>/results/` as libcni does; the pod network's result.
pub fn cni_add(
    conflist: &serde_json::Value,
    bin_dirs: &[PathBuf],
    cache_dir: &Path,
    pod: &PodName,
    id: &str,
    pid: u64,
) -> serde_json::Value {
    let netns = format!("/proc/{pid}/ns/net");
    let cni_args = [
        ["IgnoreUnknown", "1"],
        ["K8S_POD_NAMESPACE", &pod.namespace],
        ["K8S_POD_NAME", &pod.name],
        ["K8S_POD_INFRA_CONTAINER_ID", id],
    ];
    let args_env = cni_args
        .iter()
        .map(|[key, value]| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(";");
    let capability_args = serde_json::json!({
        "portMappings": [],
        "ipRanges": [[{"subnet": ""}]],
    });
    let loopback: serde_json::Value = serde_json::from_str(LOOPBACK_CONF).unwrap();
    let networks = [(loopback.clone(), loopback, "lo"), {
        let mut plugin = conflist["plugins"][0].clone();
        plugin["name"] = conflist["name"].clone();
        plugin["cniVersion"] = conflist["cniVersion"].clone();
        (conflist.clone(), plugin, POD_IFNAME)
    }];
    let mut last = serde_json::Value::Null;
    for (list, plugin, ifname) in networks {
        let env = [
            ("CNI_CONTAINERID", id.to_owned()),
            ("CNI_NETNS", netns.clone()),
            ("CNI_IFNAME", ifname.to_owned()),
            ("CNI_ARGS", args_env.clone()),
        ];
        let plugin_type = plugin["type"].as_str().unwrap().to_owned();
        let result = exec_plugin(
            bin_dirs,
            &plugin_type,
            "ADD",
            &env,
            plugin.to_string().as_bytes(),
        );
        let network = list["name"].as_str().unwrap();
        let entry = serde_json::json!({
            "kind": "cniCacheV1",
            "containerId": id,
            "config": base64::encode(list.to_string().as_bytes(), Alphabet::Standard),
            "ifName": ifname,
            "networkName": network,
            "netns": netns,
            "cniArgs": cni_args,
            "capabilityArgs": capability_args,
            "result": result,
        });
        let results = cache_dir.join("results");
        fs::create_dir_all(&results).unwrap();
        fs::write(
            results.join(format!("{network}-{id}-{ifname}")),
            entry.to_string(),
        )
        .unwrap();
        last = result;
    }
    last
}

/// The first address of the pod's interface in a CNI result, without its
/// prefix length.
pub fn result_ip(result: &serde_json::Value) -> String {
    let address = result["ips"][0]["address"].as_str().unwrap();
    address.split('/').next().unwrap().to_owned()
}

/// Writes cri-dockerd's checkpoint of sandbox `id` of `pod` into
/// `<root>/sandbox/`, with one container port and no host port, as
/// RunPodSandbox writes it for a pod on a CNI network.
pub fn write_checkpoint(root: &Path, id: &str, pod: &PodName) -> PathBuf {
    let data = CheckpointData::new(
        vec![PortMapping {
            protocol: Some("tcp".to_owned()),
            container_port: Some(80),
            host_port: Some(0),
            host_ip: String::new(),
        }],
        false,
    );
    let file = serde_json::json!({
        "version": "v1",
        "name": pod.name,
        "namespace": pod.namespace,
        "data": {"port_mappings": [{"protocol": "tcp", "container_port": 80, "host_port": 0}]},
        "checksum": checksum(&data),
    });
    let dir = root.join("sandbox");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(id);
    fs::write(&path, file.to_string()).unwrap();
    path
}
