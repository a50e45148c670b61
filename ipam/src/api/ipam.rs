//! `/v1/ipam/...`: allocate, release, check, a collection round on demand, blocks, usage, and
//! lookups by address or handle. IPAM work takes locks and writes sled, so it runs outside the
//! async scheduling (see `blocking`); the answer waits for the write to be durable.

use std::net::IpAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::AppState;
use super::auth::Caller;
use super::body::JsonBody;
use super::error::AppError;
use crate::ipam::allocate::{AllocateRequest, Allocated};
use crate::ipam::check::CheckReport;
use crate::ipam::gc::GcReport;
use crate::ipam::release::{ReleaseRequest, Released, parse_host};
use crate::ipam::views::{AllocationView, BlockView, HandleView, Usage};
use crate::ipam::{Ipam, IpamError};

/// Runs IPAM work off the async workers.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Ipam) -> Result<T, IpamError> + Send + 'static,
) -> Result<T, AppError> {
    let shared = state.0.clone();
    tokio::task::spawn_blocking(move || work(&shared.ipam))
        .await
        .map_err(|e| {
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                format!("IPAM task failed: {e}"),
            )
        })?
        .map_err(AppError::from)
}

/// The header a client sets when it sends a request again (see `AllocateRequest::retried`).
pub const RETRY_HEADER: &str = "tartan-retry";

pub async fn allocate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(mut req): JsonBody<AllocateRequest>,
) -> Result<Json<Allocated>, AppError> {
    caller.may_act_for(&req.node)?;
    let start = Instant::now();
    req.retried = headers.contains_key(RETRY_HEADER);
    let result = blocking(&state, move |ipam| ipam.allocate(&req)).await;
    if let Ok(done) = &result {
        state.0.store.flush().await?;
        state.0.metrics.allocated(done.ips.len(), start.elapsed());
    } else {
        state.0.metrics.allocation_failed();
    }
    result.map(Json)
}

pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<ReleaseRequest>,
) -> Result<Json<Released>, AppError> {
    if let Caller::Node(node) = &caller {
        let (node, req) = (node.clone(), req.clone());
        let foreign = blocking(&state, move |ipam| ipam.held_by_others(&req, &node)).await?;
        if let Some((ip, holder)) = foreign {
            return Err(super::auth::forbidden(format!(
                "{ip} is allocated to node {holder:?}: {caller} releases only its own addresses"
            )));
        }
    }
    let out = blocking(&state, move |ipam| ipam.release(&req)).await?;
    state.0.store.flush().await?;
    state.0.metrics.released(out.released.len());
    Ok(Json(out))
}

pub async fn check(State(state): State<AppState>) -> Result<Json<CheckReport>, AppError> {
    Ok(Json(blocking(&state, |ipam| ipam.check()).await?))
}

/// One collection round now, with the grace periods already observed by the server's own
/// rounds (the collector's memory is the server's).
pub async fn gc(State(state): State<AppState>) -> Result<Json<GcReport>, AppError> {
    let shared = state.0.clone();
    let report = tokio::task::spawn_blocking(move || collect(&shared))
        .await
        .map_err(|e| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))??;
    state.0.store.flush().await?;
    Ok(Json(report))
}

/// Runs one collection round (periodic task and `POST /v1/ipam/gc`) and counts it.
pub fn collect(shared: &super::Shared) -> Result<GcReport, IpamError> {
    let mut gc = shared.gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let report = shared.ipam.collect_garbage(&mut gc, crate::time::now_unix())?;
    shared.metrics.collected(&report);
    Ok(report)
}

#[derive(Serialize, Debug)]
pub struct Items<T> {
    items: Vec<T>,
}

pub async fn blocks(State(state): State<AppState>) -> Result<Json<Items<BlockView>>, AppError> {
    Ok(Json(Items { items: blocking(&state, |ipam| ipam.blocks()).await? }))
}

pub async fn usage(State(state): State<AppState>) -> Result<Json<Usage>, AppError> {
    Ok(Json(blocking(&state, |ipam| ipam.usage()).await?))
}

pub async fn lookup_ip(
    State(state): State<AppState>,
    Path(ip): Path<String>,
) -> Result<Json<AllocationView>, AppError> {
    let addr: IpAddr =
        parse_host(&ip).ok_or_else(|| AppError::invalid(format!("{ip:?} is not an IP address")))?;
    blocking(&state, move |ipam| ipam.lookup_ip(addr))
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("{addr} is not allocated")))
}

pub async fn handle(
    State(state): State<AppState>,
    Path(handle): Path<String>,
) -> Result<Json<HandleView>, AppError> {
    let h = handle.clone();
    let ips = blocking(&state, move |ipam| ipam.handle(&h)).await?;
    if ips.is_empty() {
        return Err(AppError::not_found(format!("handle {handle:?} holds no address")));
    }
    Ok(Json(HandleView { handle, ips }))
}
