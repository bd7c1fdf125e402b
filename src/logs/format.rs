//! The CRI log format and the translation of dockerd's timestamped log
//! stream into it. Pure: bytes in, bytes out, no I/O.
//!
//! A CRI log line is `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <message>\n`.
//! `F` ends a line of the container's output; `P` lines are pieces of one
//! line, and the kubelet joins every `P` up to the next `F` of the same
//! stream.
//!
//! dockerd's logs body (`timestamps=1`) is one message per line of output,
//! each prefixed by the time the container wrote it and a space. Without a
//! TTY each message is one 8-byte-framed frame carrying its stream; with a
//! TTY the body is raw and every message is stdout. dockerd cuts lines
//! longer than 16 KiB into several messages, all but the last without a
//! trailing newline. Decisions:
//! - dockerd's timestamp is written as it is (RFC3339 with nine fraction
//!   digits): it is when the container wrote the output, not when it was
//!   read.
//! - A message ending in a newline gives `F` lines; a framed message that
//!   ends without one (a cut long line, or output the container left
//!   unterminated when it stopped) gives `P` lines, so the pieces join up
//!   with whatever message continues them. A stream that ends mid-line
//!   leaves its last line as `P`: the container never finished that line,
//!   and a line the kubelet shows without a newline says so.
//! - A message longer than [`MAX_LINE_SIZE`] is written as `P` chunks of
//!   that size followed by the rest; nothing is buffered beyond one chunk
//!   per stream, whatever the container writes.
//! - A raw (TTY) body has no frame boundaries, so a cut long line there
//!   shows dockerd's next timestamp inside the text; only a newline ends a
//!   TTY message.
//!
//! Resuming after a restart: [`ResumePoint`] says, per stream, the newest
//! timestamp already in the file and the output already written with that
//! timestamp; messages older than it are dropped and messages with that
//! timestamp are compared byte by byte with what was written, so replayed
//! output is neither repeated nor lost.

use super::LogError;
use crate::docker::{FeedError, Output, OutputDemux};

/// Longest message in one CRI log line; longer lines become `P` chunks.
/// containerd splits at the same 16 KiB (its `max_container_log_line_size`
/// default), and dockerd cuts lines at 16 KiB too.
pub const MAX_LINE_SIZE: usize = 16 * 1024;

/// Longest timestamp accepted: `2006-01-02T15:04:05.999999999+07:00` is 35.
const MAX_TIMESTAMP_LEN: usize = 40;

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriStream {
    Stdout,
    Stderr,
}

impl CriStream {
    pub fn as_str(self) -> &'static str {
        match self {
            CriStream::Stdout => "stdout",
            CriStream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            CriStream::Stdout => 0,
            CriStream::Stderr => 1,
        }
    }
}

/// `F`: the line is complete; `P`: more of it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Full,
    Partial,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Full => "F",
            Tag::Partial => "P",
        }
    }
}

/// An RFC3339 timestamp as dockerd wrote it, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    text: [u8; MAX_TIMESTAMP_LEN],
    len: usize,
    unix_nanos: i128,
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse(text: &[u8]) -> Option<Timestamp> {
        if text.len() > MAX_TIMESTAMP_LEN {
            return None;
        }
        let unix_nanos = parse_rfc3339(text)?;
        let mut stored = [0; MAX_TIMESTAMP_LEN];
        stored[..text.len()].copy_from_slice(text);
        Some(Timestamp {
            text: stored,
            len: text.len(),
            unix_nanos,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.unix_nanos
    }
}

fn digits(text: &[u8]) -> Option<i128> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        text.iter()
            .fold(0i128, |acc, d| acc * 10 + i128::from(d - b'0')),
    )
}

