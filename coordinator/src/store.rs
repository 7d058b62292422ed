//! Durable job state in SQLite. A job is written before anything runs; a job
//! that was pending or running when the coordinator stopped is marked failed
//! (retryable) at the next start, so nothing is ever left half-released.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use jointly_protocol::wire::{Job, JobState, QueryResult, QuerySpec};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::CoordinatorError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    state INTEGER NOT NULL,
    spec BLOB NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    retryable INTEGER NOT NULL DEFAULT 0,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    result BLOB
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_ms DESC);
CREATE TABLE IF NOT EXISTS transcripts (
    job_id TEXT NOT NULL,
    node TEXT NOT NULL,
    session_id TEXT NOT NULL,
    shared_sha256 BLOB NOT NULL,
    shared_bytes INTEGER NOT NULL,
    summary_sha256 BLOB NOT NULL,
    indexed_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, node)
);
";

/// Columns added since the first schema, added to an older database as it
/// opens (SQLite has no ADD COLUMN IF NOT EXISTS).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("jobs", "progress_permille", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("jobs", "organisation", "TEXT NOT NULL DEFAULT ''"),
    ("jobs", "workspace", "TEXT NOT NULL DEFAULT ''"),
];

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!(
            "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
        ))?;
        if !stmt.exists(params![column])? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
        }
    }
    Ok(())
}

/// Opens the database with its schema, as the coordinator and its operator
/// commands (which may run beside it) both do.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(crate::registry::SCHEMA)?;
    migrate(&conn)?;
    Ok(conn)
}

/// Who a job belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub principal: String,
    pub organisation: String,
    pub workspace: String,
}

/// Which jobs a listing may show: those of some workspaces, or all.
#[derive(Clone, Debug)]
pub enum Workspaces {
    All,
    Only(Vec<String>),
}

/// Where a node keeps a job's transcript, as the coordinator indexes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptEntry {
    pub session_id: String,
    pub shared_sha256: Vec<u8>,
    pub shared_bytes: u64,
    pub summary_sha256: Vec<u8>,
}

