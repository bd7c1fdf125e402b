//! Writes the seed corpora: for each target, a few inputs built from
//! known-good encodings (what Kubernetes clients, dockerd, grpc-go and the
//! kernel send, as dockshim's own tests spell them), so that afl-fuzz
//! starts from the shapes that matter. `fuzz/run.sh seeds` runs it; the
//! files are committed under `corpus/<target>/seed-*`, and whatever else a
//! corpus holds (inputs afl-fuzz found) is left alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dockshim::codec::zlib::{Deflater, SPDY3_DICTIONARY};
use dockshim::streaming::spdy::{
    GoAwayStatus, HeaderBlock, RstStatus, Setting, SpdyWriter, SynStream,
};
use flate2::{Compress, Compression, FlushCompress};

mod more;

/// Collects the seeds of every target, then writes them.
#[derive(Debug, Default)]
pub struct Seeds {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Seeds {
    pub fn add(&mut self, target: &str, name: &str, bytes: impl Into<Vec<u8>>) {
        self.files
            .push((Path::new(target).join(format!("seed-{name}")), bytes.into()));
    }

    fn write(&self, corpus: &Path) -> io::Result<()> {
        for (path, bytes) in &self.files {
            let path = corpus.join(path);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&path, bytes)?;
        }
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let corpus = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("corpus"));
    let mut seeds = Seeds::default();
    http_request_head(&mut seeds);
    spdy_frames(&mut seeds);
    zlib_inflate(&mut seeds);
    websocket_reader(&mut seeds);
    channel_framing(&mut seeds);
    more::add_all(&mut seeds);
    seeds.write(&corpus)?;
    println!(
        "wrote {} seed files under {}",
        seeds.files.len(),
        corpus.display()
    );
    Ok(())
}

fn crlf(lines: &[&str]) -> Vec<u8> {
    lines.join("\r\n").into_bytes()
}

fn http_request_head(seeds: &mut Seeds) {
    let target = "http_request_head";
    seeds.add(
        target,
        "spdy-exec",
        crlf(&[
            "POST /cri/exec/0123456789abcdef?command=sh&command=-c&command=echo+hi%21&stdin=1&tty=1 HTTP/1.1",
            "Host: 127.0.0.1:10010",
            "Connection: Upgrade",
            "Upgrade: SPDY/3.1",
            "X-Stream-Protocol-Version: v4.channel.k8s.io",
            "X-Stream-Protocol-Version: channel.k8s.io",
            "Content-Length: 0",
        ]),
    );
    seeds.add(
        target,
        "websocket-attach",
        crlf(&[
            "GET /cri/attach/tok?stdout=1&stderr=1 HTTP/1.1",
            "Host: localhost",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io",
        ]),
    );
    seeds.add(
        target,
        "absolute-form-http10",
        crlf(&[
            "GET http://node:10250/cri/portforward/abc?port=80,443 HTTP/1.0",
            "Upgrade: SPDY/3.1\t",
        ]),
    );
}

fn headers(fields: &[(&str, &str)]) -> HeaderBlock {
    fields.iter().copied().collect()
}

fn syn(stream: u32, fields: &[(&str, &str)]) -> SynStream {
    SynStream {
        stream,
        associated_to: None,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers: headers(fields),
    }
}

