//! The baseline manifest: what a baseline holds, and the checks that it is intact.
//!
//! [`Baseline::load`] refuses anything it cannot vouch for before a single leaf is compared:
//! a directory without a manifest, a manifest of another format or a newer version, a manifest
//! whose checksum does not match its content, and any data file whose size or blake3 digest
//! differs from what the manifest recorded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::seal::digest_file;
use crate::shape::{TableName, TableShape};
use crate::source::SnapshotInfo;
use crate::tree::{hex, Fingerprint};

/// The format this build writes and reads.
pub const FORMAT: &str = "pgsalvage.baseline/2";
const FORMAT_PREFIX: &str = "pgsalvage.baseline/";
/// 2: row digests are blake3 of the padded canonical row (`hash::digest::row_digest`); a
/// version-1 baseline holds digests of the unpadded row, which no longer compare.
const VERSION: u32 = 2;
pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// `pgsalvage <version>`.
    pub tool: String,
    /// The state the baseline was read in (connection without password, server version, WAL
    /// position, snapshot time).
    pub source: SnapshotInfo,
    /// With `--max-snapshot-age`: every snapshot the capture read, oldest first (the first is
    /// `source`); tables name theirs in `epochs`. Empty when one snapshot was read throughout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<SnapshotInfo>,
    /// Whether every row's `(key, digest)` is stored (`--rows`).
    pub rows: bool,
    /// A baseline of some tables (or rows): the filter it was taken with, as its flags. A
    /// verify against it compares only the tables it holds (see `compare::table_names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub tables: Vec<TableEntry>,
    pub files: Vec<FileEntry>,
    /// blake3 of this manifest serialized with an empty checksum.
    pub checksum: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub table: TableName,
    /// The table as the source's catalog described it.
    pub shape: TableShape,
    /// The digested columns, key first, in digest order.
    pub columns: Vec<String>,
    pub key: Vec<String>,
    /// blake3 over the digested columns' names and types and the key.
    pub schema_fingerprint: String,
    pub rows: u64,
    /// blake3 of the table's count and 256-bit sum: equal roots, equal tables.
    pub root: String,
    /// Leaves hold about 2^leaf_shift rows (`tree::leaves`).
    pub leaf_shift: u8,
    pub leaf_count: u64,
    pub leaves_file: String,
    /// With `--rows`: the row files, in key order.
    pub row_parts: Vec<RowPart>,
    /// With several snapshots (`Manifest::epochs`): those this table's ranges read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowPart {
    pub file: String,
    pub rows: u64,
    /// Hex of the order keys of the first and last row (absent when the part is empty).
    pub first_key: Option<String>,
    pub last_key: Option<String>,
}

pub use crate::seal::FileEntry;

/// A loaded, checked baseline.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// The root digest of a table's fingerprint.
pub fn root_of(fp: &Fingerprint) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"pgsalvage.table/1");
    h.update(&fp.to_bytes());
    hex(h.finalize().as_bytes())
}

/// The schema fingerprint of digested columns (name and type) and key.
pub fn schema_fingerprint(shape: &TableShape, columns: &[String], key: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for name in columns {
        let ty = shape
            .column(name)
            .map(|(_, c)| c.type_name.as_str())
            .unwrap_or("?");
        for part in [name.as_str(), ty] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.update(b"key");
    for k in key {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
    }
    hex(h.finalize().as_bytes())
}

/// Whether `text` names a baseline directory rather than a connection: an existing directory,
/// or a path-like string that no connection string looks like.
pub fn looks_like_baseline(text: &str) -> bool {
    let path = Path::new(text);
    if path.join(MANIFEST).is_file() || path.is_dir() {
        return true;
    }
    let url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    !url && !text.contains('=') && (text.contains('/') || text.starts_with('.'))
}

impl Manifest {
    pub fn new(source: SnapshotInfo, rows: bool) -> Self {
        Manifest {
            format: FORMAT.to_string(),
            tool: format!("pgsalvage {}", env!("CARGO_PKG_VERSION")),
            source,
            epochs: Vec::new(),
            rows,
            scope: None,
            tables: Vec::new(),
            files: Vec::new(),
            checksum: String::new(),
        }
    }

    /// The manifest's checksum: blake3 of its JSON with the checksum field empty.
    fn compute_checksum(&self) -> String {
        let mut blank = self.clone();
        blank.checksum.clear();
        let json = serde_json::to_vec(&blank).expect("a manifest serializes");
        hex(blake3::hash(&json).as_bytes())
    }

    /// Records the size and digest of every data file under `dir`, then seals the manifest.
    pub fn seal(&mut self, dir: &Path) -> Result<()> {
        let mut paths: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| {
                std::iter::once(t.leaves_file.clone())
                    .chain(t.row_parts.iter().map(|p| p.file.clone()))
            })
            .collect();
        paths.sort();
        self.files = paths
            .into_iter()
            .map(|p| file_entry(dir, &p))
            .collect::<Result<_>>()?;
        self.checksum = self.compute_checksum();
        Ok(())
    }

    pub fn table(&self, name: &TableName) -> Option<&TableEntry> {
        self.tables.iter().find(|t| &t.table == name)
    }
}

