//! Bounded reads of cgroup and proc files and the two shapes most of them
//! share: a single number, and `key value` lines.
//!
//! Every read names its limit; a longer file is refused, never truncated
//! silently, and odd content becomes a [`StatsError::Parse`] naming the
//! file. Keyed files are searched per key, so keys a newer kernel adds, or
//! malformed lines other than the one asked for, do not matter.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

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
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, StatsError> {
    let mut buf = Vec::new();
    open_whole(path, limit, &mut buf)?;
    String::from_utf8(buf).map_err(|_| parse_error(path, "not UTF-8"))
}

/// Opens `path` and reads it whole into `buf`, refusing files longer than
/// `limit` bytes; returns the open file.
fn open_whole(path: &Path, limit: u64, buf: &mut Vec<u8>) -> Result<File, StatsError> {
    let read_error = |source| StatsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    match read_whole(&file, limit, buf) {
        Ok(true) => Ok(file),
        Ok(false) => Err(too_large(path, limit)),
        Err(err) => Err(read_error(err)),
    }
}

/// Reads `file` from its start into `buf` (cleared first); `false` when it
/// is longer than `limit` bytes.
///
/// Kernel files report no size, and the kernel formats a seq file anew
/// for every `read` that starts past what it already produced, so this
/// reads into a buffer that grows (up to one byte past `limit`, which
/// tells a file of exactly `limit` bytes from a longer one) rather than
/// probing with small reads. It reads at explicit offsets from 0: a cgroup
/// or proc seq file read again from offset 0 is formatted afresh, so a
/// file kept open gives current figures on every reading.
fn read_whole(file: &File, limit: u64, buf: &mut Vec<u8>) -> io::Result<bool> {
    let most = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    buf.clear();
    buf.resize(FIRST_READ_BYTES.min(most), 0);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len == most {
                return Ok(false);
            }
            buf.resize(len.saturating_mul(2).min(most), 0);
        }
        // `len` counts bytes read, so it fits in a file offset.
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(len);
    Ok(true)
}

/// Open files a reading may read through and hand the files it opens to:
/// a subject's kept files (`kept::SubjectFiles`).
pub trait FileKeeper: fmt::Debug {
    /// The open file `dir/name`, if kept.
    fn get(&self, dir: &Path, name: &'static str) -> Option<&File>;
    /// Takes `file`, just opened as `dir/name`.
    fn keep(&mut self, dir: &Path, name: &'static str, file: File);
    /// Closes `dir/name`, if kept.
    fn close(&mut self, dir: &Path, name: &'static str);
}

/// Where one subject's readings read files: through the files its
/// [`FileKeeper`] keeps open when it has them, opening (and handing it)
/// the others; into one buffer reused for every file.
#[derive(Debug)]
pub struct Files<'a> {
    kept: Option<&'a mut dyn FileKeeper>,
    buf: &'a mut Vec<u8>,
}

impl<'a> Files<'a> {
    /// Reads that open and close every file.
    pub fn unkept(buf: &'a mut Vec<u8>) -> Files<'a> {
        Files { kept: None, buf }
    }

    pub(super) fn kept(kept: &'a mut dyn FileKeeper, buf: &'a mut Vec<u8>) -> Files<'a> {
        Files {
            kept: Some(kept),
            buf,
        }
    }

    /// The text of `dir/name`, refused past `limit` bytes.
    pub fn text(&mut self, dir: &Path, name: &'static str, limit: u64) -> Result<&str, StatsError> {
        self.read(dir, name, limit)?;
        std::str::from_utf8(self.buf).map_err(|_| parse_error(&dir.join(name), "not UTF-8"))
    }

    /// A file holding one unsigned number.
    pub fn u64(&mut self, dir: &Path, name: &'static str) -> Result<u64, StatsError> {
        let text = self.text(dir, name, SINGLE_VALUE_MAX)?;
        parse_u64(&dir.join(name), text.trim())
    }

    /// A v2 limit file: a number, or `max` for none.
    pub fn limit(&mut self, dir: &Path, name: &'static str) -> Result<Option<u64>, StatsError> {
        match self.text(dir, name, SINGLE_VALUE_MAX)?.trim() {
            "max" => Ok(None),
            value => parse_u64(&dir.join(name), value).map(Some),
        }
    }

    /// A file of `key value` lines.
    pub fn keyed<'s>(
        &'s mut self,
        dir: &'s Path,
        name: &'static str,
    ) -> Result<KeyedFile<'s>, StatsError> {
        let text = self.text(dir, name, KEYED_FILE_MAX)?;
        Ok(KeyedFile { dir, name, text })
    }

