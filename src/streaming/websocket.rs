//! WebSocket (RFC 6455), server side: the opening handshake and the framing
//! of messages after it.
//!
//! It owns validating an upgrade request and answering it ([`accept`]), the
//! frame parser ([`WsReader`]: masking, fragmentation, control frames, the
//! closing handshake, every size limit) and the frame writer
//! ([`WsWriter`]). It does not read HTTP requests or own sockets (the
//! streaming HTTP server hands over the parsed header fields and then the
//! connection), and it knows nothing of what the messages carry: the
//! Kubernetes channel framing is `super::channel`. No extension (such as
//! permessage-deflate) is negotiated, so all three reserved bits must be
//! clear.
//!
//! The reader and the writer are separate values so that one thread can
//! read client frames while others write output. The reader never writes:
//! it returns a `Ping` to its caller, which answers with [`WsWriter::pong`]
//! on the writer it shares with the output threads, and it returns a
//! `Close`, which the caller answers with [`WsWriter::close`] (echoing the
//! code) before shutting the socket down. A reader that has returned a
//! close or an error reads nothing more.

use std::fmt;
use std::io::{self, Read, Write};

use super::WebSocketError;
use crate::codec::base64::{self, Alphabet};
use crate::codec::sha1::Sha1;

/// Largest data message accepted from a client, after reassembling its
/// fragments. The Kubernetes clients send stdin and port-forward data in
/// pieces of at most 32 KiB; resize messages are a few dozen bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Largest control-frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest close reason: a control payload less its 2-byte status code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Socket bytes read at a time. Larger frames are assembled across reads.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Longest frame header: 2 fixed bytes, a 64-bit length and a masking key.
const MAX_HEADER_BYTES: usize = 14;

/// The only protocol version RFC 6455 defines.
const WEBSOCKET_VERSION: &str = "13";

/// Bytes the base64 `Sec-WebSocket-Key` must decode to (section 4.1).
const KEY_BYTES: usize = 16;

/// Appended to the client's key before hashing (section 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A close status code (section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether the code may appear in a close frame: the codes RFC 6455 and
    /// the IANA registry define (1000-1003, 1007-1014) and the ranges left
    /// to libraries and applications (3000-4999). 1005, 1006 and 1015 are
    /// reserved for reporting what happened locally and never travel.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

// A close code is a frame field, so this mapping stays beside `CloseCode`:
// `error` cannot import this file, which imports it.
impl WebSocketError {
    /// The close code to send the client before dropping the connection;
    /// `None` where no close frame can or need be sent.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            WebSocketError::Unmasked
            | WebSocketError::ReservedBits { .. }
            | WebSocketError::UnknownOpcode { .. }
            | WebSocketError::FragmentedControl
            | WebSocketError::ControlTooLong { .. }
            | WebSocketError::UnexpectedContinuation
            | WebSocketError::InterleavedMessage
            | WebSocketError::BadLength
            | WebSocketError::BadClosePayload
            | WebSocketError::InvalidCloseCode { .. } => Some(CloseCode::PROTOCOL_ERROR),
            WebSocketError::InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            WebSocketError::MessageTooBig { .. } => Some(CloseCode::MESSAGE_TOO_BIG),
            _ => None,
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// True if the request asks for a WebSocket upgrade (`Upgrade: websocket`
/// and `Connection: upgrade`), whether or not it is a valid one: the
/// streaming server uses it to choose between WebSocket and SPDY.
pub fn is_upgrade_request<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)]) -> bool {
    has_token(headers, "upgrade", "websocket") && has_token(headers, "connection", "upgrade")
}

/// An accepted upgrade: the subprotocol chosen and the 101 response that
/// completes the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    protocol: Option<&'static str>,
    accept: String,
}

impl Handshake {
    /// The subprotocol chosen, or `None` when the client asked for none.
    pub fn protocol(&self) -> Option<&'static str> {
        self.protocol
    }

    /// The `101 Switching Protocols` response; frames follow it directly.
    pub fn response(&self) -> Vec<u8> {
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            self.accept
        );
        if let Some(protocol) = self.protocol {
            response.push_str("Sec-WebSocket-Protocol: ");
            response.push_str(protocol);
            response.push_str("\r\n");
        }
        response.push_str("\r\n");
        response.into_bytes()
    }
}

/// Validates an upgrade request (RFC 6455 section 4.2.1) given its method
/// and header fields (names in any case, in arrival order; a field may
/// repeat), and chooses a subprotocol from `supported`.
///
/// The subprotocol is the first one the client lists that is in
/// `supported`: the client's order wins, as in the kubelet's own streaming
/// server, and the Kubernetes clients list the newest protocol first. A
/// client that asks for no subprotocol gets none; one that asks only for
/// unsupported ones is refused. Extensions the client offers are not
/// accepted.
pub fn accept<N: AsRef<str>, V: AsRef<str>>(
    method: &str,
    headers: &[(N, V)],
    supported: &'static [&'static str],
) -> Result<Handshake, WebSocketError> {
    if method != "GET" {
        return Err(WebSocketError::MethodNotGet);
    }
    if !has_token(headers, "upgrade", "websocket") {
        return Err(WebSocketError::NotWebSocketUpgrade);
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(WebSocketError::ConnectionNotUpgrade);
    }
    let mut keys = values(headers, "sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.trim(),
        _ => return Err(WebSocketError::BadKey),
    };
    match base64::decode(key, Alphabet::Standard) {
        Ok(bytes) if bytes.len() == KEY_BYTES => {}
        _ => return Err(WebSocketError::BadKey),
    }
    let mut versions = values(headers, "sec-websocket-version");
    let ours = WEBSOCKET_VERSION;
    match (versions.next(), versions.next()) {
        (Some(version), None) if version.trim() == ours => {}
        _ => return Err(WebSocketError::UnsupportedVersion { supported: ours }),
    }
    let mut offered = values(headers, "sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    let protocol = if offered.peek().is_none() {
        None
    } else {
        let chosen = offered.find_map(|p| supported.iter().copied().find(|s| *s == p));
        Some(chosen.ok_or(WebSocketError::NoCommonSubprotocol { supported })?)
    };
    Ok(Handshake {
        protocol,
        accept: accept_key(key),
    })
}

