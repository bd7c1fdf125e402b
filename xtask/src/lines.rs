//! `cargo xtask lines`: how much production Rust an auditor reads.
//!
//! Counts the lines of `src/` that ship: not blank, not only a comment,
//! not in the generated API (`src/api/`), not in a `#[cfg(test)]` item,
//! and not in the files that exist only for tests (the test doubles). The
//! figure is what the layout is held to: a change that moves code must not
//! make it grow. Doc comments count as comments; a line with code and a
//! trailing comment counts as code.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::XtaskError;

/// Generated from `proto/`: read through the proto, not line by line.
const GENERATED: &str = "api";
/// Prints the production lines of each top-level module and their total.
pub fn run(root: &Path) -> Result<(), XtaskError> {
    let src = root.join("src");
    let mut files = Vec::new();
    let mut test_only = Vec::new();
    for file in rust_files(&src)? {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let relative = relative.to_string_lossy().replace('\\', "/");
        let text = fs::read_to_string(&file).map_err(|err| XtaskError::io(&file, err))?;
        let counted = count(&text);
        // `a/mod.rs` and `lib.rs` declare children beside them, `a/b.rs`
        // in `a/b/`.
        let base = match relative.rsplit_once('/') {
            Some((dir, "mod.rs")) => dir.to_owned(),
            None if relative == "lib.rs" || relative == "main.rs" => String::new(),
            _ => relative.trim_end_matches(".rs").to_owned(),
        };
        for name in &counted.test_modules {
            let child = if base.is_empty() {
                name.clone()
            } else {
                format!("{base}/{name}")
            };
            test_only.push(format!("{child}.rs"));
            test_only.push(format!("{child}/"));
        }
        files.push((relative, counted.lines));
    }
    let mut per_module: BTreeMap<String, usize> = BTreeMap::new();
    for (relative, lines) in files {
        let module = relative.split('/').next().unwrap_or_default();
        let module = module.trim_end_matches(".rs").to_owned();
        let for_tests = test_only.iter().any(|test| {
            relative == *test || (test.ends_with('/') && relative.starts_with(test.as_str()))
        });
        if module != GENERATED && !for_tests {
            *per_module.entry(module).or_default() += lines;
        }
    }
    for (module, lines) in &per_module {
        println!("{lines:>6}  src/{module}");
    }
    println!("{:>6}  total", per_module.values().sum::<usize>());
    Ok(())
}

/// What one file holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counted {
    /// The lines that count: see the module's documentation.
    lines: usize,
    /// The modules it declares under `#[cfg(test)]` (`mod fake;`), whose
    /// files are test doubles and fixtures.
    test_modules: Vec<String>,
}

/// Counts one file; a `#[cfg(test)]` (or `#[cfg(all(test, ...))]`) item
/// is skipped whole.
fn count(text: &str) -> Counted {
    let mut lines = text.lines();
    let mut counted = Counted::default();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with("#[cfg(test)]") || line.starts_with("#[cfg(all(test,") {
            let last = skip_item(&mut lines);
            let declared = last.strip_suffix(';').and_then(|item| {
                let (visibility, name) = item.rsplit_once("mod ")?;
                let visibility = visibility.trim();
                (visibility.is_empty() || visibility.starts_with("pub")).then(|| name.trim())
            });
            counted.test_modules.extend(declared.map(str::to_owned));
        } else if !line.is_empty() && !line.starts_with("//") {
            counted.lines += 1;
        }
    }
    counted
}

/// Consumes the lines of the item that follows a `#[cfg(test)]`; returns
/// the last, trimmed. The code is rustfmt's: an item that does not end on
/// its first line ends at the line, at its own indentation, that closes
/// it, so braces inside string literals do not matter.
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) -> &'a str {
    let mut indent = None;
    for raw in lines {
        let line = raw.trim();
        let depth = raw.len() - raw.trim_start().len();
        let ended = match indent {
            None if line.starts_with("#[") => false,
            None => {
                indent = Some(depth);
                line.ends_with(';') || line.ends_with(',') || line.ends_with('}')
            }
            Some(own) => depth == own && line.starts_with('}'),
        };
        if ended {
            return line;
        }
    }
    ""
}

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, XtaskError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|err| XtaskError::io(&dir, err))? {
            let path = entry.map_err(|err| XtaskError::io(&dir, err))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_test_items_do_not_count() {
        let text = "//! What it owns.\n\
                    \n\
                    use std::fs; // why\n\
                    /// Doc.\n\
                    fn f() {}\n\
                    #[cfg(test)]\n\
                    use std::io;\n\
                    #[cfg(test)]\n\
                    mod tests {\n\
                    \x20   fn g() {\n\
                    \x20       let _ = \"{}\";\n\
                    \x20       let _ = r#\"}\"#;\n\
                    \x20   }\n\
                    }\n\
                    struct S {\n\
                    \x20   #[cfg(test)]\n\
                    \x20   seen: u8,\n\
                    }\n\
                    fn h() {}\n";
        assert_eq!(count(text).lines, 5);
    }

    #[test]
    fn modules_declared_for_tests_are_named() {
        let text = "#[cfg(test)]\n\
                    #[allow(clippy::unwrap_used)]\n\
                    pub(crate) mod testing;\n\
                    #[cfg(test)]\n\
                    use std::io;\n\
                    #[cfg(test)]\n\
                    mod tests {}\n\
                    mod counted;\n";
        let counted = count(text);
        assert_eq!(counted.test_modules, ["testing"]);
        assert_eq!(counted.lines, 1);
    }

    #[test]
    fn a_test_item_spanning_lines_before_its_brace_is_skipped_whole() {
        let text = "#[cfg(test)]\n\
                    impl Fake\n\
                    where\n\
                    \x20   T: Clone,\n\
                    {\n\
                    \x20   fn a() {}\n\
                    }\n\
                    fn counted() {}\n\
                    #[cfg(test)]\n\
                    pub fn long(\n\
                    \x20   a: u8,\n\
                    ) -> u8 {\n\
                    \x20   a\n\
                    }\n\
                    fn also_counted() {}\n";
        assert_eq!(count(text).lines, 2);
    }
}
