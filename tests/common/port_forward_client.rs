//! A SPDY port-forward client as kubectl behaves, for the tests that visit
//! a PortForward URL: one session, a pair of streams per forwarded
//! connection, the error stream opened first and closed at once, and what
//! each stream carried.
//!
//! Built on the independent `spdy_client`, never on dockshim's own
//! streaming code. Blocking I/O: call it from a thread or
//! `spawn_blocking`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::spdy_client::{ClientFrame, SpdyClient};

/// The SPDY subprotocol of port forwarding.
pub const SPDY_PORT_FORWARD: &str = "portforward.k8s.io";

/// What arrived on one SPDY stream.
#[derive(Debug, Default, Clone)]
pub struct StreamData {
    pub data: Vec<u8>,
    /// The server half-closed the stream.
    pub closed: bool,
}

/// One forwarded connection: its two streams.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub error: u32,
    pub data: u32,
}

/// A SPDY port-forward session and what each of its streams carried.
pub struct SpdyPortForward {
    /// For tests that open streams the way kubectl never would.
    pub client: SpdyClient,
    streams: HashMap<u32, StreamData>,
    next_request: u32,
}

impl SpdyPortForward {
    /// Upgrades a connection to `address` at `path`; every read then waits
    /// at most `timeout`.
    pub fn connect(address: SocketAddr, path: &str, timeout: Duration) -> SpdyPortForward {
        let (response, client) =
            SpdyClient::connect(address, "POST", path, &[SPDY_PORT_FORWARD]).unwrap();
        assert_eq!(response.status, 101, "{response:?}");
        assert_eq!(
            response.header("X-Stream-Protocol-Version"),
            Some(SPDY_PORT_FORWARD)
        );
        let client = client.unwrap();
        client.set_read_timeout(Some(timeout)).unwrap();
        SpdyPortForward {
            client,
            streams: HashMap::new(),
            next_request: 0,
        }
    }

    /// As [`SpdyPortForward::connect`], to the `http://` URL PortForward
    /// answered with.
    pub fn connect_url(url: &str, timeout: Duration) -> SpdyPortForward {
        let (address, path) = super::split_url(url);
        SpdyPortForward::connect(address, &path, timeout)
    }

    /// Opens the streams of a connection to `port`.
    pub fn open_pair(&mut self, port: u16) -> Pair {
        let (port, request) = (port.to_string(), self.next_request.to_string());
        self.next_request += 1;
        let mut open = |kind: &str| {
            self.client
                .open_stream(
                    &[
                        ("streamtype", kind),
                        ("port", &port),
                        ("requestid", &request),
                    ],
                    false,
                )
                .unwrap()
        };
        let error = open("error");
        let data = open("data");
        // kubectl never writes to the error stream.
        self.client.send_data(error, &[], true).unwrap();
        Pair { error, data }
    }

    pub fn send(&mut self, pair: Pair, bytes: &[u8]) {
        self.client.send_data(pair.data, bytes, false).unwrap();
    }

    /// Half-closes the data stream: the local connection reached its end.
    pub fn close(&mut self, pair: Pair) {
        self.client.send_data(pair.data, &[], true).unwrap();
    }

    /// Reads one frame, recording stream data and closes.
    pub fn read_one(&mut self) {
        match self.client.read_frame().unwrap() {
            Some(ClientFrame::Data { stream, fin, data }) => {
                let received = self.streams.entry(stream).or_default();
                received.data.extend_from_slice(&data);
                received.closed |= fin;
            }
            Some(ClientFrame::RstStream { stream, status }) => {
                panic!("the server reset stream {stream} ({status})")
            }
            Some(_) => {}
            None => panic!("the server closed the connection"),
        }
    }

    /// What `stream` carried so far.
    pub fn stream(&self, stream: u32) -> StreamData {
        self.streams.get(&stream).cloned().unwrap_or_default()
    }

    /// Reads until `stream` closes; returns what it carried.
    pub fn until_closed(&mut self, stream: u32) -> Vec<u8> {
        while !self.stream(stream).closed {
            self.read_one();
        }
        self.stream(stream).data
    }

    /// Reads until `stream` carried something.
    pub fn until_data(&mut self, stream: u32) {
        while self.stream(stream).data.is_empty() {
            assert!(!self.stream(stream).closed, "stream {stream} closed empty");
            self.read_one();
        }
    }

    /// Reads until `stream` carried `wanted`.
    pub fn until_received(&mut self, stream: u32, wanted: &[u8]) {
        while !self
            .stream(stream)
            .data
            .windows(wanted.len())
            .any(|w| w == wanted)
        {
            assert!(
                !self.stream(stream).closed,
                "stream {stream} closed without {:?}",
                String::from_utf8_lossy(wanted)
            );
            self.read_one();
        }
    }
}
