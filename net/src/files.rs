//! Files written so that a crash at any moment leaves either the previous file or the new one,
//! never half of one ([`write_atomically`]).

use std::io::Write as _;
use std::path::Path;

use crate::error::{FederationError, Result};

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |source| FederationError::Write { path: path.to_path_buf(), source };
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(directory).map_err(failed)?;
    file.write_all(bytes).and_then(|()| file.as_file().sync_all()).map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    // Make the rename itself durable; not every platform can open a directory.
    if let Ok(directory) = std::fs::File::open(directory) {
        let _ = directory.sync_all();
    }
    Ok(())
}
