//! Who may do what. Two kinds of bearer token:
//!
//! - the **admin token** (the server's token file): everything;
//! - a **node credential** `node.<node>.<secret>`, issued by `POST /v1/credentials/<node>`
//!   (`tartanctl node credential issue NODE`) and revoked by deleting its NodeCredential. Only
//!   the secret's SHA-256 is stored. A node reads what the agent needs (never the credentials)
//!   and writes only its own Node, NodeStatus, WorkloadEndpoints (`<node>.<interface>`, spec.node
//!   its own) and the addresses it allocates and releases for itself.
//!
//! The middleware records every write and every refused request at info: who, what, result.

use std::fmt;
use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, http::header::AUTHORIZATION};

use super::AppState;
use super::error::AppError;
use crate::resources::{Kind, NodeCredentialSpec, RawResource};
use crate::store::WriteMode;

/// The prefix of a node credential.
pub const NODE_TOKEN_PREFIX: &str = "node.";

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The admin token (or authentication off).
    Admin,
    /// A node agent with its own credential.
    Node(String),
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Admin => f.write_str("admin"),
            Caller::Node(n) => write!(f, "node/{n}"),
        }
    }
}

impl Caller {
    /// Refuses a node writing for another node.
    pub fn may_act_for(&self, node: &str) -> Result<(), AppError> {
        match self {
            Caller::Node(me) if me != node => Err(forbidden(format!(
                "the credential of node {me:?} cannot act for node {node:?}"
            ))),
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller::Admin))
    }
}

/// The peer's address, set on every request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

