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
/// Files compiled only under `#[cfg(test)]`, beside the code they stand in for.
const TEST_ONLY: &[&str] = &["docker/fake.rs", "cri/testing.rs", "host/recording.rs"];

/// Prints the production lines of each top-level module and their total.
pub fn run(root: &Path) -> Result<(), XtaskError> {
    let src = root.join("src");
    let mut per_module: BTreeMap<String, usize> = BTreeMap::new();
    for file in rust_files(&src)? {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let relative = relative.to_string_lossy().replace('\\', "/");
        let module = relative
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        if module == GENERATED || TEST_ONLY.contains(&relative.as_str()) {
            continue;
        }
        let text = fs::read_to_string(&file).map_err(|err| XtaskError::io(&file, err))?;
        *per_module.entry(module).or_default() += production_lines(&text);
    }
    for (module, lines) in &per_module {
        println!("{lines:>6}  src/{module}");
    }
    println!("{:>6}  total", per_module.values().sum::<usize>());
    Ok(())
}

/// The lines of one file that count: see the module's documentation.
/// A `#[cfg(test)]` item runs to its line ending in `;` (or, at its own
/// indentation, `,`: a field) or, once it has opened a brace, to the line
/// where its braces balance; braces inside
/// string literals of test code are assumed balanced, as they are here.
fn production_lines(text: &str) -> usize {
    let mut lines = text.lines();
    let mut count = 0;
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with("#[cfg(test)]") {
            skip_item(&mut lines);
        } else if !line.is_empty() && !line.starts_with("//") {
            count += 1;
        }
    }
    count
}

/// Consumes the lines of the item that follows a `#[cfg(test)]`.
fn skip_item<'a>(lines: &mut impl Iterator<Item = &'a str>) {
    let mut depth: i64 = 0;
    let mut opened = false;
    // The item's own indentation, from its first line that is not an
    // attribute: a deeper line ending in `,` is a parameter or a bound.
    let mut indent = None;
    for raw in lines {
        let line = raw.trim();
        if indent.is_none() && !line.starts_with("#[") {
            indent = Some(raw.len() - raw.trim_start().len());
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        depth +=
            i64::try_from(opens).unwrap_or(i64::MAX) - i64::try_from(closes).unwrap_or(i64::MAX);
        opened |= opens > 0;
        let own_level = indent == Some(raw.len() - raw.trim_start().len());
        let ended = if opened {
            depth <= 0
        } else {
            line.ends_with(';') || (own_level && line.ends_with(','))
        };
        if ended {
            return;
        }
    }
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
                    \x20   }\n\
                    }\n\
                    struct S {\n\
                    \x20   #[cfg(test)]\n\
                    \x20   seen: u8,\n\
                    }\n\
                    fn h() {}\n";
        assert_eq!(production_lines(text), 5);
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
        assert_eq!(production_lines(text), 2);
    }
}
