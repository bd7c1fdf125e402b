//! The gRPC layer's parsers (`grpc`): the 5-byte message framing of
//! request bodies, the `grpc-timeout` header, and the percent-encoded
//! `grpc-message` trailer.
//!
//! The first byte picks what the rest is.
//! - 0: a cut-points byte, then a request body. Fed whole or in DATA
//!   chunks cut anywhere, `MessageReader` yields the same messages and the
//!   same verdict; memory follows the bytes that arrived, never the length
//!   a prefix announces; the messages framed again read back the same; a
//!   unary request is accepted exactly when the body is one whole message.
//! - 1: a `grpc-timeout` value. An accepted one has at most
//!   `MAX_TIMEOUT_DIGITS` digits and a unit, and the same amount in
//!   nanoseconds (when that fits the digit limit) parses the same.
//! - 2: a status message. Its `grpc-message` encoding is printable ASCII,
//!   decodes back to the message (cut at `MAX_STATUS_MESSAGE_BYTES` on a
//!   character boundary, then marked `...`), and is what the trailers carry.
#![cfg_attr(afl, no_main)]

use bytes::{Bytes, BytesMut};
use dockshim::grpc::{
    encode_status_message, parse_timeout, put_message, trailers, Code, MessageReader, Status,
    UnaryRequest, MAX_STATUS_MESSAGE_BYTES, MAX_TIMEOUT_DIGITS,
};
use dockshim_fuzz::{alloc, pieces, split_points, Cursor};

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    match cursor.u8() % 3 {
        0 => framing(&mut cursor),
        1 => timeout(cursor.rest()),
        _ => status_message(cursor.rest()),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Read {
    messages: Vec<Bytes>,
    /// The error's code and text, or whether the body ended on a boundary.
    end: Result<bool, (Code, String)>,
}

fn framing(cursor: &mut Cursor<'_>) {
    let cuts = cursor.piece();
    let body = cursor.rest();
    let points = split_points(body.len(), cuts);
    let chunks = pieces(body, &points);

    let (whole, _) = alloc::peak_during(|| read(&[body]));
    let (split, peak) = alloc::peak_during(|| read(&chunks));
    assert_eq!(whole, split);
    // The chunks' copies, the messages, the reader's body buffer (at
    // least 16 KiB, doubling) and the error text.
    let bound = 4 * body.len() + 64 * 1024;
    assert!(
        peak <= bound,
        "{peak} bytes held for a {}-byte body",
        body.len()
    );

    if whole.end.is_ok() {
        let mut again = BytesMut::new();
        for message in &whole.messages {
            put_message(&mut again, message)
                .unwrap_or_else(|e| panic!("framing a message read: {e:?}"));
        }
        let reread = read(&[&again]);
        assert_eq!(reread.messages, whole.messages);
        assert_eq!(reread.end, Ok(true));
    }

    let mut unary = UnaryRequest::new();
    let mut pushed = Ok(());
    for chunk in &chunks {
        pushed = unary.push(Bytes::copy_from_slice(chunk));
        if pushed.is_err() {
            break;
        }
    }
    let one_message = whole.end == Ok(true) && whole.messages.len() == 1;
    let finished = pushed.and_then(|()| unary.finish());
    assert_eq!(finished.is_ok(), one_message, "{finished:?}");
    if let Ok(message) = finished {
        assert_eq!(message, whole.messages[0]);
    }
}

fn read(chunks: &[&[u8]]) -> Read {
    let mut reader = MessageReader::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        let mut chunk = Bytes::copy_from_slice(chunk);
        loop {
            match reader.next_message(&mut chunk) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(status) => {
                    return Read {
                        messages,
                        end: Err((status.code, status.message)),
                    }
                }
            }
        }
        assert!(chunk.is_empty(), "the reader left bytes of a chunk unread");
    }
    Read {
        messages,
        end: Ok(reader.is_at_boundary()),
    }
}

fn timeout(value: &[u8]) {
    let Ok(duration) = parse_timeout(value) else {
        return;
    };
    assert!(value.len() >= 2 && value.len() <= MAX_TIMEOUT_DIGITS + 1);
    let nanos = duration.as_nanos().to_string();
    if nanos.len() <= MAX_TIMEOUT_DIGITS {
        assert_eq!(parse_timeout(format!("{nanos}n").as_bytes()), Ok(duration));
    }
}

fn status_message(text: &[u8]) {
    let message = String::from_utf8_lossy(text);
    let encoded = encode_status_message(&message);
    assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    let (kept, cut) = if message.len() <= MAX_STATUS_MESSAGE_BYTES {
        (&message[..], false)
    } else {
        let mut end = MAX_STATUS_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        (&message[..end], true)
    };
    let expected = if cut {
        format!("{kept}...")
    } else {
        kept.to_owned()
    };
    assert_eq!(percent_decode(&encoded), expected.as_bytes());

    let status = Status::new(Code::Internal, message.clone());
    let trailers = trailers(Err(&status));
    let carried = trailers.get("grpc-message").map(|v| v.as_bytes().to_vec());
    if message.is_empty() {
        assert!(carried.is_none() || carried.as_deref() == Some(&b""[..]));
    } else {
        assert_eq!(carried.as_deref(), Some(encoded.as_bytes()));
    }
}

/// `%XX` to the byte; everything else as it is. A `%` without two hex
/// digits after it is a finding.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte != b'%' {
            out.push(byte);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(decoded) => out.push(decoded),
            None => panic!("a % without two hex digits in {text:?}"),
        }
        i += 3;
    }
    out
}

dockshim_fuzz::fuzz_target!(run);
