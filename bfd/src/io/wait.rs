//! How the BFD thread sleeps: `ppoll(2)` on the receiving sockets and a wake-up socket, with a
//! timeout to the microsecond. No async runtime: one syscall per wake-up, no timer wheel, no
//! eventfd writes of a runtime waking itself.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The two ends of a wake-up: handles nudge, the thread listens.
#[derive(Debug)]
pub struct Nudge {
    tx: UnixDatagram,
}

impl Nudge {
    /// A nudger and the socket the thread polls.
    pub fn pair() -> io::Result<(Nudge, UnixDatagram)> {
        let (tx, rx) = UnixDatagram::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok((Nudge { tx }, rx))
    }

    /// Wakes the thread (a full queue means it has been woken already).
    pub fn nudge(&self) {
        let _ = self.tx.send(&[1]);
    }
}

/// Empties the wake-up socket.
pub fn drain_nudges(rx: &UnixDatagram) {
    let mut b = [0u8; 64];
    while rx.recv(&mut b).is_ok() {}
}

/// The most descriptors [`wait`] takes.
pub const MAX_FDS: usize = 4;

/// Sleeps until one of `fds` (at most [`MAX_FDS`]) is readable or `timeout` passes; which of
/// them are readable, bit `i` for `fds[i]`. An interrupted wait (EINTR) returns as a timeout:
/// the caller's loop looks again.
pub fn wait(fds: &[RawFd], timeout: Duration) -> io::Result<u8> {
    let none = libc::pollfd { fd: -1, events: 0, revents: 0 };
    let mut polled = [none; MAX_FDS];
    let n = fds.len().min(MAX_FDS);
    for (p, fd) in polled.iter_mut().zip(fds) {
        *p = libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 };
    }
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `polled` holds at least `n` valid pollfd entries and `ts` outlives the call; no
    // signal mask is passed.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::ppoll(polled.as_mut_ptr(), n as libc::nfds_t, &raw const ts, std::ptr::null())
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    let readable = libc::POLLIN | libc::POLLERR | libc::POLLHUP;
    Ok(polled[..n]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & readable != 0)
        .fold(0, |bits, (i, _)| bits | 1 << i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    #[test]
    fn a_nudge_wakes_and_a_timeout_times_out() {
        let (nudge, rx) = Nudge::pair().expect("pair");
        let t = Instant::now();
        let ready = wait(&[rx.as_raw_fd()], Duration::from_millis(20)).expect("wait");
        assert_eq!(ready, 0);
        assert!(t.elapsed() >= Duration::from_millis(20));
        nudge.nudge();
        nudge.nudge();
        let (_, other) = Nudge::pair().expect("pair");
        let ready = wait(&[other.as_raw_fd(), rx.as_raw_fd()], Duration::from_secs(5));
        assert_eq!(ready.ok(), Some(0b10));
        drain_nudges(&rx);
        assert_eq!(wait(&[rx.as_raw_fd()], Duration::ZERO).ok(), Some(0));
    }
}
