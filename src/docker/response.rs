//! The HTTP/1.1 response parser: an explicit state machine fed bytes as they
//! arrive, and the `Response`/`Headers` types callers see.
//!
//! It owns framing (status line, header fields, Content-Length, chunked
//! coding with extensions and trailers, close-delimited bodies, responses
//! without a body) and every size limit on what dockerd may send. It owns no
//! buffer and no socket: the caller offers its unconsumed bytes, the parser
//! says how many it used, and "need more bytes" is a normal answer, not an
//! error. It does not follow redirects, decode content codings or parse
//! bodies.
//!
//! Decisions where RFC 9112 leaves a choice:
//! - `Transfer-Encoding` together with `Content-Length` is refused. The RFC
//!   lets a recipient let chunked win but says such a message "ought to be
//!   handled as an error" since it is the shape of request smuggling; dockerd
//!   (Go's net/http) never sends it, so seeing it means the bytes are not
//!   what we think they are, and the connection must not be reused.
//! - Obsolete line folding (a field line starting with a space) is refused
//!   rather than unfolded: Go never folds, so a folded line means a
//!   desynchronised stream.
//! - Lines must end in CRLF; a bare LF is refused for the same reason.
//! - Interim 1xx responses other than 101 are skipped, as the RFC requires;
//!   their bytes count against the head limit, so a flood of them is bounded.

use std::fmt;
use std::io;

use super::DockerError;

/// Status line, header fields and chunked trailers of one response,
/// together. Go's server refuses request heads over 1 MiB and dockerd sends
/// about 300 bytes of headers.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Header (and trailer) fields per response.
pub(crate) const MAX_HEADERS: usize = 100;

/// Largest body buffered whole for a non-streaming call. Inspect and list
/// answers on a busy node reach megabytes; beyond this dockerd is answering
/// something we did not ask.
pub const MAX_BUFFERED_BODY: u64 = 64 * 1024 * 1024;

/// A chunk-size line, extensions included.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;

/// Hex digits in a chunk size: 16 fill a `u64`, so parsing cannot overflow.
const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// The header fields of a response, in arrival order; names compare
/// case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The first value of `name`, any case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, any case, in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields as received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True if a comma-separated `name` field lists `token`, any case
    /// (`Connection: keep-alive, Upgrade`).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// A complete answer to a non-streaming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// What one call to [`ResponseParser::feed`] achieved. Offsets are into the
/// slice given to that call; bytes not consumed must be offered again, with
/// whatever arrives next appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The first `consumed` bytes were used; the rest is an incomplete line.
    NeedMore { consumed: usize },
    /// The status line and header fields ended after `consumed` bytes;
    /// [`ResponseParser::status`] and friends are now valid.
    Head { consumed: usize },
    /// `input[start..end]` is body data (chunked coding removed); `end`
    /// bytes are consumed.
    Data { start: usize, end: usize },
    /// The response ended after `consumed` bytes. Anything after belongs to
    /// the next response or, after a 101, to the upgraded stream.
    Done { consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StatusLine,
    Headers,
    Length { remaining: u64 },
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Parses one response. Create one per request.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// Answers to HEAD carry no body whatever their headers say.
    head_request: bool,
    body_limit: u64,
    head_bytes: usize,
    header_count: usize,
    status: u16,
    http_1_0: bool,
    headers: Headers,
    body_bytes: u64,
    reusable: bool,
}

impl ResponseParser {
    /// A parser for the answer to a request; `head_request` if it was HEAD.
    /// Bodies larger than `body_limit` are refused, a declared
    /// Content-Length or chunk size before any of its bytes are read.
    pub fn new(head_request: bool, body_limit: u64) -> ResponseParser {
        ResponseParser {
            state: State::StatusLine,
            head_request,
            body_limit,
            head_bytes: 0,
            header_count: 0,
            status: 0,
            http_1_0: false,
            headers: Headers::default(),
            body_bytes: 0,
            reusable: false,
        }
    }

