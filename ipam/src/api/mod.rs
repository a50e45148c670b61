//! The HTTP API: `fn app(state) -> Router`, JSON everywhere, bearer-token auth.
//!
//! Routes: `/v1/<plural>[/<name>]` for resources (`resources.rs`), `/v1/ipam/...` (`ipam.rs`),
//! `/v1/watch` (`watch.rs`), `/healthz`, `/metrics` (`metrics.rs`), `/openapi.json`
//! (`openapi.rs`). Every write is made durable before it is answered. Every error is an
//! [`error::AppError`]; no input is meant to reach a panic or a 500.

pub mod auth;
pub mod body;
pub mod error;
pub mod ipam;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod resources;
pub mod secrets;
pub mod server;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::ipam::Ipam;
use crate::store::Store;
use error::AppError;
use metrics::Metrics;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1 << 20;
/// Longest a request may take before it is answered with 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    pub ipam: Ipam,
    /// `None` turns authentication off (tests of the router only).
    pub token: Option<String>,
    pub metrics: Metrics,
    /// The leak collector's memory between rounds (candidates, when each was first seen),
    /// shared by the periodic rounds and `POST /v1/ipam/gc`.
    pub gc: std::sync::Mutex<crate::ipam::gc::GcState>,
    /// Open and refused connections (the accept loop writes, `/metrics` reads).
    pub conns: Arc<listen::ConnStats>,
}

impl AppState {
    pub fn new(store: Arc<Store>, ipam: Ipam, token: Option<String>) -> AppState {
        AppState(Arc::new(Shared {
            store,
            ipam,
            token,
            metrics: Metrics::default(),
            gc: Default::default(),
            conns: Default::default(),
        }))
    }
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/watch", get(watch::watch))
        .route("/v1/ipam/allocate", post(ipam::allocate))
        .route("/v1/ipam/release", post(ipam::release))
        .route("/v1/ipam/check", post(ipam::check))
        .route("/v1/ipam/gc", post(ipam::gc))
        .route("/v1/ipam/blocks", get(ipam::blocks))
        .route("/v1/ipam/usage", get(ipam::usage))
        .route("/v1/ipam/ips/{ip}", get(ipam::lookup_ip))
        .route("/v1/ipam/handles/{handle}", get(ipam::handle))
        .route("/v1/credentials/{node}", post(auth::issue))
        .route("/v1/bgppeers/{name}/password", get(secrets::peer_password))
        .route("/v1/{plural}", get(resources::list).post(resources::create))
        .route(
            "/v1/{plural}/{name}",
            get(resources::get)
                .put(resources::put)
                .patch(resources::patch)
                .delete(resources::delete),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// `ok` with the revision; on etcd also whether the cluster has quorum (a linearizable read
/// succeeded in the last 5 s) — 503 when it has not, so a load balancer moves on.
async fn healthz(State(state): State<AppState>) -> Response {
    let store = &state.0.store;
    let mut body = serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"),
        "revision": store.revision(), "datastore": if store.is_shared() { "etcd" } else { "sled" }});
    if let Some(etcd) = store.etcd() {
        let quorum = etcd.has_quorum();
        body["etcd"] = serde_json::json!({
            "quorum": quorum,
            "endpoints": etcd.client().endpoints(),
            "dbSizeBytes": etcd.metrics().db_size.load(std::sync::atomic::Ordering::Relaxed),
        });
        if !quorum {
            body["status"] = "unavailable".into();
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    }
    Json(body).into_response()
}

async fn not_found() -> AppError {
    AppError::not_found("no such endpoint; see /openapi.json for the API")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Timeout, request metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", REQUEST_TIMEOUT.as_secs()),
        )
        .into_response(),
    };
    state.0.metrics.record(&method, &route, response.status());
    response
}
