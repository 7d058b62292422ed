//! The one file a segment activation produces: the node's own customers in
//! the segment, as its own normalized identifiers, under its data directory
//! (`activations/JOB.csv`), readable by the node's user only.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use crate::{dataset::LoadedDataset, work::Selection};

/// Why the members file was not written. Names the file, never an
/// identifier.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error("cannot write the segment's members to {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("internal error: a member outside the session's selection")]
    OutsideSelection,
}

/// Writes the members (positions in the session's selection) and returns the
/// file's path. Errors name the file, never an identifier.
pub fn write(
    data_dir: &Path,
    job_id: &str,
    dataset: &LoadedDataset,
    selection: &Selection,
    members: &[u32],
) -> Result<PathBuf, MembersError> {
    let dir = data_dir.join("activations");
    let path = dir.join(format!("{job_id}.csv"));
    let fail = |source: std::io::Error| MembersError::Write {
        path: path.clone(),
        source,
    };
    crate::dirs::private_dir(&dir).map_err(fail)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(fail)?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "{}", dataset.kind.label()).map_err(fail)?;
    let mut rows: Vec<u32> = members
        .iter()
        .map(|&m| selection.origin.get(m as usize).copied())
        .collect::<Option<_>>()
        .ok_or(MembersError::OutsideSelection)?;
    rows.sort_unstable();
    for row in rows {
        out.write_all(dataset.ids.get(row as usize)).map_err(fail)?;
        out.write_all(b"\n").map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    Ok(path)
}
