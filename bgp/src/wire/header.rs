//! The message header (RFC 4271 §4.1) and framing: where one message ends in a byte stream.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           Marker (16 octets of 0xff)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::error::{DecodeError, DecodeErrorKind};

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// The largest message without the extended message capability (RFC 4271 §4.1).
pub const MAX_LEN: usize = 4096;
/// The largest message with the extended message capability (RFC 8654).
pub const EXTENDED_MAX_LEN: usize = 65535;

/// Message types (RFC 4271 §4.1, RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_u8(t: u8) -> Option<MessageType> {
        Some(match t {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The shortest valid message of this type (RFC 4271 §4).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            MessageType::RouteRefresh => 23,
        }
    }
}

/// Looks at the start of `buf` and, when a whole message is there, returns its type and length.
/// `Ok(None)` means more bytes are needed. `max_len` is 4096, or 65535 once the extended
/// message capability is negotiated (OPEN and KEEPALIVE stay within 4096 regardless, RFC 8654).
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<(MessageType, usize)>, DecodeError> {
    // A wrong marker is reported as soon as it can be seen. Only the marker's own octets are
    // looked at: a read may end anywhere, also inside the length or type that follow it.
    let marker = &buf[..buf.len().min(MARKER.len())];
    if let Some(i) = marker.iter().position(|&b| b != 0xff) {
        return Err(DecodeError::new(i, DecodeErrorKind::NotSynchronized));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]);
    let ty = MessageType::from_u8(buf[18])
        .ok_or(DecodeError::new(18, DecodeErrorKind::BadType(buf[18])))?;
    let limit = match ty {
        MessageType::Open | MessageType::Keepalive => MAX_LEN,
        _ => max_len,
    };
    let l = usize::from(len);
    let bad_length = match ty {
        MessageType::Keepalive => l != HEADER_LEN,
        _ => l < ty.min_len() || l > limit,
    };
    if bad_length {
        // A ROUTE-REFRESH too short for its fields has its own error (RFC 7313 §5); one that
        // is too long for its subtype is caught when it is decoded.
        if ty == MessageType::RouteRefresh && (HEADER_LEN..=limit).contains(&l) {
            return Err(DecodeError::new(16, DecodeErrorKind::RouteRefreshLength(len)));
        }
        return Err(DecodeError::new(16, DecodeErrorKind::BadLength(len)));
    }
    if buf.len() < l {
        return Ok(None);
    }
    Ok(Some((ty, l)))
}

/// Appends a header with a placeholder length; [`finish`] fills it in.
pub(crate) fn begin(out: &mut Vec<u8>, ty: MessageType) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, ty as u8]);
    start
}

/// Writes the length of the message that started at `start`.
pub(crate) fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u16, ty: u8) -> Vec<u8> {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&len.to_be_bytes());
        v.push(ty);
        v
    }

    #[test]
    fn a_keepalive_is_exactly_a_header() {
        assert_eq!(frame(&header(19, 4), MAX_LEN), Ok(Some((MessageType::Keepalive, 19))));
        let e = frame(&header(20, 4), MAX_LEN).expect_err("too long");
        assert_eq!(e.kind, DecodeErrorKind::BadLength(20));
    }

    #[test]
    fn partial_messages_ask_for_more() {
        assert_eq!(frame(&MARKER[..10], MAX_LEN), Ok(None));
        let mut h = header(30, 2);
        h.extend_from_slice(&[0; 5]);
        assert_eq!(frame(&h, MAX_LEN), Ok(None));
    }

    #[test]
    fn a_broken_marker_is_caught_early() {
        let mut h = header(19, 4);
        h[3] = 0;
        assert_eq!(
            frame(&h[..5], MAX_LEN),
            Err(DecodeError::new(3, DecodeErrorKind::NotSynchronized))
        );
    }

    #[test]
    fn unknown_types_and_lengths_are_rejected() {
        assert_eq!(
            frame(&header(19, 6), MAX_LEN).map_err(|e| e.kind),
            Err(DecodeErrorKind::BadType(6))
        );
        assert_eq!(
            frame(&header(18, 2), MAX_LEN).map_err(|e| e.kind),
            Err(DecodeErrorKind::BadLength(18))
        );
        assert_eq!(
            frame(&header(5000, 2), MAX_LEN).map_err(|e| e.kind),
            Err(DecodeErrorKind::BadLength(5000))
        );
    }

    #[test]
    fn extended_messages_raise_the_limit_except_for_open_and_keepalive() {
        let mut long = header(5000, 2);
        long.resize(5000, 0);
        assert_eq!(frame(&long, EXTENDED_MAX_LEN).map(|f| f.map(|x| x.1)), Ok(Some(5000)));
        let mut open = header(5000, 1);
        open.resize(5000, 0);
        assert!(frame(&open, EXTENDED_MAX_LEN).is_err());
    }

    #[test]
    fn route_refresh_too_short_for_its_fields_has_its_own_error() {
        let mut rr = header(22, 5);
        rr.resize(22, 0);
        assert_eq!(
            frame(&rr, MAX_LEN).map_err(|e| e.kind),
            Err(DecodeErrorKind::RouteRefreshLength(22))
        );
    }
}
