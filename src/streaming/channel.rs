//! The Kubernetes channel framing carried over WebSocket messages, for
//! exec/attach (remotecommand) and port forwarding, and the error-channel
//! status documents shared with the SPDY side.
//!
//! Each WebSocket message belongs to one numbered channel. In the binary
//! subprotocols (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`,
//! or no subprotocol at all) the first byte of a binary message is the
//! channel and the rest is data; in the base64 ones
//! (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`) a text message
//! starts with the channel as an ASCII digit (`'0' + channel`) followed by
//! the data in standard padded base64. `v5.channel.k8s.io` adds one message
//! a client may send, `[255, channel]`, closing that channel's input (end
//! of stdin). The version decides the error channel's format: v4 and v5
//! send a JSON `metav1.Status`, older versions the failure message as text.
//!
//! remotecommand channels are stdin 0, stdout 1, stderr 2, error 3 and
//! resize 4 (JSON `{"Width":w,"Height":h}` messages). Port forwarding uses
//! two channels per requested port, data `2i` and error `2i+1`, and the
//! first message the server sends on each carries the port number as two
//! little-endian bytes.
//!
//! This module owns those encodings, checked against the kubelet's own
//! streaming server (Kubernetes v1.29-v1.35 `k8s.io/kubelet/pkg/cri/streaming`,
//! `k8s.io/apimachinery/pkg/util/httpstream/wsstream`). It does not run
//! sessions, copy streams or talk to dockerd.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use super::websocket::WsWriter;
use super::{ChannelError, WebSocketError};
use crate::codec::base64::{self, Alphabet};
use crate::codec::json::OrderedObject;
use crate::codec::Base64Error;

pub const V5_BINARY: &str = "v5.channel.k8s.io";
pub const V4_BINARY: &str = "v4.channel.k8s.io";
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
pub const V1_BINARY: &str = "channel.k8s.io";
pub const V1_BASE64: &str = "base64.channel.k8s.io";

/// The subprotocols exec and attach accept, newest first. The kubelet's
/// own server accepts all but v5, which adds the close signal.
pub const REMOTE_COMMAND_PROTOCOLS: &[&str] =
    &[V5_BINARY, V4_BINARY, V4_BASE64, V1_BINARY, V1_BASE64];

/// The subprotocols port forwarding accepts, as in the kubelet's own
/// server.
pub const PORT_FORWARD_PROTOCOLS: &[&str] = &[V4_BINARY, V4_BASE64];

/// The first byte of a v5 close signal, `[255, channel]`.
pub const CLOSE_SIGNAL: u8 = 255;

/// Ports one port-forward session may carry: two channels each, and
/// channel 255 is reserved, so 127 pairs fit in a byte.
pub const MAX_FORWARDED_PORTS: usize = 127;

/// Ports one base64 port-forward session may carry: the channel travels as
/// the character `'0' + channel`, which stays ASCII up to channel 79.
pub const MAX_BASE64_FORWARDED_PORTS: usize = 40;

/// Largest resize message. One is about 30 bytes.
pub const MAX_RESIZE_MESSAGE_BYTES: usize = 4 * 1024;

/// Channels of a remotecommand session.
const REMOTE_COMMAND_CHANNELS: u8 = 5;

/// The framing a negotiated subprotocol selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelProtocol {
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
    /// `v4.channel.k8s.io`: binary, JSON status on the error channel.
    V4,
    /// `v4.base64.channel.k8s.io`: base64 text, JSON status.
    V4Base64,
    /// `channel.k8s.io`, or no subprotocol: binary, text status.
    V1,
    /// `base64.channel.k8s.io`: base64 text, text status.
    V1Base64,
}

/// How the error channel reports the outcome of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    /// A JSON `metav1.Status`, also on success (v4, v5).
    Json,
    /// The failure message as text; nothing on success (v1-v3).
    Text,
}

impl ChannelProtocol {
    /// The framing for the subprotocol a handshake chose; `None` (the client
    /// asked for none) means binary channels with text statuses, as the
    /// kubelet treats it. An unknown name has no framing.
    pub fn from_negotiated(protocol: Option<&str>) -> Option<ChannelProtocol> {
        match protocol {
            None | Some(V1_BINARY) => Some(ChannelProtocol::V1),
            Some(V1_BASE64) => Some(ChannelProtocol::V1Base64),
            Some(V4_BINARY) => Some(ChannelProtocol::V4),
            Some(V4_BASE64) => Some(ChannelProtocol::V4Base64),
            Some(V5_BINARY) => Some(ChannelProtocol::V5),
            Some(_) => None,
        }
    }

