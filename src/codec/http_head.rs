//! The HTTP/1.1 the streaming server speaks before a session takes over:
//! reading one request head from a connection, and writing the short error
//! responses that end a connection.
//!
//! Scope: one request per connection, no request body (an upgrade request
//! has none; `Content-Length` other than 0 and any `Transfer-Encoding` are
//! refused), lines ended by CRLF, no obsolete line folding, `HTTP/1.0` and
//! `HTTP/1.1` only. The request target is origin-form (`/path?query`) or
//! absolute-form (`http://host/path?query`, whose host is ignored). The
//! path is kept as it came, not percent-decoded: every route of the server
//! is plain ASCII. Query pairs are decoded as an HTML form is
//! (`+` is a space, `%XX` a byte) and must be UTF-8. Header names are
//! lower-cased; header values are trimmed and must be UTF-8.
//!
//! Limits: [`MAX_HEAD_BYTES`] for the whole head, [`MAX_HEADERS`] header
//! fields, and the head must arrive within the timeout the caller gives
//! (the server uses [`HEAD_READ_TIMEOUT`]) however slowly it trickles in.
//! Nothing read off the wire sizes an allocation.
//!
//! This module does not route, know about tokens, or upgrade protocols.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::HttpError;

/// Largest request head, request line and terminating blank line included.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header fields in a request head.
pub const MAX_HEADERS: usize = 100;

/// Time a client has to send its whole request head. The kubelet sends
/// its head at once after connecting; until then a connection has shown
/// no token, so a client that sends nothing must give its place back soon.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from the socket at a time; also the most a client's bytes
/// past the head can be.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// The blank line that ends a head.
const HEAD_END: &[u8] = b"\r\n\r\n";

/// A request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Case-sensitive, as HTTP methods are.
    pub method: String,
    /// The path, without query, not percent-decoded.
    pub path: String,
    /// The query's pairs, decoded, in order, repeats kept.
    pub query: Vec<(String, String)>,
    /// Header fields, names lower-cased, values trimmed, in order, repeats
    /// kept.
    pub headers: Vec<(String, String)>,
}

// The answer is written by `error_response`, so this stays beside it:
// `error` cannot import this file, which imports it.
impl HttpError {
    /// The complete response to send before closing the connection.
    pub fn response(&self) -> Option<Vec<u8>> {
        Some(error_response(self.status()?, &self.to_string(), &[]))
    }
}

/// Reads one request head from `conn` within `timeout`. Returns the head
/// and the bytes that came after it. Leaves a read timeout set on `conn`.
pub fn read_request(
    conn: &mut TcpStream,
    timeout: Duration,
) -> Result<(RequestHead, Vec<u8>), HttpError> {
    let deadline = Instant::now() + timeout;
    let mut buffer = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let mut search = HeadSearch::default();
    loop {
        if let Some(end) = search.find(&buffer)? {
            let leftover = buffer.split_off(end + HEAD_END.len());
            // The head without its last CRLF pair: each line but the last
            // keeps its CRLF, which `parse_head` expects.
            buffer.truncate(end);
            return Ok((parse_head(&buffer)?, leftover));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HttpError::Timeout { after: timeout });
        }
        conn.set_read_timeout(Some(remaining))
            .map_err(HttpError::Io)?;
        match conn.read(&mut chunk) {
            Ok(0) if buffer.is_empty() => return Err(HttpError::Closed),
            Ok(0) => return Err(HttpError::Truncated),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HttpError::Timeout { after: timeout });
            }
            Err(err) => return Err(HttpError::Io(err)),
        }
    }
}

/// The search for the blank line ending a head in a buffer that grows
/// read by read. It resumes where the last search stopped (less the bytes
/// of a blank line split across two reads), so a client sending one byte
/// at a time costs a pass over the head, not a pass per byte.
#[derive(Debug, Default)]
struct HeadSearch {
    /// How much of the buffer earlier searches covered.
    searched: usize,
}

