//! The session against RFC 5880's rules, two sessions wired back to back with simulated time.

use std::time::{Duration, Instant};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn iv(rx: u64, tx: u64, mult: u8) -> Intervals {
    Intervals { min_rx: ms(rx), min_tx: ms(tx), multiplier: mult }
}

/// The state change among `out`, if any.
fn change(out: &[Output]) -> Option<Transition> {
    out.iter().find_map(|o| match o {
        Output::Changed(t) => Some(*t),
        _ => None,
    })
}

/// Two sessions and a wire between them that delivers at once, unless cut.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    cut: bool,
    /// Packets A sent, with the time.
    a_sent: Vec<(Instant, Packet)>,
    changes_a: Vec<Transition>,
    changes_b: Vec<Transition>,
}

impl Pair {
    fn new(a: Intervals, b: Intervals) -> Pair {
        let now = Instant::now();
        Pair {
            a: Session::new(0xa, a, 1, now),
            b: Session::new(0xb, b, 2, now),
            now,
            cut: false,
            a_sent: Vec::new(),
            changes_a: Vec::new(),
            changes_b: Vec::new(),
        }
    }

    fn deliver(&mut self, from_a: bool, outs: Vec<Output>) {
        let mut queue: Vec<(bool, Output)> = outs.into_iter().map(|o| (from_a, o)).collect();
        while let Some((from_a, o)) = (!queue.is_empty()).then(|| queue.remove(0)) {
            match o {
                Output::Changed(t) if from_a => self.changes_a.push(t),
                Output::Changed(t) => self.changes_b.push(t),
                Output::Send(p) => {
                    if from_a {
                        self.a_sent.push((self.now, p));
                    }
                    if self.cut {
                        continue;
                    }
                    let to = if from_a { &mut self.b } else { &mut self.a };
                    let more = to.receive(&p, self.now).expect("a valid packet");
                    queue.extend(more.into_iter().map(|o| (!from_a, o)));
                }
            }
        }
    }

    /// Runs both sessions until `until` has passed.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.deadline(), self.b.deadline()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    return;
                }
            }
            let out = self.a.poll(self.now);
            self.deliver(true, out);
            let out = self.b.poll(self.now);
            self.deliver(false, out);
        }
    }
}

#[test]
fn two_sessions_come_up_through_the_three_way_handshake() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(10));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
    let seen: Vec<State> = p.changes_a.iter().map(|t| t.to).collect();
    assert!(seen == [State::Init, State::Up] || seen == [State::Up], "{seen:?}");
}

#[test]
fn up_sessions_move_to_the_configured_timers_through_a_poll_sequence() {
    let mut p = Pair::new(iv(100, 100, 3), iv(100, 100, 3));
    p.run(ms(10));
    // The first Up packets carry the Poll; the Final ends it.
    assert!(p.a_sent.iter().any(|(_, pk)| pk.poll && pk.state == State::Up));
    p.run(ms(50));
    let s = p.a.snapshot();
    assert!(!s.poll_pending);
    assert_eq!(s.tx_interval, ms(100));
    assert_eq!(s.detection_time, Some(ms(300)));
}

#[test]
fn the_slower_side_sets_the_rates() {
    let mut p = Pair::new(iv(100, 100, 3), iv(500, 500, 5));
    p.run(ms(3000));
    let a = p.a.snapshot();
    assert_eq!(a.tx_interval, ms(500), "A may not send faster than B receives");
    assert_eq!(a.detection_time, Some(ms(2500)), "B's multiplier × B's TX");
    let b = p.b.snapshot();
    assert_eq!(b.tx_interval, ms(500));
    assert_eq!(b.detection_time, Some(ms(1500)), "A's multiplier × max(B's RX, A's TX)");
    // And the gaps between A's packets once settled are B's 500 ms less jitter.
    let start = p.a_sent.len();
    p.run(ms(5000));
    for w in p.a_sent[start..].windows(2) {
        let gap = w[1].0 - w[0].0;
        if !w[1].1.final_ && !w[0].1.final_ {
            assert!(gap >= ms(375) && gap <= ms(500), "gap {gap:?}");
        }
    }
}

