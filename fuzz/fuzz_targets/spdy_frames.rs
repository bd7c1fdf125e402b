//! The SPDY/3.1 frame reader and its header blocks (`streaming::spdy`).
//!
//! The first byte picks how the rest is read. Even: the rest is the byte
//! stream a client sends, header blocks compressed as they come. Odd: the
//! rest describes frames whose header blocks this target compresses itself
//! (stored zlib blocks, as our writer makes them), so that mutations reach
//! the name/value block parser instead of dying in the inflater.
//!
//! Asserts, for every input: no panic; reading one frame never has more
//! live than the frame limits allow (`MAX_CONTROL_PAYLOAD`,
//! `MAX_HEADER_BLOCK`, `MAX_DATA_PAYLOAD` and the zlib window), whatever
//! length a frame header claims; the reader goes on only after errors that
//! reset one stream; and every frame read, written again with our writer
//! (when the writer may send it), reads back the same.
#![cfg_attr(afl, no_main)]

use dockshim::codec::zlib::{Deflater, SPDY3_DICTIONARY, WINDOW_SIZE};
use dockshim::streaming::spdy::{
    Frame, Reaction, SpdyReader, SpdyWriter, MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD,
    MAX_HEADER_BLOCK, VERSION,
};
use dockshim::streaming::SpdyError;
use dockshim_fuzz::{alloc, Cursor};

/// What one `read_frame` may hold beyond what the reader held before: the
/// control payload buffer (grown at most twice over), the inflated block
/// and the strings parsed from it, the history, and one DATA payload.
const FRAME_MEMORY_BOUND: usize =
    2 * MAX_CONTROL_PAYLOAD + 3 * MAX_HEADER_BLOCK + 2 * WINDOW_SIZE + MAX_DATA_PAYLOAD + 64 * 1024;

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let wire = if cursor.u8() & 1 == 0 {
        cursor.rest().to_vec()
    } else {
        frames_from(&mut cursor)
    };
    let frames = read_all(&wire);
    let mut writer = SpdyWriter::new(Vec::new());
    let mut written = Vec::new();
    for frame in frames {
        if write(&mut writer, &frame).is_ok() {
            written.push(frame);
        }
    }
    let again = read_all(writer.get_ref());
    assert_eq!(again, written);
}

/// Every frame the reader returns before the stream ends or an error
/// stops it.
fn read_all(wire: &[u8]) -> Vec<Frame> {
    let mut reader = SpdyReader::new(wire);
    let mut frames = Vec::new();
    loop {
        let (result, peak) = alloc::peak_during(|| reader.read_frame());
        assert!(peak <= FRAME_MEMORY_BOUND, "one frame held {peak} bytes");
        match result {
            Ok(frame) => frames.push(frame),
            Err(SpdyError::Closed) => return frames,
            Err(err) => {
                if !matches!(err.reaction(), Reaction::ResetStream { .. }) {
                    return frames;
                }
            }
        }
    }
}

/// Frames described by the input: a kind byte, then the kind's fields;
/// header blocks are given uncompressed and compressed here.
fn frames_from(cursor: &mut Cursor<'_>) -> Vec<u8> {
    let mut deflater = Deflater::new(SPDY3_DICTIONARY);
    let mut wire = Vec::new();
    while !cursor.is_empty() {
        let kind = cursor.u8();
        let flags = cursor.u8();
        let stream = cursor.u32();
        let mut payload = stream.to_be_bytes().to_vec();
        let control_type = match kind % 4 {
            0 => {
                payload.extend_from_slice(&cursor.u32().to_be_bytes());
                payload.extend_from_slice(&cursor.u16().to_be_bytes());
                1
            }
            1 => 2,
            2 => 8,
            _ => {
                // Raw bytes: any other frame, or garbage between frames.
                let len = usize::from(cursor.u16());
                wire.extend_from_slice(cursor.take(len));
                continue;
            }
        };
        let block_len = usize::from(cursor.u16());
        deflater.compress_block(cursor.take(block_len), &mut payload);
        control_frame(&mut wire, control_type, flags, &payload);
    }
    wire
}

fn control_frame(wire: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]) {
    wire.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    wire.extend_from_slice(&kind.to_be_bytes());
    wire.push(flags);
    // Payloads built here are at most a few hundred KiB, under 2^24.
    wire.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    wire.extend_from_slice(payload);
}

fn write(writer: &mut SpdyWriter<Vec<u8>>, frame: &Frame) -> Result<(), SpdyError> {
    match frame {
        Frame::SynStream(syn) => writer.write_syn_stream(syn),
        Frame::SynReply {
            stream,
            fin,
            headers,
        } => writer.write_syn_reply(*stream, *fin, headers),
        Frame::RstStream { stream, status } => writer.write_rst_stream(*stream, *status),
        Frame::Settings { clear, settings } => writer.write_settings(*clear, settings),
        Frame::Ping { id } => writer.write_ping(*id),
        Frame::GoAway {
            last_good_stream,
            status,
        } => writer.write_goaway(*last_good_stream, *status),
        Frame::Headers {
            stream,
            fin,
            headers,
        } => writer.write_headers(*stream, *fin, headers),
        Frame::WindowUpdate { stream, delta } => writer.write_window_update(*stream, *delta),
        Frame::Data { stream, fin, data } => writer.write_data(*stream, *fin, data),
    }
}

dockshim_fuzz::fuzz_target!(run);
