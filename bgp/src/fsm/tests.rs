//! State machine transitions, one sentence each.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::types::{Family, FamilySet};
use crate::wire::capability::GrFamily;
use crate::wire::notification::{code as ncode, open as nopen};
use crate::wire::{Capability, DecodeError, DecodeErrorKind, Update};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn cfg() -> SessionConfig {
    SessionConfig {
        local_as: Asn(65001),
        remote_as: Some(Asn(65002)),
        router_id: LOCAL_ID,
        passive: false,
        hold_time: 90,
        keepalive: None,
        connect_retry: Duration::from_secs(5),
        families: FamilySet::single(Family::Ipv4Unicast),
        add_path_receive: FamilySet::EMPTY,
        extended_message: false,
        extended_next_hop: false,
        graceful_restart: None,
    }
}

fn gr_cfg() -> SessionConfig {
    SessionConfig {
        graceful_restart: Some(GracefulRestart { restart_time: 120, forwarding_preserved: true }),
        ..cfg()
    }
}

fn peer_open(asn: u32, id: [u8; 4], hold: u16) -> Open {
    Open::new(
        Asn(asn),
        hold,
        Ipv4Addr::from(id),
        vec![Capability::multiprotocol(Family::Ipv4Unicast), Capability::RouteRefresh],
    )
}

fn peer_open_gr(forwarding: bool) -> Open {
    let mut o = peer_open(65002, [10, 0, 0, 2], 90);
    o.capabilities.push(Capability::GracefulRestart {
        restart_state: false,
        notification: false,
        restart_time: 30,
        families: vec![GrFamily { afi: 1, safi: 1, forwarding_preserved: forwarding }],
    });
    o
}

fn sent_notification(out: &[Output], conn: ConnId) -> Option<Notification> {
    out.iter().find_map(|o| match o {
        Output::Send(c, Message::Notification(n)) if *c == conn => Some(n.clone()),
        _ => None,
    })
}

/// The session's end among `out`, if it ended.
fn session_down(out: &[Output]) -> Option<Down> {
    out.iter().find_map(|o| match o {
        Output::Down(d) => Some(d.clone()),
        _ => None,
    })
}

fn has(out: &[Output], want: &Output) -> bool {
    out.contains(want)
}

fn timer_set(out: &[Output], t: Timer) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::SetTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

/// Brings a session up on connection `id` and returns the state machine.
fn established_with(cfg: SessionConfig, open: Open) -> Fsm {
    let mut fsm = Fsm::new(cfg, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    fsm.handle(Input::Received(1, Message::Open(open)));
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    assert!(out.iter().any(|o| matches!(o, Output::Up(1, _))), "{out:?}");
    fsm
}

fn established() -> Fsm {
    established_with(cfg(), peer_open(65002, [10, 0, 0, 2], 90))
}

#[test]
fn starting_an_active_peer_connects_and_arms_connect_retry() {
    let mut fsm = Fsm::new(cfg(), false);
    assert_eq!(fsm.state(), State::Idle);
    let out = fsm.handle(Input::Start);
    assert!(has(&out, &Output::Connect));
    assert_eq!(timer_set(&out, Timer::ConnectRetry), Some(Duration::from_secs(5)));
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn a_passive_peer_waits_without_connecting() {
    let mut fsm = Fsm::new(SessionConfig { passive: true, ..cfg() }, false);
    let out = fsm.handle(Input::Start);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(fsm.state(), State::Active);
    assert!(fsm.accepts_connections());
}

#[test]
fn a_failed_connection_attempt_is_retried_when_connect_retry_expires() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    let out = fsm.handle(Input::ConnectFailed);
    assert!(out.is_empty());
    assert_eq!(fsm.state(), State::Active);
    let out = fsm.handle(Input::Timer(Timer::ConnectRetry));
    assert!(has(&out, &Output::Connect));
}

#[test]
fn connect_retry_does_not_start_a_second_attempt_while_one_is_under_way() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    let out = fsm.handle(Input::Timer(Timer::ConnectRetry));
    assert!(!has(&out, &Output::Connect));
    assert!(timer_set(&out, Timer::ConnectRetry).is_some());
}

