//! `--help`, `--version`, the man page, `--print-config` and the example
//! configuration file, rendered from the flag table.
//!
//! Everything here is a pure function of the table, the crate version and,
//! for `--print-config`, a [`Config`], so the committed `packaging/dockshim.8`
//! and `packaging/dockshim.toml` can be compared with [`man_page`] and
//! [`example_config`]. It must not describe a flag anywhere but in `flags`.

use std::fmt::Write as _;

use super::config::{file_value, Config};
use super::flags::{self, Category, FileValue, Flag, FLAGS};

/// Column at which `--help` lines are wrapped.
const HELP_WIDTH: usize = 79;
/// Indentation of a flag's description under its name in `--help`.
const HELP_INDENT: &str = "      ";

const SUMMARY: &str = "Kubernetes CRI v1 runtime for the Docker Engine";

const DESCRIPTION: &[&str] = &[
    "dockshim serves the Kubernetes Container Runtime Interface (CRI v1) as gRPC on a unix \
     socket, and carries out each call through the Docker Engine API of the local dockerd. \
     The kubelet, crictl and critest use it like any other CRI runtime: point their \
     --container-runtime-endpoint at dockshim's socket.",
    "Pod networks are set up by CNI plugins, which dockshim runs as the CNI specification \
     describes. A checkpoint per pod sandbox, kept under the root directory, lets dockshim \
     find its pods again after a restart. Exec, attach and port-forward streams go through a \
     separate HTTP server, which listens on loopback unless --streaming-bind-addr says \
     otherwise.",
    "Every setting is a flag, and every flag that is a setting can also be given in the \
     configuration file /etc/dockshim/dockshim.toml (see CONFIGURATION FILE); a flag given \
     on the command line overrides the file. Under systemd, the file is the place to change \
     settings.",
];

/// The configuration file section of the man page, before the generated
/// sentence on value types and the defaults.
const CONFIGURATION_INTRO: &[&str] = &[
    "Before its flags, dockshim reads /etc/dockshim/dockshim.toml, or the file named with \
     --config. Each line sets one flag: the key is the flag's long name without the leading \
     dashes, as in log-level = \"debug\". A flag given on the command line overrides the \
     file. Every flag may be set there except those that act on the command line itself: \
     --config, --print-config, --help and --version. That the default file does not exist \
     is no error; that a file named with --config does not exist is.",
    "The format is a strict subset of TOML 1.0, so that any TOML parser reads a valid file \
     the same way and editors highlight it: key = value lines with bare keys, comments from \
     # to the end of the line, and blank lines. Strings are written in double quotes, with \
     TOML's backslash escapes (\\\" \\\\ \\t \\n \\uXXXX and the others), or in single \
     quotes, taken literally. Tables, dotted and quoted keys, multi-line strings, floats, \
     dates, inline tables and integers other than plain decimal ones are refused, as is a \
     key set twice.",
];

/// The header of the example configuration file.
const EXAMPLE_INTRO: &str = "dockshim's configuration file, read at start from \
     /etc/dockshim/dockshim.toml (or the file named with --config). Each key is one of \
     dockshim's flags without the leading --, and a flag given on the command line \
     overrides it. The format is a strict subset of TOML: key = value lines and # comments; \
     text in \"double\" (with backslash escapes) or 'single' quotes, decimal integers, true \
     and false, and [\"arrays\", \"of strings\"]; no tables. dockshim --print-config shows \
     the configuration in effect, and dockshim(8) describes each key.";

const OPTIONS_INTRO: &str = "A flag's value is either the next argument or follows an equals \
     sign (--flag=VALUE); the next argument is taken even when it starts with a dash. When a \
     flag is repeated, the last one counts. Switches take no value, or =true or =false. \
     Durations are written as in Go: numbers each followed by a unit (ns, us, ms, s, m or h), \
     as in 90s, 1m30s or 1.5h; a bare 0 is also accepted.";

/// `--version` output.
pub(crate) fn version_line() -> String {
    format!("dockshim {}\n", env!("CARGO_PKG_VERSION"))
}

