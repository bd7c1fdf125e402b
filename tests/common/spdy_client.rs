//! `SpdyClient`: a SPDY/3.1 client for the streaming server, behaving like
//! the kubelet's and the API server's Go client (`moby/spdystream`): an
//! HTTP/1.1 upgrade offering `X-Stream-Protocol-Version`s, client streams
//! with odd ids opened by SYN_STREAM, header blocks compressed by zlib at
//! its best level with the SPDY/3 dictionary and a sync flush, no flow
//! control.
//!
//! It shares nothing with dockshim's SPDY code: frames are assembled and
//! taken apart here, and header compression is flate2 (zlib-rs). Only the
//! dictionary's bytes are a fact both sides must agree on; they are
//! checked against the id every SPDY/3 peer writes (0xe3c6a7c2). Blocking
//! I/O on a `TcpStream`: call it from a thread or `spawn_blocking`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The zlib dictionary id of SPDY/3 header compression.
const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// An upgrade answer or frame the server sends that is larger than this is
/// treated as a protocol error rather than buffered.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_BODY: usize = 64 * 1024;
const MAX_FRAME: usize = 16 * 1024 * 1024;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;
const FLAG_FIN: u8 = 0x01;

/// The answer to the upgrade request.
#[derive(Debug, Clone)]
pub struct UpgradeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Only read when the upgrade was refused.
    pub body: Vec<u8>,
}

impl UpgradeResponse {
    /// The first value of `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A frame from the server, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    SynStream {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// Each entry as (flags << 24 | id, value).
    Settings {
        entries: Vec<(u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream: u32,
        status: u32,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame of a type this client does not know.
    Unknown {
        kind: u16,
    },
}

/// One upgraded connection.
#[derive(Debug)]
pub struct SpdyClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    compress: Compress,
    decompress: Decompress,
    next_stream: u32,
}

impl SpdyClient {
    /// Connects to `addr` and sends `method path` with the SPDY/3.1
    /// upgrade headers, offering `protocols` in order. Returns the answer,
    /// and the client when the server switched protocols (101).
    pub fn connect(
        addr: SocketAddr,
        method: &str,
        path: &str,
        protocols: &[&str],
    ) -> io::Result<(UpgradeResponse, Option<SpdyClient>)> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut writer = stream.try_clone()?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: dockshim-tests\r\n\
             Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        );
        for protocol in protocols {
            request.push_str(&format!("X-Stream-Protocol-Version: {protocol}\r\n"));
        }
        request.push_str("\r\n");
        writer.write_all(request.as_bytes())?;

