//! The node's durable privacy-budget ledger (SQLite, `ledger.sqlite` in the
//! data directory). A job's cost is reserved before the node accepts it, in
//! one entry per dataset the job reads. Its part that protects the node's
//! data from its peer (the cover on its lists) is spent the moment the first
//! message leaves ([`Ledger::start`]); the rest when the node sends its
//! release ([`Ledger::commit`]). A job that fails gives back only what had
//! not left ([`Ledger::release`]). An entry left reserved by a crash stays
//! counted as spent: the ledger may overstate spending, never understate it.
//!
//! Costs are zCDP rho (they add up exactly under composition; see
//! `jointly_protocol::privacy::accounting`), stored in millionths rounded up, so sums
//! are exact integers and rounding always errs towards "spent".
//!
//! The same file keeps the planner requests that created jobs here, so a
//! coordinator that replays a signed request gets no second job from it.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::NodeError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS budget_charges (
    job_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    partner TEXT NOT NULL,
    budget_partner TEXT NOT NULL,
    period TEXT NOT NULL,
    query TEXT NOT NULL,
    exact INTEGER NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    delta_tail REAL NOT NULL DEFAULT 0,
    rho_micro INTEGER NOT NULL,
    view_micro INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reserved_ms INTEGER NOT NULL,
    settled_ms INTEGER,
    PRIMARY KEY (job_id, dataset)
);
CREATE INDEX IF NOT EXISTS charges_by_budget ON budget_charges (dataset, budget_partner, period);
CREATE TABLE IF NOT EXISTS planner_requests (
    principal TEXT NOT NULL,
    nonce BLOB NOT NULL,
    job_id TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, nonce)
);
";

/// The first layout had one entry per job and no pools or phases: its rows
/// move to the new table once (partner = budget, everything spent as stated).
const MIGRATE_V1: &str = "
INSERT OR IGNORE INTO budget_charges (job_id, dataset, partner, budget_partner, period, query, exact,
    epsilon, delta, rho_micro, view_micro, state, reserved_ms, settled_ms)
SELECT job_id, dataset, partner, partner, period, query, exact, epsilon, delta, rho_micro, 0, state,
    reserved_ms, settled_ms FROM budget_ledger;
DROP TABLE budget_ledger;
";

/// File name of the ledger inside the node's data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Reserved for a job that has sent nothing yet, or whose node stopped
    /// before it could tell: counted as spent.
    Reserved,
    /// The session sent its first message: the peer-view part is spent, the
    /// rest still reserved; all counted as spent.
    Started,
    /// The node sent its release: spent.
    Committed,
    /// The job failed before anything left the node: not spent.
    Released,
    /// The job failed after its session started: the peer-view part is
    /// spent, the rest given back.
    Partial,
}

impl EntryState {
    fn as_str(self) -> &'static str {
        match self {
            EntryState::Reserved => "reserved",
            EntryState::Started => "started",
            EntryState::Committed => "committed",
            EntryState::Released => "released",
            EntryState::Partial => "partial",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "started" => EntryState::Started,
            "committed" => EntryState::Committed,
            "released" => EntryState::Released,
            "partial" => EntryState::Partial,
            // Anything unreadable counts as spent.
            _ => EntryState::Reserved,
        }
    }

    /// Rho millionths this entry counts as spent.
    pub fn spent_of(self, charge: &Charge) -> u64 {
        match self {
            EntryState::Released => 0,
            EntryState::Partial => charge.view_micro,
            EntryState::Reserved | EntryState::Started | EntryState::Committed => charge.rho_micro,
        }
    }
}

/// What one job costs one dataset's budget with one partner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Charge {
    pub job_id: String,
    pub dataset: String,
    pub partner: String,
    /// The budget the charge counts against: the partner's own entry, or
    /// "*", the pool every partner without its own entry shares.
    pub budget_partner: String,
    /// Budget period the job falls in, e.g. "2026-11".
    pub period: String,
    /// Query kind, e.g. "overlap".
    pub query: String,
    /// Exact jobs (test deployments) are listed but cost nothing: they have no
    /// privacy guarantee to account for.
    pub exact: bool,
    pub epsilon: f64,
    pub delta: f64,
    /// What truncating the cover's counts adds to delta (below 1e-20).
    pub delta_tail: f64,
    pub rho_micro: u64,
    /// The part of `rho_micro` that protects this node's data from its peer,
    /// spent when the session's first message leaves.
    pub view_micro: u64,
}

/// A ledger line as `jointly-node budget` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub charge: Charge,
    pub state: EntryState,
    pub reserved_unix_ms: i64,
    pub settled_unix_ms: Option<i64>,
}