/// Nanoseconds since the epoch of an RFC3339 time, or `None`. Field ranges
/// are checked loosely (a day 31 in any month is accepted): the value only
/// orders lines, and dockerd writes valid times.
fn parse_rfc3339(text: &[u8]) -> Option<i128> {
    if text.len() < 20
        || text[4] != b'-'
        || text[7] != b'-'
        || text[10] != b'T'
        || text[13] != b':'
        || text[16] != b':'
    {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    let hour = digits(&text[11..13])?;
    let minute = digits(&text[14..16])?;
    let second = digits(&text[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i128;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = digits(&fraction[..len])? * 10i128.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    let offset_seconds = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = digits(&[*h1, *h2])? * 60 + digits(&[*m1, *m2])?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Appends one CRI log line to `out`.
pub fn write_cri_line(
    out: &mut Vec<u8>,
    timestamp: &[u8],
    stream: CriStream,
    tag: Tag,
    message: &[u8],
) {
    out.extend_from_slice(timestamp);
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message);
    out.push(b'\n');
}

/// One parsed CRI log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub timestamp: Timestamp,
    pub stream: CriStream,
    pub tag: Tag,
    pub message: &'a [u8],
}

/// Parses one line (without its newline) of a CRI log file.
pub fn parse_cri_line(line: &[u8]) -> Option<CriLine<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let timestamp = Timestamp::parse(fields.next()?)?;
    let stream = match fields.next()? {
        b"stdout" => CriStream::Stdout,
        b"stderr" => CriStream::Stderr,
        _ => return None,
    };
    let tag = match fields.next()? {
        b"F" => Tag::Full,
        b"P" => Tag::Partial,
        _ => return None,
    };
    Some(CriLine {
        timestamp,
        stream,
        tag,
        message: fields.next().unwrap_or_default(),
    })
}

/// Where a resumed follow picks up, per stream: messages older than
/// `since` are already in the file, and `written` is what was written of
/// the messages stamped exactly `since` (each `F` line's message plus a
/// newline, each `P` line's message as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamResume {
    pub since: i128,
    pub written: Vec<u8>,
}

/// Where a resumed follow picks up; see [`StreamResume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub stdout: StreamResume,
    pub stderr: StreamResume,
}

impl ResumePoint {
    /// The time to ask dockerd for messages from (inclusive): the older of
    /// the two streams' points.
    pub fn since(&self) -> i128 {
        self.stdout.since.min(self.stderr.since)
    }
}

#[derive(Debug, Clone, Copy)]
enum MessageMode {
    /// Already in the file.
    Drop,
    /// Stamped with the resume time: compare with what was written.
    Compare,
    Write,
}

#[derive(Debug)]
enum AssemblerState {
    /// Reading a message's timestamp, up to the space after it.
    Timestamp {
        text: [u8; MAX_TIMESTAMP_LEN],
        len: usize,
    },
    Message {
        timestamp: Timestamp,
        mode: MessageMode,
    },
}

/// Turns one stream's messages into CRI lines.
#[derive(Debug)]
struct StreamAssembler {
    stream: CriStream,
    state: AssemblerState,
    /// Message bytes not yet written: less than [`MAX_LINE_SIZE`].
    pending: Vec<u8>,
    resume: Option<StreamResume>,
    /// Bytes of `resume.written` matched so far.
    matched: usize,
}

const TIMESTAMP_START: AssemblerState = AssemblerState::Timestamp {
    text: [0; MAX_TIMESTAMP_LEN],
    len: 0,
};

impl StreamAssembler {
    fn new(stream: CriStream, resume: Option<StreamResume>) -> StreamAssembler {
        StreamAssembler {
            stream,
            state: TIMESTAMP_START,
            pending: Vec::with_capacity(MAX_LINE_SIZE),
            resume,
            matched: 0,
        }
    }

    /// Consumes message bytes. With `framed`, a newline does not start a
    /// new message (the frame does); otherwise it does.
    fn feed(&mut self, mut input: &[u8], framed: bool, out: &mut Vec<u8>) -> Result<(), LogError> {
        while !input.is_empty() {
            match &mut self.state {
                AssemblerState::Timestamp { text, len } => {
                    let Some(space) = input.iter().position(|&b| b == b' ') else {
                        append_timestamp(text, len, input)?;
                        return Ok(());
                    };
                    append_timestamp(text, len, &input[..space])?;
                    let timestamp = Timestamp::parse(&text[..*len]).ok_or_else(|| {
                        LogError::Format(format!(
                            "bad timestamp {:?} in dockerd's log stream",
                            String::from_utf8_lossy(&text[..*len])
                        ))
                    })?;
                    input = &input[space + 1..];
                    let mode = self.mode_for(&timestamp);
                    self.state = AssemblerState::Message { timestamp, mode };
                }
                AssemblerState::Message { timestamp, mode } => {
                    let timestamp = *timestamp;
                    let newline = input.iter().position(|&b| b == b'\n');
                    let end = newline.map_or(input.len(), |at| at + 1);
                    let piece = &input[..end];
                    input = &input[end..];
                    let piece = match *mode {
                        MessageMode::Drop => &[][..],
                        MessageMode::Compare => {
                            let rest = self.skip_written(piece);
                            if !rest.is_empty() {
                                self.state = AssemblerState::Message {
                                    timestamp,
                                    mode: MessageMode::Write,
                                };
                            }
                            rest
                        }
                        MessageMode::Write => piece,
                    };
                    self.write_message(&timestamp, piece, out);
                    if newline.is_some() && !framed {
                        self.state = TIMESTAMP_START;
                    }
                }
            }
        }
        Ok(())
    }

