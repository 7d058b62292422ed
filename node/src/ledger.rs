//! The node's durable privacy-budget ledger (SQLite, `ledger.sqlite` in the
//! data directory). A job's cost is reserved before the node accepts it,
//! committed just before the node sends anything noise-bearing, and released
//! only when the job failed before that. An entry left reserved by a crash
//! stays counted as spent: the ledger may overstate spending, never understate
//! it.
//!
//! Costs are zCDP rho (they add up exactly under composition; see
//! `jointly_protocol::accounting`), stored in millionths rounded up, so sums
//! are exact integers and rounding always errs towards "spent".

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::NodeError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS budget_ledger (
    job_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    partner TEXT NOT NULL,
    period TEXT NOT NULL,
    query TEXT NOT NULL,
    exact INTEGER NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    rho_micro INTEGER NOT NULL,
    state TEXT NOT NULL,
    reserved_ms INTEGER NOT NULL,
    settled_ms INTEGER
);
CREATE INDEX IF NOT EXISTS ledger_by_budget ON budget_ledger (dataset, partner, period);
";

/// File name of the ledger inside the node's data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Reserved for a job that has not released anything yet, or whose node
    /// stopped before it could tell: counted as spent.
    Reserved,
    /// The node sent its noised share of the result: spent.
    Committed,
    /// The job failed before anything noise-bearing left the node: not spent.
    Released,
}

impl EntryState {
    fn as_str(self) -> &'static str {
        match self {
            EntryState::Reserved => "reserved",
            EntryState::Committed => "committed",
            EntryState::Released => "released",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "committed" => EntryState::Committed,
            "released" => EntryState::Released,
            // Anything unreadable counts as spent.
            _ => EntryState::Reserved,
        }
    }

    pub fn counts_as_spent(self) -> bool {
        self != EntryState::Released
    }
}

/// What one job costs one dataset's budget with one partner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Charge {
    pub job_id: String,
    pub dataset: String,
    pub partner: String,
    /// Budget period the job falls in, e.g. "2026-11".
    pub period: String,
    /// Query kind, e.g. "overlap".
    pub query: String,
    /// Exact jobs (test deployments) are listed but cost nothing: they have no
    /// privacy guarantee to account for.
    pub exact: bool,
    pub epsilon: f64,
    pub delta: f64,
    pub rho_micro: u64,
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

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Spent plus this job would exceed the budget (both in rho millionths).
    OverBudget { spent_micro: u64, budget_micro: u64 },
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
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|_| conn.execute_batch(SCHEMA))
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

    /// Reserves `charge` if what is spent in its budget, plus the charge, stays
    /// within `budget_micro`. Check and insert are one transaction, so two
    /// concurrent offers cannot both pass on the same remaining budget.
    pub fn reserve(&self, charge: &Charge, budget_micro: u64) -> Result<Result<(), Refusal>, NodeError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM budget_ledger WHERE job_id = ?1",
                    params![charge.job_id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Ok(Err(Refusal::Duplicate));
            }
            let spent = spent_in(&tx, &charge.dataset, &charge.partner, &charge.period)?;
            let cost = if charge.exact { 0 } else { charge.rho_micro };
            if spent.saturating_add(cost) > budget_micro {
                return Ok(Err(Refusal::OverBudget {
                    spent_micro: spent,
                    budget_micro,
                }));
            }
            tx.execute(
                "INSERT INTO budget_ledger (job_id, dataset, partner, period, query, exact, epsilon,
                     delta, rho_micro, state, reserved_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    charge.job_id,
                    charge.dataset,
                    charge.partner,
                    charge.period,
                    charge.query,
                    charge.exact,
                    charge.epsilon,
                    charge.delta,
                    cost as i64,
                    EntryState::Reserved.as_str(),
                    now_ms()
                ],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Marks the job's reservation spent. Called before the noised share leaves
    /// the node; returns false if the job had no open reservation.
    pub fn commit(&self, job_id: &str) -> Result<bool, NodeError> {
        self.settle(job_id, EntryState::Committed)
    }

    /// Gives back a reservation whose job failed before anything noise-bearing
    /// left the node. A committed entry stays committed.
    pub fn release(&self, job_id: &str) -> Result<bool, NodeError> {
        self.settle(job_id, EntryState::Released)
    }

    fn settle(&self, job_id: &str, to: EntryState) -> Result<bool, NodeError> {
        self.with(|conn| {
            let n = conn.execute(
                "UPDATE budget_ledger SET state = ?1, settled_ms = ?2 WHERE job_id = ?3 AND state = ?4",
                params![to.as_str(), now_ms(), job_id, EntryState::Reserved.as_str()],
            )?;
            Ok(n == 1)
        })
    }

    /// Rho millionths counted as spent in one budget.
    pub fn spent_micro(&self, dataset: &str, partner: &str, period: &str) -> Result<u64, NodeError> {
        self.with(|conn| spent_in(conn, dataset, partner, period))
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, NodeError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT job_id, dataset, partner, period, query, exact, epsilon, delta, rho_micro,
                        state, reserved_ms, settled_ms
                 FROM budget_ledger ORDER BY reserved_ms, job_id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Entry {
                    charge: Charge {
                        job_id: r.get(0)?,
                        dataset: r.get(1)?,
                        partner: r.get(2)?,
                        period: r.get(3)?,
                        query: r.get(4)?,
                        exact: r.get(5)?,
                        epsilon: r.get(6)?,
                        delta: r.get(7)?,
                        rho_micro: r.get::<_, i64>(8)?.max(0) as u64,
                    },
                    state: EntryState::parse(&r.get::<_, String>(9)?),
                    reserved_unix_ms: r.get(10)?,
                    settled_unix_ms: r.get(11)?,
                })
            })?;
            rows.collect()
        })
    }
}

