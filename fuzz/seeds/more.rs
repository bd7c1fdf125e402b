//! Seeds of the targets beyond the streaming codecs.

use super::Seeds;

pub fn add_all(seeds: &mut Seeds) {
    docker_response(seeds);
    docker_stream(seeds);
    docker_client(seeds);
}

/// dockerd's answers as Go's net/http writes them.
fn answers() -> Vec<(&'static str, Vec<u8>)> {
    let event = r#"{"status":"start","id":"16e2248315155803f1cc49c952999bdb5e78695829c353806a689151509ec951","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"16e2","Attributes":{"name":"x"}},"scope":"local","time":1,"timeNano":1000000001}"#;
    let image = "{\"Type\":\"image\",\"Action\":\"pull\"}\n";
    let chunked_events = [
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n",
        "Docker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n",
        "Date: Mon, 07 Dec 2026 06:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n",
        &format!("{:x}\r\n{event}\n\r\n", event.len() + 1),
        &format!("{:x};ext=1\r\n{image}\r\n", image.len()),
        "0\r\nX-Trailer: done\r\n\r\n",
    ]
    .concat();
    vec![
        (
            "ping",
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.47\r\nBuilder-Version: 2\r\nCache-Control: no-cache, no-store, must-revalidate\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK".to_vec(),
        ),
        (
            "info",
            [
                &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "[..],
                INFO.len().to_string().as_bytes(),
                b"\r\n\r\n",
                INFO.as_bytes(),
            ]
            .concat(),
        ),
        ("events", chunked_events.into_bytes()),
        (
            "not-found",
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n{\"message\":\"No such container: abc\"}        ".to_vec(),
        ),
        (
            "upgrade",
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x03hi\n\x02\x00\x00\x00\x00\x00\x00\x04err\n".to_vec(),
        ),
        (
            "continue-then-close-delimited",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\n{\"errorDetail\":{\"message\":\"denied\"},\"error\":\"denied\"}\n".to_vec(),
        ),
        ("no-content", b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n".to_vec()),
    ]
}

/// `/info` of a Docker 29 engine with the containerd image store.
const INFO: &str = r#"{"ID":"6a3f","Containers":1,"Driver":"overlayfs","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]],"DockerRootDir":"/var/lib/docker","CgroupDriver":"cgroupfs","CgroupVersion":"2","OperatingSystem":"Debian GNU/Linux 12 (bookworm)","NCPU":2,"MemTotal":25000000000,"Name":"node","ServerVersion":"29.7.2","SecurityOptions":["name=seccomp,profile=builtin","name=cgroupns"],"Runtimes":{"runc":{"path":"runc"},"wrapped":{"path":"/tmp/runtime-wrapper"}},"DefaultRuntime":"wrapped","Containerd":{"Address":"/run/containerd/containerd.sock","Namespaces":{"Containers":"moby","Plugins":"plugins.moby"}}}"#;

fn docker_response(seeds: &mut Seeds) {
    for (name, answer) in answers() {
        // A GET with the default body limit, cut in a few places.
        let mut bytes = vec![3 << 1, 3, 10, 100, 200];
        bytes.extend_from_slice(&answer);
        seeds.add("docker_response", name, bytes);
    }
}

fn mux(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![stream, 0, 0, 0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn docker_stream(seeds: &mut Seeds) {
    let frames = [
        mux(1, b"2026-12-07T06:00:00.000000001Z hello\n"),
        mux(2, b"2026-12-07T06:00:00.000000002Z oops\n"),
        mux(0, b"echoed"),
        mux(1, b""),
        mux(1, &[b'x'; 300]),
    ]
    .concat();
    seeds.add(
        "docker_stream",
        "frames",
        [&[2u8, 9, 130][..], &frames].concat(),
    );
    seeds.add(
        "docker_stream",
        "daemon-error",
        [
            &[0u8][..],
            &mux(1, b"out"),
            &mux(3, b"exec failed: no such file"),
        ]
        .concat(),
    );
}

fn docker_client(seeds: &mut Seeds) {
    let all = answers();
    let answer = |name: &str| {
        all.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    };
    let with = |call: u8, names: &[&str]| {
        let mut out = vec![call];
        for name in names {
            let answer = answer(name);
            out.extend_from_slice(&(answer.len() as u16).to_be_bytes());
            out.extend_from_slice(&answer);
        }
        out
    };
    seeds.add("docker_client", "negotiate", with(0, &["ping"]));
    seeds.add("docker_client", "engine", with(1, &["ping", "info"]));
    seeds.add(
        "docker_client",
        "request-not-found",
        with(2, &["not-found"]),
    );
    seeds.add("docker_client", "events", with(3, &["events"]));
    seeds.add(
        "docker_client",
        "pull",
        with(4, &["continue-then-close-delimited"]),
    );
    seeds.add("docker_client", "hijack", with(5, &["upgrade"]));
}
