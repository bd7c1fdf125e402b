//! A whole port-forward session (`streaming::port_forward::serve`), SPDY or
//! WebSocket, driven over a loopback TCP connection by a client whose every
//! frame comes from the input; the pod's port is a listener in this process
//! that accepts and holds every connection without a word.
//!
//! Input: a byte picking the protocol, the subprotocol and how many of the
//! first bytes reach the session as bytes the HTTP server read past the
//! head; for WebSocket a byte giving the number of ports; then operations,
//! each a byte and its fields (open a stream, send data, reset, ping,
//! GOAWAY, close, raw bytes...). After the last operation the client pings
//! and waits for the answer (the session has then read everything), takes
//! its measurements, and hangs up.
//!
//! Asserts, for every input: no panic on any thread; once the session has
//! read every frame, the process has no more threads than the session's
//! reader, its forwarding threads (two per connection, at most
//! `MAX_SESSION_CONNECTIONS` connections) and this harness's own, and no
//! more bytes live than the caps allow (`MAX_OPEN_STREAMS` streams, each
//! with a header block and an inbound pipe); the pod was dialled no more
//! often than complete pairs (SPDY) or requested ports (WebSocket) ask for,
//! within the caps; the session ends within seconds of the client hanging
//! up; and afterwards every thread it started is gone and every byte it
//! took is given back.
#![cfg_attr(afl, no_main)]

use std::cell::RefCell;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dockshim::streaming::port_forward::{self, PortDialer, MAX_SESSION_CONNECTIONS};
use dockshim::streaming::session::{Handoff, PortForward};
use dockshim::streaming::spdy::{
    Frame, GoAwayStatus, HeaderBlock, Reaction, RstStatus, Setting, SpdyReader, SpdyWriter,
    SynStream, MAX_HEADER_BLOCK,
};
use dockshim::streaming::spdy_session::MAX_OPEN_STREAMS;
use dockshim::streaming::websocket::{Incoming, WsReader};
use dockshim::streaming::{PortForwardError, SpdyError, WebSocketError};
use dockshim_fuzz::{alloc, Cursor};

/// How long an incomplete SPDY pair is held: short, so that inputs reach
/// the expiry of pairs too.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_millis(100);

/// The longest wait for the session to answer the closing ping, to end
/// after the hang-up, or for its threads to go.
const WAIT: Duration = Duration::from_secs(3);

/// How long a session that will not answer the closing ping is given to
/// act on what it could read.
const SETTLE: Duration = Duration::from_millis(20);

/// The ping the client ends with (odd: client-initiated).
const SYNC_PING: u32 = 0x7fff_ffff;

/// What one stream may hold: its header block and its inbound pipe (256
/// KiB, `INBOUND_PIPE_BYTES` of src/streaming/spdy_session.rs and
/// ws_session.rs).
const STREAM_BYTES: usize = MAX_HEADER_BLOCK + 256 * 1024;

/// Threads this harness starts per input: the session's caller and the
/// client's reader.
const HARNESS_THREADS: usize = 2;

/// Threads a session may run: its frame reader, and two per forwarded
/// connection.
const SESSION_THREADS: usize = 1 + 2 * MAX_SESSION_CONNECTIONS;

static DIALS: AtomicUsize = AtomicUsize::new(0);

/// The pod's port: connections accepted and held until the next input.
struct Pod {
    port: u16,
    held: Mutex<Vec<TcpStream>>,
}

fn pod() -> &'static Pod {
    static POD: OnceLock<Pod> = OnceLock::new();
    static LISTENER: OnceLock<TcpListener> = OnceLock::new();
    POD.get_or_init(|| {
        let listener = LISTENER.get_or_init(|| {
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("pod listener: {e}"))
        });
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("pod address: {e}"))
            .port();
        thread::Builder::new()
            .name("pod".to_owned())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if let Some(pod) = POD.get() {
                        pod.held
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(conn);
                    }
                }
            })
            .unwrap_or_else(|e| panic!("pod thread: {e}"));
        Pod {
            port,
            held: Mutex::new(Vec::new()),
        }
    })
}

/// Dials the pod's port, whatever port the client names, and counts.
#[derive(Debug)]
struct ToPod(u16);

impl PortDialer for ToPod {
    fn dial(&self, _port: u16) -> Result<TcpStream, PortForwardError> {
        DIALS.fetch_add(1, Ordering::AcqRel);
        TcpStream::connect(("127.0.0.1", self.0)).map_err(PortForwardError::Socket)
    }
}

