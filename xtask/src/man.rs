//! `cargo xtask man`: writes packaging/dockshim.8 and the example
//! configuration file packaging/dockshim.toml from the same flag table the
//! binary's `--help` uses, so none of them can drift apart.

use std::path::Path;

use crate::{write_or_check, XtaskError};

/// Where the page is committed, relative to the workspace root.
const MAN_PAGE: &str = "packaging/dockshim.8";
/// Where the example configuration file is committed; the Debian package
/// installs it as /etc/dockshim/dockshim.toml.
const EXAMPLE_CONFIG: &str = "packaging/dockshim.toml";

pub fn run(root: &Path, check: bool) -> Result<(), XtaskError> {
    let page = dockshim::cli::man_page();
    write_or_check(root, MAN_PAGE, page.as_ref(), check, "man")?;
    let example = dockshim::cli::example_config();
    write_or_check(root, EXAMPLE_CONFIG, example.as_ref(), check, "man")
}