#[test]
fn a_new_connection_sends_our_open_and_waits_four_minutes_for_theirs() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    let out = fsm.handle(Input::Connected(7, Direction::Outbound));
    let open = out
        .iter()
        .find_map(|o| match o {
            Output::Send(7, Message::Open(open)) => Some(open.clone()),
            _ => None,
        })
        .expect("an OPEN");
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 90);
    assert!(open.capabilities.contains(&Capability::multiprotocol(Family::Ipv4Unicast)));
    assert!(open.capabilities.contains(&Capability::FourOctetAs(Asn(65001))));
    assert!(!open.capabilities.contains(&Capability::multiprotocol(Family::Ipv6Unicast)));
    assert!(!open.has(crate::wire::capability::code::GRACEFUL_RESTART));
    assert_eq!(timer_set(&out, Timer::Hold(7)), Some(OPEN_HOLD_TIME));
    assert!(has(&out, &Output::CancelTimer(Timer::ConnectRetry)));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn open_exchange_reaches_established() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    assert!(has(&out, &Output::Send(1, Message::Keepalive)));
    assert_eq!(fsm.state(), State::OpenConfirm);
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    let n = out
        .iter()
        .find_map(|o| match o {
            Output::Up(1, n) => Some(n.clone()),
            _ => None,
        })
        .expect("Up");
    assert_eq!(n.remote_as, Asn(65002));
    assert_eq!(n.remote_id, Ipv4Addr::new(10, 0, 0, 2));
    assert!(n.route_refresh);
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(timer_set(&out, Timer::Stable), Some(STABLE_AFTER));
}

#[test]
fn hold_time_is_the_smaller_of_both_and_keepalive_a_third_of_it() {
    let mut fsm = Fsm::new(SessionConfig { hold_time: 9, ..cfg() }, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 180))));
    assert_eq!(timer_set(&out, Timer::Hold(1)), Some(Duration::from_secs(9)));
    assert_eq!(timer_set(&out, Timer::Keepalive(1)), Some(Duration::from_secs(3)));
}

#[test]
fn a_configured_keepalive_never_exceeds_a_third_of_the_negotiated_hold_time() {
    let mut fsm = Fsm::new(SessionConfig { keepalive: Some(30), ..cfg() }, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 9))));
    assert_eq!(timer_set(&out, Timer::Keepalive(1)), Some(Duration::from_secs(3)));
}

#[test]
fn a_zero_hold_time_means_neither_hold_timer_nor_keepalives() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 0))));
    assert!(has(&out, &Output::CancelTimer(Timer::Hold(1))));
    assert_eq!(timer_set(&out, Timer::Keepalive(1)), None);
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    assert_eq!(timer_set(&out, Timer::Hold(1)), None);
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn a_peer_announcing_the_wrong_as_is_refused_with_bad_peer_as() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65099, [10, 0, 0, 2], 90))));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::OPEN, nopen::BAD_PEER_AS));
    assert!(has(&out, &Output::Close(1)));
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(timer_set(&out, Timer::IdleHold), Some(Duration::from_secs(1)));
}

#[test]
fn a_dynamic_peer_accepts_any_as() {
    let mut fsm = Fsm::new(SessionConfig { remote_as: None, passive: true, ..cfg() }, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Inbound));
    let out =
        fsm.handle(Input::Received(1, Message::Open(peer_open(4_200_000_000, [1, 2, 3, 4], 90))));
    assert!(sent_notification(&out, 1).is_none(), "{out:?}");
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn our_own_router_id_is_refused_inside_one_as_but_not_over_ebgp() {
    let mut fsm = Fsm::new(SessionConfig { remote_as: Some(Asn(65001)), ..cfg() }, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65001, [10, 0, 0, 1], 90))));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::OPEN, nopen::BAD_BGP_IDENTIFIER));

    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 1], 90))));
    assert!(sent_notification(&out, 1).is_none());
}

#[test]
fn a_peer_sharing_no_family_is_refused_with_unsupported_capability() {
    let mut fsm = Fsm::new(
        SessionConfig { families: FamilySet::single(Family::Ipv6Unicast), ..cfg() },
        false,
    );
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::OPEN, nopen::UNSUPPORTED_CAPABILITY));
    assert_eq!(n.data, vec![1, 4, 0, 2, 0, 1], "the IPv6 unicast capability we wanted");
}

#[test]
fn a_peer_without_capabilities_speaks_ipv4_unicast_with_two_octet_ases() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let bare = Open {
        version: 4,
        my_as: 65002,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities: vec![],
    };
    fsm.handle(Input::Received(1, Message::Open(bare)));
    fsm.handle(Input::Received(1, Message::Keepalive));
    let n = fsm.negotiated().expect("established");
    assert_eq!(n.families, FamilySet::single(Family::Ipv4Unicast));
    assert!(!n.codec.four_octet_as);
    assert!(!n.route_refresh);
}

