//! A request head read the way the streaming server reads it, for tests
//! that hand connections to sessions directly, without the server.

use std::net::TcpStream;
use std::time::Duration;

use dockshim::codec::http_head::read_request;
use dockshim::streaming::session::Handoff;

/// Reads a request head from `conn` with the server's own reader and
/// describes it as the server does; `timeout` bounds the wait for the head.
pub fn handoff(mut conn: TcpStream, timeout: Duration) -> Handoff {
    let (head, leftover) = read_request(&mut conn, timeout).unwrap();
    Handoff::new(head, conn, leftover, None)
}