pub fn forbidden(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller a bearer token stands for, if any.
fn identify(state: &AppState, admin: &str, given: &str) -> Option<Caller> {
    if same(given.as_bytes(), admin.as_bytes()) {
        return Some(Caller::Admin);
    }
    let (node, secret) = given.strip_prefix(NODE_TOKEN_PREFIX)?.rsplit_once('.')?;
    let stored = state.0.store.get(Kind::NodeCredential, node).ok()??;
    let spec = stored.typed::<NodeCredentialSpec>().ok()?.spec;
    same(sha256_hex(secret.as_bytes()).as_bytes(), spec.token_sha256.as_bytes())
        .then(|| Caller::Node(node.to_string()))
}

/// The segments of a `/v1/...` path, percent-decoded.
fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// What a node credential may do, decided from the method and path; the handlers check what
/// only the body says (a WorkloadEndpoint's node, the node an allocation is for).
fn node_may(node: &str, method: &Method, path: &str) -> bool {
    let seg = segments(path);
    let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
    if matches!(*method, Method::GET | Method::HEAD) {
        return !matches!(
            seg.as_slice(),
            ["v1", "nodecredentials", ..] | ["v1", "credentials", ..]
        );
    }
    match (method, seg.as_slice()) {
        (&Method::POST, ["v1", "ipam", "allocate" | "release"]) => true,
        (&Method::PUT | &Method::PATCH, ["v1", "nodes" | "nodestatuses", name]) => *name == node,
        (&Method::DELETE, ["v1", "nodestatuses", name]) => *name == node,
        (&Method::PUT | &Method::PATCH | &Method::DELETE, ["v1", "workloadendpoints", name]) => {
            name.strip_prefix(node).is_some_and(|rest| rest.starts_with('.'))
        }
        _ => false,
    }
}

/// Bearer-token check (constant time), the node credential's limits, and the audit log.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(admin) = state.0.token.clone() else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req.extensions().get::<Peer>().map(|p| p.0.to_string()).unwrap_or_default();
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(caller) = identify(&state, &admin, given) else {
        tracing::info!(%peer, %method, %path, "refused: missing or unknown bearer token");
        return AppError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer <token>` with the admin \
             token from the server's token file (`<data-dir>/token`) or a node credential \
             (`tartanctl node credential issue NODE`)",
        )
        .into_response();
    };
    if let Caller::Node(node) = &caller {
        if !node_may(node, &method, &path) {
            tracing::info!(who = %caller, %peer, %method, %path, "refused: not allowed to a node");
            return forbidden(format!(
                "the credential of node {node:?} may not {method} {path}: a node writes only its \
                 own Node, NodeStatus, WorkloadEndpoints and addresses; use the admin token"
            ))
            .into_response();
        }
    }
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    let status = response.status();
    if !matches!(method, Method::GET | Method::HEAD) || status == StatusCode::FORBIDDEN {
        tracing::info!(who = %caller, %peer, %method, %path, status = status.as_u16(), "request");
    }
    response
}

/// `POST /v1/credentials/<node>`: a new credential for the node, replacing any earlier one
/// (which stops working at once). The token is in this answer only.
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
) -> Result<Response, AppError> {
    if caller != Caller::Admin {
        return Err(forbidden("only the admin token issues node credentials"));
    }
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).map_err(
        |_| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", "no randomness for a token"),
    )?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let spec =
        NodeCredentialSpec { node: node.clone(), token_sha256: sha256_hex(secret.as_bytes()) };
    let raw = RawResource::new(
        Kind::NodeCredential,
        &node,
        serde_json::to_value(&spec).map_err(|e| AppError::invalid(e.to_string()))?,
    );
    let shared = state.0.clone();
    let (stored, _) = tokio::task::spawn_blocking(move || {
        let existing = shared.store.get(Kind::NodeCredential, &raw.metadata.name)?;
        let ctx = crate::resources::validate::Context { existing: existing.as_ref(), pools: &[] };
        let valid = crate::resources::validate::validate(Kind::NodeCredential, raw, &ctx)
            .map_err(AppError::invalid)?;
        Ok::<_, AppError>(shared.store.put_checked(
            Kind::NodeCredential,
            valid,
            WriteMode::Apply,
            None,
        )?)
    })
    .await
    .map_err(|e| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))??;
    state.0.store.flush().await?;
    tracing::info!(who = %caller, node = %node, "node credential issued");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "node": node,
            "token": format!("{NODE_TOKEN_PREFIX}{node}.{secret}"),
            "resourceVersion": stored.metadata.resource_version,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_writes_only_its_own_things() {
        let may = |m: Method, p: &str| node_may("host1", &m, p);
        assert!(may(Method::GET, "/v1/bgppeers"));
        assert!(may(Method::GET, "/v1/bgppeers/tor/password"));
        assert!(!may(Method::GET, "/v1/nodecredentials"));
        assert!(!may(Method::GET, "/v1/nodecredentials/host2"));
        assert!(!may(Method::POST, "/v1/credentials/host1"));
        assert!(may(Method::PUT, "/v1/nodes/host1"));
        assert!(!may(Method::PUT, "/v1/nodes/host2"));
        assert!(!may(Method::DELETE, "/v1/nodes/host1"));
        assert!(may(Method::PUT, "/v1/nodestatuses/host1"));
        assert!(!may(Method::PUT, "/v1/nodestatuses/host10"));
        assert!(may(Method::PUT, "/v1/workloadendpoints/host1.tap0"));
        assert!(may(Method::DELETE, "/v1/workloadendpoints/host1.tap0"));
        assert!(!may(Method::PUT, "/v1/workloadendpoints/host10.tap0"));
        assert!(!may(Method::PUT, "/v1/workloadendpoints/host2.tap0"));
        assert!(may(Method::POST, "/v1/ipam/allocate"));
        assert!(may(Method::POST, "/v1/ipam/release"));
        assert!(!may(Method::POST, "/v1/ipam/gc"));
        assert!(!may(Method::PUT, "/v1/ippools/p"));
        assert!(!may(Method::PUT, "/v1/bgppeers/x"));
        assert!(!may(Method::POST, "/v1/workloadendpoints"));
        assert!(!may(Method::DELETE, "/v1/nodecredentials/host1"));
        // Encoded paths are decoded before the check.
        assert!(!may(Method::PUT, "/v1/nodes/host%32"));
        assert!(may(Method::PUT, "/v1/nodes/host%31"));
    }
}
