//! The bounds of the status page's connections, which axum's server does not set: at most
//! [`MAX_CONNECTIONS`] at once (one more waits in the kernel's backlog, holding no file
//! descriptor of the daemon's), and each closed after [`IDLE`] without a byte either way
//! (a browser keeps an idle connection for a while; a client that connects and sends
//! nothing no longer holds a slot for ever).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

/// Connections served at once: a household's phones and laptops, a few each.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a connection may go without traffic.
pub const IDLE: Duration = Duration::from_secs(30);

/// One accepted connection, holding its slot until it is dropped.
pub struct Conn {
    io: TcpStream,
    idle: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    /// `io` in the slot `slot`.
    pub fn new(io: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            io,
            idle: Box::pin(tokio::time::sleep(IDLE)),
            _slot: slot,
        }
    }

    /// Traffic: the idle time starts again.
    fn touch(&mut self) {
        self.idle.as_mut().reset(Instant::now() + IDLE);
    }

    /// A read or write's outcome, seen by the idle timer: traffic starts it again; while
    /// nothing moves, its deadline wakes the task and ends the connection with an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "status page: idle connection"),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        this.watch(cx, polled)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