#[test]
fn an_update_in_open_confirm_is_an_fsm_error() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    let out = fsm.handle(Input::Received(1, Message::Update(Box::default())));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::FSM, nfsm::UNEXPECTED_IN_OPEN_CONFIRM));
    assert!(!out.iter().any(|o| matches!(o, Output::Routes(_))));
}

#[test]
fn a_keepalive_in_open_sent_is_an_fsm_error() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::FSM, nfsm::UNEXPECTED_IN_OPEN_SENT));
}

#[test]
fn an_open_in_established_is_an_fsm_error_that_ends_the_session() {
    let mut fsm = established();
    let out = fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::FSM, nfsm::UNEXPECTED_IN_ESTABLISHED));
    assert!(out.iter().any(|o| matches!(o, Output::Down(d) if d.keep_stale.is_empty())));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn updates_go_to_the_rib_and_restart_the_hold_timer() {
    let mut fsm = established();
    let out = fsm.handle(Input::Received(1, Message::Update(Box::default())));
    assert!(out.iter().any(|o| matches!(o, Output::Routes(_))));
    assert_eq!(timer_set(&out, Timer::Hold(1)), Some(Duration::from_secs(90)));
}

#[test]
fn a_keepalive_restarts_the_hold_timer() {
    let mut fsm = established();
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    assert_eq!(timer_set(&out, Timer::Hold(1)), Some(Duration::from_secs(90)));
}

#[test]
fn the_keepalive_timer_sends_a_keepalive_and_rearms() {
    let mut fsm = established();
    let out = fsm.handle(Input::Timer(Timer::Keepalive(1)));
    assert!(has(&out, &Output::Send(1, Message::Keepalive)));
    assert_eq!(timer_set(&out, Timer::Keepalive(1)), Some(Duration::from_secs(30)));
}

#[test]
fn hold_timer_expiry_sends_a_notification_and_ends_the_session() {
    let mut fsm = established();
    let out = fsm.handle(Input::Timer(Timer::Hold(1)));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!(n.code, ncode::HOLD_TIMER_EXPIRED);
    assert!(has(&out, &Output::Close(1)));
    assert!(
        out.iter().any(|o| matches!(o, Output::Down(Down { reason: DownReason::Sent(_), .. })))
    );
    assert_eq!(fsm.last_error(), Some("hold timer expired"));
}

#[test]
fn a_received_route_refresh_asks_the_rib_to_resend() {
    let mut fsm = established();
    let rr = RouteRefresh::request(Family::Ipv4Unicast);
    let out = fsm.handle(Input::Received(1, Message::RouteRefresh(rr)));
    assert!(has(&out, &Output::Refresh(rr)));
}

#[test]
fn a_malformed_update_sends_the_notification_its_error_names() {
    let mut fsm = established();
    let err = DecodeError::new(23, DecodeErrorKind::MalformedAttributeList("length overrun"));
    let out = fsm.handle(Input::Malformed(1, err));
    let n = sent_notification(&out, 1).expect("NOTIFICATION");
    assert_eq!((n.code, n.subcode), (ncode::UPDATE, 1));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn a_malformed_notification_is_not_answered() {
    let mut fsm = established();
    let err = DecodeError::new(19, DecodeErrorKind::MalformedNotification);
    let out = fsm.handle(Input::Malformed(1, err));
    assert!(sent_notification(&out, 1).is_none());
    assert!(has(&out, &Output::Close(1)));
}

#[test]
fn restarts_back_off_doubling_while_sessions_keep_failing() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    let mut waits = Vec::new();
    for id in 1..=9 {
        fsm.handle(Input::Connected(id, Direction::Outbound));
        let out = fsm.handle(Input::Closed(id));
        waits.push(timer_set(&out, Timer::IdleHold).expect("idle hold").as_secs());
        assert_eq!(fsm.state(), State::Idle);
        let out = fsm.handle(Input::Timer(Timer::IdleHold));
        assert!(has(&out, &Output::Connect));
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 120, 120]);
}