        let mut reader = BufReader::new(stream);
        let mut response = read_response_head(&mut reader)?;
        if response.status != 101 {
            response.body = read_body(&mut reader, &response)?;
            return Ok((response, None));
        }
        let mut compress = Compress::new(Compression::best(), true);
        compress
            .set_dictionary(&dictionary())
            .map_err(|e| invalid(format!("zlib dictionary: {e}")))?;
        let client = SpdyClient {
            reader,
            writer,
            compress,
            decompress: Decompress::new(true),
            next_stream: 1,
        };
        Ok((response, Some(client)))
    }

    /// Bounds every later read; `None` waits forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Opens the next client stream with `headers` (names lower-case, as
    /// Go's client writes them) and returns its id.
    pub fn open_stream(&mut self, headers: &[(&str, &str)], fin: bool) -> io::Result<u32> {
        let stream = self.next_stream;
        self.next_stream += 2;
        let mut payload = stream.to_be_bytes().to_vec();
        // No associated stream, priority 0, slot 0.
        payload.extend_from_slice(&[0; 6]);
        let block = self.compress_headers(headers)?;
        payload.extend_from_slice(&block);
        self.send_control(TYPE_SYN_STREAM, if fin { FLAG_FIN } else { 0 }, &payload)?;
        Ok(stream)
    }

    /// One DATA frame; an empty one with `fin` half-closes the stream, as
    /// Go's `Stream.Close` does.
    pub fn send_data(&mut self, stream: u32, data: &[u8], fin: bool) -> io::Result<()> {
        let mut frame = stream.to_be_bytes().to_vec();
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&length_field(data.len())?);
        frame.extend_from_slice(data);
        self.writer.write_all(&frame)
    }

    pub fn send_reset(&mut self, stream: u32, status: u32) -> io::Result<()> {
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&status.to_be_bytes());
        self.send_control(TYPE_RST_STREAM, 0, &payload)
    }

    /// A PING; the client's own ids are odd.
    pub fn send_ping(&mut self, id: u32) -> io::Result<()> {
        self.send_control(TYPE_PING, 0, &id.to_be_bytes())
    }

    pub fn send_goaway(&mut self, last_good_stream: u32, status: u32) -> io::Result<()> {
        let mut payload = last_good_stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&status.to_be_bytes());
        self.send_control(TYPE_GOAWAY, 0, &payload)
    }

    /// Sends raw bytes, for frames this client would never build.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Half-closes the TCP connection: the server reads end-of-stream.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.writer.shutdown(std::net::Shutdown::Write)
    }

    /// The next frame, or `None` when the server closed the connection
    /// between frames.
    pub fn read_frame(&mut self) -> io::Result<Option<ClientFrame>> {
        let mut head = [0u8; 8];
        if !self.read_head(&mut head)? {
            return Ok(None);
        }
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if length > MAX_FRAME {
            return Err(invalid(format!("frame of {length} bytes")));
        }
        let mut payload = vec![0; length];
        self.reader.read_exact(&mut payload)?;
        let fin = flags & FLAG_FIN != 0;
        if word & 0x8000_0000 == 0 {
            return Ok(Some(ClientFrame::Data {
                stream: word,
                fin,
                data: payload,
            }));
        }
        let version = (word >> 16) & 0x7fff;
        if version != 3 {
            return Err(invalid(format!("control frame of version {version}")));
        }
        let kind = (word & 0xffff) as u16;
        let frame = match kind {
            TYPE_SYN_STREAM => {
                let stream = field(&payload, 0)? & 0x7fff_ffff;
                ClientFrame::SynStream {
                    stream,
                    fin,
                    headers: self.decompress_headers(payload.get(10..))?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream = field(&payload, 0)? & 0x7fff_ffff;
                let headers = self.decompress_headers(payload.get(4..))?;
                if kind == TYPE_SYN_REPLY {
                    ClientFrame::SynReply {
                        stream,
                        fin,
                        headers,
                    }
                } else {
                    ClientFrame::Headers {
                        stream,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => ClientFrame::RstStream {
                stream: field(&payload, 0)? & 0x7fff_ffff,
                status: field(&payload, 4)?,
            },
            TYPE_SETTINGS => {
                let count = field(&payload, 0)? as usize;
                let entries = (0..count)
                    .map(|i| Ok((field(&payload, 4 + 8 * i)?, field(&payload, 8 + 8 * i)?)))
                    .collect::<io::Result<_>>()?;
                ClientFrame::Settings { entries }
            }
            TYPE_PING => ClientFrame::Ping {
                id: field(&payload, 0)?,
            },
            TYPE_GOAWAY => ClientFrame::GoAway {
                last_good_stream: field(&payload, 0)? & 0x7fff_ffff,
                status: field(&payload, 4)?,
            },
            TYPE_WINDOW_UPDATE => ClientFrame::WindowUpdate {
                stream: field(&payload, 0)? & 0x7fff_ffff,
                delta: field(&payload, 4)? & 0x7fff_ffff,
            },
            _ => ClientFrame::Unknown { kind },
        };
        Ok(Some(frame))
    }

    /// Fills `head`; false on a clean end before its first byte.
    fn read_head(&mut self, head: &mut [u8; 8]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < head.len() {
            match self.reader.read(&mut head[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn send_control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = vec![0x80, 0x03];
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.push(flags);
        frame.extend_from_slice(&length_field(payload.len())?);
        frame.extend_from_slice(payload);
        self.writer.write_all(&frame)
    }

    fn compress_headers(&mut self, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for field in [name, value] {
                block.extend_from_slice(&(field.len() as u32).to_be_bytes());
                block.extend_from_slice(field.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("zlib: {e}")))?;
            consumed += (self.compress.total_in() - before) as usize;
            // Room left over means zlib finished the flush.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }

    fn decompress_headers(
        &mut self,
        compressed: Option<&[u8]>,
    ) -> io::Result<Vec<(String, String)>> {
        let compressed = compressed.ok_or_else(|| invalid("header frame too short".into()))?;
        let mut block = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            let before_in = self.decompress.total_in();
            let before_out = self.decompress.total_out();
            let loaded_dictionary = match self.decompress.decompress_vec(
                &compressed[consumed..],
                &mut block,
                FlushDecompress::Sync,
            ) {
                Ok(_) => false,
                Err(e) => match e.needs_dictionary() {
                    Some(id) if id == DICTIONARY_ID => {
                        self.decompress
                            .set_dictionary(&dictionary())
                            .map_err(|e| invalid(format!("zlib dictionary: {e}")))?;
                        true
                    }
                    Some(id) => return Err(invalid(format!("unknown zlib dictionary {id:#x}"))),
                    None => return Err(invalid(format!("zlib: {e}"))),
                },
            };
            consumed += (self.decompress.total_in() - before_in) as usize;
            if consumed == compressed.len() && block.len() < block.capacity() {
                break;
            }
            let progressed = loaded_dictionary
                || self.decompress.total_in() != before_in
                || self.decompress.total_out() != before_out;
            if !progressed && block.len() < block.capacity() {
                return Err(invalid("header block does not end on a sync flush".into()));
            }
            block.reserve(block.capacity().max(64));
        }
        parse_header_block(&block)
    }
}

/// The SPDY/3 header dictionary (section 2.6.10.1): length-prefixed words,
/// then plain text. Checked against its zlib id before use.
fn dictionary() -> Vec<u8> {
    const WORDS: &str = "options head post put delete trace accept accept-charset \
        accept-encoding accept-language accept-ranges age allow authorization cache-control \
        connection content-base content-encoding content-language content-length \
        content-location content-md5 content-range content-type date etag expect expires from \
        host if-match if-modified-since if-none-match if-range if-unmodified-since \
        last-modified location max-forwards pragma proxy-authenticate proxy-authorization \
        range referer retry-after server te trailer transfer-encoding upgrade user-agent vary \
        via warning www-authenticate method get status 200_OK version HTTP/1.1 url public \
        set-cookie keep-alive origin";
    const TEXT: &str = "100101201202205206300302303304305306307402405406407408409410411412\
        413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
        Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal \
        Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug \
        Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,\
        image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,\
        text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,\
        utf-,*,enq=0.";
    let mut dictionary = Vec::new();
    for word in WORDS.split_whitespace() {
        // `200_OK` stands for the one word with a space in it.
        let word = word.replace('_', " ");
        dictionary.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    dictionary.extend_from_slice(TEXT.as_bytes());
    assert_eq!(adler32(&dictionary), DICTIONARY_ID, "SPDY/3 dictionary");
    dictionary
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn parse_header_block(block: &[u8]) -> io::Result<Vec<(String, String)>> {
    let count = field(block, 0)? as usize;
    let mut at = 4;
    let mut headers = Vec::new();
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for text in &mut pair {
            let len = field(block, at)? as usize;
            let bytes = block
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| invalid("header block cut short".into()))?;
            *text = String::from_utf8(bytes.to_vec())
                .map_err(|_| invalid("header is not UTF-8".into()))?;
            at += 4 + len;
        }
        let [name, value] = pair;
        headers.push((name, value));
    }
    if at != block.len() {
        return Err(invalid("bytes after the last header".into()));
    }
    Ok(headers)
}

/// The big-endian u32 at `at`.
fn field(bytes: &[u8], at: usize) -> io::Result<u32> {
    let b = bytes
        .get(at..at + 4)
        .ok_or_else(|| invalid("frame too short".into()))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn length_field(length: usize) -> io::Result<[u8; 3]> {
    if length > 0x00ff_ffff {
        return Err(invalid(format!("{length} bytes do not fit one frame")));
    }
    let b = (length as u32).to_be_bytes();
    Ok([b[1], b[2], b[3]])
}

fn read_response_head(reader: &mut BufReader<TcpStream>) -> io::Result<UpgradeResponse> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 || total > MAX_RESPONSE_HEAD {
            return Err(invalid("upgrade answer cut short or too long".into()));
        }
        let line =
            String::from_utf8(line).map_err(|_| invalid("upgrade answer is not UTF-8".into()))?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let status_line = lines
        .first()
        .ok_or_else(|| invalid("no status line".into()))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("status line {status_line:?}")))?;
    let headers = lines[1..]
        .iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line {line:?}")))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<io::Result<_>>()?;
    Ok(UpgradeResponse {
        status,
        headers,
        body: Vec::new(),
    })
}

/// The body of a refused upgrade: Content-Length bytes, or up to the close.
fn read_body(reader: &mut BufReader<TcpStream>, response: &UpgradeResponse) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match response.header("content-length") {
        Some(length) => {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("Content-Length {length:?}")))?;
            if length > MAX_RESPONSE_BODY {
                return Err(invalid(format!("body of {length} bytes")));
            }
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader
                .take(MAX_RESPONSE_BODY as u64)
                .read_to_end(&mut body)?;
        }
    }
    Ok(body)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
