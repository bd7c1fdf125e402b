//! gRPC over HTTP/2, the parts we need: status codes, call context,
//! the 5-byte length-prefixed message framing, `grpc-timeout` and the
//! percent-encoding of `grpc-message`.
//!
//! It owns no sockets: `server` feeds it bytes and headers.

mod call;
mod framing;
mod headers;
mod percent;
mod status;
mod timeout;

pub use call::{
    lookup, Answer, AtHandFn, CallContext, Handler, MessageSink, Method, StreamFn, UnaryFn,
};
pub use framing::{
    message_prefix, put_message, MessageReader, UnaryRequest, MAX_MESSAGE_BYTES, PREFIX_BYTES,
};
pub use headers::{
    check_request, response_headers, trailers, trailers_only, Accepted, Refusal, GRPC_CONTENT_TYPE,
};
pub use percent::{encode_status_message, MAX_STATUS_MESSAGE_BYTES};
pub use status::{Code, Status};
pub use timeout::{parse_timeout, MAX_TIMEOUT_DIGITS};
