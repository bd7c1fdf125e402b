//! ImageService RPCs answered by the real binary against the real dockerd,
//! the test registry on 127.0.0.1:5000 (`DOCKSHIM_TEST_REGISTRY`), a second
//! registry with htpasswd basic auth, and a registry stub that stalls in
//! the middle of a blob, checked with tonic.
//!
//! Every image a test pulls is one of its own (a one-file layer with a
//! unique content, pushed under `dockshim-e2e/`), so tests run in parallel
//! and never touch the shared busybox and pause images except to read
//! them. Drop guards remove every image, tag, container, manifest and
//! process a test creates, also when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::client::CriClient;
use common::fixture::{Dockshim, Options};
use common::pod::World;
use common::proxy::DockerProxy;
use common::stub_server::{RegistryConnection, StubServer};
use dockshim::api::v1 as cri;
use tonic::Code;

/// How long a change dockerd announces may take to show in ListImages.
const EVENT_LAG: Duration = Duration::from_secs(10);
/// How long a test may wait for a quiet moment on a dockerd other tests
/// change images on.
const QUIET_WAIT: Duration = Duration::from_secs(30);
/// How long a registry process may take to answer after start.
const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(20);
/// The progress deadline the stalled-pull test runs dockshim with.
const SHORT_PULL_DEADLINE: &str = "3s";

