//! Sealing a directory of outputs: every file's size and blake3, recorded when it is written and
//! checked before it is used, so a file changed, added or removed afterwards is refused.
//!
//! Baselines list their data files this way in their manifest; a recovery directory lists every
//! file in its plan, so `apply` never runs a statement recover did not write. The seal catches
//! accidents and edits; it is not a signature (whoever can rewrite the files can rewrite the list).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One sealed file, by its path relative to the directory (`/`-separated).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
}

/// A file's size and blake3 (hex).
pub fn digest_file(path: &Path) -> Result<(u64, String)> {
    let mut h = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    h.update_reader(file)
        .map_err(|e| Error::io(path.display(), e))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path.display(), e))?
        .len();
    Ok((bytes, h.finalize().to_hex().to_string()))
}

/// Every file under `dir` but those named in `except`, sealed, in path order.
pub fn seal_dir(dir: &Path, except: &[&str]) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    for path in files_under(dir)? {
        if except.contains(&path.as_str()) {
            continue;
        }
        let (bytes, blake3) = digest_file(&dir.join(&path))?;
        out.push(FileEntry {
            path,
            bytes,
            blake3,
        });
    }
    Ok(out)
}

/// What differs between `dir` and its seal, as a phrase; `None` when nothing does. Files named in
/// `except` are not looked at.
pub fn check_dir(dir: &Path, sealed: &[FileEntry], except: &[&str]) -> Result<Option<String>> {
    let present = files_under(dir)?;
    for path in &present {
        let listed = sealed.iter().any(|f| &f.path == path);
        if !listed && !except.contains(&path.as_str()) {
            return Ok(Some(format!("{path} was added")));
        }
    }
    for entry in sealed {
        if !present.contains(&entry.path) {
            return Ok(Some(format!("{} was removed", entry.path)));
        }
        let (bytes, blake3) = digest_file(&dir.join(&entry.path))?;
        if bytes != entry.bytes || blake3 != entry.blake3 {
            return Ok(Some(format!(
                "{} was changed ({bytes} bytes, blake3 {}…; written as {} bytes, blake3 {}…)",
                entry.path,
                &blake3[..12],
                entry.bytes,
                &entry.blake3[..entry.blake3.len().min(12)]
            )));
        }
    }
    Ok(None)
}

/// The relative paths of the regular files under `dir`, sorted; anything else (a link, a
/// socket) is listed too, so that it is refused as added.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&at).map_err(|e| Error::io(at.display(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(at.display(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(|e| Error::io(at.display(), e))?;
            if kind.is_dir() {
                pending.push((entry.path(), format!("{rel}/")));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_directory_checks_clean_and_any_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("restore.sql"), "BEGIN;\nCOMMIT;\n").unwrap();
        std::fs::write(dir.path().join("keys/00000.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("plan.json"), "{}").unwrap();
        let seal = seal_dir(dir.path(), &["plan.json"]).unwrap();
        let paths: Vec<&str> = seal.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["keys/00000.jsonl", "restore.sql"]);
        assert_eq!(check_dir(dir.path(), &seal, &["plan.json"]).unwrap(), None);

        std::fs::write(
            dir.path().join("restore.sql"),
            "BEGIN;\nDROP TABLE t;\nCOMMIT;\n",
        )
        .unwrap();
        let why = check_dir(dir.path(), &seal, &["plan.json"])
            .unwrap()
            .unwrap();
        assert!(
            why.starts_with("restore.sql was changed (29 bytes"),
            "{why}"
        );
        std::fs::write(dir.path().join("restore.sql"), "BEGIN;\nCOMMIT;\n").unwrap();

        std::fs::write(dir.path().join("keys/evil.sql"), "x").unwrap();
        let why = check_dir(dir.path(), &seal, &["plan.json"])
            .unwrap()
            .unwrap();
        assert_eq!(why, "keys/evil.sql was added");
        std::fs::remove_file(dir.path().join("keys/evil.sql")).unwrap();

        std::fs::remove_file(dir.path().join("keys/00000.jsonl")).unwrap();
        let why = check_dir(dir.path(), &seal, &["plan.json"])
            .unwrap()
            .unwrap();
        assert_eq!(why, "keys/00000.jsonl was removed");
    }
}
