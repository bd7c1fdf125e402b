//! A request head read the way the streaming server reads it, for tests
//! that hand connections to sessions directly, without the server.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use dockshim::streaming::session::Handoff;

/// Reads a request head a byte at a time, so that nothing after it is
/// consumed, and describes it as the streaming server does; `timeout`
/// bounds the wait for the head.
pub fn handoff(mut conn: TcpStream, timeout: Duration) -> Handoff {
    conn.set_read_timeout(Some(timeout)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
        assert!(head.len() < 64 * 1024, "request head too long");
    }
    conn.set_read_timeout(None).unwrap();
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_owned();
    let target = request_line.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let headers = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    Handoff {
        method,
        path: path.to_owned(),
        query,
        headers,
        conn,
        leftover: Vec::new(),
        idle_timeout: None,
    }
}
