//! Secrets in resources: a BGPPeer's inline TCP-MD5 password is write-only. Every answer that
//! carries a BGPPeer (get, list, writes, the watch) shows it as [`REDACTED`]; a write that sends
//! [`REDACTED`] back (a `get -o yaml` edited and applied) keeps the stored password; node agents
//! read the password itself from `GET /v1/bgppeers/<name>/password`, and each read is logged.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::error::AppError;
use crate::resources::{Kind, RawResource};
use crate::store::Event;

/// What a stored password reads as.
pub const REDACTED: &str = "(redacted)";

/// The inline password of a BGPPeer, if it has one.
fn password(r: &RawResource) -> Option<&serde_json::Value> {
    if r.kind != Kind::BgpPeer.info().kind {
        return None;
    }
    r.spec.pointer("/password/value")
}

/// Hides the inline password of a BGPPeer (other kinds pass unchanged).
pub fn redact(r: &mut RawResource) {
    if password(r).is_some() {
        if let Some(v) = r.spec.pointer_mut("/password/value") {
            *v = REDACTED.into();
        }
    }
}

/// [`redact`] for an event of the watch.
pub fn redact_event(e: &Event) -> Event {
    let mut e = e.clone();
    redact(&mut e.object);
    e
}

/// A write that carries [`REDACTED`] as the password keeps the stored one.
pub fn keep_stored(raw: &mut RawResource, existing: Option<&RawResource>) -> Result<(), AppError> {
    if password(raw).and_then(serde_json::Value::as_str) != Some(REDACTED) {
        return Ok(());
    }
    let Some(stored) = existing.and_then(password).cloned() else {
        return Err(AppError::invalid(format!(
            "spec.password.value is {REDACTED:?}, which stands for the stored password, but \
             BGPPeer {:?} has none: give the password itself",
            raw.metadata.name
        )));
    };
    if let Some(v) = raw.spec.pointer_mut("/password/value") {
        *v = stored;
    }
    Ok(())
}

/// `GET /v1/bgppeers/<name>/password`: `{"value": ...}` for the agent that opens the session.
pub async fn peer_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let peer = state
        .0
        .store
        .get(Kind::BgpPeer, &name)?
        .ok_or_else(|| AppError::not_found(format!("BGPPeer {name:?} not found")))?;
    let value = password(&peer).cloned().ok_or_else(|| {
        AppError::not_found(format!(
            "BGPPeer {name:?} has no inline password (spec.password.value)"
        ))
    })?;
    tracing::info!(who = %caller, peer = %name, "BGPPeer password read");
    Ok(Json(serde_json::json!({ "value": value })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(password: serde_json::Value) -> RawResource {
        RawResource::new(
            Kind::BgpPeer,
            "p",
            serde_json::json!({"peerIP": "192.0.2.1", "asNumber": 65000, "password": password}),
        )
    }

    #[test]
    fn inline_passwords_are_hidden_and_kept_on_a_round_trip() {
        let stored = peer(serde_json::json!({"value": "s3cret"}));
        let mut shown = stored.clone();
        redact(&mut shown);
        assert_eq!(shown.spec["password"]["value"], REDACTED);
        assert!(!serde_json::to_string(&shown).unwrap_or_default().contains("s3cret"));
        // Applied back as shown: the stored password stays.
        keep_stored(&mut shown, Some(&stored)).expect("kept");
        assert_eq!(shown.spec["password"]["value"], "s3cret");
        // Replaced by a new one.
        let mut new = peer(serde_json::json!({"value": "n3w"}));
        keep_stored(&mut new, Some(&stored)).expect("replaced");
        assert_eq!(new.spec["password"]["value"], "n3w");
        // The marker with nothing stored is refused.
        let mut orphan = peer(serde_json::json!({"value": REDACTED}));
        assert!(keep_stored(&mut orphan, None).is_err());
        // A file path is not a secret.
        let mut file = peer(serde_json::json!({"file": "/etc/tartan/md5"}));
        redact(&mut file);
        assert_eq!(file.spec["password"]["file"], "/etc/tartan/md5");
    }
}