#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the database and fails every job a previous run left
    /// unfinished.
    pub fn open(path: &Path) -> Result<Self, CoordinatorError> {
        let err = |e: rusqlite::Error| CoordinatorError::Database {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CoordinatorError::Database {
                path: path.to_path_buf(),
                message: format!("cannot create its directory: {e}"),
            })?;
        }
        let conn = open_connection(path).map_err(err)?;
        let interrupted = conn
            .execute(
                "UPDATE jobs SET state = ?1, error = ?2, retryable = 1, finished_ms = ?3
                 WHERE state IN (?4, ?5)",
                params![
                    JobState::Failed as i32,
                    "the coordinator stopped while this job ran; nothing was released. Run the query again",
                    now_ms(),
                    JobState::Pending as i32,
                    JobState::Running as i32
                ],
            )
            .map_err(err)?;
        if interrupted > 0 {
            tracing::warn!(
                jobs = interrupted,
                "jobs interrupted by a coordinator restart marked failed (retryable)"
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs a database call on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, CoordinatorError> {
        let conn = Arc::clone(&self.conn);
        let path = self.path.clone();
        let fail = move |message: String| CoordinatorError::Database {
            path: path.clone(),
            message,
        };
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&guard)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(fail)
    }

    pub async fn insert(&self, id: &str, spec: &QuerySpec, owner: &Owner) -> Result<Job, CoordinatorError> {
        let job = Job {
            job_id: id.to_string(),
            state: JobState::Pending.into(),
            spec: Some(spec.clone()),
            created_unix_ms: now_ms(),
            owner: owner.principal.clone(),
            organisation: owner.organisation.clone(),
            workspace: owner.workspace.clone(),
            ..Job::default()
        };
        let (id, created, blob, owner) = (
            job.job_id.clone(),
            job.created_unix_ms,
            spec.encode_to_vec(),
            owner.clone(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO jobs (id, created_ms, state, spec, owner, organisation, workspace)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    created,
                    JobState::Pending as i32,
                    blob,
                    owner.principal,
                    owner.organisation,
                    owner.workspace
                ],
            )
        })
        .await?;
        Ok(job)
    }

    /// Marks a job that has not finished cancelled; false when it had.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<bool, CoordinatorError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = ?2, error = ?3, retryable = 0, finished_ms = ?4
                 WHERE id = ?1 AND state IN (?5, ?6)",
                params![
                    id,
                    JobState::Cancelled as i32,
                    reason,
                    now_ms(),
                    JobState::Pending as i32,
                    JobState::Running as i32
                ],
            )
        })
        .await
        .map(|n| n > 0)
    }

    pub async fn principal(
        &self,
        name: &str,
    ) -> Result<Option<crate::registry::Principal>, CoordinatorError> {
        let name = name.to_string();
        self.registry(move |c| crate::registry::get(c, &name)).await
    }

    pub async fn record_nonce(
        &self,
        principal: &str,
        nonce: &[u8],
        now_ms: i64,
    ) -> Result<bool, CoordinatorError> {
        let (principal, nonce) = (principal.to_string(), nonce.to_vec());
        self.registry(move |c| crate::registry::record_nonce(c, &principal, &nonce, now_ms))
            .await
    }

    /// Runs a registry call on a blocking thread; its own errors stay typed.
    pub async fn registry<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, crate::registry::RegistryError> + Send + 'static,
    ) -> Result<T, CoordinatorError> {
        let inner = self.call(move |c| Ok(f(c))).await?;
        inner.map_err(CoordinatorError::Registry)
    }

    pub async fn set_running(&self, id: &str) -> Result<(), CoordinatorError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = ?2 WHERE id = ?1 AND state = ?3",
                params![id, JobState::Running as i32, JobState::Pending as i32],
            )
        })
        .await
        .map(drop)
    }

    /// Thousandths of the job's work done: a fraction, never a size.
    pub async fn set_progress(&self, id: &str, permille: u32) -> Result<(), CoordinatorError> {
        let id = id.to_string();
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET progress_permille = ?2 WHERE id = ?1",
                params![id, permille.min(1000)],
            )
        })
        .await
        .map(drop)
    }

    pub async fn succeed(&self, id: &str, result: &QueryResult) -> Result<(), CoordinatorError> {
        let (id, blob) = (id.to_string(), result.encode_to_vec());
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = ?2, result = ?3, finished_ms = ?4, progress_permille = 1000
                 WHERE id = ?1 AND state IN (?5, ?6)",
                params![
                    id,
                    JobState::Succeeded as i32,
                    blob,
                    now_ms(),
                    JobState::Pending as i32,
                    JobState::Running as i32
                ],
            )
        })
        .await
        .map(drop)
    }

    pub async fn fail(&self, id: &str, error: &str, retryable: bool) -> Result<(), CoordinatorError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.call(move |c| {
            c.execute(
                // A job cancelled meanwhile stays cancelled.
                "UPDATE jobs SET state = ?2, error = ?3, retryable = ?4, finished_ms = ?5
                 WHERE id = ?1 AND state IN (?6, ?7)",
                params![
                    id,
                    JobState::Failed as i32,
                    error,
                    retryable,
                    now_ms(),
                    JobState::Pending as i32,
                    JobState::Running as i32
                ],
            )
        })
        .await
        .map(drop)
    }

    pub async fn index_transcript(
        &self,
        job_id: &str,
        node: &str,
        entry: TranscriptEntry,
    ) -> Result<(), CoordinatorError> {
        let (job_id, node) = (job_id.to_string(), node.to_string());
        let (job, who) = (job_id.clone(), node.clone());
        // An entry is never replaced: the first copy a node indexed is the
        // one auditors get, whatever it reports later.
        let inserted = self
            .call(move |c| {
                c.execute(
                    "INSERT INTO transcripts
                 (job_id, node, session_id, shared_sha256, shared_bytes, summary_sha256, indexed_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (job_id, node) DO NOTHING",
                    params![
                        job_id,
                        node,
                        entry.session_id,
                        entry.shared_sha256,
                        entry.shared_bytes as i64,
                        entry.summary_sha256,
                        now_ms()
                    ],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(CoordinatorError::AlreadyIndexed { job, node: who });
        }
        Ok(())
    }

    pub async fn transcript(
        &self,
        job_id: &str,
        node: &str,
    ) -> Result<Option<TranscriptEntry>, CoordinatorError> {
        let (job_id, node) = (job_id.to_string(), node.to_string());
        self.call(move |c| {
            c.query_row(
                "SELECT session_id, shared_sha256, shared_bytes, summary_sha256 FROM transcripts
                 WHERE job_id = ?1 AND node = ?2",
                params![job_id, node],
                |r| {
                    Ok(TranscriptEntry {
                        session_id: r.get(0)?,
                        shared_sha256: r.get(1)?,
                        shared_bytes: r.get::<_, i64>(2)? as u64,
                        summary_sha256: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Job, CoordinatorError> {
        let key = id.to_string();
        let row = self
            .call(move |c| {
                c.query_row(&format!("{SELECT} WHERE id = ?1"), params![key], row_to_job)
                    .optional()
            })
            .await?;
        row.ok_or_else(|| CoordinatorError::UnknownJob(id.to_string()))
    }

    /// The newest `limit` jobs of `workspaces`.
    pub async fn list(&self, limit: u32, workspaces: Workspaces) -> Result<Vec<Job>, CoordinatorError> {
        self.call(move |c| {
            let (filter, names) = match workspaces {
                Workspaces::All => (String::new(), Vec::new()),
                Workspaces::Only(names) => {
                    let marks = (0..names.len())
                        .map(|i| format!("?{}", i + 2))
                        .collect::<Vec<_>>();
                    (format!("WHERE workspace IN ({})", marks.join(", ")), names)
                }
            };
            let mut stmt = c.prepare(&format!(
                "{SELECT} {filter} ORDER BY created_ms DESC, id LIMIT ?1"
            ))?;
            let mut values: Vec<rusqlite::types::Value> = vec![i64::from(limit).into()];
            values.extend(names.into_iter().map(Into::into));
            let rows = stmt.query_map(rusqlite::params_from_iter(values), row_to_job)?;
            rows.collect()
        })
        .await
    }
}

const SELECT: &str =
    "SELECT id, created_ms, finished_ms, state, spec, error, retryable, progress_permille, result,
    owner, organisation, workspace FROM jobs";

fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let spec: Vec<u8> = row.get(4)?;
    let result: Option<Vec<u8>> = row.get(8)?;
    Ok(Job {
        job_id: row.get(0)?,
        created_unix_ms: row.get(1)?,
        finished_unix_ms: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
        state: row.get(3)?,
        // Written by this module from typed values; a row that fails to decode
        // shows as an empty spec rather than failing the listing.
        spec: QuerySpec::decode(spec.as_slice()).ok(),
        error: row.get(5)?,
        retryable: row.get(6)?,
        progress_permille: row.get::<_, i64>(7)?.clamp(0, 1000) as u32,
        result: result.and_then(|r| QueryResult::decode(r.as_slice()).ok()),
        owner: row.get(9)?,
        organisation: row.get(10)?,
        workspace: row.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_survive_restart_and_unfinished_fail() {
        let dir = std::env::temp_dir().join(format!("jointly-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.db");
        let store = Store::open(&path).expect("open");
        let spec = QuerySpec::default();
        let owner = |w: &str| Owner {
            principal: "alice".into(),
            organisation: "bank".into(),
            workspace: w.into(),
        };
        store.insert("a", &spec, &owner("x")).await.expect("insert");
        store.insert("b", &spec, &owner("y")).await.expect("insert");
        store.set_running("b").await.expect("running");
        let result = QueryResult::default();
        store.succeed("a", &result).await.expect("succeed");
        drop(store);

        let store = Store::open(&path).expect("reopen");
        let a = store.get("a").await.expect("a");
        assert_eq!(a.state, JobState::Succeeded as i32);
        assert!(a.result.is_some());
        let b = store.get("b").await.expect("b");
        assert_eq!(b.state, JobState::Failed as i32);
        assert!(b.retryable);
        assert!(b.error.contains("coordinator stopped"));
        assert_eq!(store.list(10, Workspaces::All).await.expect("list").len(), 2);
        let only_x = store
            .list(10, Workspaces::Only(vec!["x".into()]))
            .await
            .expect("list x");
        assert_eq!(
            only_x.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(only_x[0].owner, "alice");
        assert!(
            store
                .list(10, Workspaces::Only(Vec::new()))
                .await
                .expect("none")
                .is_empty()
        );
        assert!(
            !store.cancel("a", "too late").await.expect("cancel"),
            "a finished job stays"
        );
        assert!(matches!(
            store.get("zz").await,
            Err(CoordinatorError::UnknownJob(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_indexed_transcript_is_never_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("c.db")).expect("open");
        let entry = |b: u8| TranscriptEntry {
            session_id: "s".into(),
            shared_sha256: vec![b; 32],
            shared_bytes: 10,
            summary_sha256: vec![b; 32],
        };
        store
            .index_transcript("j", "bank", entry(1))
            .await
            .expect("first");
        let second = store.index_transcript("j", "bank", entry(2)).await;
        assert!(
            matches!(second, Err(CoordinatorError::AlreadyIndexed { .. })),
            "{second:?}"
        );
        let kept = store
            .transcript("j", "bank")
            .await
            .expect("read")
            .expect("indexed");
        assert_eq!(kept, entry(1));
        store
            .index_transcript("j", "partner", entry(3))
            .await
            .expect("the peer's own");
    }
}
