//! The gRPC length-prefixed message framing.
//!
//! Every message on a gRPC stream is a 1-byte compressed flag, a 4-byte
//! big-endian length and the message bytes. DATA frame boundaries have no
//! relation to message boundaries, so [`MessageReader`] is a state machine
//! fed with chunks of any size. The length is checked against
//! [`MAX_MESSAGE_BYTES`] as soon as the 5-byte prefix is complete, before
//! any memory is reserved for the body. Compressed messages are refused:
//! dockshim never advertises a `grpc-accept-encoding`, so no client should
//! send one. This module knows nothing of HTTP/2 or sockets.

use bytes::{BufMut, Bytes, BytesMut};

use super::Status;

/// Largest message accepted or sent, in bytes: the kubelet's own limit for
/// CRI messages, so anything bigger could not be used by it anyway.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Compressed flag (1 byte) and message length (4 bytes, big endian).
pub const PREFIX_BYTES: usize = 5;

/// Smallest allocation for a body that spans chunks; it then doubles as
/// bytes arrive, never beyond the announced length.
const MIN_BODY_ALLOCATION: usize = 16 * 1024;

/// The 5-byte prefix of an uncompressed message of `len` bytes, or
/// `RESOURCE_EXHAUSTED` when the message is over [`MAX_MESSAGE_BYTES`].
pub fn message_prefix(len: usize) -> Result<[u8; PREFIX_BYTES], Status> {
    if len > MAX_MESSAGE_BYTES {
        return Err(Status::resource_exhausted(format!(
            "reply message of {len} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    // Checked above: MAX_MESSAGE_BYTES is far below u32::MAX.
    let len = len as u32;
    let [a, b, c, d] = len.to_be_bytes();
    Ok([0, a, b, c, d])
}

/// Appends `message` with its prefix to `out`.
pub fn put_message(out: &mut BytesMut, message: &[u8]) -> Result<(), Status> {
    let prefix = message_prefix(message.len())?;
    out.reserve(PREFIX_BYTES + message.len());
    out.put_slice(&prefix);
    out.put_slice(message);
    Ok(())
}

/// Where the reader stands inside the current message.
#[derive(Debug)]
enum ReadState {
    /// Collecting the prefix; the first `filled` bytes of `prefix` are known.
    Prefix {
        prefix: [u8; PREFIX_BYTES],
        filled: usize,
    },
    /// Collecting a body of `len` bytes split across chunks.
    Body { body: BytesMut, len: usize },
}

/// Reassembles length-prefixed messages from DATA chunks.
#[derive(Debug)]
pub struct MessageReader {
    state: ReadState,
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::new()
    }
}

impl MessageReader {
    pub fn new() -> MessageReader {
        MessageReader {
            state: ReadState::Prefix {
                prefix: [0; PREFIX_BYTES],
                filled: 0,
            },
        }
    }

    /// Consumes bytes from the front of `chunk` until one message is
    /// complete (returned, with the rest left in `chunk`) or `chunk` is
    /// empty (`Ok(None)`: more bytes are needed).
    pub fn next_message(&mut self, chunk: &mut Bytes) -> Result<Option<Bytes>, Status> {
        loop {
            match &mut self.state {
                ReadState::Prefix { prefix, filled } => {
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                    let take = (PREFIX_BYTES - *filled).min(chunk.len());
                    prefix[*filled..*filled + take].copy_from_slice(&chunk.split_to(take));
                    *filled += take;
                    if *filled < PREFIX_BYTES {
                        return Ok(None);
                    }
                    let len = body_length(prefix)?;
                    if chunk.len() >= len {
                        // The whole body is in this chunk: hand out a view of
                        // it without copying.
                        self.state = ReadState::Prefix {
                            prefix: [0; PREFIX_BYTES],
                            filled: 0,
                        };
                        return Ok(Some(chunk.split_to(len)));
                    }
                    self.state = ReadState::Body {
                        body: BytesMut::new(),
                        len,
                    };
                }
                ReadState::Body { body, len } => {
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                    // `body.len() < len` holds in this state.
                    let take = (*len - body.len()).min(chunk.len());
                    grow_for(body, take, *len);
                    body.extend_from_slice(&chunk.split_to(take));
                    if body.len() < *len {
                        return Ok(None);
                    }
                    let message = std::mem::take(body).freeze();
                    self.state = ReadState::Prefix {
                        prefix: [0; PREFIX_BYTES],
                        filled: 0,
                    };
                    return Ok(Some(message));
                }
            }
        }
    }

    /// True when the bytes seen so far end exactly on a message boundary.
    pub fn is_at_boundary(&self) -> bool {
        matches!(self.state, ReadState::Prefix { filled: 0, .. })
    }
}

/// Makes room for `take` more bytes in a body of `len` bytes, doubling the
/// allocation but never past `len`: memory follows the bytes that actually
/// arrived, so an announced length alone reserves nothing.
fn grow_for(body: &mut BytesMut, take: usize, len: usize) {
    if body.capacity() - body.len() >= take {
        return;
    }
    let capacity = (body.capacity() * 2)
        .max(body.len() + take)
        .max(MIN_BODY_ALLOCATION)
        .min(len);
    let mut bigger = BytesMut::with_capacity(capacity);
    bigger.extend_from_slice(body);
    *body = bigger;
}

/// Decodes a complete prefix, refusing compressed and oversize messages.
fn body_length(prefix: &[u8; PREFIX_BYTES]) -> Result<usize, Status> {
    let [flag, a, b, c, d] = *prefix;
    match flag {
        0 => {}
        1 => {
            return Err(Status::unimplemented(
                "compressed messages are not supported",
            ))
        }
        other => {
            return Err(Status::internal(format!(
                "invalid compressed flag {other} in message prefix"
            )))
        }
    }
    let len = u32::from_be_bytes([a, b, c, d]);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_MESSAGE_BYTES => Ok(len),
        _ => Err(Status::resource_exhausted(format!(
            "request message of {len} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes"
        ))),
    }
}

/// The request body of a unary call: exactly one message, then END_STREAM.
#[derive(Debug, Default)]
pub struct UnaryRequest {
    reader: MessageReader,
    message: Option<Bytes>,
}

impl UnaryRequest {
    pub fn new() -> UnaryRequest {
        UnaryRequest::default()
    }

    /// Feeds one DATA chunk. Fails as soon as the framing is invalid or a
    /// second message starts to complete.
    pub fn push(&mut self, mut chunk: Bytes) -> Result<(), Status> {
        while let Some(message) = self.reader.next_message(&mut chunk)? {
            if self.message.is_some() {
                return Err(Status::internal(
                    "unary request carried more than one message",
                ));
            }
            self.message = Some(message);
        }
        Ok(())
    }

    /// Called at END_STREAM: the one message, or why there is none.
    pub fn finish(self) -> Result<Bytes, Status> {
        if !self.reader.is_at_boundary() {
            return Err(Status::internal("request stream ended inside a message"));
        }
        self.message
            .ok_or_else(|| Status::internal("unary request carried no message"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::Code;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_message(&mut out, message).unwrap();
        out.to_vec()
    }

    fn read_all(chunks: &[&[u8]]) -> Result<Vec<Bytes>, Status> {
        let mut reader = MessageReader::new();
        let mut messages = Vec::new();
        for chunk in chunks {
            let mut chunk = Bytes::copy_from_slice(chunk);
            while let Some(message) = reader.next_message(&mut chunk)? {
                messages.push(message);
            }
            assert!(chunk.is_empty());
        }
        assert!(reader.is_at_boundary());
        Ok(messages)
    }

    #[test]
    fn prefix_is_flag_zero_then_big_endian_length() {
        assert_eq!(
            message_prefix(0x00A1_B2C3).unwrap(),
            [0, 0, 0xA1, 0xB2, 0xC3]
        );
        assert_eq!(framed(b"hi"), [0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn two_messages_split_at_every_offset_come_out_whole_and_in_order() {
        let mut wire = framed(b"first message");
        wire.extend(framed(b""));
        wire.extend(framed(b"second"));
        for cut in 0..=wire.len() {
            let messages = read_all(&[&wire[..cut], &wire[cut..]]).unwrap();
            assert_eq!(
                messages,
                [&b"first message"[..], b"", b"second"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn one_byte_chunks_reassemble() {
        let wire = framed(b"byte by byte");
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(read_all(&chunks).unwrap(), [&b"byte by byte"[..]]);
    }

    #[test]
    fn empty_message_is_complete_after_its_prefix() {
        let mut reader = MessageReader::new();
        let mut chunk = Bytes::from_static(&[0, 0, 0, 0, 0]);
        assert_eq!(reader.next_message(&mut chunk).unwrap(), Some(Bytes::new()));
        assert!(reader.is_at_boundary());
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        let wire = framed(&vec![7u8; MAX_MESSAGE_BYTES]);
        let (head, tail) = wire.split_at(1000);
        let messages = read_all(&[head, tail]).unwrap();
        assert_eq!(messages[0].len(), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn oversize_length_is_refused_from_the_prefix_alone() {
        let over = u32::try_from(MAX_MESSAGE_BYTES + 1).unwrap().to_be_bytes();
        let mut reader = MessageReader::new();
        let mut chunk = Bytes::copy_from_slice(&[0, over[0], over[1], over[2], over[3]]);
        let status = reader.next_message(&mut chunk).unwrap_err();
        assert_eq!(status.code, Code::ResourceExhausted);
        assert!(status
            .message
            .contains(&(MAX_MESSAGE_BYTES + 1).to_string()));
    }

    #[test]
    fn announced_length_alone_reserves_no_memory() {
        let len = u32::try_from(MAX_MESSAGE_BYTES).unwrap().to_be_bytes();
        let mut reader = MessageReader::new();
        let mut chunk = Bytes::copy_from_slice(&[0, len[0], len[1], len[2], len[3], 1, 2, 3]);
        assert_eq!(reader.next_message(&mut chunk).unwrap(), None);
        match &reader.state {
            ReadState::Body { body, .. } => assert!(body.capacity() <= MIN_BODY_ALLOCATION),
            ReadState::Prefix { .. } => panic!("reader should be collecting the body"),
        }
    }

    #[test]
    fn body_allocation_never_exceeds_the_announced_length() {
        let wire = framed(&[9u8; 40_000]);
        let mut reader = MessageReader::new();
        for piece in wire.chunks(3000) {
            let mut chunk = Bytes::copy_from_slice(piece);
            if let Some(message) = reader.next_message(&mut chunk).unwrap() {
                assert_eq!(message.len(), 40_000);
            }
            if let ReadState::Body { body, .. } = &reader.state {
                assert!(body.capacity() <= 40_000, "capacity {}", body.capacity());
            }
        }
        assert!(reader.is_at_boundary());
    }

    #[test]
    fn largest_possible_length_is_refused() {
        let status = read_all(&[&[0, 0xff, 0xff, 0xff, 0xff]]).unwrap_err();
        assert_eq!(status.code, Code::ResourceExhausted);
    }

    #[test]
    fn compressed_flag_is_unimplemented() {
        let status = read_all(&[&[1, 0, 0, 0, 1, b'x']]).unwrap_err();
        assert_eq!(
            status,
            Status::unimplemented("compressed messages are not supported")
        );
    }

    #[test]
    fn unknown_flag_value_is_internal() {
        let status = read_all(&[&[2, 0, 0, 0, 0]]).unwrap_err();
        assert_eq!(status.code, Code::Internal);
    }

    #[test]
    fn oversize_reply_is_refused() {
        let status = message_prefix(MAX_MESSAGE_BYTES + 1).unwrap_err();
        assert_eq!(status.code, Code::ResourceExhausted);
        assert!(message_prefix(MAX_MESSAGE_BYTES).is_ok());
    }

    #[test]
    fn unary_request_with_one_message_split_anywhere_is_accepted() {
        let wire = framed(b"request");
        for cut in 0..=wire.len() {
            let mut request = UnaryRequest::new();
            request.push(Bytes::copy_from_slice(&wire[..cut])).unwrap();
            request.push(Bytes::copy_from_slice(&wire[cut..])).unwrap();
            assert_eq!(request.finish().unwrap(), &b"request"[..], "cut at {cut}");
        }
    }

    #[test]
    fn unary_request_with_an_empty_message_is_accepted() {
        let mut request = UnaryRequest::new();
        request.push(Bytes::from(framed(b""))).unwrap();
        assert_eq!(request.finish().unwrap(), Bytes::new());
    }

    #[test]
    fn unary_request_without_a_message_is_refused() {
        let status = UnaryRequest::new().finish().unwrap_err();
        assert_eq!(status, Status::internal("unary request carried no message"));
    }

    #[test]
    fn unary_request_with_two_messages_is_refused() {
        let mut wire = framed(b"one");
        wire.extend(framed(b"two"));
        let mut request = UnaryRequest::new();
        let status = request.push(Bytes::from(wire)).unwrap_err();
        assert_eq!(
            status,
            Status::internal("unary request carried more than one message")
        );
    }

    #[test]
    fn unary_request_cut_inside_a_message_is_refused_at_end_of_stream() {
        let wire = framed(b"truncated");
        for cut in 1..wire.len() {
            let mut request = UnaryRequest::new();
            request.push(Bytes::copy_from_slice(&wire[..cut])).unwrap();
            let status = request.finish().unwrap_err();
            assert_eq!(
                status,
                Status::internal("request stream ended inside a message")
            );
        }
    }
}