    /// The message ended (a frame boundary): what is pending is part of a
    /// line that a later message continues.
    fn end_message(&mut self, out: &mut Vec<u8>) {
        if let AssemblerState::Message { timestamp, .. } = self.state {
            if !self.pending.is_empty() {
                write_cri_line(
                    out,
                    timestamp.as_bytes(),
                    self.stream,
                    Tag::Partial,
                    &self.pending,
                );
                self.pending.clear();
            }
        }
        self.state = TIMESTAMP_START;
    }

    fn mode_for(&mut self, timestamp: &Timestamp) -> MessageMode {
        let Some(resume) = &self.resume else {
            return MessageMode::Write;
        };
        let nanos = timestamp.unix_nanos();
        if nanos < resume.since {
            MessageMode::Drop
        } else if nanos == resume.since && self.matched < resume.written.len() {
            MessageMode::Compare
        } else {
            // Newer than anything written, or everything written at the
            // resume time was seen again: nothing more to skip.
            self.resume = None;
            MessageMode::Write
        }
    }

    /// Drops the prefix of `piece` that matches what was written before the
    /// restart; returns the rest, which was never written.
    fn skip_written<'a>(&mut self, piece: &'a [u8]) -> &'a [u8] {
        let Some(resume) = &self.resume else {
            return piece;
        };
        let expected = &resume.written[self.matched..];
        let same = piece
            .iter()
            .zip(expected)
            .take_while(|(a, b)| a == b)
            .count();
        self.matched += same;
        let diverged = same < piece.len();
        if diverged || self.matched == resume.written.len() {
            self.resume = None;
        }
        &piece[same..]
    }

    /// Writes what of `piece` completes a line or fills a chunk; keeps the
    /// rest pending.
    fn write_message(&mut self, timestamp: &Timestamp, mut piece: &[u8], out: &mut Vec<u8>) {
        while !piece.is_empty() {
            let room = MAX_LINE_SIZE - self.pending.len();
            let newline = piece.iter().take(room + 1).position(|&b| b == b'\n');
            match newline {
                Some(at) => {
                    let line = &piece[..at];
                    if self.pending.is_empty() {
                        write_cri_line(out, timestamp.as_bytes(), self.stream, Tag::Full, line);
                    } else {
                        self.pending.extend_from_slice(line);
                        write_cri_line(
                            out,
                            timestamp.as_bytes(),
                            self.stream,
                            Tag::Full,
                            &self.pending,
                        );
                        self.pending.clear();
                    }
                    piece = &piece[at + 1..];
                }
                None if piece.len() >= room => {
                    self.pending.extend_from_slice(&piece[..room]);
                    write_cri_line(
                        out,
                        timestamp.as_bytes(),
                        self.stream,
                        Tag::Partial,
                        &self.pending,
                    );
                    self.pending.clear();
                    piece = &piece[room..];
                }
                None => {
                    self.pending.extend_from_slice(piece);
                    piece = &[];
                }
            }
        }
    }
}

fn append_timestamp(
    text: &mut [u8; MAX_TIMESTAMP_LEN],
    len: &mut usize,
    more: &[u8],
) -> Result<(), LogError> {
    let end = *len + more.len();
    if end > MAX_TIMESTAMP_LEN {
        return Err(LogError::Format(format!(
            "no timestamp within {MAX_TIMESTAMP_LEN} bytes of a message in dockerd's log stream"
        )));
    }
    text[*len..end].copy_from_slice(more);
    *len = end;
    Ok(())
}

/// Translates a container's dockerd log body (as the logs endpoint sends it
/// with `timestamps=1`) into CRI log lines.
#[derive(Debug)]
pub struct CriEncoder {
    /// `None` for a TTY container's raw body.
    demux: Option<OutputDemux>,
    streams: [StreamAssembler; 2],
}

