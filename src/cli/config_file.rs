//! The configuration file's syntax: a strict subset of TOML 1.0, read into
//! `key = value` entries with their line numbers, and the same values written
//! back out.
//!
//! The subset: `key = value` lines with bare keys (`A-Z a-z 0-9 _ -`), `#`
//! comments, blank lines, and four kinds of value: basic strings `"..."` with
//! TOML's escapes, literal strings `'...'`, decimal integers, `true` and
//! `false`, and arrays of strings, which may span lines. Everything else TOML
//! has — tables, dotted or quoted keys, multi-line strings, floats, dates,
//! inline tables, hexadecimal, octal, binary and `_`-separated integers — is
//! refused with a message naming it, never guessed at. So a file this module
//! accepts means the same to any TOML parser, and editors highlight it as
//! TOML. Duplicate keys are refused, as TOML requires.
//!
//! This module knows nothing of dockshim's keys or of what their values mean
//! (the parent module maps entries onto flags) and performs no I/O: [`parse`]
//! takes bytes, so it can be fed anything, and returns an entry list or the
//! first error with its line.

use std::collections::HashMap;
use std::fmt;

use super::error::ConfigFileError;

/// One `key = value` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line the key is on, counting from 1.
    pub line: usize,
    pub key: String,
    pub value: Value,
}

/// A value of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Boolean(bool),
    /// An array whose elements are all strings.
    Strings(Vec<String>),
}

impl Value {
    /// What kind of value this is, for messages such as "expected an
    /// integer, found a string".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Boolean(_) => "a boolean",
            Value::Strings(_) => "an array",
        }
    }
}

impl fmt::Display for Value {
    /// The value as it is written in a file; [`parse`] reads it back to the
    /// same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => write_basic_string(f, text),
            Value::Integer(number) => write!(f, "{number}"),
            Value::Boolean(on) => write!(f, "{on}"),
            Value::Strings(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_basic_string(f, item)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Quotes `text` as a basic string, escaping what TOML does not allow raw.
fn write_basic_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\u{8}' => f.write_str("\\b")?,
            '\t' => f.write_str("\\t")?,
            '\n' => f.write_str("\\n")?,
            '\u{c}' => f.write_str("\\f")?,
            '\r' => f.write_str("\\r")?,
            c if is_forbidden_control(c) => write!(f, "\\u{:04X}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Reads a whole file's text into its entries, in file order.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, ConfigFileError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let good = &bytes[..err.valid_up_to()];
        ConfigFileError::NotUtf8 {
            line: 1 + good.iter().filter(|&&b| b == b'\n').count(),
        }
    })?;
    let mut cursor = Cursor {
        rest: text,
        line: 1,
    };
    let mut entries = Vec::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    loop {
        cursor.skip_whitespace();
        let key = match cursor.peek() {
            None => return Ok(entries),
            Some('#') => {
                cursor.comment()?;
                None
            }
            Some('\n' | '\r') => None,
            Some('[') => return Err(ConfigFileError::Table { line: cursor.line }),
            Some('"' | '\'') => {
                return Err(cursor.error(
                    None,
                    "quoted keys are not supported: write the key bare, as in log-level = \"info\"",
                ))
            }
            Some(c) if is_bare_key_char(c) => {
                let entry = cursor.key_value()?;
                if let Some(&first_line) = first_lines.get(&entry.key) {
                    return Err(ConfigFileError::DuplicateKey {
                        line: entry.line,
                        key: entry.key,
                        first_line,
                    });
                }
                first_lines.insert(entry.key.clone(), entry.line);
                cursor.skip_whitespace();
                if cursor.peek() == Some('#') {
                    cursor.comment()?;
                }
                entries.push(entry);
                entries.last().map(|entry| entry.key.as_str())
            }
            Some(_) => return Err(cursor.error(None, "expected a key, as in log-level = \"info\"")),
        };
        cursor.end_of_line(key)?;
    }
}

