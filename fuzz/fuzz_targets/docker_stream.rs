//! The demultiplexer of dockerd's attach, exec and logs streams
//! (`docker::Demux`, `docker::demux_copy`): 8-byte headers (stream type,
//! padding, big-endian length) each followed by a payload.
//!
//! Input: a byte of cut points, then the stream.
//!
//! Asserts, for every input: no panic; each call consumes at least one
//! byte of a non-empty input and never more than it was given; fed whole
//! or in pieces, the demuxer yields the same bytes for each stream and the
//! same verdict; `demux_copy` writes exactly those bytes (echoed stdin to
//! stdout) and fails exactly when the stream is malformed, cut inside a
//! frame or carries a daemon error; and the streams, multiplexed again,
//! demultiplex to the same.
#![cfg_attr(afl, no_main)]

use dockshim::docker::{demux_copy, Demux, StdStream, MAX_FRAME_SIZE};
use dockshim_fuzz::{pieces, split_points, Cursor, PieceReader};

/// The demuxed payload as runs of one stream, adjacent runs merged, and
/// how it ended: the error text, or whether it ended between frames.
#[derive(Debug, PartialEq, Eq)]
struct Demuxed {
    runs: Vec<(u8, Vec<u8>)>,
    end: Result<bool, String>,
}

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let cuts = cursor.piece();
    let wire = cursor.rest();
    let points = split_points(wire.len(), cuts);
    let reads = pieces(wire, &points);

    let whole = demux(&[wire]);
    assert_eq!(whole, demux(&reads));

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let copied = demux_copy(PieceReader::new(reads), &mut stdout, &mut stderr);
    let mut want_stdout = Vec::new();
    let mut want_stderr = Vec::new();
    let mut daemon_error = false;
    for (stream, data) in &whole.runs {
        match *stream {
            0 | 1 => want_stdout.extend_from_slice(data),
            2 => want_stderr.extend_from_slice(data),
            _ => {
                daemon_error = true;
                break;
            }
        }
    }
    assert_eq!(stdout, want_stdout);
    assert_eq!(stderr, want_stderr);
    assert_eq!(
        copied.is_ok(),
        whole.end == Ok(true) && !daemon_error,
        "{copied:?}"
    );

    if whole.end.is_ok() {
        let mut again = Vec::new();
        for (stream, data) in &whole.runs {
            for chunk in data.chunks(MAX_FRAME_SIZE as usize) {
                again.extend_from_slice(&[*stream, 0, 0, 0]);
                again.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                again.extend_from_slice(chunk);
            }
        }
        let remuxed = demux(&[&again]);
        assert_eq!(remuxed.runs, whole.runs);
        assert_eq!(remuxed.end, Ok(true));
    }
}

fn demux(reads: &[&[u8]]) -> Demuxed {
    let mut demux = Demux::new();
    let mut runs: Vec<(u8, Vec<u8>)> = Vec::new();
    for read in reads {
        let mut input = *read;
        while !input.is_empty() {
            match demux.feed(input) {
                Ok((used, piece)) => {
                    assert!(used > 0 && used <= input.len());
                    input = &input[used..];
                    if let Some(piece) = piece {
                        let stream = match piece.stream {
                            StdStream::Stdin => 0,
                            StdStream::Stdout => 1,
                            StdStream::Stderr => 2,
                            StdStream::DaemonError => 3,
                        };
                        match runs.last_mut() {
                            Some((last, data)) if *last == stream => {
                                data.extend_from_slice(piece.data)
                            }
                            _ => runs.push((stream, piece.data.to_vec())),
                        }
                    }
                }
                Err(err) => {
                    return Demuxed {
                        runs,
                        end: Err(err.to_string()),
                    }
                }
            }
        }
    }
    Demuxed {
        runs,
        end: Ok(demux.at_frame_boundary()),
    }
}

dockshim_fuzz::fuzz_target!(run);