/// A session as a client-go exec or port-forward sends it, written with
/// our writer (stored zlib blocks).
fn spdy_session(port_forward: bool) -> Vec<u8> {
    let mut writer = SpdyWriter::new(Vec::new());
    let mut frames = || -> Result<(), dockshim::streaming::SpdyError> {
        if port_forward {
            for (stream, kind) in [(1, "error"), (3, "data")] {
                writer.write_syn_stream(&syn(
                    stream,
                    &[("streamtype", kind), ("port", "8080"), ("requestid", "0")],
                ))?;
            }
            writer.write_data(3, false, b"GET / HTTP/1.0\r\n\r\n")?;
            writer.write_data(3, true, b"")?;
            writer.write_rst_stream(1, RstStatus::CANCEL)?;
        } else {
            for (stream, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
                writer.write_syn_stream(&syn(stream, &[("streamtype", kind)]))?;
            }
            writer.write_data(3, false, b"echo hi\n")?;
            writer.write_data(7, false, br#"{"Width":80,"Height":24}"#)?;
            writer.write_data(3, true, b"")?;
            writer.write_headers(5, false, &headers(&[("x-trailer", "v")]))?;
            writer.write_settings(
                true,
                &[Setting {
                    id: Setting::INITIAL_WINDOW_SIZE,
                    flags: 1,
                    value: 1 << 20,
                }],
            )?;
            writer.write_window_update(0, 4096)?;
            writer.write_ping(1)?;
        }
        writer.write_goaway(0, GoAwayStatus::OK)
    };
    frames().unwrap_or_else(|e| panic!("writing a seed session: {e}"));
    writer.get_ref().clone()
}

/// A header block as SPDY carries it before compression.
fn plain_header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (fields.len() as u32).to_be_bytes().to_vec();
    for (name, value) in fields {
        for field in [name, value] {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
    }
    out
}

/// Compresses `blocks` as a zlib-using SPDY peer does: one stream with the
/// SPDY dictionary, a sync flush after each block.
fn reference_blocks(level: u32, blocks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut compress = Compress::new(Compression::new(level), true);
    compress
        .set_dictionary(SPDY3_DICTIONARY)
        .unwrap_or_else(|e| panic!("set_dictionary: {e}"));
    blocks
        .iter()
        .map(|block| {
            let mut out = Vec::with_capacity(block.len() + 64);
            let mut consumed = 0;
            loop {
                let before = compress.total_in();
                compress
                    .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                    .unwrap_or_else(|e| panic!("compress: {e}"));
                consumed += (compress.total_in() - before) as usize;
                if consumed == block.len() && out.len() < out.capacity() {
                    return out;
                }
                out.reserve(out.capacity().max(64));
            }
        })
        .collect()
}

fn spdy_frames(seeds: &mut Seeds) {
    let target = "spdy_frames";
    for (name, port_forward) in [("exec", false), ("port-forward", true)] {
        let mut bytes = vec![0];
        bytes.extend(spdy_session(port_forward));
        seeds.add(target, name, bytes);
    }
    // A Go client's SYN_STREAMs, compressed by a real zlib.
    let blocks = reference_blocks(
        6,
        &[
            plain_header_block(&[("streamtype", "error")]),
            plain_header_block(&[("streamtype", "stdout")]),
        ],
    );
    let mut bytes = vec![0];
    for (i, block) in blocks.iter().enumerate() {
        let mut payload = (2 * i as u32 + 1).to_be_bytes().to_vec();
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(block);
        bytes.extend_from_slice(&[0x80, 3, 0, 1, 0]);
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        bytes.extend_from_slice(&payload);
    }
    seeds.add(target, "zlib-syn-streams", bytes);
    // Described frames: SYN_STREAM, SYN_REPLY, HEADERS with plain blocks.
    let mut bytes = vec![1];
    for (kind, stream, fields) in [
        (0u8, 1u32, &[("streamtype", "error"), ("port", "80")][..]),
        (1, 3, &[("status", "200")][..]),
        (2, 5, &[("a", "b\0c")][..]),
    ] {
        bytes.push(kind);
        bytes.push(0);
        bytes.extend_from_slice(&stream.to_be_bytes());
        if kind == 0 {
            bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        let block = plain_header_block(fields);
        bytes.extend_from_slice(&(block.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&block);
    }
    seeds.add(target, "described", bytes);
}

fn header_texts() -> Vec<Vec<u8>> {
    vec![
        plain_header_block(&[("streamtype", "error")]),
        plain_header_block(&[("streamtype", "data"), ("port", "8080"), ("requestid", "1")]),
        plain_header_block(&[(":status", "200 OK"), (":version", "HTTP/1.1")]),
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .to_vec(),
    ]
}

/// Blocks as the target reads them: a length byte and that many bytes.
fn pieces(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in blocks {
        for chunk in block.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    }
    out
}

fn zlib_inflate(seeds: &mut Seeds) {
    let target = "zlib_inflate";
    let texts = header_texts();
    for level in [1, 6, 9] {
        let mut bytes = vec![0, 0];
        bytes.extend(pieces(&reference_blocks(level, &texts)));
        seeds.add(target, &format!("reference-level-{level}"), bytes);
    }
    let mut deflater = Deflater::new(SPDY3_DICTIONARY);
    let ours: Vec<Vec<u8>> = texts
        .iter()
        .map(|text| {
            let mut out = Vec::new();
            deflater.compress_block(text, &mut out);
            out
        })
        .collect();
    let mut bytes = vec![0, 0];
    bytes.extend(pieces(&ours));
    seeds.add(target, "stored", bytes);
    for (mode, level) in [(1, 6), (1, 9), (2, 0)] {
        let mut bytes = vec![mode, level];
        bytes.extend(pieces(&texts));
        seeds.add(target, &format!("texts-mode-{mode}-level-{level}"), bytes);
    }
}

/// A masked client frame.
pub fn ws_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
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

fn websocket_reader(seeds: &mut Seeds) {
    let target = "websocket_reader";
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    // The limit (two bytes), no cut points, then frames.
    let with_limit = |frames: &[Vec<u8>], cuts: &[u8]| {
        let mut out = 4096u16.to_be_bytes().to_vec();
        out.push(cuts.len() as u8);
        out.extend_from_slice(cuts);
        for frame in frames {
            out.extend_from_slice(frame);
        }
        out
    };
    seeds.add(
        target,
        "rfc-text-and-close",
        with_limit(
            &[
                ws_frame(0x81, b"Hello", mask),
                ws_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], mask),
            ],
            &[],
        ),
    );
    seeds.add(
        target,
        "fragments-with-ping",
        with_limit(
            &[
                ws_frame(0x01, b"Hel", mask),
                ws_frame(0x89, b"ping", mask),
                ws_frame(0x80, b"lo", mask),
                ws_frame(0x8a, b"", mask),
                ws_frame(0x82, &[0; 300], mask),
            ],
            &[3, 40, 200],
        ),
    );
    seeds.add(
        target,
        "channel-messages",
        with_limit(
            &[
                ws_frame(0x82, b"\x00echo hi\n", mask),
                ws_frame(0x82, b"\x04{\"Width\":80,\"Height\":24}", mask),
                ws_frame(0x82, b"\xff\x00", mask),
                ws_frame(0x81, b"0aGVsbG8=", mask),
                ws_frame(0x88, b"", mask),
            ],
            &[1],
        ),
    );
}

fn channel_framing(seeds: &mut Seeds) {
    let target = "channel_framing";
    // V5 exec messages, then base64 v4 port-forward messages.
    let mut bytes = vec![0, 0];
    for message in [
        &b"\x00echo hi\n"[..],
        b"\x04{}",
        b"\xff\x00",
        b"\xff\x09",
        b"",
    ] {
        bytes.push(message.len() as u8);
        bytes.extend_from_slice(message);
    }
    seeds.add(target, "v5-exec-messages", bytes);
    let mut bytes = vec![0x80 | (2 << 3) | 2, 0];
    for message in [&b"0aGVsbG8="[..], b"1", b"2AAE=", b"0!!!"] {
        bytes.push(message.len() as u8);
        bytes.extend_from_slice(message);
    }
    seeds.add(target, "v4-base64-port-forward", bytes);
    seeds.add(
        target,
        "resize",
        [
            &[1u8, 1][..],
            br#"{"Width":80,"height":24,"x":[1]} {"WIDTH":100}"#,
        ]
        .concat(),
    );
    seeds.add(target, "ports", [&[1u8, 2][..], b"80,443\n8080"].concat());
    seeds.add(
        target,
        "status",
        [&[1u8, 3][..], "exit status \"1\"\n\u{7f}é".as_bytes()].concat(),
    );
}