/// The unread text and the line it starts on.
struct Cursor<'a> {
    rest: &'a str,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn error(&self, key: Option<&str>, reason: impl Into<String>) -> ConfigFileError {
        ConfigFileError::Syntax {
            line: self.line,
            key: key.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// Spaces and tabs, TOML's only whitespace within a line.
    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    /// A `#` comment up to, not including, the end of its line.
    fn comment(&mut self) -> Result<(), ConfigFileError> {
        let len = self.rest.find(['\n', '\r']).unwrap_or(self.rest.len());
        let (comment, rest) = self.rest.split_at(len);
        if comment.chars().any(is_forbidden_control) {
            return Err(self.error(None, "a comment holds a control character"));
        }
        self.rest = rest;
        Ok(())
    }

    /// The end of the file, or a line feed (optionally after a carriage
    /// return), which is consumed.
    fn end_of_line(&mut self, key: Option<&str>) -> Result<(), ConfigFileError> {
        if self.rest.is_empty() {
            return Ok(());
        }
        if let Some(rest) = self
            .rest
            .strip_prefix("\r\n")
            .or_else(|| self.rest.strip_prefix('\n'))
        {
            self.rest = rest;
            self.line += 1;
            return Ok(());
        }
        if self.rest.starts_with('\r') {
            return Err(self.error(key, "a carriage return not followed by a line feed"));
        }
        Err(self.error(
            key,
            format!(
                "unexpected {:?} after the value; one key = value per line",
                token(self.rest)
            ),
        ))
    }

    /// `key = value`, starting at the key's first character.
    fn key_value(&mut self) -> Result<Entry, ConfigFileError> {
        let line = self.line;
        let len = self
            .rest
            .find(|c: char| !is_bare_key_char(c))
            .unwrap_or(self.rest.len());
        let (key, rest) = self.rest.split_at(len);
        let key = key.to_owned();
        self.rest = rest;
        self.skip_whitespace();
        match self.peek() {
            Some('=') => {
                self.bump();
            }
            Some('.') => {
                return Err(self.error(
                    Some(&key),
                    "dotted keys are not supported: every key goes at the top level",
                ))
            }
            _ => return Err(self.error(Some(&key), "expected = after the key")),
        }
        self.skip_whitespace();
        let value = self.value(&key)?;
        Ok(Entry { line, key, value })
    }

    fn value(&mut self, key: &str) -> Result<Value, ConfigFileError> {
        match self.peek() {
            None | Some('\n' | '\r' | '#') => Err(self.error(Some(key), "missing value after =")),
            Some('"' | '\'') => self.string(key).map(Value::String),
            Some('[') => self.array(key).map(Value::Strings),
            Some('{') => Err(self.error(Some(key), "inline tables are not supported")),
            Some(_) => self.bare_value(key),
        }
    }

    /// `true`, `false` or a decimal integer; anything else unquoted is
    /// refused, naming the TOML feature it would be where there is one.
    fn bare_value(&mut self, key: &str) -> Result<Value, ConfigFileError> {
        let word = token(self.rest);
        let refuse = |reason: String| Err(self.error(Some(key), reason));
        let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
        let is_number_like = |extra: &[char]| {
            digits.starts_with(|c: char| c.is_ascii_digit())
                && digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || extra.contains(&c))
        };
        let value = match word {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ if is_number_like(&[]) => {
                if digits.len() > 1 && digits.starts_with('0') {
                    return refuse("an integer must not start with 0".to_owned());
                }
                match word.parse::<i64>() {
                    Ok(number) => Value::Integer(number),
                    Err(_) => return refuse("integer out of range".to_owned()),
                }
            }
            "inf" | "+inf" | "-inf" | "nan" | "+nan" | "-nan" => {
                return refuse("floats are not supported".to_owned())
            }
            _ if is_date_like(digits) => {
                return refuse("dates and times are not supported".to_owned())
            }
            _ if ["0x", "0o", "0b"]
                .iter()
                .any(|base| digits.starts_with(base)) =>
            {
                return refuse("only decimal integers are supported".to_owned())
            }
            _ if is_number_like(&['_']) => {
                return refuse("integers are written without _ separators".to_owned())
            }
            _ if is_number_like(&['.', 'e', 'E', '_', '+', '-']) => {
                return refuse("floats are not supported".to_owned())
            }
            _ => {
                return refuse(format!(
                    "expected a value: a string in quotes, an integer, true, false or an array \
                     of strings; text is quoted, as in \"{}\"",
                    word.escape_debug()
                ))
            }
        };
        self.rest = &self.rest[word.len()..];
        Ok(value)
    }

    /// A one-line basic (`"..."`) or literal (`'...'`) string.
    fn string(&mut self, key: &str) -> Result<String, ConfigFileError> {
        if self.rest.starts_with("\"\"\"") || self.rest.starts_with("'''") {
            return Err(self.error(Some(key), "multi-line strings are not supported"));
        }
        let literal = self.bump() == Some('\'');
        let mut text = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(Some(key), "string not closed before the end of the file"));
            };
            match c {
                '\'' if literal => return Ok(text),
                '"' if !literal => return Ok(text),
                '\\' if !literal => text.push(self.escape(key)?),
                '\n' | '\r' => {
                    return Err(
                        self.error(Some(key), "string not closed before the end of the line")
                    )
                }
                c if is_forbidden_control(c) => {
                    return Err(self.error(
                        Some(key),
                        format!(
                            "control character {:?} in a string; write it as an escape in a \
                             \"...\" string",
                            c
                        ),
                    ))
                }
                c => text.push(c),
            }
        }
    }

    /// The character a basic string's escape stands for, after the `\`.
    fn escape(&mut self, key: &str) -> Result<char, ConfigFileError> {
        let escaped = match self.bump() {
            Some('b') => '\u{8}',
            Some('t') => '\t',
            Some('n') => '\n',
            Some('f') => '\u{c}',
            Some('r') => '\r',
            Some('"') => '"',
            Some('\\') => '\\',
            Some(u @ ('u' | 'U')) => {
                let len = if u == 'u' { 4 } else { 8 };
                let hex = self
                    .rest
                    .get(..len)
                    .filter(|hex| hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    return Err(self.error(
                        Some(key),
                        format!("\\{u} must be followed by {len} hexadecimal digits"),
                    ));
                };
                self.rest = &self.rest[len..];
                // At most 8 hexadecimal digits always fit in a u32.
                let scalar = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                let Some(c) = scalar else {
                    return Err(self.error(
                        Some(key),
                        format!("\\{u}{hex} is not a Unicode scalar value"),
                    ));
                };
                c
            }
            other => {
                let shown = other.map(|c| c.escape_debug().to_string());
                return Err(self.error(
                    Some(key),
                    format!(
                        "invalid escape \\{}; TOML knows \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX and \
                         \\UXXXXXXXX",
                        shown.unwrap_or_default()
                    ),
                ));
            }
        };
        Ok(escaped)
    }

    /// `[ "a", 'b', ]`, possibly over several lines with comments between
    /// the elements; only strings are allowed in it.
    fn array(&mut self, key: &str) -> Result<Vec<String>, ConfigFileError> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank(key)?;
            match self.peek() {
                Some(']') => break,
                Some('"' | '\'') => items.push(self.string(key)?),
                None => {
                    return Err(self.error(Some(key), "array not closed before the end of the file"))
                }
                Some(_) => {
                    return Err(self.error(
                        Some(key),
                        format!(
                            "unexpected {:?} in an array: its elements are strings in quotes",
                            token(self.rest)
                        ),
                    ))
                }
            }
            self.skip_blank(key)?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => break,
                None => {
                    return Err(self.error(Some(key), "array not closed before the end of the file"))
                }
                Some(_) => {
                    return Err(self.error(
                        Some(key),
                        format!(
                            "unexpected {:?} in an array: expected , or ]",
                            token(self.rest)
                        ),
                    ))
                }
            }
        }
        self.bump();
        Ok(items)
    }

    /// Whitespace, comments and line ends, as allowed inside an array.
    fn skip_blank(&mut self, key: &str) -> Result<(), ConfigFileError> {
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some('#') => self.comment()?,
                Some('\n' | '\r') => self.end_of_line(Some(key))?,
                _ => return Ok(()),
            }
        }
    }
}

