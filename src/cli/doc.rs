//! `--help`, `--version` and the man page, rendered from the flag table.
//!
//! Everything here is a pure function of the table and the crate version, so
//! the committed `packaging/dockshim.8` can be compared with [`man_page`].
//! It must not describe a flag anywhere but in `flags`.

use std::fmt::Write as _;

use super::flags::{Category, Flag, FLAGS};

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
    "There is no configuration file: every setting is a flag. Under systemd, change flags \
     with a drop-in that clears ExecStart= and sets it again.",
];

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
        ("/opt/cni/bin", "CNI plugins (--cni-bin-dir)."),
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
        ("0", "Graceful shutdown, or --help or --version."),
        ("1", "dockshim could not start or stopped on an error."),
        (
            "2",
            "The command line is invalid; the reason is printed on standard error.",
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
                    ["TH", "nh", "ad", "SH", "SS", "TP", "PP", "B", "BR"].contains(&request),
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
