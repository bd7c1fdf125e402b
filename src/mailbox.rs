//! Typed channels between threads that all share one instance of std's
//! `mpsc` channel code.
//!
//! std's channel is compiled again for every message type, and each copy
//! carries its three flavours (unbounded, bounded and rendezvous), a few KB
//! per type. Here every message travels boxed as `dyn Any` through one
//! `mpsc::channel::<Box<dyn Any + Send>>`, and [`Sender`] and [`Receiver`]
//! only box and unbox, so a message type adds a few hundred bytes. Sending,
//! receiving, timeouts, disconnection and order are std's own; each message
//! costs one allocation. Use it for channels that carry few messages, not
//! for bulk data.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::mpsc::{self, RecvError, RecvTimeoutError, SendError, TryRecvError};
use std::time::Duration;

type Boxed = Box<dyn Any + Send>;

/// A new channel, as `std::sync::mpsc::channel`.
pub fn channel<T: Send + 'static>() -> (Sender<T>, Receiver<T>) {
    let (sender, receiver) = mpsc::channel();
    (
        Sender {
            inner: sender,
            message: PhantomData,
        },
        Receiver {
            inner: receiver,
            message: PhantomData,
        },
    )
}

/// The sending half; clones send into the same channel.
pub struct Sender<T> {
    inner: mpsc::Sender<Boxed>,
    message: PhantomData<fn(T)>,
}

/// The receiving half.
pub struct Receiver<T> {
    inner: mpsc::Receiver<Boxed>,
    message: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Sender<T> {
    /// As `std::sync::mpsc::Sender::send`: the value comes back when the
    /// receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.inner
            .send(Box::new(value))
            .map_err(|SendError(boxed)| SendError(unbox(boxed)))
    }
}

impl<T: 'static> Receiver<T> {
    /// As `std::sync::mpsc::Receiver::recv`.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.inner.recv().map(unbox)
    }

    /// As `std::sync::mpsc::Receiver::recv_timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.inner.recv_timeout(timeout).map(unbox)
    }

    /// As `std::sync::mpsc::Receiver::try_recv`.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.inner.try_recv().map(unbox)
    }
}

/// Every message until all senders are gone, as std's receiver iterates.
impl<T: 'static> Iterator for Receiver<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.recv().ok()
    }
}

/// Not generic, so the one copy serves every message type.
#[cold]
#[inline(never)]
fn wrong_type() -> ! {
    unreachable!("a mailbox carried a message of another type")
}

fn unbox<T: 'static>(boxed: Boxed) -> T {
    // Only a Sender<T> puts values in the channel a Receiver<T> reads.
    match boxed.downcast::<T>() {
        Ok(value) => *value,
        Err(_) => wrong_type(),
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        Sender {
            inner: self.inner.clone(),
            message: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::thread;

    use super::*;

    #[test]
    fn messages_arrive_in_order_from_every_sender() {
        let (first, received) = channel();
        let second = first.clone();
        first.send(1).unwrap();
        second.send(2).unwrap();
        thread::spawn(move || first.send(3).unwrap())
            .join()
            .unwrap();
        drop(second);
        assert_eq!(received.collect::<Vec<u32>>(), [1, 2, 3]);
    }

    #[test]
    fn a_send_without_a_receiver_gives_the_value_back() {
        let (sender, received) = channel();
        drop(received);
        assert_eq!(
            sender.send("kept".to_owned()),
            Err(SendError("kept".to_owned()))
        );
    }

    #[test]
    fn receiving_tells_empty_from_disconnected() {
        let (sender, received) = channel::<bool>();
        assert_eq!(received.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(
            received.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        sender.send(true).unwrap();
        assert_eq!(received.recv_timeout(Duration::from_secs(1)), Ok(true));
        drop(sender);
        assert_eq!(received.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(received.recv(), Err(RecvError));
    }
}
