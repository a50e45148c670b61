//! Decoding errors. Each says what is wrong and at which byte of the message (counting from the
//! first marker byte), and [`DecodeError::notification`] turns it into the NOTIFICATION RFC 4271
//! §6 prescribes — one exhaustive match, so an error cannot exist without its code.
//!
//! Problems inside path attributes that RFC 7606 handles without a session reset are not errors:
//! they are reported on the decoded UPDATE (see [`super::update::AttrProblem`]).

use std::net::Ipv4Addr;

use nom::error::{ErrorKind as NomKind, ParseError};

use super::notification::{self as n, Notification};

/// A message that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {offset})")]
pub struct DecodeError {
    /// Offset of the offending field from the start of the message.
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    // ----- Message header (RFC 4271 §6.1)
    #[error("the marker is not all ones")]
    NotSynchronized,
    #[error("bad message length {0}")]
    BadLength(u16),
    #[error("unknown message type {0}")]
    BadType(u8),

    // ----- OPEN (RFC 4271 §6.2, RFC 5492, RFC 9072)
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    #[error("BGP identifier {0} is not allowed")]
    BadBgpIdentifier(Ipv4Addr),
    #[error("unsupported optional parameter {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("hold time {0} s is not allowed (0 or at least 3)")]
    UnacceptableHoldTime(u16),
    #[error("malformed OPEN: {0}")]
    MalformedOpen(&'static str),

    // ----- UPDATE: only what resets the session (RFC 7606 §3, §5)
    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    #[error("unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnown { type_code: u8, attribute: Vec<u8> },
    #[error("invalid network field: {0}")]
    InvalidNetworkField(&'static str),
    #[error("malformed {} attribute: {reason}", if *type_code == super::attribute::MP_REACH_NLRI { "MP_REACH_NLRI" } else { "MP_UNREACH_NLRI" })]
    MalformedMpAttribute { type_code: u8, reason: &'static str, attribute: Vec<u8> },

    // ----- ROUTE-REFRESH (RFC 7313 §5)
    #[error("ROUTE-REFRESH of length {0}; it must be 23")]
    RouteRefreshLength(u16),

    // ----- NOTIFICATION (RFC 4271 §6.4: never answered)
    #[error("NOTIFICATION shorter than its code and subcode")]
    MalformedNotification,
}

impl DecodeError {
    pub fn new(offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError { offset, kind }
    }

    /// The NOTIFICATION to send before closing the session; `None` for a malformed
    /// NOTIFICATION, which is never answered (RFC 4271 §6.4).
    pub fn notification(&self) -> Option<Notification> {
        use DecodeErrorKind as K;
        let (code, subcode, data): (u8, u8, Vec<u8>) = match &self.kind {
            K::NotSynchronized => {
                (n::code::MESSAGE_HEADER, n::header::CONNECTION_NOT_SYNCHRONIZED, vec![])
            }
            K::BadLength(len) => {
                (n::code::MESSAGE_HEADER, n::header::BAD_MESSAGE_LENGTH, len.to_be_bytes().to_vec())
            }
            K::BadType(t) => (n::code::MESSAGE_HEADER, n::header::BAD_MESSAGE_TYPE, vec![*t]),
            // The data is the largest version we support below the one offered (§6.2).
            K::UnsupportedVersion(_) => {
                (n::code::OPEN, n::open::UNSUPPORTED_VERSION, 4u16.to_be_bytes().to_vec())
            }
            K::BadBgpIdentifier(_) => (n::code::OPEN, n::open::BAD_BGP_IDENTIFIER, vec![]),
            K::UnsupportedOptionalParameter(_) => {
                (n::code::OPEN, n::open::UNSUPPORTED_OPTIONAL_PARAMETER, vec![])
            }
            K::UnacceptableHoldTime(_) => (n::code::OPEN, n::open::UNACCEPTABLE_HOLD_TIME, vec![]),
            K::MalformedOpen(_) => (n::code::OPEN, n::open::UNSPECIFIC, vec![]),
            K::MalformedAttributeList(_) => {
                (n::code::UPDATE, n::update::MALFORMED_ATTRIBUTE_LIST, vec![])
            }
            K::UnrecognizedWellKnown { attribute, .. } => {
                (n::code::UPDATE, n::update::UNRECOGNIZED_WELL_KNOWN, attribute.clone())
            }
            K::InvalidNetworkField(_) => {
                (n::code::UPDATE, n::update::INVALID_NETWORK_FIELD, vec![])
            }
            K::MalformedMpAttribute { attribute, .. } => {
                (n::code::UPDATE, n::update::OPTIONAL_ATTRIBUTE, attribute.clone())
            }
            K::RouteRefreshLength(len) => {
                // RFC 7313 §5: the data is the complete message; we have at least its length.
                (
                    n::code::ROUTE_REFRESH,
                    n::route_refresh::INVALID_LENGTH,
                    len.to_be_bytes().to_vec(),
                )
            }
            K::MalformedNotification => return None,
        };
        Some(Notification::new(code, subcode, data))
    }
}

/// A failure of a nom parser: where it stopped and, if it did not merely run out of input, why.
#[derive(Debug)]
pub(crate) struct Fail<'a> {
    pub at: &'a [u8],
    pub kind: Option<DecodeErrorKind>,
}

impl<'a> ParseError<&'a [u8]> for Fail<'a> {
    fn from_error_kind(input: &'a [u8], _: NomKind) -> Self {
        Fail { at: input, kind: None }
    }

    fn append(_: &'a [u8], _: NomKind, other: Self) -> Self {
        other
    }
}

pub(crate) type Res<'a, T> = nom::IResult<&'a [u8], T, Fail<'a>>;

/// Fails the parse at `at` with `kind`.
pub(crate) fn fail<T>(at: &[u8], kind: DecodeErrorKind) -> Res<'_, T> {
    Err(nom::Err::Failure(Fail { at, kind: Some(kind) }))
}

