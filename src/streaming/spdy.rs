//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 as amended by SPDY/3.1),
//! the multiplexing the kubelet and the API server use for exec, attach and
//! port-forward after an `Upgrade: SPDY/3.1` handshake.
//!
//! It owns the frame codec: a [`SpdyReader`] that turns a byte stream into
//! [`Frame`]s and owns the inbound header decompression, a [`SpdyWriter`]
//! that writes each kind of frame and owns the outbound compression, the
//! name/value header blocks inside them, the size limits, the mapping of
//! every failure to the RST_STREAM or GOAWAY it calls for, and the
//! receive-window accounting of SPDY/3.1 flow control. It must not do the
//! HTTP upgrade, decide which streams are open or what they carry, or know
//! about dockerd or the CRI: that is the session's job, one thread per
//! session, with the writer behind a mutex shared by the pump threads.
//!
//! Facts of the protocol this code relies on:
//! - SPDY/3.1 frames still carry version 3; 3.1 only adds the session-wide
//!   flow-control window (WINDOW_UPDATE on stream 0) and drops CREDENTIAL.
//!   Control frames of any other version are refused.
//! - Streams opened by the client (kubelet, API server) have odd ids, those
//!   opened by the server even ids; 0 is never a stream. PING ids follow
//!   the same parity.
//! - Control frame types this module does not know are read and ignored,
//!   as the protocol requires.
//!
//! Flow control: every Kubernetes client speaks SPDY through the Go
//! package `moby/spdystream`, which neither sends WINDOW_UPDATE nor honours
//! one: it drops WINDOW_UPDATE and SETTINGS frames unread and writes each
//! buffer as one DATA frame whatever the windows say. A server that waited
//! for window credit before sending would stall every stream after its
//! first 64 KiB, and one that enforced its own receive window would reset
//! streams of a client that never learned about it. So the windows are not
//! enforced in either direction: backpressure comes from the blocking
//! socket. What stays is the courtesy a flow-controlling peer needs,
//! [`ReceiveWindow`], which tells the session when to grant more credit for
//! data it has consumed; `spdystream` ignores the grants.
//!
//! Go's framer decompresses a header block through a 4 KiB read buffer and
//! refuses a frame whose compressed bytes it did not read to the end, so
//! header blocks sent to it should stay well below 4 KiB; a session's
//! replies are a few dozen bytes.

use std::io::{self, Read, Write};

use super::SpdyError;
use crate::codec::zlib::{Deflater, Inflater, SPDY3_DICTIONARY};

/// The version in every control frame.
pub const VERSION: u16 = 3;

/// Largest DATA payload accepted. The 24-bit length field allows 16 MiB;
/// Kubernetes clients copy in 32 KiB buffers.
pub const MAX_DATA_PAYLOAD: usize = 1024 * 1024;

/// Largest decompressed header block, accepted or sent. The inflater
/// refuses to grow past it, and the block is dropped once parsed, so a
/// session holds at most one at a time.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Longest header name or value accepted or sent. Kubernetes streams carry
/// a stream type, a port and a request ID, each a few bytes; a longer
/// field is refused before it is copied out of the block, so a stream's
/// headers never hold more than `MAX_HEADERS` times this.
pub const MAX_HEADER_VALUE: usize = 4 * 1024;

/// Largest control frame payload: a maximal header block plus the fixed
/// fields and the framing of its compressed form.
pub const MAX_CONTROL_PAYLOAD: usize = MAX_HEADER_BLOCK + 1024;

/// Name/value pairs per header block. Kubernetes streams carry three.
pub const MAX_HEADERS: usize = 100;

/// Entries per SETTINGS frame; SPDY/3 defines eight ids.
pub const MAX_SETTINGS: usize = 64;

/// The largest stream id, and the mask for the 31-bit id fields.
pub const MAX_STREAM_ID: StreamId = 0x7fff_ffff;

/// The flow-control window every stream and the session start with.
pub const INITIAL_WINDOW_SIZE: u32 = 64 * 1024;

/// Largest delta one WINDOW_UPDATE can carry (a 31-bit field).
pub const MAX_WINDOW_DELTA: u32 = 0x7fff_ffff;

/// Bytes of the frame header: a control word and the flags and length.
const FRAME_HEADER_LEN: usize = 8;

/// The 24-bit length field's maximum.
const MAX_FRAME_LENGTH: usize = 0x00ff_ffff;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// FIN on SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender is done.
const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL on SYN_STREAM: the receiver must not send on it.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// CLEAR_SETTINGS on SETTINGS.
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

/// A 31-bit stream id.
pub type StreamId = u32;

/// A header block: names are lower-case and unique; a value may hold
/// several values separated by NUL, kept here as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    fields: Vec<(String, String)>,
}

impl HeaderBlock {
    pub fn new() -> HeaderBlock {
        HeaderBlock::default()
    }

    /// Appends a field. Names are checked when the block is written.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// The value of `name`, exactly as sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> HeaderBlock {
        HeaderBlock {
            fields: fields
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// The status of a RST_STREAM frame. Unknown codes are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStatus(pub u32);

impl RstStatus {
    pub const PROTOCOL_ERROR: RstStatus = RstStatus(1);
    pub const INVALID_STREAM: RstStatus = RstStatus(2);
    pub const REFUSED_STREAM: RstStatus = RstStatus(3);
    pub const UNSUPPORTED_VERSION: RstStatus = RstStatus(4);
    pub const CANCEL: RstStatus = RstStatus(5);
    pub const INTERNAL_ERROR: RstStatus = RstStatus(6);
    pub const FLOW_CONTROL_ERROR: RstStatus = RstStatus(7);
    pub const STREAM_IN_USE: RstStatus = RstStatus(8);
    pub const STREAM_ALREADY_CLOSED: RstStatus = RstStatus(9);
    pub const FRAME_TOO_LARGE: RstStatus = RstStatus(11);

    /// The protocol's name for the status, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            _ => "unknown",
        }
    }
}

/// The status of a GOAWAY frame. Unknown codes are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    pub const OK: GoAwayStatus = GoAwayStatus(0);
    pub const PROTOCOL_ERROR: GoAwayStatus = GoAwayStatus(1);
    pub const INTERNAL_ERROR: GoAwayStatus = GoAwayStatus(2);

    /// The protocol's name for the status, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            _ => "unknown",
        }
    }
}

