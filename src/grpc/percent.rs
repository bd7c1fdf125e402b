//! Percent-encoding of the `grpc-message` trailer.
//!
//! The gRPC HTTP/2 protocol carries the status message as UTF-8 bytes in
//! which everything outside printable ASCII (0x20–0x7E), and `%` itself, is
//! written as `%XX` with upper-case hex digits. This module only encodes:
//! the server never reads a `grpc-message`.

/// Longest status message sent, in bytes before encoding. The gRPC spec
/// suggests clients accept trailers of 8 KiB; mostly-ASCII messages of this
/// length stay under that, and longer ones are cut.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 4096;

const TRUNCATION_MARK: &str = "...";

/// Encodes `message` for the `grpc-message` trailer, cut to
/// [`MAX_STATUS_MESSAGE_BYTES`] at a character boundary and marked with
/// `...` when cut.
pub fn encode_status_message(message: &str) -> String {
    let (kept, cut) = truncate(message);
    let mut out = String::with_capacity(kept.len() + TRUNCATION_MARK.len());
    for &byte in kept.as_bytes() {
        push_encoded(&mut out, byte);
    }
    if cut {
        out.push_str(TRUNCATION_MARK);
    }
    out
}

/// The part of `message` that is sent, and whether anything was cut.
fn truncate(message: &str) -> (&str, bool) {
    if message.len() <= MAX_STATUS_MESSAGE_BYTES {
        return (message, false);
    }
    let mut end = MAX_STATUS_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        // Index 0 is always a char boundary, so this stops.
        end -= 1;
    }
    (&message[..end], true)
}

fn push_encoded(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if (0x20..=0x7e).contains(&byte) && byte != b'%' {
        out.push(char::from(byte));
    } else {
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_passes_unchanged() {
        let text = "container \"abc\" not found: no such container (id=1; x<y>z)~";
        assert_eq!(encode_status_message(text), text);
    }

    #[test]
    fn percent_sign_is_encoded() {
        assert_eq!(encode_status_message("100% full"), "100%25 full");
    }

    #[test]
    fn control_bytes_and_newlines_are_encoded() {
        assert_eq!(encode_status_message("a\nb\tc\u{7f}"), "a%0Ab%09c%7F");
    }

    #[test]
    fn utf8_is_encoded_byte_by_byte_in_upper_case_hex() {
        assert_eq!(encode_status_message("é€"), "%C3%A9%E2%82%AC");
    }

    #[test]
    fn every_encoded_byte_is_allowed_in_the_trailer() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        let encoded = encode_status_message(&all);
        assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary_and_marked() {
        let message = "é".repeat(MAX_STATUS_MESSAGE_BYTES);
        let encoded = encode_status_message(&message);
        assert!(encoded.ends_with("%C3%A9..."));
        assert_eq!(
            encoded.len(),
            (MAX_STATUS_MESSAGE_BYTES / 2) * 6 + TRUNCATION_MARK.len()
        );
    }

    #[test]
    fn a_message_of_exactly_the_limit_is_not_cut() {
        let message = "x".repeat(MAX_STATUS_MESSAGE_BYTES);
        assert_eq!(encode_status_message(&message), message);
    }
}
