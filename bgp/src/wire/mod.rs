//! The BGP wire format: every message Tartan sends or receives, decoded into typed values and
//! encoded back, with nothing else (no sessions, no tables). Decoders read like the RFC
//! diagrams above each file; every error says which byte is wrong and maps to exactly one
//! NOTIFICATION ([`DecodeError::notification`]).
//!
//! | file | what |
//! |---|---|
//! | `header` | marker, length, type: where one message ends |
//! | `framer` | a byte stream, in pieces as TCP delivers it, cut into whole messages |
//! | `open`, `capability` | OPEN and its capabilities |
//! | `update`, `attribute`, `aspath`, `nlri` | UPDATE, path attributes (RFC 7606), AS paths (RFC 6793), prefixes |
//! | `notification`, `route_refresh` | NOTIFICATION, ROUTE-REFRESH |
//! | `error` | decode errors and their NOTIFICATIONs |

pub mod aspath;
pub mod attribute;
pub mod capability;
pub mod error;
pub mod framer;
pub mod header;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod pack;
pub mod route_refresh;
pub mod update;

pub use aspath::{AsPath, Segment, SegmentKind};
pub use attribute::{Aggregator, AttrProblem, MpReach, MpUnreach, PathAttributes, RawAttribute};
pub use capability::Capability;
pub use error::{DecodeError, DecodeErrorKind};
pub use framer::{Framer, Taken};
pub use header::{EXTENDED_MAX_LEN, HEADER_LEN, MAX_LEN, MessageType, frame};
pub use nlri::Nlri;
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::RouteRefresh;
pub use update::{EncodeError, Update, UpdateContext, UpdateEncodeContext};

use crate::types::FamilySet;

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    /// Boxed: an UPDATE is large and every other message small.
    Update(Box<Update>),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// What a session negotiated that changes the encoding: four-octet AS numbers, ADD-PATH per
/// family and direction, extended messages. The default is what holds before OPENs are
/// exchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codec {
    pub four_octet_as: bool,
    /// Families whose received NLRI carry path identifiers.
    pub add_path_rx: FamilySet,
    /// Families whose sent NLRI carry path identifiers.
    pub add_path_tx: FamilySet,
    pub extended_message: bool,
}

impl Codec {
    /// What a session negotiated, from the OPEN we sent and the OPEN we received: four-octet
    /// AS and extended messages when both advertised them (RFC 6793 §4, RFC 8654 §3); ADD-PATH
    /// per family and direction where one side sends and the other receives (RFC 7911 §4).
    pub fn negotiated(sent: &Open, received: &Open) -> Codec {
        use capability::code;
        let both = |c| sent.has(c) && received.has(c);
        let add_path = |open: &Open| -> Vec<capability::AddPathFamily> {
            open.capabilities
                .iter()
                .filter_map(|c| match c {
                    Capability::AddPath(f) => Some(f.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let (ours, theirs) = (add_path(sent), add_path(received));
        let mut codec = Codec {
            four_octet_as: both(code::FOUR_OCTET_AS),
            extended_message: both(code::EXTENDED_MESSAGE),
            ..Codec::default()
        };
        for o in &ours {
            let Some(family) = crate::types::Family::from_afi_safi(o.afi, o.safi) else { continue };
            for t in theirs.iter().filter(|t| (t.afi, t.safi) == (o.afi, o.safi)) {
                if o.receive && t.send {
                    codec.add_path_rx.insert(family);
                }
                if o.send && t.receive {
                    codec.add_path_tx.insert(family);
                }
            }
        }
        codec
    }

    /// The largest message this session may carry.
    pub fn max_len(&self) -> usize {
        if self.extended_message { EXTENDED_MAX_LEN } else { MAX_LEN }
    }

    pub fn update_decode(&self) -> UpdateContext {
        UpdateContext { four_octet_as: self.four_octet_as, add_path: self.add_path_rx }
    }

    pub fn update_encode(&self) -> UpdateEncodeContext {
        UpdateEncodeContext {
            four_octet_as: self.four_octet_as,
            add_path: self.add_path_tx,
            max_len: self.max_len(),
        }
    }

    /// Finds the next whole message at the start of `buf` (see [`frame`]).
    pub fn frame(&self, buf: &[u8]) -> Result<Option<(MessageType, usize)>, DecodeError> {
        frame(buf, self.max_len())
    }

    /// Decodes exactly one message, `msg` being its bytes (as framed by [`Codec::frame`]).
    pub fn decode(&self, msg: &[u8]) -> Result<Message, DecodeError> {
        let Some((ty, len)) = self.frame(msg)? else {
            return Err(DecodeError::new(msg.len(), DecodeErrorKind::BadLength(msg.len() as u16)));
        };
        let msg = &msg[..len];
        let body = &msg[HEADER_LEN..];
        Ok(match ty {
            MessageType::Open => {
                let (_, open) = open::decode(body).map_err(|e| {
                    error::locate(
                        msg,
                        e,
                        DecodeErrorKind::MalformedOpen("message ends inside a field"),
                    )
                })?;
                Message::Open(open)
            }
            MessageType::Update => {
                Message::Update(Box::new(update::decode(msg, self.update_decode())?))
            }
            MessageType::Notification => Message::Notification(
                notification::decode(body)
                    .ok_or(DecodeError::new(HEADER_LEN, DecodeErrorKind::MalformedNotification))?,
            ),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => Message::RouteRefresh(route_refresh::decode(body)?),
        })
    }

    /// Appends one encoded message to `out`.
    pub fn encode(&self, msg: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let ty = match msg {
            Message::Update(u) => return update::encode(u, self.update_encode(), out),
            Message::Open(_) => MessageType::Open,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        };
        let start = header::begin(out, ty);
        match msg {
            Message::Open(o) => open::encode(o, out),
            Message::Notification(n) => notification::encode(n, out),
            Message::RouteRefresh(r) => route_refresh::encode(r, out),
            Message::Keepalive | Message::Update(_) => {}
        }
        let len = out.len() - start;
        let max = if ty == MessageType::Notification { self.max_len() } else { MAX_LEN };
        if len > max {
            out.truncate(start);
            return Err(EncodeError::TooLong { len, max });
        }
        header::finish(out, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