    pub fn is_base64(self) -> bool {
        matches!(self, ChannelProtocol::V4Base64 | ChannelProtocol::V1Base64)
    }

    /// Whether clients may send `[255, channel]` to close a channel.
    pub fn has_close_signal(self) -> bool {
        self == ChannelProtocol::V5
    }

    pub fn status_format(self) -> StatusFormat {
        match self {
            ChannelProtocol::V5 | ChannelProtocol::V4 | ChannelProtocol::V4Base64 => {
                StatusFormat::Json
            }
            ChannelProtocol::V1 | ChannelProtocol::V1Base64 => StatusFormat::Text,
        }
    }
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<'a> {
    /// Data for a channel; borrowed from the message unless it was base64.
    Data { channel: u8, payload: Cow<'a, [u8]> },
    /// A v5 close signal: the client sends nothing more on `channel`.
    Close { channel: u8 },
}

/// Encodes and decodes the messages of one session: its framing and how
/// many channels it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCodec {
    protocol: ChannelProtocol,
    channels: u8,
}

impl ChannelCodec {
    /// The five channels of exec and attach (see [`StreamId`]).
    pub fn remote_command(protocol: ChannelProtocol) -> ChannelCodec {
        ChannelCodec {
            protocol,
            channels: REMOTE_COMMAND_CHANNELS,
        }
    }

    /// Two channels for each of `ports` forwarded ports (see
    /// [`PortChannel`]).
    pub fn port_forward(
        protocol: ChannelProtocol,
        ports: usize,
    ) -> Result<ChannelCodec, ChannelError> {
        let limit = if protocol.is_base64() {
            MAX_BASE64_FORWARDED_PORTS
        } else {
            MAX_FORWARDED_PORTS
        };
        if ports == 0 {
            return Err(ChannelError::NoPorts);
        }
        if ports > limit {
            return Err(ChannelError::TooManyPorts { limit });
        }
        Ok(ChannelCodec {
            protocol,
            // At most 2 * 127 = 254 by the check above.
            channels: (2 * ports) as u8,
        })
    }

    pub fn protocol(&self) -> ChannelProtocol {
        self.protocol
    }

    /// Decodes one message from the client, text or binary alike (the
    /// kubelet does not distinguish them either).
    pub fn decode<'a>(&self, message: &'a [u8]) -> Result<Received<'a>, ChannelError> {
        let (&first, rest) = message.split_first().ok_or(ChannelError::EmptyMessage)?;
        if self.protocol.has_close_signal() && first == CLOSE_SIGNAL {
            let &[channel] = rest else {
                return Err(ChannelError::MalformedCloseSignal { length: rest.len() });
            };
            if channel >= self.channels {
                return Err(ChannelError::CloseOfUnknownChannel {
                    channel,
                    channels: self.channels,
                });
            }
            return Ok(Received::Close { channel });
        }
        let base64 = self.protocol.is_base64();
        let channel = if base64 {
            first.wrapping_sub(b'0')
        } else {
            first
        };
        if channel >= self.channels {
            return Err(ChannelError::UnknownChannel {
                channel,
                channels: self.channels,
            });
        }
        let payload = if base64 {
            let text = std::str::from_utf8(rest).map_err(|e| ChannelError::BadBase64 {
                channel,
                source: Base64Error::InvalidSymbol {
                    position: e.valid_up_to(),
                },
            })?;
            let data = base64::decode(text, Alphabet::Standard)
                .map_err(|source| ChannelError::BadBase64 { channel, source })?;
            Cow::Owned(data)
        } else {
            Cow::Borrowed(rest)
        };
        Ok(Received::Data { channel, payload })
    }

    /// Sends `data` on `channel`, which must be one of the session's.
    pub fn send<W: Write>(
        &self,
        writer: &mut WsWriter<W>,
        channel: u8,
        data: &[u8],
    ) -> Result<(), WebSocketError> {
        debug_assert!(channel < self.channels);
        if self.protocol.is_base64() {
            let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
            // Channels of base64 sessions are below 80, so this is an ASCII
            // character; wrapping only keeps a misuse from panicking.
            text.push(char::from(b'0'.wrapping_add(channel)));
            text.push_str(&base64::encode(data, Alphabet::Standard));
            writer.send_text(&text)
        } else {
            writer.send_binary(&[&[channel], data])
        }
    }

    /// Sends the outcome of an exec or attach on the error channel in the
    /// negotiated format; nothing for a success in the text format.
    pub fn send_status<W: Write>(
        &self,
        writer: &mut WsWriter<W>,
        status: &StreamStatus,
    ) -> Result<(), WebSocketError> {
        let error = StreamId::Error.channel();
        match self.protocol.status_format() {
            StatusFormat::Json => self.send(writer, error, status.to_json().as_bytes()),
            StatusFormat::Text => match status.to_text() {
                Some(text) => self.send(writer, error, text.as_bytes()),
                None => Ok(()),
            },
        }
    }

    /// Sends each port's number, two bytes little-endian, as the first
    /// message on its data channel and then its error channel, in order.
    /// Ports beyond the session's channels are not announced.
    pub fn announce_ports<W: Write>(
        &self,
        writer: &mut WsWriter<W>,
        ports: &[u16],
    ) -> Result<(), WebSocketError> {
        for (data_channel, port) in (0..self.channels).step_by(2).zip(ports) {
            let bytes = port.to_le_bytes();
            self.send(writer, data_channel, &bytes)?;
            self.send(writer, data_channel + 1, &bytes)?;
        }
        Ok(())
    }
}