/// The `--help` text: usage, then every flag grouped by category with its
/// default. Ends with a newline.
pub fn help_text() -> String {
    let mut out = String::new();
    out.push_str("Usage: dockshim [OPTIONS]\n\n");
    out.push_str(&format!(
        "dockshim {}: {SUMMARY}.\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str("The manual page dockshim(8) describes each flag in full.\n");
    out.push_str(&format!(
        "Flags may also be set in {}; see --config.\n",
        flags::DEFAULT_CONFIG_FILE
    ));
    for category in Category::ALL {
        out.push('\n');
        out.push_str(category.title());
        out.push_str(":\n");
        for flag in FLAGS.iter().filter(|flag| flag.category == category) {
            out.push_str("  ");
            out.push_str(&flag_synopsis(
                flag,
                |name| name.to_owned(),
                |value| value.to_owned(),
            ));
            out.push('\n');
            let default = flag.default.map(|default| format!("[default: {default}]"));
            let words = flag.help.split_whitespace().chain(default.as_deref());
            wrap_into(&mut out, words, HELP_INDENT, HELP_WIDTH);
        }
    }
    out
}

/// The `--print-config` text: a comment naming the sources, then every key
/// of the configuration file, one per line, in flag table order.
pub(crate) fn config_text(config: &Config) -> String {
    let file = match &config.config_file {
        Some(path) => format!("then {}, ", path.to_string_lossy().escape_debug()),
        None => String::new(),
    };
    let mut out =
        format!("# dockshim's configuration: the defaults, {file}then the command line.\n");
    for line in setting_lines(config) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The example configuration file: every key commented out, each after its
/// `--help` line and showing its default.
pub fn example_config() -> String {
    let defaults = Config::default();
    let mut out = String::new();
    wrap_into(&mut out, EXAMPLE_INTRO.split_whitespace(), "# ", HELP_WIDTH);
    for flag in FLAGS.iter().filter(|flag| flag.in_file()) {
        out.push('\n');
        let array_note = (flag.file_value() == FileValue::Strings)
            .then_some("(here an array, one item each)".split_whitespace())
            .into_iter()
            .flatten();
        let words = flag.help.split_whitespace().chain(array_note);
        wrap_into(&mut out, words, "# ", HELP_WIDTH);
        let line = setting_line(&defaults, flag);
        if !line.starts_with('#') {
            out.push('#');
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Every key's [`setting_line`], in flag table order.
fn setting_lines(config: &Config) -> impl Iterator<Item = String> + '_ {
    FLAGS
        .iter()
        .filter(|flag| flag.in_file())
        .map(|flag| setting_line(config, flag))
}

/// `key = value`, or a comment saying the key is not set.
fn setting_line(config: &Config, flag: &Flag) -> String {
    match file_value(config, flag.id) {
        Some(value) => format!("{} = {value}", flag.long),
        None => format!("# {} is not set", flag.long),
    }
}

/// The sentence saying which keys take which TOML type, from the table.
fn value_types() -> String {
    let keys = |kind: FileValue| -> Vec<&str> {
        FLAGS
            .iter()
            .filter(|flag| flag.file_value() == kind)
            .map(|flag| flag.long)
            .collect()
    };
    let list = |keys: Vec<&str>| match keys.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "A switch ({}) takes true or false; {} takes a decimal integer; {} takes an array of \
         strings, one item each, which may span lines; every other key takes a string holding \
         what the flag's value would be. An unknown key, a value of the wrong type or one the \
         flag would refuse, and any syntax error stop dockshim at start with exit status 2 \
         and a message naming the file, the line and the key. dockshim --print-config prints \
         the configuration in effect in this format; with no file and no flags, it is:",
        list(keys(FileValue::Boolean)),
        list(keys(FileValue::Integer)),
        list(keys(FileValue::Strings)),
    )
}

/// `-h, --help` or `--name VALUE`, with the name and value styled by the caller.
fn flag_synopsis(
    flag: &Flag,
    name: impl Fn(&str) -> String,
    value: impl Fn(&str) -> String,
) -> String {
    let mut synopsis = String::new();
    if let Some(short) = flag.short {
        synopsis.push_str(&name(&format!("-{short}")));
        synopsis.push_str(", ");
    }
    synopsis.push_str(&name(&format!("--{}", flag.long)));
    if let Some(value_name) = flag.value_name {
        synopsis.push(' ');
        synopsis.push_str(&value(value_name));
    }
    synopsis
}

/// Appends `words` wrapped at `width`, each line starting with `indent`.
/// A word longer than a line gets a line of its own; a word is never split.
fn wrap_into<'a>(
    out: &mut String,
    words: impl Iterator<Item = &'a str>,
    indent: &str,
    width: usize,
) {
    let mut line_len = 0;
    for word in words {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push('\n');
            line_len = 0;
        }
        if line_len == 0 {
            out.push_str(indent);
            line_len = indent.len();
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out.push('\n');
}

/// The man page, section 8, in roff.
pub fn man_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = String::new();
    out.push_str(&format!(
        ".TH DOCKSHIM 8 \"\" \"dockshim {version}\" \"System Administration\"\n"
    ));
    // No hyphenation and no justification: flags, paths and defaults must
    // read exactly as they are typed.
    out.push_str(".nh\n.ad l\n");
    section(&mut out, "NAME");
    out.push_str(&format!("dockshim \\- {}\n", escape(SUMMARY)));

    section(&mut out, "SYNOPSIS");
    out.push_str(".B dockshim\n[\\fIOPTIONS\\fR]\n");

    section(&mut out, "DESCRIPTION");
    paragraphs(&mut out, DESCRIPTION);

    section(&mut out, "OPTIONS");
    paragraphs(&mut out, &[OPTIONS_INTRO]);
    for category in Category::ALL {
        out.push_str(&format!(".SS {}\n", escape(category.title())));
        for flag in FLAGS.iter().filter(|flag| flag.category == category) {
            let synopsis = flag_synopsis(flag, bold, italic);
            let mut body = escape(flag.doc);
            if let Some(default) = flag.default {
                body.push_str(&format!("\nDefault: {}.", bold(default)));
            }
            tagged(&mut out, &synopsis, &body);
        }
    }

    section(&mut out, "CONFIGURATION FILE");
    paragraphs(&mut out, CONFIGURATION_INTRO);
    out.push_str(".PP\n");
    out.push_str(&escape(&value_types()));
    out.push_str("\n.PP\n.nf\n");
    for line in setting_lines(&Config::default()) {
        out.push_str(&escape(&line));
        out.push('\n');
    }
    out.push_str(".fi\n");

    section(&mut out, "SIGNALS");
    tagged(
        &mut out,
        &format!("{}, {}", bold("SIGTERM"), bold("SIGINT")),
        &escape(
            "Shut down gracefully: stop accepting connections, tell every client to go away \
             (an HTTP/2 GOAWAY), let calls in progress finish within a bounded time, end open \
             event streams with the gRPC status UNAVAILABLE, and exit with status 0.",
        ),
    );

    section(&mut out, "FILES");
    let files = [
        (
            flags::DEFAULT_CONFIG_FILE,
            "The configuration file (--config); see CONFIGURATION FILE.",
        ),
        (
            "/run/dockshim.sock",
            "The CRI socket, unless --container-runtime-endpoint says otherwise.",
        ),
        (
            "/run/dockshim.sock.lock",
            "Lock file beside the socket, for a socket dockshim creates and for one systemd \
             passes (fd://) alike; while it is locked, a second dockshim refuses to start. It \
             is opened without following a symlink and must be a regular file.",
        ),
        (
            "/var/lib/dockshim",
            "The root directory (--root-directory): sandbox checkpoints.",
        ),
        (
            "/etc/cni/net.d",
            "CNI network configuration (--cni-conf-dir).",
        ),
        (
            "/opt/cni/bin",
            "CNI plugins installed by hand (--cni-bin-dir).",
        ),
        (
            "/usr/lib/cni",
            "CNI plugins of Debian's containernetworking-plugins package (--cni-bin-dir).",
        ),
        (
            "/var/run/docker.sock",
            "The Docker Engine API socket (--docker-endpoint).",
        ),
    ];
    for (path, what) in files {
        tagged(&mut out, &italic(path), &escape(what));
    }

    section(&mut out, "ENVIRONMENT");
    let environment = [
        (
            "LISTEN_FDS, LISTEN_PID",
            "Set by systemd socket activation; read with fd://.",
        ),
        (
            "NOTIFY_SOCKET",
            "Set by systemd for Type=notify; dockshim sends READY=1 once it serves.",
        ),
        (
            "JOURNAL_STREAM",
            "Set by systemd when standard error goes to the journal; log lines then carry \
             their syslog priority and no timestamp.",
        ),
    ];
    for (variable, what) in environment {
        tagged(&mut out, &bold(variable), &escape(what));
    }

    section(&mut out, "EXIT STATUS");
    let statuses = [
        (
            "0",
            "Graceful shutdown, or --help, --version or --print-config.",
        ),
        ("1", "dockshim could not start or stopped on an error."),
        (
            "2",
            "The command line or the configuration file is invalid; the reason is printed on \
             standard error.",
        ),
    ];
    for (status, what) in statuses {
        tagged(&mut out, &bold(status), &escape(what));
    }

    section(&mut out, "SEE ALSO");
    out.push_str(".BR kubelet (1),\n.BR dockerd (8),\n.BR crictl (1),\n.BR systemd.socket (5)\n");
    out
}

fn section(out: &mut String, title: &str) {
    out.push_str(&format!(".SH {title}\n"));
}

fn paragraphs(out: &mut String, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push_str(".PP\n");
        }
        out.push_str(&escape(text));
        out.push('\n');
    }
}

/// A `.TP` item: `tag` and `body` are roff already.
fn tagged(out: &mut String, tag: &str, body: &str) {
    let _ = write!(out, ".TP\n{tag}\n{body}\n");
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", escape(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", escape(text))
}

