//! Newline-delimited JSON streams (`/events`, pull progress) read message by
//! message from a chunked or close-delimited body.
//!
//! It owns the connection of one streaming call and the decoded-but-not-yet-
//! parsed bytes, with a bound on one message's size. It never returns the
//! connection to the pool: dropping the stream closes it, which is also how
//! dockerd learns to stop.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde_json::Value;

use super::connection::{Connection, Pumped, Wait};
use super::response::ResponseParser;
use super::DockerError;
use crate::codec::json::FromJson;

/// Largest single JSON message accepted. dockerd's event and progress
/// messages are well under 4 KiB; a message this large means the stream is
/// not what we asked for.
pub const MAX_STREAM_MESSAGE: usize = 1024 * 1024;

/// An iterator over the JSON messages of a streaming response.
///
/// `next` blocks until a message arrives. With an idle timeout set, a read
/// that waits longer yields `Err(DockerError::Timeout)` and leaves the
/// stream usable: calling `next` again keeps waiting (a caller can check for
/// cancellation in between). Any other error ends the stream.
pub struct JsonStream<T> {
    conn: Connection,
    parser: ResponseParser,
    /// Body bytes (chunk framing removed) not yet decoded.
    pending: Vec<u8>,
    idle_timeout: Option<Duration>,
    body_done: bool,
    finished: bool,
    method: String,
    path: String,
    _message: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JsonStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonStream")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("pending", &self.pending.len())
            .field("idle_timeout", &self.idle_timeout)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<T> JsonStream<T> {
    /// Wraps a connection whose response head `parser` has already read.
    /// `method` and `path` name the call in every error.
    pub(crate) fn new(
        conn: Connection,
        parser: ResponseParser,
        idle_timeout: Option<Duration>,
        method: &str,
        path: &str,
    ) -> JsonStream<T> {
        JsonStream {
            conn,
            parser,
            pending: Vec::new(),
            idle_timeout,
            body_done: false,
            finished: false,
            method: method.to_owned(),
            path: path.to_owned(),
            _message: PhantomData,
        }
    }

    /// Sets how long one read may wait for a byte (`None`: forever).
    pub fn set_idle_timeout(&mut self, idle_timeout: Option<Duration>) {
        self.idle_timeout = idle_timeout;
    }
}

impl<T: FromJson> JsonStream<T> {
    fn next_message(&mut self) -> Result<Option<T>, DockerError> {
        loop {
            if let Some(message) = self.decode_one()? {
                return Ok(Some(message));
            }
            if self.body_done {
                if self.pending.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(DockerError::Protocol(
                        "stream ended in the middle of a JSON message".to_owned(),
                    ));
                }
                return Ok(None);
            }
            if self.pending.len() > MAX_STREAM_MESSAGE {
                return Err(DockerError::Protocol(format!(
                    "stream message larger than {MAX_STREAM_MESSAGE} bytes"
                )));
            }
            let wait = match self.idle_timeout {
                Some(idle) => Wait::Idle(idle),
                None => Wait::Forever,
            };
            if self.conn.pump(&mut self.parser, wait, &mut self.pending)? == Pumped::Done {
                self.body_done = true;
            }
        }
    }

    /// Decodes the first complete message in `pending`, if there is one.
    fn decode_one(&mut self) -> Result<Option<T>, DockerError> {
        let mut messages = serde_json::Deserializer::from_slice(&self.pending).into_iter::<Value>();
        match messages.next() {
            Some(Ok(message)) => {
                let used = messages.byte_offset();
                self.pending.drain(..used);
                T::from_json(&message).map(Some).map_err(DockerError::Json)
            }
            Some(Err(err)) if err.is_eof() => Ok(None),
            Some(Err(err)) => Err(DockerError::Json(err)),
            // Only whitespace (the newlines between messages) is left.
            None => {
                self.pending.clear();
                Ok(None)
            }
        }
    }
}

impl<T: FromJson> Iterator for JsonStream<T> {
    type Item = Result<T, DockerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_message() {
            Ok(Some(message)) => Some(Ok(message)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(err) => {
                self.finished = !matches!(err, DockerError::Timeout { .. });
                Some(Err(err.in_call(&self.method, &self.path)))
            }
        }
    }
}
