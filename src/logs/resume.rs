//! Where an existing CRI log file left off, so that following a container
//! again after a dockshim restart neither repeats nor loses output.
//!
//! It owns reading the tail of a log file (a bounded window from the end)
//! and cutting off a line torn by a crash mid-write. It does not talk to
//! dockerd: the [`ResumePoint`] it returns is applied by
//! [`super::CriEncoder`].
//!
//! dockerd's `since` is inclusive and several messages may share one
//! timestamp, so the point is per stream: the newest timestamp written for
//! that stream, and the bytes written for that stream with exactly that
//! timestamp (compared again when dockerd replays them). A stream with no
//! line in the window resumes from the other stream's point. If more than
//! [`MAX_RESUME_SCAN`] bytes were written with one timestamp, the earliest of
//! them are written again.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::format::{parse_cri_line, CriStream, ResumePoint, StreamResume, Tag};
use super::path::open_log_file_for_resume;
use super::LogError;

/// How much of a file's end is read to find where it left off: enough for
/// 15 full-size lines and whatever shorter lines shared their timestamp.
pub const MAX_RESUME_SCAN: u64 = 256 * 1024;

/// The resume point of the log file at `path`, or `None` if the file is
/// missing or empty (follow from the beginning). A last line without its
/// newline (a write torn by a crash) is cut off the file first.
pub fn find_resume_point(path: &Path) -> Result<Option<ResumePoint>, LogError> {
    let file_error = |source: io::Error| LogError::File {
        path: path.to_owned(),
        source,
    };
    let Some(mut file) = open_log_file_for_resume(path)? else {
        return Ok(None);
    };
    let size = file.metadata().map_err(file_error)?.len();
    let window_start = size.saturating_sub(MAX_RESUME_SCAN);
    file.seek(SeekFrom::Start(window_start))
        .map_err(file_error)?;
    let mut tail = Vec::new();
    file.by_ref()
        .take(MAX_RESUME_SCAN)
        .read_to_end(&mut tail)
        .map_err(file_error)?;
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(at) => at + 1,
        None if window_start == 0 => 0,
        None => {
            return Err(LogError::Corrupt {
                path: path.to_owned(),
                reason: format!("no newline in its last {MAX_RESUME_SCAN} bytes"),
            })
        }
    };
    if complete < tail.len() {
        // `complete` is within a window that starts at `window_start`.
        file.set_len(window_start + complete as u64)
            .map_err(file_error)?;
        tail.truncate(complete);
    }
    // The window's first line may start before the window.
    let lines_start = if window_start == 0 {
        0
    } else {
        tail.iter()
            .position(|&b| b == b'\n')
            .map_or(tail.len(), |at| at + 1)
    };
    resume_point_of(&tail[lines_start..]).map_err(|reason| LogError::Corrupt {
        path: path.to_owned(),
        reason,
    })
}

/// The resume point of complete CRI lines (each ending in a newline).
fn resume_point_of(lines: &[u8]) -> Result<Option<ResumePoint>, String> {
    // Per stream: the newest timestamp and the messages with it, newest first.
    let mut found: [Option<(i128, Vec<Vec<u8>>)>; 2] = [None, None];
    let Some(body) = lines.strip_suffix(b"\n") else {
        return Ok(None);
    };
    for line in body.rsplit(|&b| b == b'\n') {
        let parsed = parse_cri_line(line).ok_or_else(|| {
            format!(
                "line {:?} is not a CRI log line",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )
        })?;
        let slot = &mut found[match parsed.stream {
            CriStream::Stdout => 0,
            CriStream::Stderr => 1,
        }];
        let nanos = parsed.timestamp.unix_nanos();
        match slot {
            None => *slot = Some((nanos, vec![message_bytes(parsed.message, parsed.tag)])),
            Some((newest, messages)) if *newest == nanos => {
                messages.push(message_bytes(parsed.message, parsed.tag));
            }
            // Older than this stream's newest: nothing more to collect for
            // it, but the other stream may still be unseen.
            Some(_) => {}
        }
    }
    let points = found.map(|slot| {
        slot.map(|(since, mut messages)| {
            messages.reverse();
            StreamResume {
                since,
                written: messages.concat(),
            }
        })
    });
    let [stdout, stderr] = points;
    Ok(match (stdout, stderr) {
        (None, None) => None,
        (Some(stdout), None) => Some(ResumePoint {
            stderr: StreamResume {
                since: stdout.since,
                written: Vec::new(),
            },
            stdout,
        }),
        (None, Some(stderr)) => Some(ResumePoint {
            stdout: StreamResume {
                since: stderr.since,
                written: Vec::new(),
            },
            stderr,
        }),
        (Some(stdout), Some(stderr)) => Some(ResumePoint { stdout, stderr }),
    })
}

/// What a line contributed to its stream's output.
fn message_bytes(message: &[u8], tag: Tag) -> Vec<u8> {
    let mut bytes = message.to_vec();
    if tag == Tag::Full {
        bytes.push(b'\n');
    }
    bytes
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::logs::Timestamp;

    const T1: &str = "2024-05-06T07:08:09.000000001Z";
    const T2: &str = "2024-05-06T07:08:09.000000002Z";

    fn nanos(t: &str) -> i128 {
        Timestamp::parse(t.as_bytes()).unwrap().unix_nanos()
    }

    fn temp_file(content: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "dockshim-resume-{}-{:?}.log",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn missing_or_empty_files_follow_from_the_beginning() {
        assert_eq!(
            find_resume_point(Path::new("/nonexistent/dockshim/0.log")).unwrap(),
            None
        );
        let path = temp_file(b"");
        assert_eq!(find_resume_point(&path).unwrap(), None);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn each_stream_resumes_from_its_newest_timestamp_with_what_it_wrote_then() {
        let content = format!(
            "{T1} stdout F old\n{T1} stderr F e1\n{T2} stdout F a\n{T1} stderr P e2\n\
             {T2} stdout P b\n{T2} stdout F c\n"
        );
        let path = temp_file(content.as_bytes());
        let point = find_resume_point(&path).unwrap().unwrap();
        assert_eq!(
            point,
            ResumePoint {
                stdout: StreamResume {
                    since: nanos(T2),
                    written: b"a\nbc\n".to_vec()
                },
                stderr: StreamResume {
                    since: nanos(T1),
                    written: b"e1\ne2".to_vec()
                },
            }
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let content = format!("{T1} stdout F whole\n{T2} stdout F to");
        let path = temp_file(content.as_bytes());
        let point = find_resume_point(&path).unwrap().unwrap();
        assert_eq!(point.stdout.since, nanos(T1));
        assert_eq!(point.stderr.since, nanos(T1));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{T1} stdout F whole\n")
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_cri_lines_is_corrupt() {
        let path = temp_file(b"{\"log\":\"json-file\"}\n");
        let err = find_resume_point(&path).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn only_the_bounded_window_is_read() {
        let mut content = format!("{T1} stderr F far back\n");
        let filler = format!("{T2} stdout F {}\n", "x".repeat(1000));
        while (content.len() as u64) < 2 * MAX_RESUME_SCAN {
            content.push_str(&filler);
        }
        let path = temp_file(content.as_bytes());
        let point = find_resume_point(&path).unwrap().unwrap();
        assert_eq!(point.stdout.since, nanos(T2));
        assert_eq!(point.stderr.since, nanos(T2));
        assert!(point.stdout.written.len() as u64 <= MAX_RESUME_SCAN);
        std::fs::remove_file(path).unwrap();
    }
}
