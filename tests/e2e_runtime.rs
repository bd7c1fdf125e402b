//! Runtime-level RPCs (Status, RuntimeConfig, UpdateRuntimeConfig) answered
//! by the real binary against the real dockerd, checked with tonic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::client::{condition, CriClient};
use common::fixture::{Dockshim, Options};
use common::proxy::DockerProxy;
use dockshim::api::v1 as cri;

/// How soon after dockerd stops or returns Status must say so.
const READINESS_LAG: Duration = Duration::from_secs(2);
/// How long the test keeps polling Status after dockerd stops or returns.
const READINESS_WATCH: Duration = Duration::from_secs(3);
const STATUS_POLL: Duration = Duration::from_millis(100);
/// A Status call must answer within this even while dockerd is gone.
const STATUS_PROMPT: Duration = Duration::from_secs(2);
/// How soon after dockerd stops answering, its event stream left open,
/// RuntimeReady must be false: the 5 s an answer vouches for dockerd, the
/// 1 s Status waits for a ping, and a margin for a loaded machine.
const HUNG_READINESS_LAG: Duration = Duration::from_secs(8);
/// Longer than the test: a held request is never answered.
const HUNG_FOR: Duration = Duration::from_secs(60);

/// A bridge network with host-local addresses; the plugins ship in Debian's
/// containernetworking-plugins.
const BRIDGE_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "dockshim-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "dockshim-e2e0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.250.0.0/24" }]]
      }
    }
  ]
}
"#;

async fn ready(client: &CriClient, kind: &str) -> (bool, String) {
    let status = client.status(false).await.expect("Status");
    condition(&status, kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_is_ready_with_a_live_dockerd() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let (runtime_ready, reason) = ready(&client, "RuntimeReady").await;

    assert!(runtime_ready, "RuntimeReady is false: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_is_not_ready_without_a_cni_config() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let (network_ready, reason) = ready(&client, "NetworkReady").await;

    assert!(!network_ready, "NetworkReady with an empty --cni-conf-dir");
    assert!(!reason.is_empty(), "NetworkReady is false without a reason");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_is_ready_with_a_valid_cni_conflist() {
    let dockshim = Dockshim::start_with(Options {
        cni_conflist: Some(BRIDGE_CONFLIST.into()),
        ..Options::default()
    });
    let client = dockshim.client().await;

    let (network_ready, reason) = ready(&client, "NetworkReady").await;

    assert!(network_ready, "NetworkReady is false: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_is_ready_when_pods_use_the_host_network_only() {
    let dockshim = Dockshim::start_with(Options {
        extra_args: vec!["--network-plugin".into(), "none".into()],
        ..Options::default()
    });
    let client = dockshim.client().await;

    let (network_ready, reason) = ready(&client, "NetworkReady").await;

    assert!(network_ready, "NetworkReady is false: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_status_info_values_are_json() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let status = client.status(true).await.expect("verbose Status");

    assert!(!status.info.is_empty(), "verbose Status has no info");
    for (key, value) in &status.info {
        let parsed = serde_json::from_str::<serde_json::Value>(value);
        assert!(parsed.is_ok(), "info[{key:?}] is not JSON: {value}");
    }
    let terse = client.status(false).await.expect("Status");
    assert!(
        terse.info.is_empty(),
        "info without verbose: {:?}",
        terse.info
    );
}

/// Polls RuntimeReady for `READINESS_WATCH` after `changed`; returns each
/// answer with the time its call started. Every call must answer within
/// `STATUS_PROMPT`.
async fn watch_runtime_ready(client: &CriClient, changed: Instant) -> Vec<(Duration, bool)> {
    let mut answers = Vec::new();
    while changed.elapsed() < READINESS_WATCH {
        let started = Instant::now();
        let status = tokio::time::timeout(STATUS_PROMPT * 2, client.status(false))
            .await
            .expect("Status hung")
            .expect("Status");
        let took = started.elapsed();
        assert!(took <= STATUS_PROMPT, "Status took {took:?}");
        answers.push((started - changed, condition(&status, "RuntimeReady").0));
        tokio::time::sleep(STATUS_POLL).await;
    }
    answers
}

/// Asserts every call started `READINESS_LAG` or more after the change
/// answered `expected`.
fn assert_settled(answers: &[(Duration, bool)], expected: bool) {
    let late: Vec<_> = answers
        .iter()
        .filter(|(started, _)| *started >= READINESS_LAG)
        .collect();
    assert!(!late.is_empty(), "no Status call after {READINESS_LAG:?}");
    assert!(
        late.iter().all(|(_, ready)| *ready == expected),
        "RuntimeReady still not {expected} {READINESS_LAG:?} after the change: {answers:?}"
    );
}

/// A dockshim whose dockerd is reached through a proxy the test controls,
/// reporting RuntimeReady; the dockshim stops when its handle is dropped.
async fn ready_behind_proxy() -> (DockerProxy, Dockshim, CriClient) {
    let proxy = DockerProxy::start();
    let dockshim = Dockshim::start_with(Options {
        docker_socket: proxy.socket().to_owned(),
        ..Options::default()
    });
    let client = dockshim.client().await;
    assert!(ready(&client, "RuntimeReady").await.0, "not ready at start");
    (proxy, dockshim, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_ready_follows_dockerd_going_away_and_coming_back_within_two_seconds() {
    let (proxy, _dockshim, client) = ready_behind_proxy().await;

    proxy.kill();
    let answers = watch_runtime_ready(&client, Instant::now()).await;
    assert_settled(&answers, false);

    proxy.revive();
    let answers = watch_runtime_ready(&client, Instant::now()).await;
    assert_settled(&answers, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_ready_turns_false_when_dockerd_hangs_with_its_event_stream_open() {
    let (proxy, _dockshim, client) = ready_behind_proxy().await;

    // Every request from now on is held; the event stream stays open.
    proxy.delay("/", HUNG_FOR);
    let hung = Instant::now();
    loop {
        let started = Instant::now();
        let (runtime_ready, reason) = ready(&client, "RuntimeReady").await;
        let took = started.elapsed();
        assert!(took <= STATUS_PROMPT, "Status took {took:?}");
        if !runtime_ready {
            assert_eq!(reason, "DockerDaemonNotReady");
            break;
        }
        assert!(
            hung.elapsed() < HUNG_READINESS_LAG,
            "RuntimeReady still true {:?} after dockerd hung",
            hung.elapsed()
        );
        tokio::time::sleep(STATUS_POLL).await;
    }
    println!("RuntimeReady false {:?} after dockerd hung", hung.elapsed());
    proxy.clear_delays();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_config_reports_dockerd_cgroup_driver() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    let config = client.runtime_config().await.expect("RuntimeConfig");

    let expected = match common::docker::cgroup_driver().as_str() {
        "systemd" => cri::CgroupDriver::Systemd,
        _ => cri::CgroupDriver::Cgroupfs,
    };
    let linux = config.linux.expect("RuntimeConfig.linux is set");
    assert_eq!(linux.cgroup_driver(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_runtime_config_keeps_the_pod_cidr() {
    let dockshim = Dockshim::start();
    let client = dockshim.client().await;

    client
        .update_runtime_config("10.88.0.0/16")
        .await
        .expect("UpdateRuntimeConfig");

    let status = client.status(true).await.expect("verbose Status");
    let pod_cidr = status
        .info
        .get("podCIDR")
        .unwrap_or_else(|| panic!("no podCIDR in verbose info: {:?}", status.info));
    assert!(pod_cidr.contains("10.88.0.0/16"), "podCIDR is {pod_cidr}");
}
