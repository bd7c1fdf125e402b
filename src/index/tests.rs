//! The index driven by a scripted dockerd: filling, following events,
//! losing the stream, catching up when cold, and publishing changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::testing::FakeDocker;
use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn config() -> IndexConfig {
    IndexConfig {
        idle_tick: Duration::from_millis(20),
        reconcile_period: Duration::from_secs(3600),
        catch_up_budget: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
    }
}

fn start(fake: &FakeDocker, config: IndexConfig) -> Arc<Index> {
    Index::start_with(Box::new(fake.clone()), config).unwrap()
}

fn warm(fake: &FakeDocker) -> Arc<Index> {
    let index = start(fake, config());
    assert!(index.wait_warm(WAIT), "index never warmed up");
    index
}

/// Polls `condition` every millisecond until it holds; panics after WAIT.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn state_of(index: &Index, id: &str) -> Option<State> {
    index.get(id).unwrap().map(|e| e.state)
}

fn all_containers(index: &Index) -> Vec<String> {
    index
        .containers(&ContainerFilter::default())
        .unwrap()
        .iter()
        .map(|e| e.id.clone())
        .collect()
}

/// Every event queued for `sub` within a short wait, as (kind, id).
fn drain(sub: &Subscription) -> Vec<(EventKind, String)> {
    let mut out = Vec::new();
    while let Received::Event(event) = sub.recv_timeout(Duration::from_millis(100)) {
        out.push((event.kind, event.entry.id.clone()));
    }
    out
}

fn pod(fake: &FakeDocker) {
    fake.create_quietly("s1", Some("podsandbox"), "");
    fake.start_quietly("s1");
    fake.create_quietly("c1", Some("container"), "s1");
    fake.start_quietly("c1");
}

#[test]
fn fills_with_labelled_containers_and_ignores_the_rest() {
    let fake = FakeDocker::default();
    pod(&fake);
    fake.create_quietly("x1", None, "");
    fake.create_quietly("x2", Some("other"), "");
    let index = warm(&fake);
    assert_eq!(index.len(), 2);
    let sandboxes = index.sandboxes(&SandboxFilter::default()).unwrap();
    assert_eq!(sandboxes.len(), 1);
    assert!(sandboxes[0].is_ready());
    assert_eq!(all_containers(&index), ["c1"]);
    assert_eq!(index.containers_of("s1").unwrap()[0].id, "c1");
    assert!(index.get("x1").unwrap().is_none());
}

#[test]
fn warm_queries_make_no_docker_calls() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let before = index.docker_calls();
    for _ in 0..100 {
        index.sandboxes(&SandboxFilter::default()).unwrap();
        index.containers(&ContainerFilter::default()).unwrap();
        index.get("c1").unwrap().unwrap();
        index.containers_of("s1").unwrap();
    }
    assert_eq!(index.docker_calls(), before);
}

#[test]
fn the_generation_moves_with_every_change_and_is_withheld_while_cold() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let first = index.generation().unwrap();
    assert_eq!(index.generation_at_hand(), Some(first));
    // Inspecting again what has not changed changes nothing.
    index.refresh("c1").unwrap();
    assert_eq!(index.generation(), Some(first));
    fake.create("c2", "container", "s1");
    eventually("c2 created", || index.generation() > Some(first));
    let created = index.generation().unwrap();
    fake.remove("c2");
    eventually("c2 removed", || index.generation() > Some(created));
    fake.set_down(true);
    eventually("cold", || !index.is_warm());
    assert_eq!(index.generation(), None);
    assert_eq!(index.generation_at_hand(), None);
}

#[test]
fn events_keep_entries_current_and_subscribers_see_each_step_in_order() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let sub = index.subscribe(16);

    fake.create("c2", "container", "s1");
    eventually("c2 created", || {
        state_of(&index, "c2") == Some(State::Created)
    });
    fake.start("c2");
    eventually("c2 running", || {
        state_of(&index, "c2") == Some(State::Running)
    });
    fake.kill("c2");
    eventually("c2 exited", || {
        state_of(&index, "c2") == Some(State::Exited)
    });
    assert_eq!(index.get("c2").unwrap().unwrap().exit_code, 137);
    fake.remove("c2");
    eventually("c2 gone", || index.get("c2").unwrap().is_none());

    let c2 = "c2".to_owned();
    assert_eq!(
        drain(&sub),
        [
            (EventKind::Created, c2.clone()),
            (EventKind::Started, c2.clone()),
            (EventKind::Stopped, c2.clone()),
            (EventKind::Deleted, c2)
        ]
    );
    assert!(index.events_received() >= 5);
}