#[test]
fn a_session_that_stayed_up_resets_the_back_off() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    for id in 1..=3 {
        fsm.handle(Input::Connected(id, Direction::Outbound));
        fsm.handle(Input::Closed(id));
        fsm.handle(Input::Timer(Timer::IdleHold));
    }
    fsm.handle(Input::Connected(4, Direction::Outbound));
    fsm.handle(Input::Received(4, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    fsm.handle(Input::Received(4, Message::Keepalive));
    fsm.handle(Input::Timer(Timer::Stable));
    let out = fsm.handle(Input::Closed(4));
    assert_eq!(timer_set(&out, Timer::IdleHold), Some(Duration::from_secs(1)));
}

#[test]
fn manual_stop_sends_a_cease_and_stays_idle() {
    let mut fsm = established();
    let n = Notification::shutdown(cease::ADMIN_SHUTDOWN, "maintenance");
    let out = fsm.handle(Input::Stop { notification: n.clone(), restart: None });
    assert_eq!(sent_notification(&out, 1), Some(n));
    assert!(has(&out, &Output::Close(1)));
    assert!(out.iter().any(|o| matches!(o, Output::Down(_))));
    assert_eq!(fsm.state(), State::Idle);
    assert!(!fsm.accepts_connections());
    let out = fsm.handle(Input::Timer(Timer::ConnectRetry));
    assert!(!has(&out, &Output::Connect));
    let out = fsm.handle(Input::Connected(2, Direction::Inbound));
    assert_eq!(out, vec![Output::Close(2)]);
}

#[test]
fn a_stop_with_restart_comes_back_after_the_delay() {
    let mut fsm = established();
    let n = Notification::max_prefixes(1, 1, 100);
    let out = fsm.handle(Input::Stop { notification: n, restart: Some(Duration::from_secs(30)) });
    assert_eq!(timer_set(&out, Timer::IdleHold), Some(Duration::from_secs(30)));
    assert_eq!(fsm.state(), State::Idle);
    let out = fsm.handle(Input::Timer(Timer::IdleHold));
    assert!(has(&out, &Output::Connect));
}

#[test]
fn connections_from_the_peer_are_accepted_while_waiting_to_retry_after_an_error() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    fsm.handle(Input::Closed(1));
    assert!(fsm.accepts_connections());
    let out = fsm.handle(Input::Connected(2, Direction::Inbound));
    assert!(out.iter().any(|o| matches!(o, Output::Send(2, Message::Open(_)))));
    assert!(has(&out, &Output::CancelTimer(Timer::IdleHold)));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn a_session_stopped_for_too_many_prefixes_stays_down_for_the_delay() {
    let mut fsm = established();
    let n = Notification::max_prefixes(1, 1, 10);
    fsm.handle(Input::Stop { notification: n, restart: Some(Duration::from_secs(60)) });
    // A connection attempt that was already under way, and the peer calling back, both wait.
    assert_eq!(fsm.handle(Input::Connected(5, Direction::Outbound)), vec![Output::Close(5)]);
    assert_eq!(fsm.handle(Input::Connected(6, Direction::Inbound)), vec![Output::Close(6)]);
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn a_newer_connection_from_the_peer_replaces_one_still_opening() {
    let mut fsm = Fsm::new(SessionConfig { passive: true, ..cfg() }, false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Inbound));
    let out = fsm.handle(Input::Connected(2, Direction::Inbound));
    assert!(has(&out, &Output::Close(1)));
    let out = fsm.handle(Input::Received(2, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    assert!(sent_notification(&out, 2).is_none());
}

/// Two connections whose OPENs crossed: ours (1, outbound) already in OpenConfirm, the peer's
/// (2, inbound) receiving its OPEN now.
fn collide(local_id: [u8; 4], local_as: u32, remote_id: [u8; 4], remote_as: u32) -> Vec<Output> {
    let mut fsm = Fsm::new(
        SessionConfig {
            router_id: Ipv4Addr::from(local_id),
            local_as: Asn(local_as),
            remote_as: Some(Asn(remote_as)),
            ..cfg()
        },
        false,
    );
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    fsm.handle(Input::Connected(2, Direction::Inbound));
    fsm.handle(Input::Received(1, Message::Open(peer_open(remote_as, remote_id, 90))));
    let out = fsm.handle(Input::Received(2, Message::Open(peer_open(remote_as, remote_id, 90))));
    assert_eq!(fsm.state(), State::OpenConfirm);
    out
}

fn collision_cease(out: &[Output], conn: ConnId) -> bool {
    sent_notification(out, conn)
        .is_some_and(|n| (n.code, n.subcode) == (ncode::CEASE, cease::CONNECTION_COLLISION))
        && has(out, &Output::Close(conn))
}

#[test]
fn in_a_collision_the_higher_local_router_id_keeps_its_own_connection() {
    let out = collide([10, 0, 0, 9], 65001, [10, 0, 0, 2], 65002);
    assert!(collision_cease(&out, 2), "{out:?}");
    assert!(!collision_cease(&out, 1));
}

#[test]
fn in_a_collision_the_higher_remote_router_id_keeps_the_peers_connection() {
    let out = collide([10, 0, 0, 1], 65001, [10, 0, 0, 2], 65002);
    assert!(collision_cease(&out, 1), "{out:?}");
    assert!(has(&out, &Output::Send(2, Message::Keepalive)));
}

#[test]
fn in_a_collision_between_equal_router_ids_the_higher_as_wins() {
    let out = collide([10, 0, 0, 5], 65009, [10, 0, 0, 5], 65002);
    assert!(collision_cease(&out, 2), "{out:?}");
    let out = collide([10, 0, 0, 5], 65001, [10, 0, 0, 5], 65002);
    assert!(collision_cease(&out, 1), "{out:?}");
}

#[test]
fn a_connection_still_opening_is_closed_once_the_other_is_established() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    fsm.handle(Input::Connected(2, Direction::Inbound));
    fsm.handle(Input::Received(1, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    let out = fsm.handle(Input::Received(1, Message::Keepalive));
    assert!(collision_cease(&out, 2), "{out:?}");
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn a_new_connection_colliding_with_an_established_session_is_refused() {
    let mut fsm = established();
    fsm.handle(Input::Connected(2, Direction::Inbound));
    let out = fsm.handle(Input::Received(2, Message::Open(peer_open(65002, [10, 0, 0, 2], 90))));
    assert!(collision_cease(&out, 2), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::Down(_))));
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn losing_the_connection_to_a_graceful_peer_keeps_its_routes_stale() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    let out = fsm.handle(Input::Closed(1));
    let down = session_down(&out).expect("Down");
    assert_eq!(down.reason, DownReason::ConnectionLost);
    assert_eq!(down.keep_stale, FamilySet::single(Family::Ipv4Unicast));
    assert_eq!(timer_set(&out, Timer::GrRestart), Some(Duration::from_secs(30)));
    assert_eq!(fsm.stale(), FamilySet::single(Family::Ipv4Unicast));
}

#[test]
fn stale_routes_go_when_the_returning_peer_sends_end_of_rib() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    fsm.handle(Input::Closed(1));
    fsm.handle(Input::Timer(Timer::IdleHold));
    fsm.handle(Input::Connected(2, Direction::Outbound));
    fsm.handle(Input::Received(2, Message::Open(peer_open_gr(true))));
    let out = fsm.handle(Input::Received(2, Message::Keepalive));
    assert!(has(&out, &Output::CancelTimer(Timer::GrRestart)));
    assert!(!out.iter().any(|o| matches!(o, Output::PurgeStale(_))));
    assert_eq!(timer_set(&out, Timer::GrStale), Some(STALE_ROUTES_TIME));
    let eor = Update::end_of_rib(Family::Ipv4Unicast);
    let out = fsm.handle(Input::Received(2, Message::Update(Box::new(eor))));
    assert!(out.iter().any(|o| matches!(o, Output::Routes(_))));
    assert!(has(&out, &Output::PurgeStale(FamilySet::single(Family::Ipv4Unicast))));
    assert!(fsm.stale().is_empty());
}

#[test]
fn stale_routes_go_at_once_when_the_peer_returns_without_preserved_forwarding() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    fsm.handle(Input::Closed(1));
    fsm.handle(Input::Timer(Timer::IdleHold));
    fsm.handle(Input::Connected(2, Direction::Inbound));
    fsm.handle(Input::Received(2, Message::Open(peer_open_gr(false))));
    let out = fsm.handle(Input::Received(2, Message::Keepalive));
    assert!(has(&out, &Output::PurgeStale(FamilySet::single(Family::Ipv4Unicast))));
}

#[test]
fn stale_routes_go_when_the_restart_time_runs_out() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    fsm.handle(Input::Closed(1));
    let out = fsm.handle(Input::Timer(Timer::GrRestart));
    assert!(has(&out, &Output::PurgeStale(FamilySet::single(Family::Ipv4Unicast))));
}

