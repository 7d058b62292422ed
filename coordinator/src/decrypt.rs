//! The decryption table: loaded from its cache file, or built and cached on
//! first use, then kept in memory for every later release. A cache file that
//! is corrupt or of another size is rebuilt, never trusted.

use std::{path::Path, sync::Arc};

use jointly_protocol::crypto::bsgs::BsgsTable;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::{config::Decryption, error::TableError};

#[derive(Default)]
pub struct TableCache {
    table: OnceCell<Arc<BsgsTable>>,
}

impl TableCache {
    pub async fn get(&self, config: &Decryption) -> Result<Arc<BsgsTable>, TableError> {
        let config = config.clone();
        self.table
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || load_or_build(&config.table, config.table_bits))
                    .await
                    .map_err(TableError::Preparing)?
                    .map(Arc::new)
            })
            .await
            .cloned()
    }
}

fn load_or_build(path: &Path, bits: u32) -> Result<BsgsTable, TableError> {
    match std::fs::read(path) {
        Ok(bytes) => match BsgsTable::from_bytes(&bytes) {
            Ok(table) if table.k() == bits => {
                info!(path = %path.display(), bits, "decryption table loaded");
                return Ok(table);
            }
            Ok(table) => {
                warn!(path = %path.display(), cached = table.k(), wanted = bits, "decryption table has another size; rebuilding it");
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "decryption table is unusable; rebuilding it")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the decryption table; rebuilding it")
        }
    }
    let began = std::time::Instant::now();
    let table = BsgsTable::build(bits).map_err(TableError::Build)?;
    info!(
        bits,
        seconds = began.elapsed().as_secs_f64(),
        "decryption table built"
    );
    // Written aside and renamed, so a crash never leaves half a table.
    let tmp = path.with_extension("tmp");
    let written = std::fs::write(&tmp, table.to_bytes()).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        warn!(path = %path.display(), error = %e, "cannot cache the decryption table; it will be built again after a restart");
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_caches_and_rebuilds_a_damaged_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let built = load_or_build(&path, 8).unwrap();
        assert!(path.is_file());
        let loaded = load_or_build(&path, 8).unwrap();
        assert_eq!(built.to_bytes(), loaded.to_bytes());
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let rebuilt = load_or_build(&path, 8).unwrap();
        assert_eq!(rebuilt.to_bytes(), built.to_bytes());
        assert_eq!(load_or_build(&path, 9).unwrap().k(), 9);
    }
}
