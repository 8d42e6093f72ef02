//! Nothing half-written: every file and directory pgsalvage produces is written under a hidden
//! temporary name beside its destination and renamed into place once complete, so a crash or an
//! interrupt never leaves something that looks finished.

use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A temporary file in the target's directory, so the final rename stays on one filesystem.
pub fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".pgsalvage-")
        .tempfile_in(dir)
        .map_err(|e| {
            Error::io(format!("creating a file in {}", dir.display()), e)
                .with_hint("check that the directory exists and is writable")
        })
}