#[test]
fn a_notification_ends_a_session_without_graceful_restart() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    let n = Notification::cease(cease::ADMIN_RESET);
    let out = fsm.handle(Input::Received(1, Message::Notification(n)));
    assert!(out.iter().any(|o| matches!(o, Output::Down(d) if d.keep_stale.is_empty())));
    assert_eq!(timer_set(&out, Timer::GrRestart), None);
}

#[test]
fn a_peer_without_graceful_restart_loses_its_routes_with_the_connection() {
    let mut fsm = established_with(gr_cfg(), peer_open(65002, [10, 0, 0, 2], 90));
    let out = fsm.handle(Input::Closed(1));
    assert!(out.iter().any(|o| matches!(o, Output::Down(d) if d.keep_stale.is_empty())));
}

#[test]
fn a_graceful_peer_that_reconnects_replaces_its_old_session() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    fsm.handle(Input::Connected(2, Direction::Inbound));
    let out = fsm.handle(Input::Received(2, Message::Open(peer_open_gr(true))));
    assert!(has(&out, &Output::Close(1)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Down(Down { reason: DownReason::ConnectionLost, keep_stale }) if !keep_stale.is_empty()
    )));
    assert!(sent_notification(&out, 2).is_none());
    let out = fsm.handle(Input::Received(2, Message::Keepalive));
    assert!(out.iter().any(|o| matches!(o, Output::Up(2, _))));
}

