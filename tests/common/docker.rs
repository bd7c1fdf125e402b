//! Direct, minimal queries to dockerd, so tests can compare dockshim's answers
//! with the daemon's own. HTTP/1.0 keeps the response unchunked and the
//! connection closed at its end, so reading to EOF is the whole parser.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Where the machine's own dockerd listens.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The engine under test: `DOCKSHIM_TEST_DOCKER_SOCKET` (tests/run.sh sets
/// it for each engine of its matrix), else the machine's dockerd.
pub fn docker_socket() -> String {
    std::env::var("DOCKSHIM_TEST_DOCKER_SOCKET")
        .unwrap_or_else(|_| DEFAULT_DOCKER_SOCKET.to_owned())
}

/// GETs `path` from dockerd and parses the JSON body; panics on any failure.
pub fn get_json(path: &str) -> serde_json::Value {
    let socket = docker_socket();
    let mut stream =
        UnixStream::connect(&socket).unwrap_or_else(|e| panic!("connect to {socket}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).expect("dockerd answered with non-UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in dockerd's answer: {text:?}"));
    let status_line = head.lines().next().unwrap_or_default();
    assert!(
        status_line.contains(" 200 "),
        "GET {path} from dockerd: {status_line}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: bad JSON {e}: {body}"))
}

/// dockerd's `Version` from `GET /version`, e.g. `20.10.24+dfsg1`.
pub fn daemon_version() -> String {
    string_field(&get_json("/version"), "Version")
}

/// dockerd's `CgroupDriver` from `GET /info`: `cgroupfs` or `systemd`.
pub fn cgroup_driver() -> String {
    string_field(&get_json("/info"), "CgroupDriver")
}

fn string_field(object: &serde_json::Value, name: &str) -> String {
    object[name]
        .as_str()
        .unwrap_or_else(|| panic!("dockerd's answer has no string {name}: {object}"))
        .to_owned()
}

/// A client of the test machine's dockerd and the name of the busybox test
/// image, or `None`, with the reason printed, when there is no dockerd or
/// no image to test against (a failure under tests/run.sh).
pub fn dockerd_with_busybox() -> Option<(dockshim::docker::DockerClient, String)> {
    let socket = docker_socket();
    if !std::path::Path::new(&socket).exists() {
        super::missing_environment(format!(
            "{socket} does not exist, no dockerd to test against"
        ));
        return None;
    }
    let docker =
        dockshim::docker::DockerClient::new(&format!("unix://{socket}"), Duration::from_secs(60))
            .unwrap();
    if let Err(err) = docker.negotiate() {
        super::missing_environment(format!("dockerd does not answer: {err}"));
        return None;
    }
    let image = super::busybox_image();
    if docker
        .get_json::<serde_json::Value>(&format!("/images/{image}/json"))
        .is_err()
    {
        super::missing_environment(format!(
            "test image {image} is missing (tests/images/build.sh makes it)"
        ));
        return None;
    }
    Some((docker, image))
}