impl Entry {
    /// Rho millionths this entry counts as spent.
    pub fn spent_micro(&self) -> u64 {
        self.state.spent_of(&self.charge)
    }
}

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveDenied {
    /// Spent plus this job would exceed the budget of `dataset` (both in rho
    /// millionths).
    OverBudget {
        dataset: String,
        spent_micro: u64,
        budget_micro: u64,
    },
    /// The job already has an entry (a replayed offer).
    Duplicate,
}

pub struct Ledger {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ledger {
    /// Opens (or creates) the ledger in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, NodeError> {
        let path = data_dir.join(LEDGER_FILE);
        let conn = Connection::open(&path).map_err(|e| ledger_error(&path, e))?;
        // FULL: a commit must survive power loss, since a lost commit would
        // understate spending.
        // Another process reading or writing the ledger (`jointly-node
        // budget`, a backup) makes a write wait, not fail.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .and_then(|_| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|_| conn.execute_batch(SCHEMA))
            .and_then(|_| migrate(&conn))
            .map_err(|e| ledger_error(&path, e))?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, NodeError> {
        let mut guard = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard).map_err(|e| ledger_error(&self.path, e))
    }

    /// Reserves every charge of one job if each budget, with what is spent in
    /// it, still holds its charge; `budgets_micro[i]` is the budget of
    /// `charges[i]`. All or nothing, in one transaction, so two concurrent
    /// offers cannot both pass on the same remaining budget.
    pub fn reserve(
        &self,
        charges: &[Charge],
        budgets_micro: &[u64],
    ) -> Result<Result<(), ReserveDenied>, NodeError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (charge, &budget_micro) in charges.iter().zip(budgets_micro) {
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM budget_charges WHERE job_id = ?1",
                        params![charge.job_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_some() {
                    return Ok(Err(ReserveDenied::Duplicate));
                }
                let spent = spent_in(&tx, &charge.dataset, &charge.budget_partner, &charge.period)?;
                let cost = if charge.exact { 0 } else { charge.rho_micro };
                if spent.saturating_add(cost) > budget_micro {
                    return Ok(Err(ReserveDenied::OverBudget {
                        dataset: charge.dataset.clone(),
                        spent_micro: spent,
                        budget_micro,
                    }));
                }
            }
            for charge in charges {
                let (cost, view) = if charge.exact {
                    (0, 0)
                } else {
                    (charge.rho_micro, charge.view_micro.min(charge.rho_micro))
                };
                tx.execute(
                    "INSERT INTO budget_charges (job_id, dataset, partner, budget_partner, period, query,
                         exact, epsilon, delta, delta_tail, rho_micro, view_micro, state, reserved_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![
                        charge.job_id,
                        charge.dataset,
                        charge.partner,
                        charge.budget_partner,
                        charge.period,
                        charge.query,
                        charge.exact,
                        charge.epsilon,
                        charge.delta,
                        charge.delta_tail,
                        cost as i64,
                        view as i64,
                        EntryState::Reserved.as_str(),
                        now_ms()
                    ],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Marks the peer-view part of the job's charges spent. Called before the
    /// session's first message leaves the node; returns false if the job had
    /// no reservation to start.
    pub fn start(&self, job_id: &str) -> Result<bool, NodeError> {
        self.settle(job_id, &[EntryState::Reserved], EntryState::Started)
    }

    /// Marks the job's charges spent. Called before the release leaves the
    /// node; returns false if the job had no open reservation.
    pub fn commit(&self, job_id: &str) -> Result<bool, NodeError> {
        self.settle(
            job_id,
            &[EntryState::Reserved, EntryState::Started],
            EntryState::Committed,
        )
    }

    /// Gives back what a failed job had not spent: all of it before its
    /// session started, the part beyond the peer view after. A committed
    /// entry stays committed.
    pub fn release(&self, job_id: &str) -> Result<bool, NodeError> {
        let released = self.settle(job_id, &[EntryState::Reserved], EntryState::Released)?;
        let partial = self.settle(job_id, &[EntryState::Started], EntryState::Partial)?;
        Ok(released || partial)
    }

    fn settle(&self, job_id: &str, from: &[EntryState], to: EntryState) -> Result<bool, NodeError> {
        self.with(|conn| {
            let mut changed = 0;
            for f in from {
                changed += conn.execute(
                    "UPDATE budget_charges SET state = ?1, settled_ms = ?2 WHERE job_id = ?3 AND state = ?4",
                    params![to.as_str(), now_ms(), job_id, f.as_str()],
                )?;
            }
            Ok(changed > 0)
        })
    }

    /// Rho millionths counted as spent in one budget (`budget_partner` is a
    /// partner's own budget or "*").
    pub fn spent_micro(&self, dataset: &str, budget_partner: &str, period: &str) -> Result<u64, NodeError> {
        self.with(|conn| spent_in(conn, dataset, budget_partner, period))
    }

    /// Records the planner request that created `job_id`; false when the
    /// same request (principal and nonce) already created a job here.
    pub fn record_request(&self, principal: &str, nonce: &[u8], job_id: &str) -> Result<bool, NodeError> {
        self.with(|conn| {
            let n = conn.execute(
                "INSERT INTO planner_requests (principal, nonce, job_id, seen_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (principal, nonce) DO NOTHING",
                params![principal, nonce, job_id, now_ms()],
            )?;
            Ok(n == 1)
        })
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, NodeError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT job_id, dataset, partner, budget_partner, period, query, exact, epsilon, delta,
                        delta_tail, rho_micro, view_micro, state, reserved_ms, settled_ms
                 FROM budget_charges ORDER BY reserved_ms, job_id, dataset",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Entry {
                    charge: Charge {
                        job_id: r.get(0)?,
                        dataset: r.get(1)?,
                        partner: r.get(2)?,
                        budget_partner: r.get(3)?,
                        period: r.get(4)?,
                        query: r.get(5)?,
                        exact: r.get(6)?,
                        epsilon: r.get(7)?,
                        delta: r.get(8)?,
                        delta_tail: r.get(9)?,
                        rho_micro: r.get::<_, i64>(10)?.max(0) as u64,
                        view_micro: r.get::<_, i64>(11)?.max(0) as u64,
                    },
                    state: EntryState::parse(&r.get::<_, String>(12)?),
                    reserved_unix_ms: r.get(13)?,
                    settled_unix_ms: r.get(14)?,
                })
            })?;
            rows.collect()
        })
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let old: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_ledger'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if old.is_some() {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {MIGRATE_V1} COMMIT;"))?;
    }
    Ok(())
}