/// One entry of a SETTINGS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// A 24-bit id.
    pub id: u32,
    pub flags: u8,
    pub value: u32,
}

impl Setting {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// A SYN_STREAM frame: the sender opens a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynStream {
    pub stream: StreamId,
    /// The stream this one belongs to, for server push; never set by
    /// Kubernetes clients.
    pub associated_to: Option<StreamId>,
    /// 0 (highest) to 7.
    pub priority: u8,
    pub slot: u8,
    /// The sender will send nothing more on this stream.
    pub fin: bool,
    /// The receiver must send nothing on this stream.
    pub unidirectional: bool,
    pub headers: HeaderBlock,
}

/// A frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream(SynStream),
    SynReply {
        stream: StreamId,
        fin: bool,
        headers: HeaderBlock,
    },
    RstStream {
        stream: StreamId,
        status: RstStatus,
    },
    Settings {
        clear: bool,
        settings: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream: StreamId,
        status: GoAwayStatus,
    },
    Headers {
        stream: StreamId,
        fin: bool,
        headers: HeaderBlock,
    },
    /// Stream 0 grants credit to the whole session.
    WindowUpdate {
        stream: StreamId,
        delta: u32,
    },
    Data {
        stream: StreamId,
        fin: bool,
        data: Vec<u8>,
    },
}

/// What the session must do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing can be sent any more: close the connection.
    Close,
    /// Reset this stream and carry on with the others.
    ResetStream { stream: StreamId, status: RstStatus },
    /// Send GOAWAY with this status, then close the connection.
    GoAway(GoAwayStatus),
}

// A reaction is a frame to send, so this mapping stays beside `Reaction`:
// `error` cannot import this file, which imports it.
impl SpdyError {
    /// The frame the protocol calls for, if any.
    pub fn reaction(&self) -> Reaction {
        match self {
            SpdyError::Closed | SpdyError::Io(_) => Reaction::Close,
            SpdyError::FrameTooLarge {
                stream: Some(stream),
                ..
            } => Reaction::ResetStream {
                stream: *stream,
                status: RstStatus::FRAME_TOO_LARGE,
            },
            SpdyError::InvalidHeaders { stream, .. } => Reaction::ResetStream {
                stream: *stream,
                status: RstStatus::PROTOCOL_ERROR,
            },
            SpdyError::UnsupportedVersion(_)
            | SpdyError::FrameTooLarge { stream: None, .. }
            | SpdyError::InvalidFrame { .. }
            | SpdyError::Compression(_) => Reaction::GoAway(GoAwayStatus::PROTOCOL_ERROR),
            SpdyError::Unwritable(_) => Reaction::GoAway(GoAwayStatus::INTERNAL_ERROR),
        }
    }
}

/// Reads frames from the peer. After an error whose reaction is not
/// `ResetStream` the reader is out of step and must be dropped.
#[derive(Debug)]
pub struct SpdyReader<R> {
    inner: R,
    inflater: Inflater,
    /// Control frame payloads, reused.
    payload: Vec<u8>,
}

