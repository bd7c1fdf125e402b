//! The module layers of dockshim, and the check that holds `src/` and
//! `xtask/src/` to them.
//!
//! [`LAYERS`] lists every top-level module of `src/` from the bottom up,
//! each with the modules it may use. A module may only list modules above
//! it in the table, so the table itself has no loop, and the check fails on
//! any `crate::` (or `super::`) path in a file of one module that names a
//! module its row does not list, giving file, line and rule. Comments and
//! string literals are not read: a doc link is no import. `main.rs` is the
//! binary and sits above everything; `lib.rs` only declares the modules.
//!
//! In `xtask/`, each file is a module and none may be reached back from a
//! module it uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom-up: each module with the modules it may use.
const LAYERS: &[(&str, &[&str])] = &[
    // Leaves: std and the registry's crates only.
    ("grpc", &[]),
    ("codec", &[]),
    ("logger", &[]),
    ("failpoint", &[]),
    ("pidfd", &[]),
    ("supervisor", &[]),
    // The generated CRI API: messages, and service traits over grpc.
    ("api", &["grpc"]),
    // The registry the server and the Docker client record into, and its
    // listener, which reads the gauges of the layers above through a
    // closure.
    ("metrics", &["codec", "grpc", "supervisor"]),
    ("docker", &["metrics"]),
    ("store", &[]),
    ("stats", &["api", "supervisor"]),
    // The node's mounts, swap, per-process files and OOM score
    // adjustments, behind a trait.
    ("host", &["pidfd", "stats"]),
    ("network", &["failpoint", "pidfd", "store"]),
    ("index", &["docker", "supervisor"]),
    ("logs", &["docker", "supervisor"]),
    // The streaming protocols; their dockerd backend is cri's.
    ("streaming", &["codec", "supervisor"]),
    (
        "cri",
        &[
            "api",
            "codec",
            "docker",
            "failpoint",
            "grpc",
            "host",
            "index",
            "logs",
            "network",
            "pidfd",
            "stats",
            "store",
            "streaming",
            "supervisor",
        ],
    ),
    // The CRI-agnostic gRPC server: it carries `api`'s method table, handed
    // to it by main, and never reaches the handlers.
    ("server", &["grpc", "metrics", "supervisor"]),
    // The command line, read by main only; the settings it parses are the
    // types of the layers that read them.
    ("cli", &["cri", "network"]),
];

/// Files that are not part of any one layer.
const UNLAYERED: &[&str] = &["lib.rs", "main.rs"];

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    file: PathBuf,
    line: usize,
    module: String,
}

#[test]
fn every_import_follows_the_layer_table() {
    let src = root().join("src");
    let table: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut broken = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("under src").to_owned();
        let Some(owner) = top_module(&relative) else {
            continue;
        };
        let allowed = table
            .get(owner.as_str())
            .unwrap_or_else(|| panic!("{} is in no row of LAYERS", relative.display()));
        for used in module_uses(&file, &module_path(&relative), &table) {
            if used.module != owner && !allowed.contains(&used.module.as_str()) {
                broken.push(format!(
                    "src/{}:{}: `{owner}` uses `{}`; LAYERS lets `{owner}` use only {:?}",
                    relative.display(),
                    used.line,
                    used.module,
                    allowed
                ));
            }
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn the_layer_table_points_down_only_and_names_every_module() {
    let mut below = BTreeSet::new();
    for (module, uses) in LAYERS {
        for used in *uses {
            assert!(
                below.contains(used),
                "`{module}` may use `{used}`, which is not below it in LAYERS"
            );
        }
        assert!(below.insert(*module), "`{module}` has two rows");
    }
    let src = root().join("src");
    for entry in fs::read_dir(&src).expect("src/ is readable") {
        let name = entry.expect("src/ entry").file_name();
        let name = name.to_string_lossy();
        if UNLAYERED.contains(&name.as_ref()) {
            continue;
        }
        let module = name.strip_suffix(".rs").unwrap_or(&name);
        assert!(below.contains(module), "src/{name} is in no row of LAYERS");
    }
}

#[test]
fn xtask_modules_never_import_each_other_both_ways() {
    let src = root().join("xtask").join("src");
    let files = rust_files(&src);
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|file| file.file_stem())
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| stem != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under xtask/src");
        let path = module_path(relative);
        let Some(owner) = path.first() else {
            continue;
        };
        let uses = module_uses_of(file, &path, &|name| names.contains(name));
        graph
            .entry(owner.clone())
            .or_default()
            .extend(uses.into_iter().map(|used| used.module));
    }
    for start in graph.keys() {
        if let Some(cycle) = cycle_from(start, &graph) {
            panic!("xtask modules import in a loop: {}", cycle.join(" → "));
        }
    }
}

/// A path from `start` back to itself, if the graph has one.
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("paths are never empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("source directories are readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file of `src/` belongs to; `None` for the files
/// outside every layer.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    if UNLAYERED.contains(&first.as_ref()) {
        return None;
    }
    Some(first.strip_suffix(".rs").unwrap_or(&first).to_owned())
}