/// Plain text to roff: backslashes and dashes escaped (so options and paths
/// copy as typed), and a leading `.` or `'` kept from reading as a request.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    if text.starts_with(['.', '\'']) {
        out.push_str("\\&");
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let help = help_text();
        assert!(help.starts_with("Usage: dockshim [OPTIONS]\n"));
        for flag in FLAGS {
            assert!(
                help.contains(&format!("--{}", flag.long)),
                "--{}",
                flag.long
            );
            if let Some(default) = flag.default {
                assert!(
                    help.contains(&format!("[default: {default}]")),
                    "--{}",
                    flag.long
                );
            }
        }
        assert!(help.contains("  -h, --help\n"));
        assert!(help.contains("  --docker-endpoint ENDPOINT\n"));
    }

    #[test]
    fn help_lines_fit_in_eighty_columns() {
        for line in help_text().lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "too long: {line:?}");
        }
    }

    #[test]
    fn help_groups_flags_under_category_titles_in_table_order() {
        let help = help_text();
        let endpoints = help.find("\nEndpoints:\n").unwrap();
        let networking = help.find("\nPod networking:\n").unwrap();
        let other = help.find("\nOther:\n").unwrap();
        let cni = help.find("--cni-bin-dir").unwrap();
        assert!(endpoints < networking && networking < cni && cni < other);
    }

    #[test]
    fn wrapping_breaks_between_words_and_keeps_long_words_whole() {
        let mut out = String::new();
        let words = [
            "aa",
            "bb",
            "cc",
            "averyveryverylongword",
            "dd",
            "[default: x]",
        ];
        wrap_into(&mut out, words.into_iter(), "  ", 8);
        assert_eq!(
            out,
            "  aa bb\n  cc\n  averyveryverylongword\n  dd\n  [default: x]\n"
        );
    }

    #[test]
    fn man_page_documents_every_flag_and_the_required_sections() {
        let man = man_page();
        assert!(man.starts_with(".TH DOCKSHIM 8 "));
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "CONFIGURATION FILE",
            "SIGNALS",
            "FILES",
            "EXIT STATUS",
            "SEE ALSO",
        ] {
            assert!(man.contains(&format!("\n.SH {section}\n")), "{section}");
        }
        for flag in FLAGS {
            let name = format!("\\fB\\-\\-{}\\fR", flag.long.replace('-', "\\-"));
            assert!(man.contains(&name), "--{}", flag.long);
        }
        assert!(man.contains(".BR kubelet (1)") && man.contains(".BR dockerd (8)"));
        assert!(man.contains("/run/dockshim.sock.lock"));
        assert!(man.contains("\\fI/etc/dockshim/dockshim.toml\\fR"));
    }

    #[test]
    fn the_example_config_in_packaging_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/dockshim.toml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == example_config(),
            "{path} is out of date with the flag table; run `cargo xtask man` to regenerate it"
        );
    }

    #[test]
    fn the_example_config_shows_every_key_commented_out_with_its_default() {
        let example = example_config();
        assert!(super::super::config_file::parse(example.as_bytes())
            .unwrap()
            .is_empty());
        let uncommented: String = example
            .lines()
            .filter_map(|line| line.strip_prefix('#'))
            .filter(|line| !line.starts_with(' ') && !line.is_empty())
            .map(|line| format!("{line}\n"))
            .collect();
        let printed = config_text(&Config::default());
        let set_lines: Vec<&str> = printed.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uncommented.lines().collect::<Vec<_>>(), set_lines);
        for line in example.lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "too long: {line:?}");
        }
    }

    #[test]
    fn man_page_lines_never_start_a_request_by_accident() {
        for line in man_page().lines() {
            if line.starts_with(['.', '\'']) {
                let request = line
                    .trim_start_matches(['.', '\''])
                    .split(' ')
                    .next()
                    .unwrap();
                assert!(
                    ["TH", "nh", "ad", "SH", "SS", "TP", "PP", "nf", "fi", "B", "BR"]
                        .contains(&request),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn roff_escaping_covers_dashes_backslashes_and_leading_dots() {
        assert_eq!(escape("--flag"), "\\-\\-flag");
        assert_eq!(escape("a\\b"), "a\\eb");
        assert_eq!(escape(".conf files"), "\\&.conf files");
        assert_eq!(escape("'quoted'"), "\\&'quoted'");
    }

    #[test]
    fn man_page_in_packaging_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/dockshim.8");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == man_page(),
            "{path} is out of date with the flag table; run `cargo xtask man` to regenerate it"
        );
    }

    #[test]
    fn version_names_the_program_and_crate_version() {
        assert_eq!(
            version_line(),
            format!("dockshim {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