#[test]
fn while_not_up_a_session_advertises_and_sends_at_one_second_or_slower() {
    let now = Instant::now();
    let mut s = Session::new(1, iv(100, 100, 3), 9, now);
    let first = s.poll(now);
    let Some(Output::Send(pk)) = first.first() else { panic!("{first:?}") };
    assert_eq!(pk.desired_min_tx, Duration::from_secs(1));
    assert_eq!(pk.required_min_rx, ms(100));
    assert_eq!(pk.your_disc, 0);
    assert_eq!(pk.state, State::Down);
    let next = s.deadline().expect("a next packet");
    assert!(next - now >= ms(750) && next - now <= ms(1000), "{:?}", next - now);
}

#[test]
fn silence_for_the_detection_time_takes_the_session_down() {
    let mut p = Pair::new(iv(100, 100, 3), iv(100, 100, 3));
    p.run(ms(500));
    assert_eq!(p.a.state(), State::Up);
    p.cut = true;
    let cut_at = p.now;
    p.run(ms(1000));
    assert_eq!(p.a.state(), State::Down);
    let t = p.changes_a.last().copied().expect("a change");
    assert_eq!(t.diag, Diag::ControlDetectionTimeExpired);
    assert!(t.path_failed());
    let down_at = p.a.snapshot().since;
    assert!(down_at - cut_at <= ms(300), "detected after {:?}", down_at - cut_at);
    assert_eq!(p.a.snapshot().remote_disc, 0, "§6.8.1: the remote is forgotten");
    assert_eq!(p.a.snapshot().flaps, 1);
}

#[test]
fn the_session_comes_back_when_the_path_does() {
    let mut p = Pair::new(iv(100, 100, 3), iv(100, 100, 3));
    p.run(ms(500));
    p.cut = true;
    p.run(ms(1000));
    p.cut = false;
    p.run(ms(3000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
    assert_eq!(p.a.snapshot().tx_interval, ms(100));
}

#[test]
fn a_peers_admin_down_takes_us_down_without_failing_the_path() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    let out = p.b.admin_down(p.now);
    p.deliver(false, out);
    assert_eq!(p.b.state(), State::AdminDown);
    assert_eq!(p.a.state(), State::Down);
    let t = p.changes_a.last().copied().expect("a change");
    assert_eq!(t.diag, Diag::NeighborSignaledSessionDown);
    assert!(t.remote_admin_down);
    assert!(!t.path_failed(), "RFC 5882 §3.2: AdminDown is not a path failure");
    // Our own AdminDown is not one either.
    let ours = p.b.admin_down(p.now);
    assert!(ours.is_empty(), "already AdminDown");
    let t = p.changes_b.last().copied().expect("a change");
    assert_eq!(t.diag, Diag::AdministrativelyDown);
    assert!(!t.path_failed());
    // AdminDown ignores the peer and detects nothing; leaving it brings the session back.
    p.run(ms(5000));
    assert_eq!(p.b.state(), State::AdminDown);
    let out = p.b.admin_up(p.now);
    p.deliver(false, out);
    p.run(ms(3000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
}

#[test]
fn a_peer_going_down_is_signalled_by_diag_3() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    let now = p.now;
    let mut pk = Packet::decode(&p.b.packet().encode()).expect("our packet decodes");
    pk.state = State::Down;
    let out = p.a.receive(&pk, now).expect("accepted");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Changed(Transition {
            to: State::Down,
            diag: Diag::NeighborSignaledSessionDown,
            ..
        })
    )));
}

#[test]
fn a_poll_is_answered_with_a_final_at_once() {
    let now = Instant::now();
    let mut s = Session::new(1, Intervals::default(), 3, now);
    s.poll(now);
    let mut pk = Session::new(2, Intervals::default(), 4, now).packet();
    pk.poll = true;
    let out = s.receive(&pk, now).expect("accepted");
    let finals: Vec<&Packet> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(p) if p.final_ => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1, "{out:?}");
    assert!(!finals[0].poll);
}

