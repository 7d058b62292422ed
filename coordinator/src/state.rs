//! The coordinator's live state: attached nodes, running jobs and their
//! sessions. Durable state lives in the store; this is what a restart loses
//! (and the store then marks those jobs failed).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use jointly_protocol::wire::{CoordinatorMessage, DatasetInfo, SessionFrame, TranscriptPart};
use tokio::sync::mpsc;
use tonic::Status;

use crate::{config::CoordinatorConfig, job_event::JobEvent, store::Store};

pub type ToNode = mpsc::Sender<Result<CoordinatorMessage, Status>>;
pub type ToSession = mpsc::Sender<Result<SessionFrame, Status>>;
pub type SessionRx = mpsc::Receiver<Result<SessionFrame, Status>>;

/// Frames buffered per direction of a session before the sender waits.
pub const RELAY_FRAMES: usize = 4;

pub struct AttachedNode {
    /// Distinguishes a reconnection from the stream it replaces.
    pub connection: u64,
    pub to_node: ToNode,
    pub datasets: Vec<DatasetInfo>,
}

/// One side of a session the coordinator announced and waits for.
pub struct SessionSide {
    pub node: String,
    pub token: [u8; 32],
    /// Frames for this node; taken when the node joins.
    pub inbox: Option<SessionRx>,
}

pub struct SessionSlot {
    pub job_id: String,
    pub sides: [SessionSide; 2],
    /// `outboxes[i]` feeds side i; the pump of side `1 - i` writes into it.
    pub outboxes: [ToSession; 2],
    pub events: mpsc::Sender<JobEvent>,
}

/// A transcript fetch waiting for the node's upload stream.
pub struct Fetch {
    node: String,
    token: [u8; 32],
    /// Taken by the upload that presents the token: one upload per fetch.
    parts: Option<mpsc::Sender<TranscriptPart>>,
}

pub struct ActiveJob {
    pub nodes: [String; 2],
    pub events: mpsc::Sender<JobEvent>,
}

pub struct Coordinator {
    pub config: CoordinatorConfig,
    pub store: Store,
    /// The breakdown decryption table, loaded on first use.
    pub tables: crate::decrypt::TableCache,
    nodes: Mutex<HashMap<String, AttachedNode>>,
    jobs: Mutex<HashMap<String, ActiveJob>>,
    sessions: Mutex<HashMap<String, SessionSlot>>,
    /// Transcript fetches in flight, by request id: the node asked, the
    /// one-time token its upload stream must present, and where the parts go.
    fetches: Mutex<HashMap<u64, Fetch>>,
    next_connection: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps stay consistent across a panic elsewhere (each update is one insert
    // or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig, store: Store) -> Arc<Self> {
        Arc::new(Self {
            config,
            store,
            tables: Default::default(),
            nodes: Mutex::default(),
            jobs: Mutex::default(),
            sessions: Mutex::default(),
            fetches: Mutex::default(),
            next_connection: Default::default(),
        })
    }

    pub fn next_connection(&self) -> u64 {
        self.next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn attach(&self, name: &str, node: AttachedNode) {
        lock(&self.nodes).insert(name.to_string(), node);
    }

    /// Removes the node if `connection` is still its current one; returns the
    /// jobs it took part in, to fail them.
    pub fn detach(&self, name: &str, connection: u64) -> Vec<mpsc::Sender<JobEvent>> {
        let mut nodes = lock(&self.nodes);
        if nodes.get(name).map(|n| n.connection) != Some(connection) {
            return Vec::new();
        }
        nodes.remove(name);
        drop(nodes);
        lock(&self.jobs)
            .values()
            .filter(|j| j.nodes.iter().any(|n| n == name))
            .map(|j| j.events.clone())
            .collect()
    }

    /// The registered Ed25519 key of a node: the key its envelopes must
    /// verify under.
    pub fn registered_key(&self, name: &str) -> Option<Vec<u8>> {
        let node = self.config.nodes.iter().find(|n| n.name == name)?;
        node.key().ok().map(|k| k.to_bytes().to_vec())
    }

    /// Opens a transcript fetch: the node's upload, which must present the
    /// returned token, will deliver its parts on the receiver.
    pub fn open_fetch(&self, node: &str) -> (u64, [u8; 32], mpsc::Receiver<TranscriptPart>) {
        use rand::RngCore;
        let id = self
            .next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut token);
        let (tx, rx) = mpsc::channel(4);
        lock(&self.fetches).insert(
            id,
            Fetch {
                node: node.to_string(),
                token,
                parts: Some(tx),
            },
        );
        (id, token, rx)
    }

