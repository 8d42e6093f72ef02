//! The findings collector: one task that receives every finding of the run.
//!
//! It streams each finding to the `--findings` CSV (written to a temporary file beside the target
//! and renamed into place at the end, so a crash never leaves a half file that looks complete) and
//! keeps the first `max_findings` for the JSON report. Memory stays bounded however many rows
//! differ: the CSV is written as the findings arrive and the listing is capped; the exact counts
//! live in the tallies, not here.

use std::io::{BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;
use tokio::sync::mpsc;

use super::TableRun;
use crate::classify::Finding;
use crate::error::{Error, Result};
use crate::settings::VerifySettings;

/// Table and column names, to turn indexes into text.
pub struct Layout {
    tables: Vec<(String, Vec<String>)>,
}

impl Layout {
    /// Per table: its name and compared columns.
    pub fn new(tables: Vec<(String, Vec<String>)>) -> Self {
        Layout { tables }
    }

    pub fn of(tables: &[TableRun]) -> Self {
        let tables = tables
            .iter()
            .map(|t| (t.plan.name.to_string(), t.plan.columns.clone()))
            .collect();
        Layout { tables }
    }

    pub fn table(&self, f: &Finding) -> &str {
        &self.tables[f.table].0
    }

    pub fn columns(&self, f: &Finding) -> Vec<&str> {
        f.columns
            .iter()
            .map(|&c| self.tables[f.table].1[c as usize].as_str())
            .collect()
    }
}

/// The findings kept for the JSON report.
pub struct Listed {
    pub layout: Layout,
    pub findings: Vec<Finding>,
    pub truncated: bool,
}

/// Receives findings until every sender is gone.
pub async fn collect(
    mut rx: mpsc::Receiver<Vec<Finding>>,
    layout: Layout,
    settings: VerifySettings,
) -> Result<Listed> {
    let mut csv = settings
        .findings_csv
        .as_deref()
        .map(CsvSink::create)
        .transpose()?;
    let mut keys = settings
        .restore
        .as_ref()
        .map(|r| KeySink::new(&r.keys_dir))
        .transpose()?;
    let mut kept = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = rx.recv().await {
        if let Some(csv) = csv.as_mut() {
            csv.write_all(&layout, &chunk)?;
        }
        if let Some(keys) = keys.as_mut() {
            keys.write_all(&layout, &chunk)?;
        }
        let room = settings.max_findings.saturating_sub(kept.len());
        truncated |= chunk.len() > room;
        kept.extend(chunk.into_iter().take(room));
    }
    if let (Some(csv), Some(path)) = (csv, settings.findings_csv.as_deref()) {
        csv.persist(path)?;
    }
    if let Some(keys) = keys {
        keys.finish()?;
    }
    Ok(Listed {
        layout,
        findings: kept,
        truncated,
    })
}

/// `table,key,kind,columns` lines in a temporary file.
struct CsvSink {
    out: BufWriter<NamedTempFile>,
}

impl CsvSink {
    fn create(path: &Path) -> Result<CsvSink> {
        let file = temp_beside(path)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(b"table,key,kind,columns\n")
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(CsvSink { out })
    }

    fn write_all(&mut self, layout: &Layout, chunk: &[Finding]) -> Result<()> {
        for f in chunk {
            let line = [
                layout.table(f),
                &f.key,
                f.class.as_str(),
                &layout.columns(f).join("|"),
            ]
            .map(csv_field)
            .join(",");
            writeln!(self.out, "{line}").map_err(|e| Error::io("writing findings", e))?;
        }
        Ok(())
    }

    fn persist(self, path: &Path) -> Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(path.display(), e.into_error()))?;
        file.persist(path)
            .map_err(|e| Error::io(path.display(), e.error))?;
        Ok(())
    }
}

/// One line of `keys/<table>.jsonl`: a differing key and what its restore does.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    pub action: crate::classify::Action,
    pub class: crate::classify::Class,
    /// The key as typed SQL literals.
    pub key: Vec<String>,
    /// The key values as PostgreSQL prints them (for COPY into a key table).
    pub key_text: Vec<String>,
    /// The key as exact JSON values.
    pub key_json: Box<serde_json::value::RawValue>,
    /// Hex of the order-preserving key bytes, to match rows read back by key.
    pub okey: String,
    /// Hex digest of the target's row at diff time; null when the target has no row.
    pub before: Option<String>,
    /// Hex digest the row will have after the restore; null when it will have none.
    pub after: Option<String>,
    /// Differing columns (divergent rows).
    pub columns: Vec<String>,
}

/// Per-table JSON-lines files of [`KeyRecord`]s, for the recover writers and `apply`'s guard.
struct KeySink {
    dir: std::path::PathBuf,
    files: std::collections::HashMap<usize, BufWriter<std::fs::File>>,
}

impl KeySink {
    fn new(dir: &Path) -> Result<KeySink> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(KeySink {
            dir: dir.to_path_buf(),
            files: Default::default(),
        })
    }

    fn write_all(&mut self, layout: &Layout, chunk: &[Finding]) -> Result<()> {
        for f in chunk {
            let Some(r) = f.restore.as_deref() else {
                continue;
            };
            let record = KeyRecord {
                action: r.action,
                class: f.class,
                key: r.literals.clone(),
                key_text: r.texts.clone(),
                key_json: serde_json::value::RawValue::from_string(f.key.clone())
                    .map_err(|e| Error::internal(e.to_string()))?,
                okey: crate::tree::hex(&r.order_key),
                before: r.before.as_ref().map(|d| crate::tree::hex(d)),
                after: r.after.as_ref().map(|d| crate::tree::hex(d)),
                columns: layout.columns(f).into_iter().map(str::to_string).collect(),
            };
            let out = self.file(f.table)?;
            serde_json::to_writer(&mut *out, &record)
                .map_err(|e| Error::io("writing keys", e.into()))?;
            out.write_all(b"\n")
                .map_err(|e| Error::io("writing keys", e))?;
        }
        Ok(())
    }

    fn file(&mut self, table: usize) -> Result<&mut BufWriter<std::fs::File>> {
        if !self.files.contains_key(&table) {
            let path = key_file(&self.dir, table);
            let file = std::fs::File::create(&path).map_err(|e| Error::io(path.display(), e))?;
            self.files.insert(table, BufWriter::new(file));
        }
        Ok(self.files.get_mut(&table).expect("just inserted"))
    }

    fn finish(self) -> Result<()> {
        for (_, mut out) in self.files {
            out.flush().map_err(|e| Error::io("writing keys", e))?;
        }
        Ok(())
    }
}

/// Where the key records of one table go.
pub fn key_file(dir: &Path, table: usize) -> std::path::PathBuf {
    dir.join(format!("{table}.jsonl"))
}

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

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn quotes_csv_fields() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("[10,2]"), "\"[10,2]\"");
        assert_eq!(csv_field("[\"a\"]"), "\"[\"\"a\"\"]\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }
}
