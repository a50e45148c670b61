//! The agent's Prometheus metrics: BGP sessions and their routes, the routes programmed,
//! reconcile and CNI latencies, local endpoints. Served as text on `--metrics-listen` by a
//! minimal HTTP responder (GET /metrics; anything else is 404).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
}

/// One session as reported.
#[derive(Debug, Clone)]
pub struct SessionSample {
    pub peer: String,
    pub kind: String,
    pub state: String,
    pub received: u64,
    pub advertised: u64,
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

/// A metric's HELP and TYPE lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Serves `render()` on GET /metrics.
pub async fn serve<F, Fut>(listener: TcpListener, render: F) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = String> + Send,
{
    loop {
        let (mut stream, _) = listener.accept().await?;
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body, ty) = if request.starts_with("GET ")
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                ("200 OK", render().await, "text/plain; version=0.0.4")
            } else {
                ("404 Not Found", "try /metrics\n".to_string(), "text/plain")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ty}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }],
            routes: [("workload", 2), ("blackhole", 1)].into(),
            kernel_routes: 3,
            endpoints: 2,
        };
        let text = m.render(&snap);
        assert!(text.contains("tartan_agent_bgp_session_up{peer=\"10.0.0.2\",type=\"node-to-node mesh\",state=\"Established\"} 1"));
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
