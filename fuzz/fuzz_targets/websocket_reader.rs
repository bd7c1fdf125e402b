//! The WebSocket frame reader (`streaming::websocket::WsReader`).
//!
//! Input: two bytes giving the message limit, a byte of cut points, then
//! the bytes a client sends after the handshake.
//!
//! Asserts, for every input: no panic; no data message longer than the
//! limit, no control payload longer than `MAX_CONTROL_PAYLOAD`; one read
//! never holds more than the limit allows, whatever length a frame header
//! claims; the same bytes arriving in pieces read the same as arriving at
//! once; after a close or an error the reader returns only `Closed`; and
//! the messages read, framed again as single masked frames, read back the
//! same.
#![cfg_attr(afl, no_main)]

use std::io::Read;

use dockshim::streaming::websocket::{Incoming, WsReader, MAX_CONTROL_PAYLOAD};
use dockshim::streaming::WebSocketError;
use dockshim_fuzz::{alloc, pieces, split_points, Cursor, PieceReader};

/// A message as read, owned; errors by their text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Error(String),
}

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let max_message = usize::from(cursor.u16());
    let cuts = cursor.piece();
    let wire = cursor.rest();

    let whole = read_all(wire, max_message);
    let points = split_points(wire.len(), cuts);
    let trickled = read_all(PieceReader::new(pieces(wire, &points)), max_message);
    assert_eq!(whole, trickled);

    let mut again = Vec::new();
    let mut expected = Vec::new();
    for event in &whole {
        if let Some(frame) = frame(event) {
            again.extend_from_slice(&frame);
            expected.push(event.clone());
        }
    }
    let reread: Vec<Event> = read_all(&again[..], max_message)
        .into_iter()
        .filter(|e| !matches!(e, Event::Error(_)))
        .collect();
    assert_eq!(reread, expected);
}

fn read_all(wire: impl Read, max_message: usize) -> Vec<Event> {
    let mut reader = WsReader::with_max_message(wire, max_message);
    let mut events = Vec::new();
    loop {
        let (event, peak) = alloc::peak_during(|| match reader.read() {
            Ok(Incoming::Text(text)) => Event::Text(text.to_owned()),
            Ok(Incoming::Binary(data)) => Event::Binary(data.to_vec()),
            Ok(Incoming::Ping(data)) => Event::Ping(data.to_vec()),
            Ok(Incoming::Pong(data)) => Event::Pong(data.to_vec()),
            Ok(Incoming::Close(close)) => {
                Event::Close(close.map(|c| (c.code.0, c.reason.to_owned())))
            }
            Err(err) => Event::Error(err.to_string()),
        });
        // The message buffer (reserved once per frame within the limit),
        // the owned copy made above, and slack for the error text.
        assert!(
            peak <= 3 * max_message + 64 * 1024,
            "one read held {peak} bytes with a limit of {max_message}"
        );
        match &event {
            Event::Text(text) => assert!(text.len() <= max_message),
            Event::Binary(data) => assert!(data.len() <= max_message),
            Event::Ping(data) | Event::Pong(data) => assert!(data.len() <= MAX_CONTROL_PAYLOAD),
            Event::Close(_) | Event::Error(_) => {}
        }
        let ended = matches!(event, Event::Close(_) | Event::Error(_));
        events.push(event);
        if ended {
            break;
        }
    }
    // Once ended, the reader stays ended.
    let closed = WebSocketError::Closed.to_string();
    assert_eq!(
        reader.read().map_err(|e| e.to_string()).err().as_ref(),
        Some(&closed)
    );
    events
}

/// `event` as one masked client frame; `None` for errors.
fn frame(event: &Event) -> Option<Vec<u8>> {
    let (opcode, payload) = match event {
        Event::Text(text) => (1, text.as_bytes().to_vec()),
        Event::Binary(data) => (2, data.clone()),
        Event::Close(None) => (8, Vec::new()),
        Event::Close(Some((code, reason))) => {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            (8, payload)
        }
        Event::Ping(data) => (9, data.clone()),
        Event::Pong(data) => (10, data.clone()),
        Event::Error(_) => return None,
    };
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
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
    Some(out)
}

dockshim_fuzz::fuzz_target!(run);