/// The `Sec-WebSocket-Accept` value for a client key (section 4.2.2).
fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(ACCEPT_GUID.as_bytes());
    base64::encode(&hasher.finalize(), Alphabet::Standard)
}

fn values<'a, N: AsRef<str>, V: AsRef<str>>(
    headers: &'a [(N, V)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

/// True if a comma-separated field lists `token`, any case.
fn has_token<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)], name: &str, token: &str) -> bool {
    values(headers, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A frame opcode (section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Result<Opcode, WebSocketError> {
        match bits {
            0x0 => Ok(Opcode::Continuation),
            0x1 => Ok(Opcode::Text),
            0x2 => Ok(Opcode::Binary),
            0x8 => Ok(Opcode::Close),
            0x9 => Ok(Opcode::Ping),
            0xa => Ok(Opcode::Pong),
            opcode => Err(WebSocketError::UnknownOpcode { opcode }),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A close frame's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    pub code: CloseCode,
    pub reason: &'a str,
}

/// One message from the client. Payloads borrow the reader's buffers and
/// are valid until the next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    /// To be answered with a pong carrying the same payload.
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The client began the closing handshake; `None` if it gave no code.
    Close(Option<CloseFrame<'a>>),
}

/// What a completed frame produced, without borrowing the reader (the
/// borrowed [`Incoming`] is built once the parse loop has ended).
#[derive(Debug, Clone, Copy)]
enum Completed {
    Text,
    Binary,
    Ping { len: usize },
    Pong { len: usize },
    Close { code: Option<CloseCode>, len: usize },
}

#[derive(Debug, Clone, Copy)]
struct FrameHeader {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    len: u64,
}

#[derive(Debug, Clone, Copy)]
enum ReadState {
    /// Waiting for a complete frame header.
    Header,
    /// Unmasking a payload; `done` of its `header.len` bytes are copied.
    Payload { header: FrameHeader, done: u64 },
    /// A close frame or an error ended the connection.
    Finished,
}

/// Reads client frames and reassembles messages, with a reused read buffer
/// and message buffer.
///
/// `inner` should deliver the bytes after the handshake request: if the
/// HTTP server read some of them along with the request, chain them in
/// front (`io::Cursor::new(leftover).chain(stream)`).
pub struct WsReader<R> {
    inner: R,
    buffer: Box<[u8]>,
    /// Received bytes not yet parsed are `buffer[start..end]`.
    start: usize,
    end: usize,
    state: ReadState,
    /// The data message being reassembled, or the last one returned.
    message: Vec<u8>,
    /// Whether `message` holds the message returned last, to be dropped
    /// before the next one is read.
    message_returned: bool,
    /// The kind of the fragmented message in progress, if one is.
    fragmented: Option<Opcode>,
    control: [u8; MAX_CONTROL_PAYLOAD],
    max_message: usize,
}

impl<R> fmt::Debug for WsReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader")
            .field("buffered", &(self.end - self.start))
            .field("state", &self.state)
            .field("message_len", &self.message.len())
            .field("fragmented", &self.fragmented)
            .finish_non_exhaustive()
    }
}

impl<R: Read> WsReader<R> {
    /// A reader accepting messages up to [`MAX_MESSAGE_BYTES`].
    pub fn new(inner: R) -> WsReader<R> {
        WsReader::with_max_message(inner, MAX_MESSAGE_BYTES)
    }

    /// A reader accepting data messages up to `max_message` bytes.
    pub fn with_max_message(inner: R, max_message: usize) -> WsReader<R> {
        WsReader {
            inner,
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            state: ReadState::Header,
            message: Vec::new(),
            message_returned: false,
            fragmented: None,
            control: [0; MAX_CONTROL_PAYLOAD],
            max_message,
        }
    }

    /// Reads until the next complete message or control frame.
    ///
    /// An I/O error leaves the reader where it was, so a read timeout can be
    /// retried; any other error, and a close frame, end the connection and
    /// later calls return [`WebSocketError::Closed`].
    pub fn read(&mut self) -> Result<Incoming<'_>, WebSocketError> {
        let completed = match self.next_frame() {
            Ok(completed) => completed,
            Err(err) => {
                if !matches!(err, WebSocketError::Io(_)) {
                    self.state = ReadState::Finished;
                }
                return Err(err);
            }
        };
        Ok(match completed {
            Completed::Text => match std::str::from_utf8(&self.message) {
                Ok(text) => Incoming::Text(text),
                Err(_) => {
                    self.state = ReadState::Finished;
                    return Err(WebSocketError::InvalidUtf8);
                }
            },
            Completed::Binary => Incoming::Binary(&self.message),
            Completed::Ping { len } => Incoming::Ping(&self.control[..len]),
            Completed::Pong { len } => Incoming::Pong(&self.control[..len]),
            Completed::Close { code: None, .. } => Incoming::Close(None),
            Completed::Close {
                code: Some(code),
                len,
            } => match std::str::from_utf8(&self.control[2..len]) {
                Ok(reason) => Incoming::Close(Some(CloseFrame { code, reason })),
                Err(_) => return Err(WebSocketError::InvalidUtf8),
            },
        })
    }

    fn next_frame(&mut self) -> Result<Completed, WebSocketError> {
        if self.message_returned {
            self.message.clear();
            self.message_returned = false;
        }
        loop {
            match self.state {
                ReadState::Finished => return Err(WebSocketError::Closed),
                ReadState::Header => match self.parse_header()? {
                    Some(header) => {
                        self.begin_frame(&header)?;
                        self.state = ReadState::Payload { header, done: 0 };
                    }
                    None => self.fill()?,
                },
                ReadState::Payload { header, done } if done < header.len => {
                    if self.start == self.end {
                        self.fill()?;
                    }
                    // Bounded by the buffered byte count, so it fits a usize.
                    let take = (header.len - done).min((self.end - self.start) as u64) as usize;
                    // `done` is below a length already checked against a
                    // limit that is a usize.
                    let offset = done as usize;
                    let source = &self.buffer[self.start..self.start + take];
                    let target = if header.opcode.is_control() {
                        &mut self.control[offset..offset + take]
                    } else {
                        let from = self.message.len();
                        self.message.resize(from + take, 0);
                        &mut self.message[from..]
                    };
                    for (i, (out, byte)) in target.iter_mut().zip(source).enumerate() {
                        *out = byte ^ header.mask[(offset + i) % 4];
                    }
                    self.start += take;
                    self.state = ReadState::Payload {
                        header,
                        done: done + take as u64,
                    };
                }
                ReadState::Payload { header, .. } => {
                    self.state = ReadState::Header;
                    if let Some(completed) = self.end_frame(&header)? {
                        return Ok(completed);
                    }
                }
            }
        }
    }

    /// Parses a frame header from the buffered bytes; `None` if more bytes
    /// are needed. Checks what the first two bytes decide as soon as they
    /// are here.
    fn parse_header(&mut self) -> Result<Option<FrameHeader>, WebSocketError> {
        let input = &self.buffer[self.start..self.end];
        let (&first, &second) = match (input.first(), input.get(1)) {
            (Some(first), Some(second)) => (first, second),
            _ => return Ok(None),
        };
        let reserved = (first >> 4) & 0b111;
        if reserved != 0 {
            return Err(WebSocketError::ReservedBits { bits: reserved });
        }
        let opcode = Opcode::from_bits(first & 0x0f)?;
        if second & 0x80 == 0 {
            return Err(WebSocketError::Unmasked);
        }
        let length_bytes = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + length_bytes + 4;
        if input.len() < header_len {
            return Ok(None);
        }
        let len = match length_bytes {
            2 => u64::from(u16::from_be_bytes([input[2], input[3]])),
            8 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&input[2..10]);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(WebSocketError::BadLength);
                }
                len
            }
            _ => u64::from(second & 0x7f),
        };
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&input[2 + length_bytes..header_len]);
        self.start += header_len;
        Ok(Some(FrameHeader {
            fin: first & 0x80 != 0,
            opcode,
            mask,
            len,
        }))
    }

    /// Checks a header against the message state and the limits before any
    /// of its payload is read.
    fn begin_frame(&mut self, header: &FrameHeader) -> Result<(), WebSocketError> {
        if header.opcode.is_control() {
            if !header.fin {
                return Err(WebSocketError::FragmentedControl);
            }
            if header.len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(WebSocketError::ControlTooLong {
                    length: header.len,
                    limit: MAX_CONTROL_PAYLOAD,
                });
            }
            return Ok(());
        }
        match (header.opcode, self.fragmented) {
            (Opcode::Continuation, None) => return Err(WebSocketError::UnexpectedContinuation),
            (Opcode::Text | Opcode::Binary, Some(_)) => {
                return Err(WebSocketError::InterleavedMessage)
            }
            _ => {}
        }
        let length = (self.message.len() as u64).saturating_add(header.len);
        if length > self.max_message as u64 {
            return Err(WebSocketError::MessageTooBig {
                length,
                limit: self.max_message,
            });
        }
        // Within the limit checked just above, so the cast cannot truncate.
        self.message.reserve(header.len as usize);
        if !header.fin && header.opcode != Opcode::Continuation {
            self.fragmented = Some(header.opcode);
        }
        Ok(())
    }

    /// Acts on a frame whose payload is complete; `None` when it was a
    /// fragment of a message that is not finished yet.
    fn end_frame(&mut self, header: &FrameHeader) -> Result<Option<Completed>, WebSocketError> {
        // Control payloads were checked against MAX_CONTROL_PAYLOAD.
        let len = header.len as usize;
        let completed = match header.opcode {
            Opcode::Ping => Completed::Ping { len },
            Opcode::Pong => Completed::Pong { len },
            Opcode::Close => {
                self.state = ReadState::Finished;
                match len {
                    0 => Completed::Close { code: None, len },
                    1 => return Err(WebSocketError::BadClosePayload),
                    _ => {
                        let code =
                            CloseCode(u16::from_be_bytes([self.control[0], self.control[1]]));
                        if !code.is_valid_on_wire() {
                            return Err(WebSocketError::InvalidCloseCode { code: code.0 });
                        }
                        Completed::Close {
                            code: Some(code),
                            len,
                        }
                    }
                }
            }
            _ if !header.fin => return Ok(None),
            data => {
                self.message_returned = true;
                match self.fragmented.take().unwrap_or(data) {
                    Opcode::Text => Completed::Text,
                    _ => Completed::Binary,
                }
            }
        };
        Ok(Some(completed))
    }

    /// Reads more bytes into the buffer, first moving any unparsed ones
    /// (less than a header, since this is only called when a header is
    /// incomplete or the buffer is empty) to its front.
    fn fill(&mut self) -> Result<(), WebSocketError> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        debug_assert!(self.end < MAX_HEADER_BYTES);
        let read = loop {
            match self.inner.read(&mut self.buffer[self.end..]) {
                Ok(read) => break read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(WebSocketError::Io(err)),
            }
        };
        if read == 0 {
            let mid_message = self.end > 0
                || self.fragmented.is_some()
                || matches!(self.state, ReadState::Payload { .. });
            return Err(WebSocketError::Disconnected { mid_message });
        }
        self.end += read;
        Ok(())
    }
}