fn spent_in(conn: &Connection, dataset: &str, partner: &str, period: &str) -> rusqlite::Result<u64> {
    let spent: i64 = conn.query_row(
        "SELECT COALESCE(SUM(rho_micro), 0) FROM budget_ledger
         WHERE dataset = ?1 AND partner = ?2 AND period = ?3 AND state != ?4",
        params![dataset, partner, period, EntryState::Released.as_str()],
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
            period: "2026-11".into(),
            query: "overlap".into(),
            exact: false,
            epsilon: 1.0,
            delta: 1e-6,
            rho_micro,
        }
    }

    #[test]
    fn reserve_commit_release_and_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        assert_eq!(ledger.reserve(&charge("a", 400), 1000).expect("db"), Ok(()));
        assert_eq!(ledger.reserve(&charge("b", 400), 1000).expect("db"), Ok(()));
        // Reserved entries count: a third job would overspend.
        assert_eq!(
            ledger.reserve(&charge("c", 400), 1000).expect("db"),
            Err(Refusal::OverBudget {
                spent_micro: 800,
                budget_micro: 1000
            })
        );
        assert_eq!(
            ledger.reserve(&charge("a", 1), 1000).expect("db"),
            Err(Refusal::Duplicate)
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
        assert_eq!(ledger.reserve(&charge("c", 600), 1000).expect("db"), Ok(()));
        // Other periods and partners have their own budgets.
        let mut other = charge("d", 900);
        other.period = "2026-12".into();
        assert_eq!(ledger.reserve(&other, 1000).expect("db"), Ok(()));
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
    fn a_reservation_survives_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let ledger = Ledger::open(dir.path()).expect("open");
            ledger
                .reserve(&charge("a", 700), 1000)
                .expect("db")
                .expect("room");
            // Dropped without commit or release, as a killed node would.
        }
        let ledger = Ledger::open(dir.path()).expect("reopen");
        assert_eq!(
            ledger.spent_micro("customers", "partner", "2026-11").expect("db"),
            700
        );
        assert!(matches!(
            ledger.reserve(&charge("b", 700), 1000).expect("db"),
            Err(Refusal::OverBudget { .. })
        ));
    }

    #[test]
    fn exact_jobs_are_listed_but_cost_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(dir.path()).expect("open");
        let mut exact = charge("a", 5000);
        exact.exact = true;
        assert_eq!(ledger.reserve(&exact, 0).expect("db"), Ok(()));
        assert_eq!(ledger.entries().expect("db")[0].charge.rho_micro, 0);
    }
}