fn registry() -> String {
    std::env::var("DOCKSHIM_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned())
}

fn busybox_image() -> String {
    std::env::var("DOCKSHIM_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| format!("{}/dockshim-test/busybox:latest", registry()))
}

fn pause_image() -> String {
    std::env::var("DOCKSHIM_TEST_PAUSE_IMAGE")
        .unwrap_or_else(|_| format!("{}/dockshim-test/pause:3.10", registry()))
}

/// A string no other test (or test run) uses.
fn nonce() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the docker CLI; panics with its stderr if it fails.
fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Runs the docker CLI for cleanup, ignoring failures.
fn docker_quietly(args: &[&str]) {
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn docker_has_image(name: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The ID dockerd gives `name`.
fn docker_image_id(name: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", name])
}

/// One HTTP/1.0 exchange with `addr`; the status and the body, or `None`
/// if nothing answered.
fn http(addr: &str, method: &str, path: &str, headers: &[&str]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn code_and_message(result: Result<impl std::fmt::Debug, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("the call succeeded");
    (status.code(), status.message().to_owned())
}

/// A tarball holding one file with `content`.
fn one_file_layer(dir: &Path, content: &str) -> String {
    fs::write(dir.join("nonce"), content).unwrap();
    let tarball = dir.join("layer.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(&tarball)
        .arg("nonce")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    tarball.display().to_string()
}

/// An image of a test's own, pushed to the test registry under
/// `dockshim-e2e/<name>-<nonce>` with one or more tags and then removed
/// from dockerd, so only a pull brings it back. Dropping it removes it
/// from dockerd (every tag) and its manifest from the registry.
struct PushedImage {
    /// `127.0.0.1:5000/dockshim-e2e/<name>-<nonce>`.
    repository: String,
    /// The repository's path inside the registry.
    path: String,
    /// The manifest digest all tags share.
    digest: String,
    /// dockerd's image ID, `sha256:<hex>`.
    id: String,
}

impl PushedImage {
    fn push(name: &str, tags: &[&str]) -> PushedImage {
        PushedImage::push_with_user(name, tags, None)
    }

    fn push_with_user(name: &str, tags: &[&str], user: Option<&str>) -> PushedImage {
        let nonce = nonce();
        let path = format!("dockshim-e2e/{name}-{nonce}");
        let repository = format!("{}/{path}", registry());
        let dir = tempfile::tempdir().unwrap();
        let tarball = one_file_layer(dir.path(), &nonce);
        let first = format!("{repository}:{}", tags[0]);
        let mut args = vec!["import", "--change", r#"CMD ["/bin/sh"]"#];
        let user_change = user.map(|user| format!("USER {user}"));
        if let Some(change) = &user_change {
            args.extend(["--change", change]);
        }
        args.extend([tarball.as_str(), first.as_str()]);
        let id = docker(&args);
        let mut image = PushedImage {
            repository,
            path,
            digest: String::new(),
            id,
        };
        for tag in &tags[1..] {
            docker(&["tag", &first, &image.tag(tag)]);
        }
        for tag in tags {
            let output = docker(&["push", &image.tag(tag)]);
            let digest = output
                .split_once("digest: ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no digest in docker push output: {output}"));
            image.digest = digest.to_owned();
        }
        docker(&["rmi", "--force", &image.id]);
        assert!(!docker_has_image(&image.id));
        image
    }

    fn tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repository)
    }

    fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

impl Drop for PushedImage {
    fn drop(&mut self) {
        docker_quietly(&["rmi", "--force", &self.id]);
        if !self.digest.is_empty() {
            let path = format!("/v2/{}/manifests/{}", self.path, self.digest);
            let _ = http(&registry(), "DELETE", &path, &[]);
        }
    }
}

/// A stopped container created straight through dockerd, removed on drop.
struct Container {
    name: String,
}

impl Container {
    fn create(image: &str) -> Container {
        let name = format!("dockshim-e2e-image-{}", nonce());
        docker(&[
            "create",
            "--label",
            "dockshim-test=1",
            "--label",
            &common::test_run_label(),
            "--name",
            &name,
            image,
        ]);
        Container { name }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker_quietly(&["rm", "--force", &self.name]);
    }
}

/// An extra tag on an existing image, removed on drop (which only untags).
struct LocalTag(String);

impl LocalTag {
    fn new(source: &str, tag: &str) -> LocalTag {
        docker(&["tag", source, tag]);
        LocalTag(tag.to_owned())
    }
}

impl Drop for LocalTag {
    fn drop(&mut self) {
        docker_quietly(&["rmi", &self.0]);
    }
}

/// An untagged image (no tags, no digests), removed on drop.
struct DanglingImage {
    id: String,
}

impl DanglingImage {
    fn import() -> DanglingImage {
        let dir = tempfile::tempdir().unwrap();
        let tarball = one_file_layer(dir.path(), &nonce());
        DanglingImage {
            id: docker(&["import", &tarball]),
        }
    }
}

impl Drop for DanglingImage {
    fn drop(&mut self) {
        docker_quietly(&["rmi", "--force", &self.id]);
    }
}

/// A docker-registry on its own port that requires htpasswd basic auth
/// and serves, as a pull-through proxy, whatever the test registry holds.
struct AuthRegistry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::Builder::new()
            .prefix("dockshim-e2e-registry")
            .tempdir()
            .unwrap();
        let entry = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd (apache2-utils)");
        assert!(entry.status.success(), "htpasswd failed");
        let htpasswd = dir.path().join("htpasswd");
        fs::write(&htpasswd, &entry.stdout).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n\
             http:\n  addr: {addr}\n\
             auth:\n  htpasswd:\n    realm: dockshim-e2e\n    path: {htpasswd}\n\
             proxy:\n  remoteurl: http://{upstream}\n",
            root = dir.path().join("data").display(),
            htpasswd = htpasswd.display(),
            upstream = registry(),
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = AuthRegistry {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + REGISTRY_START_TIMEOUT;
        while http(&registry.addr, "GET", "/v2/", &[]).map(|(status, _)| status) != Some(401) {
            assert!(
                Instant::now() < deadline,
                "the auth registry did not answer on {}",
                registry.addr
            );
            thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry stub that serves a manifest, then sends the headers and the
/// first bytes of each blob and stalls forever: a pull that makes no
/// progress. Its digests are random, so dockerd has none of it already.
struct StallingRegistry {
    addr: SocketAddr,
    _server: StubServer,
}

/// Bytes of the stub's layer blob, of which it sends [`STALL_AFTER`].
const STALLED_BLOB_SIZE: usize = 1024 * 1024;
const STALL_AFTER: usize = 32 * 1024;

impl StallingRegistry {
    fn start() -> StallingRegistry {
        let seed = nonce().replace('-', "");
        let hex = |salt: &str| {
            let mut digits: String = format!("{salt}{seed}")
                .bytes()
                .map(|b| format!("{:02x}", b))
                .collect();
            digits.truncate(64);
            format!("{digits:0<64}")
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1000,"digest":"sha256:{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{STALLED_BLOB_SIZE},"digest":"sha256:{}"}}]}}"#,
            hex("c"),
            hex("1"),
        );
        let server = StubServer::start(move |stream, stop| serve_stalling(stream, &manifest, stop));
        StallingRegistry {
            addr: server.addr(),
            _server: server,
        }
    }
}

/// Answers the requests on one connection as [`StallingRegistry`] does.
fn serve_stalling(stream: TcpStream, manifest: &str, stop: &AtomicBool) {
    let mut connection = RegistryConnection::new(stream);
    while let Some(request) = connection.next_request(stop) {
        if connection.answer_base(&request, manifest) {
            continue;
        }
        if !request.path.contains("/blobs/") {
            connection.not_found();
            continue;
        }
        connection.answer_head("application/octet-stream", STALLED_BLOB_SIZE);
        if !request.head_only {
            let _ = connection.stream().write_all(&vec![0u8; STALL_AFTER]);
        }
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        return;
    }
}

fn ids(images: &[cri::Image]) -> HashSet<String> {
    images.iter().map(|i| i.id.clone()).collect()
}

async fn listed(client: &CriClient, id: &str) -> Option<cri::Image> {
    let images = client.list_images(None).await.expect("ListImages").images;
    images.into_iter().find(|i| i.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_returns_the_id_that_list_and_status_show() {
    let image = PushedImage::push("by-tag", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    assert!(listed(&client, &image.id).await.is_none());

    let pulled = client.pull_image(&image.tag("v1"), None).await.unwrap();

    assert_eq!(pulled.image_ref, image.id);
    assert_eq!(docker_image_id(&image.tag("v1")), image.id);
    let shown = listed(&client, &image.id)
        .await
        .expect("pulled image listed");
    assert_eq!(shown.repo_tags, [image.tag("v1")]);
    assert_eq!(shown.repo_digests, [image.by_digest()]);
    assert!(shown.size > 0);
    assert!(!shown.pinned);
    let status = client.image_status(&image.tag("v1"), false).await.unwrap();
    assert_eq!(status.image.map(|i| i.id), Some(image.id.clone()));
    assert!(status.info.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_digest_records_the_digest_and_no_tag() {
    let image = PushedImage::push("by-digest", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let pulled = client.pull_image(&image.by_digest(), None).await.unwrap();

    assert_eq!(pulled.image_ref, image.id);
    let status = client
        .image_status(&image.by_digest(), false)
        .await
        .unwrap();
    let shown = status.image.expect("image found by digest");
    assert_eq!(shown.repo_digests, [image.by_digest()]);
    assert!(shown.repo_tags.is_empty(), "{:?}", shown.repo_tags);
    // Tag and digest together: the digest decides, as in Docker.
    let both = format!("{}:whatever@{}", image.repository, image.digest);
    let again = client.pull_image(&both, None).await.unwrap();
    assert_eq!(again.image_ref, image.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_for_a_known_runtime_handler_is_an_ordinary_pull_and_an_unknown_one_is_not_found() {
    let image = PushedImage::push("handler", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let pull = |handler: &'static str| {
        let request = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.tag("v1"),
                runtime_handler: handler.to_owned(),
                ..cri::ImageSpec::default()
            }),
            auth: None,
            sandbox_config: None,
        };
        let client = &client;
        async move {
            client
                .call::<_, cri::PullImageResponse>(
                    common::client::PULL_IMAGE,
                    tonic::Request::new(request),
                )
                .await
        }
    };

    // Every engine lists runc among its runtimes.
    let pulled = pull("runc").await.unwrap();
    assert_eq!(pulled.image_ref, image.id);
    let (code, message) = code_and_message(pull("no-such-handler").await);
    assert_eq!(code, Code::NotFound, "{message}");
    assert!(message.contains("no-such-handler"), "{message}");
    assert!(message.contains("\"runc\""), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_without_a_tag_pulls_latest() {
    let image = PushedImage::push("no-tag", &["latest"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let pulled = client.pull_image(&image.repository, None).await.unwrap();

    assert_eq!(pulled.image_ref, image.id);
    let shown = listed(&client, &image.id).await.unwrap();
    assert_eq!(shown.repo_tags, [image.tag("latest")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_short_names_are_normalised() {
    let busybox_id = docker_image_id(&busybox_image());
    let short = format!("dockshim-e2e-short-{}", nonce());
    let _tag = LocalTag::new(&busybox_image(), &format!("{short}:v1"));
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    for name in [
        format!("{short}:v1"),
        format!("library/{short}:v1"),
        format!("docker.io/library/{short}:v1"),
        format!("index.docker.io/{short}:v1"),
    ] {
        let status = client.image_status(&name, false).await.unwrap();
        assert_eq!(
            status.image.map(|i| i.id).as_deref(),
            Some(busybox_id.as_str()),
            "{name}"
        );
    }
    let untagged = client.image_status(&short, false).await.unwrap();
    assert!(untagged.image.is_none(), "{short} means {short}:latest");

    client
        .remove_image(&format!("docker.io/library/{short}:v1"))
        .await
        .unwrap();
    assert!(!docker_has_image(&format!("{short}:v1")));
    assert!(docker_has_image(&busybox_image()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tags_and_repositories_are_not_found() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let missing_tag = format!(
        "{}/dockshim-test/busybox:no-such-tag-{}",
        registry(),
        nonce()
    );
    let missing_repo = format!("{}/dockshim-e2e/no-such-repo-{}:v1", registry(), nonce());

    for image in [missing_tag, missing_repo] {
        let (code, message) = code_and_message(client.pull_image(&image, None).await);
        assert_eq!(code, Code::NotFound, "{image}: {message}");
        // dockerd's words: "manifest for <image> not found: manifest unknown"
        // from graph-driver engines, "<image>: not found" from the containerd
        // image store.
        assert!(message.contains("not found"), "{message}");
        assert!(message.contains(&image), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_references_are_invalid_arguments() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    // Uppercase is malformed in a repository path only: in `UPPER/case` the
    // first component names a registry host, and engines newer than 20.10
    // try to reach it.
    for image in ["", "case/UPPER", "busybox:bad tag", "busybox@sha256:123"] {
        let (code, message) = code_and_message(client.pull_image(image, None).await);
        assert_eq!(code, Code::InvalidArgument, "{image:?}: {message}");
    }
    let id = docker_image_id(&busybox_image());
    let (code, message) = code_and_message(client.pull_image(&id, None).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_by_id_removes_every_tag_and_digest() {
    let image = PushedImage::push("rm-id", &["v1", "v2"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();
    client.pull_image(&image.tag("v2"), None).await.unwrap();
    assert_eq!(listed(&client, &image.id).await.unwrap().repo_tags.len(), 2);

    client.remove_image(&image.id).await.unwrap();

    assert!(!docker_has_image(&image.id));
    assert!(listed(&client, &image.id).await.is_none());
    for name in [image.id.clone(), image.tag("v1"), image.by_digest()] {
        let status = client.image_status(&name, false).await.unwrap();
        assert!(status.image.is_none(), "{name} still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_by_tag_leaves_the_other_tags() {
    let image = PushedImage::push("rm-tag", &["v1", "v2"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();
    client.pull_image(&image.tag("v2"), None).await.unwrap();

    client.remove_image(&image.tag("v1")).await.unwrap();

    let gone = client.image_status(&image.tag("v1"), false).await.unwrap();
    assert!(gone.image.is_none());
    let kept = client.image_status(&image.tag("v2"), false).await.unwrap();
    let kept = kept.image.expect("the other tag is kept");
    assert_eq!(kept.id, image.id);
    assert_eq!(kept.repo_tags, [image.tag("v2")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_by_digest_removes_an_image_pulled_by_digest() {
    let image = PushedImage::push("rm-digest", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.by_digest(), None).await.unwrap();

    client.remove_image(&image.by_digest()).await.unwrap();

    assert!(!docker_has_image(&image.id));
    assert!(listed(&client, &image.id).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_twice_or_removing_a_missing_image_succeeds() {
    let image = PushedImage::push("rm-twice", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();

    client.remove_image(&image.tag("v1")).await.unwrap();
    client.remove_image(&image.tag("v1")).await.unwrap();
    client.remove_image(&image.id).await.unwrap();
    let never_there = format!("sha256:{}", "0".repeat(64));
    client.remove_image(&never_there).await.unwrap();
    client
        .remove_image(&format!("{}/dockshim-e2e/never-{}:v1", registry(), nonce()))
        .await
        .unwrap();
    assert!(!docker_has_image(&image.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_a_container_uses_is_not_removed() {
    let image = PushedImage::push("in-use", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();
    let container = Container::create(&image.id);

    let (code, message) = code_and_message(client.remove_image(&image.id).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains(&container.name), "{message}");
    let (code, message) = code_and_message(client.remove_image(&image.tag("v1")).await);
    assert_eq!(code, Code::FailedPrecondition, "{message}");

    let kept = listed(&client, &image.id).await.expect("image kept");
    assert_eq!(kept.repo_tags, [image.tag("v1")]);
    drop(container);
    client.remove_image(&image.id).await.unwrap();
    assert!(!docker_has_image(&image.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_image_id_is_the_pulled_image_ref_on_either_image_store() {
    // Graph drivers identify an image by its configuration digest, the
    // containerd image store by its manifest digest; both must give the
    // kubelet one identity for the image and its containers.
    let image = PushedImage::push("identity", &["v1"]);
    let world = World::start().await;
    let pulled = world
        .client
        .pull_image(&image.tag("v1"), None)
        .await
        .unwrap();
    let config = world.config("identity", &image.tag("v1"), "sleep 300");
    let id = world.create(config).await.unwrap();

    let status = world.status(&id).await;
    assert_eq!(status.image_id, pulled.image_ref);
    assert_eq!(
        status.image_ref,
        format!("docker-pullable://{}", image.by_digest())
    );
    assert_eq!(status.image.map(|i| i.image), Some(image.tag("v1")));
    let containers = world.client.list_containers(None).await.unwrap();
    let listed_container = containers.iter().find(|c| c.id == id).unwrap();
    assert_eq!(listed_container.image_id, pulled.image_ref);
    let listed_image = listed(&world.client, &pulled.image_ref).await.unwrap();
    assert_eq!(listed_image.repo_digests, [image.by_digest()]);
    let by_ref = world
        .client
        .image_status(&status.image_ref, false)
        .await
        .unwrap();
    assert_eq!(by_ref.image.map(|i| i.id), Some(pulled.image_ref.clone()));

    world.client.remove_container(&id).await.unwrap();
    world.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_missing_image_is_empty_not_an_error() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let nonce = nonce();

    for image in [
        format!("{}/dockshim-e2e/missing-{nonce}:v1", registry()),
        format!("dockshim-e2e-missing-{nonce}"),
        format!("sha256:{}", "0".repeat(64)),
        "0123456789ab".to_owned(),
    ] {
        let status = client.image_status(&image, true).await.unwrap();
        assert!(status.image.is_none(), "{image}");
        assert!(status.info.is_empty(), "{image}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_finds_an_image_by_id_and_id_prefix() {
    let busybox_id = docker_image_id(&busybox_image());
    let hex = busybox_id.trim_start_matches("sha256:");
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    for name in [
        busybox_id.clone(),
        hex.to_owned(),
        format!("sha256:{}", &hex[..12]),
        hex[..12].to_owned(),
    ] {
        let status = client.image_status(&name, false).await.unwrap();
        assert_eq!(
            status.image.map(|i| i.id).as_deref(),
            Some(busybox_id.as_str()),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_user_becomes_uid_or_username_and_verbose_shows_the_config() {
    let numeric = PushedImage::push_with_user("uid", &["v1"], Some("1000:1000"));
    let named = PushedImage::push_with_user("username", &["v1"], Some("nobody"));
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&numeric.tag("v1"), None).await.unwrap();
    client.pull_image(&named.tag("v1"), None).await.unwrap();

    let listed_numeric = listed(&client, &numeric.id).await.unwrap();
    assert_eq!(listed_numeric.uid, Some(cri::Int64Value { value: 1000 }));
    assert_eq!(listed_numeric.username, "");
    let listed_named = listed(&client, &named.id).await.unwrap();
    assert_eq!(listed_named.uid, None);
    assert_eq!(listed_named.username, "nobody");

    let status = client.image_status(&numeric.tag("v1"), true).await.unwrap();
    assert_eq!(
        status.image.as_ref().and_then(|i| i.uid),
        Some(cri::Int64Value { value: 1000 })
    );
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    assert_eq!(info["id"], numeric.id.as_str());
    assert_eq!(info["imageSpec"]["config"]["User"], "1000:1000");
    assert_eq!(
        info["imageSpec"]["config"]["Cmd"],
        serde_json::json!(["/bin/sh"])
    );
    assert_eq!(
        info["imageSpec"]["rootfs"]["diff_ids"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_reference_name_and_id() {
    let image = PushedImage::push("filter", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();
    let only = HashSet::from([image.id.clone()]);

    for filter in [
        image.tag("v1"),
        image.repository.clone(),
        image.by_digest(),
        image.id.clone(),
    ] {
        let found = client.list_images(Some(&filter)).await.unwrap().images;
        assert_eq!(ids(&found), only, "{filter}");
    }
    let none = client.list_images(Some(&image.tag("v2"))).await.unwrap();
    assert!(none.images.is_empty());
    let everything = client.list_images(Some("")).await.unwrap().images;
    assert!(ids(&everything).contains(&image.id));
    let (code, _) = code_and_message(client.list_images(Some("Not/Valid")).await);
    assert_eq!(code, Code::InvalidArgument);
}

/// A dockshim that reaches dockerd through a proxy counting its calls.
fn behind_proxy() -> (DockerProxy, Dockshim) {
    let proxy = DockerProxy::start();
    let dockshim = Dockshim::start_with(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    });
    (proxy, dockshim)
}

/// Lists until `calls` ListImages in a row make no Docker call: images
/// other tests pull or remove meanwhile make dockshim list again.
async fn warm_lists(proxy: &DockerProxy, client: &CriClient, calls: usize) -> bool {
    common::eventually(QUIET_WAIT, || async {
        let before = proxy.requests_to("");
        for _ in 0..calls {
            client.list_images(None).await.expect("ListImages");
        }
        proxy.requests_to("") == before
    })
    .await
}

/// A tag of this run's that names no registry image: `test_run_id` as far
/// as a tag may carry it.
fn run_tag() -> String {
    let run: String = common::test_run_id()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(100)
        .collect();
    format!("{}/dockshim-e2e/listing-{}:run-{run}", registry(), nonce())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_list_images_makes_no_docker_call() {
    let (proxy, dockshim) = behind_proxy();
    let client = dockshim.client().await;
    let cold = proxy.requests_to("/images/json");
    client.list_images(None).await.unwrap();
    assert_eq!(proxy.requests_to("/images/json"), cold + 1);

    assert!(
        warm_lists(&proxy, &client, 20).await,
        "no 20 ListImages in a row without a Docker call within {QUIET_WAIT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_tagged_and_untagged_behind_dockshims_back_show_within_seconds() {
    let (proxy, dockshim) = behind_proxy();
    let client = dockshim.client().await;
    let busybox_id = docker_image_id(&busybox_image());
    assert!(
        warm_lists(&proxy, &client, 2).await,
        "ListImages never warm"
    );
    let tag = run_tag();
    let tags_of_busybox = || async {
        let shown = listed(&client, &busybox_id).await;
        shown.expect("busybox listed").repo_tags
    };

    let local = LocalTag::new(&busybox_image(), &tag);
    let shown = common::eventually(EVENT_LAG, || async {
        tags_of_busybox().await.contains(&tag)
    });
    assert!(shown.await, "{tag} not listed within {EVENT_LAG:?}");

    drop(local);
    assert!(!docker_has_image(&tag));
    let gone = common::eventually(EVENT_LAG, || async {
        !tags_of_busybox().await.contains(&tag)
    });
    assert!(gone.await, "{tag} still listed after {EVENT_LAG:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_or_removal_shows_in_the_very_next_list() {
    let image = PushedImage::push("listing", &["v1"]);
    let (proxy, dockshim) = behind_proxy();
    let client = dockshim.client().await;
    assert!(
        warm_lists(&proxy, &client, 2).await,
        "ListImages never warm"
    );

    client.pull_image(&image.tag("v1"), None).await.unwrap();
    let shown = listed(&client, &image.id).await;
    assert_eq!(
        shown.expect("pulled image listed").repo_tags,
        [image.tag("v1")]
    );

    assert!(
        warm_lists(&proxy, &client, 2).await,
        "ListImages never warm"
    );
    client.remove_image(&image.tag("v1")).await.unwrap();
    assert!(listed(&client, &image.id).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_images_sends_each_listed_image_once() {
    let image = PushedImage::push("stream", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    client.pull_image(&image.tag("v1"), None).await.unwrap();

    let streamed: Vec<cri::Image> = client
        .stream_images(None)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|m| m.images)
        .collect();
    let listed = client.list_images(None).await.unwrap().images;

    assert_eq!(
        streamed.len(),
        ids(&streamed).len(),
        "an image was sent twice"
    );
    assert!(ids(&streamed).contains(&image.id));
    // Other tests may pull or remove their own images meanwhile.
    let mine: Vec<&cri::Image> = streamed.iter().filter(|i| i.id == image.id).collect();
    assert_eq!(mine.len(), 1);
    assert!(listed.iter().any(|i| i.id == image.id));
    let filtered = client.stream_images(Some(&image.tag("v1"))).await.unwrap();
    let filtered: Vec<cri::Image> = filtered.into_iter().flat_map(|m| m.images).collect();
    assert_eq!(ids(&filtered), HashSet::from([image.id.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_image_is_pinned() {
    let pause_id = docker_image_id(&pause_image());
    let busybox_id = docker_image_id(&busybox_image());
    let dockshim = Dockshim::start_with(Options {
        extra_args: vec!["--pod-infra-container-image".into(), pause_image()],
        ..Options::default()
    });
    let client = dockshim.client().await;

    assert!(listed(&client, &pause_id).await.unwrap().pinned);
    assert!(!listed(&client, &busybox_id).await.unwrap().pinned);
    let status = client.image_status(&pause_image(), false).await.unwrap();
    assert!(status.image.unwrap().pinned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untagged_images_are_listed_with_no_tags() {
    let dangling = DanglingImage::import();
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let shown = listed(&client, &dangling.id)
        .await
        .expect("untagged image listed");

    assert!(shown.repo_tags.is_empty(), "{:?}", shown.repo_tags);
    assert!(shown.repo_digests.is_empty(), "{:?}", shown.repo_digests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_both_succeed() {
    let image = PushedImage::push("concurrent", &["v1"]);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let reference = image.tag("v1");

    let (first, second) = tokio::join!(
        client.pull_image(&reference, None),
        client.pull_image(&reference, None)
    );

    assert_eq!(first.unwrap().image_ref, image.id);
    assert_eq!(second.unwrap().image_ref, image.id);
    assert_eq!(
        listed(&client, &image.id).await.unwrap().repo_tags,
        [reference]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_credentials_are_used_and_never_echoed() {
    let password = format!("pw-{}", nonce());
    let wrong_password = format!("wrong-{}", nonce());
    let auth_registry = AuthRegistry::start("dockshim", &password);
    let image = PushedImage::push("auth", &["v1"]);
    let through_auth = format!("{}/{}:v1", auth_registry.addr, image.path);
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let credentials = |password: &str| cri::AuthConfig {
        username: "dockshim".into(),
        password: password.into(),
        server_address: auth_registry.addr.clone(),
        ..cri::AuthConfig::default()
    };

    let (code, message) = code_and_message(client.pull_image(&through_auth, None).await);
    assert_eq!(code, Code::Unauthenticated, "{message}");

    let (code, message) = code_and_message(
        client
            .pull_image(&through_auth, Some(credentials(&wrong_password)))
            .await,
    );
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(!message.contains(&wrong_password), "{message}");

    let pulled = client
        .pull_image(&through_auth, Some(credentials(&password)))
        .await
        .unwrap();
    assert_eq!(pulled.image_ref, image.id);
    client.remove_image(&through_auth).await.unwrap();

    // The same credentials as the CRI `auth` field: base64 of user:password.
    let encoded = dockshim::codec::base64::encode(
        format!("dockshim:{password}").as_bytes(),
        dockshim::codec::base64::Alphabet::Standard,
    );
    let pulled = client
        .pull_image(
            &through_auth,
            Some(cri::AuthConfig {
                auth: encoded.clone(),
                ..cri::AuthConfig::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(pulled.image_ref, image.id);

    let log = dockshim.stderr();
    for secret in [&password, &wrong_password, &encoded] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pull_is_cancelled_after_the_progress_deadline() {
    let stub = StallingRegistry::start();
    let dockshim = Dockshim::start_with(Options {
        extra_args: vec![
            "--image-pull-progress-deadline".into(),
            SHORT_PULL_DEADLINE.into(),
        ],
        ..Options::default()
    });
    let client = dockshim.client().await;
    let reference = format!("{}/dockshim-e2e/stalled:v1", stub.addr);

    let started = Instant::now();
    let (code, message) = code_and_message(client.pull_image(&reference, None).await);
    let took = started.elapsed();

    assert_eq!(code, Code::DeadlineExceeded, "{message}");
    assert!(message.contains("no progress for 3s"), "{message}");
    assert!(message.contains(&reference), "{message}");
    assert!(took >= Duration::from_secs(3), "cancelled after {took:?}");
    assert!(
        took < Duration::from_secs(30),
        "cancelled only after {took:?}"
    );
    assert!(!docker_has_image(&reference));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_fs_info_reports_dockers_root_filesystem() {
    let info = common::docker::get_json("/info");
    let mut root_dir = info["DockerRootDir"].as_str().unwrap().to_owned();
    // The containerd image store keeps layers in its snapshotter's
    // directory, under the root of the containerd dockerd started
    // (vendor-docs/container-storage.md).
    let snapshotter = info["DriverStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|pair| pair[0] == "driver-type" && pair[1] == "io.containerd.snapshotter.v1");
    if snapshotter {
        let driver = info["Driver"].as_str().unwrap();
        root_dir = format!("{root_dir}/containerd/daemon/io.containerd.snapshotter.v1.{driver}");
    }
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();

    let info = client.image_fs_info().await.unwrap();

    let [images] = info.image_filesystems.as_slice() else {
        panic!("one image filesystem expected: {info:?}");
    };
    assert_eq!(images.fs_id.as_ref().unwrap().mountpoint, root_dir);
    assert!(images.used_bytes.as_ref().unwrap().value > 0);
    assert!(images.inodes_used.as_ref().unwrap().value > 0);
    let age = before.abs_diff(u128::try_from(images.timestamp).unwrap());
    assert!(
        age < Duration::from_secs(60).as_nanos(),
        "figures {age} ns old"
    );
    let [containers] = info.container_filesystems.as_slice() else {
        panic!("one container filesystem expected: {info:?}");
    };
    assert_eq!(containers.fs_id.as_ref().unwrap().mountpoint, root_dir);
    assert!(containers.used_bytes.is_some());
    // Served from the cache: a second call answers at once.
    let started = Instant::now();
    client.image_fs_info().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}
