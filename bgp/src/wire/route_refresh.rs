//! ROUTE-REFRESH (RFC 2918) and its Beginning/End-of-RIB-Refresh subtypes (RFC 7313 §3).
//!
//! ```text
//! 0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subt. | SAFI  |
//! +-------+-------+-------+-------+
//! ```

use super::error::{DecodeError, DecodeErrorKind};
use crate::types::Family;

/// Message subtypes (RFC 7313 §3).
pub mod subtype {
    pub const NORMAL: u8 = 0;
    pub const BEGIN: u8 = 1;
    pub const END: u8 = 2;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: u16,
    pub safi: u8,
    /// 0: a request; 1 and 2: Beginning and End of a refresh. Others are to be ignored.
    pub subtype: u8,
}

impl RouteRefresh {
    pub fn request(family: Family) -> RouteRefresh {
        let (afi, safi) = family.afi_safi();
        RouteRefresh { afi, safi, subtype: subtype::NORMAL }
    }

    pub fn family(&self) -> Option<Family> {
        Family::from_afi_safi(self.afi, self.safi)
    }
}

/// Decodes a ROUTE-REFRESH body. A plain request may carry ORF entries (RFC 5291), which are
/// ignored; Beginning and End of RIB refresh must be exactly four octets (RFC 7313 §5).
pub(crate) fn decode(body: &[u8]) -> Result<RouteRefresh, DecodeError> {
    let len = (body.len() + super::header::HEADER_LEN) as u16;
    let [a0, a1, st, safi, ..] = *body else {
        return Err(DecodeError::new(16, DecodeErrorKind::RouteRefreshLength(len)));
    };
    if matches!(st, subtype::BEGIN | subtype::END) && body.len() != 4 {
        return Err(DecodeError::new(16, DecodeErrorKind::RouteRefreshLength(len)));
    }
    Ok(RouteRefresh { afi: u16::from_be_bytes([a0, a1]), safi, subtype: st })
}

pub(crate) fn encode(r: &RouteRefresh, out: &mut Vec<u8>) {
    out.extend_from_slice(&r.afi.to_be_bytes());
    out.push(r.subtype);
    out.push(r.safi);
}