impl<R: Read> SpdyReader<R> {
    pub fn new(inner: R) -> SpdyReader<R> {
        SpdyReader {
            inner,
            inflater: Inflater::new(SPDY3_DICTIONARY, MAX_HEADER_BLOCK),
            payload: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next frame, blocking until it is complete. Control frames
    /// of unknown types are skipped.
    pub fn read_frame(&mut self) -> Result<Frame, SpdyError> {
        loop {
            let head = self.read_head()?;
            let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let flags = head[4];
            let length =
                (usize::from(head[5]) << 16) | (usize::from(head[6]) << 8) | usize::from(head[7]);
            if word & 0x8000_0000 == 0 {
                return self.read_data(word & MAX_STREAM_ID, flags, length);
            }
            // The version is 15 bits and the type 16, so both casts are exact.
            let version = ((word >> 16) & 0x7fff) as u16;
            let kind = (word & 0xffff) as u16;
            if version != VERSION {
                return Err(SpdyError::UnsupportedVersion(version));
            }
            if length > MAX_CONTROL_PAYLOAD {
                return Err(SpdyError::FrameTooLarge {
                    stream: None,
                    length,
                    limit: MAX_CONTROL_PAYLOAD,
                });
            }
            self.payload.clear();
            self.payload.resize(length, 0);
            self.inner.read_exact(&mut self.payload)?;
            if let Some(frame) = self.parse_control(kind, flags)? {
                return Ok(frame);
            }
        }
    }

    /// The frame header, telling a clean end between frames from one
    /// inside a frame.
    fn read_head(&mut self) -> Result<[u8; FRAME_HEADER_LEN], SpdyError> {
        let mut head = [0u8; FRAME_HEADER_LEN];
        let mut filled = 0;
        while filled < head.len() {
            match self.inner.read(&mut head[filled..]) {
                Ok(0) if filled == 0 => return Err(SpdyError::Closed),
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(head)
    }

    fn read_data(
        &mut self,
        stream: StreamId,
        flags: u8,
        length: usize,
    ) -> Result<Frame, SpdyError> {
        if length > MAX_DATA_PAYLOAD {
            let skipped = io::copy(&mut (&mut self.inner).take(length as u64), &mut io::sink())?;
            if skipped < length as u64 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            return Err(SpdyError::FrameTooLarge {
                stream: Some(stream),
                length,
                limit: MAX_DATA_PAYLOAD,
            });
        }
        let mut data = vec![0; length];
        self.inner.read_exact(&mut data)?;
        if stream == 0 {
            return Err(SpdyError::InvalidFrame {
                frame: "DATA",
                reason: "stream id 0",
            });
        }
        Ok(Frame::Data {
            stream,
            fin: flags & FLAG_FIN != 0,
            data,
        })
    }

    /// Decodes the control frame in `self.payload`; `None` for a type this
    /// module does not know.
    fn parse_control(&mut self, kind: u16, flags: u8) -> Result<Option<Frame>, SpdyError> {
        let fin = flags & FLAG_FIN != 0;
        let frame = match kind {
            TYPE_SYN_STREAM => {
                let mut fields = Fields::new(&self.payload, "SYN_STREAM");
                let stream = fields.stream()?;
                let associated = fields.u32()? & MAX_STREAM_ID;
                let priority = fields.u8()? >> 5;
                let slot = fields.u8()?;
                let headers = decode_headers(&mut self.inflater, fields.rest(), stream)?;
                Frame::SynStream(SynStream {
                    stream,
                    associated_to: (associated != 0).then_some(associated),
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                })
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let name = if kind == TYPE_SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                let mut fields = Fields::new(&self.payload, name);
                let stream = fields.stream()?;
                let headers = decode_headers(&mut self.inflater, fields.rest(), stream)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                let mut fields = Fields::exact(&self.payload, 8, "RST_STREAM")?;
                let stream = fields.stream()?;
                let status = fields.u32()?;
                if status == 0 {
                    return Err(fields.invalid("status 0"));
                }
                Frame::RstStream {
                    stream,
                    status: RstStatus(status),
                }
            }
            TYPE_SETTINGS => {
                let mut fields = Fields::new(&self.payload, "SETTINGS");
                let count = fields.u32()? as usize;
                if count > MAX_SETTINGS {
                    return Err(fields.invalid("too many entries"));
                }
                if fields.rest_len() != count * 8 {
                    return Err(fields.invalid("length does not match the entry count"));
                }
                let mut settings = Vec::with_capacity(count);
                for _ in 0..count {
                    let flags_and_id = fields.u32()?;
                    settings.push(Setting {
                        // The top byte is the flags, the rest the id.
                        flags: (flags_and_id >> 24) as u8,
                        id: flags_and_id & 0x00ff_ffff,
                        value: fields.u32()?,
                    });
                }
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    settings,
                }
            }
            TYPE_PING => Frame::Ping {
                id: Fields::exact(&self.payload, 4, "PING")?.u32()?,
            },
            TYPE_GOAWAY => {
                let mut fields = Fields::exact(&self.payload, 8, "GOAWAY")?;
                Frame::GoAway {
                    last_good_stream: fields.u32()? & MAX_STREAM_ID,
                    status: GoAwayStatus(fields.u32()?),
                }
            }
            TYPE_WINDOW_UPDATE => {
                let mut fields = Fields::exact(&self.payload, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream: fields.u32()? & MAX_STREAM_ID,
                    delta: fields.u32()? & MAX_WINDOW_DELTA,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }
}

/// Big-endian fields of a control frame payload, refusing short ones.
struct Fields<'a> {
    bytes: &'a [u8],
    frame: &'static str,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], frame: &'static str) -> Fields<'a> {
        Fields { bytes, frame }
    }

    /// Fields of a frame type whose payload has a fixed length.
    fn exact(bytes: &'a [u8], length: usize, frame: &'static str) -> Result<Fields<'a>, SpdyError> {
        let fields = Fields::new(bytes, frame);
        if bytes.len() != length {
            return Err(fields.invalid("wrong length for its type"));
        }
        Ok(fields)
    }

    fn invalid(&self, reason: &'static str) -> SpdyError {
        SpdyError::InvalidFrame {
            frame: self.frame,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SpdyError> {
        if self.bytes.len() < n {
            return Err(self.invalid("too short"));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, SpdyError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SpdyError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A stream id that must name a stream.
    fn stream(&mut self) -> Result<StreamId, SpdyError> {
        let stream = self.u32()? & MAX_STREAM_ID;
        if stream == 0 {
            return Err(self.invalid("stream id 0"));
        }
        Ok(stream)
    }

    fn rest_len(&self) -> usize {
        self.bytes.len()
    }

    fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Decompresses and parses the header block of a frame on `stream`.
fn decode_headers(
    inflater: &mut Inflater,
    compressed: &[u8],
    stream: StreamId,
) -> Result<HeaderBlock, SpdyError> {
    let block = inflater
        .inflate_block(compressed)
        .map_err(SpdyError::Compression)?;
    parse_header_block(&block).map_err(|reason| SpdyError::InvalidHeaders { stream, reason })
}

/// Parses a decompressed header block: a 32-bit count, then that many
/// length-prefixed names and values.
fn parse_header_block(mut block: &[u8]) -> Result<HeaderBlock, &'static str> {
    let count = take_u32(&mut block)? as usize;
    if count > MAX_HEADERS {
        return Err("too many headers");
    }
    let mut fields: Vec<(String, String)> = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take_field(&mut block)?;
        check_name(name)?;
        let value = take_field(&mut block)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| "name is not UTF-8")?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| "value is not UTF-8")?;
        if fields.iter().any(|(n, _)| *n == name) {
            return Err("duplicate header name");
        }
        fields.push((name, value));
    }
    if !block.is_empty() {
        return Err("bytes after the last header");
    }
    Ok(HeaderBlock { fields })
}

fn take_u32(block: &mut &[u8]) -> Result<u32, &'static str> {
    if block.len() < 4 {
        return Err("header block cut short");
    }
    let (number, rest) = block.split_at(4);
    *block = rest;
    Ok(u32::from_be_bytes([
        number[0], number[1], number[2], number[3],
    ]))
}

fn take_field<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], &'static str> {
    let len = take_u32(block)? as usize;
    if len > MAX_HEADER_VALUE {
        return Err("header name or value too long");
    }
    if len > block.len() {
        return Err("header length runs past the block");
    }
    let (field, rest) = block.split_at(len);
    *block = rest;
    Ok(field)
}

/// Header names are non-empty, lower-case, printable US-ASCII.
fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty header name");
    }
    if !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err("header name is not printable US-ASCII");
    }
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err("header name is not lower-case");
    }
    Ok(())
}

/// Encodes `headers` as an uncompressed header block into `out`, checking
/// everything a reader would refuse.
fn encode_header_block(headers: &HeaderBlock, out: &mut Vec<u8>) -> Result<(), SpdyError> {
    if headers.len() > MAX_HEADERS {
        return Err(SpdyError::Unwritable("too many headers"));
    }
    out.clear();
    // At most MAX_HEADERS, so the count fits.
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (i, (name, value)) in headers.fields.iter().enumerate() {
        check_name(name.as_bytes()).map_err(SpdyError::Unwritable)?;
        if headers.fields[..i].iter().any(|(n, _)| n == name) {
            return Err(SpdyError::Unwritable("duplicate header name"));
        }
        for field in [name, value] {
            if field.len() > MAX_HEADER_VALUE {
                return Err(SpdyError::Unwritable("header name or value too long"));
            }
            if out.len() + 4 + field.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Unwritable("header block too large"));
            }
            // Below MAX_HEADER_BLOCK, so the length fits.
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
    }
    Ok(())
}

