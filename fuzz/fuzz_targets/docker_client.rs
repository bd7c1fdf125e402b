//! The Docker client end to end over a real unix socket: a stub dockerd in
//! this process answers each request with bytes from the input, and the
//! client's connection handling, response parser, chunked decoding,
//! NDJSON streams (`docker::JsonStream`), hijacked streams and error
//! mapping read them (`docker::DockerClient`).
//!
//! Input: a byte picking the call, then up to four answers, each a
//! two-byte length and that many bytes, served in order, one per connection.
//!
//! Asserts, for every input: no panic; every call ends (the stub closes
//! each connection after one answer); a buffered answer is no
//! larger than `MAX_BUFFERED_BODY`; a stream yields finitely many
//! messages and nothing after its end; a hijacked stream's early bytes are
//! what followed the head on the wire.
#![cfg_attr(afl, no_main)]

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use dockshim::docker::{demux_copy, DockerClient, Event, PullProgress, MAX_BUFFERED_BODY};
use dockshim_fuzz::{scratch_dir, Cursor};

/// Most messages read from a stream: far more than any input can hold.
const MAX_STREAM_ITEMS: usize = 100_000;

/// The answers the stub dockerd still has to give, in order.
static ANSWERS: Mutex<VecDeque<Vec<u8>>> = Mutex::new(VecDeque::new());

fn answers() -> MutexGuard<'static, VecDeque<Vec<u8>>> {
    ANSWERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stub dockerd's socket; the first call starts it.
fn stub_socket() -> &'static PathBuf {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let dir = scratch_dir("docker_client");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let socket = dir.join("docker.sock");
        let _ = fs::remove_file(&socket);
        let listener =
            UnixListener::bind(&socket).unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
        thread::Builder::new()
            .name("stub-dockerd".to_owned())
            .spawn(move || serve(listener))
            .unwrap_or_else(|e| panic!("stub thread: {e}"));
        socket
    })
}

/// Answers connections one at a time, one answer each, then closes
/// them: a client waiting for the rest of a cut answer sees the end at
/// once, and one that pooled the connection finds it gone and retries on
/// a new one, as it must after dockerd closes an idle connection.
fn serve(listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        // A client that connects and never writes must not stall the stub.
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        if read_request(&mut conn).is_ok() {
            if let Some(answer) = answers().pop_front() {
                let _ = conn.write_all(&answer);
            }
        }
    }
}

/// Reads one request head and its Content-Length body.
fn read_request(conn: &mut UnixStream) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    io::copy(&mut Read::by_ref(conn).take(length), &mut io::sink())?;
    Ok(())
}

fn run(input: &[u8]) {
    let socket = stub_socket();
    let mut cursor = Cursor::new(input);
    let call = cursor.u8() % 6;
    {
        let mut answers = answers();
        answers.clear();
        for _ in 0..4 {
            if cursor.is_empty() {
                break;
            }
            let len = usize::from(cursor.u16());
            answers.push_back(cursor.take(len).to_vec());
        }
    }
    let endpoint = format!("unix://{}", socket.display());
    let client = DockerClient::new(&endpoint, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("client for {endpoint}: {e}"));
    match call {
        0 => {
            let _ = client.negotiate();
        }
        1 => {
            let _ = client.engine();
        }
        2 => {
            if let Ok(response) = client.request("GET", "/containers/json?all=1", &[], None, None) {
                assert!(response.body.len() as u64 <= MAX_BUFFERED_BODY);
            }
        }
        3 => {
            if let Ok(stream) = client.events(None, Some(r#"{"type":["container"]}"#)) {
                drain(stream.map(|r| r.map(|e: Event| e.kind.len())));
            }
        }
        4 => {
            if let Ok(stream) = client.pull("busybox", "latest", None, None) {
                drain(stream.map(|r| r.map(|p: PullProgress| p.status.len())));
            }
        }
        _ => {
            if let Ok(hijacked) = client.hijack("POST", "/exec/abc/start", Some(b"{}")) {
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                let _ = demux_copy(hijacked, &mut stdout, &mut stderr);
            }
        }
    }
    drop(client);
    answers().clear();
}

/// Reads a stream to its end; it must end.
fn drain<T, E>(mut stream: impl Iterator<Item = Result<T, E>>) {
    for _ in 0..MAX_STREAM_ITEMS {
        if stream.next().is_none() {
            return;
        }
    }
    panic!("a stream of a few KiB yielded {MAX_STREAM_ITEMS} messages");
}

dockshim_fuzz::fuzz_target!(run);
