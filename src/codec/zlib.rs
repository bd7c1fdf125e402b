//! zlib (RFC 1950) over DEFLATE (RFC 1951), as SPDY/3 uses it to compress
//! header blocks (SPDY/3 section 2.6.10.1): each direction of a session is
//! one zlib stream that starts with a preset dictionary, and every header
//! block in it ends with a sync flush, so that it can be decoded as soon as
//! its frame arrives.
//!
//! It owns the two halves of that scheme and the dictionary itself; it
//! knows nothing of frames, header names or sockets.
//!
//! - [`Inflater`] decodes everything a zlib peer may send: stored,
//!   fixed-Huffman and dynamic-Huffman blocks, with or without the preset
//!   dictionary, back-references reaching into earlier header blocks and
//!   into the dictionary. Its one restriction is the shape SPDY itself
//!   gives the stream: every header block must end on a block boundary
//!   with no bits left over, which a sync (or full) flush guarantees. The
//!   only state kept between blocks is therefore the 32 KiB history and the
//!   running checksum, never a half-read block. Output per block is capped
//!   and checked before any buffer grows.
//! - [`Deflater`] does not search for matches at all: it wraps each header
//!   block in stored (uncompressed) blocks and ends it with the empty stored
//!   block of a sync flush. The header blocks dockshim sends are a few dozen
//!   bytes, so real compression would save little, while a matcher and a
//!   Huffman encoder would be the largest and least auditable part of this
//!   file. Stored blocks are plain DEFLATE that every inflater must accept.
//!
//! Our stream header sets FDICT with the dictionary's Adler-32, exactly as
//! SPDY compressors that use the dictionary do. Stored blocks never refer
//! to the dictionary, so a header without FDICT would decode too (Go's
//! `zlib.NewReaderDict` accepts one and then simply ignores the dictionary),
//! but a C zlib peer learns that it should load the dictionary only from
//! FDICT, and the header every SPDY peer has been tested against is the
//! safest one to send.

use super::ZlibError;

/// The history DEFLATE back-references can reach (RFC 1951 section 2).
pub const WINDOW_SIZE: usize = 32 * 1024;

/// Default cap on the decompressed size of one header block.
pub const MAX_INFLATED_BLOCK: usize = 256 * 1024;

/// The most bytes one stored block can carry (its LEN field is 16 bits).
const MAX_STORED_LEN: usize = 65_535;

/// Longest Huffman code DEFLATE allows.
const MAX_CODE_BITS: usize = 15;

/// Size of the literal/length alphabet, including the two unused symbols
/// the fixed code assigns (286 and 287).
const LITLEN_SYMBOLS: usize = 288;

/// Literal/length and distance codes a dynamic block may define.
const MAX_DYNAMIC_LITLEN: usize = 286;
const MAX_DYNAMIC_DISTANCES: usize = 30;

/// The end-of-block symbol.
const END_OF_BLOCK: usize = 256;

/// CMF byte: method 8 (deflate) with a 32 KiB window (CINFO 7).
const CMF_DEFLATE_32K: u8 = 0x78;

/// FLG bit saying a dictionary id follows the two header bytes.
const FLG_FDICT: u8 = 0x20;

/// The empty stored block a sync flush ends with: BFINAL 0, BTYPE 00,
/// padding to the byte boundary, LEN 0 and NLEN 0xffff.
const SYNC_FLUSH: [u8; 5] = [0x00, 0x00, 0x00, 0xff, 0xff];

/// The order code-length code lengths are sent in (RFC 1951 section 3.2.7).
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Base length and extra bits of length symbols 257..=285.
#[rustfmt::skip]
const LENGTHS: [(u16, u32); 29] = [
    (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0),
    (11, 1), (13, 1), (15, 1), (17, 1), (19, 2), (23, 2), (27, 2), (31, 2),
    (35, 3), (43, 3), (51, 3), (59, 3), (67, 4), (83, 4), (99, 4), (115, 4),
    (131, 5), (163, 5), (195, 5), (227, 5), (258, 0),
];

/// Base distance and extra bits of distance symbols 0..=29.
#[rustfmt::skip]
const DISTANCES: [(u16, u32); 30] = [
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2),
    (17, 3), (25, 3), (33, 4), (49, 4), (65, 5), (97, 5), (129, 6), (193, 6),
    (257, 7), (385, 7), (513, 8), (769, 8), (1025, 9), (1537, 9),
    (2049, 10), (3073, 10), (4097, 11), (6145, 11), (8193, 12), (12289, 12),
    (16385, 13), (24577, 13),
];

/// The SPDY/3 header dictionary, first part: words, each preceded by its
/// length as a 32-bit big-endian number, the way a header block encodes
/// names and values.
#[rustfmt::skip]
const DICTIONARY_WORDS: &[&str] = &[
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
];

/// The SPDY/3 header dictionary, second part: text appended as is.
const DICTIONARY_TEXT: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate",
    "max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

const DICTIONARY_LEN: usize = dictionary_len();

/// The preset dictionary of SPDY/3 header compression (section 2.6.10.1),
/// 1423 bytes whose Adler-32 is 0xe3c6a7c2.
pub const SPDY3_DICTIONARY: &[u8] = &build_dictionary();

const fn dictionary_len() -> usize {
    let mut len = DICTIONARY_TEXT.len();
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        len += 4 + DICTIONARY_WORDS[i].len();
        i += 1;
    }
    len
}