impl HeadSearch {
    /// Where the blank line ending the head starts in `buffer`, which holds
    /// what earlier calls saw and more; `Ok(None)` when more bytes are
    /// needed, an error when the head cannot end within [`MAX_HEAD_BYTES`].
    fn find(&mut self, buffer: &[u8]) -> Result<Option<usize>, HttpError> {
        let window = &buffer[..buffer.len().min(MAX_HEAD_BYTES)];
        let from = self
            .searched
            .saturating_sub(HEAD_END.len() - 1)
            .min(window.len());
        match window[from..]
            .windows(HEAD_END.len())
            .position(|w| w == HEAD_END)
        {
            Some(end) => Ok(Some(from + end)),
            None if buffer.len() >= MAX_HEAD_BYTES => Err(HttpError::HeadTooLarge {
                limit: MAX_HEAD_BYTES,
            }),
            None => {
                self.searched = window.len();
                Ok(None)
            }
        }
    }

    #[cfg(test)]
    fn searched(&self) -> usize {
        self.searched
    }
}

#[cfg(test)]
fn find_head_end(buffer: &[u8]) -> Result<Option<usize>, HttpError> {
    HeadSearch::default().find(buffer)
}

/// Parses a complete head: the request line and header lines, separated
/// by CRLF, without the blank line that ends it.
pub fn parse_head(head: &[u8]) -> Result<RequestHead, HttpError> {
    let mut lines = lines(head);
    let request_line = lines
        .next()
        .ok_or(HttpError::Malformed("no request line"))??;
    let (method, target, version) = split_request_line(request_line)?;
    let (path, query) = split_target(target)?;

    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(HttpError::TooManyHeaders { limit: MAX_HEADERS });
        }
        headers.push(parse_header_line(line?)?);
    }
    check_framing(version, &headers)?;
    Ok(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: parse_query(query)?,
        headers,
    })
}

/// The lines of a head that lacks its final CRLF, each without its CRLF.
fn lines(head: &[u8]) -> impl Iterator<Item = Result<&[u8], HttpError>> {
    let mut pieces = head.split(|&b| b == b'\n').peekable();
    std::iter::from_fn(move || {
        let piece = pieces.next()?;
        if pieces.peek().is_none() {
            return Some(Ok(piece));
        }
        Some(
            piece
                .strip_suffix(b"\r")
                .ok_or(HttpError::Malformed("a line ends in LF without CR")),
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

fn split_request_line(line: &[u8]) -> Result<(&str, &str, Version), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(
            "the request line is not METHOD SP TARGET SP VERSION",
        ));
    };
    if method.is_empty() || !method.iter().copied().all(is_token_byte) {
        return Err(HttpError::Malformed("the method is not a token"));
    }
    if target.is_empty()
        || !target.iter().all(|b| (0x21..=0x7e).contains(b))
        || target.contains(&b'#')
    {
        return Err(HttpError::Malformed(
            "the request target holds a byte a URL may not",
        ));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        v if v.starts_with(b"HTTP/") => return Err(HttpError::UnsupportedVersion),
        _ => return Err(HttpError::Malformed("the request line has no HTTP version")),
    };
    Ok((ascii(method)?, ascii(target)?, version))
}

/// Text of bytes already checked to be ASCII.
fn ascii(bytes: &[u8]) -> Result<&str, HttpError> {
    std::str::from_utf8(bytes).map_err(|_| HttpError::Malformed("not ASCII"))
}

/// The path and raw query of a request target.
fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    let origin = match strip_scheme(target) {
        Some(rest) => match rest.find(['/', '?']) {
            Some(at) => &rest[at..],
            None => "/",
        },
        None => target,
    };
    let (path, query) = origin.split_once('?').unwrap_or((origin, ""));
    match path {
        "" => Ok(("/", query)),
        p if p.starts_with('/') => Ok((p, query)),
        _ => Err(HttpError::Malformed("the request target is not a path")),
    }
}

/// The authority and the rest of an absolute-form target.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    })
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), HttpError> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(HttpError::Malformed("obsolete header line folding"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::Malformed("a header line has no colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().copied().all(is_token_byte) {
        return Err(HttpError::Malformed("a header name is not a token"));
    }
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |at| at + 1);
    let value = &value[start..end];
    if value.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return Err(HttpError::Malformed("a header value holds a control byte"));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| HttpError::Malformed("a header value is not UTF-8"))?;
    let name = ascii(name)?.to_ascii_lowercase();
    Ok((name, value.to_owned()))
}