#[test]
fn a_longer_transmit_interval_waits_for_the_final() {
    let mut p = Pair::new(iv(100, 100, 3), iv(100, 100, 3));
    p.run(ms(500));
    p.cut = true;
    let out = p.a.set_intervals(iv(100, 400, 3), p.now);
    p.deliver(true, out);
    let s = p.a.snapshot();
    assert!(s.poll_pending);
    assert_eq!(s.tx_interval, ms(100), "until the Final, the old rate");
    p.cut = false;
    p.run(ms(200));
    let s = p.a.snapshot();
    assert!(!s.poll_pending);
    assert_eq!(s.tx_interval, ms(400));
    assert_eq!(p.b.snapshot().detection_time, Some(ms(1200)));
    assert_eq!(p.a.state(), State::Up);
}

#[test]
fn a_shorter_receive_interval_detects_on_the_old_one_until_the_final() {
    let mut p = Pair::new(iv(500, 100, 3), iv(100, 100, 3));
    p.run(ms(3000));
    assert_eq!(p.a.snapshot().detection_time, Some(ms(1500)));
    p.cut = true;
    let out = p.a.set_intervals(iv(100, 100, 3), p.now);
    p.deliver(true, out);
    assert_eq!(p.a.snapshot().detection_time, Some(ms(1500)));
    p.cut = false;
    p.run(ms(300));
    assert_eq!(p.a.snapshot().detection_time, Some(ms(300)));
}

#[test]
fn no_packets_go_to_a_peer_that_asks_for_none() {
    let now = Instant::now();
    let mut s = Session::new(1, Intervals::default(), 3, now);
    s.poll(now);
    let mut pk = Session::new(2, Intervals::default(), 4, now).packet();
    pk.required_min_rx = Duration::ZERO;
    s.receive(&pk, now).expect("accepted");
    // Before the detection time (3 × 1 s while not Up) runs out and forgets the peer.
    let later = s.poll(now + Duration::from_secs(2));
    assert!(!later.iter().any(|o| matches!(o, Output::Send(_))), "{later:?}");
}

#[test]
fn jitter_stays_within_a_quarter_below_the_interval() {
    let now = Instant::now();
    let mut s = Session::new(1, Intervals::default(), 12345, now);
    let mut lo = Duration::MAX;
    let mut hi = Duration::ZERO;
    for _ in 0..1000 {
        let j = s.jittered(ms(1000));
        lo = lo.min(j);
        hi = hi.max(j);
    }
    assert!(lo >= ms(750) && hi <= ms(1000), "{lo:?}..{hi:?}");
    assert!(hi - lo > ms(200), "the jitter spreads: {lo:?}..{hi:?}");
    s.cfg.multiplier = 1;
    for _ in 0..1000 {
        let j = s.jittered(ms(1000));
        assert!(j >= ms(750) && j <= ms(900), "{j:?} with a multiplier of 1");
    }
}

#[test]
fn packets_that_are_not_for_this_session_are_discarded() {
    let now = Instant::now();
    let mut s = Session::new(7, Intervals::default(), 3, now);
    let mut pk = Session::new(2, Intervals::default(), 4, now).packet();
    pk.auth = true;
    assert_eq!(s.receive(&pk, now), Err(Discard::Authentication));
    pk.auth = false;
    pk.state = State::Up;
    pk.your_disc = 0;
    assert_eq!(s.receive(&pk, now), Err(Discard::ZeroYourDiscriminator(State::Up)));
    pk.your_disc = 8;
    assert_eq!(s.receive(&pk, now), Err(Discard::WrongDiscriminator { got: 8, ours: 7 }));
    assert_eq!(s.state(), State::Down, "nothing changed");
}

#[test]
fn a_peer_in_demand_mode_stops_our_periodic_packets() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    let now = p.now;
    let mut pk = p.b.packet();
    pk.demand = true;
    p.a.receive(&pk, now).expect("accepted");
    let before = p.a_sent.len();
    // Past any periodic packet (300 ms), before the detection time (900 ms).
    let out = p.a.poll(now + ms(600));
    assert!(out.iter().all(|o| !matches!(o, Output::Send(_))), "{out:?}");
    assert_eq!(p.a_sent.len(), before);
}

