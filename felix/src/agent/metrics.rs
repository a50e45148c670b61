//! The agent's Prometheus metrics: BGP sessions and their routes, the routes programmed,
//! reconcile and CNI latencies, local endpoints. Served as text on `--metrics-listen` by axum
//! (GET /metrics; anything else is 404).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

const BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A Prometheus histogram.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What the agent counts as it works.
#[derive(Debug, Default)]
pub struct Metrics {
    pub reconcile: Mutex<Histogram>,
    /// CNI requests by (command, result).
    pub cni: Mutex<BTreeMap<(String, String), Histogram>>,
    /// From BFD's detection of a dead path to the kernel forwarding without it.
    pub bfd_to_kernel: Mutex<Histogram>,
}

/// One session as reported.
#[derive(Debug, Clone)]
pub struct SessionSample {
    pub peer: String,
    pub kind: String,
    pub state: String,
    pub received: u64,
    pub advertised: u64,
    /// The session's BFD, when it runs BFD.
    pub bfd: Option<tartan_bfd::SessionStatus>,
}

/// A point-in-time view for rendering.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub sessions: Vec<SessionSample>,
    /// Desired routes by kind: workload, blackhole, learned.
    pub routes: BTreeMap<&'static str, usize>,
    pub kernel_routes: usize,
    pub endpoints: usize,
}

impl Metrics {
    pub fn observe_cni(&self, command: &str, ok: bool, d: Duration) {
        if let Ok(mut m) = self.cni.lock() {
            m.entry((command.to_string(), if ok { "ok" } else { "error" }.to_string()))
                .or_default()
                .observe(d);
        }
    }

    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::new();
        head(
            &mut out,
            "tartan_agent_bgp_session_up",
            "gauge",
            "1 when the session is Established.",
        );
        for s in &snap.sessions {
            let _ = writeln!(
                out,
                "tartan_agent_bgp_session_up{{peer=\"{}\",type=\"{}\",state=\"{}\"}} {}",
                s.peer,
                s.kind,
                s.state,
                u8::from(s.state == "Established")
            );
        }
        let peers = &snap.sessions;
        let received = "tartan_agent_bgp_routes_received";
        peer_gauge(&mut out, peers, received, "Routes accepted from the peer.", |s| s.received);
        let advertised = "tartan_agent_bgp_routes_advertised";
        peer_gauge(&mut out, peers, advertised, "Routes advertised to the peer.", |s| s.advertised);
        bfd(&mut out, peers);
        head(
            &mut out,
            "tartan_agent_routes_programmed",
            "gauge",
            "Routes the agent keeps in the kernel, by kind.",
        );
        for (kind, n) in &snap.routes {
            let _ = writeln!(out, "tartan_agent_routes_programmed{{kind=\"{kind}\"}} {n}");
        }
        head(
            &mut out,
            "tartan_agent_kernel_routes",
            "gauge",
            "Routes with our protocol number in the kernel at the last reconcile.",
        );
        let _ = writeln!(out, "tartan_agent_kernel_routes {}", snap.kernel_routes);
        head(&mut out, "tartan_agent_endpoints", "gauge", "Local workload endpoints.");
        let _ = writeln!(out, "tartan_agent_endpoints {}", snap.endpoints);
        head(
            &mut out,
            "tartan_agent_reconcile_seconds",
            "histogram",
            "Time to diff the desired routes against the kernel and write the difference.",
        );
        if let Ok(h) = self.reconcile.lock() {
            h.render(&mut out, "tartan_agent_reconcile_seconds", "");
        }
        head(
            &mut out,
            "tartan_agent_bfd_detection_to_kernel_seconds",
            "histogram",
            "From BFD finding a path dead to the kernel's nexthop groups without it.",
        );
        if let Ok(h) = self.bfd_to_kernel.lock() {
            h.render(&mut out, "tartan_agent_bfd_detection_to_kernel_seconds", "");
        }
        head(
            &mut out,
            "tartan_agent_cni_request_seconds",
            "histogram",
            "CNI requests served, by command and result.",
        );
        if let Ok(m) = self.cni.lock() {
            for ((command, result), h) in m.iter() {
                h.render(
                    &mut out,
                    "tartan_agent_cni_request_seconds",
                    &format!("command=\"{command}\",result=\"{result}\""),
                );
            }
        }
        out
    }
}

/// A gauge with one sample per BGP session.
fn peer_gauge(
    out: &mut String,
    sessions: &[SessionSample],
    name: &str,
    help: &str,
    value: impl Fn(&SessionSample) -> u64,
) {
    head(out, name, "gauge", help);
    for s in sessions {
        let _ = writeln!(out, "{name}{{peer=\"{}\"}} {}", s.peer, value(s));
    }
}