const fn build_dictionary() -> [u8; DICTIONARY_LEN] {
    let mut out = [0u8; DICTIONARY_LEN];
    let mut at = 0;
    let mut i = 0;
    while i < DICTIONARY_WORDS.len() {
        let word = DICTIONARY_WORDS[i].as_bytes();
        // Every word is a few bytes long, far below u32::MAX.
        let prefix = (word.len() as u32).to_be_bytes();
        let mut j = 0;
        while j < 4 {
            out[at] = prefix[j];
            at += 1;
            j += 1;
        }
        j = 0;
        while j < word.len() {
            out[at] = word[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    let text = DICTIONARY_TEXT.as_bytes();
    let mut j = 0;
    while j < text.len() {
        out[at] = text[j];
        at += 1;
        j += 1;
    }
    out
}

/// The Adler-32 checksum of `bytes` (RFC 1950 section 8.2).
pub fn adler32(bytes: &[u8]) -> u32 {
    let mut checksum = Adler32::new();
    checksum.update(bytes);
    checksum.value()
}

/// A running Adler-32.
#[derive(Debug, Clone, Copy)]
struct Adler32 {
    a: u32,
    b: u32,
}

impl Adler32 {
    const MODULUS: u32 = 65_521;
    /// Bytes that can be summed before `b` could overflow a u32 and must be
    /// reduced: the largest n with 255·n(n+1)/2 + (n+1)(MODULUS−1) < 2³².
    const RUN: usize = 5552;

    const fn new() -> Adler32 {
        Adler32 { a: 1, b: 0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        for run in bytes.chunks(Adler32::RUN) {
            for &byte in run {
                self.a += u32::from(byte);
                self.b += self.a;
            }
            self.a %= Adler32::MODULUS;
            self.b %= Adler32::MODULUS;
        }
    }

    fn value(self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// Writes one direction of header compression: a zlib stream of stored
/// blocks (see the module documentation for why).
#[derive(Debug)]
pub struct Deflater {
    dictionary_id: u32,
    header_written: bool,
}

impl Deflater {
    /// A stream whose header names `dictionary`; the peer inflates with it.
    pub fn new(dictionary: &[u8]) -> Deflater {
        Deflater {
            dictionary_id: adler32(dictionary),
            header_written: false,
        }
    }

    /// Appends `block` to `out` as the next piece of the stream, ending
    /// with a sync flush so the peer can decode it at once. The first call
    /// also writes the stream header.
    pub fn compress_block(&mut self, block: &[u8], out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&[CMF_DEFLATE_32K, header_flags(CMF_DEFLATE_32K, FLG_FDICT)]);
            out.extend_from_slice(&self.dictionary_id.to_be_bytes());
            self.header_written = true;
        }
        for stored in block.chunks(MAX_STORED_LEN) {
            // `chunks` yields at most MAX_STORED_LEN (65535) bytes.
            let len = stored.len() as u16;
            // BFINAL 0 and BTYPE 00 in the low three bits, then padding.
            out.push(0x00);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(stored);
        }
        out.extend_from_slice(&SYNC_FLUSH);
    }
}

/// FLG with its FCHECK bits set so that CMF·256 + FLG is a multiple of 31.
const fn header_flags(cmf: u8, flags: u8) -> u8 {
    let remainder = (((cmf as u16) << 8) | flags as u16) % 31;
    // The remainder is below 31, so the sum fits in the five FCHECK bits.
    flags + ((31 - remainder) % 31) as u8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InflateState {
    /// Nothing read yet: the next block starts with the stream header.
    Header,
    /// Between blocks.
    Blocks,
    /// The final block and the checksum were read.
    Ended,
    /// An error was returned; the history is no longer trustworthy.
    Failed,
}

/// Reads one direction of header compression, one header block at a time.
#[derive(Debug)]
pub struct Inflater {
    dictionary: &'static [u8],
    max_block: usize,
    state: InflateState,
    /// The last `WINDOW_SIZE` bytes of output, preceded at first by the
    /// dictionary: everything a back-reference may reach.
    history: Vec<u8>,
    checksum: Adler32,
}

impl Inflater {
    /// An inflater for a stream that may use `dictionary`, refusing blocks
    /// that decompress to more than `max_block` bytes.
    pub fn new(dictionary: &'static [u8], max_block: usize) -> Inflater {
        Inflater {
            dictionary,
            max_block,
            state: InflateState::Header,
            history: Vec::new(),
            checksum: Adler32::new(),
        }
    }

    /// Decompresses the next header block: `input` must hold exactly the
    /// compressed bytes of one or more whole, flushed blocks (the first
    /// call also the stream header). After an error every later call
    /// fails too.
    pub fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, ZlibError> {
        match self.state {
            InflateState::Failed => return Err(ZlibError::Failed),
            InflateState::Ended => return Err(ZlibError::AfterEnd),
            InflateState::Header | InflateState::Blocks => {}
        }
        let result = self.inflate(input);
        if result.is_err() {
            self.state = InflateState::Failed;
            self.history = Vec::new();
        }
        result
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, ZlibError> {
        let mut bits = BitReader::new(input);
        if self.state == InflateState::Header {
            self.read_header(&mut bits)?;
            self.state = InflateState::Blocks;
        }
        let mut output = Output::new(std::mem::take(&mut self.history), self.max_block);
        let mut trailer = None;
        while !bits.is_drained() {
            let last = bits.bits(1)? == 1;
            match bits.bits(2)? {
                0 => stored_block(&mut bits, &mut output)?,
                1 => {
                    let (litlen, distance) = fixed_codes()?;
                    coded_block(&mut bits, &mut output, &litlen, &distance)?;
                }
                2 => {
                    let (litlen, distance) = dynamic_codes(&mut bits)?;
                    coded_block(&mut bits, &mut output, &litlen, &distance)?;
                }
                _ => return Err(ZlibError::BadBlock("reserved block type 3")),
            }
            if last {
                bits.align();
                let mut checksum = [0u8; 4];
                checksum.copy_from_slice(bits.bytes(4)?);
                trailer = Some(u32::from_be_bytes(checksum));
                if !bits.is_drained() {
                    return Err(ZlibError::AfterEnd);
                }
            }
        }
        let (inflated, history) = output.finish();
        self.checksum.update(&inflated);
        if let Some(found) = trailer {
            let expected = self.checksum.value();
            if found != expected {
                return Err(ZlibError::BadChecksum { expected, found });
            }
            self.state = InflateState::Ended;
        }
        self.history = history;
        Ok(inflated)
    }

    fn read_header(&mut self, bits: &mut BitReader<'_>) -> Result<(), ZlibError> {
        let header = bits.bytes(2)?;
        let (cmf, flags) = (header[0], header[1]);
        if cmf & 0x0f != 8 {
            return Err(ZlibError::BadHeader("compression method is not deflate"));
        }
        if cmf >> 4 > 7 {
            return Err(ZlibError::BadHeader("window larger than 32 KiB"));
        }
        if ((u16::from(cmf) << 8) | u16::from(flags)) % 31 != 0 {
            return Err(ZlibError::BadHeader("check bits do not match"));
        }
        if flags & FLG_FDICT != 0 {
            let mut id = [0u8; 4];
            id.copy_from_slice(bits.bytes(4)?);
            let found = u32::from_be_bytes(id);
            let expected = adler32(self.dictionary);
            if found != expected {
                return Err(ZlibError::WrongDictionary { expected, found });
            }
            let reachable = self.dictionary.len().saturating_sub(WINDOW_SIZE);
            self.history
                .extend_from_slice(&self.dictionary[reachable..]);
        }
        Ok(())
    }
}

/// The history followed by the output of the block being decoded.
struct Output {
    bytes: Vec<u8>,
    /// Where this block's output starts in `bytes`.
    start: usize,
    limit: usize,
}

impl Output {
    fn new(history: Vec<u8>, limit: usize) -> Output {
        let start = history.len();
        Output {
            bytes: history,
            start,
            limit,
        }
    }

    /// Refuses output that would pass the limit, before anything grows.
    fn make_room(&self, more: usize) -> Result<(), ZlibError> {
        let written = self.bytes.len() - self.start;
        match written.checked_add(more) {
            Some(total) if total <= self.limit => Ok(()),
            _ => Err(ZlibError::TooLarge { limit: self.limit }),
        }
    }

    fn push(&mut self, byte: u8) -> Result<(), ZlibError> {
        self.make_room(1)?;
        self.bytes.push(byte);
        Ok(())
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), ZlibError> {
        self.make_room(bytes.len())?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    /// Appends `length` bytes copied from `distance` bytes back; the copy
    /// may overlap what it appends, which repeats a short pattern.
    fn copy_back(&mut self, distance: usize, length: usize) -> Result<(), ZlibError> {
        let available = self.bytes.len();
        if distance > available {
            return Err(ZlibError::DistanceTooFar {
                distance,
                available,
            });
        }
        self.make_room(length)?;
        for _ in 0..length {
            // `distance` is at least 1 (the smallest base) and at most the
            // length before this loop, which only grows.
            let byte = self.bytes[self.bytes.len() - distance];
            self.bytes.push(byte);
        }
        Ok(())
    }

    /// This block's output, and the history the next block starts from.
    fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let inflated = self.bytes[self.start..].to_vec();
        let mut history = self.bytes;
        if history.len() > WINDOW_SIZE {
            history.drain(..history.len() - WINDOW_SIZE);
        }
        (inflated, history)
    }
}

/// Reads DEFLATE's bit order: bits from the least significant end of each
/// byte, fields least significant bit first.
struct BitReader<'a> {
    input: &'a [u8],
    position: usize,
    buffer: u32,
    count: u32,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> BitReader<'a> {
        BitReader {
            input,
            position: 0,
            buffer: 0,
            count: 0,
        }
    }

    /// The next `n` bits (at most 16) as a number.
    fn bits(&mut self, n: u32) -> Result<u32, ZlibError> {
        while self.count < n {
            let byte = *self
                .input
                .get(self.position)
                .ok_or(ZlibError::UnfinishedBlock)?;
            self.position += 1;
            // `count` is below 16 here, so the byte fits in the 32-bit buffer.
            self.buffer |= u32::from(byte) << self.count;
            self.count += 8;
        }
        let value = self.buffer & ((1u32 << n) - 1);
        self.buffer >>= n;
        self.count -= n;
        Ok(value)
    }

    /// Drops the rest of the current byte. Bytes are loaded only when a
    /// field needs them, so the buffered bits all belong to that byte.
    fn align(&mut self) {
        self.buffer = 0;
        self.count = 0;
    }

    /// The next `n` whole bytes; only valid when aligned.
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ZlibError> {
        let end = self
            .position
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or(ZlibError::UnfinishedBlock)?;
        let bytes = &self.input[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    /// True when every bit was used: the input ended on a block boundary
    /// that is also a byte boundary.
    fn is_drained(&self) -> bool {
        self.position == self.input.len() && self.count == 0
    }
}

/// Whether a code may leave bit patterns unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incomplete {
    Refused,
    /// Allowed only for an empty code or a single one-bit code, as zlib
    /// allows for literal/length and distance codes.
    SingleCodeAllowed,
}

/// A canonical Huffman code, decoded one bit at a time: `counts[n]` codes
/// have length n, and `symbols` lists the symbols by code order.
struct Huffman {
    counts: [u16; MAX_CODE_BITS + 1],
    symbols: [u16; LITLEN_SYMBOLS],
}

impl Huffman {
    /// The code whose symbol `i` has length `lengths[i]` (0 = unused).
    /// Every length must be at most 15; callers read them from 3-bit fields
    /// or decode them as symbols 0..=15.
    fn new(lengths: &[u8], incomplete: Incomplete) -> Result<Huffman, ZlibError> {
        let mut counts = [0u16; MAX_CODE_BITS + 1];
        for &length in lengths {
            counts[usize::from(length)] += 1;
        }
        let used = lengths.len() - usize::from(counts[0]);
        // Codes still available at each length: it must never go negative.
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left = (left << 1) - i32::from(count);
            if left < 0 {
                return Err(ZlibError::BadCodeLengths("over-subscribed code"));
            }
        }
        let single_short_code = used == 0 || (used == 1 && counts[1] == 1);
        if left > 0 && !(incomplete == Incomplete::SingleCodeAllowed && single_short_code) {
            return Err(ZlibError::BadCodeLengths("incomplete code"));
        }
        let mut next = [0u16; MAX_CODE_BITS + 1];
        for length in 1..MAX_CODE_BITS {
            next[length + 1] = next[length] + counts[length];
        }
        let mut symbols = [0u16; LITLEN_SYMBOLS];
        for (symbol, &length) in lengths.iter().enumerate() {
            if length != 0 {
                let slot = &mut next[usize::from(length)];
                // At most LITLEN_SYMBOLS symbols, so both fit in u16.
                symbols[usize::from(*slot)] = symbol as u16;
                *slot += 1;
            }
        }
        counts[0] = 0;
        Ok(Huffman { counts, symbols })
    }

    /// Reads one code. Codes of one length are consecutive numbers, and
    /// `first` is the first code of the current length: a code below
    /// `first + count` is complete.
    fn decode(&self, bits: &mut BitReader<'_>) -> Result<usize, ZlibError> {
        let mut code: u32 = 0;
        let mut first: u32 = 0;
        let mut index: u32 = 0;
        for &count in &self.counts[1..] {
            code |= bits.bits(1)?;
            let count = u32::from(count);
            // `code >= first` holds at every length of a code that is not
            // over-subscribed, which `new` checked.
            if code < first + count {
                return Ok(usize::from(self.symbols[(index + code - first) as usize]));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(ZlibError::BadSymbol("bits match no code"))
    }
}

fn stored_block(bits: &mut BitReader<'_>, output: &mut Output) -> Result<(), ZlibError> {
    bits.align();
    let header = bits.bytes(4)?;
    let len = u16::from_le_bytes([header[0], header[1]]);
    let complement = u16::from_le_bytes([header[2], header[3]]);
    if len != !complement {
        return Err(ZlibError::BadBlock(
            "stored length does not match its complement",
        ));
    }
    output.extend(bits.bytes(usize::from(len))?)
}

/// The fixed codes of RFC 1951 section 3.2.6. The distance code is built
/// with all 32 five-bit codes so that it is complete; 30 and 31 are
/// refused when decoded.
fn fixed_codes() -> Result<(Huffman, Huffman), ZlibError> {
    let mut litlen = [8u8; LITLEN_SYMBOLS];
    litlen[144..256].fill(9);
    litlen[256..280].fill(7);
    Ok((
        Huffman::new(&litlen, Incomplete::Refused)?,
        Huffman::new(&[5u8; 32], Incomplete::Refused)?,
    ))
}

/// Reads the code definitions at the start of a dynamic block (RFC 1951
/// section 3.2.7).
fn dynamic_codes(bits: &mut BitReader<'_>) -> Result<(Huffman, Huffman), ZlibError> {
    let litlen_count = bits.bits(5)? as usize + 257;
    let distance_count = bits.bits(5)? as usize + 1;
    let code_length_count = bits.bits(4)? as usize + 4;
    if litlen_count > MAX_DYNAMIC_LITLEN || distance_count > MAX_DYNAMIC_DISTANCES {
        return Err(ZlibError::BadCodeLengths(
            "more than 286 literal/length or 30 distance codes",
        ));
    }
    let mut code_lengths = [0u8; 19];
    for &symbol in &CODE_LENGTH_ORDER[..code_length_count] {
        // A 3-bit field.
        code_lengths[symbol] = bits.bits(3)? as u8;
    }
    let code_length_code = Huffman::new(&code_lengths, Incomplete::Refused)?;

    let total = litlen_count + distance_count;
    let mut lengths = [0u8; MAX_DYNAMIC_LITLEN + MAX_DYNAMIC_DISTANCES];
    let mut filled = 0;
    while filled < total {
        let (length, repeat) = match code_length_code.decode(bits)? {
            // Symbols 0..=15 are lengths themselves.
            symbol @ 0..=15 => (symbol as u8, 1),
            16 => {
                let previous = *filled
                    .checked_sub(1)
                    .and_then(|i| lengths.get(i))
                    .ok_or(ZlibError::BadCodeLengths("repeat with no previous length"))?;
                (previous, 3 + bits.bits(2)? as usize)
            }
            17 => (0, 3 + bits.bits(3)? as usize),
            // 18: the code-length alphabet has nothing above it.
            _ => (0, 11 + bits.bits(7)? as usize),
        };
        if filled + repeat > total {
            return Err(ZlibError::BadCodeLengths("lengths repeat past the end"));
        }
        lengths[filled..filled + repeat].fill(length);
        filled += repeat;
    }
    if lengths[END_OF_BLOCK] == 0 {
        return Err(ZlibError::BadCodeLengths("no end-of-block code"));
    }
    Ok((
        Huffman::new(&lengths[..litlen_count], Incomplete::SingleCodeAllowed)?,
        Huffman::new(&lengths[litlen_count..total], Incomplete::SingleCodeAllowed)?,
    ))
}

/// Decodes the symbols of a Huffman-coded block up to its end-of-block.
fn coded_block(
    bits: &mut BitReader<'_>,
    output: &mut Output,
    litlen: &Huffman,
    distance: &Huffman,
) -> Result<(), ZlibError> {
    loop {
        let symbol = litlen.decode(bits)?;
        if symbol < END_OF_BLOCK {
            // A literal: below 256.
            output.push(symbol as u8)?;
            continue;
        }
        if symbol == END_OF_BLOCK {
            return Ok(());
        }
        let &(base, extra) = LENGTHS
            .get(symbol - END_OF_BLOCK - 1)
            .ok_or(ZlibError::BadSymbol("literal/length symbol 286 or 287"))?;
        let length = usize::from(base) + bits.bits(extra)? as usize;
        let &(base, extra) = DISTANCES
            .get(distance.decode(bits)?)
            .ok_or(ZlibError::BadSymbol("distance symbol 30 or 31"))?;
        let back = usize::from(base) + bits.bits(extra)? as usize;
        output.copy_back(back, length)?;
    }
}

/// An independent zlib (zlib-rs through flate2) for the differential tests
/// of this module and of `spdy`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod reference {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

    /// Compresses with zlib's own matcher and Huffman coder.
    pub(crate) struct ReferenceDeflater(Compress);

    impl ReferenceDeflater {
        /// A zlib stream at `level` (0-9), naming `dictionary` if given.
        pub(crate) fn new(level: u32, dictionary: Option<&[u8]>) -> ReferenceDeflater {
            let mut compress = Compress::new(Compression::new(level), true);
            if let Some(dictionary) = dictionary {
                compress.set_dictionary(dictionary).expect("set_dictionary");
            }
            ReferenceDeflater(compress)
        }

        /// `input` as the next block, ended by a sync flush.
        pub(crate) fn sync_block(&mut self, input: &[u8]) -> Vec<u8> {
            self.run(input, FlushCompress::Sync)
        }

        /// `input` as the final block, with the checksum trailer.
        pub(crate) fn final_block(&mut self, input: &[u8]) -> Vec<u8> {
            self.run(input, FlushCompress::Finish)
        }

        fn run(&mut self, input: &[u8], flush: FlushCompress) -> Vec<u8> {
            let mut out = Vec::with_capacity(input.len() + 64);
            let mut consumed = 0;
            loop {
                let before = self.0.total_in();
                self.0
                    .compress_vec(&input[consumed..], &mut out, flush)
                    .expect("compress");
                consumed += usize::try_from(self.0.total_in() - before).unwrap();
                // Spare room left after the call means the flush completed.
                if consumed == input.len() && out.len() < out.capacity() {
                    return out;
                }
                out.reserve(out.capacity().max(64));
            }
        }
    }

    /// Decompresses a stream block by block, loading the dictionary when
    /// the stream header asks for it.
    pub(crate) struct ReferenceInflater {
        inner: Decompress,
        dictionary: &'static [u8],
    }

    impl ReferenceInflater {
        pub(crate) fn new(dictionary: &'static [u8]) -> ReferenceInflater {
            ReferenceInflater {
                inner: Decompress::new(true),
                dictionary,
            }
        }

        pub(crate) fn block(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
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
                            .set_dictionary(self.dictionary)
                            .map_err(|e| e.to_string())?;
                        true
                    }
                    Err(error) => return Err(error.to_string()),
                };
                consumed += usize::try_from(self.inner.total_in() - before_in).unwrap();
                let progressed = self.inner.total_in() != before_in
                    || self.inner.total_out() != before_out
                    || loaded_dictionary;
                if consumed == input.len() && out.len() < out.capacity() {
                    return Ok(out);
                }
                if !progressed && out.len() < out.capacity() {
                    return Err("no progress".to_owned());
                }
                out.reserve(out.capacity().max(64));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::reference::{ReferenceDeflater, ReferenceInflater};
    use super::*;

    /// The dictionary id SPDY/3 compressors write into their zlib header.
    const SPDY3_DICTIONARY_ID: u32 = 0xe3c6_a7c2;

    fn rng(seed: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(seed)
    }

    fn inflater() -> Inflater {
        Inflater::new(SPDY3_DICTIONARY, MAX_INFLATED_BLOCK)
    }

    /// Random bytes drawn from a small alphabet, so that zlib finds matches.
    fn random_text(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
        let alphabet = b"abcdefgh:/-. 0123456789\0";
        (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect()
    }

    /// A SPDY/3 header block, the kind of text the dictionary was made for.
    fn header_like(rng: &mut fastrand::Rng) -> Vec<u8> {
        const NAMES: [&str; 8] = [
            "streamtype",
            "port",
            "requestid",
            ":method",
            ":path",
            "content-type",
            "user-agent",
            "x-stream-protocol-version",
        ];
        const VALUES: [&str; 8] = [
            "error",
            "stdin",
            "stdout",
            "resize",
            "8080",
            "v4.channel.k8s.io",
            "kubectl/v1.31.0 (linux/amd64)",
            "GET",
        ];
        let count = rng.usize(0..8);
        let mut block = (count as u32).to_be_bytes().to_vec();
        for _ in 0..count {
            let name = NAMES[rng.usize(..NAMES.len())];
            let value = VALUES[rng.usize(..VALUES.len())];
            for field in [name, value] {
                block.extend_from_slice(&(field.len() as u32).to_be_bytes());
                block.extend_from_slice(field.as_bytes());
            }
        }
        block
    }

    #[test]
    fn the_dictionary_is_the_one_spdy3_peers_name_in_their_zlib_header() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        assert_eq!(adler32(SPDY3_DICTIONARY), SPDY3_DICTIONARY_ID);
        assert!(SPDY3_DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(SPDY3_DICTIONARY.ends_with(b"utf-,*,enq=0."));
        // The independent zlib computes the same id from our bytes.
        let block = ReferenceDeflater::new(9, Some(SPDY3_DICTIONARY)).sync_block(b"x");
        assert_eq!(block[2..6], SPDY3_DICTIONARY_ID.to_be_bytes());
    }

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"a"), 0x0062_0062);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        // Long enough to need the modulus reduction several times.
        let long = vec![0xffu8; 100_000];
        let mut a: u64 = 1;
        let mut b: u64 = 0;
        for &byte in &long {
            a = (a + u64::from(byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(u64::from(adler32(&long)), (b << 16) | a);
    }

    #[test]
    fn inflates_every_block_of_a_reference_stream_at_every_level() {
        let mut rng = rng(1);
        for level in 0..=9 {
            let mut reference = ReferenceDeflater::new(level, Some(SPDY3_DICTIONARY));
            let mut ours = inflater();
            for round in 0..60 {
                let block = match round % 3 {
                    0 => header_like(&mut rng),
                    1 => {
                        let len = rng.usize(0..3000);
                        random_text(&mut rng, len)
                    }
                    _ => (0..rng.usize(0..500)).map(|_| rng.u8(..)).collect(),
                };
                let compressed = reference.sync_block(&block);
                assert_eq!(
                    ours.inflate_block(&compressed),
                    Ok(block),
                    "level {level} round {round}"
                );
            }
        }
    }

    #[test]
    fn back_references_reach_into_earlier_blocks_and_the_dictionary() {
        let mut reference = ReferenceDeflater::new(9, Some(SPDY3_DICTIONARY));
        let mut ours = inflater();
        let block = b"\0\0\0\x01\0\0\0\x0acontent-type\0\0\0\x09text/html".to_vec();
        let first = reference.sync_block(&block);
        let second = reference.sync_block(&block);
        // The repeat is coded as a match, far shorter than the text.
        assert!(second.len() < block.len() / 2, "{second:?}");
        assert_eq!(ours.inflate_block(&first), Ok(block.clone()));
        assert_eq!(ours.inflate_block(&second), Ok(block));
    }

    #[test]
    fn history_is_kept_across_more_than_one_window_of_output() {
        let mut rng = rng(2);
        let mut reference = ReferenceDeflater::new(6, Some(SPDY3_DICTIONARY));
        let mut ours = inflater();
        // Blocks near the limit, each repeating parts of the one before.
        let mut previous = random_text(&mut rng, 40_000);
        for _ in 0..6 {
            let mut block = previous[previous.len() - 20_000..].to_vec();
            block.extend(random_text(&mut rng, 100_000));
            block.extend_from_slice(&previous[..30_000]);
            let compressed = reference.sync_block(&block);
            assert_eq!(ours.inflate_block(&compressed), Ok(block.clone()));
            previous = block;
        }
    }

    #[test]
    fn a_stream_without_a_dictionary_is_accepted() {
        let mut reference = ReferenceDeflater::new(6, None);
        let mut ours = inflater();
        for block in [&b"first header block"[..], b"", b"first header block again"] {
            assert_eq!(
                ours.inflate_block(&reference.sync_block(block)),
                Ok(block.to_vec())
            );
        }
    }

    #[test]
    fn the_reference_inflates_every_block_we_compress() {
        let mut rng = rng(3);
        let mut ours = Deflater::new(SPDY3_DICTIONARY);
        let mut reference = ReferenceInflater::new(SPDY3_DICTIONARY);
        let mut sizes = vec![0, 1, 65_535, 65_536, 200_000];
        sizes.extend((0..100).map(|_| rng.usize(0..2000)));
        for size in sizes {
            let block: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
            let mut compressed = Vec::new();
            ours.compress_block(&block, &mut compressed);
            assert!(compressed.ends_with(&SYNC_FLUSH));
            assert_eq!(reference.block(&compressed), Ok(block), "size {size}");
        }
    }

    #[test]
    fn our_stream_header_names_the_dictionary() {
        let mut compressed = Vec::new();
        Deflater::new(SPDY3_DICTIONARY).compress_block(b"", &mut compressed);
        assert_eq!(compressed[..2], [0x78, 0x20]);
        assert_eq!(compressed[2..6], SPDY3_DICTIONARY_ID.to_be_bytes());
        assert_eq!(compressed[6..], SYNC_FLUSH);
        assert_eq!(inflater().inflate_block(&compressed), Ok(Vec::new()));
    }

    #[test]
    fn our_blocks_round_trip_through_our_inflater() {
        let mut rng = rng(4);
        let mut deflater = Deflater::new(SPDY3_DICTIONARY);
        let mut ours = inflater();
        for _ in 0..50 {
            let block = header_like(&mut rng);
            let mut compressed = Vec::new();
            deflater.compress_block(&block, &mut compressed);
            assert_eq!(ours.inflate_block(&compressed), Ok(block));
        }
    }

    #[test]
    fn a_final_block_is_checked_against_its_checksum_and_ends_the_stream() {
        let mut reference = ReferenceDeflater::new(6, Some(SPDY3_DICTIONARY));
        let mut ours = inflater();
        assert_eq!(
            ours.inflate_block(&reference.sync_block(b"one")),
            Ok(b"one".to_vec())
        );
        assert_eq!(
            ours.inflate_block(&reference.final_block(b"two")),
            Ok(b"two".to_vec())
        );
        assert_eq!(ours.inflate_block(b""), Err(ZlibError::AfterEnd));

        let mut reference = ReferenceDeflater::new(6, Some(SPDY3_DICTIONARY));
        let mut corrupt = reference.final_block(b"three");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(
            inflater().inflate_block(&corrupt),
            Err(ZlibError::BadChecksum { .. })
        ));
    }

    /// Writes DEFLATE bit fields for hand-made malformed streams.
    struct BitWriter {
        out: Vec<u8>,
        buffer: u32,
        count: u32,
    }

    impl BitWriter {
        /// A stream starting with a header that names no dictionary.
        fn new() -> BitWriter {
            BitWriter {
                out: vec![0x78, 0x01],
                buffer: 0,
                count: 0,
            }
        }

        fn bits(&mut self, value: u32, n: u32) -> &mut BitWriter {
            self.buffer |= value << self.count;
            self.count += n;
            while self.count >= 8 {
                self.out.push(self.buffer as u8);
                self.buffer >>= 8;
                self.count -= 8;
            }
            self
        }

        /// A Huffman code, which goes out most significant bit first.
        fn code(&mut self, code: u32, n: u32) -> &mut BitWriter {
            for i in (0..n).rev() {
                self.bits((code >> i) & 1, 1);
            }
            self
        }

        fn finish(&mut self) -> Vec<u8> {
            if self.count > 0 {
                self.out.push(self.buffer as u8);
            }
            std::mem::take(&mut self.out)
        }
    }

    /// A dynamic block header whose code-length code gives symbols 0, 8, 17
    /// and 18 two-bit codes 00, 01, 10, 11; the caller sends the lengths.
    fn dynamic_header(w: &mut BitWriter) {
        w.bits(0, 1).bits(2, 2); // not final, dynamic
        w.bits(0, 5).bits(0, 5).bits(15, 4); // 257 + 1 codes, 19 code-length lengths
        for symbol in CODE_LENGTH_ORDER {
            w.bits(
                if [0, 8, 17, 18].contains(&symbol) {
                    2
                } else {
                    0
                },
                3,
            );
        }
    }

    fn inflate_one(input: &[u8]) -> Result<Vec<u8>, ZlibError> {
        inflater().inflate_block(input)
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert!(matches!(
            inflate_one(&[0x79, 0x9c]),
            Err(ZlibError::BadHeader(_))
        ));
        assert!(matches!(
            inflate_one(&[0x78, 0x9d]),
            Err(ZlibError::BadHeader(_))
        ));
        // CINFO 8 with valid check bits.
        assert!(matches!(
            inflate_one(&[0x88, header_flags(0x88, 0)]),
            Err(ZlibError::BadHeader(_))
        ));
        assert_eq!(
            inflate_one(&[0x78, 0x20, 1, 2, 3, 4]),
            Err(ZlibError::WrongDictionary {
                expected: SPDY3_DICTIONARY_ID,
                found: 0x0102_0304
            })
        );
        assert_eq!(inflate_one(&[0x78]), Err(ZlibError::UnfinishedBlock));
        assert_eq!(
            inflate_one(&[0x78, 0x20, 1]),
            Err(ZlibError::UnfinishedBlock)
        );
    }

    #[test]
    fn malformed_block_framing_is_refused() {
        let reserved = BitWriter::new().bits(0, 1).bits(3, 2).finish();
        assert!(matches!(
            inflate_one(&reserved),
            Err(ZlibError::BadBlock(_))
        ));
        let mismatched = [0x78, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00];
        assert!(matches!(
            inflate_one(&mismatched),
            Err(ZlibError::BadBlock(_))
        ));
    }

    #[test]
    fn bad_huffman_tables_are_refused() {
        let mut w = BitWriter::new();
        w.bits(0, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4);
        for _ in 0..19 {
            w.bits(1, 3); // nineteen one-bit codes
        }
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadCodeLengths("over-subscribed code"))
        );

        let mut w = BitWriter::new();
        w.bits(0, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4);
        w.bits(1, 3).bits(0, 3).bits(0, 3).bits(0, 3); // only symbol 16, one bit
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadCodeLengths("incomplete code"))
        );

        let mut w = BitWriter::new();
        dynamic_header(&mut w);
        w.code(0b11, 2).bits(127, 7); // 138 zeros
        w.code(0b11, 2).bits(108, 7); // 119 zeros: every literal/length unused
        w.code(0b01, 2); // the distance code has length 8
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadCodeLengths("no end-of-block code"))
        );

        let mut w = BitWriter::new();
        dynamic_header(&mut w);
        w.code(0b11, 2).bits(127, 7).code(0b11, 2).bits(127, 7); // 276 of 258
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadCodeLengths("lengths repeat past the end"))
        );

        let mut w = BitWriter::new();
        w.bits(0, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4);
        w.bits(1, 3).bits(0, 3).bits(0, 3).bits(1, 3); // symbols 16 and 0, one bit each
        w.code(1, 1).bits(0, 2); // 16 first: nothing to repeat
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadCodeLengths("repeat with no previous length"))
        );
    }

    #[test]
    fn reserved_symbols_of_the_fixed_code_are_refused() {
        let mut w = BitWriter::new();
        w.bits(0, 1).bits(1, 2).code(0xc0 + 6, 8); // literal/length 286
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadSymbol("literal/length symbol 286 or 287"))
        );

        let mut w = BitWriter::new();
        w.bits(0, 1).bits(1, 2).code(0x30 + u32::from(b'a'), 8);
        w.code(1, 7).code(30, 5); // length 3 at distance symbol 30
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::BadSymbol("distance symbol 30 or 31"))
        );
    }

    #[test]
    fn a_distance_beyond_the_history_is_refused() {
        let mut w = BitWriter::new();
        w.bits(0, 1).bits(1, 2).code(0x30 + u32::from(b'a'), 8);
        w.code(1, 7).code(4, 5).bits(0, 1); // length 3, distance 5
        w.code(0, 7);
        assert_eq!(
            inflate_one(&w.finish()),
            Err(ZlibError::DistanceTooFar {
                distance: 5,
                available: 1
            })
        );
    }

    #[test]
    fn output_over_the_limit_is_refused() {
        let mut reference = ReferenceDeflater::new(9, Some(SPDY3_DICTIONARY));
        let compressed = reference.sync_block(&vec![b'a'; MAX_INFLATED_BLOCK + 1]);
        assert!(compressed.len() < 1024);
        assert_eq!(
            inflate_one(&compressed),
            Err(ZlibError::TooLarge {
                limit: MAX_INFLATED_BLOCK
            })
        );

        let mut small = Inflater::new(SPDY3_DICTIONARY, 1000);
        let mut deflater = Deflater::new(SPDY3_DICTIONARY);
        let mut exact = Vec::new();
        deflater.compress_block(&[7; 1000], &mut exact);
        assert_eq!(small.inflate_block(&exact), Ok(vec![7; 1000]));
        let mut over = Vec::new();
        deflater.compress_block(&[7; 1001], &mut over);
        assert_eq!(
            small.inflate_block(&over),
            Err(ZlibError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn a_block_cut_short_is_refused() {
        let mut reference = ReferenceDeflater::new(6, Some(SPDY3_DICTIONARY));
        let first = reference.sync_block(b"\0\0\0\x01\0\0\0\x04port\0\0\0\x048080");
        let second = reference.sync_block(b"\0\0\0\x01\0\0\0\x04port\0\0\0\x049090");
        for cut in 1..6 {
            assert_eq!(inflate_one(&first[..cut]), Err(ZlibError::UnfinishedBlock));
        }
        for cut in 1..second.len() {
            let mut ours = inflater();
            assert!(ours.inflate_block(&first).is_ok());
            assert_eq!(
                ours.inflate_block(&second[..cut]),
                Err(ZlibError::UnfinishedBlock),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn after_an_error_the_stream_stays_failed() {
        let mut ours = inflater();
        assert!(ours.inflate_block(&[0x79, 0x9c]).is_err());
        let mut deflater = Deflater::new(SPDY3_DICTIONARY);
        let mut good = Vec::new();
        deflater.compress_block(b"fine", &mut good);
        assert_eq!(ours.inflate_block(&good), Err(ZlibError::Failed));
    }

    #[test]
    fn random_and_mutated_input_never_panics_or_passes_the_limit() {
        let mut rng = rng(5);
        let mut reference = ReferenceDeflater::new(9, Some(SPDY3_DICTIONARY));
        let valid: Vec<Vec<u8>> = (0..20)
            .map(|_| reference.sync_block(&header_like(&mut rng)))
            .collect();
        for round in 0..3000 {
            let mut ours = Inflater::new(SPDY3_DICTIONARY, 4096);
            let input: Vec<u8> = match round % 3 {
                0 => (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect(),
                1 => {
                    // A valid header, then noise.
                    let mut input = valid[0][..6].to_vec();
                    input.extend((0..rng.usize(0..300)).map(|_| rng.u8(..)));
                    input
                }
                _ => {
                    let mut input = valid[0].clone();
                    for _ in 0..rng.usize(1..4) {
                        let at = rng.usize(..input.len());
                        input[at] ^= 1 << rng.u32(0..8);
                    }
                    input
                }
            };
            if let Ok(output) = ours.inflate_block(&input) {
                assert!(output.len() <= 4096);
            }
            // Later blocks of a valid stream after a mutated first one.
            for block in &valid[1..3] {
                if let Ok(output) = ours.inflate_block(block) {
                    assert!(output.len() <= 4096);
                }
            }
        }
    }
}
