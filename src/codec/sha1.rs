//! SHA-1 (FIPS 180-4 section 6.1), for the one place the WebSocket handshake
//! needs it: `Sec-WebSocket-Accept` is the base64 of SHA-1 over the client's
//! key and a fixed GUID (RFC 6455 section 4.2.2).
//!
//! That accept value only proves the server understood the upgrade, so that
//! a non-WebSocket server cannot be mistaken for one; it authenticates
//! nothing and protects nothing. SHA-1 is broken for collision resistance
//! and this module must not be used for anything security-relevant: no
//! integrity checks, no signatures, no identifiers an attacker could choose
//! inputs for. It owns the digest only; encoding the result is the caller's.

/// Bytes per compression-function block.
const BLOCK_BYTES: usize = 64;

/// Bytes in a digest.
pub const DIGEST_BYTES: usize = 20;

/// The initial hash value H(0) (FIPS 180-4 section 5.3.1).
const INITIAL_STATE: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// An incremental SHA-1 computation.
#[derive(Debug, Clone)]
pub struct Sha1 {
    state: [u32; 5],
    /// Input not yet compressed; always fewer than `BLOCK_BYTES` bytes.
    pending: [u8; BLOCK_BYTES],
    pending_len: usize,
    /// Message length in bytes, modulo 2^64: the padding records the length
    /// in bits modulo 2^64, so wrapping here loses nothing it would keep.
    total_len: u64,
}

impl Default for Sha1 {
    fn default() -> Sha1 {
        Sha1::new()
    }
}

impl Sha1 {
    pub fn new() -> Sha1 {
        Sha1 {
            state: INITIAL_STATE,
            pending: [0; BLOCK_BYTES],
            pending_len: 0,
            total_len: 0,
        }
    }

    /// Appends `data` to the message.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total_len = self.total_len.wrapping_add(data.len() as u64);
        if self.pending_len > 0 {
            let take = data.len().min(BLOCK_BYTES - self.pending_len);
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < BLOCK_BYTES {
                return;
            }
            let block = self.pending;
            self.compress(&block);
            self.pending_len = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK_BYTES);
        for block in &mut blocks {
            self.compress(block);
        }
        let rest = blocks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Pads the message (FIPS 180-4 section 5.1.1) and returns its digest.
    pub fn finalize(mut self) -> [u8; DIGEST_BYTES] {
        let bit_len = self.total_len.wrapping_mul(8);
        // A 0x80 byte, zeros up to 56 mod 64, then the 8-byte length: one
        // more block when fewer than 9 bytes of the current one are free.
        let mut padding = [0u8; 2 * BLOCK_BYTES];
        padding[0] = 0x80;
        let zeros_and_marker = if self.pending_len < BLOCK_BYTES - 8 {
            BLOCK_BYTES - 8 - self.pending_len
        } else {
            2 * BLOCK_BYTES - 8 - self.pending_len
        };
        padding[zeros_and_marker..zeros_and_marker + 8].copy_from_slice(&bit_len.to_be_bytes());
        self.update(&padding[..zeros_and_marker + 8]);
        debug_assert_eq!(self.pending_len, 0);

        let mut digest = [0u8; DIGEST_BYTES];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }

    /// The compression function of FIPS 180-4 section 6.1.2 on one block.
    fn compress(&mut self, block: &[u8]) {
        let mut schedule = [0u32; 80];
        for (word, bytes) in schedule.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..80 {
            schedule[t] = (schedule[t - 3] ^ schedule[t - 8] ^ schedule[t - 14] ^ schedule[t - 16])
                .rotate_left(1);
        }

        let [mut a, mut b, mut c, mut d, mut e] = self.state;
        for (t, &word) in schedule.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (h, v) in self.state.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest;

    fn digest(data: &[u8]) -> [u8; DIGEST_BYTES] {
        let mut hasher = Sha1::new();
        hasher.update(data);
        hasher.finalize()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A deterministic xorshift generator: the tests need varied bytes and
    /// lengths, not unpredictable ones.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| (self.next() >> 24) as u8).collect()
        }
    }

    #[test]
    fn matches_the_fips_180_and_rfc_3174_test_vectors() {
        let cases: [(Vec<u8>, &str); 6] = [
            (b"abc".to_vec(), "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec(),
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
            ),
            (
                vec![b'a'; 1_000_000],
                "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
            ),
            (
                b"0123456701234567012345670123456701234567012345670123456701234567".repeat(10),
                "dea356a2cddd90c7a7ecedc5ebb563934f460452",
            ),
            (Vec::new(), "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (
                b"The quick brown fox jumps over the lazy dog".to_vec(),
                "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                hex(&digest(&input)),
                expected,
                "input of {} bytes",
                input.len()
            );
        }
    }

    #[test]
    fn agrees_with_an_independent_implementation_at_every_length_around_block_boundaries() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let lengths =
            (0..=200).chain([255, 256, 257, 511, 512, 513, 1000, 4095, 4096, 4097, 65_537]);
        for len in lengths {
            let input = rng.bytes(len);
            let expected = sha1::Sha1::digest(&input);
            assert_eq!(digest(&input)[..], expected[..], "length {len}");
        }
    }

    #[test]
    fn splitting_the_input_across_updates_does_not_change_the_digest() {
        let mut rng = XorShift(42);
        for len in [55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000] {
            let input = rng.bytes(len);
            let whole = digest(&input);
            for _ in 0..20 {
                let mut hasher = Sha1::new();
                let mut rest = &input[..];
                while !rest.is_empty() {
                    let take = (rng.next() as usize % 70).min(rest.len());
                    hasher.update(&rest[..take]);
                    rest = &rest[take..];
                }
                assert_eq!(hasher.finalize(), whole, "length {len}");
            }
        }
    }
}
