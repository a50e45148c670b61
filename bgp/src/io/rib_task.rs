//! The RIB's own thread: it owns the [`Rib`] and does all route work — applying UPDATEs,
//! running the decision process, filling each session's [`OutQueue`] — so that no session
//! task ever waits for it. Sessions send it commands over one bounded channel (a session that
//! gets ahead of it stops reading its socket); it answers queries over oneshot channels.
//!
//! Each round takes a bounded slice of commands, then exports to every session with room in
//! its queue, so a peer loading a full table does not starve the others' output.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::conn::OutQueue;
use super::peer::PeerCommand;
use crate::rib::{
    BestChange, Origination, PeerCounters, PeerIdx, PeerSettings, Rib, RibEvent, RouteView,
    SessionInfo,
};
use crate::types::{Family, FamilySet, Prefix};
use crate::wire::Update;

#[derive(Debug)]
pub enum RibCommand {
    AddPeer(PeerSettings, oneshot::Sender<PeerIdx>),
    RemovePeer(PeerIdx),
    /// New settings; the reply says whether the peer must be asked for its routes again.
    SetPeer(PeerIdx, PeerSettings, oneshot::Sender<bool>),
    Up {
        idx: PeerIdx,
        info: SessionInfo,
        queue: Arc<OutQueue>,
        peer: mpsc::Sender<PeerCommand>,
    },
    Down {
        idx: PeerIdx,
        keep_stale: FamilySet,
    },
    PurgeStale(PeerIdx, FamilySet),
    /// The peer begins re-sending a family (RFC 7313 BoRR).
    RefreshBegins(PeerIdx, Family),
    /// The peer asks for our routes again.
    RefreshRequested(PeerIdx, Family),
    Updates(PeerIdx, Vec<Update>),
    /// A session's queue has room again.
    Writable(PeerIdx),
    Originate(Prefix, Origination),
    Withdraw(Prefix),
    /// Best-path changes for a consumer that keeps up (the node agent's route programmer).
    Subscribe(mpsc::UnboundedSender<Vec<BestChange>>),
    Counters(Vec<PeerIdx>, oneshot::Sender<Vec<Option<PeerCounters>>>),
    Routes(Family, Option<Prefix>, oneshot::Sender<Vec<RouteView>>),
    Summary(oneshot::Sender<RibSummary>),
    Stop,
}

/// Totals, for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RibSummary {
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    pub attribute_sets: usize,
}

/// Work per round before exporting: this many commands, or UPDATEs carrying this many routes,
/// whichever comes first — so that routes flow out while a full table is still coming in.
const COMMANDS_PER_ROUND: usize = 64;
const ROUTES_PER_ROUND: usize = 16 * 1024;
/// Changes per feed message.
const FEED_BATCH: usize = 4096;

struct Session {
    queue: Arc<OutQueue>,
    peer: mpsc::Sender<PeerCommand>,
}

struct RibTask {
    rib: Rib,
    sessions: Vec<Option<Session>>,
    /// Prefix-limit events not yet delivered (a peer's command channel was full).
    undelivered: Vec<RibEvent>,
    feeds: Vec<(usize, mpsc::UnboundedSender<Vec<BestChange>>)>,
    scratch: Vec<u8>,
}

/// Runs the RIB until `Stop` or until every sender is gone.
pub fn run(rib: Rib, mut rx: mpsc::Receiver<RibCommand>) {
    let mut task = RibTask {
        rib,
        sessions: Vec::new(),
        undelivered: Vec::new(),
        feeds: Vec::new(),
        scratch: Vec::new(),
    };
    let mut last_collect = Instant::now();
    loop {
        let busy = task.has_work();
        // Block only when there is nothing to export.
        let first = if busy {
            match rx.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        } else {
            match rx.blocking_recv() {
                Some(c) => Some(c),
                None => return,
            }
        };
        let mut cmd = first;
        let (mut n, mut routes) = (0, 0);
        while let Some(c) = cmd {
            if matches!(c, RibCommand::Stop) {
                return;
            }
            if let RibCommand::Updates(_, updates) = &c {
                routes += updates
                    .iter()
                    .map(|u| u.announced().count() + u.withdrawals().count())
                    .sum::<usize>();
            }
            task.handle(c);
            n += 1;
            if n >= COMMANDS_PER_ROUND || routes >= ROUTES_PER_ROUND {
                break;
            }
            cmd = rx.try_recv().ok();
        }
        task.events();
        task.export_round();
        task.feed_round();
        if last_collect.elapsed() > Duration::from_millis(50) || !task.has_work() {
            task.rib.collect();
            last_collect = Instant::now();
        }
    }
}

