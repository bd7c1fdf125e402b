//! The streaming server's request-head parser (`streaming::http::parse_head`).
//!
//! Asserts, for every input: no panic; an accepted head has a token method,
//! a path starting with `/`, at most `MAX_HEADERS` fields with lower-case
//! names and trimmed values; and an accepted head written out again in
//! canonical form (HTTP/1.0, query fully percent-encoded) parses to the
//! same head.
#![cfg_attr(afl, no_main)]

use dockshim::codec::http_head::{parse_head, RequestHead, MAX_HEADERS};

fn run(input: &[u8]) {
    let Ok(head) = parse_head(input) else {
        return;
    };
    assert!(!head.method.is_empty());
    assert!(head.path.starts_with('/'), "{:?}", head.path);
    assert!(head.headers.len() <= MAX_HEADERS);
    for (name, value) in &head.headers {
        assert_eq!(*name, name.to_ascii_lowercase());
        assert_eq!(value.trim_matches([' ', '\t']), value);
    }
    let again = parse_head(&canonical(&head));
    assert_eq!(again.as_ref().ok(), Some(&head), "{again:?}");
}

fn canonical(head: &RequestHead) -> Vec<u8> {
    let mut out = format!("{} {}", head.method, head.path);
    for (i, (name, value)) in head.query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        percent_encode(&mut out, name);
        out.push('=');
        percent_encode(&mut out, value);
    }
    out.push_str(" HTTP/1.0");
    for (name, value) in &head.headers {
        out.push_str(&format!("\r\n{name}: {value}"));
    }
    out.into_bytes()
}

fn percent_encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

dockshim_fuzz::fuzz_target!(run);