#[test]
fn events_name_the_sandbox_of_the_container() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let sub = index.subscribe(4);
    fake.create("c2", "container", "s1");
    let Received::Event(event) = sub.recv_timeout(WAIT) else {
        panic!("no event")
    };
    assert_eq!(event.kind, EventKind::Created);
    assert_eq!(event.sandbox.unwrap().id, "s1");
    assert!(event.timestamp_ns > 0);
}

#[test]
fn a_lost_stream_turns_cold_then_reconnects_and_repairs_what_it_missed() {
    let fake = FakeDocker::default();
    pod(&fake);
    fake.create_quietly("c9", Some("container"), "s1");
    let index = warm(&fake);
    let sub = index.subscribe(16);

    fake.set_down(true);
    eventually("cold", || !index.is_warm());
    fake.exit_quietly("c1", 2);
    fake.remove_quietly("c9");
    fake.create_quietly("c3", Some("container"), "s1");
    fake.set_down(false);

    assert!(index.wait_warm(WAIT));
    assert_eq!(index.reconnects(), 1);
    assert_eq!(state_of(&index, "c1"), Some(State::Exited));
    assert_eq!(all_containers(&index), ["c1", "c3"]);
    let mut events = drain(&sub);
    events.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        events,
        [
            (EventKind::Stopped, "c1".to_owned()),
            (EventKind::Created, "c3".to_owned()),
            (EventKind::Deleted, "c9".to_owned())
        ]
    );
}

#[test]
fn a_stream_closed_by_dockerd_is_reopened() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    fake.cut_streams();
    eventually("reconnected", || index.reconnects() == 1 && index.is_warm());
    fake.kill("c1");
    eventually("c1 exited", || {
        state_of(&index, "c1") == Some(State::Exited)
    });
}

#[test]
fn queries_on_a_cold_index_catch_up_first() {
    let fake = FakeDocker::default();
    fake.set_no_events(true);
    pod(&fake);
    let index = start(&fake, config());
    assert!(!index.wait_warm(Duration::from_millis(50)));
    assert_eq!(all_containers(&index), ["c1"]);
    fake.exit_quietly("c1", 1);
    assert_eq!(state_of(&index, "c1"), Some(State::Exited));
}

