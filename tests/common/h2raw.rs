//! `RawH2`: a bare HTTP/2 client (the `h2` crate, no gRPC library) for the
//! requests a well-behaved gRPC client never sends: truncated or compressed
//! messages, chosen `grpc-timeout`s, and several calls that must share one
//! connection.

use std::future::poll_fn;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::SendStream;
use http::{HeaderMap, Request};
use tokio::net::UnixStream;

/// A call that gets no answer fails here instead of hanging the test run.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A gRPC answer taken apart by hand.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub http_status: u16,
    /// From the trailers, or from the headers of a Trailers-Only answer.
    pub grpc_status: Option<i32>,
    pub grpc_message: Option<String>,
    pub body: Vec<u8>,
}

/// One HTTP/2 connection; every call is a new stream on it.
#[derive(Debug)]
pub struct RawH2 {
    send: SendRequest<Bytes>,
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

impl RawH2 {
    /// Connects and completes the HTTP/2 handshake; panics if either fails.
    pub async fn connect(socket: &Path) -> RawH2 {
        let io = UnixStream::connect(socket)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake(io)
            .await
            .unwrap_or_else(|e| panic!("HTTP/2 handshake: {e}"));
        let connection = tokio::spawn(connection);
        RawH2 { send, connection }
    }

    /// Whether the connection task has ended (GOAWAY, error or EOF).
    pub fn is_closed(&self) -> bool {
        self.connection.is_finished()
    }

    /// Sends a POST to `path` with the gRPC headers plus `headers`, then
    /// `body` as DATA and END_STREAM; returns the whole answer. The body may
    /// be cut short by the server (an early answer): that is not an error.
    /// Panics if there is no answer within `CALL_TIMEOUT`.
    pub async fn call(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<RawReply, h2::Error> {
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(path, headers, body))
            .await
            .unwrap_or_else(|_| panic!("no answer to {path} within {CALL_TIMEOUT:?}"))
    }

    async fn exchange(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<RawReply, h2::Error> {
        let mut request = Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("a well-formed request head");
        let mut send = self.send.clone().ready().await?;
        let (response, mut stream) = send.send_request(request, false)?;
        // Sent beside the wait for the answer: the server may answer early
        // and stop reading, and then the answer is what matters.
        let sender = tokio::spawn(async move { send_all(&mut stream, body).await });
        let response = response.await?;
        let http_status = response.status().as_u16();
        let (head, mut recv) = response.into_parts();
        let mut body = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await?;
        // The answer is complete, so whatever the server did not read is moot.
        sender.abort();
        let grpc_headers = match &trailers {
            Some(trailers) if trailers.contains_key("grpc-status") => trailers,
            _ => &head.headers,
        };
        Ok(RawReply {
            http_status,
            grpc_status: header_str(grpc_headers, "grpc-status").and_then(|s| s.parse().ok()),
            grpc_message: header_str(grpc_headers, "grpc-message"),
            body,
        })
    }
}

impl Drop for RawH2 {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// `message` behind the 5-byte gRPC prefix (uncompressed).
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let length = u32::try_from(message.len()).expect("message under 4 GiB");
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Sends `body` within the peer's flow-control windows, then END_STREAM.
async fn send_all(stream: &mut SendStream<Bytes>, mut body: Bytes) -> Result<(), h2::Error> {
    while !body.is_empty() {
        stream.reserve_capacity(body.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Ok(()),
        };
        let chunk = body.split_to(granted.min(body.len()));
        stream.send_data(chunk, false)?;
    }
    stream.send_data(Bytes::new(), true)
}
