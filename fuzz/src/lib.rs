//! What every dockshim fuzz target shares: the entry points AFL++ and a
//! plain replay call, a byte cursor that turns fuzzer input into decisions,
//! and an allocator that counts the bytes live and at their peak.
//!
//! A target is one file in `fuzz_targets/` that ends in
//! `dockshim_fuzz::fuzz_target!(run)`, where `run(&[u8])` drives one parser
//! and asserts what must hold for every input. Built with `--cfg afl` (the
//! instrumented build of `run.sh`), the macro exports
//! `LLVMFuzzerTestOneInput` for Debian's `libAFLDriver.a`, whose `main`
//! runs it in AFL++'s persistent mode; a panic anywhere in the process is
//! then an abort, which afl-fuzz records as a crash. Built plainly, the
//! macro gives a `main` that replays files and directories given as
//! arguments and fails if any input panics, so every corpus is also a
//! regression test.
//!
//! Nothing here knows a protocol; the targets do.

use std::fs;
use std::io::{self, Read};
use std::panic;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Once;

pub mod alloc;

/// Declares the target's entry points; see the module notes.
#[macro_export]
macro_rules! fuzz_target {
    ($run:path) => {
        #[global_allocator]
        static ALLOCATOR: $crate::alloc::Counting = $crate::alloc::Counting;

        /// libFuzzer's entry point, which libAFLDriver's `main` calls
        /// once per input.
        ///
        /// # Safety
        ///
        /// `data` must point to `size` readable bytes that stay valid and
        /// unchanged until the call returns, as libAFLDriver's do.
        #[cfg(afl)]
        #[no_mangle]
        pub unsafe extern "C" fn LLVMFuzzerTestOneInput(
            data: *const u8,
            size: usize,
        ) -> ::std::os::raw::c_int {
            // SAFETY: the caller's guarantee is the one `run_one` needs.
            unsafe { $crate::run_one(data, size, $run) }
        }

        #[cfg(not(afl))]
        fn main() -> ::std::process::ExitCode {
            $crate::replay_main($run)
        }
    };
}

static ABORT_ON_PANIC: Once = Once::new();

/// One fuzzer iteration: `run` over the `size` bytes at `data`. The first
/// call makes every panic in the process, on any thread, an abort after
/// its message is printed: a panic caught by the code under test (a
/// session thread's drop guard) is a finding too.
///
/// # Safety
///
/// `data` must point to `size` readable bytes (or `size` must be 0), valid
/// for the duration of the call.
pub unsafe fn run_one(data: *const u8, size: usize, run: fn(&[u8])) -> i32 {
    ABORT_ON_PANIC.call_once(|| {
        let report = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            report(info);
            std::process::abort();
        }));
    });
    let input = if size == 0 || data.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller guarantees `size` readable bytes at `data`.
        unsafe { std::slice::from_raw_parts(data, size) }
    };
    run(input);
    0
}

/// The plain build's `main`: runs `run` over every file named on the
/// command line (directories: every file in them, sorted), or over stdin
/// when there is no argument. Prints each input that panicked and fails if
/// any did.
pub fn replay_main(run: fn(&[u8])) -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let inputs = if args.is_empty() {
        let mut stdin = Vec::new();
        if let Err(err) = io::stdin().read_to_end(&mut stdin) {
            eprintln!("reading stdin: {err}");
            return ExitCode::FAILURE;
        }
        vec![(PathBuf::from("<stdin>"), stdin)]
    } else {
        match collect_inputs(&args) {
            Ok(inputs) => inputs,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut failed = Vec::new();
    for (path, bytes) in &inputs {
        if panic::catch_unwind(|| run(bytes)).is_err() {
            failed.push(path);
        }
    }
    remove_scratch_dirs();
    if failed.is_empty() {
        println!("replayed {} inputs: no failure", inputs.len());
        ExitCode::SUCCESS
    } else {
        for path in &failed {
            eprintln!("FAILED: {}", path.display());
        }
        eprintln!("{} of {} inputs failed", failed.len(), inputs.len());
        ExitCode::FAILURE
    }
}

fn collect_inputs(args: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let mut paths = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut files = Vec::new();
            let entries = fs::read_dir(arg).map_err(|e| format!("{}: {e}", arg.display()))?;
            for entry in entries {
                let path = entry.map_err(|e| format!("{}: {e}", arg.display()))?.path();
                // afl-fuzz keeps a README.txt beside its crashes.
                if path.is_file() && path.file_name() != Some("README.txt".as_ref()) {
                    files.push(path);
                }
            }
            files.sort();
            paths.extend(files);
        } else {
            paths.push(arg.clone());
        }
    }
    paths
        .into_iter()
        .map(|path| match fs::read(&path) {
            Ok(bytes) => Ok((path, bytes)),
            Err(err) => Err(format!("{}: {err}", path.display())),
        })
        .collect()
}

/// Reads decisions off the front of a fuzzer input; past the end every
/// read yields zeros or empty slices, so a target never has to care how
/// long its input is.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(input: &'a [u8]) -> Cursor<'a> {
        Cursor { rest: input }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// A piece whose length (up to 255 bytes) the input gives first.
    pub fn piece(&mut self) -> &'a [u8] {
        let len = usize::from(self.u8());
        self.take(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// Cut points for feeding `len` bytes in pieces, chosen by `seed`: the
/// same input split differently must parse the same. Returns ascending
/// offsets strictly inside `0..len`.
pub fn split_points(len: usize, seed: &[u8]) -> Vec<usize> {
    let mut points: Vec<usize> = seed
        .iter()
        .filter(|_| len > 1)
        .map(|&b| 1 + usize::from(b) * (len - 1) / 256)
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

/// The pieces of `bytes` cut at `points` (from [`split_points`]).
pub fn pieces<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for &point in points {
        out.push(&bytes[start..point]);
        start = point;
    }
    out.push(&bytes[start..]);
    out
}

/// A reader that hands out its pieces one read at a time, so that a
/// parser reading from it sees exactly the splits a test chose.
#[derive(Debug, Clone)]
pub struct PieceReader<'a> {
    pieces: Vec<&'a [u8]>,
}

impl<'a> PieceReader<'a> {
    pub fn new(pieces: Vec<&'a [u8]>) -> PieceReader<'a> {
        PieceReader { pieces }
    }
}

impl Read for PieceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(first) = self.pieces.first_mut() {
            if first.is_empty() {
                self.pieces.remove(0);
                continue;
            }
            let n = first.len().min(buf.len());
            buf[..n].copy_from_slice(&first[..n]);
            *first = &first[n..];
            return Ok(n);
        }
        Ok(0)
    }
}

/// Where scratch directories go: `$DOCKSHIM_FUZZ_SCRATCH` (run.sh points
/// it into its work directory and removes it), else a tmpfs when there is
/// one.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKSHIM_FUZZ_SCRATCH") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// A scratch directory for a target that reads files, named for this
/// process so that parallel fuzzers never share one. The replay `main`
/// removes it at the end; a fuzzing process leaves it to run.sh.
pub fn scratch_dir(target: &str) -> PathBuf {
    scratch_base().join(format!("dockshim-fuzz-{target}-{}", std::process::id()))
}

fn remove_scratch_dirs() {
    let suffix = format!("-{}", std::process::id());
    let Ok(entries) = fs::read_dir(scratch_base()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("dockshim-fuzz-") && name.ends_with(&suffix) {
            // Best effort: a leftover directory is only untidy.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
