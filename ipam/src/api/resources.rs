//! Resource endpoints: `/v1/<plural>` (list with `?labelSelector=`, POST = create) and
//! `/v1/<plural>/<name>` (GET, PUT = create or replace, PATCH = JSON merge patch, DELETE).
//!
//! `resourceVersion` in a body (or `?resourceVersion=` on DELETE) makes the write conditional:
//! 409 if the stored version differs. `If-Match: *` on PUT means replace only;
//! `If-None-Match: *` means create only. IPAM views (blocks, affinities, handles) are read-only.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::body::JsonBody;
use super::error::AppError;
use super::secrets::{keep_stored, redact};
use crate::ipam::views::affinity_resource;
use crate::ipam::{Ipam, cidr_name};
use crate::resources::kinds::Writer;
use crate::resources::validate::{Context, validate};
use crate::resources::{API_VERSION, IpPoolSpec, Kind, List, RawResource, Selector};
use crate::store::{EventType, WriteMode};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListQuery {
    label_selector: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteQuery {
    resource_version: Option<String>,
}

fn kind_of(plural: &str) -> Result<Kind, AppError> {
    Kind::from_plural(plural).ok_or_else(|| {
        let known: Vec<&str> = Kind::all().map(|k| k.info().plural).collect();
        AppError::not_found(format!("unknown kind {plural:?}; the API serves {}", known.join(", ")))
    })
}

fn read_only(kind: Kind) -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "read_only",
        format!(
            "{kind} is a read-only view of the IPAM; change it through /v1/ipam (`tartanctl ipam ...`)"
        ),
    )
}