    /// The status code; valid once `Head` was reported.
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn take_headers(&mut self) -> Headers {
        std::mem::take(&mut self.headers)
    }

    /// True once the whole response was read and the connection may carry
    /// another request.
    pub fn is_reusable(&self) -> bool {
        self.state == State::Done && self.reusable
    }

    /// Lowers the body limit after the head was seen, e.g. for the error
    /// body of a streaming call. Refuses a declared length over it at once.
    pub(crate) fn limit_body(&mut self, limit: u64) -> Result<(), DockerError> {
        self.body_limit = limit;
        match self.state {
            State::Length { remaining } if remaining > limit => Err(too_large(remaining, limit)),
            _ => Ok(()),
        }
    }

    /// Advances over `input`, stopping at the first event worth reporting.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, DockerError> {
        let mut pos = 0;
        loop {
            // `pos` only grows by lengths measured within `input`.
            let rest = &input[pos..];
            match self.state {
                State::StatusLine | State::Headers | State::Trailers => {
                    let Some(line_len) = find_line(rest)? else {
                        self.check_head_size(rest.len())?;
                        return Ok(Progress::NeedMore { consumed: pos });
                    };
                    self.check_head_size(line_len + 2)?;
                    self.head_bytes += line_len + 2;
                    let line = &rest[..line_len];
                    pos += line_len + 2;
                    if let Some(progress) = self.head_line(line, pos)? {
                        return Ok(progress);
                    }
                }
                State::Length { remaining } => {
                    if rest.is_empty() {
                        return Ok(Progress::NeedMore { consumed: pos });
                    }
                    let take = take_up_to(remaining, rest.len());
                    // `take <= remaining`, so this cannot underflow.
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Length { remaining }
                    };
                    return Ok(Progress::Data {
                        start: pos,
                        end: pos + take,
                    });
                }
                State::ChunkSize => {
                    let line = find_line(rest)?;
                    if line.unwrap_or(rest.len()) > MAX_CHUNK_LINE {
                        return Err(protocol(format!(
                            "chunk-size line longer than {MAX_CHUNK_LINE} bytes"
                        )));
                    }
                    let Some(line_len) = line else {
                        return Ok(Progress::NeedMore { consumed: pos });
                    };
                    let size = parse_chunk_size(&rest[..line_len])?;
                    pos += line_len + 2;
                    if size == 0 {
                        self.state = State::Trailers;
                        continue;
                    }
                    self.count_body(size)?;
                    self.state = State::ChunkData { remaining: size };
                }
                State::ChunkData { remaining } => {
                    if rest.is_empty() {
                        return Ok(Progress::NeedMore { consumed: pos });
                    }
                    let take = take_up_to(remaining, rest.len());
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData { remaining }
                    };
                    return Ok(Progress::Data {
                        start: pos,
                        end: pos + take,
                    });
                }
                State::ChunkDataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(Progress::NeedMore { consumed: pos }),
                    _ => return Err(protocol("chunk data not followed by CRLF".to_owned())),
                },
                State::UntilClose => {
                    if rest.is_empty() {
                        return Ok(Progress::NeedMore { consumed: pos });
                    }
                    self.count_body(rest.len() as u64)?;
                    return Ok(Progress::Data {
                        start: pos,
                        end: input.len(),
                    });
                }
                State::Done => return Ok(Progress::Done { consumed: pos }),
            }
        }
    }

    /// The peer closed the connection, leaving `pending` bytes unconsumed:
    /// fine only where the body is delimited by the close (or complete).
    /// Otherwise the connection broke, which is an I/O failure (dockerd
    /// went away), not malformed HTTP.
    pub fn eof(&mut self, pending: usize) -> Result<(), DockerError> {
        let during = match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                return Ok(());
            }
            State::StatusLine if self.head_bytes == 0 && pending == 0 => {
                return Err(closed("dockerd closed the connection without answering"));
            }
            State::StatusLine | State::Headers => "the response head",
            State::Trailers => "the chunked trailers",
            State::Length { .. }
            | State::ChunkSize
            | State::ChunkData { .. }
            | State::ChunkDataEnd => "the response body",
        };
        Err(closed(&format!(
            "dockerd closed the connection in the middle of {during}"
        )))
    }

    /// Adds `more` body bytes to the total, refusing to pass the limit.
    fn count_body(&mut self, more: u64) -> Result<(), DockerError> {
        match self.body_bytes.checked_add(more) {
            Some(total) if total <= self.body_limit => {
                self.body_bytes = total;
                Ok(())
            }
            _ => Err(too_large(
                self.body_bytes.saturating_add(more),
                self.body_limit,
            )),
        }
    }

    fn check_head_size(&self, more: usize) -> Result<(), DockerError> {
        if self.head_bytes.saturating_add(more) > MAX_HEAD_BYTES {
            return Err(protocol(format!(
                "response head larger than {MAX_HEAD_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Handles one complete line of the head or trailers; `pos` is where the
    /// next line starts. Returns the event to report, if any.
    fn head_line(&mut self, line: &[u8], pos: usize) -> Result<Option<Progress>, DockerError> {
        match self.state {
            State::StatusLine => {
                self.status_line(line)?;
                self.state = State::Headers;
                Ok(None)
            }
            State::Headers if line.is_empty() => Ok(self
                .end_of_head()?
                .then_some(Progress::Head { consumed: pos })),
            State::Headers => {
                let field = self.field_line(line)?;
                self.headers.fields.push(field);
                Ok(None)
            }
            State::Trailers if line.is_empty() => {
                self.state = State::Done;
                Ok(None)
            }
            // Nothing in dockerd's API travels in trailers; they are
            // checked for well-formedness and dropped.
            _ => self.field_line(line).map(|_| None),
        }
    }

    fn status_line(&mut self, line: &[u8]) -> Result<(), DockerError> {
        let rest = if let Some(rest) = line.strip_prefix(b"HTTP/1.1 ") {
            self.http_1_0 = false;
            rest
        } else if let Some(rest) = line.strip_prefix(b"HTTP/1.0 ") {
            self.http_1_0 = true;
            rest
        } else {
            return Err(protocol(format!("bad status line {:?}", printable(line))));
        };
        let status = match rest {
            [a @ b'1'..=b'5', b, c, b' ', reason @ ..]
                if b.is_ascii_digit()
                    && c.is_ascii_digit()
                    && reason.iter().all(|&x| is_field_byte(x)) =>
            {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(protocol(format!("bad status line {:?}", printable(line)))),
        };
        self.status = status;
        Ok(())
    }

    fn field_line(&mut self, line: &[u8]) -> Result<(String, String), DockerError> {
        self.header_count += 1;
        if self.header_count > MAX_HEADERS {
            return Err(protocol(format!("more than {MAX_HEADERS} header fields")));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(protocol("obsolete header line folding".to_owned()));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(protocol(format!(
                "header line without ':': {:?}",
                printable(line)
            )));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| super::request::is_tchar(b)) {
            return Err(protocol(format!("bad header name {:?}", printable(name))));
        }
        let value = trim_ows(value);
        if !value.iter().all(|&b| is_field_byte(b)) {
            return Err(protocol(format!(
                "control character in header {}",
                printable(name)
            )));
        }
        let value = std::str::from_utf8(value)
            .map_err(|_| protocol(format!("header {} is not UTF-8", printable(name))))?;
        // `name` is all tchars, which are ASCII.
        Ok((String::from_utf8_lossy(name).into_owned(), value.to_owned()))
    }

    /// Decides how the body is framed. Returns false for an interim 1xx
    /// response, which is skipped.
    fn end_of_head(&mut self) -> Result<bool, DockerError> {
        if (100..200).contains(&self.status) && self.status != 101 {
            self.headers.fields.clear();
            self.header_count = 0;
            self.state = State::StatusLine;
            return Ok(false);
        }
        let has_body = !(self.head_request || matches!(self.status, 101 | 204 | 304));
        let chunked = self.headers.get("transfer-encoding").is_some();
        let length = self.content_length()?;
        self.state = if !has_body {
            State::Done
        } else if chunked {
            if length.is_some() {
                return Err(protocol(
                    "both Transfer-Encoding and Content-Length".to_owned(),
                ));
            }
            let codings: Vec<&str> = self
                .headers
                .get_all("transfer-encoding")
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect();
            if !matches!(codings.as_slice(), [only] if only.eq_ignore_ascii_case("chunked")) {
                return Err(protocol(format!(
                    "unsupported Transfer-Encoding {:?}",
                    codings.join(", ")
                )));
            }
            State::ChunkSize
        } else if let Some(length) = length {
            if length > self.body_limit {
                return Err(too_large(length, self.body_limit));
            }
            if length == 0 {
                State::Done
            } else {
                State::Length { remaining: length }
            }
        } else {
            State::UntilClose
        };
        let keep_alive = if self.http_1_0 {
            self.headers.has_token("connection", "keep-alive")
        } else {
            !self.headers.has_token("connection", "close")
        };
        self.reusable = keep_alive && self.status != 101 && self.state != State::UntilClose;
        Ok(true)
    }

    /// The Content-Length, if any. Repeated fields (or list members) must
    /// agree, as RFC 9112 section 6.3 asks; anything but digits is refused.
    fn content_length(&self) -> Result<Option<u64>, DockerError> {
        let mut length = None;
        for member in self
            .headers
            .get_all("content-length")
            .flat_map(|v| v.split(','))
        {
            let member = member.trim();
            let value = if !member.is_empty() && member.bytes().all(|b| b.is_ascii_digit()) {
                member.parse::<u64>().ok()
            } else {
                None
            };
            let Some(value) = value else {
                return Err(protocol(format!("bad Content-Length {member:?}")));
            };
            if length.is_some_and(|seen| seen != value) {
                return Err(protocol("conflicting Content-Length values".to_owned()));
            }
            length = Some(value);
        }
        Ok(length)
    }
}

/// The length of the line at the start of `input`, without its CRLF, or
/// `None` if no LF arrived yet. A LF without CR before it is refused.
fn find_line(input: &[u8]) -> Result<Option<usize>, DockerError> {
    match input.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(lf) if lf > 0 && input[lf - 1] == b'\r' => Ok(Some(lf - 1)),
        Some(_) => Err(protocol("line not terminated by CRLF".to_owned())),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then optional whitespace and
/// `;name[=value]` extensions, which are checked for control characters and
/// otherwise ignored.
fn parse_chunk_size(line: &[u8]) -> Result<u64, DockerError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(protocol(format!("bad chunk size {:?}", printable(line))));
    }
    if digits > MAX_CHUNK_SIZE_DIGITS {
        return Err(protocol("chunk size does not fit in 64 bits".to_owned()));
    }
    let extensions = trim_ows(&line[digits..]);
    let extensions_ok = extensions.is_empty()
        || (extensions[0] == b';' && extensions.iter().all(|&b| is_field_byte(b)));
    if !extensions_ok {
        return Err(protocol(format!(
            "bad chunk extension {:?}",
            printable(line)
        )));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        // At most 16 hex digits were accepted, so 16 shifts of 4 bits fit.
        size = (size << 4) | u64::from(hex_value(b));
    }
    Ok(size)
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Bytes allowed in a field value or reason phrase: HTAB, SP, visible ASCII
/// and obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= b' ' && b != 0x7f)
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `min(remaining, available)` as a `usize`; the result never exceeds
/// `available`, so the conversion back cannot truncate.
fn take_up_to(remaining: u64, available: usize) -> usize {
    remaining.min(available as u64) as usize
}

fn closed(why: &str) -> DockerError {
    DockerError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, why))
}

fn too_large(size: u64, limit: u64) -> DockerError {
    protocol(format!(
        "response body of {size} bytes exceeds the limit of {limit} bytes"
    ))
}

fn protocol(why: String) -> DockerError {
    DockerError::Protocol(why)
}

/// A short, escaped rendering of untrusted bytes for error messages.
fn printable(bytes: &[u8]) -> Printable<'_> {
    Printable(bytes)
}

struct Printable<'a>(&'a [u8]);

impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 80;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        write!(f, "\"{}", shown.escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "...")?;
        }
        write!(f, "\"")
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a transcript parses to, independent of how it was split.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        status: u16,
        headers: Headers,
        body: Vec<u8>,
        reusable: bool,
        /// Bytes after the end of the response.
        rest: Vec<u8>,
    }

    /// Drives the parser the way a connection does: a buffer that keeps
    /// unconsumed bytes and grows by one piece at a time, then EOF.
    fn parse_pieces(pieces: &[&[u8]], head_request: bool, limit: u64) -> Result<Parsed, String> {
        let mut parser = ResponseParser::new(head_request, limit);
        let mut buf: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut headers = None;
        let mut next_piece = 0;
        loop {
            match parser.feed(&buf).map_err(|e| e.to_string())? {
                Progress::NeedMore { consumed } => {
                    buf.drain(..consumed);
                    match pieces.get(next_piece) {
                        Some(piece) => buf.extend_from_slice(piece),
                        None => {
                            parser.eof(buf.len()).map_err(|e| e.to_string())?;
                            break;
                        }
                    }
                    next_piece += 1;
                }
                Progress::Head { consumed } => {
                    buf.drain(..consumed);
                    headers = Some(parser.take_headers());
                }
                Progress::Data { start, end } => {
                    body.extend_from_slice(&buf[start..end]);
                    buf.drain(..end);
                }
                Progress::Done { consumed } => {
                    buf.drain(..consumed);
                    break;
                }
            }
        }
        for piece in pieces.iter().skip(next_piece) {
            buf.extend_from_slice(piece);
        }
        Ok(Parsed {
            status: parser.status(),
            headers: headers.ok_or("no head")?,
            body,
            reusable: parser.is_reusable(),
            rest: buf,
        })
    }

    fn parse(transcript: &[u8]) -> Result<Parsed, String> {
        parse_pieces(&[transcript], false, MAX_BUFFERED_BODY)
    }

    /// Asserts the transcript parses the same whole, split in two at every
    /// offset, and fed one byte at a time; returns that result.
    fn parse_every_split(transcript: &[u8]) -> Result<Parsed, String> {
        let whole = parse(transcript);
        for at in 0..=transcript.len() {
            let (a, b) = transcript.split_at(at);
            assert_eq!(
                parse_pieces(&[a, b], false, MAX_BUFFERED_BODY),
                whole,
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = transcript.chunks(1).collect();
        assert_eq!(
            parse_pieces(&bytes, false, MAX_BUFFERED_BODY),
            whole,
            "byte by byte"
        );
        whole
    }

    fn error_of(transcript: &[u8]) -> String {
        match parse(transcript) {
            Ok(parsed) => panic!("expected an error, parsed {parsed:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn content_length_response_parses_identically_at_every_split() -> Result<(), String> {
        let transcript =
            b"HTTP/1.1 404 Not Found\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n\
            Content-Length: 38\r\n\r\n{\"message\":\"No such container: nope\"}\n";
        let parsed = parse_every_split(transcript)?;
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.body, b"{\"message\":\"No such container: nope\"}\n");
        assert_eq!(parsed.headers.get("API-VERSION"), Some("1.41"));
        assert!(parsed.reusable);
        assert!(parsed.rest.is_empty());
        Ok(())
    }

    #[test]
    fn chunked_with_extensions_and_trailers_parses_identically_at_every_split() -> Result<(), String>
    {
        let transcript = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n6 ; a=\"b\" ; c\r\n world\r\n000\r\nX-Trailer: 1\r\n\r\n";
        let parsed = parse_every_split(transcript)?;
        assert_eq!(parsed.body, b"hello world");
        assert!(parsed.reusable);
        Ok(())
    }

    #[test]
    fn bytes_after_the_response_are_left_for_the_next_one() -> Result<(), String> {
        let parsed =
            parse_every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 204")?;
        assert_eq!(parsed.body, b"OK");
        assert_eq!(parsed.rest, b"HTTP/1.1 204");
        Ok(())
    }

    #[test]
    fn switching_protocols_ends_at_the_head_and_leaves_the_stream() -> Result<(), String> {
        let transcript =
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\
            Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi";
        let parsed = parse_every_split(transcript)?;
        assert_eq!(parsed.status, 101);
        assert!(parsed.body.is_empty());
        assert_eq!(parsed.rest, b"\x01\x00\x00\x00\x00\x00\x00\x02hi");
        assert!(!parsed.reusable);
        Ok(())
    }

    #[test]
    fn no_body_for_204_304_and_head_whatever_the_headers_say() -> Result<(), String> {
        for status in ["204 No Content", "304 Not Modified"] {
            let text = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            let parsed = parse(text.as_bytes())?;
            assert!(parsed.body.is_empty() && parsed.reusable, "{status}");
        }
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        let parsed = parse_pieces(&[head], true, MAX_BUFFERED_BODY)?;
        assert!(parsed.body.is_empty() && parsed.reusable);
        Ok(())
    }

    #[test]
    fn interim_continue_is_skipped() -> Result<(), String> {
        let parsed = parse_every_split(
            b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        )?;
        assert_eq!(parsed.status, 201);
        assert_eq!(parsed.headers.get("x-a"), None);
        Ok(())
    }

    #[test]
    fn body_without_framing_runs_until_close_and_is_not_reusable() -> Result<(), String> {
        let parsed = parse_every_split(b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nraw bytes")?;
        assert_eq!(parsed.body, b"raw bytes");
        assert!(!parsed.reusable);
        Ok(())
    }

    #[test]
    fn connection_close_and_http_1_0_are_not_reusable() -> Result<(), String> {
        assert!(
            !parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?.reusable
        );
        assert!(!parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")?.reusable);
        assert!(
            parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")?
                .reusable
        );
        Ok(())
    }

    #[test]
    fn bad_status_lines_are_refused() {
        for line in [
            "HTTP/2 200 OK",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "HTTP/1.1 200OK",
            "HTTP/1.1 200",
            "HTTP/1.1 099 Low",
            "HTTP/1.1 600 High",
            "http/1.1 200 OK",
            "ICY 200 OK",
            "HTTP/1.1 2x0 OK",
            "HTTP/1.1 200 O\x00K",
        ] {
            let text = format!("{line}\r\nContent-Length: 0\r\n\r\n");
            assert!(
                error_of(text.as_bytes()).contains("bad status line"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn reason_phrase_may_be_empty() -> Result<(), String> {
        assert_eq!(
            parse(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")?.status,
            200
        );
        Ok(())
    }

    #[test]
    fn bare_lf_is_refused() {
        assert!(error_of(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n").contains("CRLF"));
        assert!(error_of(b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n").contains("CRLF"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n";
        assert!(error_of(chunked).contains("CRLF"));
    }

    #[test]
    fn header_folding_is_refused() {
        let err = error_of(b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n\r\n");
        assert!(err.contains("folding"), "{err}");
    }

    #[test]
    fn malformed_header_lines_are_refused() {
        for line in [
            "NoColon",
            "Bad Name: x",
            "Name : x",
            ": empty",
            "X: a\rb",
            "X: \x01",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\n{line}\r\nContent-Length: 0\r\n\r\n");
            assert!(parse(text.as_bytes()).is_err(), "{line:?}");
        }
    }

    #[test]
    fn oversize_head_is_refused_before_its_end_arrives() {
        let mut parser = ResponseParser::new(false, MAX_BUFFERED_BODY);
        let mut buf = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        let result = loop {
            match parser.feed(&buf) {
                Ok(Progress::NeedMore { consumed }) => {
                    buf.drain(..consumed);
                    buf.extend_from_slice(&[b'a'; 1024]);
                }
                other => break other,
            }
        };
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("larger than 65536"), "{err}");
        assert!(buf.len() <= MAX_HEAD_BYTES + 1024);
    }

    #[test]
    fn too_many_headers_are_refused() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            text.push_str(&format!("X-{i}: v\r\n"));
        }
        text.push_str("\r\n");
        assert!(error_of(text.as_bytes()).contains("header fields"));
    }

    #[test]
    fn transfer_encoding_with_content_length_is_refused() {
        let err = error_of(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(
            err.contains("both Transfer-Encoding and Content-Length"),
            "{err}"
        );
    }

    #[test]
    fn codings_other_than_chunked_are_refused() {
        for te in ["gzip", "gzip, chunked", "chunked, chunked"] {
            let text = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert!(
                error_of(text.as_bytes()).contains("Transfer-Encoding"),
                "{te}"
            );
        }
    }

    #[test]
    fn bad_or_conflicting_content_lengths_are_refused() -> Result<(), String> {
        for cl in ["+5", "5 5", "-1", "0x10", "", "99999999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            assert!(
                error_of(text.as_bytes()).contains("Content-Length"),
                "{cl:?}"
            );
        }
        let twice = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx";
        assert!(error_of(twice).contains("conflicting"));
        let agreeing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nxx";
        assert_eq!(parse(agreeing)?.body, b"xx");
        Ok(())
    }

    #[test]
    fn oversize_content_length_is_refused_before_the_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n";
        let mut parser = ResponseParser::new(false, 1024);
        let err = parser
            .feed(head)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("exceeds the limit of 1024"), "{err}");
    }

    #[test]
    fn oversize_chunk_is_refused_before_its_data() {
        let mut transcript =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3ff\r\n".to_vec();
        transcript.extend_from_slice(&[b'x'; 0x3ff]);
        transcript.extend_from_slice(b"\r\n2\r\n");
        let mut parser = ResponseParser::new(false, 1024);
        let mut input = transcript.as_slice();
        let err = loop {
            match parser.feed(input) {
                Ok(Progress::NeedMore { .. }) => break String::from("stalled"),
                Ok(Progress::Head { consumed } | Progress::Done { consumed }) => {
                    input = &input[consumed..]
                }
                Ok(Progress::Data { end, .. }) => input = &input[end..],
                Err(err) => break err.to_string(),
            }
        };
        assert!(
            err.contains("1025 bytes exceeds the limit of 1024"),
            "{err}"
        );
    }

    #[test]
    fn close_delimited_body_over_the_limit_is_refused() {
        let err = parse_pieces(&[b"HTTP/1.1 200 OK\r\n\r\n", &[b'x'; 11]], false, 10);
        assert!(err.is_err_and(|e| e.contains("exceeds the limit")));
    }

    #[test]
    fn limit_body_applies_to_a_declared_length() {
        let mut parser = ResponseParser::new(false, u64::MAX);
        let head = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 70000\r\n\r\n";
        assert!(matches!(parser.feed(head), Ok(Progress::Head { .. })));
        assert!(parser.limit_body(65536).is_err());
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for chunks in [
            "x\r\n",
            "5\r\nhelloX\r\n0\r\n\r\n",
            "5 junk\r\nhello\r\n0\r\n\r\n",
            "11111111111111111\r\n",
            "5;a=\x01\r\nhello\r\n0\r\n\r\n",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
            assert!(parse(text.as_bytes()).is_err(), "{chunks:?}");
        }
    }

    #[test]
    fn long_chunk_size_line_is_refused() {
        let text = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
            "a".repeat(MAX_CHUNK_LINE + 1)
        );
        assert!(error_of(text.as_bytes()).contains("chunk-size line"));
    }

    #[test]
    fn truncated_responses_are_errors() {
        assert!(error_of(b"").contains("without answering"));
        assert!(error_of(b"HTTP/1.1 200 OK\r\nContent-Le").contains("response head"));
        assert!(error_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").contains("body"));
        assert!(
            error_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .contains("body")
        );
        assert!(
            error_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
                .contains("trailers")
        );
    }
}