/// The remotecommand channels; stdin, stdout and stderr match their POSIX
/// file descriptors. The server reads stdin and resize and writes the
/// others; the kubelet drops what clients send on channels it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamId {
    Stdin,
    Stdout,
    Stderr,
    Error,
    Resize,
}

impl StreamId {
    pub fn channel(self) -> u8 {
        match self {
            StreamId::Stdin => 0,
            StreamId::Stdout => 1,
            StreamId::Stderr => 2,
            StreamId::Error => 3,
            StreamId::Resize => 4,
        }
    }

    #[cfg(test)]
    pub fn from_channel(channel: u8) -> Option<StreamId> {
        match channel {
            0 => Some(StreamId::Stdin),
            1 => Some(StreamId::Stdout),
            2 => Some(StreamId::Stderr),
            3 => Some(StreamId::Error),
            4 => Some(StreamId::Resize),
            _ => None,
        }
    }

    /// Where the server sends an empty message once the session is set up,
    /// telling the client it may start: stdout if the client asked for it,
    /// else stderr if it asked for that, else the error channel.
    pub fn ready_channel(stdout: bool, stderr: bool) -> StreamId {
        match (stdout, stderr) {
            (true, _) => StreamId::Stdout,
            (false, true) => StreamId::Stderr,
            (false, false) => StreamId::Error,
        }
    }
}

/// Which of a forwarded port's two channels a message is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortStream {
    /// Connection bytes, both ways.
    Data,
    /// Failure messages from the server.
    Error,
}

/// A port-forward channel: the index of the port in the request and which
/// of its two channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortChannel {
    pub index: usize,
    pub stream: PortStream,
}

impl PortChannel {
    #[cfg(test)]
    pub fn from_channel(channel: u8) -> PortChannel {
        PortChannel {
            index: usize::from(channel / 2),
            stream: if channel % 2 == 0 {
                PortStream::Data
            } else {
                PortStream::Error
            },
        }
    }

    /// The channel number; `None` for an index no session can have.
    pub fn channel(self) -> Option<u8> {
        if self.index >= MAX_FORWARDED_PORTS {
            return None;
        }
        let data = 2 * self.index;
        let channel = match self.stream {
            PortStream::Data => data,
            PortStream::Error => data + 1,
        };
        u8::try_from(channel).ok()
    }
}

