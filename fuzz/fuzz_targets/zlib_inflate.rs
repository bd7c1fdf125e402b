//! The SPDY header-block inflater (`streaming::zlib::Inflater`), checked
//! against an independent zlib (zlib-rs through flate2).
//!
//! The first byte picks the mode; the rest is cut into blocks, each a
//! length byte and that many bytes.
//! - 0: the blocks are a compressed stream as a peer might send it. Every
//!   block we inflate must inflate to the same bytes with the reference,
//!   fed the same blocks.
//! - 1: the blocks are header text, compressed by the reference at the
//!   level the next byte gives, with the SPDY dictionary and a sync flush
//!   after each: we must inflate each to exactly its text.
//! - 2: the same through our own `Deflater`.
//!
//! Always: no panic; no block inflates to more than the limit; inflating
//! one block never holds more than the limit and the window allow; after
//! an error every later block is refused.
#![cfg_attr(afl, no_main)]

use dockshim::codec::zlib::{
    Deflater, Inflater, MAX_INFLATED_BLOCK, SPDY3_DICTIONARY, WINDOW_SIZE,
};
use dockshim::codec::ZlibError;
use dockshim_fuzz::{alloc, Cursor};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The most one `inflate_block` may hold beyond what the inflater held:
/// the output (grown at most twice over), the history and the code tables.
const BLOCK_MEMORY_BOUND: usize = 2 * MAX_INFLATED_BLOCK + 4 * WINDOW_SIZE + 64 * 1024;

fn run(input: &[u8]) {
    let mut cursor = Cursor::new(input);
    let mode = cursor.u8() % 3;
    let level = u32::from(cursor.u8() % 10);
    let mut blocks = Vec::new();
    while !cursor.is_empty() {
        blocks.push(cursor.piece());
    }
    let mut ours = Inflater::new(SPDY3_DICTIONARY, MAX_INFLATED_BLOCK);
    match mode {
        0 => {
            let mut reference = ReferenceInflater::new();
            let mut failed = false;
            for block in blocks {
                let result = inflate(&mut ours, block, failed);
                match result {
                    Ok(text) if !failed => {
                        assert_eq!(reference.block(block).as_ref(), Ok(&text));
                    }
                    _ => failed = true,
                }
            }
        }
        1 => {
            let mut reference = Compress::new(Compression::new(level), true);
            reference
                .set_dictionary(SPDY3_DICTIONARY)
                .unwrap_or_else(|e| panic!("reference set_dictionary: {e}"));
            for text in blocks {
                let compressed = reference_sync_block(&mut reference, text);
                assert_eq!(inflate(&mut ours, &compressed, false).as_deref(), Ok(text));
            }
        }
        _ => {
            let mut deflater = Deflater::new(SPDY3_DICTIONARY);
            for text in blocks {
                let mut compressed = Vec::new();
                deflater.compress_block(text, &mut compressed);
                assert_eq!(inflate(&mut ours, &compressed, false).as_deref(), Ok(text));
            }
        }
    }
}

/// Inflates one block, checking the limits; `failed`: an earlier block
/// failed, so this one must be refused.
fn inflate(ours: &mut Inflater, block: &[u8], failed: bool) -> Result<Vec<u8>, ZlibError> {
    let (result, peak) = alloc::peak_during(|| ours.inflate_block(block));
    assert!(peak <= BLOCK_MEMORY_BOUND, "one block held {peak} bytes");
    if let Ok(text) = &result {
        assert!(text.len() <= MAX_INFLATED_BLOCK);
        assert!(!failed, "a block was inflated after an error");
    }
    result
}

/// `text` as the next block of the reference's stream, ended by a sync flush.
fn reference_sync_block(compress: &mut Compress, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut consumed = 0;
    loop {
        let before = compress.total_in();
        compress
            .compress_vec(&text[consumed..], &mut out, FlushCompress::Sync)
            .unwrap_or_else(|e| panic!("reference compress: {e}"));
        consumed += (compress.total_in() - before) as usize;
        // Room left after the call means the flush completed.
        if consumed == text.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(64));
    }
}

/// The reference decompressor, loading the dictionary when the stream
/// header names one.
struct ReferenceInflater {
    inner: Decompress,
}

impl ReferenceInflater {
    fn new() -> ReferenceInflater {
        ReferenceInflater {
            inner: Decompress::new(true),
        }
    }

    fn block(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 2 + 64);
        let mut consumed = 0;
        loop {
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            let result =
                self.inner
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            let loaded_dictionary = match result {
                Ok(_) => false,
                Err(error) if error.needs_dictionary().is_some() => {
                    self.inner
                        .set_dictionary(SPDY3_DICTIONARY)
                        .map_err(|e| e.to_string())?;
                    true
                }
                Err(error) => return Err(error.to_string()),
            };
            consumed += (self.inner.total_in() - before_in) as usize;
            let progressed = self.inner.total_in() != before_in
                || self.inner.total_out() != before_out
                || loaded_dictionary;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                return Err("no progress".to_owned());
            }
            if out.len() > 2 * MAX_INFLATED_BLOCK {
                return Err("reference output beyond twice our limit".to_owned());
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

dockshim_fuzz::fuzz_target!(run);
