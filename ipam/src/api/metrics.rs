//! `/metrics`: Prometheus text exposition — requests per route and status, allocation
//! latency, allocations and releases, leak collection, and IPAM usage read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;

use super::AppState;
use super::error::AppError;
use crate::ipam::gc::GcReport;
use crate::ipam::views::PoolUsage;

/// Upper bounds (seconds) of the allocation latency histogram.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    alloc_buckets: [AtomicU64; BUCKETS.len()],
    alloc_count: AtomicU64,
    alloc_sum_us: AtomicU64,
    addresses_allocated: AtomicU64,
    allocation_failures: AtomicU64,
    addresses_released: AtomicU64,
    gc_released: AtomicU64,
    gc_blocks_released: AtomicU64,
    gc_candidates: AtomicU64,
}

impl Metrics {
    pub fn record(&self, method: &Method, route: &str, status: StatusCode) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status.as_u16())).or_default() += 1;
        }
    }

    pub fn allocated(&self, n: usize, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.alloc_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.alloc_count.fetch_add(1, Ordering::Relaxed);
        self.alloc_sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.addresses_allocated.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn allocation_failed(&self) {
        self.allocation_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn released(&self, n: usize) {
        self.addresses_released.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn collected(&self, report: &GcReport) {
        self.gc_released.fetch_add(report.released.len() as u64, Ordering::Relaxed);
        self.gc_blocks_released.fetch_add(report.blocks_released.len() as u64, Ordering::Relaxed);
        self.gc_candidates.store(report.candidates as u64, Ordering::Relaxed);
    }
}

fn counter(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let shared = state.0.clone();
    let usage = tokio::task::spawn_blocking(move || shared.ipam.usage())
        .await
        .map_err(|e| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))??;
    let m = &state.0.metrics;
    let mut out = String::new();
    let _ =
        writeln!(out, "# HELP tartan_api_requests_total API requests by method, route and status.");
    let _ = writeln!(out, "# TYPE tartan_api_requests_total counter");
    if let Ok(requests) = m.requests.lock() {
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "tartan_api_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tartan_ipam_allocate_seconds Latency of successful allocations, durable write included."
    );
    let _ = writeln!(out, "# TYPE tartan_ipam_allocate_seconds histogram");
    for (i, le) in BUCKETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "tartan_ipam_allocate_seconds_bucket{{le=\"{le}\"}} {}",
            m.alloc_buckets[i].load(Ordering::Relaxed)
        );
    }
    let count = m.alloc_count.load(Ordering::Relaxed);
    let _ = writeln!(out, "tartan_ipam_allocate_seconds_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "tartan_ipam_allocate_seconds_sum {}",
        m.alloc_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "tartan_ipam_allocate_seconds_count {count}");
    counter(
        &mut out,
        "tartan_ipam_addresses_allocated_total",
        "Addresses handed out.",
        "counter",
        m.addresses_allocated.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_ipam_allocation_failures_total",
        "Allocation requests refused.",
        "counter",
        m.allocation_failures.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_ipam_addresses_released_total",
        "Addresses released on request.",
        "counter",
        m.addresses_released.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_ipam_gc_reclaimed_total",
        "Leaked addresses released by the collector.",
        "counter",
        m.gc_released.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_ipam_gc_blocks_released_total",
        "Empty blocks given back by the collector.",
        "counter",
        m.gc_blocks_released.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_ipam_gc_candidates",
        "Addresses waiting out the leak grace period.",
        "gauge",
        m.gc_candidates.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "tartan_store_revision",
        "Revision of the last write.",
        "gauge",
        state.0.store.revision(),
    );
    let conns = &state.0.conns;
    for (name, help, kind, value) in [
        ("tartan_api_connections_open", "Client connections open.", "gauge", {
            conns.open.load(Ordering::Relaxed) as u64
        }),
        (
            "tartan_api_connections_refused_total",
            "Connections closed at once because the connection limit was reached.",
            "counter",
            conns.refused.load(Ordering::Relaxed),
        ),
        (
            "tartan_api_tls_handshake_failures_total",
            "TLS handshakes that failed or did not finish in time.",
            "counter",
            conns.handshake_failures.load(Ordering::Relaxed),
        ),
    ] {
        counter(&mut out, name, help, kind, value);
    }
    if let Some(etcd) = state.0.store.etcd() {
        let e = etcd.metrics();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, kind, value) in [
            (
                "tartan_etcd_transactions_total",
                "etcd transactions answered.",
                "counter",
                load(&e.txns),
            ),
            (
                "tartan_etcd_transaction_microseconds_total",
                "Time spent in answered etcd transactions (divide by the count for the mean).",
                "counter",
                load(&e.txn_micros),
            ),
            (
                "tartan_etcd_conflicts_total",
                "Writes whose compare failed (someone else wrote first).",
                "counter",
                load(&e.conflicts),
            ),
            (
                "tartan_etcd_retries_total",
                "Transactions sent again to learn their outcome.",
                "counter",
                load(&e.retries),
            ),
            (
                "tartan_etcd_indeterminate_total",
                "Transactions without a clear answer (then resolved by reading).",
                "counter",
                load(&e.indeterminate),
            ),
            (
                "tartan_etcd_relists_total",
                "Full listings after the watch's history was compacted.",
                "counter",
                load(&e.relists),
            ),
            (
                "tartan_etcd_watch_restarts_total",
                "Times the etcd watch was opened again.",
                "counter",
                load(&e.watch_restarts),
            ),
            (
                "tartan_etcd_db_size_bytes",
                "The largest member's database size.",
                "gauge",
                load(&e.db_size),
            ),
            (
                "tartan_etcd_db_quota_bytes",
                "etcd's default backend quota (NOSPACE beyond it).",
                "gauge",
                crate::store::etcd::DEFAULT_QUOTA,
            ),
            (
                "tartan_etcd_nospace",
                "1 while etcd reports a NOSPACE alarm.",
                "gauge",
                load(&e.no_space),
            ),
            (
                "tartan_etcd_compacted_revision",
                "Revision etcd's history was compacted to.",
                "gauge",
                load(&e.compacted),
            ),
            (
                "tartan_etcd_quorum",
                "1 while linearizable reads succeed.",
                "gauge",
                u64::from(etcd.has_quorum()),
            ),
        ] {
            counter(&mut out, name, help, kind, value);
        }
    }
    let per_pool = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&PoolUsage) -> f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &usage.pools {
            let _ = writeln!(out, "{name}{{pool=\"{}\",cidr=\"{}\"}} {}", p.name, p.cidr, value(p));
        }
    };
    per_pool(&mut out, "tartan_ipam_pool_size", "Addresses in each pool.", &|p| p.total as f64);
    per_pool(&mut out, "tartan_ipam_pool_used", "Allocated addresses in each pool.", &|p| {
        p.used as f64
    });
    let blocks: usize =
        usage.pools.iter().map(|p| p.blocks.len()).sum::<usize>() + usage.orphan_blocks.len();
    let borrowed: usize =
        usage.pools.iter().flat_map(|p| &p.blocks).map(|b| b.borrowed.len()).sum();
    counter(&mut out, "tartan_ipam_blocks", "Claimed blocks.", "gauge", blocks);
    counter(
        &mut out,
        "tartan_ipam_borrowed",
        "Addresses borrowed from other nodes' blocks.",
        "gauge",
        borrowed,
    );
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