/// Parses the `port` query values of a port-forward request (each may list
/// several ports separated by commas), as the kubelet does: every port a
/// decimal from 1 to 65535, in request order, repeats allowed.
pub fn parse_forward_ports<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<u16>, ChannelError> {
    let mut ports = Vec::new();
    let mut any = false;
    for value in values {
        any = true;
        if value.is_empty() {
            return Err(ChannelError::BadPort {
                value: String::new(),
                reason: "cannot be empty",
            });
        }
        for piece in value.split(',') {
            let digits = !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_digit());
            let port = match piece.parse::<u16>() {
                Ok(port) if digits => port,
                _ => {
                    return Err(ChannelError::BadPort {
                        value: value.to_owned(),
                        reason: "is not a port number",
                    })
                }
            };
            if port == 0 {
                return Err(ChannelError::BadPort {
                    value: value.to_owned(),
                    reason: "must be greater than 0",
                });
            }
            if ports.len() == MAX_FORWARDED_PORTS {
                return Err(ChannelError::TooManyPorts {
                    limit: MAX_FORWARDED_PORTS,
                });
            }
            ports.push(port);
        }
    }
    if !any {
        return Err(ChannelError::NoPorts);
    }
    Ok(ports)
}

/// The text the kubelet writes on a port's error channel when forwarding
/// fails. A runtime's server names the pod by its sandbox ID and has no
/// UID, which stays empty in the message.
pub fn port_forward_error(port: u16, sandbox_id: &str, err: &dyn fmt::Display) -> String {
    format!("error forwarding port {port} to pod {sandbox_id}, uid : {err}")
}

/// A terminal size from the resize channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// Parses a resize message: a JSON object with `Width` and `Height` (names
/// in any case, as Go's decoder matches them; a missing or null one is 0,
/// other fields are ignored). Several whitespace-separated objects in one
/// message are taken in order and the last one wins, since only the latest
/// size matters. A zero dimension is returned as is; dockerd cannot apply
/// it and the caller skips it, as the reference runtime does.
pub fn parse_resize(payload: &[u8]) -> Result<TerminalSize, ChannelError> {
    if payload.len() > MAX_RESIZE_MESSAGE_BYTES {
        return Err(ChannelError::ResizeTooLong {
            length: payload.len(),
            limit: MAX_RESIZE_MESSAGE_BYTES,
        });
    }
    let mut last = None;
    for value in serde_json::Deserializer::from_slice(payload).into_iter::<serde_json::Value>() {
        let value = value.map_err(ChannelError::ResizeJson)?;
        let object = value.as_object().ok_or(ChannelError::BadResize(
            "a terminal size must be a JSON object",
        ))?;
        let mut size = TerminalSize {
            width: 0,
            height: 0,
        };
        for (name, field) in object {
            if name.eq_ignore_ascii_case("width") {
                size.width = dimension(field)?;
            } else if name.eq_ignore_ascii_case("height") {
                size.height = dimension(field)?;
            }
        }
        last = Some(size);
    }
    last.ok_or(ChannelError::BadResize(
        "the message holds no terminal size",
    ))
}

fn dimension(value: &serde_json::Value) -> Result<u16, ChannelError> {
    match value {
        serde_json::Value::Null => Ok(0),
        value => value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(ChannelError::BadResize(
                "width and height must be integers from 0 to 65535",
            )),
    }
}

/// How an exec or attach ended, as the error channel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    Success,
    /// The command ran and exited with this non-zero code.
    ExitCode(i32),
    /// The session failed for another reason; the message says which.
    InternalError(String),
}

impl StreamStatus {
    /// The status for a command that exited with `code`.
    pub fn exited(code: i32) -> StreamStatus {
        if code == 0 {
            StreamStatus::Success
        } else {
            StreamStatus::ExitCode(code)
        }
    }

    /// An exec that could not run or was cut short, in the kubelet's words.
    pub fn exec_failed(err: &dyn fmt::Display) -> StreamStatus {
        StreamStatus::InternalError(format!("error executing command in container: {err}"))
    }

    /// An attach that failed, in the kubelet's words.
    pub fn attach_failed(err: &dyn fmt::Display) -> StreamStatus {
        StreamStatus::InternalError(format!("error attaching to container: {err}"))
    }

    /// The failure message, as v1-v3 send it and as the JSON carries it;
    /// `None` for a success. The exit-code wording is the reference
    /// runtime's.
    pub fn to_text(&self) -> Option<String> {
        match self {
            StreamStatus::Success => None,
            StreamStatus::ExitCode(code) => Some(format!(
                "command terminated with non-zero exit code: Error executing in Docker Container: {code}"
            )),
            StreamStatus::InternalError(message) => {
                Some(format!("Internal error occurred: {message}"))
            }
        }
    }