/// The module path of a file: `cri/streaming/mod.rs` is `cri::streaming`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut path: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = path.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last);
        if !matches!(stem, "mod" | "lib" | "main") {
            path.push(stem.to_owned());
        }
    }
    path
}

fn module_uses(file: &Path, path: &[String], table: &BTreeMap<&str, &[&str]>) -> Vec<Use> {
    module_uses_of(file, path, &|name| table.contains_key(name))
}

/// The top-level modules `file` names through `crate::` and through
/// `super::` paths that climb to the crate root; `is_module` tells module
/// names from the root's other items.
fn module_uses_of(file: &Path, path: &[String], is_module: &dyn Fn(&str) -> bool) -> Vec<Use> {
    let text = fs::read_to_string(file).expect("source files are readable");
    let code = code_only(&text);
    let mut uses = BTreeSet::new();
    let mut line = 1;
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\n' {
            line += 1;
            at += 1;
            continue;
        }
        let starts_word = at == 0 || !is_ident(bytes[at - 1]) && bytes[at - 1] != b'$';
        if !starts_word {
            at += 1;
            continue;
        }
        let mut cursor = at;
        let names = if code[cursor..].starts_with("crate::") {
            cursor += "crate::".len();
            Some(first_segments(&code[cursor..]))
        } else if code[cursor..].starts_with("super::") {
            let mut depth = path.len();
            while code[cursor..].starts_with("super::") {
                cursor += "super::".len();
                depth = depth.saturating_sub(1);
            }
            (depth == 0).then(|| first_segments(&code[cursor..]))
        } else {
            None
        };
        for name in names.into_iter().flatten() {
            if is_module(&name) {
                uses.insert(Use {
                    file: file.to_owned(),
                    line,
                    module: name,
                });
            }
        }
        at = cursor.max(at + 1);
    }
    uses.into_iter().collect()
}

/// The first segment of a path, or of each path in a `{...}` group.
fn first_segments(rest: &str) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .bytes()
            .take_while(|b| is_ident(*b))
            .map(char::from)
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    for (index, byte) in group.bytes().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b',' if depth == 0 => item_start = true,
            b if item_start && !b.is_ascii_whitespace() => {
                names.push(ident(&group[index..]));
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `text` with comments and the contents of string and character literals
/// blanked out, line breaks kept.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, byte: u8| out.push(if byte == b'\n' { '\n' } else { ' ' });
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.starts_with(b"//") {
            while at < bytes.len() && bytes[at] != b'\n' {
                out.push(' ');
                at += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while at < bytes.len() {
                if bytes[at..].starts_with(b"/*") {
                    depth += 1;
                    out.push_str("  ");
                    at += 2;
                } else if bytes[at..].starts_with(b"*/") {
                    depth -= 1;
                    out.push_str("  ");
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[at]);
                    at += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(bytes, at) {
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let open = bytes[at..]
                .iter()
                .position(|b| *b == b'"')
                .expect("raw string")
                + 1;
            at += open;
            out.push_str(&" ".repeat(open));
            while at < bytes.len() && !bytes[at..].starts_with(&close) {
                blank(&mut out, bytes[at]);
                at += 1;
            }
            out.push_str(&" ".repeat(close.len().min(bytes.len() - at)));
            at += close.len();
        } else if bytes[at] == b'"' {
            out.push(' ');
            at += 1;
            while at < bytes.len() && bytes[at] != b'"' {
                if bytes[at] == b'\\' && at + 1 < bytes.len() {
                    out.push(' ');
                    at += 1;
                }
                blank(&mut out, bytes[at]);
                at += 1;
            }
            out.push(' ');
            at += 1;
        } else if bytes[at] == b'\'' && char_literal_len(&bytes[at..]).is_some() {
            let len = char_literal_len(&bytes[at..]).expect("checked just above");
            out.push_str(&" ".repeat(len));
            at += len;
        } else {
            out.push(char::from(bytes[at]));
            at += 1;
        }
    }
    out
}

/// The number of `#`s of a raw string literal starting at `at`.
fn raw_string_start(bytes: &[u8], at: usize) -> Option<usize> {
    if at > 0 && is_ident(bytes[at - 1]) {
        return None;
    }
    let rest = bytes[at..].strip_prefix(b"b").unwrap_or(&bytes[at..]);
    let rest = rest.strip_prefix(b"r")?;
    let hashes = rest.iter().take_while(|b| **b == b'#').count();
    (rest.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// The length of a character literal at the start of `rest`; `None` for a
/// lifetime.
fn char_literal_len(rest: &[u8]) -> Option<usize> {
    if rest.get(1) == Some(&b'\\') {
        return rest
            .iter()
            .skip(2)
            .position(|b| *b == b'\'')
            .map(|end| end + 3);
    }
    let width = match rest.get(1)? {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    };
    (rest.get(1 + width) == Some(&b'\'')).then_some(width + 2)
}
