//! Seeds of the targets beyond the streaming codecs.

use super::Seeds;

pub fn add_all(seeds: &mut Seeds) {
    docker_response(seeds);
    docker_stream(seeds);
    docker_client(seeds);
    grpc(seeds);
    cri_log(seeds);
    store(seeds);
    stats(seeds);
    netlink(seeds);
    streaming_session(seeds);
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

fn grpc_message(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn grpc(seeds: &mut Seeds) {
    // A ListContainersRequest with a label filter, and an empty message.
    let list = b"\x0a\x13\x1a\x11\x0a\x03app\x12\x0aprometheus";
    seeds.add(
        "grpc",
        "unary-body",
        [&[0u8, 2, 3, 90][..], &grpc_message(list)].concat(),
    );
    seeds.add(
        "grpc",
        "two-messages",
        [
            &[0u8, 1, 7][..],
            &grpc_message(b""),
            &grpc_message(&[0x42; 40]),
        ]
        .concat(),
    );
    for (name, value) in [
        ("timeout-ms", &b"100m"[..]),
        ("timeout-hours", b"99999999H"),
        ("timeout-ns", b"2n"),
    ] {
        seeds.add("grpc", name, [&[1u8][..], value].concat());
    }
    seeds.add(
        "grpc",
        "status-message",
        [
            &[2u8][..],
            "container \"abc\" not found: 100% gone\n\u{e9}\u{1f600}".as_bytes(),
        ]
        .concat(),
    );
}

fn cri_log(seeds: &mut Seeds) {
    let multiplexed = [
        mux(1, b"2026-12-07T06:00:00.000000001Z hello\n"),
        mux(2, b"2026-12-07T06:00:00.000000002Z oops\n"),
        mux(1, b"2026-12-07T06:00:00.000000002Z a cut long li"),
        mux(1, b"2026-12-07T06:00:00.000000003Z ne ends here\n"),
        mux(1, b"2026-12-07T06:00:01+01:00 offset\n"),
        mux(2, b"2026-12-07T06:00:02.5Z unterminated"),
    ]
    .concat();
    seeds.add(
        "cri_log",
        "multiplexed",
        [&[0u8, 2, 40, 200, 128][..], &multiplexed].concat(),
    );
    let tty = b"2026-12-07T06:00:00.000000001Z $ ls\r\n2026-12-07T06:00:00.000000001Z bin  etc\r\n2026-12-07T06:00:00.100000000Z $ ";
    seeds.add(
        "cri_log",
        "tty",
        [&[1u8, 1, 70, 255][..], &tty[..]].concat(),
    );
}

fn store(seeds: &mut Seeds) {
    // As cri-dockerd writes it (its checksum), and as dockshim adds to it.
    let cri_dockerd = br#"{"version":"v1","name":"web","namespace":"default","data":{"port_mappings":[{"protocol":"tcp","container_port":80,"host_port":8080,"host_ip":"127.0.0.1"}]},"checksum":3406953414}"#;
    seeds.add(
        "store",
        "cri-dockerd",
        [&[0u8][..], &cri_dockerd[..]].concat(),
    );
    let dockshim = br#"{"version":"v1","name":"web","namespace":"default","data":{"host_network":true},"dockshim":{"uid":"0d1e2f","runtime_handler":"docker","cni_network":"pods","netns":"/proc/4242/ns/net","pid":4242,"primary_ip":"10.88.0.7","additional_ips":["fd00::7"],"network_ready":true},"checksum":0}"#;
    seeds.add(
        "store",
        "dockshim-fields",
        [&[1u8][..], &dockshim[..]].concat(),
    );
    let owed = br#"{"name":"web","namespace":"default","uid":"0d1e2f","network_file":"/etc/cni/net.d/10-pods.conflist","network_config":{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.0.0/16"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]},"port_mappings":[{"protocol":"tcp","container_port":80,"host_port":8080}]}"#;
    seeds.add("store", "owed-teardown", [&[2u8][..], &owed[..]].concat());
}

fn texts(pieces: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece.as_bytes());
    }
    out
}

const ID: &str = "16e2248315155803f1cc49c952999bdb5e78695829c353806a689151509ec951";

