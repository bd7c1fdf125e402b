//! The Docker Engine HTTP/1.1 response parser (`docker::ResponseParser`),
//! driven the way a connection drives it: bytes offered as they arrive,
//! unconsumed bytes offered again with the next read appended.
//!
//! Input: a flags byte (HEAD request or not, the body limit), a byte of
//! cut points, then the bytes dockerd sends.
//!
//! Asserts, for every input: no panic; the parser never makes the caller
//! buffer more than the head limit (64 KiB, `MAX_HEAD_BYTES` in
//! src/docker/response.rs) plus one read; the body never passes the limit;
//! and the same bytes arriving whole or in pieces give the same status,
//! headers, body, outcome and leftover bytes.
#![cfg_attr(afl, no_main)]

use dockshim::docker::{Headers, Progress, ResponseParser};
use dockshim_fuzz::{pieces, split_points, Cursor};

/// `MAX_HEAD_BYTES` of src/docker/response.rs, and the CRLF that may end
/// a line just past it.
const HEAD_LIMIT: usize = 64 * 1024 + 2;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: Option<u16>,
    headers: Headers,
    body: Vec<u8>,
    /// The error's text (figures left out: an error names the size of the
    /// read it happened in), or the bytes past the end of the response and
    /// whether the connection may be reused.
    end: Result<(Vec<u8>, bool), String>,
}

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let flags = cursor.u8();
    let head_request = flags & 1 == 1;
    let body_limit = [0, 1, 100, 64 * 1024 * 1024][usize::from(flags >> 1 & 3)];
    let cuts = cursor.piece();
    let wire = cursor.rest();

    let whole = parse(&[wire], head_request, body_limit);
    let points = split_points(wire.len(), cuts);
    let split = parse(&pieces(wire, &points), head_request, body_limit);
    if whole.end.is_ok() || split.end.is_ok() {
        assert_eq!(whole, split);
    } else {
        // Body bytes before an error depend on where reads end; the head
        // and the verdict do not.
        assert_eq!(
            (whole.status, &whole.headers, &whole.end),
            (split.status, &split.headers, &split.end)
        );
    }
    assert!(whole.body.len() as u64 <= body_limit);
}

fn parse(reads: &[&[u8]], head_request: bool, body_limit: u64) -> Outcome {
    let mut parser = ResponseParser::new(head_request, body_limit);
    let mut outcome = Outcome {
        status: None,
        headers: Headers::default(),
        body: Vec::new(),
        end: Ok((Vec::new(), false)),
    };
    let mut reads = reads.iter();
    let mut pending: Vec<u8> = Vec::new();
    let mut last_read = 0;
    let end = loop {
        assert!(
            pending.len() <= HEAD_LIMIT + last_read,
            "{} bytes buffered for the parser",
            pending.len()
        );
        match parser.feed(&pending) {
            Ok(Progress::NeedMore { consumed }) => {
                pending.drain(..consumed);
                match reads.next() {
                    Some(read) => {
                        pending.extend_from_slice(read);
                        last_read = read.len();
                    }
                    None => match parser.eof(pending.len()) {
                        Ok(()) => break Ok((pending, parser.is_reusable())),
                        Err(err) => break Err(without_figures(&err.to_string())),
                    },
                }
            }
            Ok(Progress::Head { consumed }) => {
                pending.drain(..consumed);
                outcome.status = Some(parser.status());
                outcome.headers = parser.take_headers();
            }
            Ok(Progress::Data { start, end }) => {
                assert!(start < end && end <= pending.len());
                outcome.body.extend_from_slice(&pending[start..end]);
                pending.drain(..end);
            }
            Ok(Progress::Done { consumed }) => {
                pending.drain(..consumed);
                for read in reads.by_ref() {
                    pending.extend_from_slice(read);
                }
                break Ok((pending, parser.is_reusable()));
            }
            Err(err) => break Err(without_figures(&err.to_string())),
        }
    };
    outcome.end = end;
    outcome
}

fn without_figures(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_digit()).collect()
}

dockshim_fuzz::fuzz_target!(run);