/// Writes server frames: unmasked, each message in one frame, flushed as it
/// is written. One frame buffer is reused for every message.
pub struct WsWriter<W> {
    inner: W,
    frame: Vec<u8>,
    closed: bool,
}

impl<W> fmt::Debug for WsWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> WsWriter<W> {
    pub fn new(inner: W) -> WsWriter<W> {
        WsWriter {
            inner,
            frame: Vec::new(),
            closed: false,
        }
    }

    /// Sends one binary message made of `parts` in order (so a channel byte
    /// and its data need not be copied together first).
    pub fn send_binary(&mut self, parts: &[&[u8]]) -> Result<(), WebSocketError> {
        self.send(Opcode::Binary, parts)
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), WebSocketError> {
        self.send(Opcode::Text, &[text.as_bytes()])
    }

    /// Sends a ping; `payload` is at most [`MAX_CONTROL_PAYLOAD`] bytes.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), WebSocketError> {
        self.send(Opcode::Ping, &[payload])
    }

    /// Answers a ping with its payload.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), WebSocketError> {
        self.send(Opcode::Pong, &[payload])
    }

    /// Sends a close frame. A reason longer than [`MAX_CLOSE_REASON`] bytes
    /// is cut at the last character boundary that fits. Nothing can be sent
    /// afterwards.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WebSocketError> {
        if !code.is_valid_on_wire() {
            return Err(WebSocketError::InvalidCloseCode { code: code.0 });
        }
        let mut cut = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        self.send(
            Opcode::Close,
            &[&code.0.to_be_bytes(), &reason.as_bytes()[..cut]],
        )?;
        self.closed = true;
        Ok(())
    }

    /// Whether a close frame has been sent.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn send(&mut self, opcode: Opcode, parts: &[&[u8]]) -> Result<(), WebSocketError> {
        if self.closed {
            return Err(WebSocketError::Closed);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if opcode.is_control() && len > MAX_CONTROL_PAYLOAD {
            return Err(WebSocketError::ControlTooLong {
                length: len as u64,
                limit: MAX_CONTROL_PAYLOAD,
            });
        }
        self.frame.clear();
        self.frame.push(0x80 | opcode.bits());
        match len {
            // Each arm's range makes its cast exact.
            0..=125 => self.frame.push(len as u8),
            126..=0xffff => {
                self.frame.push(126);
                self.frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                self.frame.push(127);
                self.frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        for part in parts {
            self.frame.extend_from_slice(part);
        }
        self.inner.write_all(&self.frame)?;
        self.inner.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The subprotocols of the examples below.
    const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

    /// The example key of RFC 6455 section 1.3.
    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// Request header fields, name and value.
    type Fields = Vec<(&'static str, &'static str)>;

    fn request(extra: &[(&'static str, &'static str)]) -> Fields {
        let mut headers = vec![
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Version", "13"),
        ];
        for &(name, value) in extra {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if !value.is_empty() {
                headers.push((name, value));
            }
        }
        headers
    }

    /// A client frame: masked with `mask`, the length in its shortest form.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn reader(bytes: Vec<u8>) -> WsReader<Cursor<Vec<u8>>> {
        WsReader::new(Cursor::new(bytes))
    }

    fn read_error(bytes: Vec<u8>) -> WebSocketError {
        let mut reader = reader(bytes);
        loop {
            if let Err(err) = reader.read() {
                return err;
            }
        }
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn accept_key_is_the_rfc_example() {
        assert_eq!(accept_key(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn handshake_answers_101_with_the_accept_key_and_chosen_subprotocol() {
        let headers = request(&[("Sec-WebSocket-Protocol", "v4.channel.k8s.io")]);
        let handshake = accept("GET", &headers, PROTOCOLS).unwrap();
        assert_eq!(handshake.protocol(), Some("v4.channel.k8s.io"));
        assert_eq!(
            String::from_utf8(handshake.response()).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        );
    }

    #[test]
    fn handshake_without_subprotocols_chooses_none_and_omits_the_header() {
        let handshake = accept("GET", &request(&[]), PROTOCOLS).unwrap();
        assert_eq!(handshake.protocol(), None);
        let response = String::from_utf8(handshake.response()).unwrap();
        assert!(!response.contains("Sec-WebSocket-Protocol"), "{response}");
    }

    #[test]
    fn the_clients_first_supported_subprotocol_wins_across_repeated_fields() {
        let headers = [
            request(&[]),
            vec![
                ("Sec-WebSocket-Protocol", "base64.channel.k8s.io"),
                (
                    "sec-websocket-protocol",
                    " v4.channel.k8s.io ,v5.channel.k8s.io",
                ),
            ],
        ]
        .concat();
        let handshake = accept("GET", &headers, PROTOCOLS).unwrap();
        assert_eq!(handshake.protocol(), Some("v4.channel.k8s.io"));
    }

    #[test]
    fn header_names_and_tokens_match_in_any_case_and_in_lists() {
        let headers = [
            ("upgrade", "WebSocket"),
            ("CONNECTION", "keep-alive, UPGRADE"),
            ("sec-websocket-key", RFC_KEY),
            ("SEC-WEBSOCKET-VERSION", "13"),
        ];
        assert!(is_upgrade_request(&headers));
        assert!(accept("GET", &headers, PROTOCOLS).is_ok());
    }

    #[test]
    fn invalid_upgrades_are_refused_with_the_right_status() {
        let cases: [(&str, Fields, u16); 10] = [
            ("POST", request(&[]), 405),
            ("GET", request(&[("Upgrade", "h2c")]), 400),
            ("GET", request(&[("Connection", "keep-alive")]), 400),
            ("GET", request(&[("Sec-WebSocket-Key", "")]), 400),
            ("GET", request(&[("Sec-WebSocket-Key", "c2hvcnQ=")]), 400),
            (
                "GET",
                request(&[("Sec-WebSocket-Key", "not base64 at all!!!!!==")]),
                400,
            ),
            (
                "GET",
                [request(&[]), vec![("Sec-WebSocket-Key", RFC_KEY)]].concat(),
                400,
            ),
            ("GET", request(&[("Sec-WebSocket-Version", "8")]), 426),
            ("GET", request(&[("Sec-WebSocket-Version", "")]), 426),
            (
                "GET",
                request(&[("Sec-WebSocket-Protocol", "portforward.k8s.io")]),
                403,
            ),
        ];
        for (method, headers, status) in cases {
            let err = accept(method, &headers, PROTOCOLS).unwrap_err();
            assert_eq!(
                err.http_status(),
                Some(status),
                "{method} {headers:?}: {err}"
            );
            assert_eq!(err.close_code(), None);
        }
    }

    #[test]
    fn refusal_responses_are_complete_http_answers() {
        let err = accept(
            "GET",
            &request(&[("Sec-WebSocket-Version", "8")]),
            PROTOCOLS,
        )
        .unwrap_err();
        let response = String::from_utf8(err.http_response().unwrap()).unwrap();
        let body = "Sec-WebSocket-Version must be 13\n";
        assert_eq!(
            response,
            format!(
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        );
        let err = accept(
            "GET",
            &request(&[("Sec-WebSocket-Protocol", "x")]),
            PROTOCOLS,
        )
        .unwrap_err();
        let response = String::from_utf8(err.http_response().unwrap()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
        assert!(response.ends_with("supported: v5.channel.k8s.io, v4.channel.k8s.io\n"));
        let response = String::from_utf8(WebSocketError::MethodNotGet.http_response().unwrap());
        let body = "a WebSocket upgrade must be a GET request\n";
        assert_eq!(
            response.unwrap(),
            format!(
                "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        );
        let response = String::from_utf8(WebSocketError::BadKey.http_response().unwrap());
        assert!(response
            .unwrap()
            .starts_with("HTTP/1.1 400 Bad Request\r\nContent-Type"));
        assert!(WebSocketError::Unmasked.http_response().is_none());
    }

    #[test]
    fn reads_the_rfc_single_frame_masked_text() {
        let bytes = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(reader(bytes).read().unwrap(), Incoming::Text("Hello"));
    }

    #[test]
    fn reassembles_the_rfc_fragmented_text_with_a_ping_between_fragments() {
        let bytes = [
            client_frame(0x01, b"Hel", MASK),
            client_frame(0x89, b"Hello", [1, 2, 3, 4]),
            client_frame(0x80, b"lo", [9, 8, 7, 6]),
        ]
        .concat();
        let mut reader = reader(bytes);
        assert_eq!(reader.read().unwrap(), Incoming::Ping(b"Hello"));
        assert_eq!(reader.read().unwrap(), Incoming::Text("Hello"));
    }

    #[test]
    fn reads_the_rfc_masked_pong() {
        let bytes = vec![
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(reader(bytes).read().unwrap(), Incoming::Pong(b"Hello"));
    }

    #[test]
    fn reads_16_and_64_bit_lengths() {
        let medium: Vec<u8> = (0..256).map(|i| i as u8).collect();
        let large: Vec<u8> = (0..65_536).map(|i| (i * 7) as u8).collect();
        let medium_frame = client_frame(0x82, &medium, MASK);
        assert_eq!(medium_frame[1..4], [0xfe, 0x01, 0x00]);
        let large_frame = client_frame(0x82, &large, MASK);
        assert_eq!(large_frame[1..10], [0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut reader = reader([medium_frame, large_frame].concat());
        assert_eq!(reader.read().unwrap(), Incoming::Binary(&medium));
        assert_eq!(reader.read().unwrap(), Incoming::Binary(&large));
    }

    #[test]
    fn accepts_a_non_minimal_length_encoding() {
        let mut frame = vec![0x82, 0x80 | 126, 0, 3];
        frame.extend_from_slice(&MASK);
        frame.extend(b"abc".iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        assert_eq!(reader(frame).read().unwrap(), Incoming::Binary(b"abc"));
    }

    #[test]
    fn reads_empty_messages_and_empty_fragments() {
        let bytes = [
            client_frame(0x82, b"", MASK),
            client_frame(0x02, b"", MASK),
            client_frame(0x00, b"a", MASK),
            client_frame(0x00, b"", MASK),
            client_frame(0x80, b"b", MASK),
        ]
        .concat();
        let mut reader = reader(bytes);
        assert_eq!(reader.read().unwrap(), Incoming::Binary(b""));
        assert_eq!(reader.read().unwrap(), Incoming::Binary(b"ab"));
    }

    #[test]
    fn close_frames_carry_code_and_reason_and_end_reading() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice("bye ✓".as_bytes());
        let bytes = [
            client_frame(0x88, &payload, MASK),
            client_frame(0x81, b"late", MASK),
        ]
        .concat();
        let mut reader = reader(bytes);
        assert_eq!(
            reader.read().unwrap(),
            Incoming::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: "bye ✓"
            }))
        );
        assert!(matches!(reader.read(), Err(WebSocketError::Closed)));
        assert_eq!(
            WsReader::new(Cursor::new(client_frame(0x88, b"", MASK)))
                .read()
                .unwrap(),
            Incoming::Close(None)
        );
    }

    #[test]
    fn malformed_frames_are_refused_with_the_close_code_to_send() {
        let mut too_long = client_frame(0x82, b"", MASK);
        too_long[1] = 0x80 | 127;
        too_long.splice(2..2, [0x80, 0, 0, 0, 0, 0, 0, 1]);
        let cases: Vec<(&str, Vec<u8>, CloseCode)> = vec![
            (
                "unmasked",
                vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
                CloseCode(1002),
            ),
            ("rsv1", client_frame(0xc1, b"x", MASK), CloseCode(1002)),
            ("rsv3", client_frame(0x92, b"x", MASK), CloseCode(1002)),
            ("opcode 3", client_frame(0x83, b"x", MASK), CloseCode(1002)),
            ("opcode 0xb", client_frame(0x8b, b"", MASK), CloseCode(1002)),
            (
                "ping without fin",
                client_frame(0x09, b"", MASK),
                CloseCode(1002),
            ),
            (
                "ping of 126",
                client_frame(0x89, &[0; 126], MASK),
                CloseCode(1002),
            ),
            (
                "lone continuation",
                client_frame(0x80, b"x", MASK),
                CloseCode(1002),
            ),
            (
                "interleaved",
                [
                    client_frame(0x01, b"a", MASK),
                    client_frame(0x81, b"b", MASK),
                ]
                .concat(),
                CloseCode(1002),
            ),
            ("64-bit length top bit", too_long, CloseCode(1002)),
            (
                "close of 1 byte",
                client_frame(0x88, &[3], MASK),
                CloseCode(1002),
            ),
            (
                "close 1005",
                client_frame(0x88, &1005u16.to_be_bytes(), MASK),
                CloseCode(1002),
            ),
            (
                "close 999",
                client_frame(0x88, &999u16.to_be_bytes(), MASK),
                CloseCode(1002),
            ),
            (
                "close 2000",
                client_frame(0x88, &2000u16.to_be_bytes(), MASK),
                CloseCode(1002),
            ),
            (
                "close reason not UTF-8",
                client_frame(0x88, &[0x03, 0xe8, 0xff, 0xfe], MASK),
                CloseCode(1007),
            ),
            (
                "text not UTF-8",
                client_frame(0x81, &[0xce, 0xba, 0xe1], MASK),
                CloseCode(1007),
            ),
            (
                "text split inside a character is fine, but ending inside one is not",
                [
                    client_frame(0x01, &[0xce], MASK),
                    client_frame(0x80, &[0xba, 0xe1], MASK),
                ]
                .concat(),
                CloseCode(1007),
            ),
        ];
        for (what, bytes, code) in cases {
            let err = read_error(bytes);
            assert_eq!(err.close_code(), Some(code), "{what}: {err}");
            assert_eq!(err.http_status(), None, "{what}");
        }
    }

    #[test]
    fn a_text_message_split_inside_a_character_is_reassembled() {
        let text = "κόσμε";
        let bytes = [
            client_frame(0x01, &text.as_bytes()[..1], MASK),
            client_frame(0x80, &text.as_bytes()[1..], MASK),
        ]
        .concat();
        assert_eq!(reader(bytes).read().unwrap(), Incoming::Text(text));
    }

    #[test]
    fn an_oversize_message_is_refused_from_its_header_before_the_payload_arrives() {
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(2 * MAX_MESSAGE_BYTES as u64).to_be_bytes());
        header.extend_from_slice(&MASK);
        let err = read_error(header);
        assert!(
            matches!(err, WebSocketError::MessageTooBig { length, limit }
                if length == 2 * MAX_MESSAGE_BYTES as u64 && limit == MAX_MESSAGE_BYTES),
            "{err}"
        );
        assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    }

    #[test]
    fn fragments_count_together_against_the_message_limit() {
        let bytes = [
            client_frame(0x02, &[1; 60], MASK),
            client_frame(0x00, &[2; 40], MASK),
            client_frame(0x80, &[3; 1], MASK),
        ]
        .concat();
        let mut limited = WsReader::with_max_message(Cursor::new(bytes.clone()), 100);
        assert!(matches!(
            limited.read(),
            Err(WebSocketError::MessageTooBig {
                length: 101,
                limit: 100
            })
        ));
        let mut roomy = WsReader::with_max_message(Cursor::new(bytes), 101);
        let expected = [[1u8; 60].as_slice(), &[2; 40], &[3]].concat();
        assert_eq!(roomy.read().unwrap(), Incoming::Binary(&expected));
    }

    #[test]
    fn end_of_stream_is_a_disconnect_that_says_whether_a_message_was_cut() {
        let whole = client_frame(0x82, b"abcdef", MASK);
        let mut reader = reader(whole.clone());
        assert_eq!(reader.read().unwrap(), Incoming::Binary(b"abcdef"));
        assert!(matches!(
            reader.read(),
            Err(WebSocketError::Disconnected { mid_message: false })
        ));
        for cut in [1, 2, 5, 8] {
            assert!(
                matches!(
                    read_error(whole[..cut].to_vec()),
                    WebSocketError::Disconnected { mid_message: true }
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            read_error(client_frame(0x02, b"abc", MASK)),
            WebSocketError::Disconnected { mid_message: true }
        ));
    }

    /// Hands out one byte per read, with a `WouldBlock` before each.
    struct Trickle {
        bytes: Vec<u8>,
        position: usize,
        blocked: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.blocked = !self.blocked;
            if self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            match self.bytes.get(self.position) {
                Some(&byte) if !buf.is_empty() => {
                    buf[0] = byte;
                    self.position += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn a_read_interrupted_by_would_block_resumes_where_it_stopped() {
        let payload: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let bytes = [
            client_frame(0x82, &payload, [5, 6, 7, 8]),
            client_frame(0x02, &payload[..130], MASK),
            client_frame(0x89, b"p", MASK),
            client_frame(0x80, &payload[130..], MASK),
        ]
        .concat();
        let mut reader = WsReader::new(Trickle {
            bytes,
            position: 0,
            blocked: false,
        });
        let mut would_block = 0;
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match reader.read() {
                Ok(Incoming::Ping(p)) => seen.push(p.to_vec()),
                Ok(Incoming::Binary(b)) => seen.push(b.to_vec()),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(WebSocketError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    would_block += 1
                }
                Err(err) => panic!("{err}"),
            }
        }
        assert_eq!(seen, vec![payload.clone(), b"p".to_vec(), payload]);
        assert!(would_block > 600);
    }

    fn written(f: impl FnOnce(&mut WsWriter<Vec<u8>>) -> Result<(), WebSocketError>) -> Vec<u8> {
        let mut writer = WsWriter::new(Vec::new());
        f(&mut writer).unwrap();
        writer.inner
    }

    #[test]
    fn writes_the_rfc_unmasked_frames() {
        assert_eq!(
            written(|w| w.send_text("Hello")),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            written(|w| w.ping(b"Hello")),
            [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(written(|w| w.pong(b"")), [0x8a, 0x00]);
    }

    #[test]
    fn writes_16_and_64_bit_lengths_and_joins_parts() {
        let medium = written(|w| w.send_binary(&[&[7], &[0; 255]]));
        assert_eq!(medium[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(medium.len(), 4 + 256);
        assert_eq!(medium[4], 7);
        let large = written(|w| w.send_binary(&[&[0; 65_536]]));
        assert_eq!(large[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(large.len(), 10 + 65_536);
        let edge = written(|w| w.send_binary(&[&[0; 125]]));
        assert_eq!(edge[..2], [0x82, 125]);
        let edge = written(|w| w.send_binary(&[&[0; 126]]));
        assert_eq!(edge[..4], [0x82, 126, 0, 126]);
    }

    #[test]
    fn close_writes_code_and_reason_then_refuses_further_frames() {
        let mut writer = WsWriter::new(Vec::new());
        writer.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(
            writer.inner,
            [0x88, 0x06, 0x03, 0xe8, b'd', b'o', b'n', b'e']
        );
        assert!(writer.is_closed());
        assert!(matches!(writer.send_text("x"), Err(WebSocketError::Closed)));
        assert!(matches!(writer.pong(b""), Err(WebSocketError::Closed)));
    }

    #[test]
    fn a_long_close_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let frame = written(|w| w.close(CloseCode::GOING_AWAY, &reason));
        assert_eq!(frame[1] as usize, 2 + 122);
        assert_eq!(std::str::from_utf8(&frame[4..]).unwrap(), "é".repeat(61));
    }

    #[test]
    fn the_writer_refuses_oversize_control_frames_and_unsendable_codes() {
        let mut writer = WsWriter::new(Vec::new());
        assert!(matches!(
            writer.ping(&[0; 126]),
            Err(WebSocketError::ControlTooLong { length: 126, .. })
        ));
        assert!(matches!(
            writer.close(CloseCode(1006), ""),
            Err(WebSocketError::InvalidCloseCode { code: 1006 })
        ));
        assert!(writer.inner.is_empty());
        assert!(!writer.is_closed());
    }

    /// Our server side against tungstenite's client over localhost TCP.
    mod interop {
        use super::*;
        use std::net::{SocketAddr, TcpListener, TcpStream};
        use std::thread::{self, JoinHandle};
        use std::time::Duration;
        use tungstenite::client::IntoClientRequest;
        use tungstenite::protocol::frame::coding::{CloseCode as TgCloseCode, Data, OpCode};
        use tungstenite::protocol::frame::Frame;
        use tungstenite::protocol::CloseFrame as TgCloseFrame;
        use tungstenite::{Error as TgError, HandshakeError, Message, WebSocket};

        const TIMEOUT: Duration = Duration::from_secs(10);

        /// What the server saw, owned so it can leave the server thread.
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Seen {
            Text(String),
            Binary(Vec<u8>),
            Ping(Vec<u8>),
            Pong(Vec<u8>),
            Close(Option<(u16, String)>),
        }

        impl From<Incoming<'_>> for Seen {
            fn from(incoming: Incoming<'_>) -> Seen {
                match incoming {
                    Incoming::Text(t) => Seen::Text(t.to_owned()),
                    Incoming::Binary(b) => Seen::Binary(b.to_vec()),
                    Incoming::Ping(p) => Seen::Ping(p.to_vec()),
                    Incoming::Pong(p) => Seen::Pong(p.to_vec()),
                    Incoming::Close(c) => Seen::Close(c.map(|c| (c.code.0, c.reason.to_owned()))),
                }
            }
        }

        /// Serves one connection: the handshake, then `session` with the
        /// reader (accepting messages up to `max_message` bytes) and writer
        /// over the socket.
        fn serve<T, F>(
            max_message: usize,
            session: F,
        ) -> (SocketAddr, JoinHandle<Result<T, WebSocketError>>)
        where
            T: Send + 'static,
            F: FnOnce(WsReader<TcpStream>, WsWriter<TcpStream>) -> T + Send + 'static,
        {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap();
            let server = thread::spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                // The client sends no frame before the handshake's answer.
                let (head, leftover) =
                    crate::codec::http_head::read_request(&mut stream, TIMEOUT).unwrap();
                assert!(leftover.is_empty());
                match accept(&head.method, &head.headers, PROTOCOLS) {
                    Ok(handshake) => {
                        stream.write_all(&handshake.response()).unwrap();
                        let reader =
                            WsReader::with_max_message(stream.try_clone().unwrap(), max_message);
                        Ok(session(reader, WsWriter::new(stream)))
                    }
                    Err(err) => {
                        stream.write_all(&err.http_response().unwrap()).unwrap();
                        Err(err)
                    }
                }
            });
            (address, server)
        }

        fn connect(address: SocketAddr, protocols: &str) -> WebSocket<TcpStream> {
            let stream = TcpStream::connect(address).unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut request = format!("ws://{address}/cri/exec/token")
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
            let (socket, response) = tungstenite::client(request, stream).unwrap();
            assert_eq!(
                response.headers()["Sec-WebSocket-Protocol"],
                protocols.split(',').next().unwrap().trim()
            );
            socket
        }

        /// Answers pings, echoes data messages, and answers a close with a
        /// close carrying the same code; returns everything it read.
        fn echo(mut reader: WsReader<TcpStream>, mut writer: WsWriter<TcpStream>) -> Vec<Seen> {
            let mut seen = Vec::new();
            writer.ping(b"server ping").unwrap();
            loop {
                let incoming = reader.read().unwrap();
                match incoming {
                    Incoming::Ping(payload) => writer.pong(payload).unwrap(),
                    Incoming::Text(text) => writer.send_text(text).unwrap(),
                    Incoming::Binary(data) => writer.send_binary(&[data]).unwrap(),
                    Incoming::Close(frame) => {
                        let code = frame.map_or(CloseCode::NORMAL, |f| f.code);
                        writer.close(code, "").unwrap();
                    }
                    Incoming::Pong(_) => {}
                }
                let done = matches!(incoming, Incoming::Close(_));
                seen.push(Seen::from(incoming));
                if done {
                    return seen;
                }
            }
        }

        #[test]
        fn messages_fragments_pings_and_close_flow_both_ways() {
            let (address, server) = serve(MAX_MESSAGE_BYTES, echo);
            let mut client = connect(address, "v5.channel.k8s.io, v4.channel.k8s.io");
            let big: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
            client.send(Message::text("hello")).unwrap();
            client.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
            for (part, opcode, fin) in [
                ("frag", OpCode::Data(Data::Text), false),
                ("ment", OpCode::Data(Data::Continue), false),
                ("ed ✓", OpCode::Data(Data::Continue), true),
            ] {
                client
                    .send(Message::Frame(Frame::message(
                        part.as_bytes().to_vec(),
                        opcode,
                        fin,
                    )))
                    .unwrap();
            }
            client
                .send(Message::Ping(b"client ping".to_vec().into()))
                .unwrap();
            client.send(Message::binary(big.clone())).unwrap();

            let mut received = Vec::new();
            while received.len() < 6 {
                let message = client.read().unwrap();
                client.flush().unwrap();
                received.push(message);
            }
            assert_eq!(
                received,
                vec![
                    Message::Ping(b"server ping".to_vec().into()),
                    Message::text("hello"),
                    Message::binary(vec![0u8, 1, 2, 255]),
                    Message::text("fragmented ✓"),
                    Message::Pong(b"client ping".to_vec().into()),
                    Message::binary(big.clone()),
                ]
            );

            client
                .close(Some(TgCloseFrame {
                    code: TgCloseCode::Normal,
                    reason: "bye".into(),
                }))
                .unwrap();
            match client.read() {
                Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, TgCloseCode::Normal),
                other => panic!("expected the close reply, got {other:?}"),
            }
            assert!(matches!(client.read(), Err(TgError::ConnectionClosed)));

            let seen = server.join().unwrap().unwrap();
            let (pongs, rest): (Vec<Seen>, Vec<Seen>) =
                seen.into_iter().partition(|s| matches!(s, Seen::Pong(_)));
            assert_eq!(pongs, vec![Seen::Pong(b"server ping".to_vec())]);
            assert_eq!(
                rest,
                vec![
                    Seen::Text("hello".into()),
                    Seen::Binary(vec![0, 1, 2, 255]),
                    Seen::Text("fragmented ✓".into()),
                    Seen::Ping(b"client ping".to_vec()),
                    Seen::Binary(big),
                    Seen::Close(Some((1000, "bye".into()))),
                ]
            );
        }

        #[test]
        fn a_server_initiated_close_is_answered_by_the_client() {
            let (address, server) = serve(MAX_MESSAGE_BYTES, |mut reader, mut writer| {
                writer.send_binary(&[&[1], b"output"]).unwrap();
                writer.close(CloseCode::NORMAL, "exited").unwrap();
                Seen::from(reader.read().unwrap())
            });
            let mut client = connect(address, "v4.channel.k8s.io");
            assert_eq!(
                client.read().unwrap(),
                Message::binary(b"\x01output".to_vec())
            );
            match client.read() {
                Ok(Message::Close(Some(frame))) => {
                    assert_eq!(frame.code, TgCloseCode::Normal);
                    assert_eq!(frame.reason.as_str(), "exited");
                }
                other => panic!("expected a close, got {other:?}"),
            }
            assert!(matches!(client.read(), Err(TgError::ConnectionClosed)));
            assert_eq!(
                server.join().unwrap().unwrap(),
                Seen::Close(Some((1000, "exited".into())))
            );
        }

        #[test]
        fn an_oversize_client_message_is_refused_with_close_code_1009() {
            let (address, server) = serve(1000, |mut reader, mut writer| {
                let err = match reader.read() {
                    Err(err) => err,
                    Ok(other) => panic!("expected an error, got {other:?}"),
                };
                writer
                    .close(err.close_code().unwrap(), &err.to_string())
                    .unwrap();
                // Returning the socket keeps it open until the test has read
                // the close: closing it with the unread message still
                // buffered would reset the connection.
                (err, reader, writer)
            });
            let mut client = connect(address, "v4.channel.k8s.io");
            client.send(Message::binary(vec![0u8; 1001])).unwrap();
            match client.read() {
                Ok(Message::Close(Some(frame))) => {
                    assert_eq!(frame.code, TgCloseCode::Size);
                    assert_eq!(
                        frame.reason.as_str(),
                        "a message of 1001 bytes exceeds the limit of 1000 bytes"
                    );
                }
                other => panic!("expected a close, got {other:?}"),
            }
            let (err, _, _) = server.join().unwrap().unwrap();
            assert!(matches!(err, WebSocketError::MessageTooBig { .. }), "{err}");
        }

        #[test]
        fn an_unsupported_subprotocol_is_refused_before_the_upgrade() {
            let (address, server) = serve(MAX_MESSAGE_BYTES, |_, _| ());
            let stream = TcpStream::connect(address).unwrap();
            let mut request = format!("ws://{address}/").into_client_request().unwrap();
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "portforward.k8s.io".parse().unwrap(),
            );
            match tungstenite::client(request, stream) {
                Err(HandshakeError::Failure(TgError::Http(response))) => {
                    assert_eq!(response.status(), 403)
                }
                other => panic!("expected a refusal, got {:?}", other.map(|(_, r)| r)),
            }
            assert!(matches!(
                server.join().unwrap(),
                Err(WebSocketError::NoCommonSubprotocol { .. })
            ));
        }
    }
}
