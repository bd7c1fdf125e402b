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
//! Inside each module, no two files or folders use each other, directly or
//! round a longer loop: for every folder under `src/<module>/`, the
//! folder's children (each file, and each sub-folder with everything in
//! it) import each other without a cycle, counting `crate::`, `super::` and
//! `self::` paths. The folder's own `mod.rs` is one of those children. It
//! may declare its children and re-export their items: a `pub use` of a
//! child's item is no use of that child unless `mod.rs`'s own code names
//! the item too. A child that names an item through the folder uses the
//! child that defines it: `mod.rs` for an item `mod.rs` defines, the child
//! `mod.rs` re-exports it from, none for an item from outside the folder.
//! Test code is not read: `#[cfg(test)]` items, and the files only such
//! items declare (the test doubles `cri/testing.rs`, `docker/fake.rs`,
//! `host/recording.rs` and `index/testing.rs`, the fixtures and test
//! files), exist to reach into what they test.
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
    ("mailbox", &[]),
    // The generated CRI API: messages, and service traits over grpc.
    ("api", &["grpc"]),
    // The registry the server and the Docker client record into, and its
    // listener, which reads the gauges of the layers above through a
    // closure.
    ("metrics", &["codec", "grpc", "supervisor"]),
    ("docker", &["codec", "metrics"]),
    ("store", &["codec"]),
    ("stats", &["api", "supervisor"]),
    // The node's mounts, swap, per-process files and OOM score
    // adjustments, behind a trait.
    ("host", &["pidfd", "stats"]),
    (
        "network",
        &[
            "codec",
            "failpoint",
            "mailbox",
            "pidfd",
            "store",
            "supervisor",
        ],
    ),
    ("index", &["codec", "docker", "supervisor"]),
    ("logs", &["docker", "mailbox", "supervisor"]),
    // The streaming protocols; their dockerd backend is cri's.
    ("streaming", &["codec", "mailbox", "supervisor"]),
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
    ("server", &["grpc", "mailbox", "metrics", "supervisor"]),
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

#[test]
fn no_files_or_folders_of_a_module_import_each_other_in_a_loop() {
    let loops = sibling_loops(&root().join("src"));
    assert!(loops.is_empty(), "\n{}", loops.join("\n"));
}

#[test]
fn a_loop_is_found_through_groups_and_re_exports_but_not_through_test_code() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("net")).expect("src/net");
    for (file, text) in [
        ("lib.rs", "pub mod net;\n"),
        (
            "net/mod.rs",
            "mod a;\nmod b;\nmod c;\nmod d;\npub use c::Gamma;\n",
        ),
        ("net/a.rs", "use super::{b::Beta, d};\npub struct Alpha;\n"),
        ("net/b.rs", "pub struct Beta;\nuse crate::net::Gamma;\n"),
        (
            "net/c.rs",
            "pub struct Gamma;\nfn back() -> super::a::Alpha {\n    todo!()\n}\n",
        ),
        (
            "net/d.rs",
            "// super::a::Alpha is named in a comment.\n\
             #[cfg(test)]\nmod tests {\n    use super::super::a::Alpha;\n}\n",
        ),
    ] {
        fs::write(src.join(file), text).expect("a planted file");
    }
    assert_eq!(
        sibling_loops(&src),
        ["in src/net/: a, b, c import each other in a loop:\n  \
          a → b: src/net/a.rs:1\n  \
          b → c: src/net/b.rs:2\n  \
          c → a: src/net/c.rs:2"]
    );
}

