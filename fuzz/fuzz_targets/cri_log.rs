//! The CRI log format (`logs::CriEncoder`, `logs::parse_cri_line`) and
//! resuming a log file after a restart (`logs::find_resume_point`).
//!
//! Input: a flags byte (TTY or multiplexed body), a byte of cut points, a
//! byte choosing where a crash tears the file, then dockerd's logs body
//! (`timestamps=1`).
//!
//! Asserts, for every input: no panic; fed whole or in pieces, the encoder
//! writes the same lines and reaches the same verdict; every line it
//! writes parses as a CRI line whose message holds no newline and at most
//! `MAX_LINE_SIZE` bytes; encoding holds no more than its one pending line
//! per stream beyond the output; and, when the lines' timestamps never go
//! back (as dockerd writes them) and fit the resume window: a file torn
//! anywhere by a crash, resumed with `find_resume_point` and followed again
//! from the same body, ends up exactly as if nothing had happened.
#![cfg_attr(afl, no_main)]

use std::fs;

use dockshim::logs::format::parse_cri_line;
use dockshim::logs::{find_resume_point, CriEncoder, ResumePoint, MAX_LINE_SIZE, MAX_RESUME_SCAN};
use dockshim_fuzz::{alloc, pieces, scratch_dir, split_points, Cursor};

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let tty = cursor.bool();
    let cuts = cursor.piece();
    let tear = cursor.u8();
    let body = cursor.rest();

    let (whole, peak) = alloc::peak_during(|| encode(tty, None, &[body]));
    let bound = 3 * whole.0.len() + 2 * body.len() + 4 * MAX_LINE_SIZE + 64 * 1024;
    assert!(peak <= bound, "encoding {} bytes held {peak}", body.len());
    let points = split_points(body.len(), cuts);
    assert_eq!(whole, encode(tty, None, &pieces(body, &points)));

    let (lines, ok) = whole;
    let mut previous = i128::MIN;
    let mut in_order = true;
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\n")
            .unwrap_or_else(|| panic!("a line without its newline"));
        let parsed = parse_cri_line(line)
            .unwrap_or_else(|| panic!("not a CRI line: {:?}", String::from_utf8_lossy(line)));
        assert!(parsed.message.len() <= MAX_LINE_SIZE);
        assert!(!parsed.message.contains(&b'\n'));
        let nanos = parsed.timestamp.unix_nanos();
        in_order &= nanos >= previous;
        previous = nanos;
    }
    if ok && in_order && (lines.len() as u64) < MAX_RESUME_SCAN / 2 {
        resume_after_crash(tty, body, &lines, tear);
    }
}

/// The lines written for `reads`, and whether the body was accepted.
fn encode(tty: bool, resume: Option<ResumePoint>, reads: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut encoder = CriEncoder::new(tty, resume);
    let mut out = Vec::new();
    for read in reads {
        if encoder.feed(read, &mut out).is_err() {
            return (out, false);
        }
    }
    encoder.finish(&mut out);
    (out, true)
}

/// Tears the file after `tear`/255 of its bytes, resumes and follows the
/// body again: the file must come out whole.
fn resume_after_crash(tty: bool, body: &[u8], lines: &[u8], tear: u8) {
    let dir = scratch_dir("cri_log");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join("0.log");
    let kept = lines.len() * usize::from(tear) / 255;
    fs::write(&path, &lines[..kept]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let point = find_resume_point(&path).unwrap_or_else(|e| panic!("resume point: {e}"));
    let mut file = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let complete = lines[..kept]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    assert_eq!(file, &lines[..complete], "the torn line was not cut off");
    assert_eq!(point.is_none(), complete == 0);
    let (more, ok) = encode(tty, point, &[body]);
    assert!(ok);
    file.extend_from_slice(&more);
    assert!(
        file == lines,
        "resumed file differs:\n{}\nexpected:\n{}",
        String::from_utf8_lossy(&file),
        String::from_utf8_lossy(lines)
    );
}

dockshim_fuzz::fuzz_target!(run);
