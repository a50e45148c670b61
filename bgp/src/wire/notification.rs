//! NOTIFICATION (RFC 4271 §4.5): the error codes and subcodes BGP speakers send before closing a
//! session, with the Cease subcodes of RFC 4486 and the shutdown communication of RFC 9003.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

/// Error codes (RFC 4271 §4.5, RFC 7313 for route refresh).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const MISSING_WELL_KNOWN: u8 = 3;
    pub const ATTRIBUTE_FLAGS: u8 = 4;
    pub const ATTRIBUTE_LENGTH: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
pub mod cease {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMIN_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMIN_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIG_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384: BFD says the forwarding path to the peer failed.
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh {
    pub const INVALID_LENGTH: u8 = 1;
}

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Notification {
        Notification { code, subcode, data: data.into() }
    }

    /// A Cease with the given subcode and no data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(code::CEASE, subcode, vec![])
    }

    /// Administrative Shutdown or Reset with a shutdown communication (RFC 9003): a length
    /// octet and up to 255 octets of UTF-8, cut at a character boundary.
    pub fn shutdown(subcode: u8, message: &str) -> Notification {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification::new(code::CEASE, subcode, data)
    }

    /// Hold Timer Expired.
    pub fn hold_timer_expired() -> Notification {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, vec![])
    }

    /// Maximum Number of Prefixes Reached, with the AFI, SAFI and limit as data (RFC 4486 §4).
    pub fn max_prefixes(afi: u16, safi: u8, limit: u32) -> Notification {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&afi.to_be_bytes());
        data.push(safi);
        data.extend_from_slice(&limit.to_be_bytes());
        Notification::new(code::CEASE, cease::MAX_PREFIXES, data)
    }

    /// The shutdown communication of an Administrative Shutdown or Reset, if it has a valid one.
    pub fn shutdown_message(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(self.subcode, cease::ADMIN_SHUTDOWN | cease::ADMIN_RESET)
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }

    /// The names of the code and subcode, as people read them in logs.
    pub fn describe(&self) -> String {
        let (c, s) = names(self.code, self.subcode);
        let mut out = match s {
            Some(s) => format!("{c} / {s}"),
            None => format!("{c} / subcode {}", self.subcode),
        };
        if let Some(msg) = self.shutdown_message() {
            out.push_str(&format!(": \"{msg}\""));
        }
        out
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.describe(), self.code, self.subcode)
    }
}

