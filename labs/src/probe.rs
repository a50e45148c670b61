//! `tartanlab probe`: a paced UDP flow of sequence numbers and its receiver, to measure a
//! failover the way RFC 6412 does (loss-derived convergence time): at a fixed rate, the longest
//! run of missing sequence numbers is the outage. Run the receiver in one node or container
//! and the sender in another; the receiver prints what arrived once the flow has been quiet
//! for `--idle` seconds.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What a receiver saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlowReport {
    /// Packets received (duplicates not counted).
    pub received: u64,
    /// The highest sequence number seen, plus one: how many the sender had sent by then.
    pub highest: u64,
    /// Sequence numbers never seen below `highest`.
    pub lost: u64,
    /// The longest run of missing sequence numbers.
    pub longest_gap: u64,
    /// Packets that came after a later one.
    pub reordered: u64,
}

/// Gap accounting, without I/O.
#[derive(Debug, Default)]
pub struct Tally {
    seen: Vec<bool>,
    report: FlowReport,
    last: Option<u64>,
}

/// Sequence numbers above this are refused (a stray datagram must not make us allocate).
const MAX_SEQ: u64 = 10_000_000;

impl Tally {
    pub fn record(&mut self, seq: u64) {
        if seq >= MAX_SEQ {
            return;
        }
        let i = seq as usize;
        if self.seen.len() <= i {
            self.seen.resize(i + 1, false);
        }
        if self.seen[i] {
            return;
        }
        self.seen[i] = true;
        self.report.received += 1;
        if self.last.is_some_and(|l| seq < l) {
            self.report.reordered += 1;
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
    }

    pub fn report(&self) -> FlowReport {
        let mut r = self.report.clone();
        r.highest = self.seen.len() as u64;
        let (mut run, mut longest, mut lost) = (0u64, 0u64, 0u64);
        for s in &self.seen {
            if *s {
                run = 0;
            } else {
                run += 1;
                lost += 1;
                longest = longest.max(run);
            }
        }
        r.lost = lost;
        r.longest_gap = longest;
        r
    }
}

/// Sends `count` datagrams to `to` at `pps`, each holding its sequence number in ASCII.
/// Sending errors (no route for a moment) count as sent: the receiver sees them as lost.
pub fn send(to: SocketAddr, pps: u32, count: u64) -> std::io::Result<u64> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(
        |e: std::net::AddrParseError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    )?;
    let sock = UdpSocket::bind(bind)?;
    let step = Duration::from_secs(1) / pps.max(1);
    let start = Instant::now();
    let mut errors = 0;
    for seq in 0..count {
        let due = start + step * u32::try_from(seq).unwrap_or(u32::MAX);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if sock.send_to(seq.to_string().as_bytes(), to).is_err() {
            errors += 1;
        }
    }
    Ok(errors)
}

/// Receives on `port` until nothing has come for `idle` (after the first packet), or for
/// `first` before it.
pub fn receive(port: u16, idle: Duration, first: Duration) -> std::io::Result<FlowReport> {
    let sock = UdpSocket::bind(SocketAddr::from(([0u8; 16], port)))
        .or_else(|_| UdpSocket::bind(SocketAddr::from(([0u8; 4], port))))?;
    let mut tally = Tally::default();
    let mut buf = [0u8; 64];
    let mut got_any = false;
    sock.set_read_timeout(Some(first))?;
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if !got_any {
                    got_any = true;
                    sock.set_read_timeout(Some(idle))?;
                }
                let seq = std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.trim().parse().ok());
                if let Some(seq) = seq {
                    tally.record(seq);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(tally.report());
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_run_of_missing_numbers_is_the_gap() {
        let mut t = Tally::default();
        for s in (0..100).chain(130..200).chain(205..300) {
            t.record(s);
        }
        t.record(50);
        let r = t.report();
        assert_eq!(r.received, 265);
        assert_eq!(r.highest, 300);
        assert_eq!(r.lost, 35);
        assert_eq!(r.longest_gap, 30);
        assert_eq!(r.reordered, 0, "a duplicate is not a reordering");
    }

    #[test]
    fn late_packets_fill_their_gap_and_count_as_reordered() {
        let mut t = Tally::default();
        for s in [0, 1, 3, 2, 4] {
            t.record(s);
        }
        let r = t.report();
        assert_eq!((r.lost, r.longest_gap, r.reordered), (0, 0, 1));
        t.record(MAX_SEQ + 5);
        assert_eq!(t.report().highest, 5, "absurd numbers are ignored");
    }

    #[test]
    fn a_flow_over_loopback_arrives_whole() {
        let port = {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr").port()
        };
        let rx = std::thread::spawn(move || {
            receive(port, Duration::from_millis(300), Duration::from_secs(5))
        });
        std::thread::sleep(Duration::from_millis(100));
        let errors = send(SocketAddr::from(([127, 0, 0, 1], port)), 1000, 200).expect("send");
        let r = rx.join().expect("receiver").expect("report");
        assert_eq!(errors, 0);
        assert_eq!(r.received, 200, "{r:?}");
        assert_eq!(r.longest_gap, 0);
    }
}