/// BFD's gauges and counters, for the sessions that run it.
fn bfd(out: &mut String, sessions: &[SessionSample]) {
    let with: Vec<(&str, &tartan_bfd::SessionStatus)> =
        sessions.iter().filter_map(|s| s.bfd.as_ref().map(|b| (s.peer.as_str(), b))).collect();
    if with.is_empty() {
        return;
    }
    head(
        out,
        "tartan_agent_bfd_session_up",
        "gauge",
        "1 when the BFD session is Up; the state and last diagnostic are labels.",
    );
    for (peer, b) in &with {
        let _ = writeln!(
            out,
            "tartan_agent_bfd_session_up{{peer=\"{peer}\",state=\"{}\",diagnostic=\"{}\"}} {}",
            b.status,
            b.diagnostic,
            u8::from(b.status == "up")
        );
    }
    let seconds = |ms: u64| ms as f64 / 1000.0;
    head(
        out,
        "tartan_agent_bfd_transmit_interval_seconds",
        "gauge",
        "The negotiated interval between our packets, before jitter.",
    );
    for (peer, b) in &with {
        let _ = writeln!(
            out,
            "tartan_agent_bfd_transmit_interval_seconds{{peer=\"{peer}\"}} {}",
            seconds(b.negotiated_transmit_interval)
        );
    }
    head(
        out,
        "tartan_agent_bfd_detection_time_seconds",
        "gauge",
        "Silence from the peer that declares the path dead.",
    );
    for (peer, b) in with.iter().filter(|(_, b)| b.detection_time.is_some()) {
        let _ = writeln!(
            out,
            "tartan_agent_bfd_detection_time_seconds{{peer=\"{peer}\"}} {}",
            seconds(b.detection_time.unwrap_or(0))
        );
    }
    head(out, "tartan_agent_bfd_flaps_total", "counter", "Times the BFD session left Up.");
    for (peer, b) in &with {
        let _ = writeln!(out, "tartan_agent_bfd_flaps_total{{peer=\"{peer}\"}} {}", b.flaps);
    }
    head(out, "tartan_agent_bfd_packets_total", "counter", "BFD control packets, by direction.");
    for (peer, b) in &with {
        let _ = writeln!(
            out,
            "tartan_agent_bfd_packets_total{{peer=\"{peer}\",direction=\"in\"}} {}",
            b.packets_in
        );
        let _ = writeln!(
            out,
            "tartan_agent_bfd_packets_total{{peer=\"{peer}\",direction=\"out\"}} {}",
            b.packets_out
        );
    }
}

/// A metric's HELP and TYPE lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Serves `render()` on GET /metrics (anything else is 404). Each connection is HTTP/1.1
/// by hyper, with a client that half-closes after its request (`printf ... | socat`, `nc -N`)
/// still answered, headers due within a few seconds and the whole exchange bounded.
pub async fn serve<F, Fut>(listener: TcpListener, render: F) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send,
{
    let metrics = move || async move {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render().await)
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /metrics\n") });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors and the like: pass, rather than stop serving for good.
            Err(e) => {
                tracing::warn!("metrics: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `pieces` (a pause between each) to a metrics server and returns its answer.
    async fn get(addr: std::net::SocketAddr, pieces: &[&str]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        for p in pieces {
            s.write_all(p.as_bytes()).await.expect("write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("an answer in time")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn metrics_are_served_to_a_request_in_pieces_and_anything_else_is_404() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, || async { "tartan_up 1\n".to_string() }));
        let close = "Connection: close\r\n\r\n";
        let ok = get(addr, &["GE", "T /metr", "ics HTTP/1.1\r\nHo", "st: x\r\n", close]).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("tartan_up 1\n"), "{ok}");
        let old = get(addr, &["GET /metrics HTTP/1.0\r\n\r\n"]).await;
        assert!(old.ends_with("tartan_up 1\n"), "{old}");
        // `printf 'GET ...' | socat - TCP:...`: the client half-closes once its request is out.
        let half = {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.expect("write");
            s.shutdown().await.expect("half-close");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        assert!(half.ends_with("tartan_up 1\n"), "a half-closed client is answered: {half:?}");
        let other = get(addr, &["GET /other HTTP/1.1\r\nHost: x\r\n", close]).await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        server.abort();
    }

    #[test]
    fn histograms_and_gauges_render_as_prometheus_text() {
        let m = Metrics::default();
        m.observe_cni("ADD", true, Duration::from_millis(30));
        m.reconcile.lock().expect("lock").observe(Duration::from_micros(500));
        let snap = Snapshot {
            sessions: vec![SessionSample {
                peer: "10.0.0.2".into(),
                kind: "node-to-node mesh".into(),
                state: "Established".into(),
                received: 3,
                advertised: 1,
                bfd: Some(tartan_bfd::SessionStatus {
                    peer: "10.0.0.2".parse().expect("addr"),
                    local: None,
                    id: 1,
                    remote_id: 2,
                    status: "up".into(),
                    uptime: Some(5),
                    downtime: None,
                    diagnostic: "ok".into(),
                    remote_diagnostic: "ok".into(),
                    receive_interval: 100,
                    transmit_interval: 100,
                    detect_multiplier: 3,
                    remote_receive_interval: 100,
                    remote_transmit_interval: 300,
                    remote_detect_multiplier: 3,
                    negotiated_transmit_interval: 100,
                    detection_time: Some(900),
                    flaps: 2,
                    packets_in: 10,
                    packets_out: 11,
                    error: None,
                }),
            }],
            routes: [("workload", 2), ("blackhole", 1)].into(),
            kernel_routes: 3,
            endpoints: 2,
        };
        let text = m.render(&snap);
        assert!(text.contains("tartan_agent_bgp_session_up{peer=\"10.0.0.2\",type=\"node-to-node mesh\",state=\"Established\"} 1"));
        assert!(text.contains(
            "tartan_agent_bfd_session_up{peer=\"10.0.0.2\",state=\"up\",diagnostic=\"ok\"} 1"
        ));
        assert!(text.contains("tartan_agent_bfd_detection_time_seconds{peer=\"10.0.0.2\"} 0.9"));
        assert!(text.contains("tartan_agent_bfd_flaps_total{peer=\"10.0.0.2\"} 2"));
        assert!(text.contains(
            "tartan_agent_cni_request_seconds_bucket{command=\"ADD\",result=\"ok\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "tartan_agent_cni_request_seconds_bucket{command=\"ADD\",result=\"ok\",le=\"0.025\"} 0"
        ));
        assert!(text.contains("tartan_agent_reconcile_seconds_count 1"));
        assert!(text.contains("tartan_agent_routes_programmed{kind=\"workload\"} 2"));
    }
}
