//! Bidirectional Forwarding Detection: RFC 5880 asynchronous mode over single-hop UDP
//! (RFC 5881), the way the BGP speaker uses it to notice a silently dead neighbour in
//! milliseconds instead of a hold time.
//!
//! - [`packet`]: the 24-octet control packet, decoded with every RFC 5880 §6.8.6 check that
//!   needs no session, and encoded.
//! - [`session`]: one session's state machine, sans-IO like `tartan_bgp::fsm`: packets and the
//!   time are its inputs, packets to send and state changes its outputs. Timer negotiation
//!   (§6.8.2-§6.8.4, §6.8.7), Poll/Final (§6.5), jitter, AdminDown (RFC 5882).
//! - [`discriminator`]: unique, unpredictable local discriminators.
//! - [`io`]: the only part that knows sockets and tokio: a dedicated thread with its own
//!   runtime (a busy RIB cannot delay a packet), UDP 3784 in with TTL 255 required (GTSM,
//!   RFC 5881 §5), and a socket per session out, from its own port in 49152-65535 with TTL 255.
//!
//! Echo, demand mode, authentication and multihop are not implemented: a packet asking for
//! authentication is discarded, as §6.8.6 requires of a system without it.

pub mod discriminator;
pub mod io;
pub mod packet;
pub mod session;

pub use io::{Bfd, BfdError, Event, SessionStatus};
pub use packet::{Diag, Packet, State};
pub use session::{Intervals, IntervalsError, Session};
