//! The byte-level codecs the protocol layers share, with no state beyond
//! one stream and no I/O beyond the one socket they are handed: base64
//! (registry credentials, WebSocket keys and channels), zlib (SPDY header
//! compression), SHA-1 (the WebSocket handshake digest), the HTTP/1.1
//! request head (the streaming server and the metrics listener) and typed
//! reading and ordered writing of JSON (dockerd's answers, checkpoints, CNI
//! results and configurations).
//!
//! Their errors, each with the wire form it has, are `error`'s.
//!
//! This is a leaf: it uses `std` only (and `serde_json` for JSON), and
//! knows nothing of gRPC, the CRI, dockerd or sessions.

pub mod base64;
mod error;
pub mod http_head;
pub mod json;
pub mod sha1;
pub mod zlib;

pub use error::{Base64Error, HttpError, ZlibError};
