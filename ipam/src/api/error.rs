//! The API's one error type: every failure is JSON `{error, message}` with the right status,
//! including rejections of malformed bodies, paths and queries.

use axum::Json;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::ipam::IpamError;
use crate::store::StoreError;
use crate::store::etcd::EtcdError;

/// The JSON body of every error.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// An error with its status.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The longest message an error body carries: a message quoting the request (a 100 KB name,
/// an unknown field's value) is cut, so an error never echoes megabytes back.
pub const MESSAGE_LIMIT: usize = 1024;

/// `message` cut to [`MESSAGE_LIMIT`] bytes (on a character boundary), saying how much went.
fn bounded(mut message: String) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message;
    }
    let total = message.len();
    let mut cut = MESSAGE_LIMIT;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("… ({} more bytes not shown)", total - cut));
    message
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError { status, code, message: bounded(message.into()) }
    }

    pub fn invalid(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = self.code, "{}", self.message);
        }
        (self.status, Json(ErrorBody { error: self.code.to_string(), message: self.message }))
            .into_response()
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str) {
    match e {
        StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
        StoreError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        StoreError::Gone { .. } => (StatusCode::GONE, "gone"),
        StoreError::Open { .. } | StoreError::Sled(_) | StoreError::Corrupt(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "storage")
        }
        StoreError::Raced(_) => (StatusCode::CONFLICT, "conflict"),
        StoreError::ReadOnly(_) => (StatusCode::SERVICE_UNAVAILABLE, "read_only"),
        StoreError::Etcd(EtcdError::Indeterminate(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "indeterminate")
        }
        StoreError::Etcd(EtcdError::NoSpace(_)) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
        StoreError::Etcd(EtcdError::Refused(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
        StoreError::Etcd(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        let (status, code) = store_status(&e);
        AppError::new(status, code, e.to_string())
    }
}

impl From<IpamError> for AppError {
    fn from(e: IpamError) -> AppError {
        let (status, code) = match &e {
            IpamError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            IpamError::NoPool(_) => (StatusCode::CONFLICT, "no_pool"),
            IpamError::Exhausted(_) => (StatusCode::CONFLICT, "exhausted"),
            IpamError::AddressInUse { .. } => (StatusCode::CONFLICT, "address_in_use"),
            IpamError::Refused(_) => (StatusCode::CONFLICT, "refused"),
            IpamError::Contended(_) => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
            IpamError::Store(s) => store_status(s),
        };
        AppError::new(status, code, e.to_string())
    }
}

impl From<BytesRejection> for AppError {
    fn from(r: BytesRejection) -> AppError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is larger than 1 MiB",
            )
        } else {
            AppError::invalid(format!("could not read the request body: {r}"))
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> AppError {
        AppError::invalid(format!("bad query string: {}", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let short = AppError::invalid("short");
        assert_eq!(short.message, "short");
        let long = AppError::invalid(format!("name {:?} is bad", "é".repeat(100_000)));
        assert!(long.message.len() < MESSAGE_LIMIT + 64, "{}", long.message.len());
        assert!(long.message.ends_with("more bytes not shown)"));
    }
}