/// A connected pair of loopback sockets: the client's end and the server's.
fn transport() -> (TcpStream, TcpStream) {
    static LISTENER: OnceLock<TcpListener> = OnceLock::new();
    let listener = LISTENER.get_or_init(|| {
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("session listener: {e}"))
    });
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("session address: {e}"));
    let client = TcpStream::connect(address).unwrap_or_else(|e| panic!("connect: {e}"));
    let (server, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    // Small frames each way without Nagle's 40 ms wait for an ACK.
    for end in [&client, &server] {
        let _ = end.set_nodelay(true);
    }
    (client, server)
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

/// How the session is asked for, and what the client's frames allow.
struct Setup {
    method: &'static str,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// The most dials the frames can ask for.
    dial_cap: usize,
    /// Whether the session can read every frame, the closing ping too.
    readable: bool,
}

/// What the client's reader saw.
#[derive(Debug)]
enum Heard {
    Synced,
    Ended,
}

fn run(input: &[u8]) {
    let pod = pod();
    pod.held
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    DIALS.store(0, Ordering::Release);
    let baseline_threads = threads();
    let baseline_live = alloc::live();

    let mut cursor = Cursor::new(input);
    let choices = cursor.u8();
    let websocket = choices & 1 == 1;
    let (client, server) = transport();
    // A session that stops reading (a full pipe) must not stall the client
    // for ever: its writes give up.
    let _ = client.set_write_timeout(Some(Duration::from_secs(1)));

    let (setup, wire) = if websocket {
        let ports = usize::from(cursor.u8() % 130).max(1);
        let protocol = if choices & 2 == 0 {
            "v4.channel.k8s.io"
        } else {
            "v4.base64.channel.k8s.io"
        };
        let wire = websocket_frames(&mut cursor, ports);
        let query = (0..ports)
            .map(|i| ("port".to_owned(), (8000 + i).to_string()))
            .collect();
        let headers = vec![
            ("host".to_owned(), "127.0.0.1".to_owned()),
            ("upgrade".to_owned(), "websocket".to_owned()),
            ("connection".to_owned(), "Upgrade".to_owned()),
            (
                "sec-websocket-key".to_owned(),
                "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
            ),
            ("sec-websocket-version".to_owned(), "13".to_owned()),
            ("sec-websocket-protocol".to_owned(), protocol.to_owned()),
        ];
        let setup = Setup {
            method: "GET",
            headers,
            query,
            dial_cap: ports.min(MAX_SESSION_CONNECTIONS),
            readable: scan_websocket(&wire),
        };
        (setup, wire)
    } else {
        let wire = spdy_frames(&mut cursor);
        let (opened, readable) = scan_spdy(&wire);
        let headers = vec![
            ("host".to_owned(), "127.0.0.1".to_owned()),
            ("connection".to_owned(), "Upgrade".to_owned()),
            ("upgrade".to_owned(), "SPDY/3.1".to_owned()),
            (
                "x-stream-protocol-version".to_owned(),
                "portforward.k8s.io".to_owned(),
            ),
        ];
        let setup = Setup {
            method: "POST",
            headers,
            query: Vec::new(),
            dial_cap: opened / 2,
            readable,
        };
        (setup, wire)
    };
    // Some of the first bytes arrive with the request head.
    let leftover_len = wire.len().min(usize::from(choices >> 2) * 4);
    let (leftover, rest) = wire.split_at(leftover_len);
    let handoff = Handoff {
        method: setup.method.to_owned(),
        path: "/cri/portforward/fuzz".to_owned(),
        query: setup.query,
        headers: setup.headers,
        conn: server,
        leftover: leftover.to_vec(),
        idle_timeout: None,
    };
    let request = PortForward {
        pod_sandbox_id: "fuzz".to_owned(),
        ports: Vec::new(),
    };
    let session = thread::Builder::new()
        .name("session".to_owned())
        .spawn(move || {
            port_forward::serve(&request, handoff, &ToPod(pod.port), STREAM_CREATION_TIMEOUT)
        })
        .unwrap_or_else(|e| panic!("session thread: {e}"));

    let (heard_tx, heard) = mpsc::channel();
    let reader_conn = client
        .try_clone()
        .unwrap_or_else(|e| panic!("client clone: {e}"));
    let reader = thread::Builder::new()
        .name("client-reader".to_owned())
        .spawn(move || {
            if websocket {
                read_websocket(reader_conn, &heard_tx);
            } else {
                read_spdy(reader_conn, &heard_tx);
            }
        })
        .unwrap_or_else(|e| panic!("reader thread: {e}"));

    let mut rest = rest.to_vec();
    drop(wire);
    rest.extend(sync_frame(websocket));
    let _ = (&client).write_all(&rest);
    drop(rest);
    // A session that cannot read the ping (a frame left incomplete, an
    // error that ends reading) is measured a moment later instead.
    let _ = heard.recv_timeout(if setup.readable { WAIT } else { SETTLE });

    let live_threads = threads();
    assert!(
        live_threads <= baseline_threads + HARNESS_THREADS + SESSION_THREADS,
        "{live_threads} threads (from {baseline_threads}) during one session"
    );
    let held = alloc::live().saturating_sub(baseline_live);
    let bound = MAX_OPEN_STREAMS * STREAM_BYTES + 4 * input.len() + (1 << 20);
    assert!(held <= bound, "{held} bytes held by one session");
    let dials = DIALS.load(Ordering::Acquire);
    let cap = setup.dial_cap;
    assert!(dials <= cap, "{dials} dials for a cap of {cap}");

    let _ = client.shutdown(Shutdown::Both);
    drop(client);
    join_within(session, "the session");
    join_within(reader, "the client's reader");
    drain(&heard);
    pod.held
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();

    let deadline = Instant::now() + WAIT;
    while threads() > baseline_threads && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert!(
        threads() <= baseline_threads,
        "{} threads left after the session (from {baseline_threads})",
        threads()
    );
    let left = alloc::live().saturating_sub(baseline_live);
    assert!(left <= 64 * 1024, "{left} bytes left after the session");
}

fn join_within(handle: JoinHandle<()>, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not end after the hang-up"
        );
        thread::sleep(Duration::from_millis(1));
    }
    if handle.join().is_err() {
        panic!("{what} panicked");
    }
}