    /// The JSON `metav1.Status` v4 and v5 send, field for field as Go
    /// encodes it (`metadata` always present and empty, empty fields
    /// omitted, declaration order). Clients find the exit code in
    /// `details.causes[].message` of the cause whose `reason` is
    /// `ExitCode`.
    pub fn to_json(&self) -> String {
        let mut document = OrderedObject::new();
        document.add_object("metadata", OrderedObject::new());
        let (reason, cause_reason, cause, code) = match self {
            StreamStatus::Success => {
                document.add("status", "Success");
                return document.into_text();
            }
            StreamStatus::ExitCode(code) => {
                ("NonZeroExitCode", Some("ExitCode"), code.to_string(), None)
            }
            StreamStatus::InternalError(cause) => ("InternalError", None, cause.clone(), Some(500)),
        };
        let mut cause_object = OrderedObject::new();
        cause_object
            .add_some("reason", cause_reason)
            .add("message", cause);
        let mut details = OrderedObject::new();
        details.add_objects("causes", [cause_object]);
        document
            .add("status", "Failure")
            .add_some("message", self.to_text())
            .add("reason", reason)
            .add_object("details", details)
            .add_some("code", code);
        document.into_text()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::streaming::websocket;

    /// The bytes a server writes for what `f` sends.
    fn sent(f: impl FnOnce(&mut WsWriter<&mut Vec<u8>>) -> Result<(), WebSocketError>) -> Vec<u8> {
        let mut bytes = Vec::new();
        f(&mut WsWriter::new(&mut bytes)).unwrap();
        bytes
    }

    fn data(channel: u8, payload: &[u8]) -> Received<'_> {
        Received::Data {
            channel,
            payload: Cow::Borrowed(payload),
        }
    }

