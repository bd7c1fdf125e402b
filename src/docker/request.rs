//! Writing HTTP/1.1 request heads for dockerd, and building query strings.
//!
//! It owns the exact bytes of the request line and header block, written
//! into a caller's reused buffer. It refuses anything that would let a value
//! end a line early or smuggle a header (CR, LF, NUL, spaces in the target),
//! and it does not percent-encode paths: image references such as
//! `registry:5000/app:v1` travel in paths verbatim, as dockerd expects. It
//! does no I/O.

use super::DockerError;

/// Sent on every request; dockerd logs it.
const USER_AGENT: &str = concat!("dockshim/", env!("CARGO_PKG_VERSION"));

/// Headers the writer owns: a caller setting one of these could break the
/// framing of the request or of the connection.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// What to put in the head of one request.
#[derive(Debug)]
pub(crate) struct RequestHead<'a> {
    pub method: &'a str,
    /// Path and query, e.g. `/v1.41/containers/json?all=1`.
    pub target: &'a str,
    /// Extra headers, e.g. `X-Registry-Auth`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Length of the body that follows, if any. A body is JSON unless
    /// `headers` names another `Content-Type`.
    pub body_len: Option<usize>,
    /// Ask dockerd to hijack the connection (`Upgrade: tcp`).
    pub upgrade: bool,
}

/// Replaces the contents of `out` with the request head.
pub(crate) fn write_head(out: &mut Vec<u8>, head: &RequestHead<'_>) -> Result<(), DockerError> {
    check_request(head)?;
    out.clear();
    for part in [
        head.method,
        " ",
        head.target,
        " HTTP/1.1\r\nHost: docker\r\nUser-Agent: ",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(USER_AGENT.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in head.headers {
        push_header(out, name, value);
    }
    let caller_typed = head
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    match head.body_len {
        Some(len) => {
            if !caller_typed {
                push_header(out, "Content-Type", "application/json");
            }
            push_header(out, "Content-Length", &len.to_string());
        }
        // Without a length a POST would be read as having a body up to the
        // end of the connection by some servers; say "none" explicitly.
        None if matches!(head.method, "POST" | "PUT" | "PATCH") => {
            push_header(out, "Content-Length", "0");
        }
        None => {}
    }
    if head.upgrade {
        push_header(out, "Connection", "Upgrade");
        push_header(out, "Upgrade", "tcp");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    for part in [name, ": ", value, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
}

fn check_request(head: &RequestHead<'_>) -> Result<(), DockerError> {
    if !is_token(head.method) {
        return Err(DockerError::InvalidRequest(format!(
            "method {:?}",
            head.method
        )));
    }
    let target_ok = head.target.starts_with('/')
        && head
            .target
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#');
    if !target_ok {
        return Err(DockerError::InvalidRequest(format!(
            "request target {:?}",
            head.target
        )));
    }
    for (name, value) in head.headers {
        if !is_token(name)
            || RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(DockerError::InvalidRequest(format!("header name {name:?}")));
        }
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
        {
            return Err(DockerError::InvalidRequest(format!(
                "value of header {name}"
            )));
        }
    }
    Ok(())
}

/// RFC 9110 `token`: the characters allowed in methods and header names.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks that an ID or name dockerd handed out, or a caller gave, can go
/// into a request path as one segment: it must start with a letter or digit
/// and hold only letters, digits, `_`, `.` and `-`, as Docker's own IDs and
/// names do. `what` names it in the error.
pub(crate) fn check_path_id(id: &str, what: &str) -> Result<(), DockerError> {
    let mut bytes = id.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        Ok(())
    } else {
        Err(DockerError::InvalidRequest(format!("{what} {id:?}")))
    }
}

/// `path` followed by `?` and the percent-encoded `params`, in order.
///
/// Use it for every query, in particular for JSON values such as `filters`
/// (`{"label":["a=b"]}`), whose quotes, braces and `=` must be encoded.
pub fn path_with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(path.len() + params.len() * 16);
    out.push_str(path);
    for (i, (key, value)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        percent_encode(key, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// Appends `text` with every byte but RFC 3986 "unreserved" ones written as
/// `%XX`, which is safe in any query position.
fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(
        method: &'a str,
        target: &'a str,
        headers: &'a [(&'a str, &'a str)],
    ) -> RequestHead<'a> {
        RequestHead {
            method,
            target,
            headers,
            body_len: None,
            upgrade: false,
        }
    }

    fn written(head: &RequestHead<'_>) -> String {
        let mut out = b"left over from the last request".to_vec();
        match write_head(&mut out, head) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(err) => format!("error: {err}"),
        }
    }

    #[test]
    fn get_has_host_and_user_agent_and_no_length() {
        let text = written(&head("GET", "/v1.41/_ping", &[]));
        let expected = format!(
            "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockshim/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn json_body_gets_type_and_length_after_extra_headers() {
        let mut h = head(
            "POST",
            "/images/create?fromImage=busybox",
            &[("X-Registry-Auth", "e30=")],
        );
        h.body_len = Some(17);
        let text = written(&h);
        assert!(
            text.ends_with(
                "X-Registry-Auth: e30=\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn caller_content_type_wins() {
        let mut h = head(
            "POST",
            "/images/load",
            &[("Content-Type", "application/x-tar")],
        );
        h.body_len = Some(3);
        let text = written(&h);
        assert!(!text.contains("application/json"), "{text}");
        assert!(
            text.contains("Content-Type: application/x-tar\r\n"),
            "{text}"
        );
    }

    #[test]
    fn post_without_body_says_length_zero() {
        assert!(
            written(&head("POST", "/containers/x/start", &[])).contains("Content-Length: 0\r\n")
        );
        assert!(!written(&head("DELETE", "/containers/x", &[])).contains("Content-Length"));
    }

    #[test]
    fn hijack_asks_for_tcp_upgrade() {
        let mut h = head("POST", "/exec/abc/start", &[]);
        h.upgrade = true;
        h.body_len = Some(2);
        assert!(written(&h).ends_with("Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"));
    }

    #[test]
    fn refuses_values_that_would_break_framing() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: [Case<'_>; 7] = [
            ("GET", "/containers/a b/json", &[]),
            ("GET", "containers/x/json", &[]),
            ("GET", "/x\r\nEvil: 1", &[]),
            ("GE T", "/x", &[]),
            ("GET", "/x", &[("X-Registry-Auth", "a\r\nEvil: 1")]),
            ("GET", "/x", &[("Bad Name", "v")]),
            ("GET", "/x", &[("content-length", "5")]),
        ];
        for (method, target, headers) in cases {
            let text = written(&head(method, target, headers));
            assert!(
                text.starts_with("error: invalid request"),
                "{method} {target:?}: {text}"
            );
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        let filters = r#"{"label":["io.kubernetes.docker.type=podsandbox"]}"#;
        assert_eq!(
            path_with_query("/containers/json", &[("all", "1"), ("filters", filters)]),
            "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.kubernetes.docker.type%3Dpodsandbox%22%5D%7D"
        );
        assert_eq!(
            path_with_query("/images/create", &[("tag", "v1 ü&x")]),
            "/images/create?tag=v1%20%C3%BC%26x"
        );
        assert_eq!(path_with_query("/info", &[]), "/info");
    }
}
