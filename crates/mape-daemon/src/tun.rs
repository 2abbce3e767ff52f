//! The TUN device: `/dev/net/tun` opened once per queue with `IFF_TUN | IFF_NO_PI`
//! (and `IFF_MULTI_QUEUE` for more than one queue), so each read or write is one bare IPv4
//! or IPv6 packet (Linux `Documentation/networking/tuntap.rst`; docs/linux-plumbing.md). The device is not
//! persistent: closing the last queue removes it and every route through it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// From libc, per architecture and C library: the ioctl request (`_IOW('T', 202, int)`, whose
// encoding differs on e.g. mips, powerpc and sparc) with the request type `ioctl` takes
// there (`c_ulong` on glibc, `c_int` on musl), and the `ifr_flags` bits (linux/if_tun.h).
use libc::TUNSETIFF;
// The flags are `c_int` in libc; `ifr_flags` is a `short` and every flag fits.
const IFF_TUN: libc::c_short = libc::IFF_TUN as libc::c_short;
const IFF_NO_PI: libc::c_short = libc::IFF_NO_PI as libc::c_short;
const IFF_MULTI_QUEUE: libc::c_short = libc::IFF_MULTI_QUEUE as libc::c_short;

/// One queue of the TUN device.
#[derive(Debug)]
pub struct TunQueue {
    fd: OwnedFd,
}

/// Opens `queues` queues of the TUN device `name`; returns them with the device's name.
pub fn open(name: &str, queues: usize) -> io::Result<Vec<TunQueue>> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TUN name {name:?}: 1-15 characters"),
        ));
    }
    let queues = queues.max(1);
    let mut flags = IFF_TUN | IFF_NO_PI;
    if queues > 1 {
        flags |= IFF_MULTI_QUEUE;
    }
    let mut out = Vec::with_capacity(queues);
    for _ in 0..queues {
        // SAFETY: the path is a valid NUL-terminated C string; open returns a new fd or -1.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")));
        }
        // SAFETY: `raw` is a freshly opened fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = flags;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is, for the
        // duration of the call; the fd is valid.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut libc::ifreq) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        out.push(TunQueue { fd });
    }
    Ok(out)
}

impl TunQueue {
    /// Reads one packet; `Ok(None)` when nothing is waiting (non-blocking).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the fd is open.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Writes one packet (the kernel routes it like a received one).
    pub fn write(&self, pkt: &[u8]) -> io::Result<()> {
        // SAFETY: `pkt` is valid for reads of `pkt.len()` bytes; the fd is open.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast::<libc::c_void>(),
                pkt.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the queue is readable, `wake` is readable, or `timeout_ms` passes.
    /// Returns whether the queue is readable.
    pub fn wait(&self, wake: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(fds[0].revents & libc::POLLIN != 0)
    }
}

impl AsFd for TunQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An eventfd that tells the workers to stop.
#[derive(Debug)]
pub struct Wake {
    fd: OwnedFd,
}

impl Wake {
    /// A new, unsignalled eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd returns a new fd or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Signals every waiter (the counter stays non-zero, so all of them see it).
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an eventfd we own.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast::<libc::c_void>(),
                8,
            )
        };
    }
}

impl AsFd for Wake {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
