//! CDI devices end to end: the real binary and the engine under test. A
//! CDI spec of the test's own (a kind no other test or vendor uses) goes
//! into one of the engine's `CDISpecDirs`; its one device injects an
//! environment variable and a bind mount of a temporary file. On an engine
//! without CDI the request is refused before anything is created. Needs
//! root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use common::busybox_image;
use common::docker::{daemon_version, get_json};
use common::pod::{wait_for_log_line, World};
use dockshim::api::v1 as cri;
use tonic::Code;

/// Where the device's bind mount appears in the container.
const PROBE_PATH: &str = "/dockshim-cdi-probe";

/// The test's CDI spec file and the directory made for it, removed on drop.
struct CdiSpec {
    file: PathBuf,
    /// The spec directory, when the test had to create it.
    created_dir: Option<PathBuf>,
}

impl CdiSpec {
    /// Writes `spec` as `<dir>/<name>.json`, creating `dir` if needed.
    fn write(dir: PathBuf, name: &str, spec: &serde_json::Value) -> CdiSpec {
        let created_dir = (!dir.exists()).then(|| dir.clone());
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.json"));
        let written = CdiSpec { file, created_dir };
        fs::write(&written.file, spec.to_string()).unwrap();
        written
    }
}

impl Drop for CdiSpec {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
        if let Some(dir) = &self.created_dir {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The engine's CDI spec directories; empty where CDI is off.
fn cdi_spec_dirs() -> Vec<PathBuf> {
    get_json("/info")["CDISpecDirs"]
        .as_array()
        .map(|dirs| {
            dirs.iter()
                .filter_map(|dir| dir.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default()
}

fn cdi_device(name: &str) -> cri::CdiDevice {
    cri::CdiDevice {
        name: name.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdi_device_injects_its_environment_and_mount() {
    let world = World::start().await;
    let unique = world.run_id.clone();
    let kind = format!("dockshim-test.example/dev{unique}");
    let device = format!("{kind}=probe");

    let mut bad = world.config("badname", &busybox_image(), "true");
    bad.cdi_devices = vec![cdi_device(&format!("dev{unique}=probe"))];
    let err = world.create(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("CDI_devices[0].name"), "{err:?}");

    let Some(dir) = cdi_spec_dirs().into_iter().next() else {
        let mut config = world.config("nocdi", &busybox_image(), "true");
        config.cdi_devices = vec![cdi_device(&device)];
        let err = world.create(config).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        let version = daemon_version();
        assert!(err.message().contains(&version), "{err:?} lacks {version}");
        let listed = world.client.list_containers(None).await.unwrap();
        assert!(
            listed.iter().all(|c| c.pod_sandbox_id != world.sandbox_id),
            "{listed:?}"
        );
        eprintln!("skipped: the injection check (the engine has CDI off); refusal checked");
        world.clean_up().await;
        return;
    };

    let probe = tempfile::NamedTempFile::new().unwrap();
    fs::write(probe.path(), format!("probe-{unique}\n")).unwrap();
    let spec = serde_json::json!({
        "cdiVersion": "0.5.0",
        "kind": kind,
        "devices": [{
            "name": "probe",
            "containerEdits": {
                "env": [format!("DOCKSHIM_CDI_PROBE={unique}")],
                "mounts": [{
                    "hostPath": probe.path(),
                    "containerPath": PROBE_PATH,
                    "type": "bind",
                    "options": ["bind", "ro"]
                }]
            }
        }]
    });
    let _spec = CdiSpec::write(dir, &format!("dockshim-test-{unique}"), &spec);

    // The container's process reports the variable: dockerd gives an exec
    // the container's configured Env, without CDI's edits.
    let script = "echo probe-env=$DOCKSHIM_CDI_PROBE; sleep 300";
    let mut by_field = world.config("byfield", &busybox_image(), script);
    by_field.cdi_devices = vec![cdi_device(&device)];
    let mut by_annotation = world.config("byannotation", &busybox_image(), script);
    by_annotation.annotations =
        HashMap::from([("cdi.k8s.io/dockshim-test_probe".to_owned(), device.clone())]);
    for config in [by_field, by_annotation] {
        let name = config.metadata.as_ref().unwrap().name.clone();
        let id = world.create(config).await.unwrap();
        let inspect = get_json(&format!("/containers/{id}/json"));
        assert_eq!(
            inspect["HostConfig"]["DeviceRequests"][0]["DeviceIDs"],
            serde_json::json!([device]),
            "{name}"
        );
        world.client.start_container(&id).await.unwrap();
        let expected = format!(" stdout F probe-env={unique}");
        let log = wait_for_log_line(&world.logs.path().join(format!("{name}.log")), &expected);
        assert!(
            log.lines().any(|line| line.ends_with(&expected)),
            "{name}: {log:?}"
        );
        let out = world
            .client
            .exec_sync(&id, &["cat", PROBE_PATH], 10)
            .await
            .unwrap();
        assert_eq!(
            (String::from_utf8_lossy(&out.stdout).as_ref(), out.exit_code),
            (format!("probe-{unique}\n").as_str(), 0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    world.clean_up().await;
}
