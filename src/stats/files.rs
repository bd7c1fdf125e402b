//! Bounded reads of cgroup and proc files and the two shapes most of them
//! share: a single number, and `key value` lines.
//!
//! Every read names its limit; a longer file is refused, never truncated
//! silently, and odd content becomes a [`StatsError::Parse`] naming the
//! file. Keyed files are searched per key, so keys a newer kernel adds, or
//! malformed lines other than the one asked for, do not matter.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::StatsError;

/// A one-number file (`cpuacct.usage`, `memory.max`, `pids.current`): a
/// 20-digit number and a newline, with room to spare.
pub const SINGLE_VALUE_MAX: u64 = 64;
/// A keyed file (`memory.stat`, `cpu.stat`, `*.pressure`): v2's
/// `memory.stat` is about 2 KiB on 6.x kernels.
pub const KEYED_FILE_MAX: u64 = 64 * 1024;

/// The buffer a read starts with: every cgroup file the readers use but
/// `memory.stat`, `cgroup.procs` and `mountinfo` fits, so one `read`
/// fetches it and a second sees the end.
const FIRST_READ_BYTES: usize = 4096;

/// Reads `path` whole, refusing files longer than `limit` bytes.
///
/// Kernel files report no size, and the kernel formats a seq file anew
/// for every `read` that starts past what it already produced, so this
/// reads into a buffer that grows (up to one byte past `limit`, which
/// tells a file of exactly `limit` bytes from a longer one) rather than
/// probing with small reads.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, StatsError> {
    let read_error = |source| StatsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let most = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut buf = vec![0; most.min(FIRST_READ_BYTES)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len == most {
                return Err(StatsError::TooLarge {
                    path: path.to_owned(),
                    limit,
                });
            }
            buf.resize(len.saturating_mul(2).min(most), 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(read_error(err)),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| parse_error(path, "not UTF-8"))
}

/// Reads a file holding one unsigned number.
pub fn read_u64(path: &Path) -> Result<u64, StatsError> {
    let text = read_bounded(path, SINGLE_VALUE_MAX)?;
    parse_u64(path, text.trim())
}

/// Reads a v2 limit file: a number, or `max` for none.
pub fn read_limit(path: &Path) -> Result<Option<u64>, StatsError> {
    let text = read_bounded(path, SINGLE_VALUE_MAX)?;
    match text.trim() {
        "max" => Ok(None),
        value => parse_u64(path, value).map(Some),
    }
}

/// Parses a decimal unsigned number found in `path`.
pub fn parse_u64(path: &Path, value: &str) -> Result<u64, StatsError> {
    value
        .parse()
        .map_err(|_| parse_error(path, format!("{value:?} is not an unsigned number")))
}

pub fn parse_error(path: &Path, reason: impl Into<String>) -> StatsError {
    StatsError::Parse {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A file of `key value` lines (`memory.stat`, `cpu.stat`).
#[derive(Debug)]
pub struct KeyedFile {
    path: PathBuf,
    text: String,
}

impl KeyedFile {
    pub fn read(path: &Path) -> Result<KeyedFile, StatsError> {
        Ok(KeyedFile {
            text: read_bounded(path, KEYED_FILE_MAX)?,
            path: path.to_owned(),
        })
    }

    /// The value of `key`, or `None` when the kernel does not write it.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StatsError> {
        for line in self.text.lines() {
            let mut fields = line.split_ascii_whitespace();
            if fields.next() != Some(key) {
                continue;
            }
            return match (fields.next(), fields.next()) {
                (Some(value), None) => parse_u64(&self.path, value).map(Some),
                _ => Err(parse_error(
                    &self.path,
                    format!("line {line:?} is not \"{key} <number>\""),
                )),
            };
        }
        Ok(None)
    }

    /// The value of `key`, which this file always has.
    pub fn require(&self, key: &str) -> Result<u64, StatsError> {
        self.require_first_of(&[key])
    }

    /// The first of `keys` present, one of which this file always has.
    pub fn require_first_of(&self, keys: &[&str]) -> Result<u64, StatsError> {
        self.first_of(keys)?.ok_or_else(|| {
            let wanted = keys.join(" or ");
            parse_error(&self.path, format!("no {wanted} line"))
        })
    }

    /// The first of `keys` present: v1's `total_*` keys cover the whole
    /// subtree, the plain ones only the cgroup's own tasks.
    pub fn first_of(&self, keys: &[&str]) -> Result<Option<u64>, StatsError> {
        for key in keys {
            if let Some(value) = self.get(key)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    #[cfg(test)]
    pub fn from_text(path: &str, text: &str) -> KeyedFile {
        KeyedFile {
            path: path.into(),
            text: text.to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_file_over_its_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pids.current");
        fs::write(&path, "1".repeat(SINGLE_VALUE_MAX as usize + 1)).unwrap();
        let err = read_u64(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StatsError::TooLarge {
                    limit: SINGLE_VALUE_MAX,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_file_larger_than_the_first_read_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.stat");
        let text: String = (0..1000).map(|i| format!("key_{i} {i}\n")).collect();
        assert!(text.len() > FIRST_READ_BYTES * 2);
        fs::write(&path, &text).unwrap();
        assert_eq!(read_bounded(&path, KEYED_FILE_MAX).unwrap(), text);
        let limit = u64::try_from(text.len() - 1).unwrap();
        assert!(matches!(
            read_bounded(&path, limit),
            Err(StatsError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_file_of_exactly_its_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        fs::write(&path, "7".repeat(SINGLE_VALUE_MAX as usize)).unwrap();
        assert_eq!(read_bounded(&path, SINGLE_VALUE_MAX).unwrap().len(), 64);
    }

    #[test]
    fn odd_single_values_are_parse_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.current");
        for odd in ["", "-1\n", "12 34\n", "0x10\n", "max\n", "\u{0}\n"] {
            fs::write(&path, odd).unwrap();
            let err = read_u64(&path).unwrap_err();
            assert!(matches!(err, StatsError::Parse { .. }), "{odd:?}: {err}");
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_u64(&path), Err(StatsError::Parse { .. })));
    }

    #[test]
    fn limits_read_max_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.max");
        fs::write(&path, "max\n").unwrap();
        assert_eq!(read_limit(&path).unwrap(), None);
        fs::write(&path, "104857600\n").unwrap();
        assert_eq!(read_limit(&path).unwrap(), Some(104_857_600));
    }

    #[test]
    fn keyed_files_find_their_key_and_ignore_other_lines() {
        let file = KeyedFile::from_text(
            "memory.stat",
            "anon 4096\nnew_kernel_key some words\n\ninactive_file  8192\n",
        );
        assert_eq!(file.get("anon").unwrap(), Some(4096));
        assert_eq!(file.get("inactive_file").unwrap(), Some(8192));
        assert_eq!(file.get("missing").unwrap(), None);
        assert_eq!(file.first_of(&["total_rss", "anon"]).unwrap(), Some(4096));
        assert!(file.require("missing").is_err());
    }

    #[test]
    fn a_malformed_line_for_the_asked_key_is_a_parse_error() {
        let file = KeyedFile::from_text("cpu.stat", "usage_usec\nuser_usec 1 2\n");
        assert!(matches!(
            file.get("usage_usec"),
            Err(StatsError::Parse { .. })
        ));
        assert!(matches!(
            file.get("user_usec"),
            Err(StatsError::Parse { .. })
        ));
    }
}