/// The IPAM views as resources.
fn views(ipam: &Ipam, kind: Kind) -> Result<Vec<RawResource>, AppError> {
    Ok(match kind {
        Kind::IpamBlock => ipam
            .blocks()?
            .into_iter()
            .map(|b| {
                let mut r = RawResource::new(
                    kind,
                    &cidr_name(b.cidr),
                    serde_json::to_value(&b).unwrap_or_default(),
                );
                if let Some(n) = &b.affinity {
                    r.metadata.labels.insert("node".into(), n.clone());
                }
                r
            })
            .collect(),
        Kind::BlockAffinity => ipam.affinities()?.iter().map(affinity_resource).collect(),
        Kind::IpamHandle => ipam
            .handles()?
            .into_iter()
            .map(|h| {
                let name = h.handle.clone();
                let mut r =
                    RawResource::new(kind, &name, serde_json::to_value(&h).unwrap_or_default());
                r.metadata.name = name;
                r
            })
            .collect(),
        _ => Vec::new(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Path(plural): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<List<RawResource>>, AppError> {
    let kind = kind_of(&plural)?;
    let Query(query) = query?;
    let selector = match &query.label_selector {
        Some(text) => {
            Selector::parse(text).map_err(|e| AppError::invalid(format!("labelSelector: {e}")))?
        }
        None => Selector::All,
    };
    let (items, revision) = if kind.is_stored() {
        state.0.store.list(kind)?
    } else {
        (views(&state.0.ipam, kind)?, state.0.store.revision())
    };
    let items = items
        .into_iter()
        .filter(|r| selector.matches(&r.metadata.labels))
        .map(|mut r| {
            redact(&mut r);
            r
        })
        .collect();
    Ok(Json(List {
        api_version: API_VERSION.into(),
        kind: format!("{}List", kind.info().kind),
        revision,
        items,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<RawResource>, AppError> {
    let kind = kind_of(&plural)?;
    let found = if kind.is_stored() {
        state.0.store.get(kind, &name)?
    } else {
        views(&state.0.ipam, kind)?.into_iter().find(|r| r.metadata.name == name)
    };
    let mut found =
        found.ok_or_else(|| AppError::not_found(format!("{kind} {name:?} not found")))?;
    redact(&mut found);
    Ok(Json(found))
}

/// Validates against the store and writes; shared by POST, PUT and PATCH.
async fn write(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    raw: RawResource,
    mode: WriteMode,
) -> Result<Response, AppError> {
    if !kind.is_stored() {
        return Err(read_only(kind));
    }
    if kind.info().writer == Writer::Server {
        return Err(AppError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "read_only",
            format!(
                "a {kind} is issued by the server: `tartanctl node credential issue NODE` \
                 (POST /v1/credentials/<node>); revoke it by deleting it"
            ),
        ));
    }
    if kind == Kind::WorkloadEndpoint {
        match raw.spec.get("node").and_then(serde_json::Value::as_str) {
            Some(node) => caller.may_act_for(node)?,
            None if *caller != Caller::Admin => {
                return Err(AppError::invalid("spec.node is missing"));
            }
            None => {}
        }
    }
    // Pool writes hold the pools lock exclusively from validation to write, so two pools that
    // overlap cannot both pass the overlap check, and no allocation sees a half-written pool.
    // On etcd the write also fails if any pool changed after the pools it was checked against
    // were listed (another server). The store may wait on etcd: off the async workers.
    let shared = state.0.clone();
    let (stored, event) =
        tokio::task::spawn_blocking(move || write_blocking(&shared, kind, raw, mode))
            .await
            .map_err(|e| {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string())
            })??;
    state.0.store.flush().await?;
    let status = if event == EventType::Added { StatusCode::CREATED } else { StatusCode::OK };
    let mut stored = stored;
    redact(&mut stored);
    Ok((status, Json(stored)).into_response())
}

fn write_blocking(
    shared: &super::Shared,
    kind: Kind,
    mut raw: RawResource,
    mode: WriteMode,
) -> Result<(RawResource, EventType), AppError> {
    let _pools = (kind == Kind::IpPool)
        .then(|| shared.ipam.pools_lock.write().unwrap_or_else(std::sync::PoisonError::into_inner));
    shared.store.barrier()?;
    let (pools, pools_revision) = shared.store.list(Kind::IpPool)?;
    let existing = shared.store.get(kind, &raw.metadata.name)?;
    keep_stored(&mut raw, existing.as_ref())?;
    let ctx = Context { existing: existing.as_ref(), pools: &pools };
    let valid = validate(kind, raw, &ctx).map_err(AppError::invalid)?;
    if kind == Kind::IpPool && existing.is_none() {
        let spec = valid.typed::<IpPoolSpec>().map_err(AppError::invalid)?.spec;
        let foreign = shared.ipam.foreign_blocks(spec.cidr, spec.block_prefix())?;
        if let Some(b) = foreign.first() {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "refused",
                format!(
                    "spec.cidr {} overlaps block {b} left by an earlier pool with another block size; \
                     release its addresses first (`tartanctl ipam check`)",
                    spec.cidr
                ),
            ));
        }
    }
    let guard = (kind == Kind::IpPool).then_some(pools_revision);
    Ok(shared.store.put_checked(kind, valid, mode, guard)?)
}

fn check_path(kind: Kind, name: &str, raw: &RawResource) -> Result<(), AppError> {
    if raw.metadata.name != name {
        return Err(AppError::invalid(format!(
            "metadata.name {:?} does not match the URL's {kind} {name:?}",
            raw.metadata.name
        )));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(plural): Path<String>,
    JsonBody(doc): JsonBody<serde_json::Value>,
) -> Result<Response, AppError> {
    let kind = kind_of(&plural)?;
    let raw = super::body::resource(kind, doc)?;
    write(&state, &caller, kind, raw, WriteMode::Create).await
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(doc): JsonBody<serde_json::Value>,
) -> Result<Response, AppError> {
    let kind = kind_of(&plural)?;
    let raw = super::body::resource(kind, doc)?;
    check_path(kind, &name, &raw)?;
    let mode = if headers.get("if-match").is_some_and(|v| v == "*") {
        WriteMode::Replace
    } else if headers.get("if-none-match").is_some_and(|v| v == "*") {
        WriteMode::Create
    } else {
        WriteMode::Apply
    };
    write(&state, &caller, kind, raw, mode).await
}

/// RFC 7396 JSON merge patch.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((plural, name)): Path<(String, String)>,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Response, AppError> {
    let kind = kind_of(&plural)?;
    if !kind.is_stored() {
        return Err(read_only(kind));
    }
    if !patch.is_object() {
        return Err(AppError::invalid("a merge patch is a JSON object"));
    }
    let current = state
        .0
        .store
        .get(kind, &name)?
        .ok_or_else(|| AppError::not_found(format!("{kind} {name:?} not found")))?;
    let version = current.metadata.resource_version.clone();
    let mut doc = serde_json::to_value(&current).map_err(|e| AppError::invalid(e.to_string()))?;
    merge(&mut doc, &patch);
    let mut raw = super::body::resource(kind, doc)?;
    check_path(kind, &name, &raw)?;
    // A patch applies to what it was merged into, unless it names a version itself.
    if patch.pointer("/metadata/resourceVersion").is_none() {
        raw.metadata.resource_version = version;
    }
    write(&state, &caller, kind, raw, WriteMode::Replace).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RawResource>, AppError> {
    let kind = kind_of(&plural)?;
    let Query(query) = query?;
    if !kind.is_stored() {
        return Err(read_only(kind));
    }
    let expected = query.resource_version;
    let shared = state.0.clone();
    let deleted = tokio::task::spawn_blocking(move || {
        let expected = expected.as_deref();
        if kind == Kind::IpPool {
            Ok::<_, AppError>(shared.ipam.delete_pool(&name, expected)?)
        } else {
            Ok(shared.store.delete(kind, &name, expected)?)
        }
    })
    .await
    .map_err(|e| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))??;
    state.0.store.flush().await?;
    let mut deleted = deleted;
    redact(&mut deleted);
    Ok(Json(deleted))
}
