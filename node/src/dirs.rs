//! The node's state directories (data directory, transcripts, activations)
//! hold budgets, proofs and customers' identifiers: readable by the node's
//! user only, whatever the umask.

use std::path::Path;

/// Creates `path` (and missing parents) with mode 0700, and narrows an
/// existing directory to 0700.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    builder.create(path)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn directories_are_private_new_or_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = dir.path().join("a/b/transcripts");
        private_dir(&fresh).expect("create");
        assert_eq!(mode(&fresh), 0o700);
        let old = dir.path().join("old");
        std::fs::create_dir(&old).expect("create");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&old).expect("narrow");
        assert_eq!(mode(&old), 0o700);
    }
}
