//! One TCP connection: a reader task that cuts the byte stream into messages and hands them to
//! the peer task in batches, and a writer task that sends the peer task's messages (OPEN,
//! KEEPALIVE, NOTIFICATION) ahead of the UPDATEs the RIB leaves in the session's [`OutQueue`].
//!
//! Nothing here decodes or decides: the reader only frames (a broken header ends the
//! connection), and the writer only writes. Back-pressure is plain TCP: a peer task that cannot
//! take more stops the reader, and a peer that reads slowly leaves the queue full, which stops
//! the RIB from exporting more to it until the writer drains it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};

use super::rib_task::RibCommand;
use crate::fsm::ConnId;
use crate::rib::PeerIdx;
use crate::wire::{DecodeError, EXTENDED_MAX_LEN, Framer, Taken};

/// What a connection's tasks report to the peer task.
#[derive(Debug)]
pub enum ConnEvent {
    /// Whole messages, back to back.
    Frames(ConnId, Vec<u8>),
    /// The byte stream is broken at this point; nothing more will come.
    Malformed(ConnId, DecodeError),
    /// The connection closed or failed.
    Closed(ConnId),
}

/// Reads messages until the connection ends.
pub async fn reader(id: ConnId, mut rd: OwnedReadHalf, tx: mpsc::Sender<ConnEvent>) {
    // Frame with the largest length any session may negotiate; the peer task checks the
    // negotiated one when it decodes.
    let mut framer = Framer::new(EXTENDED_MAX_LEN);
    loop {
        match rd.read_buf(framer.spare()).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(ConnEvent::Closed(id)).await;
                return;
            }
            Ok(_) => {}
        }
        let Taken { messages, error } = framer.take();
        if !messages.is_empty() && tx.send(ConnEvent::Frames(id, messages)).await.is_err() {
            return;
        }
        if let Some(e) = error {
            let _ = tx.send(ConnEvent::Malformed(id, e)).await;
            return;
        }
    }
}

/// What the peer task tells a writer.
#[derive(Debug)]
pub enum WriterCommand {
    /// Encoded messages to send before any further UPDATE.
    Send(Vec<u8>),
    /// The session is Established: send what the RIB queues.
    Updates(Arc<OutQueue>, PeerIdx),
    /// Send what is pending, then close.
    Close,
}

/// Writes until told to close or the connection fails.
pub async fn writer(
    id: ConnId,
    wr: OwnedWriteHalf,
    mut commands: mpsc::UnboundedReceiver<WriterCommand>,
    events: mpsc::Sender<ConnEvent>,
    rib: mpsc::Sender<RibCommand>,
) {
    let mut w = Writer { wr, queue: None, chunk: Vec::new() };
    loop {
        let notified = async {
            match &w.queue {
                Some((q, _)) => q.notify.notified().await,
                None => std::future::pending().await,
            }
        };
        let flow = tokio::select! {
            biased;
            cmd = commands.recv() => w.obey(cmd).await,
            () = notified => w.send_updates(&mut commands, &rib).await,
        };
        match flow {
            Flow::Go => {}
            Flow::Close => {
                let _ = w.wr.shutdown().await;
                return;
            }
            Flow::Failed => break,
        }
    }
    let _ = events.send(ConnEvent::Closed(id)).await;
}

/// What the writer does next.
enum Flow {
    Go,
    /// Told to close: shut the connection down cleanly.
    Close,
    /// A write failed: the connection is gone.
    Failed,
}

struct Writer {
    wr: OwnedWriteHalf,
    queue: Option<(Arc<OutQueue>, PeerIdx)>,
    chunk: Vec<u8>,
}

impl Writer {
    /// Carries out one command of the peer task (`None`: the task is gone).
    async fn obey(&mut self, cmd: Option<WriterCommand>) -> Flow {
        match cmd {
            Some(WriterCommand::Send(bytes)) => {
                if self.wr.write_all(&bytes).await.is_err() {
                    Flow::Failed
                } else {
                    Flow::Go
                }
            }
            Some(WriterCommand::Updates(q, idx)) => {
                q.notify.notify_one();
                self.queue = Some((q, idx));
                Flow::Go
            }
            Some(WriterCommand::Close) | None => Flow::Close,
        }
    }

