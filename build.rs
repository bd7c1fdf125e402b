//! Link settings of the `dockshim` binary that depend on the C library it
//! will run on; nothing else is built here.
//!
//! A position-independent binary carries one relocation record per pointer
//! in its read-only data (about 70 KB here), which the dynamic loader
//! applies at start. Packed relative relocations (`DT_RELR`) describe the
//! same pointers in about 1 KB and leave fewer pages to touch, so the
//! binary is smaller on disk and in memory. glibc loads them from 2.36 on,
//! and a binary that carries them does not start on an older glibc. They
//! are therefore asked for only when building for the machine the build
//! runs on (host and target the same) and its glibc is 2.36 or newer;
//! cross builds and older systems link as before. A linker that does not
//! know the flag (GNU ld before 2.38) warns and ignores it.

use std::env;
use std::process::Command;

/// The first glibc release that loads `DT_RELR`.
const RELR_GLIBC: (u32, u32) = (2, 36);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && glibc_version() >= Some(RELR_GLIBC) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION`
/// (`glibc 2.36`); `None` when it cannot be told.
fn glibc_version() -> Option<(u32, u32)> {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