fn stats(seeds: &mut Seeds) {
    let mountinfo = "24 30 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
        30 1 0:25 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/w\n\
        31 30 0:26 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/a\\054b,upperdir=/u\\040x,workdir=/w\n";
    let net_dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  eth0:    1296      16    0    0    0     0          0         0      936      12    0    0    0     0       0          0\n";
    let pressure = "some avg10=0.00 avg60=0.12 avg300=0.05 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    seeds.add(
        "stats",
        "texts",
        [
            &[0u8][..],
            &texts(&[
                mountinfo,
                net_dev,
                pressure,
                "kubepods-besteffort-pod1.slice",
                ID,
            ]),
        ]
        .concat(),
    );
    let v2_mounts = "24 1 0:22 / /CG rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
    let v2 = texts(&[
        v2_mounts,
        &format!("0::/system.slice/docker-{ID}.scope\n"),
        &format!("/system.slice/docker-{ID}.scope"),
        "cpu memory pids io",
        "4242\n4243\n",
        pressure,
        "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n",
        "",
        "",
        pressure,
        "104857600",
        "",
        "max",
        pressure,
        "anon 1000\nfile 2000\ninactive_file 500\nactive_file 1500\nworkingset_refault_anon 0\npgfault 10\npgmajfault 1\n",
        "0",
        "max",
        "",
        "2",
        "max",
    ]);
    seeds.add("stats", "cgroup-v2-systemd", [&[1u8, 2][..], &v2].concat());
    let v1_mounts = "25 1 0:23 / /CG/cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n26 1 0:24 / /CG/memory rw - cgroup cgroup rw,memory\n27 1 0:25 / /CG/pids rw - cgroup cgroup rw,pids\n";
    let v1 = texts(&[
        v1_mounts,
        &format!("12:pids:/docker/{ID}\n4:memory:/docker/{ID}\n3:cpu,cpuacct:/docker/{ID}\n"),
        &format!("memory/docker/{ID}"),
        "",
        "4242\n",
        "",
        "",
        "user 100\nsystem 50\n",
        "123456789",
        "",
        "",
        "9223372036854771712",
        "",
        "",
        "cache 1000\nrss 2000\ntotal_inactive_file 300\n",
        "",
        "",
        "5000",
        "1",
        "max",
    ]);
    seeds.add("stats", "cgroup-v1-cgroupfs", [&[1u8, 1][..], &v1].concat());
}

fn netlink(seeds: &mut Seeds) {
    let link = |index: u32, name: &str, attrs: &[(u16, u32)]| {
        let mut payload = vec![0u8, 0, 1, 0];
        payload.extend_from_slice(&(index as i32).to_ne_bytes());
        payload.extend_from_slice(&0x1043u32.to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        let mut attr = |kind: u16, value: &[u8]| {
            payload.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&kind.to_ne_bytes());
            payload.extend_from_slice(value);
            payload.resize(payload.len().next_multiple_of(4), 0);
        };
        attr(3, &name);
        attr(4, &1500u32.to_ne_bytes());
        for (kind, value) in attrs {
            attr(*kind, &value.to_ne_bytes());
        }
        payload
    };
    let message = |out: &mut Vec<u8>, kind: u16, seq: u32, payload: &[u8]| {
        out.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&2u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&4242u32.to_ne_bytes());
        out.extend_from_slice(payload);
    };
    let mut dump = Vec::new();
    message(&mut dump, 16, 1, &link(1, "lo", &[]));
    message(&mut dump, 16, 1, &link(3, "eth0", &[(5, 7), (37, 0)]));
    message(
        &mut dump,
        16,
        1,
        &link(7, "veth1a2b3c4d", &[(10, 5), (5, 3), (37, 1)]),
    );
    let mut done = Vec::new();
    message(&mut done, 3, 1, &0i32.to_ne_bytes());
    let mut ack = Vec::new();
    message(&mut ack, 2, 1, &[0u8; 20]);
    let mut out = 1u32.to_be_bytes().to_vec();
    for datagram in [&dump, &done, &ack] {
        out.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        out.extend_from_slice(datagram);
    }
    seeds.add("netlink", "dump-and-ack", out);
}

fn streaming_session(seeds: &mut Seeds) {
    // SPDY: a pair (data and error streams, port 8080, request 0), data on
    // it, a second pair reset half-open, a ping, GOAWAY.
    let spdy = [
        &[0x08u8][..],
        &[0x00, 0, 0x1f, 0x90, 0],
        &[0x10, 1, 0x1f, 0x90, 0],
        &[0x02, 0, 18],
        b"GET / HTTP/1.0\r\n\r\n",
        &[0x00, 2, 0x00, 0x50, 1],
        &[0x03, 2, 4],
        &[0x04, 0, 3],
        &[0x82, 0, 0],
        &[0x05, 0],
    ]
    .concat();
    seeds.add("streaming_session", "spdy-port-forward", spdy);
    // Many half-open pairs with large headers, then resets.
    let mut flood = vec![0u8];
    for stream in 0..40u8 {
        flood.extend_from_slice(&[0x40, stream, 0x1f, 0x90, stream, 255]);
        flood.extend_from_slice(&[0x03, stream, 4]);
    }
    seeds.add("streaming_session", "spdy-reset-flood", flood);
    // WebSocket: two ports, data on the first, a ping, a fragmented message, close.
    let websocket = [
        &[0x01u8, 2][..],
        &[0x00, 0, 5],
        b"hello",
        &[0x04, 4],
        b"ping",
        &[0x03, 2, 3],
        b"abc",
        &[0x05],
    ]
    .concat();
    seeds.add("streaming_session", "websocket-port-forward", websocket);
    seeds.add(
        "streaming_session",
        "websocket-many-ports",
        vec![0x03, 100, 0x02, 1, 4, b'A', b'A', b'=', b'='],
    );
}
