//! This node's transcript files (PROTOCOLS.md, "Transcripts"), under
//! `DATA_DIR/transcripts/`:
//! - `JOB.jtx`: everything, its private masking attestations included, for
//!   this node's own auditors;
//! - `JOB.shared.jtx`: the copy it serves through the coordinator, without
//!   them (see `jointly_protocol::transcript::shared_copy`).
//!
//! Both are written as the session runs (a million-point list is never held
//! twice) under a `.partial` name, and renamed when the summary is co-signed;
//! a failed session leaves its `.partial` files as evidence.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use jointly_protocol::{
    transcript::{encode_record, has_private_part, shared_copy},
    wire::TranscriptRecord,
};
use sha2::{Digest, Sha256};

pub const DIR: &str = "transcripts";

/// Why a transcript could not be started, written or finished. Names the
/// file, never a record's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    #[error("the coordinator sent a job id that is not a safe file name (letters, digits, '-' and '_' only)")]
    UnsafeJobId,
    #[error("cannot create the transcript {}: {source}", .path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write the transcript {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot finish the transcript {}: {source}", .path.display())]
    Finish { path: PathBuf, source: std::io::Error },
}

/// Job ids come from the coordinator and become file names: refuse anything
/// that could leave the directory.
pub fn check_job_id(job_id: &str) -> Result<(), TranscriptError> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 100
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TranscriptError::UnsafeJobId)
    }
}

pub fn full_path(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join(DIR).join(format!("{job_id}.jtx"))
}

pub fn shared_path(data_dir: &Path, job_id: &str) -> PathBuf {
    data_dir.join(DIR).join(format!("{job_id}.shared.jtx"))
}

fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

fn create(path: &Path) -> std::io::Result<BufWriter<File>> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    Ok(BufWriter::with_capacity(1 << 20, options.open(path)?))
}

pub struct TranscriptFiles {
    full_path: PathBuf,
    shared_path: PathBuf,
    full: BufWriter<File>,
    shared: BufWriter<File>,
    shared_sha: Sha256,
    shared_bytes: u64,
}

impl std::fmt::Debug for TranscriptFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TranscriptFiles({})", self.full_path.display())
    }
}

/// Where the shared copy ended up and what the coordinator indexes.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub shared_sha256: [u8; 32],
    pub shared_bytes: u64,
    pub summary_sha256: [u8; 32],
}

impl TranscriptFiles {
    pub fn create(data_dir: &Path, job_id: &str) -> Result<Self, TranscriptError> {
        check_job_id(job_id)?;
        let (full_path, shared_path) = (full_path(data_dir, job_id), shared_path(data_dir, job_id));
        let fail = |source: std::io::Error| TranscriptError::Create {
            path: full_path.clone(),
            source,
        };
        crate::dirs::private_dir(&data_dir.join(DIR)).map_err(fail)?;
        Ok(Self {
            full: create(&partial(&full_path)).map_err(fail)?,
            shared: create(&partial(&shared_path)).map_err(fail)?,
            full_path,
            shared_path,
            shared_sha: Sha256::new(),
            shared_bytes: 0,
        })
    }

    /// Appends records to both files (the shared copy without private parts).
    pub fn write_records(&mut self, records: Vec<TranscriptRecord>) -> Result<(), TranscriptError> {
        let fail = |source: std::io::Error| TranscriptError::Write {
            path: self.full_path.clone(),
            source,
        };
        for r in records {
            let bytes = encode_record(&r);
            self.full.write_all(&bytes).map_err(fail)?;
            // Masked lists make up nearly all of a transcript: they are
            // encoded once and shared as they are.
            let shared = if !has_private_part(&r) {
                Some(bytes)
            } else {
                shared_copy(&r).map(|s| encode_record(&s))
            };
            if let Some(bytes) = shared {
                self.shared.write_all(&bytes).map_err(fail)?;
                self.shared_sha.update(&bytes);
                self.shared_bytes += bytes.len() as u64;
            }
        }
        Ok(())
    }

    /// Flushes both files to disk and gives them their final names.
    pub fn finish(self, summary_sha256: [u8; 32]) -> Result<Written, TranscriptError> {
        let fail = |source: std::io::Error| TranscriptError::Finish {
            path: self.full_path.clone(),
            source,
        };
        for (writer, path) in [(self.full, &self.full_path), (self.shared, &self.shared_path)] {
            let file = writer.into_inner().map_err(|e| fail(e.into_error()))?;
            file.sync_all().map_err(fail)?;
            std::fs::rename(partial(path), path).map_err(fail)?;
        }
        Ok(Written {
            path: self.full_path,
            shared_sha256: self.shared_sha.finalize().into(),
            shared_bytes: self.shared_bytes,
            summary_sha256,
        })
    }
}
