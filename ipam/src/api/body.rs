//! `JsonBody<T>`: a JSON extractor whose rejections are [`AppError`]s naming the field that is
//! wrong (`spec.blockSize: invalid type ...`), with the body size limit applied.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::error::AppError;

/// A JSON request body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !ct.starts_with("application/json")
                && !ct.starts_with("application/merge-patch+json")
            {
                return Err(AppError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send JSON (Content-Type: application/json), not {ct:?}"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the path of the first error.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            AppError::invalid(format!("invalid JSON body: {}", e.inner()))
        } else {
            AppError::invalid(format!("invalid JSON body at {path}: {}", e.inner()))
        }
    })?;
    de.end().map_err(|e| AppError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// A resource document in Tartan's or Calico's shape (`projectcalico.org/v3`) as the resource
/// Tartan stores, naming the field that is wrong.
pub fn resource(
    kind: crate::resources::Kind,
    doc: serde_json::Value,
) -> Result<crate::resources::RawResource, AppError> {
    let doc = crate::resources::calico::to_tartan(kind, doc).map_err(AppError::invalid)?;
    serde_path_to_error::deserialize(doc).map_err(|e| match e.path().to_string() {
        path if path == "." => AppError::invalid(e.inner().to_string()),
        path => AppError::invalid(format!("{path}: {}", e.inner())),
    })
}
