//! What a node has promised on one connection to the coordinator: offers it
//! is deciding, offers it accepted and waits to start, and sessions running.
//! Each holds a session slot (`limits.max_sessions`) and, once accepted, a
//! budget reservation. An accepted offer that never starts (its start or
//! cancel was lost) expires, so neither the slot nor the budget leaks.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use jointly_protocol::wire::JobOffer;
use tokio::task::JoinHandle;

use crate::decision::Accepted;

/// An accepted offer waiting for its session to start.
pub struct Pending {
    pub offer: JobOffer,
    pub accepted: Accepted,
    since: Instant,
}

#[derive(Default)]
pub struct Slots {
    deciding: HashSet<String>,
    /// Cancels that came while their offer was still being decided.
    cancelled: HashSet<String>,
    accepted: HashMap<String, Pending>,
    sessions: HashMap<String, JoinHandle<()>>,
}

impl Slots {
    /// Slots taken: offers being decided, accepted, and sessions running.
    pub fn busy(&self) -> usize {
        self.deciding.len()
            + self.accepted.len()
            + self.sessions.values().filter(|h| !h.is_finished()).count()
    }

    /// Takes a slot for an offer being decided; false if the job is already
    /// known here (a replayed offer).
    pub fn decide(&mut self, job_id: &str) -> bool {
        let known = self.deciding.contains(job_id)
            || self.accepted.contains_key(job_id)
            || self.sessions.contains_key(job_id);
        !known && self.deciding.insert(job_id.to_string())
    }

    /// Ends a decision. An accepted offer is kept unless a cancel came in
    /// the meantime; returns whether it was kept (false: give its budget
    /// back).
    pub fn decided(&mut self, job_id: &str, accepted: Option<(JobOffer, Accepted)>) -> bool {
        self.deciding.remove(job_id);
        let cancelled = self.cancelled.remove(job_id);
        match accepted {
            Some((offer, accepted)) if !cancelled => {
                self.accepted.insert(
                    job_id.to_string(),
                    Pending {
                        offer,
                        accepted,
                        since: Instant::now(),
                    },
                );
                true
            }
            _ => false,
        }
    }

    /// The accepted offer a start names.
    pub fn start(&mut self, job_id: &str) -> Option<Pending> {
        self.accepted.remove(job_id)
    }

    pub fn running(&mut self, job_id: &str, task: JoinHandle<()>) {
        self.sessions.retain(|_, h| !h.is_finished());
        self.sessions.insert(job_id.to_string(), task);
    }

    /// Forgets a job the coordinator cancelled; returns its session task, if
    /// one runs, to abort.
    pub fn cancel(&mut self, job_id: &str) -> Option<JoinHandle<()>> {
        if self.deciding.contains(job_id) {
            self.cancelled.insert(job_id.to_string());
        }
        self.accepted.remove(job_id);
        self.sessions.remove(job_id)
    }

    /// Removes and returns accepted offers older than `max_age`.
    pub fn expire(&mut self, max_age: Duration) -> Vec<String> {
        let old: Vec<String> = self
            .accepted
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= max_age)
            .map(|(job, _)| job.clone())
            .collect();
        for job in &old {
            self.accepted.remove(job);
        }
        old
    }

    /// Everything, when the connection ends: running sessions to abort and
    /// every job whose budget must be given back.
    pub fn drain(&mut self) -> (Vec<(String, JoinHandle<()>)>, Vec<String>) {
        let sessions = self.sessions.drain().collect();
        let accepted = self.accepted.drain().map(|(job, _)| job).collect();
        (sessions, accepted)
    }
}