impl RibTask {
    fn handle(&mut self, c: RibCommand) {
        match c {
            RibCommand::AddPeer(settings, reply) => {
                let _ = reply.send(self.rib.add_peer(settings));
            }
            RibCommand::RemovePeer(idx) => {
                self.session_slot(idx).take();
                self.rib.remove_peer(idx);
            }
            RibCommand::SetPeer(idx, settings, reply) => {
                let _ = reply.send(self.rib.set_peer_settings(idx, settings));
            }
            RibCommand::Up { idx, info, queue, peer } => {
                self.rib.peer_up(idx, info);
                *self.session_slot(idx) = Some(Session { queue, peer });
            }
            RibCommand::Down { idx, keep_stale } => {
                self.session_slot(idx).take();
                self.rib.peer_down(idx, keep_stale);
            }
            RibCommand::PurgeStale(idx, families) => self.rib.purge_stale(idx, families),
            RibCommand::RefreshBegins(idx, f) => self.rib.refresh_begins(idx, f),
            RibCommand::RefreshRequested(idx, f) => self.rib.refresh_requested(idx, f),
            RibCommand::Updates(idx, updates) => {
                for u in &updates {
                    self.rib.apply_update(idx, u);
                }
            }
            RibCommand::Writable(_) => {}
            RibCommand::Originate(prefix, o) => self.rib.originate(prefix, &o),
            RibCommand::Withdraw(prefix) => self.rib.withdraw_origination(prefix),
            RibCommand::Subscribe(tx) => {
                let feed = self.rib.subscribe();
                self.feeds.push((feed, tx));
            }
            RibCommand::Counters(peers, reply) => {
                let _ = reply.send(peers.iter().map(|p| self.rib.counters(*p)).collect());
            }
            RibCommand::Routes(family, within, reply) => {
                let routes = self.rib.routes(family, |p| within.is_none_or(|w| w.contains(p)));
                let _ = reply.send(routes);
            }
            RibCommand::Summary(reply) => {
                let [v4, v6] = self.rib.prefix_counts();
                let _ = reply.send(RibSummary {
                    prefixes_v4: v4,
                    prefixes_v6: v6,
                    attribute_sets: self.rib.attribute_sets(),
                });
            }
            RibCommand::Stop => {}
        }
    }

    fn session_slot(&mut self, idx: PeerIdx) -> &mut Option<Session> {
        let i = usize::from(idx.0);
        if self.sessions.len() <= i {
            self.sessions.resize_with(i + 1, || None);
        }
        &mut self.sessions[i]
    }

    /// Tells sessions what the RIB found (a prefix limit exceeded).
    fn events(&mut self) {
        let mut events = std::mem::take(&mut self.undelivered);
        events.extend(self.rib.take_events());
        for e in events {
            match e {
                RibEvent::MaxPrefixes { peer, family, limit } => {
                    // A session that is gone no longer needs stopping.
                    let Some(Some(s)) = self.sessions.get(usize::from(peer.0)) else { continue };
                    let cmd = PeerCommand::MaxPrefixes { family, limit };
                    if let Err(mpsc::error::TrySendError::Full(_)) = s.peer.try_send(cmd) {
                        self.undelivered.push(e);
                    }
                }
            }
        }
    }

    /// Fills every session's queue that has room.
    fn export_round(&mut self) {
        for i in 0..self.sessions.len() {
            let Some(s) = &self.sessions[i] else { continue };
            let idx = PeerIdx(i as u16);
            let space = s.queue.space();
            if space == 0 {
                if self.rib.export_pending(idx) {
                    s.queue.block();
                }
                continue;
            }
            self.scratch.clear();
            let more = self.rib.export(idx, space, &mut self.scratch);
            if !self.scratch.is_empty() || more {
                s.queue.push(&mut self.scratch, more);
            }
        }
    }

    /// Sends best-path changes to subscribers.
    fn feed_round(&mut self) {
        let mut gone = Vec::new();
        for (i, (feed, tx)) in self.feeds.iter().enumerate() {
            if !self.rib.feed_pending(*feed) {
                continue;
            }
            let batch = self.rib.drain_feed(*feed, FEED_BATCH);
            if !batch.is_empty() && tx.send(batch).is_err() {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            let (feed, _) = self.feeds.remove(i);
            self.rib.unsubscribe(feed);
        }
    }

    /// Whether a round would do something without a new command: a session with routes to
    /// send and room to send them, or a feed with changes.
    fn has_work(&self) -> bool {
        let export = self.sessions.iter().enumerate().any(|(i, s)| {
            s.as_ref()
                .is_some_and(|s| s.queue.space() > 0 && self.rib.export_pending(PeerIdx(i as u16)))
        });
        let feeds = self.feeds.iter().any(|(feed, _)| self.rib.feed_pending(*feed));
        let events = !self.undelivered.is_empty();
        export || feeds || events
    }
}
