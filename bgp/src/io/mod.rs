//! The speaker's I/O: the only part of the crate that knows tokio and sockets.
//!
//! ```text
//!  listener ──accept──▶ peer task (one per neighbour: Fsm, timers) ◀── reader ◀── TCP
//!                          │  decoded UPDATEs, Up/Down           ▲
//!                          ▼                                     │ writer ──▶ TCP
//!                     RIB thread (Rib) ──encoded UPDATEs──▶ OutQueue ┘
//! ```
//!
//! - [`speaker`]: the embedding API ([`Speaker`]) and the accept loop.
//! - [`peer`]: a neighbour's task, driving its [`crate::fsm::Fsm`].
//! - [`conn`]: a connection's reader and writer tasks and the session's output queue.
//! - [`rib_task`]: the thread that owns the [`crate::rib::Rib`].
//! - [`socket`]: listening, connecting, TCP-MD5, interface addresses.
//! - [`timers`]: the state machine's timers as deadlines.

pub mod conn;
pub mod peer;
pub mod rib_task;
pub mod socket;
pub mod speaker;
pub mod timers;

pub use peer::PeerState;
pub use rib_task::RibSummary;
pub use speaker::{PeerStatus, Speaker, SpeakerError, SpeakerStatus};