/// The offset of `at` within `base` (both slices of the same message).
pub(crate) fn offset(base: &[u8], at: &[u8]) -> usize {
    (at.as_ptr() as usize).saturating_sub(base.as_ptr() as usize).min(base.len())
}

/// Turns a nom failure into a located error; running out of input becomes `truncated`.
pub(crate) fn locate(
    base: &[u8],
    err: nom::Err<Fail<'_>>,
    truncated: DecodeErrorKind,
) -> DecodeError {
    match err {
        nom::Err::Error(f) | nom::Err::Failure(f) => {
            DecodeError::new(offset(base, f.at), f.kind.unwrap_or(truncated))
        }
        nom::Err::Incomplete(_) => DecodeError::new(base.len(), truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_error_maps_to_its_subcode_and_data() {
        let n = DecodeError::new(16, DecodeErrorKind::BadLength(5000))
            .notification()
            .expect("answered");
        assert_eq!((n.code, n.subcode, n.data), (1, 2, vec![0x13, 0x88]));
        let n = DecodeError::new(18, DecodeErrorKind::BadType(9)).notification().expect("answered");
        assert_eq!((n.code, n.subcode, n.data), (1, 3, vec![9]));
    }

    #[test]
    fn unsupported_version_names_the_version_we_speak() {
        let n = DecodeError::new(19, DecodeErrorKind::UnsupportedVersion(5))
            .notification()
            .expect("answered");
        assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
    }

    #[test]
    fn a_malformed_notification_is_never_answered() {
        assert_eq!(
            DecodeError::new(19, DecodeErrorKind::MalformedNotification).notification(),
            None
        );
    }

    #[test]
    fn errors_print_their_offset() {
        let e = DecodeError::new(23, DecodeErrorKind::UnacceptableHoldTime(2));
        assert_eq!(e.to_string(), "hold time 2 s is not allowed (0 or at least 3) (at byte 23)");
    }
}