/// Writes frames to the peer. Each frame goes out in one `write_all` and is
/// flushed, so a writer shared behind a mutex never interleaves frames.
/// Nothing is written when a frame is refused; after an I/O error the
/// connection must be closed.
#[derive(Debug)]
pub struct SpdyWriter<W> {
    inner: W,
    deflater: Deflater,
    /// The frame being assembled, reused.
    frame: Vec<u8>,
    /// The uncompressed header block being assembled, reused.
    block: Vec<u8>,
}

impl<W: Write> SpdyWriter<W> {
    pub fn new(inner: W) -> SpdyWriter<W> {
        SpdyWriter {
            inner,
            deflater: Deflater::new(SPDY3_DICTIONARY),
            frame: Vec::new(),
            block: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn write_syn_stream(&mut self, syn: &SynStream) -> Result<(), SpdyError> {
        check_stream(syn.stream)?;
        let associated = syn.associated_to.unwrap_or(0);
        if associated > MAX_STREAM_ID || syn.associated_to == Some(0) {
            return Err(SpdyError::Unwritable("associated stream id out of range"));
        }
        if syn.priority > 7 {
            return Err(SpdyError::Unwritable("priority above 7"));
        }
        let mut flags = if syn.fin { FLAG_FIN } else { 0 };
        if syn.unidirectional {
            flags |= FLAG_UNIDIRECTIONAL;
        }
        let mut fixed = [0u8; 10];
        fixed[..4].copy_from_slice(&syn.stream.to_be_bytes());
        fixed[4..8].copy_from_slice(&associated.to_be_bytes());
        fixed[8] = syn.priority << 5;
        fixed[9] = syn.slot;
        self.write_header_frame(TYPE_SYN_STREAM, flags, &fixed, &syn.headers)
    }

    pub fn write_syn_reply(
        &mut self,
        stream: StreamId,
        fin: bool,
        headers: &HeaderBlock,
    ) -> Result<(), SpdyError> {
        check_stream(stream)?;
        let flags = if fin { FLAG_FIN } else { 0 };
        self.write_header_frame(TYPE_SYN_REPLY, flags, &stream.to_be_bytes(), headers)
    }

    pub fn write_headers(
        &mut self,
        stream: StreamId,
        fin: bool,
        headers: &HeaderBlock,
    ) -> Result<(), SpdyError> {
        check_stream(stream)?;
        let flags = if fin { FLAG_FIN } else { 0 };
        self.write_header_frame(TYPE_HEADERS, flags, &stream.to_be_bytes(), headers)
    }

    pub fn write_rst_stream(
        &mut self,
        stream: StreamId,
        status: RstStatus,
    ) -> Result<(), SpdyError> {
        check_stream(stream)?;
        if status.0 == 0 {
            return Err(SpdyError::Unwritable("RST_STREAM status 0"));
        }
        self.begin_control(TYPE_RST_STREAM, 0);
        self.frame.extend_from_slice(&stream.to_be_bytes());
        self.frame.extend_from_slice(&status.0.to_be_bytes());
        self.send_control()
    }

    pub fn write_settings(&mut self, clear: bool, settings: &[Setting]) -> Result<(), SpdyError> {
        if settings.len() > MAX_SETTINGS {
            return Err(SpdyError::Unwritable("too many settings"));
        }
        if settings.iter().any(|s| s.id > 0x00ff_ffff) {
            return Err(SpdyError::Unwritable("setting id wider than 24 bits"));
        }
        self.begin_control(TYPE_SETTINGS, if clear { FLAG_CLEAR_SETTINGS } else { 0 });
        // At most MAX_SETTINGS entries.
        self.frame
            .extend_from_slice(&(settings.len() as u32).to_be_bytes());
        for setting in settings {
            let flags_and_id = (u32::from(setting.flags) << 24) | setting.id;
            self.frame.extend_from_slice(&flags_and_id.to_be_bytes());
            self.frame.extend_from_slice(&setting.value.to_be_bytes());
        }
        self.send_control()
    }

    /// A PING; the server's own pings use even ids, and the peer's are
    /// answered with the same id.
    pub fn write_ping(&mut self, id: u32) -> Result<(), SpdyError> {
        self.begin_control(TYPE_PING, 0);
        self.frame.extend_from_slice(&id.to_be_bytes());
        self.send_control()
    }

    pub fn write_goaway(
        &mut self,
        last_good_stream: StreamId,
        status: GoAwayStatus,
    ) -> Result<(), SpdyError> {
        if last_good_stream > MAX_STREAM_ID {
            return Err(SpdyError::Unwritable("stream id wider than 31 bits"));
        }
        self.begin_control(TYPE_GOAWAY, 0);
        self.frame
            .extend_from_slice(&last_good_stream.to_be_bytes());
        self.frame.extend_from_slice(&status.0.to_be_bytes());
        self.send_control()
    }

    /// Grants `delta` more bytes on `stream`, or on the session for 0.
    pub fn write_window_update(&mut self, stream: StreamId, delta: u32) -> Result<(), SpdyError> {
        if stream > MAX_STREAM_ID {
            return Err(SpdyError::Unwritable("stream id wider than 31 bits"));
        }
        if delta == 0 || delta > MAX_WINDOW_DELTA {
            return Err(SpdyError::Unwritable("window delta must be 1 to 2^31-1"));
        }
        self.begin_control(TYPE_WINDOW_UPDATE, 0);
        self.frame.extend_from_slice(&stream.to_be_bytes());
        self.frame.extend_from_slice(&delta.to_be_bytes());
        self.send_control()
    }

    /// One DATA frame; `fin` with empty `data` closes the sending side.
    pub fn write_data(
        &mut self,
        stream: StreamId,
        fin: bool,
        data: &[u8],
    ) -> Result<(), SpdyError> {
        check_stream(stream)?;
        if data.len() > MAX_DATA_PAYLOAD {
            return Err(SpdyError::Unwritable("DATA payload over MAX_DATA_PAYLOAD"));
        }
        self.frame.clear();
        self.frame.extend_from_slice(&stream.to_be_bytes());
        self.frame.push(if fin { FLAG_FIN } else { 0 });
        self.frame.extend_from_slice(&length_field(data.len()));
        self.frame.extend_from_slice(data);
        self.send()
    }

    /// Encodes and compresses `headers`, checking them before the
    /// compression stream advances, so a refused block leaves it intact.
    fn write_header_frame(
        &mut self,
        kind: u16,
        flags: u8,
        fixed: &[u8],
        headers: &HeaderBlock,
    ) -> Result<(), SpdyError> {
        encode_header_block(headers, &mut self.block)?;
        self.begin_control(kind, flags);
        self.frame.extend_from_slice(fixed);
        self.deflater.compress_block(&self.block, &mut self.frame);
        self.send_control()
    }

    /// Starts a control frame; `send_control` fills in its length.
    fn begin_control(&mut self, kind: u16, flags: u8) {
        self.frame.clear();
        self.frame
            .extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        self.frame.extend_from_slice(&kind.to_be_bytes());
        self.frame.push(flags);
        self.frame.extend_from_slice(&[0; 3]);
    }

    fn send_control(&mut self) -> Result<(), SpdyError> {
        let length = self.frame.len() - FRAME_HEADER_LEN;
        // Every control frame built here is bounded: fixed fields, at most
        // MAX_SETTINGS entries, or a header block of at most
        // MAX_HEADER_BLOCK bytes plus its compression framing.
        self.frame[5..FRAME_HEADER_LEN].copy_from_slice(&length_field(length));
        self.send()
    }

    fn send(&mut self) -> Result<(), SpdyError> {
        self.inner.write_all(&self.frame)?;
        self.inner.flush()?;
        Ok(())
    }
}

fn check_stream(stream: StreamId) -> Result<(), SpdyError> {
    if stream == 0 || stream > MAX_STREAM_ID {
        return Err(SpdyError::Unwritable("stream id must be 1 to 2^31-1"));
    }
    Ok(())
}

/// The 24-bit length field; callers keep lengths below 16 MiB.
fn length_field(length: usize) -> [u8; 3] {
    debug_assert!(length <= MAX_FRAME_LENGTH);
    let bytes = (length as u32).to_be_bytes();
    [bytes[1], bytes[2], bytes[3]]
}

/// Receive-side flow control for one stream or for the session: counts the
/// bytes the session has consumed and says when to grant more credit with
/// WINDOW_UPDATE. Credit is granted once half the window was consumed, so
/// a peer that honours windows never waits on a full round trip.
#[derive(Debug, Clone)]
pub struct ReceiveWindow {
    size: u32,
    consumed: u32,
}

impl ReceiveWindow {
    /// A window of `size` bytes, normally [`INITIAL_WINDOW_SIZE`].
    pub fn new(size: u32) -> ReceiveWindow {
        ReceiveWindow { size, consumed: 0 }
    }

    /// Records `bytes` more consumed; returns the delta to send in a
    /// WINDOW_UPDATE when one is due.
    pub fn consume(&mut self, bytes: usize) -> Option<u32> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.consumed = self.consumed.saturating_add(bytes);
        if self.consumed == 0 || self.consumed < self.size / 2 {
            return None;
        }
        let delta = self.consumed.min(MAX_WINDOW_DELTA);
        self.consumed -= delta;
        Some(delta)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::codec::zlib::reference::{ReferenceDeflater, ReferenceInflater};
    use crate::codec::ZlibError;

    fn headers(fields: &[(&str, &str)]) -> HeaderBlock {
        fields.iter().copied().collect()
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Frame, String>> {
        let mut reader = SpdyReader::new(bytes);
        let mut frames = Vec::new();
        loop {
            match reader.read_frame() {
                Ok(frame) => frames.push(Ok(frame)),
                Err(SpdyError::Closed) => return frames,
                Err(e) => {
                    let fatal = !matches!(e.reaction(), Reaction::ResetStream { .. });
                    frames.push(Err(e.to_string()));
                    if fatal {
                        return frames;
                    }
                }
            }
        }
    }

    /// The frames of a session, written with our writer.
    fn every_frame() -> Vec<Frame> {
        vec![
            Frame::SynStream(SynStream {
                stream: 1,
                associated_to: None,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error")]),
            }),
            Frame::SynStream(SynStream {
                stream: MAX_STREAM_ID,
                associated_to: Some(3),
                priority: 7,
                slot: 9,
                fin: true,
                unidirectional: true,
                headers: headers(&[(":path", "/a"), ("multi", "one\0two")]),
            }),
            Frame::SynReply {
                stream: 1,
                fin: false,
                headers: HeaderBlock::new(),
            },
            Frame::SynReply {
                stream: 3,
                fin: true,
                headers: headers(&[("status", "200"), ("empty", "")]),
            },
            Frame::RstStream {
                stream: 5,
                status: RstStatus::CANCEL,
            },
            Frame::Settings {
                clear: true,
                settings: vec![
                    Setting {
                        id: Setting::INITIAL_WINDOW_SIZE,
                        flags: 1,
                        value: 1 << 20,
                    },
                    Setting {
                        id: 0x00ab_cdef,
                        flags: 2,
                        value: u32::MAX,
                    },
                ],
            },
            Frame::Settings {
                clear: false,
                settings: Vec::new(),
            },
            Frame::Ping { id: 2 },
            Frame::Ping { id: u32::MAX },
            Frame::GoAway {
                last_good_stream: 7,
                status: GoAwayStatus::PROTOCOL_ERROR,
            },
            Frame::Headers {
                stream: 9,
                fin: true,
                headers: headers(&[("x-trailer", "done")]),
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: MAX_WINDOW_DELTA,
            },
            Frame::WindowUpdate {
                stream: 11,
                delta: 1,
            },
            Frame::Data {
                stream: 13,
                fin: false,
                data: b"hello".to_vec(),
            },
            Frame::Data {
                stream: 13,
                fin: true,
                data: Vec::new(),
            },
            Frame::Data {
                stream: 15,
                fin: false,
                data: vec![0xa5; MAX_DATA_PAYLOAD],
            },
        ]
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

    #[test]
    fn every_frame_type_round_trips_through_writer_and_reader() {
        let frames = every_frame();
        let mut writer = SpdyWriter::new(Vec::new());
        for frame in &frames {
            write(&mut writer, frame).unwrap();
        }
        let decoded: Vec<Frame> = read_all(writer.get_ref())
            .into_iter()
            .map(|f| f.unwrap())
            .collect();
        assert_eq!(decoded, frames);
    }

    #[test]
    fn control_frames_carry_version_3_and_exact_lengths() {
        let mut writer = SpdyWriter::new(Vec::new());
        writer.write_ping(1).unwrap();
        writer
            .write_rst_stream(1, RstStatus::PROTOCOL_ERROR)
            .unwrap();
        writer.write_data(3, true, b"ab").unwrap();
        assert_eq!(
            writer.get_ref()[..],
            [
                0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1, // PING 1
                0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 1, // RST
                0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x02, b'a', b'b', // DATA, FIN
            ]
        );
    }

    #[test]
    fn header_blocks_we_write_inflate_with_the_reference_zlib() {
        let mut writer = SpdyWriter::new(Vec::new());
        let blocks = [
            HeaderBlock::new(),
            headers(&[("streamtype", "stdout")]),
            headers(&[("port", "8080"), ("requestid", "0"), ("streamtype", "data")]),
        ];
        for (i, block) in blocks.iter().enumerate() {
            writer
                .write_syn_reply(2 * i as u32 + 1, false, block)
                .unwrap();
        }
        let mut reference = ReferenceInflater::new(SPDY3_DICTIONARY);
        let mut bytes = &writer.get_ref()[..];
        for block in &blocks {
            let length = (usize::from(bytes[5]) << 16)
                | (usize::from(bytes[6]) << 8)
                | usize::from(bytes[7]);
            let (frame, rest) = bytes.split_at(FRAME_HEADER_LEN + length);
            bytes = rest;
            let inflated = reference.block(&frame[12..]).unwrap();
            let mut expected = Vec::new();
            encode_header_block(block, &mut expected).unwrap();
            assert_eq!(inflated, expected);
        }
        assert!(bytes.is_empty());
    }

    /// Frames as `moby/spdystream` writes them: control words and fields
    /// one by one, header blocks compressed by zlib at its best level with
    /// the dictionary, each ended by a sync flush, on one zlib stream.
    struct GoClient {
        bytes: Vec<u8>,
        zlib: ReferenceDeflater,
    }

    impl GoClient {
        fn new() -> GoClient {
            GoClient {
                bytes: Vec::new(),
                zlib: ReferenceDeflater::new(9, Some(SPDY3_DICTIONARY)),
            }
        }

        fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) {
            self.bytes.extend_from_slice(&[0x80, 0x03]);
            self.bytes.extend_from_slice(&kind.to_be_bytes());
            self.bytes.push(flags);
            self.bytes
                .extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            self.bytes.extend_from_slice(payload);
        }

        /// A SYN_STREAM as `CreateStream(headers, nil, false)` sends it.
        fn syn_stream(&mut self, stream: u32, fields: &[(&str, &str)]) {
            let mut block = (fields.len() as u32).to_be_bytes().to_vec();
            for (name, value) in fields {
                for field in [name, value] {
                    block.extend_from_slice(&(field.len() as u32).to_be_bytes());
                    block.extend_from_slice(field.as_bytes());
                }
            }
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // associated, priority, slot
            payload.extend(self.zlib.sync_block(&block));
            self.control(TYPE_SYN_STREAM, 0, &payload);
        }

        fn data(&mut self, stream: u32, fin: bool, data: &[u8]) {
            self.bytes.extend_from_slice(&stream.to_be_bytes());
            self.bytes.push(u8::from(fin));
            self.bytes
                .extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            self.bytes.extend_from_slice(data);
        }
    }

    fn syn(stream: u32, fields: &[(&str, &str)]) -> Frame {
        Frame::SynStream(SynStream {
            stream,
            associated_to: None,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: headers(fields),
        })
    }

    #[test]
    fn a_header_value_over_the_limit_resets_only_its_stream() {
        let mut client = GoClient::new();
        let long = "v".repeat(MAX_HEADER_VALUE + 1);
        let longest = "v".repeat(MAX_HEADER_VALUE);
        client.syn_stream(1, &[("streamtype", "data"), ("port", &long)]);
        client.syn_stream(3, &[("streamtype", "data"), ("port", &longest)]);
        let frames = read_all(&client.bytes);
        assert_eq!(frames.len(), 2, "{frames:?}");
        let refused = frames[0].as_ref().unwrap_err();
        assert!(
            refused.contains("header name or value too long"),
            "{refused}"
        );
        assert_eq!(
            frames[1],
            Ok(syn(3, &[("streamtype", "data"), ("port", &longest)]))
        );
        let mut reader = SpdyReader::new(&client.bytes[..]);
        let err = reader.read_frame().unwrap_err();
        assert!(matches!(
            err.reaction(),
            Reaction::ResetStream {
                stream: 1,
                status: RstStatus::PROTOCOL_ERROR
            }
        ));
    }

    #[test]
    fn header_fields_and_blocks_over_their_limits_are_not_written() {
        let mut writer = SpdyWriter::new(Vec::new());
        let long = "x".repeat(MAX_HEADER_VALUE + 1);
        assert!(matches!(
            writer.write_syn_reply(1, false, &headers(&[("big", &long)])),
            Err(SpdyError::Unwritable(reason)) if reason == "header name or value too long"
        ));
        let value = "x".repeat(MAX_HEADER_VALUE);
        let names: Vec<String> = (0..MAX_HEADERS).map(|n| format!("h{n}")).collect();
        let many: HeaderBlock = names
            .iter()
            .map(|name| (name.as_str(), value.as_str()))
            .collect();
        const { assert!(MAX_HEADERS * MAX_HEADER_VALUE > MAX_HEADER_BLOCK) };
        assert!(matches!(
            writer.write_syn_reply(1, false, &many),
            Err(SpdyError::Unwritable("header block too large"))
        ));
        assert!(writer.get_ref().is_empty());
    }

    #[test]
    fn reads_the_frames_of_a_go_client_exec_with_a_tty() {
        let mut go = GoClient::new();
        // remotecommand v4 with a TTY: error, stdin, stdout, resize.
        for (stream, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
            go.syn_stream(stream, &[("streamtype", kind)]);
        }
        go.data(3, false, b"echo hi\n");
        go.data(7, false, br#"{"Width":80,"Height":24}"#);
        go.data(3, true, b""); // stdin closed
        go.control(TYPE_PING, 0, &1u32.to_be_bytes());
        go.control(TYPE_RST_STREAM, 0, &[0, 0, 0, 7, 0, 0, 0, 5]);
        go.control(TYPE_GOAWAY, 0, &[0; 8]);

        let frames: Vec<Frame> = read_all(&go.bytes)
            .into_iter()
            .map(|f| f.unwrap())
            .collect();
        assert_eq!(
            frames,
            [
                syn(1, &[("streamtype", "error")]),
                syn(3, &[("streamtype", "stdin")]),
                syn(5, &[("streamtype", "stdout")]),
                syn(7, &[("streamtype", "resize")]),
                Frame::Data {
                    stream: 3,
                    fin: false,
                    data: b"echo hi\n".to_vec()
                },
                Frame::Data {
                    stream: 7,
                    fin: false,
                    data: br#"{"Width":80,"Height":24}"#.to_vec()
                },
                Frame::Data {
                    stream: 3,
                    fin: true,
                    data: Vec::new()
                },
                Frame::Ping { id: 1 },
                Frame::RstStream {
                    stream: 7,
                    status: RstStatus::CANCEL
                },
                Frame::GoAway {
                    last_good_stream: 0,
                    status: GoAwayStatus::OK
                },
            ]
        );
    }

    #[test]
    fn reads_the_frames_of_a_go_client_port_forward() {
        let mut go = GoClient::new();
        let error = [
            ("streamtype", "error"),
            ("port", "8080"),
            ("requestid", "0"),
        ];
        let data = [("streamtype", "data"), ("port", "8080"), ("requestid", "0")];
        go.syn_stream(1, &error);
        go.syn_stream(3, &data);
        go.data(3, false, b"GET / HTTP/1.0\r\n\r\n");
        let frames: Vec<Frame> = read_all(&go.bytes)
            .into_iter()
            .map(|f| f.unwrap())
            .collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], syn(1, &error));
        assert_eq!(frames[1], syn(3, &data));
        let Frame::SynStream(second) = &frames[1] else {
            panic!("{:?}", frames[1]);
        };
        assert_eq!(second.headers.get("port"), Some("8080"));
        assert_eq!(second.headers.get("streamtype"), Some("data"));
    }

    #[test]
    fn unknown_control_frames_are_skipped() {
        let mut go = GoClient::new();
        go.control(10, 0, b"credential"); // SPDY/3's CREDENTIAL
        go.control(0x7fff, 0xff, &[]);
        go.control(TYPE_PING, 0, &3u32.to_be_bytes());
        assert_eq!(read_all(&go.bytes), [Ok(Frame::Ping { id: 3 })]);
    }

    #[test]
    fn a_frame_of_another_version_ends_the_session() {
        let bytes = [0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1];
        let error = SpdyReader::new(&bytes[..]).read_frame().unwrap_err();
        assert!(matches!(error, SpdyError::UnsupportedVersion(2)));
        assert_eq!(
            error.reaction(),
            Reaction::GoAway(GoAwayStatus::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn an_oversized_data_frame_resets_only_its_stream() {
        let mut go = GoClient::new();
        go.data(5, false, &vec![0; MAX_DATA_PAYLOAD + 1]);
        go.data(3, false, b"next");
        let mut reader = SpdyReader::new(&go.bytes[..]);
        let error = reader.read_frame().unwrap_err();
        assert_eq!(
            error.reaction(),
            Reaction::ResetStream {
                stream: 5,
                status: RstStatus::FRAME_TOO_LARGE
            }
        );
        assert_eq!(
            reader.read_frame().unwrap(),
            Frame::Data {
                stream: 3,
                fin: false,
                data: b"next".to_vec()
            }
        );
    }

    #[test]
    fn an_oversized_control_frame_is_refused_before_its_payload_is_read() {
        let mut bytes = vec![0x80, 0x03, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&[0; 16]);
        let error = SpdyReader::new(&bytes[..]).read_frame().unwrap_err();
        assert!(matches!(
            error,
            SpdyError::FrameTooLarge {
                stream: None,
                length: 0x00ff_ffff,
                ..
            }
        ));
        assert_eq!(
            error.reaction(),
            Reaction::GoAway(GoAwayStatus::PROTOCOL_ERROR)
        );
    }

    #[test]
    fn a_connection_ending_inside_a_frame_is_an_io_error_not_a_clean_close() {
        let mut writer = SpdyWriter::new(Vec::new());
        writer
            .write_syn_reply(1, false, &headers(&[("a", "b")]))
            .unwrap();
        writer.write_data(1, false, b"payload").unwrap();
        let bytes = writer.get_ref();
        assert!(matches!(
            SpdyReader::new(&b""[..]).read_frame(),
            Err(SpdyError::Closed)
        ));
        for cut in 1..bytes.len() {
            let results = read_all(&bytes[..cut]);
            let last = results.last().unwrap();
            let complete = results.iter().filter(|r| r.is_ok()).count();
            if cut == bytes.len() - 15 {
                // Exactly the SYN_REPLY, then a clean end.
                assert_eq!(complete, 1);
                assert!(last.is_ok());
            } else {
                assert!(
                    last.as_ref().unwrap_err().contains("connection failed"),
                    "cut {cut}: {last:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_fixed_fields_end_the_session() {
        let cases: [(u16, u8, &[u8]); 7] = [
            (TYPE_RST_STREAM, 0, &[0, 0, 0, 1, 0, 0, 0]),
            (TYPE_RST_STREAM, 0, &[0, 0, 0, 0, 0, 0, 0, 1]),
            (TYPE_RST_STREAM, 0, &[0, 0, 0, 1, 0, 0, 0, 0]),
            (TYPE_PING, 0, &[0, 0, 1]),
            (TYPE_GOAWAY, 0, &[0, 0, 0, 1]),
            (TYPE_SETTINGS, 0, &[0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 1]),
            (TYPE_SYN_REPLY, 0, &[0, 0, 0, 0]),
        ];
        for (kind, flags, payload) in cases {
            let mut go = GoClient::new();
            go.control(kind, flags, payload);
            let error = SpdyReader::new(&go.bytes[..]).read_frame().unwrap_err();
            assert!(
                matches!(error, SpdyError::InvalidFrame { .. }),
                "{kind} {payload:?}: {error}"
            );
            assert_eq!(
                error.reaction(),
                Reaction::GoAway(GoAwayStatus::PROTOCOL_ERROR)
            );
        }
        let mut go = GoClient::new();
        go.data(0, false, b"x");
        assert!(matches!(
            SpdyReader::new(&go.bytes[..]).read_frame(),
            Err(SpdyError::InvalidFrame { frame: "DATA", .. })
        ));
    }

    #[test]
    fn a_header_block_that_does_not_decompress_ends_the_session() {
        let mut go = GoClient::new();
        go.control(
            TYPE_SYN_STREAM,
            0,
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78, 0x9d],
        );
        let error = SpdyReader::new(&go.bytes[..]).read_frame().unwrap_err();
        assert!(matches!(error, SpdyError::Compression(_)), "{error}");
        assert_eq!(
            error.reaction(),
            Reaction::GoAway(GoAwayStatus::PROTOCOL_ERROR)
        );
        // A block compressed without the dictionary's id is refused too.
        let mut stray = ReferenceDeflater::new(9, Some(b"another dictionary"));
        let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        payload.extend(stray.sync_block(b"\0\0\0\0"));
        let mut go = GoClient::new();
        go.control(TYPE_SYN_STREAM, 0, &payload);
        assert!(matches!(
            SpdyReader::new(&go.bytes[..]).read_frame(),
            Err(SpdyError::Compression(ZlibError::WrongDictionary { .. }))
        ));
    }

    #[test]
    fn a_bad_header_block_resets_its_stream_and_the_session_goes_on() {
        let bad_blocks: [(&[u8], &str); 8] = [
            (
                b"\0\0\0\x01\0\0\0\x04Port\0\0\0\x01x",
                "header name is not lower-case",
            ),
            (b"\0\0\0\x01\0\0\0\0\0\0\0\x01x", "empty header name"),
            (
                b"\0\0\0\x01\0\0\0\x02a b\0\0\0\0",
                "header name is not printable US-ASCII",
            ),
            (
                b"\0\0\0\x02\0\0\0\x01a\0\0\0\0\0\0\0\x01a\0\0\0\0",
                "duplicate header name",
            ),
            (
                b"\0\0\0\x01\0\0\0\x01a\0\0\0\x09x",
                "header length runs past the block",
            ),
            (b"\0\0\0\x01\0\0\0\x01a\0\0\0\x01\xff", "value is not UTF-8"),
            (b"\0\0\0\x00\0", "bytes after the last header"),
            (b"\0\0\x10\x00", "too many headers"),
        ];
        for (block, reason) in bad_blocks {
            let mut go = GoClient::new();
            let mut payload = vec![0, 0, 0, 5, 0, 0, 0, 0, 0, 0];
            payload.extend(go.zlib.sync_block(block));
            go.control(TYPE_SYN_STREAM, 0, &payload);
            go.syn_stream(7, &[("streamtype", "stdout")]);
            let mut reader = SpdyReader::new(&go.bytes[..]);
            let error = reader.read_frame().unwrap_err();
            assert!(
                matches!(error, SpdyError::InvalidHeaders { stream: 5, reason: r } if r == reason),
                "{error}"
            );
            assert_eq!(
                error.reaction(),
                Reaction::ResetStream {
                    stream: 5,
                    status: RstStatus::PROTOCOL_ERROR
                }
            );
            assert_eq!(
                reader.read_frame().unwrap(),
                syn(7, &[("streamtype", "stdout")])
            );
        }
    }

    #[test]
    fn the_writer_refuses_frames_the_protocol_forbids_and_writes_nothing() {
        let mut writer = SpdyWriter::new(Vec::new());
        let refusals = [
            writer.write_data(0, false, b"x"),
            writer.write_data(MAX_STREAM_ID + 1, false, b"x"),
            writer.write_data(1, false, &vec![0; MAX_DATA_PAYLOAD + 1]),
            writer.write_syn_reply(1, false, &headers(&[("Upper", "x")])),
            writer.write_syn_reply(1, false, &headers(&[("", "x")])),
            writer.write_syn_reply(1, false, &headers(&[("a", "1"), ("a", "2")])),
            writer.write_syn_reply(
                1,
                false,
                &headers(&[("big", "x".repeat(MAX_HEADER_BLOCK).as_str())]),
            ),
            writer.write_rst_stream(1, RstStatus(0)),
            writer.write_window_update(1, 0),
            writer.write_goaway(MAX_STREAM_ID + 1, GoAwayStatus::OK),
            writer.write_settings(
                false,
                &[Setting {
                    id: 1 << 24,
                    flags: 0,
                    value: 0,
                }],
            ),
        ];
        for refusal in refusals {
            assert!(
                matches!(refusal, Err(SpdyError::Unwritable(_))),
                "{refusal:?}"
            );
        }
        assert!(writer.get_ref().is_empty());
        // The compression stream was not started by the refused blocks.
        writer
            .write_syn_reply(1, false, &headers(&[("ok", "1")]))
            .unwrap();
        assert_eq!(
            read_all(writer.get_ref()),
            [Ok(Frame::SynReply {
                stream: 1,
                fin: false,
                headers: headers(&[("ok", "1")])
            })]
        );
    }

    #[test]
    fn receive_window_grants_credit_after_half_the_window_is_consumed() {
        let mut window = ReceiveWindow::new(INITIAL_WINDOW_SIZE);
        assert_eq!(window.consume(0), None);
        assert_eq!(window.consume(32 * 1024 - 1), None);
        assert_eq!(window.consume(1), Some(32 * 1024));
        assert_eq!(window.consume(1000), None);
        assert_eq!(window.consume(100_000), Some(101_000));
        assert_eq!(window.consume(usize::MAX), Some(MAX_WINDOW_DELTA));
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut go = GoClient::new();
        for (stream, kind) in [(1, "error"), (3, "stdin"), (5, "stdout")] {
            go.syn_stream(stream, &[("streamtype", kind)]);
        }
        go.data(3, false, b"echo hi\n");
        go.control(TYPE_SETTINGS, 0, &[0, 0, 0, 1, 1, 0, 0, 7, 0, 1, 0, 0]);
        go.control(TYPE_WINDOW_UPDATE, 0, &[0, 0, 0, 0, 0, 0, 1, 0]);
        let valid = go.bytes;
        for round in 0..3000 {
            let input: Vec<u8> = if round % 2 == 0 {
                (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect()
            } else {
                let mut input = valid.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..input.len());
                    input[at] ^= 1 << rng.u32(0..8);
                }
                input
            };
            let mut reader = SpdyReader::new(&input[..]);
            for _ in 0..20 {
                match reader.read_frame() {
                    Ok(Frame::Data { data, .. }) => assert!(data.len() <= MAX_DATA_PAYLOAD),
                    Ok(_) => {}
                    Err(e) if matches!(e.reaction(), Reaction::ResetStream { .. }) => {}
                    Err(_) => break,
                }
            }
        }
    }
}