#[test]
fn intervals_outside_frrs_range_are_refused() {
    assert!(Intervals::default().validate().is_ok());
    assert!(iv(10, 60_000, 2).validate().is_ok());
    assert!(matches!(iv(9, 100, 3).validate(), Err(IntervalsError::Interval { .. })));
    assert!(matches!(iv(100, 60_001, 3).validate(), Err(IntervalsError::Interval { .. })));
    assert_eq!(iv(100, 100, 1).validate(), Err(IntervalsError::Multiplier(1)));
}

#[test]
fn durations_read_and_print_as_calico_writes_them() {
    use super::duration_str::{format, parse};
    assert_eq!(parse("100ms"), Ok(ms(100)));
    assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse("1s500ms"), Ok(ms(1500)));
    for bad in ["", "100", "ms", "1h", "-1s", "1.5s", "99999999999ms"] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
    assert_eq!(format(ms(300)), "300ms");
    assert_eq!(format(Duration::from_secs(2)), "2s");
}

#[test]
fn a_new_session_at_the_peer_is_not_a_path_failure() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    assert_eq!(p.a.state(), State::Up);
    // The peer replaces its session: a new discriminator, Down, not knowing ours yet.
    let now = p.now;
    let mut fresh = Session::new(0xbb, Intervals::default(), 5, now);
    let out = fresh.poll(now);
    let Some(Output::Send(pk)) = out.first().cloned() else { panic!("{out:?}") };
    let out = p.a.receive(&pk, now).expect("accepted by source address");
    let t = change(&out).expect("a change");
    assert_eq!((t.from, t.to), (State::Up, State::Down));
    assert!(t.peer_restarted);
    assert!(!t.path_failed(), "its packet crossed the path: the path works");
}

#[test]
fn a_peer_that_stopped_hearing_us_is_a_path_failure() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    let now = p.now;
    // The peer's detection time ran out: Down, diag 1, our discriminator forgotten.
    let mut pk = p.b.packet();
    pk.state = State::Down;
    pk.diag = Diag::ControlDetectionTimeExpired;
    pk.your_disc = 0;
    let out = p.a.receive(&pk, now).expect("accepted");
    let t = change(&out).expect("a change");
    assert!(!t.peer_restarted);
    assert!(t.path_failed(), "the path towards the peer is broken");
}

/// Found by the fuzzer: a peer that asked for no packets, then went silent, left the session
/// Down with nothing scheduled, so it never spoke again.
#[test]
fn after_a_detection_timeout_the_session_speaks_again_even_to_a_peer_that_wanted_silence() {
    let mut p = Pair::new(Intervals::default(), Intervals::default());
    p.run(ms(100));
    let now = p.now;
    let mut pk = p.b.packet();
    pk.required_min_rx = Duration::ZERO;
    p.a.receive(&pk, now).expect("accepted");
    let out = p.a.poll(now + Duration::from_secs(5));
    assert!(out.iter().any(|o| matches!(o, Output::Changed(t) if t.to == State::Down)));
    assert!(out.iter().any(|o| matches!(o, Output::Send(p) if p.state == State::Down)), "{out:?}");
    assert!(p.a.deadline().is_some(), "the next packet is scheduled");
}

#[test]
fn with_send_slack_packets_may_go_early_but_never_below_three_quarters_of_the_interval() {
    let mut p = Pair::new(iv(100, 100, 3), iv(100, 100, 3));
    p.a.set_send_slack(ms(2));
    p.run(ms(500));
    let start = p.a_sent.len();
    // Drive A alone, waking every 2 ms as its owner would, sending whatever is due.
    let mut sent = Vec::new();
    for step in 0..5000 {
        let now = p.now + ms(step * 2) + Duration::from_micros(700);
        for o in p.a.poll(now) {
            if let Output::Send(pk) = o {
                if !pk.final_ {
                    sent.push(now);
                }
            }
        }
        let pk = p.b.packet();
        let _ = p.a.receive(&pk, now);
    }
    assert!(p.a_sent.len() >= start);
    for w in sent.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= ms(75), "an interval of {gap:?} is below 75 % of 100 ms");
        assert!(gap <= ms(102), "an interval of {gap:?}");
    }
    assert!(sent.len() > 90, "{} packets in 10 s", sent.len());
}