/// The text up to the next whitespace, comment, line end, comma or bracket:
/// what a message quotes as "the unexpected thing".
fn token(text: &str) -> &str {
    let len = text
        .find([' ', '\t', '\n', '\r', '#', ',', ']', '['])
        .unwrap_or(text.len());
    // A stray delimiter itself is the token.
    match len {
        0 => text
            .get(..text.chars().next().map_or(0, char::len_utf8))
            .unwrap_or(""),
        len => &text[..len],
    }
}

/// `1979-05-27` or `07:32:00` (and their combinations) in TOML's date and
/// time forms, recognised only to name them in the refusal.
fn is_date_like(text: &str) -> bool {
    let bytes = text.as_bytes();
    let at = |i: usize, b: u8| bytes.get(i) == Some(&b);
    let starts_with_digit = bytes.first().is_some_and(u8::is_ascii_digit);
    let date = bytes.len() >= 10 && at(4, b'-') && at(7, b'-');
    let time = bytes.len() >= 8 && at(2, b':');
    starts_with_digit && (date || time)
}

fn is_bare_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The control characters TOML allows neither in comments nor raw in
/// strings: all but tab (line ends are handled where they may appear).
fn is_forbidden_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(usize, &'static str, Value)> {
        parse(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|entry| {
                let key: &'static str = Box::leak(entry.key.into_boxed_str());
                (entry.line, key, entry.value)
            })
            .collect()
    }

    fn value(text: &str) -> Value {
        let mut entries = parse(format!("k = {text}").as_bytes()).unwrap();
        assert_eq!(entries.len(), 1, "{text}");
        entries.remove(0).value
    }

    fn error(text: &str) -> ConfigFileError {
        parse(text.as_bytes()).expect_err("should be refused")
    }

    fn message(text: &str) -> String {
        error(text).to_string()
    }

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn an_empty_file_and_one_of_comments_and_blank_lines_have_no_entries() {
        assert_eq!(parse(b""), Ok(vec![]));
        assert_eq!(
            parse(b"\n\n  \t\n# a comment\n   # another\r\n"),
            Ok(vec![])
        );
    }

    #[test]
    fn each_entry_keeps_the_line_of_its_key() {
        let text = "# dockshim\n\nlog-level = \"debug\"\n  cni_dir-2 = 'x' # why\n\nn = -5";
        assert_eq!(
            entries(text),
            vec![
                (3, "log-level", string("debug")),
                (4, "cni_dir-2", string("x")),
                (6, "n", Value::Integer(-5)),
            ]
        );
    }

    #[test]
    fn whitespace_around_the_equals_sign_is_optional_and_crlf_ends_lines() {
        assert_eq!(
            entries("a=\"1\"\r\nb\t=\t'2'\r\n"),
            vec![(1, "a", string("1")), (2, "b", string("2"))]
        );
    }

    #[test]
    fn basic_strings_understand_every_toml_escape() {
        assert_eq!(
            value(r#""q\" b\\ \b\t\n\f\r \u00e9 \U0001F600""#),
            string("q\" b\\ \u{8}\t\n\u{c}\r \u{e9} \u{1F600}")
        );
        assert_eq!(value(r#""""#), string(""));
        assert_eq!(value("\"tab\tinside\""), string("tab\tinside"));
    }

    #[test]
    fn literal_strings_take_backslashes_as_they_are() {
        assert_eq!(value(r"'C:\dir\n'"), string(r"C:\dir\n"));
        assert_eq!(value(r#"'say "hi"'"#), string("say \"hi\""));
    }

    #[test]
    fn unknown_or_incomplete_escapes_are_refused() {
        assert!(message(r#"k = "\x41""#).contains("invalid escape \\x"));
        assert!(message(r#"k = "\e""#).contains("invalid escape \\e"));
        assert!(message(r#"k = "\u12""#).contains("4 hexadecimal digits"));
        assert!(message(r#"k = "\U0001F60""#).contains("8 hexadecimal digits"));
        assert!(message(r#"k = "\uD800""#).contains("not a Unicode scalar value"));
        assert!(message(r#"k = "\U00110000""#).contains("not a Unicode scalar value"));
        assert!(message("k = \"\\").contains("invalid escape"));
    }

    #[test]
    fn strings_end_on_their_line() {
        assert_eq!(
            error("a = 'x'\nk = \"open\nb = 1"),
            ConfigFileError::Syntax {
                line: 2,
                key: Some("k".to_owned()),
                reason: "string not closed before the end of the line".to_owned(),
            }
        );
        assert!(message("k = 'open").contains("end of the file"));
        assert!(message("k = \"\"\"multi\nline\"\"\"").contains("multi-line strings"));
        assert!(message("k = '''multi'''").contains("multi-line strings"));
    }

    #[test]
    fn raw_control_characters_are_refused_in_strings_and_comments() {
        assert!(message("k = \"a\u{1}b\"").contains("control character"));
        assert!(message("k = 'a\u{7f}b'").contains("control character"));
        assert!(message("# a\u{0}b\n").contains("control character"));
        assert!(message("k = 1 # \u{1b}[31m").contains("control character"));
        assert!(message("k = 1\rj = 2").contains("carriage return"));
    }

    #[test]
    fn integers_are_plain_decimal_within_i64() {
        assert_eq!(value("0"), Value::Integer(0));
        assert_eq!(value("+17"), Value::Integer(17));
        assert_eq!(value("-998"), Value::Integer(-998));
        assert_eq!(value("-0"), Value::Integer(0));
        assert_eq!(value("9223372036854775807"), Value::Integer(i64::MAX));
        assert_eq!(value("-9223372036854775808"), Value::Integer(i64::MIN));
        assert!(message("k = 9223372036854775808").contains("out of range"));
        assert!(message("k = 007").contains("must not start with 0"));
        assert!(message("k = 0x1F").contains("only decimal integers"));
        assert!(message("k = 0o17").contains("only decimal integers"));
        assert!(message("k = 1_000").contains("without _ separators"));
    }

    #[test]
    fn floats_dates_and_inline_tables_are_refused_by_name() {
        for float in ["1.5", "1e3", "6.02E+23", "-1.0", "inf", "-nan"] {
            assert!(
                message(&format!("k = {float}")).contains("floats are not supported"),
                "{float}"
            );
        }
        for date in ["1979-05-27", "1979-05-27T07:32:00Z", "07:32:00"] {
            assert!(
                message(&format!("k = {date}")).contains("dates and times"),
                "{date}"
            );
        }
        assert!(message("k = { a = 1 }").contains("inline tables"));
    }

    #[test]
    fn booleans_are_lower_case_true_and_false() {
        assert_eq!(value("true"), Value::Boolean(true));
        assert_eq!(value("false"), Value::Boolean(false));
        assert!(message("k = True").contains("expected a value"));
        assert!(message("k = truex").contains("expected a value"));
    }

    #[test]
    fn unquoted_text_is_refused_with_the_quoted_form() {
        assert_eq!(
            message("image-pull-timeout = 30m"),
            "1: image-pull-timeout: expected a value: a string in quotes, an integer, true, \
             false or an array of strings; text is quoted, as in \"30m\""
        );
        assert!(message("k = unix:///run/x.sock").contains("as in \"unix:///run/x.sock\""));
        assert!(message("k = 1.5h").contains("as in \"1.5h\""));
    }

    #[test]
    fn arrays_hold_strings_and_may_span_lines_with_comments() {
        assert_eq!(value("[]"), Value::Strings(vec![]));
        assert_eq!(
            value(r#"["/a", '/b',]"#),
            Value::Strings(vec!["/a".into(), "/b".into()])
        );
        let text =
            "dirs = [\n  \"/opt/cni/bin\", # hand-installed\n\n  '/usr/lib/cni'\r\n]\nnext = 1\n";
        assert_eq!(
            entries(text),
            vec![
                (
                    1,
                    "dirs",
                    Value::Strings(vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()])
                ),
                (6, "next", Value::Integer(1)),
            ]
        );
    }

    #[test]
    fn arrays_of_anything_but_strings_and_unclosed_arrays_are_refused() {
        assert!(message("k = [1, 2]").contains("unexpected \"1\" in an array"));
        assert!(message("k = [[\"a\"]]").contains("unexpected \"[\" in an array"));
        assert!(message("k = [\"a\" \"b\"]").contains("expected , or ]"));
        assert!(message("k = [\"a\",,]").contains("unexpected \",\" in an array"));
        assert_eq!(error("k = [\n\"a\",\n").line(), 3);
        assert!(message("k = [\n\"a\",\n").contains("array not closed"));
        assert!(message("k = [\"a\"").contains("array not closed"));
    }

    #[test]
    fn errors_inside_an_array_name_their_own_line() {
        let err = error("k = [\n  \"a\",\n  \"b\n]");
        assert_eq!(err.line(), 3);
        assert_eq!(err.key(), Some("k"));
    }

    #[test]
    fn tables_are_refused_pointing_at_the_header() {
        assert_eq!(
            error("a = 1\n[dockshim]\nb = 2"),
            ConfigFileError::Table { line: 2 }
        );
        assert_eq!(error("  [[pods]]"), ConfigFileError::Table { line: 1 });
        assert!(message("[x]").starts_with("1: tables are not supported"));
    }

    #[test]
    fn dotted_and_quoted_keys_are_refused() {
        assert!(message("dockshim.log-level = \"x\"").contains("dotted keys"));
        assert!(message("\"log-level\" = \"x\"").contains("quoted keys"));
        assert!(message("'log-level' = \"x\"").contains("quoted keys"));
    }

    #[test]
    fn a_line_must_be_exactly_one_key_and_value() {
        assert!(message("log-level").contains("expected = after the key"));
        assert!(message("log level = 'x'").contains("expected = after the key"));
        assert!(message("k =").contains("missing value"));
        assert!(message("k = # nothing").contains("missing value"));
        assert!(message("k = 'a' 'b'").contains("unexpected \"'b'\" after the value"));
        assert!(message("k = 1 j = 2").contains("unexpected \"j\" after the value"));
        assert!(message("= 1").contains("expected a key"));
        assert!(message("\u{feff}k = 1").contains("expected a key"));
        assert!(message("kéy = 1").contains("expected = after the key"));
    }

    #[test]
    fn a_key_set_twice_is_refused_naming_both_lines() {
        let err = error("log-level = 'info'\n# again\nlog-level = 'debug'\n");
        assert_eq!(
            err,
            ConfigFileError::DuplicateKey {
                line: 3,
                key: "log-level".to_owned(),
                first_line: 1,
            }
        );
        assert_eq!(
            err.to_string(),
            "3: log-level: set twice; first set on line 1"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_on_their_line() {
        assert_eq!(
            parse(b"a = 1\nb = '\xff'\n"),
            Err(ConfigFileError::NotUtf8 { line: 2 })
        );
    }

    #[test]
    fn written_values_read_back_the_same() {
        let values = [
            string(""),
            string("plain /path:with=signs"),
            string("quote \" backslash \\ 'single'"),
            string("\u{8}\t\n\u{c}\r\u{0}\u{1b}\u{7f} é \u{1F600}"),
            Value::Integer(i64::MIN),
            Value::Integer(0),
            Value::Integer(i64::MAX),
            Value::Boolean(true),
            Value::Boolean(false),
            Value::Strings(vec![]),
            Value::Strings(vec!["/a".into(), "b\"\\\n".into()]),
        ];
        for written in values {
            let text = written.to_string();
            assert!(!text.contains(['\n', '\r']), "{text}");
            assert_eq!(value(&text), written, "{text}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(13);
        let alphabet = b"k= \t\n\r#\"'\\[],.-_+0123456789eExuU{}truefalse\xc3\xa9\xff\x01";
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            if let Err(err) = parse(&bytes) {
                assert!(err.line() >= 1);
                assert!(!err.to_string().contains('\n'), "{err}");
            }
        }
    }
}