#[test]
fn a_restarting_speaker_sets_the_restart_bit_until_its_first_session() {
    let open_of = |fsm: &mut Fsm, id| {
        fsm.handle(Input::Connected(id, Direction::Outbound))
            .into_iter()
            .find_map(|o| match o {
                Output::Send(_, Message::Open(open)) => Some(open),
                _ => None,
            })
            .expect("OPEN")
    };
    let restart_bit = |open: &Open| {
        open.capabilities.iter().any(|c| {
            matches!(c, Capability::GracefulRestart { restart_state: true, families, .. }
                if families.iter().all(|f| f.forwarding_preserved))
        })
    };
    let mut fsm = Fsm::new(gr_cfg(), true);
    fsm.handle(Input::Start);
    let first = open_of(&mut fsm, 1);
    assert!(restart_bit(&first));
    fsm.handle(Input::Received(1, Message::Open(peer_open_gr(true))));
    fsm.handle(Input::Received(1, Message::Keepalive));
    fsm.handle(Input::Closed(1));
    fsm.handle(Input::Timer(Timer::IdleHold));
    let second = open_of(&mut fsm, 2);
    assert!(!restart_bit(&second));
}

#[test]
fn messages_for_a_forgotten_connection_are_ignored() {
    let mut fsm = established();
    assert!(fsm.handle(Input::Received(99, Message::Keepalive)).is_empty());
    assert!(fsm.handle(Input::Timer(Timer::Hold(99))).is_empty());
    assert!(fsm.handle(Input::Closed(99)).is_empty());
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn bfd_down_ends_the_session_with_cease_bfd_down_and_drops_every_route() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    let out = fsm.handle(Input::BfdDown);
    assert_eq!(sent_notification(&out, 1), Some(Notification::cease(cease::BFD_DOWN)));
    assert!(has(&out, &Output::Close(1)));
    let down = session_down(&out).expect("Down");
    assert_eq!(down.keep_stale, FamilySet::EMPTY, "a graceful peer's routes go too");
    assert_eq!(timer_set(&out, Timer::IdleHold), Some(Duration::ZERO), "and we try again");
    assert_ne!(fsm.state(), State::Established);
}

#[test]
fn bfd_down_while_helping_a_graceful_restart_drops_the_stale_routes_at_once() {
    let mut fsm = established_with(gr_cfg(), peer_open_gr(true));
    fsm.handle(Input::Closed(1));
    assert_eq!(fsm.stale(), FamilySet::single(Family::Ipv4Unicast));
    let out = fsm.handle(Input::BfdDown);
    assert!(has(&out, &Output::PurgeStale(FamilySet::single(Family::Ipv4Unicast))));
    assert!(has(&out, &Output::CancelTimer(Timer::GrRestart)));
    assert!(fsm.stale().is_empty());
}

#[test]
fn bfd_down_without_a_session_changes_nothing() {
    let mut fsm = Fsm::new(cfg(), false);
    fsm.handle(Input::Start);
    fsm.handle(Input::Connected(1, Direction::Outbound));
    let out = fsm.handle(Input::BfdDown);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(fsm.state(), State::OpenSent);
}