/// Refuses heads that announce a body or, for HTTP/1.1, name no single
/// host (RFC 9112 sections 3.2 and 6).
fn check_framing(version: Version, headers: &[(String, String)]) -> Result<(), HttpError> {
    let count = |name: &str| headers.iter().filter(|(n, _)| n == name).count();
    let hosts = count("host");
    if hosts > 1 || (version == Version::Http11 && hosts == 0) {
        return Err(HttpError::Malformed(
            "an HTTP/1.1 request needs exactly one Host field",
        ));
    }
    if count("transfer-encoding") > 0 {
        return Err(HttpError::Malformed("a streaming request carries no body"));
    }
    if headers
        .iter()
        .any(|(n, v)| n == "content-length" && v != "0")
    {
        return Err(HttpError::Malformed("a streaming request carries no body"));
    }
    Ok(())
}

/// `a=1&b=x+y&c` → `[("a","1"), ("b","x y"), ("c","")]`; empty pieces
/// are skipped.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, HttpError> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            Ok((form_decode(name)?, form_decode(value)?))
        })
        .collect()
}

fn form_decode(text: &str) -> Result<String, HttpError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let low = bytes.get(i + 2).and_then(|&l| hex_value(l));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(HttpError::Malformed("bad percent-encoding in the query"));
                };
                out.push((high << 4) | low);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| HttpError::Malformed("a query value is not UTF-8"))
}

fn hex_value(symbol: u8) -> Option<u8> {
    char::from(symbol)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// `tchar` of RFC 9110 section 5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A complete response that closes the connection, with `message` and a
/// line feed as its plain-text body and `extra_headers` (fixed fields such
/// as `Allow`) among its header fields.
pub fn error_response(status: u16, message: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut response = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (name, value) in extra_headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{message}\n",
        message.len() + 1
    ));
    response.into_bytes()
}