fn drain(heard: &Receiver<Heard>) {
    while heard.try_recv().is_ok() {}
}

fn headers(fields: &[(&str, &str)]) -> HeaderBlock {
    fields.iter().copied().collect()
}

/// A sink the SPDY writer and raw bytes share.
#[derive(Clone, Default)]
struct Wire(Rc<RefCell<Vec<u8>>>);

impl Write for Wire {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client's frames.
fn spdy_frames(cursor: &mut Cursor<'_>) -> Vec<u8> {
    let wire = Wire::default();
    let mut writer = SpdyWriter::new(wire.clone());
    while !cursor.is_empty() {
        let op = cursor.u8();
        // Odd client ids, few enough that operations meet on them.
        let stream = u32::from(cursor.u8() % 64) * 2 + 1;
        let _ = match op % 9 {
            0 | 1 => {
                let kind = if op & 0x10 == 0 { "data" } else { "error" };
                let port = cursor.u16().to_string();
                let request = (cursor.u8() % 8).to_string();
                let mut fields = vec![("streamtype", kind), ("requestid", request.as_str())];
                if op & 0x20 == 0 {
                    fields.push(("port", port.as_str()));
                }
                let big;
                if op & 0x40 != 0 {
                    big = "x".repeat(usize::from(cursor.u8()) * 16);
                    fields.push(("x-filler", big.as_str()));
                }
                writer.write_syn_stream(&SynStream {
                    stream,
                    associated_to: None,
                    priority: 0,
                    slot: 0,
                    fin: op & 0x80 != 0,
                    unidirectional: false,
                    headers: headers(&fields),
                })
            }
            2 => writer.write_data(stream, op & 0x80 != 0, cursor.piece()),
            3 => writer.write_rst_stream(stream, RstStatus(u32::from(cursor.u8() % 12) + 1)),
            4 => writer.write_ping(u32::from(cursor.u8()) * 2 + 1),
            5 => writer.write_goaway(0, GoAwayStatus::OK),
            6 => writer.write_headers(stream, op & 0x80 != 0, &headers(&[("x", "y")])),
            7 => writer.write_settings(
                false,
                &[Setting {
                    id: Setting::INITIAL_WINDOW_SIZE,
                    flags: 0,
                    value: cursor.u32(),
                }],
            ),
            _ => {
                // Raw bytes: garbage, or frames the writer would not send.
                wire.0.borrow_mut().extend_from_slice(cursor.piece());
                Ok(())
            }
        };
    }
    let bytes = wire.0.borrow().clone();
    bytes
}

/// The SYN_STREAM frames in `wire` up to the first frame the session
/// cannot read past (each dial needs two of them), and whether the session
/// can read all of it: if not, it will never answer the closing ping.
fn scan_spdy(wire: &[u8]) -> (usize, bool) {
    let mut frames = SpdyReader::new(wire);
    let mut count = 0;
    loop {
        match frames.read_frame() {
            Ok(Frame::SynStream(_)) => count += 1,
            Ok(Frame::GoAway { .. }) => return (count, false),
            Ok(_) => {}
            Err(SpdyError::Closed) => return (count, true),
            Err(err) if matches!(err.reaction(), Reaction::ResetStream { .. }) => {}
            Err(_) => return (count, false),
        }
    }
}

/// Whether the session can read all of `wire`, and so answer the closing
/// ping.
fn scan_websocket(wire: &[u8]) -> bool {
    let mut frames = WsReader::new(wire);
    loop {
        match frames.read() {
            Ok(Incoming::Close(_)) => return false,
            Ok(_) => {}
            Err(WebSocketError::Disconnected { mid_message }) => return !mid_message,
            Err(_) => return false,
        }
    }
}

fn sync_frame(websocket: bool) -> Vec<u8> {
    if websocket {
        ws_frame(0x89, b"sync")
    } else {
        let mut writer = SpdyWriter::new(Vec::new());
        let _ = writer.write_ping(SYNC_PING);
        writer.get_ref().clone()
    }
}

/// Reads the server's answer and frames until the closing ping comes back
/// or the connection ends.
fn read_spdy(conn: TcpStream, heard: &Sender<Heard>) {
    let mut conn = io::BufReader::new(conn);
    if skip_head(&mut conn).is_err() {
        let _ = heard.send(Heard::Ended);
        return;
    }
    let mut frames = SpdyReader::new(conn);
    loop {
        match frames.read_frame() {
            Ok(Frame::Ping { id: SYNC_PING }) => {
                let _ = heard.send(Heard::Synced);
            }
            // The session reads nothing more; it waits for the hang-up.
            Ok(Frame::GoAway { .. }) => {
                let _ = heard.send(Heard::Ended);
            }
            Ok(_) => {}
            Err(err) if matches!(err.reaction(), Reaction::ResetStream { .. }) => {}
            Err(_) => break,
        }
    }
    let _ = heard.send(Heard::Ended);
}

/// A masked client frame.
fn ws_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first];
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The client's frames: channel messages, fragments, controls and raw bytes.
fn websocket_frames(cursor: &mut Cursor<'_>, ports: usize) -> Vec<u8> {
    let mut out = Vec::new();
    // Every channel of the session, and the first one past them.
    let channels = 2 * ports + 1;
    while !cursor.is_empty() {
        let op = cursor.u8();
        match op % 7 {
            0 | 1 => {
                let channel = (usize::from(cursor.u8()) % channels) as u8;
                let mut message = vec![channel];
                message.extend_from_slice(cursor.piece());
                out.extend(ws_frame(0x82, &message));
            }
            2 => {
                // A text message: the base64 framing's channel digit.
                let mut message = vec![b'0' + cursor.u8() % 10];
                message.extend_from_slice(cursor.piece());
                out.extend(ws_frame(0x81, &message));
            }
            3 => {
                let channel = (usize::from(cursor.u8()) % channels) as u8;
                out.extend(ws_frame(0x02, &[channel]));
                out.extend(ws_frame(0x80, cursor.piece()));
            }
            4 => out.extend(ws_frame(0x89, cursor.piece())),
            5 => out.extend(ws_frame(0x88, &[0x03, 0xe8])),
            _ => out.extend_from_slice(cursor.piece()),
        }
    }
    out
}

