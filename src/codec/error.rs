//! The codecs' errors, each with the wire form it has: `HttpError`, why
//! no request head could be read, with the HTTP status that answers it;
//! `ZlibError`, a zlib stream that cannot be decoded; `Base64Error`, input
//! that is not base64. Messages name positions and limits and never quote
//! the input, which may carry a token or a credential.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why no request head could be read. [`HttpError::status`] says how it
/// is answered, when it can be; `http_head` writes the answer.
#[derive(Debug)]
pub enum HttpError {
    /// The client closed the connection before sending a byte.
    Closed,
    /// The client closed the connection in the middle of the head.
    Truncated,
    /// The head did not arrive within the time allowed.
    Timeout { after: Duration },
    /// The head is longer than `limit` bytes.
    HeadTooLarge { limit: usize },
    /// The head has more than `limit` header fields.
    TooManyHeaders { limit: usize },
    /// An HTTP version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// The head breaks the syntax, or asks for something outside the
    /// scope `http_head` states; says what.
    Malformed(&'static str),
    /// Reading the socket failed.
    Io(io::Error),
}

impl HttpError {
    /// The status to answer with; `None` when the client is gone or the
    /// connection is broken.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Closed | HttpError::Io(_) => None,
            HttpError::Truncated | HttpError::Malformed(_) => Some(400),
            HttpError::Timeout { .. } => Some(408),
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => Some(431),
            HttpError::UnsupportedVersion => Some(505),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Closed => write!(f, "the client closed the connection without a request"),
            HttpError::Truncated => {
                f.write_str("the client closed the connection inside the request head")
            }
            HttpError::Timeout { after } => {
                write!(f, "the request head did not arrive within {after:?}")
            }
            HttpError::HeadTooLarge { limit } => {
                write!(f, "the request head is longer than {limit} bytes")
            }
            HttpError::TooManyHeaders { limit } => {
                write!(f, "the request has more than {limit} header fields")
            }
            HttpError::UnsupportedVersion => write!(f, "only HTTP/1.1 and HTTP/1.0 are spoken"),
            HttpError::Malformed(what) => write!(f, "bad request: {what}"),
            HttpError::Io(err) => write!(f, "cannot read the request: {err}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Io(err) => Some(err),
            _ => None,
        }
    }
}

/// A zlib stream we cannot decode. Any of these ends the stream: the
/// history the next block depends on is no longer known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZlibError {
    /// The two header bytes are not a zlib header for deflate.
    BadHeader(&'static str),
    /// The header asks for a dictionary other than the one we hold.
    WrongDictionary { expected: u32, found: u32 },
    /// Block framing that no encoder produces (reserved block type, a
    /// stored length that does not match its complement).
    BadBlock(&'static str),
    /// Code lengths of a dynamic block that do not form a usable code.
    BadCodeLengths(&'static str),
    /// A code that decodes to no symbol, or to a symbol DEFLATE reserves.
    BadSymbol(&'static str),
    /// A back-reference further back than the history we have.
    DistanceTooFar { distance: usize, available: usize },
    /// The block decompresses to more than the limit.
    TooLarge { limit: usize },
    /// The input ends inside the header or inside a block: the peer did not
    /// flush at the end of the header block, or the block was cut short.
    UnfinishedBlock,
    /// The Adler-32 after the final block does not match the data.
    BadChecksum { expected: u32, found: u32 },
    /// Input after the block marked final.
    AfterEnd,
    /// An earlier error already ended this stream.
    Failed,
}

impl fmt::Display for ZlibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZlibError::BadHeader(why) => write!(f, "bad zlib header: {why}"),
            ZlibError::WrongDictionary { expected, found } => write!(
                f,
                "zlib stream wants dictionary {found:#010x}, ours is {expected:#010x}"
            ),
            ZlibError::BadBlock(why) => write!(f, "bad deflate block: {why}"),
            ZlibError::BadCodeLengths(why) => write!(f, "bad Huffman code lengths: {why}"),
            ZlibError::BadSymbol(why) => write!(f, "bad deflate code: {why}"),
            ZlibError::DistanceTooFar {
                distance,
                available,
            } => write!(
                f,
                "deflate distance {distance} reaches beyond the {available} bytes of history"
            ),
            ZlibError::TooLarge { limit } => {
                write!(f, "header block decompresses to more than {limit} bytes")
            }
            ZlibError::UnfinishedBlock => {
                write!(f, "header block does not end on a flushed deflate block")
            }
            ZlibError::BadChecksum { expected, found } => write!(
                f,
                "zlib checksum {found:#010x} does not match the data ({expected:#010x})"
            ),
            ZlibError::AfterEnd => write!(f, "data after the end of the zlib stream"),
            ZlibError::Failed => write!(f, "zlib stream already failed"),
        }
    }
}

impl std::error::Error for ZlibError {}

/// Input that is not base64 in the alphabet asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base64Error {
    /// A byte outside the alphabet (or `=` before the end) at this offset.
    InvalidSymbol { position: usize },
    /// A length no encoder produces: one symbol too many for a whole byte,
    /// or padding that does not complete a 4-symbol group.
    InvalidLength { length: usize },
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::InvalidSymbol { position } => {
                write!(f, "not base64: unexpected symbol at offset {position}")
            }
            Base64Error::InvalidLength { length } => {
                write!(f, "not base64: {length} symbols cannot encode whole bytes")
            }
        }
    }
}

impl std::error::Error for Base64Error {}
