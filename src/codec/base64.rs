//! Base64 (RFC 4648) in its standard and URL-safe alphabets.
//!
//! It owns the two encodings registry credentials travel in: dockerd reads
//! `X-Registry-Auth` as padded URL-safe base64 of a JSON object, and the
//! CRI's `AuthConfig.auth` is standard base64 of `user:password`. Output is
//! always padded; input may omit the padding but must not contain
//! whitespace or line breaks. Error messages give positions, never the
//! input, because the input is usually a secret.

use super::Base64Error;

/// Which 64-character alphabet to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `A-Z a-z 0-9 + /` (RFC 4648 section 4).
    Standard,
    /// `A-Z a-z 0-9 - _` (RFC 4648 section 5), safe in URLs and headers.
    UrlSafe,
}

impl Alphabet {
    fn symbols(self) -> &'static [u8; 64] {
        match self {
            Alphabet::Standard => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            }
            Alphabet::UrlSafe => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            }
        }
    }

    /// The 6-bit value of `symbol`, if it belongs to this alphabet.
    fn value(self, symbol: u8) -> Option<u8> {
        match symbol {
            b'A'..=b'Z' => Some(symbol - b'A'),
            b'a'..=b'z' => Some(symbol - b'a' + 26),
            b'0'..=b'9' => Some(symbol - b'0' + 52),
            b'+' if self == Alphabet::Standard => Some(62),
            b'/' if self == Alphabet::Standard => Some(63),
            b'-' if self == Alphabet::UrlSafe => Some(62),
            b'_' if self == Alphabet::UrlSafe => Some(63),
            _ => None,
        }
    }
}

/// Encodes `bytes`, padded with `=` to a multiple of four symbols.
pub fn encode(bytes: &[u8], alphabet: Alphabet) -> String {
    let symbols = alphabet.symbols();
    let symbol = |sextet: u32| char::from(symbols[(sextet & 0x3f) as usize]);
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b0 = u32::from(group[0]);
        let b1 = group.get(1).copied().map_or(0, u32::from);
        let b2 = group.get(2).copied().map_or(0, u32::from);
        let triple = (b0 << 16) | (b1 << 8) | b2;
        out.push(symbol(triple >> 18));
        out.push(symbol(triple >> 12));
        out.push(if group.len() > 1 {
            symbol(triple >> 6)
        } else {
            '='
        });
        out.push(if group.len() > 2 { symbol(triple) } else { '=' });
    }
    out
}

/// Decodes `text`; trailing `=` padding is optional. Bits left over in the
/// last symbol are ignored, as most decoders do.
pub fn decode(text: &str, alphabet: Alphabet) -> Result<Vec<u8>, Base64Error> {
    let input = text.as_bytes();
    let unpadded = input.len() - input.iter().rev().take_while(|&&b| b == b'=').count();
    let padding = input.len() - unpadded;
    let body = &input[..unpadded];
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    let mut accumulator: u32 = 0;
    let mut bits: u32 = 0;
    for (position, &symbol) in body.iter().enumerate() {
        let value = alphabet
            .value(symbol)
            .ok_or(Base64Error::InvalidSymbol { position })?;
        // Only the low `bits` bits are unread; older ones may fall off.
        accumulator = ((accumulator << 6) | u32::from(value)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // The shift leaves exactly the oldest 8 unread bits in the low byte.
            out.push(((accumulator >> bits) & 0xff) as u8);
        }
    }
    // Padding is only ever what completes the last group of four, so one
    // or two symbols, and only on input whose length is a multiple of four.
    if padding > 2 || (padding > 0 && input.len() % 4 != 0) || body.len() % 4 == 1 {
        return Err(Base64Error::InvalidLength {
            length: input.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of RFC 4648 section 10.
    const RFC_VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn encodes_and_decodes_the_rfc_vectors() -> Result<(), Base64Error> {
        for (plain, encoded) in RFC_VECTORS {
            assert_eq!(encode(plain.as_bytes(), Alphabet::Standard), encoded);
            assert_eq!(decode(encoded, Alphabet::Standard)?, plain.as_bytes());
        }
        Ok(())
    }

    #[test]
    fn the_alphabets_differ_only_in_the_last_two_symbols() -> Result<(), Base64Error> {
        let bytes = [0xfb, 0xff, 0xbf];
        assert_eq!(encode(&bytes, Alphabet::Standard), "+/+/");
        assert_eq!(encode(&bytes, Alphabet::UrlSafe), "-_-_");
        assert_eq!(decode("-_-_", Alphabet::UrlSafe)?, bytes);
        assert_eq!(
            decode("-_-_", Alphabet::Standard),
            Err(Base64Error::InvalidSymbol { position: 0 })
        );
        assert_eq!(
            decode("+/+/", Alphabet::UrlSafe),
            Err(Base64Error::InvalidSymbol { position: 0 })
        );
        Ok(())
    }

    #[test]
    fn padding_is_optional_on_input() -> Result<(), Base64Error> {
        assert_eq!(decode("Zm9vYg", Alphabet::Standard)?, b"foob");
        assert_eq!(decode("Zm9vYmE", Alphabet::UrlSafe)?, b"fooba");
        Ok(())
    }

    #[test]
    fn every_byte_value_round_trips() -> Result<(), Base64Error> {
        let bytes: Vec<u8> = (0..=255).collect();
        for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
            for len in 0..bytes.len() {
                let encoded = encode(&bytes[..len], alphabet);
                assert_eq!(encoded.len() % 4, 0);
                assert_eq!(decode(&encoded, alphabet)?, &bytes[..len]);
            }
        }
        Ok(())
    }

    #[test]
    fn malformed_input_is_refused_with_a_position_not_the_text() {
        assert_eq!(
            decode("Zm9v YmFy", Alphabet::Standard),
            Err(Base64Error::InvalidSymbol { position: 4 })
        );
        assert_eq!(
            decode("Zm=9", Alphabet::Standard),
            Err(Base64Error::InvalidSymbol { position: 2 })
        );
        for bad in ["Z", "Zm9vY", "Zg===", "Zg=", "Zm9vYg=", "="] {
            assert!(
                matches!(
                    decode(bad, Alphabet::Standard),
                    Err(Base64Error::InvalidLength { .. })
                ),
                "{bad}"
            );
        }
        let message = decode("c2VjcmV0!", Alphabet::Standard)
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert_eq!(message, "not base64: unexpected symbol at offset 8");
    }
}