    /// Reads `dir/name` into the buffer. A kept file that fails to read
    /// (its cgroup or process is gone: `ENODEV`, `ENOENT`, `ESRCH`) is
    /// closed, and the file is then opened afresh as if it had never been
    /// kept, so a stale handle never answers for a new cgroup at the same
    /// path and a vanished one fails as an unkept read would.
    fn read(&mut self, dir: &Path, name: &'static str, limit: u64) -> Result<(), StatsError> {
        if let Some(kept) = self.kept.as_deref_mut() {
            if let Some(file) = kept.get(dir, name) {
                match read_whole(file, limit, self.buf) {
                    Ok(true) => return Ok(()),
                    Ok(false) => return Err(too_large(&dir.join(name), limit)),
                    Err(_) => kept.close(dir, name),
                }
            }
        }
        let file = open_whole(&dir.join(name), limit, self.buf)?;
        if let Some(kept) = self.kept.as_deref_mut() {
            kept.keep(dir, name, file);
        }
        Ok(())
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

fn too_large(path: &Path, limit: u64) -> StatsError {
    StatsError::TooLarge {
        path: path.to_owned(),
        limit,
    }
}

/// A file of `key value` lines (`memory.stat`, `cpu.stat`), as read into
/// a [`Files`] buffer.
#[derive(Debug)]
pub struct KeyedFile<'a> {
    dir: &'a Path,
    name: &'a str,
    text: &'a str,
}

impl KeyedFile<'_> {
    /// The value of `key`, or `None` when the kernel does not write it.
    pub fn get(&self, key: &str) -> Result<Option<u64>, StatsError> {
        for line in self.text.lines() {
            let mut fields = line.split_ascii_whitespace();
            if fields.next() != Some(key) {
                continue;
            }
            return match (fields.next(), fields.next()) {
                (Some(value), None) => parse_u64(&self.path(), value).map(Some),
                _ => Err(parse_error(
                    &self.path(),
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
            parse_error(&self.path(), format!("no {wanted} line"))
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

    /// Named only in errors, so joined only for them.
    fn path(&self) -> std::path::PathBuf {
        self.dir.join(self.name)
    }

    #[cfg(test)]
    pub fn from_text(name: &'static str, text: &'static str) -> KeyedFile<'static> {
        KeyedFile {
            dir: Path::new(""),
            name,
            text,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    fn read_u64(dir: &Path, name: &'static str) -> Result<u64, StatsError> {
        Files::unkept(&mut Vec::new()).u64(dir, name)
    }

    #[test]
    fn a_file_over_its_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pids.current");
        fs::write(&path, "1".repeat(SINGLE_VALUE_MAX as usize + 1)).unwrap();
        let err = read_u64(dir.path(), "pids.current").unwrap_err();
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
            let err = read_u64(dir.path(), "memory.current").unwrap_err();
            assert!(matches!(err, StatsError::Parse { .. }), "{odd:?}: {err}");
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_u64(dir.path(), "memory.current").unwrap_err();
        assert!(matches!(err, StatsError::Parse { .. }), "{err}");
    }

    #[test]
    fn limits_read_max_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.max");
        fs::write(&path, "max\n").unwrap();
        let mut buf = Vec::new();
        let mut files = Files::unkept(&mut buf);
        assert_eq!(files.limit(dir.path(), "memory.max").unwrap(), None);
        fs::write(&path, "104857600\n").unwrap();
        assert_eq!(
            files.limit(dir.path(), "memory.max").unwrap(),
            Some(104_857_600)
        );
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