/// Reads the server's answer and (unmasked) frames until the pong of the
/// closing ping comes back or the connection ends.
fn read_websocket(conn: TcpStream, heard: &Sender<Heard>) {
    let mut conn = io::BufReader::new(conn);
    if skip_head(&mut conn).is_ok() {
        while let Ok((opcode, payload)) = read_server_frame(&mut conn) {
            match opcode {
                0xa if payload == b"sync" => {
                    let _ = heard.send(Heard::Synced);
                }
                // The session reads nothing more; it waits for the hang-up.
                0x8 => {
                    let _ = heard.send(Heard::Ended);
                }
                _ => {}
            }
        }
    }
    let _ = heard.send(Heard::Ended);
}

fn read_server_frame(conn: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    conn.read_exact(&mut head)?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut len = [0u8; 2];
            conn.read_exact(&mut len)?;
            u64::from(u16::from_be_bytes(len))
        }
        127 => {
            let mut len = [0u8; 8];
            conn.read_exact(&mut len)?;
            u64::from_be_bytes(len)
        }
        len => u64::from(len),
    };
    let mut payload = Vec::new();
    conn.take(len).read_to_end(&mut payload)?;
    Ok((head[0] & 0x0f, payload))
}

/// Reads up to the end of the server's HTTP answer; fails if the server
/// refused the upgrade or hung up.
fn skip_head(conn: &mut impl Read) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    if head.starts_with(b"HTTP/1.1 101 ") {
        Ok(())
    } else {
        Err(io::ErrorKind::ConnectionRefused.into())
    }
}

dockshim_fuzz::fuzz_target!(run);