#[test]
fn a_mod_rs_is_one_of_its_folders_children_and_re_exporting_a_child_is_no_use() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("src");
    for folder in ["cli", "logs", "store"] {
        fs::create_dir_all(src.join(folder)).expect("a planted folder");
    }
    for (file, text) in [
        ("lib.rs", "pub mod cli;\npub mod logs;\npub mod store;\n"),
        (
            "cli/mod.rs",
            "mod doc;\npub struct Config;\npub fn help() -> String {\n    doc::help_text()\n}\n",
        ),
        (
            "cli/doc.rs",
            "use super::Config;\npub fn help_text() -> String {\n    String::new()\n}\n",
        ),
        (
            "logs/mod.rs",
            "mod format;\n#[cfg(test)]\nmod recording;\npub use format::Encoder;\n\
             pub struct LogError;\n#[cfg(test)]\nmod tests {\n    use super::recording::Recorder;\n}\n",
        ),
        ("logs/format.rs", "use super::LogError;\npub struct Encoder;\n"),
        (
            "logs/recording.rs",
            "use super::{Encoder, LogError};\npub struct Recorder;\n",
        ),
        (
            "store/mod.rs",
            "mod checkpoint;\npub use checkpoint::Checkpoint as Saved;\npub fn write_atomic() {}\n\
             pub fn open() -> Saved {\n    Saved\n}\n",
        ),
        (
            "store/checkpoint.rs",
            "use super::write_atomic;\npub struct Checkpoint;\n",
        ),
    ] {
        fs::write(src.join(file), text).expect("a planted file");
    }
    let logs = |file: &str| vec!["logs".to_owned(), file.to_owned()];
    let tree = SourceTree::read(&src);
    assert!(tree.is_module(&logs("format")) && !tree.is_module(&logs("recording")));
    assert_eq!(
        sibling_loops(&src),
        [
            "in src/cli/: doc, mod.rs import each other in a loop:\n  \
             doc → mod.rs: src/cli/doc.rs:1\n  \
             mod.rs → doc: src/cli/mod.rs:4",
            "in src/store/: checkpoint, mod.rs import each other in a loop:\n  \
             checkpoint → mod.rs: src/store/checkpoint.rs:1\n  \
             mod.rs → checkpoint: src/store/mod.rs:4",
        ]
    );
}