fn spent_in(conn: &Connection, dataset: &str, budget_partner: &str, period: &str) -> rusqlite::Result<u64> {
    let spent: i64 = conn.query_row(
        "SELECT COALESCE(SUM(CASE state WHEN ?4 THEN 0 WHEN ?5 THEN view_micro ELSE rho_micro END), 0)
         FROM budget_charges WHERE dataset = ?1 AND budget_partner = ?2 AND period = ?3",
        params![
            dataset,
            budget_partner,
            period,
            EntryState::Released.as_str(),
            EntryState::Partial.as_str()
        ],
        |r| r.get(0),
    )?;
    Ok(spent.max(0) as u64)
}

fn ledger_error(path: &Path, e: rusqlite::Error) -> NodeError {
    NodeError::DataDir {
        path: path.to_path_buf(),
        message: format!("budget ledger: {e}; check the file is writable and not corrupt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(job: &str, rho_micro: u64) -> Charge {
        Charge {
            job_id: job.into(),
            dataset: "customers".into(),
            partner: "partner".into(),
            budget_partner: "partner".into(),
            period: "2026-11".into(),
            query: "overlap".into(),
            exact: false,
            epsilon: 1.0,
            delta: 1e-6,
            delta_tail: 0.0,
            rho_micro,
            view_micro: rho_micro / 4,
        }
    }

    fn reserve(ledger: &Ledger, c: Charge, budget: u64) -> Result<(), ReserveDenied> {
        ledger.reserve(&[c], &[budget]).expect("db")
    }

    #[test]
    fn reserve_commit_release_and_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        assert_eq!(reserve(&ledger, charge("a", 400), 1000), Ok(()));
        assert_eq!(reserve(&ledger, charge("b", 400), 1000), Ok(()));
        // Reserved entries count: a third job would overspend.
        assert_eq!(
            reserve(&ledger, charge("c", 400), 1000),
            Err(ReserveDenied::OverBudget {
                dataset: "customers".into(),
                spent_micro: 800,
                budget_micro: 1000
            })
        );
        assert_eq!(
            reserve(&ledger, charge("a", 1), 1000),
            Err(ReserveDenied::Duplicate)
        );
        assert!(ledger.commit("a").expect("db"));
        // A failed job gives its reservation back; a committed one cannot.
        assert!(ledger.release("b").expect("db"));
        assert!(!ledger.release("a").expect("db"));
        assert!(!ledger.commit("b").expect("db"));
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            400
        );
        assert_eq!(reserve(&ledger, charge("c", 600), 1000), Ok(()));
        // Other periods and partners have their own budgets.
        let mut other = charge("d", 900);
        other.period = "2026-12".into();
        assert_eq!(reserve(&ledger, other, 1000), Ok(()));
        let states: Vec<_> = ledger
            .entries()
            .expect("db")
            .into_iter()
            .map(|e| (e.charge.job_id, e.state))
            .collect();
        assert_eq!(
            states,
            [
                ("a".to_string(), EntryState::Committed),
                ("b".to_string(), EntryState::Released),
                ("c".to_string(), EntryState::Reserved),
                ("d".to_string(), EntryState::Reserved),
            ]
        );
    }

    #[test]
    fn a_failure_after_the_start_keeps_the_peer_view_spent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        reserve(&ledger, charge("a", 400), 1000).expect("room");
        assert!(ledger.start("a").expect("db"));
        assert!(!ledger.start("a").expect("db"), "started once");
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            400
        );
        assert!(ledger.release("a").expect("db"));
        // The cover on the lists already left the node: its 100 stay spent.
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            100
        );
        assert_eq!(ledger.entries().expect("db")[0].state, EntryState::Partial);
        assert!(!ledger.commit("a").expect("db"));
    }

    #[test]
    fn a_pooled_budget_is_shared_by_every_partner_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        let pooled = |job: &str, partner: &str| Charge {
            partner: partner.into(),
            budget_partner: "*".into(),
            ..charge(job, 600)
        };
        assert_eq!(reserve(&ledger, pooled("a", "shop"), 1000), Ok(()));
        assert!(matches!(
            reserve(&ledger, pooled("b", "travel"), 1000),
            Err(ReserveDenied::OverBudget { spent_micro: 600, .. })
        ));
    }

    #[test]
    fn a_job_over_two_datasets_fits_both_or_neither() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        let conversions = |job: &str| Charge {
            dataset: "conversions".into(),
            ..charge(job, 500)
        };
        reserve(&ledger, conversions("x"), 1000).expect("room");
        let both = [charge("y", 500), conversions("y")];
        assert!(matches!(
            ledger.reserve(&both, &[1000, 900]).expect("db"),
            Err(ReserveDenied::OverBudget { ref dataset, .. }) if dataset == "conversions"
        ));
        // Nothing of the refused job was kept.
        assert_eq!(ledger.entries().expect("db").len(), 1);
        assert_eq!(ledger.reserve(&both, &[1000, 1000]).expect("db"), Ok(()));
        assert!(ledger.commit("y").expect("db"));
        assert_eq!(
            ledger
                .spent_micro("conversions", "partner", "2026-11")
                .expect("db"),
            1000
        );
    }

    #[test]
    fn a_reservation_survives_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            reserve(&ledger, charge("a", 700), 1000).expect("room");
            // Dropped without commit or release, as a killed node would.
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            700
        );
        assert!(matches!(
            reserve(&ledger, charge("b", 700), 1000),
            Err(ReserveDenied::OverBudget { .. })
        ));
    }

    #[test]
    fn exact_jobs_are_listed_but_cost_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        let mut exact = charge("a", 5000);
        exact.exact = true;
        assert_eq!(reserve(&ledger, exact, 0), Ok(()));
        assert_eq!(ledger.entries().expect("db")[0].charge.rho_micro, 0);
    }

    #[test]
    fn a_first_layout_ledger_is_carried_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join(LEDGER_FILE)).expect("db");
            conn.execute_batch(
                "CREATE TABLE budget_ledger (job_id TEXT PRIMARY KEY, dataset TEXT NOT NULL,
                    partner TEXT NOT NULL, period TEXT NOT NULL, query TEXT NOT NULL,
                    exact INTEGER NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL,
                    rho_micro INTEGER NOT NULL, state TEXT NOT NULL, reserved_ms INTEGER NOT NULL,
                    settled_ms INTEGER);
                 INSERT INTO budget_ledger VALUES
                    ('old', 'customers', 'partner', '2026-11', 'overlap', 0, 1.0, 1e-6, 321,
                     'committed', 5, 6);",
            )
            .expect("old layout");
        }
        let ledger = Ledger::open(dir.path()).expect("open migrates");
        let entries = ledger.entries().expect("db");
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].charge.rho_micro, entries[0].state),
            (321, EntryState::Committed)
        );
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            321
        );
        drop(ledger);
        Ledger::open(dir.path()).expect("reopens without migrating twice");
    }

    #[test]
    fn a_signed_request_creates_one_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        assert!(ledger.record_request("alice", &[1; 16], "job-1").expect("db"));
        assert!(!ledger.record_request("alice", &[1; 16], "job-2").expect("db"));
        assert!(ledger.record_request("alice", &[2; 16], "job-2").expect("db"));
        assert!(ledger.record_request("bob", &[1; 16], "job-3").expect("db"));
    }
}
