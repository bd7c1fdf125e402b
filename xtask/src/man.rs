//! `cargo xtask man`: writes packaging/dockshim.8 from the same flag table
//! the binary's `--help` uses, so the two cannot drift apart.

use std::path::Path;

use crate::{write_or_check, XtaskError};

/// Where the page is committed, relative to the workspace root.
const MAN_PAGE: &str = "packaging/dockshim.8";

pub fn run(root: &Path, check: bool) -> Result<(), XtaskError> {
    let page = dockshim::cli::man_page();
    write_or_check(root, MAN_PAGE, page.as_ref(), check, "man")
}
