//! The bounds of the HTTP connections (the status page's and the metrics'), which axum's
//! server does not set: a [`Bounded`] listener serves at most so many at once (one more
//! waits in the kernel's backlog, holding no file descriptor of the daemon's), and each
//! [`Conn`] is closed after [`IDLE`] without a byte either way (a browser keeps an idle
//! connection for a while; a client that connects and sends nothing no longer holds a
//! slot for ever).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections the status page serves at once: a household's phones and laptops, a few
/// each.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a connection may go without traffic.
pub const IDLE: Duration = Duration::from_secs(30);

/// A listener that hands out at most `max` connections at once.
pub struct Bounded {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl Bounded {
    /// `inner`, at most `max` connections at once.
    pub fn new(inner: TcpListener, max: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// The next connection from a peer `keep` accepts; the others are closed as soon as
    /// they are accepted, before a byte is read.
    pub async fn accept_where(&mut self, keep: impl Fn(&SocketAddr) -> bool) -> (Conn, SocketAddr) {
        loop {
            // A slot first: over the bound, connections wait in the kernel's backlog.
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                // The semaphore is never closed; should it be, serve no more.
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((io, peer)) if keep(&peer) => return (Conn::new(io, slot), peer),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accept_where(|_| true).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Bounded::local_addr(self)
    }
}

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
