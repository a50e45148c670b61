//! The timers a state machine asked for, as deadlines: the peer task sleeps until the earliest
//! and feeds the expired ones back. Connection retry and restart waits get RFC 4271 §10's
//! jitter (a random 75–100 %), so peers that failed together do not retry in lockstep.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::fsm::Timer;

#[derive(Debug)]
pub struct Timers {
    deadlines: HashMap<Timer, Instant>,
    rng: u64,
}

impl Timers {
    pub fn new(seed: u64) -> Timers {
        Timers { deadlines: HashMap::new(), rng: seed | 1 }
    }

    pub fn set(&mut self, t: Timer, after: Duration) {
        let after = match t {
            Timer::ConnectRetry | Timer::IdleHold => self.jitter(after),
            _ => after,
        };
        self.deadlines.insert(t, Instant::now() + after);
    }

    pub fn cancel(&mut self, t: Timer) {
        self.deadlines.remove(&t);
    }

    pub fn is_set(&self, t: Timer) -> bool {
        self.deadlines.contains_key(&t)
    }

    /// The earliest deadline, if any timer runs.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Removes and returns the timers due by `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Timer> {
        let due: Vec<Timer> =
            self.deadlines.iter().filter(|(_, d)| **d <= now).map(|(t, _)| *t).collect();
        for t in &due {
            self.deadlines.remove(t);
        }
        due
    }

    /// 75–100 % of `d`.
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.75 + (self.rng % 1000) as f64 / 4000.0;
        d.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_jittered_and_hold_timers_are_not() {
        let mut t = Timers::new(42);
        let now = Instant::now();
        t.set(Timer::ConnectRetry, Duration::from_secs(100));
        t.set(Timer::Hold(1), Duration::from_secs(9));
        let retry = t.deadlines[&Timer::ConnectRetry] - now;
        assert!(retry >= Duration::from_secs(75) && retry <= Duration::from_secs(101), "{retry:?}");
        let hold = t.deadlines[&Timer::Hold(1)] - now;
        assert!(hold >= Duration::from_secs(9) && hold < Duration::from_secs(10));
        assert_eq!(t.expired(now + Duration::from_secs(10)), vec![Timer::Hold(1)]);
        assert!(t.is_set(Timer::ConnectRetry));
        t.cancel(Timer::ConnectRetry);
        assert_eq!(t.next(), None);
    }
}
