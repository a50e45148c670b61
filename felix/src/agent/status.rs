//! Reporting: each session's state goes to the API as this node's `NodeStatus`, which
//! `tartanctl node status` shows and the leak collector reads as "this node is alive". Also
//! tells the route programmer when BGP has converged after a start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tartan_bgp::fsm::State;
use tartan_ipam::client::Method;

use super::Shared;
use super::speaker::Bgp;

/// How long after start learned routes in the kernel are kept even if BGP has not sent them
/// again (the graceful-restart window peers give us is longer; this is ours).
const CONVERGE_DEADLINE: Duration = Duration::from_secs(30);

pub(crate) async fn report_loop(shared: Arc<Shared>, bgp: Bgp) {
    let started = Instant::now();
    let mut converged = false;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last_report: Option<(Instant, String)> = None;
    loop {
        ticker.tick().await;
        let peers = bgp.peers().await;
        if !converged {
            let all_up = !peers.is_empty()
                && peers
                    .iter()
                    .all(|r| r.bgp.as_ref().is_some_and(|s| s.state == State::Established));
            // Established sessions have sent their table within a few seconds.
            if (all_up && started.elapsed() > Duration::from_secs(5))
                || started.elapsed() > CONVERGE_DEADLINE
            {
                shared.state.lock().await.programmer.set_learned_converged();
                converged = true;
                shared.kick();
            }
        }
        let report: Vec<serde_json::Value> = peers
            .iter()
            .map(|r| {
                let (p, s) = (&r.peering, &r.bgp);
                let mut v = json!({
                    "peerIP": p.peer,
                    "peerType": p.kind.name(),
                    "state": s.as_ref().map(|s| s.state.name()).unwrap_or("Idle"),
                    "routesReceived": s.as_ref().map(|s| s.counters.accepted.iter().sum::<u64>()).unwrap_or(0),
                    "routesAdvertised": s.as_ref().map(|s| s.counters.advertised.iter().sum::<u64>()).unwrap_or(0),
                });
                // The last error explains a session that is not up; once it is, it is history.
                if let Some(info) = s.as_ref().filter(|s| s.state != State::Established).and_then(|s| s.last_error.clone()) {
                    v["info"] = json!(info);
                }
                if let Some(up) = s.as_ref().and_then(|s| s.uptime_secs) {
                    let since = tartan_ipam::time::now_unix().saturating_sub(up);
                    v["since"] = json!(tartan_ipam::time::rfc3339(since));
                }
                if let Some(b) = &r.bfd {
                    v["bfd"] = json!({
                        "state": b.status,
                        "transmitIntervalMs": b.negotiated_transmit_interval,
                        "detectionTimeMs": b.detection_time,
                        "diagnostic": b.diagnostic,
                        "flaps": b.flaps,
                    });
                }
                v
            })
            .collect();
        let key = serde_json::to_string(&report).unwrap_or_default();
        let due = match &last_report {
            None => true,
            Some((at, last)) => {
                *last != key
                    || at.elapsed() >= shared.cfg.status_interval.max(Duration::from_secs(1)) * 6
            }
        };
        if !due {
            continue;
        }
        let body = json!({"apiVersion": "tartan/v1", "kind": "NodeStatus", "metadata": {"name": shared.cfg.node_name},
            "spec": {"reportedAt": tartan_ipam::time::rfc3339(tartan_ipam::time::now_unix()),
                     "agentVersion": env!("CARGO_PKG_VERSION"), "peers": report}});
        match shared
            .client
            .call::<serde_json::Value>(
                Method::PUT,
                &format!("/v1/nodestatuses/{}", shared.cfg.node_name),
                Some(&body),
            )
            .await
        {
            Ok(_) => last_report = Some((Instant::now(), key)),
            Err(e) => tracing::debug!("reporting status: {e}"),
        }
    }
}