/// Every loop among the children of a folder of `src`, with the files and
/// lines of its imports.
fn sibling_loops(src: &Path) -> Vec<String> {
    let tree = SourceTree::read(src);
    let mut loops = Vec::new();
    for (folder, graph) in tree.sibling_graphs() {
        for component in strongly_connected(&graph) {
            let mut lines = vec![format!(
                "in src/{}/: {} import each other in a loop:",
                folder.join("/"),
                component.iter().cloned().collect::<Vec<_>>().join(", ")
            )];
            for ((from, to), sites) in &graph {
                if component.contains(from) && component.contains(to) {
                    lines.push(format!("  {from} → {to}: {}", sites.join(", ")));
                }
            }
            loops.push(lines.join("\n"));
        }
    }
    loops
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

/// The non-test code of `src/`, file by file, by module path, with the
/// file's name as failures show it.
struct SourceTree {
    files: BTreeMap<Vec<String>, (String, String)>,
}

/// A folder's own file among its children: `mod.rs` is a node of its
/// folder's graph like every file beside it.
const FOLDER_FILE: &str = "mod.rs";

/// A folder's children graph: `(from, to)` with the `file:line`s that make
/// the edge.
type SiblingGraph = BTreeMap<(String, String), Vec<String>>;

impl SourceTree {
    fn read(src: &Path) -> SourceTree {
        let mut files = BTreeMap::new();
        let mut test_only = BTreeSet::new();
        for file in rust_files(src) {
            let relative = file.strip_prefix(src).expect("under src");
            let path = module_path(relative);
            // Generated code `include!`d into an inline module has no
            // module path of its own; its file name is no identifier.
            if path.iter().any(|part| !part.bytes().all(is_ident)) || top_module(relative).is_none()
            {
                continue;
            }
            let (code, test_modules) = non_test_code(&code_only(
                &fs::read_to_string(&file).expect("source files are readable"),
            ));
            test_only.extend(test_modules.into_iter().map(|name| {
                let mut child = path.clone();
                child.push(name);
                child
            }));
            files.insert(path, (format!("src/{}", relative.display()), code));
        }
        files.retain(|path, _| !test_only.iter().any(|test| path.starts_with(test)));
        SourceTree { files }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.files.contains_key(path)
    }

    /// Every folder below the top level with its children graph.
    fn sibling_graphs(&self) -> BTreeMap<Vec<String>, SiblingGraph> {
        let mut graphs: BTreeMap<Vec<String>, SiblingGraph> = BTreeMap::new();
        for (source, (file, code)) in &self.files {
            let (own, re_exports) = split_re_exports(code);
            let mut paths = self.paths_in(source, &own);
            for (line, target) in self.paths_in(source, &re_exports) {
                match self.sibling_edge(source, &target) {
                    // A folder's file that re-exports a child's item only
                    // names it; it uses the child where its own code does.
                    Some((_, from, _)) if from == FOLDER_FILE => {
                        let item = target.last().expect("a re-export names an item");
                        let name = renamed(&re_exports, item).unwrap_or(item);
                        if let Some(line) = word_line(&own, name) {
                            paths.push((line, target));
                        }
                    }
                    _ => paths.push((line, target)),
                }
            }
            paths.sort();
            for (line, target) in paths {
                let Some((folder, from, to)) = self.sibling_edge(source, &target) else {
                    continue;
                };
                let sites = graphs
                    .entry(folder)
                    .or_default()
                    .entry((from, to))
                    .or_default();
                let site = format!("{file}:{line}");
                if !sites.contains(&site) {
                    sites.push(site);
                }
            }
        }
        graphs
    }

    /// The folder, and the two children of it, that an import from module
    /// `source` of the path `target` runs between; `None` for a path within
    /// one child, to another top-level module, or out of the crate. A
    /// folder's own file is the child [`FOLDER_FILE`].
    fn sibling_edge(
        &self,
        source: &[String],
        target: &[String],
    ) -> Option<(Vec<String>, String, String)> {
        let module_len = (0..=target.len())
            .rev()
            .find(|len| self.is_module(&target[..*len]))?;
        let module = &target[..module_len];
        let shared = source
            .iter()
            .zip(module)
            .take_while(|(a, b)| a == b)
            .count();
        if shared == 0 {
            return None;
        }
        let folder = source[..shared].to_vec();
        let from = source.get(shared).map_or(FOLDER_FILE, String::as_str);
        let to = match (module.get(shared), target.get(module_len)) {
            (Some(child), _) => child.clone(),
            (None, Some(item)) => self.owner_of(&folder, item)?,
            (None, None) => FOLDER_FILE.to_owned(),
        };
        (from != to).then(|| (folder, from.to_owned(), to))
    }

    /// The child of `folder` that defines `item` named through the folder:
    /// the child its file imports it from, the folder's own file if it
    /// imports it from nowhere; `None` if it imports it from outside the
    /// folder.
    fn owner_of(&self, folder: &[String], item: &str) -> Option<String> {
        let (_, code) = self.files.get(folder)?;
        let Some((_, path)) = self
            .paths_in(folder, code)
            .into_iter()
            .find(|(_, path)| path.last().map(String::as_str) == Some(item))
        else {
            return Some(FOLDER_FILE.to_owned());
        };
        (path.starts_with(folder) && path.len() > folder.len() + 1)
            .then(|| path[folder.len()].clone())
    }

    /// Every path of `code`, in module `module`, that starts at `crate::`,
    /// `super::`, `self::` or a child module of `module`, made absolute,
    /// with its line.
    fn paths_in(&self, module: &[String], code: &str) -> Vec<(usize, Vec<String>)> {
        let bytes = code.as_bytes();
        let mut paths = Vec::new();
        let mut line = 1;
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'\n' {
                line += 1;
            }
            let starts_word = at == 0
                || !is_ident(bytes[at - 1]) && bytes[at - 1] != b'$' && bytes[at - 1] != b':';
            if !starts_word || !is_ident(bytes[at]) {
                at += 1;
                continue;
            }
            let mut base = module.to_vec();
            let mut cursor = at;
            if code[cursor..].starts_with("crate::") {
                base.clear();
                cursor += "crate::".len();
            } else if code[cursor..].starts_with("self::") {
                cursor += "self::".len();
            } else if code[cursor..].starts_with("super::") {
                while code[cursor..].starts_with("super::") {
                    base.pop();
                    cursor += "super::".len();
                }
            } else {
                let name: String = code[cursor..]
                    .bytes()
                    .take_while(|b| is_ident(*b))
                    .map(char::from)
                    .collect();
                let mut child = module.to_vec();
                child.push(name.clone());
                if !code[cursor + name.len()..].starts_with("::") || !self.is_module(&child) {
                    at += name.len().max(1);
                    continue;
                }
            }
            for tail in path_tails(&code[cursor..]) {
                let mut path = base.clone();
                path.extend(tail);
                paths.push((line, path));
            }
            at = cursor.max(at + 1);
        }
        paths
    }
}

/// `code` split in two, line breaks kept in both: everything but its
/// public `use` items, and those items alone.
fn split_re_exports(code: &str) -> (String, String) {
    let mut own = code.as_bytes().to_vec();
    let mut re_exports: Vec<u8> = code
        .bytes()
        .map(|byte| if byte == b'\n' { byte } else { b' ' })
        .collect();
    let mut from = 0;
    while let Some(found) = code[from..].find("pub") {
        let start = from + found;
        from = start + "pub".len();
        if start > 0 && is_ident(code.as_bytes()[start - 1]) {
            continue;
        }
        let mut rest = code[from..].trim_start();
        if let Some(scoped) = rest.strip_prefix('(') {
            rest = scoped
                .split_once(')')
                .map_or("", |(_, after)| after.trim_start());
        }
        let is_use = rest
            .strip_prefix("use")
            .is_some_and(|after| after.starts_with(|c: char| c.is_whitespace() || c == '{'));
        let Some(len) = rest.find(';').filter(|_| is_use) else {
            continue;
        };
        let end = code.len() - rest.len() + len + 1;
        re_exports[start..end].copy_from_slice(&own[start..end]);
        for byte in &mut own[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = end;
    }
    (
        String::from_utf8(own).expect("blanking keeps UTF-8"),
        String::from_utf8(re_exports).expect("blanking keeps UTF-8"),
    )
}

/// The name `use` items in `code` give `item` with `as`, if they rename it.
fn renamed<'a>(code: &'a str, item: &str) -> Option<&'a str> {
    let mut words = code
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|word| !word.is_empty());
    while let Some(word) = words.next() {
        if word == item {
            let mut after = words.clone();
            if after.next() == Some("as") {
                return after.next();
            }
        }
    }
    None
}