fn names(c: u8, s: u8) -> (&'static str, Option<&'static str>) {
    match c {
        code::MESSAGE_HEADER => (
            "Message Header Error",
            match s {
                header::CONNECTION_NOT_SYNCHRONIZED => Some("Connection Not Synchronized"),
                header::BAD_MESSAGE_LENGTH => Some("Bad Message Length"),
                header::BAD_MESSAGE_TYPE => Some("Bad Message Type"),
                _ => None,
            },
        ),
        code::OPEN => (
            "OPEN Message Error",
            match s {
                open::UNSPECIFIC => Some("Unspecific"),
                open::UNSUPPORTED_VERSION => Some("Unsupported Version Number"),
                open::BAD_PEER_AS => Some("Bad Peer AS"),
                open::BAD_BGP_IDENTIFIER => Some("Bad BGP Identifier"),
                open::UNSUPPORTED_OPTIONAL_PARAMETER => Some("Unsupported Optional Parameter"),
                open::UNACCEPTABLE_HOLD_TIME => Some("Unacceptable Hold Time"),
                open::UNSUPPORTED_CAPABILITY => Some("Unsupported Capability"),
                _ => None,
            },
        ),
        code::UPDATE => (
            "UPDATE Message Error",
            match s {
                update::MALFORMED_ATTRIBUTE_LIST => Some("Malformed Attribute List"),
                update::UNRECOGNIZED_WELL_KNOWN => Some("Unrecognized Well-known Attribute"),
                update::MISSING_WELL_KNOWN => Some("Missing Well-known Attribute"),
                update::ATTRIBUTE_FLAGS => Some("Attribute Flags Error"),
                update::ATTRIBUTE_LENGTH => Some("Attribute Length Error"),
                update::INVALID_ORIGIN => Some("Invalid ORIGIN Attribute"),
                update::INVALID_NEXT_HOP => Some("Invalid NEXT_HOP Attribute"),
                update::OPTIONAL_ATTRIBUTE => Some("Optional Attribute Error"),
                update::INVALID_NETWORK_FIELD => Some("Invalid Network Field"),
                update::MALFORMED_AS_PATH => Some("Malformed AS_PATH"),
                _ => None,
            },
        ),
        code::HOLD_TIMER_EXPIRED => ("Hold Timer Expired", (s == 0).then_some("Unspecific")),
        code::FSM => (
            "Finite State Machine Error",
            match s {
                fsm::UNSPECIFIED => Some("Unspecified"),
                fsm::UNEXPECTED_IN_OPEN_SENT => Some("Unexpected Message in OpenSent"),
                fsm::UNEXPECTED_IN_OPEN_CONFIRM => Some("Unexpected Message in OpenConfirm"),
                fsm::UNEXPECTED_IN_ESTABLISHED => Some("Unexpected Message in Established"),
                _ => None,
            },
        ),
        code::CEASE => (
            "Cease",
            match s {
                cease::MAX_PREFIXES => Some("Maximum Number of Prefixes Reached"),
                cease::ADMIN_SHUTDOWN => Some("Administrative Shutdown"),
                cease::PEER_DECONFIGURED => Some("Peer De-configured"),
                cease::ADMIN_RESET => Some("Administrative Reset"),
                cease::CONNECTION_REJECTED => Some("Connection Rejected"),
                cease::OTHER_CONFIG_CHANGE => Some("Other Configuration Change"),
                cease::CONNECTION_COLLISION => Some("Connection Collision Resolution"),
                cease::OUT_OF_RESOURCES => Some("Out of Resources"),
                cease::HARD_RESET => Some("Hard Reset"),
                cease::BFD_DOWN => Some("BFD Down"),
                _ => None,
            },
        ),
        code::ROUTE_REFRESH => (
            "ROUTE-REFRESH Message Error",
            (s == route_refresh::INVALID_LENGTH).then_some("Invalid Message Length"),
        ),
        _ => ("Unknown Error", None),
    }
}

/// Decodes a NOTIFICATION body. Any body of at least two octets is valid.
pub(crate) fn decode(body: &[u8]) -> Option<Notification> {
    let (&c, rest) = body.split_first()?;
    let (&s, data) = rest.split_first()?;
    Some(Notification::new(c, s, data))
}

pub(crate) fn encode(n: &Notification, out: &mut Vec<u8>) {
    out.push(n.code);
    out.push(n.subcode);
    out.extend_from_slice(&n.data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_and_is_described() {
        let n = Notification::shutdown(cease::ADMIN_SHUTDOWN, "maintenance until 14:00");
        assert_eq!(n.data[0] as usize, "maintenance until 14:00".len());
        assert_eq!(n.shutdown_message(), Some("maintenance until 14:00"));
        assert_eq!(n.describe(), "Cease / Administrative Shutdown: \"maintenance until 14:00\"");
    }

    #[test]
    fn long_shutdown_messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let n = Notification::shutdown(cease::ADMIN_RESET, &long);
        assert!(n.data.len() <= 256);
        assert!(n.shutdown_message().is_some_and(|m| m.chars().all(|c| c == 'é')));
    }

    #[test]
    fn unknown_codes_still_describe() {
        assert_eq!(Notification::new(9, 9, vec![]).describe(), "Unknown Error / subcode 9");
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "Hold Timer Expired / Unspecific (4/0)"
        );
    }

    #[test]
    fn max_prefixes_carries_afi_safi_and_limit() {
        let n = Notification::max_prefixes(1, 1, 1000);
        assert_eq!(n.data, [0, 1, 1, 0, 0, 0x03, 0xe8]);
    }
}