/// Writes [`error_response`] to `out`.
pub fn write_error(
    out: &mut impl Write,
    status: u16,
    message: &str,
    extra_headers: &[(&str, &str)],
) -> io::Result<()> {
    out.write_all(&error_response(status, message, extra_headers))?;
    out.flush()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    fn parse(text: &str) -> Result<RequestHead, HttpError> {
        let head = text
            .strip_suffix("\r\n\r\n")
            .expect("test heads end with a blank line");
        parse_head(head.as_bytes())
    }

    fn malformed(text: &str) -> &'static str {
        match parse(text) {
            Err(HttpError::Malformed(what)) => what,
            other => panic!("{text:?}: expected a malformed head, got {other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn parses_an_upgrade_request_head() {
        let head = parse(
            "GET /cri/exec/tok?command=ls&command=-l&stdout=1 HTTP/1.1\r\n\
             Host: 127.0.0.1:10010\r\n\
             Connection: Upgrade\r\n\
             Upgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
             X-Stream-Protocol-Version: v3.channel.k8s.io\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/cri/exec/tok");
        assert_eq!(
            head.query,
            pairs(&[("command", "ls"), ("command", "-l"), ("stdout", "1")])
        );
        assert_eq!(
            head.headers,
            pairs(&[
                ("host", "127.0.0.1:10010"),
                ("connection", "Upgrade"),
                ("upgrade", "SPDY/3.1"),
                ("x-stream-protocol-version", "v4.channel.k8s.io"),
                ("x-stream-protocol-version", "v3.channel.k8s.io"),
            ])
        );
    }

    #[test]
    fn header_values_are_trimmed_and_may_be_empty() {
        let head = parse("GET / HTTP/1.1\r\nHost:\t h \t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n").unwrap();
        assert_eq!(
            head.headers,
            pairs(&[("host", "h"), ("x-empty", ""), ("x-sp", "")])
        );
    }

    #[test]
    fn the_query_is_form_decoded() {
        let head = parse(
            "POST /p?command=sh&command=-c&command=echo+a%20b%26c&flag&&=v&e= HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            head.query,
            pairs(&[
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo a b&c"),
                ("flag", ""),
                ("", "v"),
                ("e", ""),
            ])
        );
        assert_eq!(
            parse("GET /?k=%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n")
                .unwrap()
                .query,
            pairs(&[("k", "é")])
        );
    }

    #[test]
    fn bad_percent_encoding_and_non_utf8_queries_are_refused() {
        for target in ["/?a=%", "/?a=%4", "/?a=%zz", "/?%g0=1", "/?a=%ff"] {
            let text = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            malformed(&text);
        }
    }

    #[test]
    fn the_path_is_kept_as_sent() {
        let head = parse("GET /cri/exec/a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(head.path, "/cri/exec/a%2Fb");
    }

    #[test]
    fn absolute_form_targets_lose_scheme_and_host() {
        for (target, path, query) in [
            (
                "http://h:1/cri/attach/t?stdin=1",
                "/cri/attach/t",
                vec![("stdin", "1")],
            ),
            ("HTTPS://h", "/", vec![]),
            ("http://h?x=1", "/", vec![("x", "1")]),
        ] {
            let head = parse(&format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")).unwrap();
            assert_eq!((head.path.as_str(), head.query), (path, pairs(&query)));
        }
    }

    #[test]
    fn http_1_0_needs_no_host() {
        let head = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(head.headers.is_empty());
    }

    #[test]
    fn broken_request_lines_are_malformed() {
        for text in [
            "GET /\r\nHost: h\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            " / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET cri HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / FTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\nHost: h\r\n\r\n",
        ] {
            malformed(text);
        }
    }

    #[test]
    fn other_http_versions_are_unsupported() {
        for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2"] {
            let text = format!("GET / {version}\r\nHost: h\r\n\r\n");
            assert!(matches!(parse(&text), Err(HttpError::UnsupportedVersion)));
        }
        assert_eq!(HttpError::UnsupportedVersion.status(), Some(505));
    }

    #[test]
    fn broken_header_lines_are_malformed() {
        for text in [
            "GET / HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nBad name: v\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        ] {
            malformed(text);
        }
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX: \xff"),
            Err(HttpError::Malformed("a header value is not UTF-8"))
        ));
    }

    #[test]
    fn a_host_is_required_once_and_bodies_are_refused() {
        assert_eq!(
            malformed("GET / HTTP/1.1\r\nX: 1\r\n\r\n"),
            "an HTTP/1.1 request needs exactly one Host field"
        );
        malformed("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
        malformed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n");
        malformed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").unwrap();
    }

    #[test]
    fn at_most_max_headers_are_accepted() {
        let head = |count: usize| {
            let mut text = "GET / HTTP/1.1\r\nHost: h\r\n".to_owned();
            for n in 1..count {
                text.push_str(&format!("X-{n}: v\r\n"));
            }
            text + "\r\n"
        };
        assert_eq!(
            parse(&head(MAX_HEADERS)).unwrap().headers.len(),
            MAX_HEADERS
        );
        assert!(matches!(
            parse(&head(MAX_HEADERS + 1)),
            Err(HttpError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn the_head_must_end_within_the_limit() {
        let mut buffer = vec![b'a'; MAX_HEAD_BYTES - HEAD_END.len()];
        buffer.extend_from_slice(HEAD_END);
        assert_eq!(
            find_head_end(&buffer).unwrap(),
            Some(MAX_HEAD_BYTES - HEAD_END.len())
        );
        let mut longer = vec![b'a'; MAX_HEAD_BYTES - HEAD_END.len() + 1];
        longer.extend_from_slice(HEAD_END);
        assert!(matches!(
            find_head_end(&longer),
            Err(HttpError::HeadTooLarge {
                limit: MAX_HEAD_BYTES
            })
        ));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r").unwrap(), None);
    }

    #[test]
    fn a_head_trickled_in_byte_by_byte_is_searched_once() {
        let head = b"GET /cri/exec/t HTTP/1.1\r\nHost: h\r\n\r\nleftover";
        let end = head.len() - b"\r\n\r\nleftover".len();
        let mut search = HeadSearch::default();
        for len in 0..=head.len() {
            let found = search.find(&head[..len]).unwrap();
            if len < end + HEAD_END.len() {
                assert_eq!(found, None, "at {len} bytes");
                // Every later search starts near the end of this one.
                assert_eq!(search.searched(), len);
            } else {
                assert_eq!(found, Some(end), "at {len} bytes");
            }
        }
    }

    #[test]
    fn a_blank_line_split_across_reads_is_found() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let end = head.len() - HEAD_END.len();
        for split in 0..head.len() {
            let mut search = HeadSearch::default();
            let first = search.find(&head[..split]).unwrap();
            assert_eq!(first, None, "split at {split}");
            assert_eq!(search.find(head).unwrap(), Some(end), "split at {split}");
        }
    }

    #[test]
    fn a_head_that_grows_past_the_limit_is_refused_however_it_arrives() {
        let mut search = HeadSearch::default();
        let mut buffer = Vec::new();
        while buffer.len() < MAX_HEAD_BYTES {
            buffer.extend_from_slice(b"x-a: b\r\n");
            if buffer.len() < MAX_HEAD_BYTES {
                assert_eq!(search.find(&buffer).unwrap(), None);
            }
        }
        assert!(matches!(
            search.find(&buffer),
            Err(HttpError::HeadTooLarge {
                limit: MAX_HEAD_BYTES
            })
        ));
    }

    #[test]
    fn error_responses_close_the_connection_and_say_why() {
        let response = error_response(405, "use GET", &[("Allow", "GET, POST")]);
        assert_eq!(
            String::from_utf8(response).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, POST\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\n\
             Connection: close\r\n\r\nuse GET\n"
        );
        let mut out = Vec::new();
        write_error(&mut out, 404, "gone", &[]).unwrap();
        assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        assert_eq!(HttpError::Closed.response(), None);
        let timeout = HttpError::Timeout {
            after: Duration::from_secs(1),
        };
        assert!(timeout
            .response()
            .unwrap()
            .starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    }

    /// A connected pair: what the client writes, `read_request` reads.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn read_request_returns_the_bytes_after_the_head() {
        let (mut client, mut server) = pair();
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n\x80\x03\x00\x01frames")
            .unwrap();
        let (head, leftover) = read_request(&mut server, Duration::from_secs(5)).unwrap();
        assert_eq!(head.path, "/x");
        assert_eq!(leftover, b"\x80\x03\x00\x01frames");
    }

    #[test]
    fn read_request_assembles_a_head_sent_byte_by_byte() {
        let (mut client, mut server) = pair();
        let writer = thread::spawn(move || {
            for byte in b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n" {
                client.write_all(&[*byte]).unwrap();
                thread::sleep(Duration::from_millis(1));
            }
            client
        });
        let (head, leftover) = read_request(&mut server, Duration::from_secs(5)).unwrap();
        assert_eq!((head.path.as_str(), leftover.len()), ("/slow", 0));
        drop(writer.join().unwrap());
    }

    #[test]
    fn read_request_gives_up_on_a_slow_head_at_the_deadline() {
        let (mut client, mut server) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        let err = read_request(&mut server, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(client);
    }

    #[test]
    fn read_request_tells_a_silent_close_from_a_truncated_head() {
        let (client, mut server) = pair();
        drop(client);
        assert!(matches!(
            read_request(&mut server, Duration::from_secs(5)),
            Err(HttpError::Closed)
        ));
        let (mut client, mut server) = pair();
        client.write_all(b"GET / HT").unwrap();
        drop(client);
        assert!(matches!(
            read_request(&mut server, Duration::from_secs(5)),
            Err(HttpError::Truncated)
        ));
    }

    #[test]
    fn read_request_refuses_an_endless_head() {
        let (mut client, mut server) = pair();
        let writer = thread::spawn(move || {
            let line =
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
            let _ = client.write_all(b"GET / HTTP/1.1\r\n");
            // Stops when the server closes its end.
            while client.write_all(line).is_ok() {}
        });
        let err = read_request(&mut server, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, HttpError::HeadTooLarge { .. }), "{err:?}");
        drop(server);
        writer.join().unwrap();
    }

    #[test]
    fn fuzzed_heads_never_panic() {
        let seeds: [&[u8]; 3] = [
            b"GET /cri/exec/tok?command=ls&stdin=1 HTTP/1.1\r\nHost: h\r\nUpgrade: SPDY/3.1",
            b"POST http://h:1/cri/portforward/t?port=80 HTTP/1.0\r\nConnection: Upgrade",
            b"GET /?a=%41+b HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==",
        ];
        let alphabet = b"\r\n :%+?&=/#\t\x00\x7f\xffGETHTP1.0ah";
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(..=input.len());
                match rng.u8(..3) {
                    0 => input.insert(at, alphabet[rng.usize(..alphabet.len())]),
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.truncate(at),
                }
            }
            if let Ok(head) = parse_head(&input) {
                assert!(!head.method.is_empty());
                assert!(head.path.starts_with('/'));
                assert!(head.headers.len() <= MAX_HEADERS);
                assert!(head
                    .headers
                    .iter()
                    .all(|(name, _)| *name == name.to_ascii_lowercase()));
            }
            let mut random = vec![0u8; rng.usize(..64)];
            rng.fill(&mut random);
            let _ = parse_head(&random);
            let _ = find_head_end(&random);
        }
    }
}
