//! The `log` backend: one line per record on standard error,
//! `LEVEL [thread] target: message`.
//!
//! Under systemd, when standard error is the journal stream named by
//! `JOURNAL_STREAM`, each line starts with its syslog priority (`<3>` to
//! `<7>`) and carries no timestamp, since journald records both itself.
//! Otherwise each line starts with an RFC 3339 UTC timestamp. A failed write
//! is dropped: logging must never take the process down, and there is nowhere
//! else to report it.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

#[derive(Debug)]
struct Logger {
    journald: bool,
}

static PLAIN: Logger = Logger { journald: false };
static JOURNALD: Logger = Logger { journald: true };

/// Installs the logger for the whole process; fails if one is installed.
pub fn init(level: LevelFilter) -> Result<(), SetLoggerError> {
    log::set_logger(if stderr_is_journal() {
        &JOURNALD
    } else {
        &PLAIN
    })?;
    log::set_max_level(level);
    Ok(())
}

/// `JOURNAL_STREAM` is `DEVICE:INODE` of the journal stream; it is inherited
/// by children whose stderr may point elsewhere, so compare with stderr.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(io::stderr()) else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let thread = std::thread::current();
        let time = if self.journald {
            None
        } else {
            Some(SystemTime::now())
        };
        let line = format_line(
            time,
            record.level(),
            thread.name(),
            record.target(),
            record.args(),
        );
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = io::stderr().lock().flush();
    }
}

/// One record as a line ending in `\n`: with `time`, an RFC 3339 UTC prefix;
/// without, the journald priority prefix.
fn format_line(
    time: Option<SystemTime>,
    level: Level,
    thread: Option<&str>,
    target: &str,
    message: &fmt::Arguments<'_>,
) -> String {
    let mut line = String::with_capacity(128);
    match time {
        Some(time) => push_rfc3339(&mut line, time),
        None => line.push_str(journald_priority(level)),
    }
    // Writing into a String cannot fail, only a Display impl could, and then
    // the partial line is still worth printing.
    let _ = write!(
        line,
        "{level} [{}] {target}: ",
        thread.unwrap_or("<unnamed>")
    );
    let _ = write!(OneLine(&mut line), "{message}");
    line.push('\n');
    line
}

/// syslog priorities: err, warning, info, debug.
fn journald_priority(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

/// Escapes line breaks so a record stays one line (and one journal entry).
struct OneLine<'a>(&'a mut String);

impl fmt::Write for OneLine<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ ` in UTC; times before 1970 print as the epoch.
fn push_rfc3339(out: &mut String, time: SystemTime) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, rem / 60 % 60, rem % 60);
    let millis = since_epoch.subsec_millis();
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z "
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date, after Howard
/// Hinnant's `civil_from_days`, restricted to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn plain_lines_start_with_an_rfc3339_utc_timestamp() {
        let line = format_line(
            Some(at(1_700_000_000, 42)),
            Level::Info,
            Some("main"),
            "dockshim::server",
            &format_args!("listening on {}", "/run/dockshim.sock"),
        );
        assert_eq!(
            line,
            "2023-11-14T22:13:20.042Z INFO [main] dockshim::server: listening on /run/dockshim.sock\n"
        );
    }

    #[test]
    fn journald_lines_carry_the_priority_and_no_timestamp() {
        let cases = [
            (Level::Error, "<3>ERROR"),
            (Level::Warn, "<4>WARN"),
            (Level::Info, "<6>INFO"),
            (Level::Debug, "<7>DEBUG"),
            (Level::Trace, "<7>TRACE"),
        ];
        for (level, prefix) in cases {
            let line = format_line(None, level, Some("conn-3"), "t", &format_args!("m"));
            assert_eq!(line, format!("{prefix} [conn-3] t: m\n"));
        }
    }

    #[test]
    fn a_record_never_spans_two_lines() {
        let line = format_line(None, Level::Warn, None, "t", &format_args!("a\nb\r\nc"));
        assert_eq!(line, "<4>WARN [<unnamed>] t: a\\nb\\r\\nc\n");
    }

    #[test]
    fn dates_are_correct_across_leap_days_and_centuries() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z "),
            (951_782_400, "2000-02-29T00:00:00.000Z "),
            (951_868_799, "2000-02-29T23:59:59.000Z "),
            (1_709_164_800, "2024-02-29T00:00:00.000Z "),
            (4_107_542_400, "2100-03-01T00:00:00.000Z "),
            (253_402_300_799, "9999-12-31T23:59:59.000Z "),
        ];
        for (secs, expected) in cases {
            let mut out = String::new();
            push_rfc3339(&mut out, at(secs, 0));
            assert_eq!(out, expected, "{secs}");
        }
    }

    #[test]
    fn times_before_the_epoch_print_as_the_epoch() {
        let mut out = String::new();
        push_rfc3339(&mut out, UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(out, "1970-01-01T00:00:00.000Z ");
    }
}