    pub fn close_fetch(&self, id: u64) {
        lock(&self.fetches).remove(&id);
    }

    /// Hands an upload stream the channel of the fetch it answers, if `node`
    /// (checked by the token) is the node the fetch asked, once.
    pub fn take_fetch(&self, id: u64, token: &[u8]) -> Option<(String, mpsc::Sender<TranscriptPart>)> {
        let mut fetches = lock(&self.fetches);
        let fetch = fetches.get_mut(&id)?;
        if !subtle_eq::ct_eq(&fetch.token, token) {
            return None;
        }
        Some((fetch.node.clone(), fetch.parts.take()?))
    }

    pub fn node_channel(&self, name: &str) -> Option<ToNode> {
        lock(&self.nodes).get(name).map(|n| n.to_node.clone())
    }

    pub fn node_datasets(&self, name: &str) -> Option<Vec<DatasetInfo>> {
        lock(&self.nodes).get(name).map(|n| n.datasets.clone())
    }

    pub fn is_attached(&self, name: &str) -> bool {
        lock(&self.nodes).contains_key(name)
    }

    pub fn add_job(&self, id: &str, job: ActiveJob) {
        lock(&self.jobs).insert(id.to_string(), job);
    }

    /// Cancels a job that has not finished: recorded first (so its task's
    /// outcome cannot overwrite it), then its task is told, which tells the
    /// nodes. False when the job had already finished.
    pub async fn cancel_job(&self, id: &str, reason: &str) -> Result<bool, crate::CoordinatorError> {
        if !self.store.cancel(id, reason).await? {
            return Ok(false);
        }
        let events = lock(&self.jobs).get(id).map(|j| j.events.clone());
        if let Some(events) = events {
            let event = JobEvent::Cancelled {
                reason: reason.to_string(),
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), events.send(event)).await;
        }
        Ok(true)
    }

    pub fn remove_job(&self, id: &str) {
        lock(&self.jobs).remove(id);
    }

    /// The event channel of a running job, if `node` takes part in it.
    pub fn job_events(&self, id: &str, node: &str) -> Option<mpsc::Sender<JobEvent>> {
        lock(&self.jobs)
            .get(id)
            .filter(|j| j.nodes.iter().any(|n| n == node))
            .map(|j| j.events.clone())
    }

    pub fn add_session(&self, id: &str, slot: SessionSlot) {
        lock(&self.sessions).insert(id.to_string(), slot);
    }

    pub fn remove_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Binds a node's session stream: checks the one-time token in constant
    /// time and hands out the side's inbox, the peer's outbox and the job's events.
    pub fn join_session(
        &self,
        session_id: &str,
        token: &[u8],
    ) -> Result<(String, String, SessionRx, ToSession, mpsc::Sender<JobEvent>), Status> {
        use subtle_eq::ct_eq;
        let mut sessions = lock(&self.sessions);
        let slot = sessions
            .get_mut(session_id)
            .ok_or_else(|| Status::not_found("no such session (it may have ended)"))?;
        let side = slot
            .sides
            .iter()
            .position(|s| ct_eq(&s.token, token))
            .ok_or_else(|| Status::permission_denied("session token does not match"))?;
        let inbox = slot.sides[side]
            .inbox
            .take()
            .ok_or_else(|| Status::already_exists("this side of the session has already joined"))?;
        Ok((
            slot.job_id.clone(),
            slot.sides[side].node.clone(),
            inbox,
            slot.outboxes[1 - side].clone(),
            slot.events.clone(),
        ))
    }
}

mod subtle_eq {
    /// Constant-time equality of two byte strings of equal length.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