/// The line where `code` first names `name` on its own, not as the tail of
/// a path.
fn word_line(code: &str, name: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    code.match_indices(name)
        .find(|(at, _)| {
            let end = at + name.len();
            (*at == 0 || !is_ident(bytes[at - 1]) && !code[..*at].ends_with("::"))
                && bytes.get(end).is_none_or(|byte| !is_ident(*byte))
        })
        .map(|(at, _)| code[..at].matches('\n').count() + 1)
}

/// The paths a `use` tree or a path expression at the start of `rest`
/// names, one per leaf of its `{...}` groups, without `self` leaves and
/// `as` renames.
fn path_tails(rest: &str) -> Vec<Vec<String>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        return group_items(group)
            .into_iter()
            .flat_map(path_tails)
            .collect();
    }
    let name: String = rest
        .bytes()
        .take_while(|b| is_ident(*b))
        .map(char::from)
        .collect();
    if name.is_empty() || name == "self" {
        return vec![Vec::new()];
    }
    let after = rest[name.len()..].trim_start();
    match after.strip_prefix("::") {
        Some(more) if !more.trim_start().starts_with('<') => path_tails(more)
            .into_iter()
            .map(|tail| std::iter::once(name.clone()).chain(tail).collect())
            .collect(),
        _ => vec![vec![name]],
    }
}

/// The comma-separated items of a `{...}` group whose `{` is already read.
fn group_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, byte) in group.bytes().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' if depth == 0 => {
                items.push(&group[start..index]);
                break;
            }
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&group[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.retain(|item| !item.trim().is_empty());
    items
}

/// `code` (already without comments and literals) with every
/// `#[cfg(test)]` item blanked out, and the modules such items declare
/// from files of their own.
fn non_test_code(code: &str) -> (String, Vec<String>) {
    let mut out = code.as_bytes().to_vec();
    let mut test_modules = Vec::new();
    let mut from = 0;
    while let Some(found) = ["#[cfg(test)]", "#[cfg(all(test"]
        .iter()
        .filter_map(|attribute| code[from..].find(attribute))
        .min()
    {
        let start = from + found;
        let mut depth = 0usize;
        let mut end = code.len();
        let mut item_start = None;
        for (index, byte) in code.bytes().enumerate().skip(start) {
            match byte {
                b'[' | b'(' => depth += 1,
                b']' | b')' => depth = depth.saturating_sub(1),
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = index + 1;
                    let item = &code[item_start.unwrap_or(start)..index];
                    if let Some(name) = item.split_whitespace().skip_while(|w| *w != "mod").nth(1) {
                        test_modules.push(name.to_owned());
                    }
                    break;
                }
                b if depth == 0 && item_start.is_none() && is_ident(b) => item_start = Some(index),
                _ => {}
            }
        }
        for byte in &mut out[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = end;
    }
    (
        String::from_utf8(out).expect("blanking keeps UTF-8"),
        test_modules,
    )
}

/// The groups of nodes of `graph` that reach each other, each of two or
/// more nodes.
fn strongly_connected(graph: &SiblingGraph) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in graph.keys() {
        next.entry(from.as_str()).or_default().push(to.as_str());
    }
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for to in next.get(node).into_iter().flatten() {
                if seen.insert((*to).to_owned()) {
                    stack.push(to);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<String>> =
        next.keys().map(|node| (*node, reach(node))).collect();
    let mut components: Vec<BTreeSet<String>> = Vec::new();
    for (node, reached) in &reaches {
        let component: BTreeSet<String> = reached
            .iter()
            .filter(|other| {
                reaches
                    .get(other.as_str())
                    .is_some_and(|back| back.contains(*node))
            })
            .cloned()
            .collect();
        if component.len() > 1 && !components.contains(&component) {
            components.push(component);
        }
    }
    components
}