    /// Sends what the RIB queued, in pieces, with the peer task's messages (a KEEPALIVE, a
    /// NOTIFICATION, Close) given their turn between them.
    async fn send_updates(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<WriterCommand>,
        rib: &mpsc::Sender<RibCommand>,
    ) -> Flow {
        let Some((q, idx)) = self.queue.clone() else { return Flow::Go };
        let mut chunk = std::mem::take(&mut self.chunk);
        let blocked = q.take(&mut chunk);
        let mut flow = Flow::Go;
        'pieces: for piece in chunk.chunks(PIECE) {
            if self.wr.write_all(piece).await.is_err() {
                return Flow::Failed;
            }
            while let Ok(cmd) = commands.try_recv() {
                flow = self.obey(Some(cmd)).await;
                if !matches!(flow, Flow::Go) {
                    break 'pieces;
                }
            }
        }
        chunk.clear();
        self.chunk = chunk;
        // Never wait for the RIB: a full channel means it is busy, and it looks at every
        // session's queue after each batch of work anyway.
        if blocked && matches!(flow, Flow::Go) {
            let _ = rib.try_send(RibCommand::Writable(idx));
        }
        flow
    }
}

/// How much of the queued UPDATEs is written before the writer looks for other messages.
const PIECE: usize = 16 * 1024;

/// Bytes the RIB has encoded for a session and the writer has not yet sent.
#[derive(Debug, Default)]
pub struct OutQueue {
    inner: Mutex<OutBuf>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct OutBuf {
    bytes: Vec<u8>,
    /// The RIB stopped exporting to this session because the queue was full: it wants a
    /// `Writable` once the writer has made room.
    blocked: bool,
}

/// How much the RIB may queue for one session.
pub const QUEUE_LIMIT: usize = 256 * 1024;

impl OutQueue {
    /// Room left before the limit.
    pub fn space(&self) -> usize {
        let b = self.lock();
        QUEUE_LIMIT.saturating_sub(b.bytes.len())
    }

    /// Appends `data` (leaving it empty). With `more` waiting and no room left, the RIB is
    /// marked blocked; returns whether it is.
    pub fn push(&self, data: &mut Vec<u8>, more: bool) -> bool {
        let mut b = self.lock();
        if b.bytes.is_empty() {
            std::mem::swap(&mut b.bytes, data);
        } else {
            b.bytes.append(data);
        }
        b.blocked = more && b.bytes.len() >= QUEUE_LIMIT;
        let blocked = b.blocked;
        drop(b);
        self.notify.notify_one();
        blocked
    }

    /// Marks the RIB blocked (it has more, and no room).
    pub fn block(&self) {
        self.lock().blocked = true;
    }

    /// Moves everything queued into `into` (which must be empty); returns whether the RIB was
    /// blocked and so wants to hear that there is room again.
    fn take(&self, into: &mut Vec<u8>) -> bool {
        let mut b = self.lock();
        std::mem::swap(&mut b.bytes, into);
        std::mem::take(&mut b.blocked)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutBuf> {
        // A panic while holding this lock leaves plain bytes behind: still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_blocks_the_rib_until_the_writer_takes_it() {
        let q = OutQueue::default();
        let mut data = vec![0u8; QUEUE_LIMIT];
        assert!(q.push(&mut data, true));
        assert_eq!(q.space(), 0);
        let mut out = Vec::new();
        assert!(q.take(&mut out), "the writer learns the RIB waits");
        assert_eq!(out.len(), QUEUE_LIMIT);
        assert_eq!(q.space(), QUEUE_LIMIT);
        let mut small = vec![1u8; 10];
        assert!(!q.push(&mut small, true));
        out.clear();
        assert!(!q.take(&mut out));
    }
}
