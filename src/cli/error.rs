//! The errors of the command line and the configuration file: each one
//! line for stderr, and the usage exit status.

use std::fmt;
use std::path::{Path, PathBuf};

/// The exit status for any command-line or configuration file error.
const USAGE_EXIT_CODE: i32 = 2;

/// A command line that cannot be run. Its `Display` is the one line to print
/// on stderr, starting with `dockshim:` and naming the offending flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// A `-x` or `--name` that is not in the flag table.
    UnknownFlag {
        /// As typed, without any `=value`.
        flag: String,
        /// The closest known long name, if it is close.
        suggestion: Option<&'static str>,
    },
    /// A flag that takes a value came last.
    MissingValue {
        flag: &'static str,
        value_name: &'static str,
    },
    /// A value that does not parse or is out of range.
    InvalidValue {
        flag: &'static str,
        kind: &'static str,
        value: String,
        reason: String,
    },
    /// dockshim takes no positional arguments.
    UnexpectedArgument { argument: String },
    /// The configuration file exists but cannot be read, or a file named
    /// with `--config` does not exist.
    UnreadableFile { path: PathBuf, reason: String },
    /// The configuration file is not in the supported subset of TOML.
    FileSyntax {
        path: PathBuf,
        error: ConfigFileError,
    },
    /// A key of the configuration file that is not a flag's name.
    UnknownKey {
        path: PathBuf,
        line: usize,
        key: String,
        suggestion: Option<&'static str>,
    },
    /// A key of the configuration file naming a flag that acts on the
    /// command line itself, such as `config` or `help`.
    CommandLineOnlyKey {
        path: PathBuf,
        line: usize,
        key: &'static str,
    },
    /// A configuration file value of the wrong TOML type for its key.
    WrongType {
        path: PathBuf,
        line: usize,
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A configuration file value its flag would refuse; `value` is as
    /// written in the file.
    InvalidFileValue {
        path: PathBuf,
        line: usize,
        key: &'static str,
        kind: &'static str,
        value: String,
        reason: String,
    },
}

impl CliError {
    /// The process exit status for this error: always 2, a usage error.
    pub fn exit_code(&self) -> i32 {
        USAGE_EXIT_CODE
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are printed with `{:?}` so that quotes, newlines and control
        // characters come out escaped and the message stays on one line.
        match self {
            CliError::UnknownFlag {
                flag,
                suggestion: Some(suggestion),
            } => {
                write!(
                    f,
                    "dockshim: unknown flag {flag:?}; did you mean --{suggestion}?"
                )
            }
            CliError::UnknownFlag {
                flag,
                suggestion: None,
            } => {
                write!(f, "dockshim: unknown flag {flag:?}; see dockshim --help")
            }
            CliError::MissingValue { flag, value_name } => {
                write!(f, "dockshim: --{flag}: missing value {value_name}")
            }
            CliError::InvalidValue {
                flag,
                kind,
                value,
                reason,
            } => {
                write!(f, "dockshim: --{flag}: invalid {kind} {value:?}: {reason}")
            }
            CliError::UnexpectedArgument { argument } => {
                write!(
                    f,
                    "dockshim: unexpected argument {argument:?}: dockshim takes only flags"
                )
            }
            CliError::UnreadableFile { path, reason } => {
                let path = shown_path(path);
                write!(
                    f,
                    "dockshim: cannot read configuration file {path}: {reason}"
                )
            }
            CliError::FileSyntax { path, error } => {
                write!(f, "dockshim: {}:{error}", shown_path(path))
            }
            CliError::UnknownKey {
                path,
                line,
                key,
                suggestion,
            } => {
                let path = shown_path(path);
                let key = key.escape_debug();
                match suggestion {
                    Some(suggestion) => write!(
                        f,
                        "dockshim: {path}:{line}: {key}: unknown key; did you mean {suggestion}?"
                    ),
                    None => write!(
                        f,
                        "dockshim: {path}:{line}: {key}: unknown key; the keys are the flags of \
                         dockshim --help without their leading --"
                    ),
                }
            }
            CliError::CommandLineOnlyKey { path, line, key } => {
                let path = shown_path(path);
                write!(
                    f,
                    "dockshim: {path}:{line}: {key}: accepted only on the command line, as --{key}"
                )
            }
            CliError::WrongType {
                path,
                line,
                key,
                expected,
                found,
            } => {
                let path = shown_path(path);
                write!(
                    f,
                    "dockshim: {path}:{line}: {key}: expected {expected}, found {found}"
                )
            }
            CliError::InvalidFileValue {
                path,
                line,
                key,
                kind,
                value,
                reason,
            } => {
                // The value is TOML already, quoted and escaped onto one line.
                let path = shown_path(path);
                write!(
                    f,
                    "dockshim: {path}:{line}: {key}: invalid {kind} {value}: {reason}"
                )
            }
        }
    }
}

/// A path for a one-line message: as it is, unless it holds characters
/// (line ends, quotes, backslashes) that need escaping.
fn shown_path(path: &Path) -> String {
    path.to_string_lossy().escape_debug().to_string()
}

impl std::error::Error for CliError {}

/// A file that is not in the subset; the first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFileError {
    /// TOML files are UTF-8.
    NotUtf8 { line: usize },
    /// A `[table]` or `[[array of tables]]` header.
    Table { line: usize },
    /// Text that is not a `key = value` line of the subset; `key` is set
    /// once the key has been read.
    Syntax {
        line: usize,
        key: Option<String>,
        reason: String,
    },
    /// A key set twice.
    DuplicateKey {
        line: usize,
        key: String,
        first_line: usize,
    },
}

impl ConfigFileError {
    /// The line of the problem, counting from 1.
    pub fn line(&self) -> usize {
        match self {
            ConfigFileError::NotUtf8 { line }
            | ConfigFileError::Table { line }
            | ConfigFileError::Syntax { line, .. }
            | ConfigFileError::DuplicateKey { line, .. } => *line,
        }
    }

    /// The key the problem is in, once it is known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigFileError::Syntax { key, .. } => key.as_deref(),
            ConfigFileError::DuplicateKey { key, .. } => Some(key),
            ConfigFileError::NotUtf8 { .. } | ConfigFileError::Table { .. } => None,
        }
    }
}

impl fmt::Display for ConfigFileError {
    /// `LINE: [KEY: ]REASON`, to follow the file's name and a colon.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.line())?;
        if let Some(key) = self.key() {
            write!(f, "{key}: ")?;
        }
        match self {
            ConfigFileError::NotUtf8 { .. } => f.write_str("not valid UTF-8"),
            ConfigFileError::Table { .. } => f.write_str(
                "tables are not supported: every key goes at the top level, before any [header]",
            ),
            ConfigFileError::Syntax { reason, .. } => f.write_str(reason),
            ConfigFileError::DuplicateKey { first_line, .. } => {
                write!(f, "set twice; first set on line {first_line}")
            }
        }
    }
}

impl std::error::Error for ConfigFileError {}