fn file_entry(dir: &Path, path: &str) -> Result<FileEntry> {
    let (bytes, digest) = digest_file(&dir.join(path))?;
    Ok(FileEntry {
        path: path.to_string(),
        bytes,
        blake3: digest,
    })
}

fn corrupt(dir: &Path, what: impl std::fmt::Display) -> Error {
    Error::usage(format!("baseline {} is corrupt: {what}", dir.display())).with_hint(
        "it was damaged or modified after it was written; take a new baseline or use another copy",
    )
}

impl Baseline {
    /// Loads a baseline and checks everything it holds; see the module doc.
    pub fn load(dir: &Path) -> Result<Baseline> {
        let manifest = read_manifest(dir)?;
        if manifest.compute_checksum() != manifest.checksum {
            return Err(corrupt(
                dir,
                "the manifest's checksum does not match its content",
            ));
        }
        check_files(dir, &manifest)?;
        Ok(Baseline {
            dir: dir.to_path_buf(),
            manifest,
        })
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(
            Error::usage(format!("baseline {} not found", dir.display()))
                .with_hint("pass a directory written by `pgsalvage baseline`, or a connection URL"),
        );
    }
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        let what = format!(
            "{} is not a pgsalvage baseline (no {MANIFEST})",
            dir.display()
        );
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::usage(what).with_hint("pass a directory written by `pgsalvage baseline`")
            }
            _ => Error::io(path.display(), e),
        }
    })?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| corrupt(dir, format!("{MANIFEST} is not valid JSON ({e})")))?;
    check_format(dir, value.get("format").and_then(|f| f.as_str()))?;
    serde_json::from_value(value).map_err(|e| corrupt(dir, format!("{MANIFEST}: {e}")))
}

fn check_format(dir: &Path, format: Option<&str>) -> Result<()> {
    let Some(version) = format.and_then(|f| f.strip_prefix(FORMAT_PREFIX)) else {
        return Err(Error::usage(format!(
            "{} is not a pgsalvage baseline (format {})",
            dir.display(),
            format.unwrap_or("missing")
        ))
        .with_hint("pass a directory written by `pgsalvage baseline`"));
    };
    match version.parse::<u32>() {
        Ok(VERSION) => Ok(()),
        Ok(v) if v > VERSION => Err(Error::usage(format!(
            "baseline {} has format version {v}, newer than this pgsalvage reads ({VERSION})",
            dir.display()
        ))
        .with_hint("compare it with a newer pgsalvage")),
        Ok(v) if v >= 1 => Err(Error::usage(format!(
            "baseline {} has format version {v}, from an older pgsalvage whose row digests this \
             version computes differently",
            dir.display()
        ))
        .with_hint(
            "take a new baseline with this pgsalvage, or compare with the version that took it",
        )),
        _ => Err(corrupt(
            dir,
            format!("unknown format version \"{version}\""),
        )),
    }
}

/// Every file the manifest lists must be there with its size and digest, and every file a table
/// names must be listed.
fn check_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for table in &manifest.tables {
        let named =
            std::iter::once(&table.leaves_file).chain(table.row_parts.iter().map(|p| &p.file));
        for file in named {
            if !listed.contains(file.as_str()) {
                return Err(corrupt(
                    dir,
                    format!("{file} is not listed in the manifest"),
                ));
            }
        }
    }
    manifest
        .files
        .par_iter()
        .try_for_each(|entry| check_file(dir, entry))
}

fn check_file(dir: &Path, entry: &FileEntry) -> Result<()> {
    let path = dir.join(&entry.path);
    if !path.is_file() {
        return Err(corrupt(dir, format!("{} is missing", entry.path)));
    }
    let (bytes, digest) = digest_file(&path)?;
    if bytes != entry.bytes {
        return Err(corrupt(
            dir,
            format!(
                "{} has {bytes} bytes, the manifest says {}",
                entry.path, entry.bytes
            ),
        ));
    }
    if digest != entry.blake3 {
        return Err(corrupt(
            dir,
            format!("{} does not match its digest", entry.path),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_baseline_arguments() {
        assert!(looks_like_baseline("baselines/2026-11-24/"));
        assert!(looks_like_baseline("./b"));
        assert!(!looks_like_baseline("postgresql://h/db"));
        assert!(!looks_like_baseline("host=/tmp dbname=app"));
        assert!(!looks_like_baseline("app"));
    }

    #[test]
    fn format_versions() {
        let dir = Path::new("b");
        assert!(check_format(dir, Some(FORMAT)).is_ok());
        let newer = check_format(dir, Some("pgsalvage.baseline/3")).unwrap_err();
        assert!(newer.to_string().contains("newer"), "{newer}");
        let older = check_format(dir, Some("pgsalvage.baseline/1")).unwrap_err();
        assert!(older.to_string().contains("older pgsalvage"), "{older}");
        assert!(newer.to_string().contains("newer"), "{newer}");
        let foreign = check_format(dir, Some("pgsalvage.verify/1")).unwrap_err();
        assert!(
            foreign.to_string().contains("not a pgsalvage baseline"),
            "{foreign}"
        );
        assert!(check_format(dir, None).is_err());
    }
}
