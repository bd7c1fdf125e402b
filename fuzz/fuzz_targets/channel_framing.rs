//! The Kubernetes channel framing over WebSocket (`streaming::channel`):
//! client messages, resize messages, port lists and status documents.
//!
//! The first byte picks the negotiated protocol and the session (exec or
//! port-forward with how many ports), the second what the rest is.
//!
//! Asserts, for every input: no panic; a decoded message names one of the
//! session's channels (a close signal only in v5), and sent back with our
//! encoder it decodes the same; an accepted resize message written as JSON
//! again parses to the same size; accepted port lists hold 1 to
//! `MAX_FORWARDED_PORTS` non-zero ports and, joined again, parse the same;
//! every status document is JSON that carries the failure text.
#![cfg_attr(afl, no_main)]

use dockshim::streaming::channel::{
    parse_forward_ports, parse_resize, ChannelCodec, ChannelProtocol, Received, StreamStatus,
    MAX_FORWARDED_PORTS,
};
use dockshim::streaming::websocket::WsWriter;
use dockshim_fuzz::Cursor;

const PROTOCOLS: [ChannelProtocol; 5] = [
    ChannelProtocol::V5,
    ChannelProtocol::V4,
    ChannelProtocol::V4Base64,
    ChannelProtocol::V1,
    ChannelProtocol::V1Base64,
];

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let session = cursor.u8();
    let protocol = PROTOCOLS[usize::from(session % 5)];
    let codec = if session & 0x80 == 0 {
        ChannelCodec::remote_command(protocol)
    } else {
        match ChannelCodec::port_forward(protocol, usize::from(session >> 3 & 0x0f)) {
            Ok(codec) => codec,
            Err(_) => return,
        }
    };
    match cursor.u8() % 4 {
        0 => messages(&codec, &mut cursor),
        1 => resize(cursor.rest()),
        2 => ports(cursor.rest()),
        _ => status(cursor.rest()),
    }
}

fn messages(codec: &ChannelCodec, cursor: &mut Cursor<'_>) {
    let channels = channel_count(codec);
    while !cursor.is_empty() {
        let message = cursor.piece();
        match codec.decode(message) {
            Ok(Received::Data { channel, payload }) => {
                assert!(channel < channels);
                let mut framed = Vec::new();
                codec
                    .send(&mut WsWriter::new(&mut framed), channel, &payload)
                    .unwrap_or_else(|e| panic!("sending a decoded message: {e}"));
                let again = codec.decode(unframe(&framed));
                assert_eq!(
                    again.ok(),
                    Some(Received::Data {
                        channel,
                        payload: payload.clone()
                    })
                );
            }
            Ok(Received::Close { channel }) => {
                assert!(codec.protocol().has_close_signal());
                assert!(channel < channels);
            }
            Err(_) => {}
        }
    }
}

/// The number of channels: the highest data channel that decodes, plus one.
fn channel_count(codec: &ChannelCodec) -> u8 {
    let mut count = 0;
    for channel in 0..=u8::MAX {
        let message = if codec.protocol().is_base64() {
            vec![b'0'.wrapping_add(channel)]
        } else {
            vec![channel]
        };
        if matches!(codec.decode(&message), Ok(Received::Data { .. })) {
            count = channel + 1;
        }
    }
    count
}

/// The payload of one unmasked server frame.
fn unframe(frame: &[u8]) -> &[u8] {
    let len_byte = frame.get(1).copied().unwrap_or(0) & 0x7f;
    let start = match len_byte {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(start..).unwrap_or_default()
}

fn resize(payload: &[u8]) {
    if let Ok(size) = parse_resize(payload) {
        let json = format!("{{\"Width\":{},\"Height\":{}}}", size.width, size.height);
        assert_eq!(parse_resize(json.as_bytes()).ok(), Some(size));
    }
}

fn ports(text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let values: Vec<&str> = text.split('\n').collect();
    if let Ok(ports) = parse_forward_ports(values.iter().copied()) {
        assert!(!ports.is_empty() && ports.len() <= MAX_FORWARDED_PORTS);
        assert!(ports.iter().all(|&p| p != 0));
        let joined = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse_forward_ports([joined.as_str()]).ok(), Some(ports));
    }
}

fn status(text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let code = text.len() as i32 - 3;
    for status in [
        StreamStatus::exited(code),
        StreamStatus::exec_failed(&text),
        StreamStatus::attach_failed(&text),
    ] {
        let json: serde_json::Value = serde_json::from_str(&status.to_json())
            .unwrap_or_else(|e| panic!("status document is not JSON: {e}"));
        match status.to_text() {
            Some(message) => assert_eq!(json["message"].as_str(), Some(message.as_str())),
            None => assert_eq!(json["status"].as_str(), Some("Success")),
        }
    }
}

dockshim_fuzz::fuzz_target!(run);