    #[test]
    fn negotiation_prefers_the_clients_newest_protocol_and_maps_it_to_a_framing() {
        let headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            (
                "Sec-WebSocket-Protocol",
                "v5.channel.k8s.io,v4.channel.k8s.io,channel.k8s.io",
            ),
        ];
        let handshake = websocket::accept("GET", &headers, REMOTE_COMMAND_PROTOCOLS).unwrap();
        assert_eq!(handshake.protocol(), Some(V5_BINARY));
        assert_eq!(
            ChannelProtocol::from_negotiated(handshake.protocol()),
            Some(ChannelProtocol::V5)
        );
        let port_forward = websocket::accept("GET", &headers, PORT_FORWARD_PROTOCOLS).unwrap();
        assert_eq!(
            port_forward.protocol(),
            Some(V4_BINARY),
            "port forwarding has no v5"
        );
    }

    #[test]
    fn each_protocol_has_its_framing_and_status_format() {
        let cases = [
            (None, ChannelProtocol::V1, false, false, StatusFormat::Text),
            (
                Some(V1_BINARY),
                ChannelProtocol::V1,
                false,
                false,
                StatusFormat::Text,
            ),
            (
                Some(V1_BASE64),
                ChannelProtocol::V1Base64,
                true,
                false,
                StatusFormat::Text,
            ),
            (
                Some(V4_BINARY),
                ChannelProtocol::V4,
                false,
                false,
                StatusFormat::Json,
            ),
            (
                Some(V4_BASE64),
                ChannelProtocol::V4Base64,
                true,
                false,
                StatusFormat::Json,
            ),
            (
                Some(V5_BINARY),
                ChannelProtocol::V5,
                false,
                true,
                StatusFormat::Json,
            ),
        ];
        for (name, protocol, base64, close, format) in cases {
            assert_eq!(ChannelProtocol::from_negotiated(name), Some(protocol));
            assert_eq!(protocol.is_base64(), base64, "{name:?}");
            assert_eq!(protocol.has_close_signal(), close, "{name:?}");
            assert_eq!(protocol.status_format(), format, "{name:?}");
        }
        assert_eq!(
            ChannelProtocol::from_negotiated(Some("portforward.k8s.io")),
            None
        );
    }

    #[test]
    fn binary_messages_are_a_channel_byte_and_raw_data() {
        let codec = ChannelCodec::remote_command(ChannelProtocol::V4);
        // The wsstream documentation's example: "foo\n" on stdin.
        assert_eq!(
            codec.decode(&[0, 102, 111, 111, 10]).unwrap(),
            data(0, b"foo\n")
        );
        assert_eq!(codec.decode(&[4]).unwrap(), data(4, b""));
        // ... and "\n" on stdout: a binary frame holding [1, 10].
        assert_eq!(
            sent(|w| codec.send(w, StreamId::Stdout.channel(), b"\n")),
            [0x82, 0x02, 1, 10]
        );
    }

    #[test]
    fn base64_messages_are_a_channel_digit_and_base64_text() {
        let codec = ChannelCodec::remote_command(ChannelProtocol::V1Base64);
        assert_eq!(
            codec.decode(b"0Zm9vCg==").unwrap(),
            Received::Data {
                channel: 0,
                payload: Cow::Owned(b"foo\n".to_vec())
            }
        );
        assert_eq!(codec.decode(b"4").unwrap(), data(4, b""));
        // "\n" on stdout is the text frame "1Cg==".
        assert_eq!(
            sent(|w| codec.send(w, 1, b"\n")),
            [0x81, 0x05, b'1', b'C', b'g', b'=', b'=']
        );
        assert_eq!(sent(|w| codec.send(w, 3, b"")), [0x81, 0x01, b'3']);
    }

    #[test]
    fn v5_close_signals_close_one_channel() {
        let codec = ChannelCodec::remote_command(ChannelProtocol::V5);
        assert_eq!(
            codec.decode(&[255, 0]).unwrap(),
            Received::Close { channel: 0 }
        );
        for (message, length) in [(&[255][..], 0), (&[255, 0, 0][..], 2)] {
            let err = codec.decode(message).unwrap_err();
            assert!(
                matches!(err, ChannelError::MalformedCloseSignal { length: l } if l == length),
                "{err}"
            );
            assert!(err.ends_session());
        }
        let err = codec.decode(&[255, 5]).unwrap_err();
        assert!(matches!(
            err,
            ChannelError::CloseOfUnknownChannel {
                channel: 5,
                channels: 5
            }
        ));
        assert!(err.ends_session());
    }

    #[test]
    fn before_v5_byte_255_is_just_an_unknown_channel() {
        let codec = ChannelCodec::remote_command(ChannelProtocol::V4);
        let err = codec.decode(&[255, 0]).unwrap_err();
        assert!(matches!(
            err,
            ChannelError::UnknownChannel { channel: 255, .. }
        ));
        assert!(!err.ends_session());
    }

    #[test]
    fn malformed_messages_are_errors_the_session_may_skip() {
        let binary = ChannelCodec::remote_command(ChannelProtocol::V5);
        let base64 = ChannelCodec::remote_command(ChannelProtocol::V4Base64);
        let cases: [(ChannelCodec, &[u8]); 6] = [
            (binary, b""),
            (binary, &[5, 1, 2]),
            (binary, &[9]),
            (base64, b"5Zm9v"),
            (base64, b"0Zm9v!"),
            (base64, &[b'0', 0xff, b'=']),
        ];
        for (codec, message) in cases {
            let err = codec.decode(message).unwrap_err();
            assert!(!err.ends_session(), "{message:?}: {err}");
        }
        assert!(matches!(
            binary.decode(b""),
            Err(ChannelError::EmptyMessage)
        ));
        assert!(matches!(
            base64.decode(b"0Zm9v!"),
            Err(ChannelError::BadBase64 {
                channel: 0,
                source: Base64Error::InvalidSymbol { position: 4 }
            })
        ));
    }

    #[test]
    fn status_documents_match_what_the_kubelet_sends() {
        assert_eq!(
            StreamStatus::exited(0).to_json(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            StreamStatus::exited(3).to_json(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: Error executing in Docker Container: 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            StreamStatus::exec_failed(&"no such container \"x\"").to_json(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: no such container \"x\"","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such container \"x\""}]},"code":500}"#
        );
        assert_eq!(
            StreamStatus::attach_failed(&"gone").to_text().unwrap(),
            "Internal error occurred: error attaching to container: gone"
        );
        assert_eq!(StreamStatus::Success.to_text(), None);
    }

    #[test]
    fn a_clients_reading_of_the_json_status_finds_the_exit_code() {
        let status: serde_json::Value =
            serde_json::from_str(&StreamStatus::exited(137).to_json()).unwrap();
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NonZeroExitCode");
        let cause = &status["details"]["causes"][0];
        assert_eq!(
            (cause["reason"].as_str(), cause["message"].as_str()),
            (Some("ExitCode"), Some("137"))
        );
    }

    #[test]
    fn the_status_goes_on_the_error_channel_in_the_negotiated_format() {
        let v4 = ChannelCodec::remote_command(ChannelProtocol::V4);
        let json = StreamStatus::Success.to_json();
        let mut expected = vec![0x82, 1 + json.len() as u8, 3];
        expected.extend_from_slice(json.as_bytes());
        assert_eq!(
            sent(|w| v4.send_status(w, &StreamStatus::Success)),
            expected
        );

        let v1 = ChannelCodec::remote_command(ChannelProtocol::V1);
        assert!(sent(|w| v1.send_status(w, &StreamStatus::Success)).is_empty());
        let failed = StreamStatus::exited(2);
        let text = failed.to_text().unwrap();
        let mut expected = vec![0x82, 1 + text.len() as u8, 3];
        expected.extend_from_slice(text.as_bytes());
        assert_eq!(sent(|w| v1.send_status(w, &failed)), expected);
    }

    #[test]
    fn the_ready_signal_goes_to_the_lowest_writable_channel() {
        assert_eq!(StreamId::ready_channel(true, true), StreamId::Stdout);
        assert_eq!(StreamId::ready_channel(false, true), StreamId::Stderr);
        assert_eq!(StreamId::ready_channel(false, false), StreamId::Error);
        for channel in 0..5 {
            assert_eq!(StreamId::from_channel(channel).unwrap().channel(), channel);
        }
        assert_eq!(StreamId::from_channel(5), None);
    }

    #[test]
    fn resize_messages_parse_as_go_decodes_them() {
        let cases: [(&[u8], (u16, u16)); 6] = [
            (br#"{"Width":80,"Height":24}"#, (80, 24)),
            (b"{\"Width\":80,\"Height\":24}\n", (80, 24)),
            (br#"{"width":100,"HEIGHT":50,"extra":[1]}"#, (100, 50)),
            (br#"{"Height":7}"#, (0, 7)),
            (br#"{"Width":null,"Height":65535}"#, (0, 65535)),
            (br#"{"Width":1,"Height":2} {"Width":3,"Height":4}"#, (3, 4)),
        ];
        for (message, (width, height)) in cases {
            assert_eq!(
                parse_resize(message).unwrap(),
                TerminalSize { width, height },
                "{}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn bad_resize_messages_are_refused() {
        let cases: [&[u8]; 9] = [
            b"",
            b"   ",
            b"{\"Width\":80",
            b"[80,24]",
            br#"{"Width":65536,"Height":1}"#,
            br#"{"Width":-1,"Height":1}"#,
            br#"{"Width":8.5,"Height":1}"#,
            br#"{"Width":"80","Height":1}"#,
            br#"{"Width":1,"Height":1} garbage"#,
        ];
        for message in cases {
            assert!(
                parse_resize(message).is_err(),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        let long = vec![b' '; MAX_RESIZE_MESSAGE_BYTES + 1];
        assert!(matches!(
            parse_resize(&long),
            Err(ChannelError::ResizeTooLong { length, .. }) if length == MAX_RESIZE_MESSAGE_BYTES + 1
        ));
    }

    #[test]
    fn port_query_values_parse_as_the_kubelet_parses_them() {
        assert_eq!(parse_forward_ports(["80"]).unwrap(), [80]);
        assert_eq!(
            parse_forward_ports(["80,443", "8080", "80"]).unwrap(),
            [80, 443, 8080, 80]
        );
        assert_eq!(parse_forward_ports(["00065535"]).unwrap(), [65535]);
        assert!(matches!(
            parse_forward_ports([]),
            Err(ChannelError::NoPorts)
        ));
        for bad in [
            "", "0", "65536", "+80", "-1", "80,", ",80", " 80", "http", "8o",
        ] {
            let err = parse_forward_ports(["443", bad]).unwrap_err();
            assert!(
                matches!(err, ChannelError::BadPort { .. }),
                "{bad:?}: {err}"
            );
        }
        let many: Vec<String> = (1..=128).map(|p| p.to_string()).collect();
        assert_eq!(
            parse_forward_ports(many[..127].iter().map(String::as_str))
                .unwrap()
                .len(),
            127
        );
        assert!(matches!(
            parse_forward_ports(many.iter().map(String::as_str)),
            Err(ChannelError::TooManyPorts { limit: 127 })
        ));
    }

    #[test]
    fn port_forward_sessions_have_a_data_and_an_error_channel_per_port() {
        let codec = ChannelCodec::port_forward(ChannelProtocol::V4, 2).unwrap();
        assert_eq!(codec.decode(&[2, b'x']).unwrap(), data(2, b"x"));
        assert!(matches!(
            codec.decode(&[4, b'x']),
            Err(ChannelError::UnknownChannel {
                channel: 4,
                channels: 4
            })
        ));
        assert_eq!(
            PortChannel::from_channel(3),
            PortChannel {
                index: 1,
                stream: PortStream::Error
            }
        );
        for channel in 0..=253 {
            assert_eq!(PortChannel::from_channel(channel).channel(), Some(channel));
        }
        assert_eq!(PortChannel::from_channel(254).channel(), None);
        assert!(matches!(
            ChannelCodec::port_forward(ChannelProtocol::V4, 0),
            Err(ChannelError::NoPorts)
        ));
        assert!(ChannelCodec::port_forward(ChannelProtocol::V4, MAX_FORWARDED_PORTS).is_ok());
        assert!(matches!(
            ChannelCodec::port_forward(ChannelProtocol::V4, MAX_FORWARDED_PORTS + 1),
            Err(ChannelError::TooManyPorts { limit: 127 })
        ));
        assert!(matches!(
            ChannelCodec::port_forward(ChannelProtocol::V4Base64, MAX_BASE64_FORWARDED_PORTS + 1),
            Err(ChannelError::TooManyPorts { limit: 40 })
        ));
    }

    #[test]
    fn each_port_is_announced_little_endian_on_its_data_then_error_channel() {
        let codec = ChannelCodec::port_forward(ChannelProtocol::V4, 2).unwrap();
        assert_eq!(
            sent(|w| codec.announce_ports(w, &[8080, 53])),
            [
                [0x82, 0x03, 0, 0x90, 0x1f],
                [0x82, 0x03, 1, 0x90, 0x1f],
                [0x82, 0x03, 2, 53, 0],
                [0x82, 0x03, 3, 53, 0],
            ]
            .concat()
        );
        let base64 = ChannelCodec::port_forward(ChannelProtocol::V4Base64, 1).unwrap();
        // 8080 little-endian is 90 1f, base64 "kB8=".
        assert_eq!(
            sent(|w| base64.announce_ports(w, &[8080])),
            [
                [0x81, 0x05, b'0', b'k', b'B', b'8', b'='],
                [0x81, 0x05, b'1', b'k', b'B', b'8', b'='],
            ]
            .concat()
        );
    }

    #[test]
    fn the_highest_base64_port_channel_is_still_one_ascii_character() {
        let codec =
            ChannelCodec::port_forward(ChannelProtocol::V4Base64, MAX_BASE64_FORWARDED_PORTS)
                .unwrap();
        let frame = sent(|w| codec.send(w, 79, b""));
        assert_eq!(frame, [0x81, 0x01, b'0' + 79]);
        assert_eq!(codec.decode(&[b'0' + 79]).unwrap(), data(79, b""));
    }

    #[test]
    fn port_forward_errors_read_as_the_kubelets() {
        assert_eq!(
            port_forward_error(5432, "abc123", &"connection refused"),
            "error forwarding port 5432 to pod abc123, uid : connection refused"
        );
    }

    #[test]
    fn messages_survive_a_real_websocket_round_trip() {
        let codec = ChannelCodec::remote_command(ChannelProtocol::V4Base64);
        let mut wire = Vec::new();
        codec
            .send(
                &mut WsWriter::new(&mut wire),
                StreamId::Stderr.channel(),
                &[0, 1, 2, 250],
            )
            .unwrap();
        // Server frames are unmasked; mask this one as a client would to
        // read it back through the server's reader.
        let payload_start = 2;
        let mask = [1, 2, 3, 4];
        let mut client = vec![wire[0], wire[1] | 0x80];
        client.extend_from_slice(&mask);
        client.extend(
            wire[payload_start..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        let mut reader = websocket::WsReader::new(std::io::Cursor::new(client));
        let websocket::Incoming::Text(text) = reader.read().unwrap() else {
            panic!("expected a text message");
        };
        assert_eq!(
            codec.decode(text.as_bytes()).unwrap(),
            Received::Data {
                channel: 2,
                payload: Cow::Owned(vec![0, 1, 2, 250])
            }
        );
    }
}
