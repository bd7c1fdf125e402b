//! gRPC over HTTP/2, the parts we need: status codes, call context,
//! the 5-byte length-prefixed message framing, `grpc-timeout` and the
//! percent-encoding of `grpc-message`.
//!
//! It owns no sockets: `server` feeds it bytes and headers.

mod call;
mod status;

pub use call::{lookup, CallContext, Handler, MessageSink, Method, StreamFn, UnaryFn};
pub use status::{Code, Status};