impl CriEncoder {
    /// An encoder for a container with or without a TTY, optionally
    /// resuming from what a file already holds.
    pub fn new(tty: bool, resume: Option<ResumePoint>) -> CriEncoder {
        let (stdout, stderr) = match resume {
            Some(point) => (Some(point.stdout), Some(point.stderr)),
            None => (None, None),
        };
        CriEncoder {
            demux: (!tty).then(OutputDemux::default),
            streams: [
                StreamAssembler::new(CriStream::Stdout, stdout),
                StreamAssembler::new(CriStream::Stderr, stderr),
            ],
        }
    }

    /// Consumes body bytes in any split, appending complete CRI lines to
    /// `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), LogError> {
        let Some(demux) = &mut self.demux else {
            return self.streams[CriStream::Stdout.index()].feed(input, false, out);
        };
        let streams = &mut self.streams;
        let fed = demux.feed(input, |output, data, ended| {
            let stream = match output {
                Output::Stdout => CriStream::Stdout,
                Output::Stderr => CriStream::Stderr,
            };
            let assembler = &mut streams[stream.index()];
            assembler.feed(data, true, out)?;
            if ended {
                assembler.end_message(out);
            }
            Ok(())
        });
        fed.map_err(|err| match err {
            FeedError::Stream(err) => LogError::Docker(err),
            FeedError::Sink(err) => err,
        })
    }

    /// The body ended or following stops: writes what is pending as `P`
    /// lines (see the module notes).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        for assembler in &mut self.streams {
            assembler.end_message(out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const T1: &str = "2024-05-06T07:08:09.000000001Z";
    const T2: &str = "2024-05-06T07:08:09.000000002Z";
    const T3: &str = "2024-05-06T07:08:10.500000000Z";

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn message(stream: u8, timestamp: &str, text: &str) -> Vec<u8> {
        frame(stream, format!("{timestamp} {text}").as_bytes())
    }

    /// Encodes `body` fed whole, split at every offset and byte by byte,
    /// asserting all agree.
    fn encode(tty: bool, resume: Option<ResumePoint>, body: &[u8]) -> String {
        let run = |pieces: &[&[u8]]| {
            let mut encoder = CriEncoder::new(tty, resume.clone());
            let mut out = Vec::new();
            for piece in pieces {
                encoder.feed(piece, &mut out).unwrap();
            }
            encoder.finish(&mut out);
            String::from_utf8(out).unwrap()
        };
        let whole = run(&[body]);
        for at in 0..=body.len().min(300) {
            let (a, b) = body.split_at(at);
            assert_eq!(run(&[a, b]), whole, "split at {at}");
        }
        if body.len() < 1000 {
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            assert_eq!(run(&bytes), whole, "byte by byte");
        }
        whole
    }

    #[test]
    fn framed_messages_become_full_lines_per_stream() {
        let mut body = message(1, T1, "out\n");
        body.extend(message(2, T2, "err\n"));
        body.extend(message(1, T3, "partial done\n"));
        assert_eq!(
            encode(false, None, &body),
            format!("{T1} stdout F out\n{T2} stderr F err\n{T3} stdout F partial done\n")
        );
    }

    #[test]
    fn cut_messages_become_partial_lines_that_join_up() {
        let mut body = message(1, T1, "first half ");
        body.extend(message(2, T1, "other stream\n"));
        body.extend(message(1, T2, "second half\n"));
        assert_eq!(
            encode(false, None, &body),
            format!(
                "{T1} stdout P first half \n{T1} stderr F other stream\n\
                 {T2} stdout F second half\n"
            )
        );
    }

    #[test]
    fn output_left_unterminated_at_the_end_stays_partial() {
        let body = message(1, T1, "no newline");
        assert_eq!(
            encode(false, None, &body),
            format!("{T1} stdout P no newline\n")
        );
        assert_eq!(
            encode(true, None, format!("{T1} tty no newline").as_bytes()),
            format!("{T1} stdout P tty no newline\n")
        );
    }

    #[test]
    fn long_lines_are_cut_into_partial_chunks_ending_full() {
        let line: String = (0..100 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for tty in [false, true] {
            let text = format!("{T1} {line}\n");
            let body = if tty {
                text.into_bytes()
            } else {
                frame(1, text.as_bytes())
            };
            let out = encode(tty, None, &body);
            let lines: Vec<CriLine<'_>> = out
                .lines()
                .map(|l| parse_cri_line(l.as_bytes()).unwrap())
                .collect();
            assert_eq!(lines.len(), 7);
            assert!(lines[..6].iter().all(|l| l.tag == Tag::Partial));
            assert!(lines[..6].iter().all(|l| l.message.len() == MAX_LINE_SIZE));
            assert_eq!(lines[6].tag, Tag::Full);
            let joined: Vec<u8> = lines.iter().flat_map(|l| l.message.to_vec()).collect();
            assert_eq!(joined, line.as_bytes());
        }
    }

    #[test]
    fn tty_body_is_stdout_and_newlines_start_messages() {
        let body = format!("{T1} one\r\n{T2} two\n");
        assert_eq!(
            encode(true, None, body.as_bytes()),
            format!("{T1} stdout F one\r\n{T2} stdout F two\n")
        );
    }

    #[test]
    fn empty_lines_are_full_lines() {
        assert_eq!(
            encode(false, None, &message(2, T1, "\n")),
            format!("{T1} stderr F \n")
        );
    }

    #[test]
    fn garbage_instead_of_a_timestamp_is_an_error() {
        let mut encoder = CriEncoder::new(false, None);
        let err = encoder
            .feed(&frame(1, b"not-a-time hello\n"), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("bad timestamp"), "{err}");
        let mut encoder = CriEncoder::new(true, None);
        let err = encoder.feed(&[b'x'; 100], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no timestamp"), "{err}");
    }

    #[test]
    fn daemon_error_frames_end_the_stream_with_their_message() {
        let mut encoder = CriEncoder::new(false, None);
        let err = encoder
            .feed(&frame(3, b"log file gone"), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("log file gone"), "{err}");
    }

    #[test]
    fn timestamps_parse_to_unix_nanoseconds() {
        let parse = |t: &str| Timestamp::parse(t.as_bytes()).map(|t| t.unix_nanos());
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500_000_000)
        );
        assert_eq!(
            parse("2024-02-29T14:00:00.5+02:00"),
            Some(1_709_208_000_500_000_000)
        );
        assert_eq!(
            parse(T1),
            Some(1_714_979_289_000_000_001),
            "date -d 2024-05-06T07:08:09Z +%s is 1714979289"
        );
        for bad in [
            "",
            "2024-05-06 07:08:09Z",
            "2024-05-06T07:08:09",
            "2024-13-06T07:08:09Z",
            "2024-05-06T07:08:09.Z",
            "2024-05-06T07:08:09.1234567890Z",
            "2024-05-06T07:08:09+0200",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn cri_lines_round_trip() {
        let mut out = Vec::new();
        write_cri_line(
            &mut out,
            T1.as_bytes(),
            CriStream::Stderr,
            Tag::Partial,
            b"a b",
        );
        assert_eq!(out, format!("{T1} stderr P a b\n").as_bytes());
        let line = parse_cri_line(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            (line.stream, line.tag, line.message),
            (CriStream::Stderr, Tag::Partial, &b"a b"[..])
        );
        assert_eq!(parse_cri_line(b"x stdout F y"), None);
        assert_eq!(parse_cri_line(format!("{T1} stdin F y").as_bytes()), None);
    }

    fn nanos(t: &str) -> i128 {
        Timestamp::parse(t.as_bytes()).unwrap().unix_nanos()
    }

    #[test]
    fn resume_drops_older_messages_and_what_was_written_at_the_same_time() {
        // The file holds "a" and "b" at T2 on stdout and the first 3 bytes of
        // a cut line at T2; "c" at T1 on stderr.
        let resume = ResumePoint {
            stdout: StreamResume {
                since: nanos(T2),
                written: b"a\nb\nxyz".to_vec(),
            },
            stderr: StreamResume {
                since: nanos(T1),
                written: b"c\n".to_vec(),
            },
        };
        let mut body = message(1, T1, "old\n");
        body.extend(message(1, T2, "a\n"));
        body.extend(message(2, T1, "c\n"));
        body.extend(message(1, T2, "b\n"));
        body.extend(message(1, T2, "xyz and the rest\n"));
        body.extend(message(2, T2, "d\n"));
        body.extend(message(1, T2, "same time, new\n"));
        body.extend(message(1, T3, "newer\n"));
        assert_eq!(
            encode(false, Some(resume.clone()), &body),
            format!(
                "{T2} stdout F  and the rest\n{T2} stderr F d\n\
                 {T2} stdout F same time, new\n{T3} stdout F newer\n"
            )
        );
        assert_eq!(resume.since(), nanos(T1));
    }
}