#[test]
fn a_cold_query_gives_up_catching_up_at_its_budget() {
    let fake = FakeDocker::default();
    fake.set_no_events(true);
    for i in 0..10 {
        fake.create_quietly(&format!("c{i}"), Some("container"), "s1");
    }
    // Ten inspections take 2 s; the query gives up at its 100 ms budget,
    // with room to spare on a loaded machine.
    fake.set_inspect_delay(Duration::from_millis(200));
    let index = start(
        &fake,
        IndexConfig {
            catch_up_budget: Duration::from_millis(100),
            ..config()
        },
    );
    let started = Instant::now();
    let err = index.containers(&ContainerFilter::default()).unwrap_err();
    assert!(matches!(err, IndexError::CatchUpTimeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_cold_index_without_dockerd_fails_queries_as_unavailable() {
    let fake = FakeDocker::default();
    fake.set_down(true);
    let index = start(&fake, config());
    let err = index.containers(&ContainerFilter::default()).unwrap_err();
    assert!(
        matches!(&err, IndexError::Docker(docker) if !docker.is_refusal()),
        "{err}"
    );
}

#[test]
fn ids_resolve_by_unique_prefix_within_a_kind() {
    let fake = FakeDocker::default();
    fake.create_quietly("abc1", Some("podsandbox"), "");
    fake.create_quietly("abc2", Some("container"), "abc1");
    fake.create_quietly("abd3", Some("container"), "abc1");
    let index = warm(&fake);
    assert_eq!(index.get("abc1").unwrap().unwrap().id, "abc1");
    assert_eq!(index.get("abd").unwrap().unwrap().id, "abd3");
    let err = index.get("abc").unwrap_err();
    assert!(matches!(err, IndexError::AmbiguousId { .. }), "{err}");
    assert_eq!(index.sandbox("abc").unwrap().unwrap().id, "abc1");
    assert_eq!(index.container("abc").unwrap().unwrap().id, "abc2");
    assert!(index.container("abc1").unwrap().is_none());
    assert!(index.get("zzz").unwrap().is_none());
    assert!(matches!(index.get("").unwrap_err(), IndexError::EmptyId));
}

#[test]
fn list_filters_select_by_state_sandbox_and_prefix() {
    let fake = FakeDocker::default();
    pod(&fake);
    fake.create_quietly("c2", Some("container"), "s1");
    fake.create_quietly("s2", Some("podsandbox"), "");
    fake.create_quietly("d1", Some("container"), "s2");
    fake.start_quietly("d1");
    fake.exit_quietly("d1", 0);
    let index = warm(&fake);
    let ids = |filter: ContainerFilter| -> Vec<String> {
        index
            .containers(&filter)
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect()
    };
    let running = ContainerFilter {
        state: Some(CriState::Running),
        ..ContainerFilter::default()
    };
    assert_eq!(ids(running), ["c1"]);
    let of_s1 = ContainerFilter {
        sandbox_id: Some("s1".to_owned()),
        ..ContainerFilter::default()
    };
    assert_eq!(ids(of_s1), ["c1", "c2"]);
    let exited = ContainerFilter {
        state: Some(CriState::Exited),
        ..ContainerFilter::default()
    };
    assert_eq!(ids(exited), ["d1"]);
    let by_prefix = ContainerFilter {
        id_prefix: Some("c".to_owned()),
        ..ContainerFilter::default()
    };
    assert_eq!(ids(by_prefix), ["c1", "c2"]);
    let not_ready = SandboxFilter {
        ready: Some(false),
        ..SandboxFilter::default()
    };
    let sandboxes = index.sandboxes(&not_ready).unwrap();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, "s2");
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off_and_the_index_goes_on() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let slow = index.subscribe(4);
    let fast = index.subscribe(64);
    for i in 0..10 {
        let id = format!("n{i}");
        fake.create(&id, "container", "s1");
        fake.start(&id);
    }
    eventually("all started", || {
        (0..10).all(|i| state_of(&index, &format!("n{i}")) == Some(State::Running))
    });
    assert!(slow.is_lagged());
    assert_eq!(index.lagged_subscribers(), 1);
    let mut queued = 0;
    loop {
        match slow.try_recv() {
            Received::Event(_) => queued += 1,
            Received::Closed { lagged } => {
                assert!(lagged);
                break;
            }
            Received::Empty => panic!("a cut-off subscription must end, not wait"),
        }
    }
    assert_eq!(queued, 4);
    assert_eq!(drain(&fast).len(), 20);
    assert!(!fast.is_lagged());
}

#[test]
fn refresh_shows_a_change_before_its_event_and_forget_drops_without_a_call() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    fake.exit_quietly("c1", 3);
    let entry = index.refresh("c1").unwrap().unwrap();
    assert_eq!((entry.state, entry.exit_code), (State::Exited, 3));
    assert_eq!(state_of(&index, "c1"), Some(State::Exited));

    fake.remove_quietly("c1");
    let calls = index.docker_calls();
    index.forget("c1");
    assert_eq!(index.docker_calls(), calls);
    assert!(index.get("c1").unwrap().is_none());
    assert!(index.refresh("c1").unwrap().is_none());
}

#[test]
fn the_periodic_reconcile_repairs_a_missed_event_while_the_stream_stays_up() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = start(
        &fake,
        IndexConfig {
            reconcile_period: Duration::from_millis(50),
            ..config()
        },
    );
    assert!(index.wait_warm(WAIT));
    fake.exit_quietly("c1", 0);
    // A pass is counted once it has finished, just after its repairs show.
    eventually("repaired by a finished periodic pass", || {
        state_of(&index, "c1") == Some(State::Exited) && index.reconciles() >= 2
    });
    assert_eq!(index.reconnects(), 0);
}

#[test]
fn an_idle_warm_index_makes_no_docker_calls() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    let calls = index.docker_calls();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(index.docker_calls(), calls);
}

#[test]
fn dockerd_is_alive_while_its_last_answer_is_younger_than_the_bound() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    assert!(index.dockerd_alive_within(WAIT));
    // An idle stream proves nothing: the answers of the fill age.
    let bound = Duration::from_millis(100);
    thread::sleep(bound + Duration::from_millis(50));
    assert!(!index.dockerd_alive_within(bound));

    fake.kill("c1");
    eventually("the event heard", || index.dockerd_alive_within(bound));
    thread::sleep(bound + Duration::from_millis(50));
    index.heard_from_dockerd();
    assert!(index.dockerd_alive_within(bound));
}

#[test]
fn a_fresh_answer_does_not_vouch_for_dockerd_while_the_stream_is_lost() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    fake.set_down(true);
    eventually("cold", || !index.is_warm());
    index.heard_from_dockerd();
    assert!(!index.dockerd_alive_within(WAIT));
}

#[test]
fn dropping_the_index_ends_its_thread() {
    let fake = FakeDocker::default();
    pod(&fake);
    let index = warm(&fake);
    assert_eq!(fake.live_feeds(), 1);
    drop(index);
    eventually("event thread gone", || fake.live_feeds() == 0);
}
