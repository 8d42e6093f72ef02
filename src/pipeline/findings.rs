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

/// Per-table JSON-lines files of [`KeyRecord`]s, for the recover writers and `apply`'s guard, in
/// key order.
///
/// Ranges are compared in parallel, so their findings arrive interleaved; each chunk comes from
/// one range, in key order, and ranges do not overlap. So the records are appended to a scratch
/// file as they come, as segments (runs of ascending keys of one table), and at the end the
/// segments are copied out sorted by their first key: a sorted file without holding or sorting
/// the records themselves. Readers then get chunks of keys that lie close together, which the
/// fetches by key scan as one span instead of probing key by key.
struct KeySink {
    dir: std::path::PathBuf,
    tables: std::collections::HashMap<usize, Segments>,
}

/// One table's scratch file and the runs of ascending keys in it.
struct Segments {
    out: BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    written: u64,
    /// (first order key, start, length): one per run.
    runs: Vec<(Vec<u8>, u64, u64)>,
    /// The order key of the last record written, to notice a run ending.
    last: Vec<u8>,
}

impl KeySink {
    fn new(dir: &Path) -> Result<KeySink> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(KeySink {
            dir: dir.to_path_buf(),
            tables: Default::default(),
        })
    }

    fn write_all(&mut self, layout: &Layout, chunk: &[Finding]) -> Result<()> {
        let mut previous = None;
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
            let mut line =
                serde_json::to_vec(&record).map_err(|e| Error::io("writing keys", e.into()))?;
            line.push(b'\n');
            // A new run where the chunk starts, where its table changes, or where keys descend.
            let continues = previous == Some(f.table);
            self.segments(f.table)?
                .append(&r.order_key, &line, continues)?;
            previous = Some(f.table);
        }
        Ok(())
    }

    fn segments(&mut self, table: usize) -> Result<&mut Segments> {
        if !self.tables.contains_key(&table) {
            let path = self.dir.join(format!(".{table}.unsorted"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| Error::io(path.display(), e))?;
            let segments = Segments {
                out: BufWriter::with_capacity(1 << 20, file),
                path,
                written: 0,
                runs: Vec::new(),
                last: Vec::new(),
            };
            self.tables.insert(table, segments);
        }
        Ok(self.tables.get_mut(&table).expect("just inserted"))
    }

    /// Writes every table's records, sorted, to its key file.
    fn finish(self) -> Result<()> {
        for (table, segments) in self.tables {
            segments.sort_into(&key_file(&self.dir, table))?;
        }
        Ok(())
    }
}

impl Segments {
    fn append(&mut self, okey: &[u8], line: &[u8], continues: bool) -> Result<()> {
        let at = self.written;
        match self.runs.last_mut() {
            Some(run) if continues && okey > self.last.as_slice() => run.2 += line.len() as u64,
            _ => self.runs.push((okey.to_vec(), at, line.len() as u64)),
        }
        self.last.clear();
        self.last.extend_from_slice(okey);
        self.out
            .write_all(line)
            .map_err(|e| Error::io(self.path.display(), e))?;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Copies the runs to `path` in order of their first keys and removes the scratch file.
    /// Runs never overlap (each lies inside one range), so the result is in key order.
    fn sort_into(mut self, path: &Path) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let scratch = self
            .out
            .into_inner()
            .map_err(|e| Error::io(self.path.display(), e.into_error()))?;
        self.runs.sort_by(|a, b| a.0.cmp(&b.0));
        let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        for (_, start, len) in &self.runs {
            buf.resize(*len as usize, 0);
            scratch
                .read_exact_at(&mut buf, *start)
                .map_err(|e| Error::io(self.path.display(), e))?;
            out.write_all(&buf)
                .map_err(|e| Error::io(path.display(), e))?;
        }
        out.flush().map_err(|e| Error::io(path.display(), e))?;
        std::fs::remove_file(&self.path).map_err(|e| Error::io(self.path.display(), e))
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
    use super::*;
    use crate::classify::{Action, Class, RestoreKey};

    fn finding(table: usize, k: u32) -> Finding {
        Finding {
            table,
            class: Class::Missing,
            key: format!("[{k}]"),
            columns: vec![],
            restore: Some(Box::new(RestoreKey {
                action: Action::Insert,
                literals: vec![format!("'{k}'::integer")],
                texts: vec![k.to_string()],
                order_key: k.to_be_bytes().to_vec(),
                before: None,
                after: None,
            })),
        }
    }

    fn keys_in(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<KeyRecord>(l).unwrap().key_text[0].clone())
            .collect()
    }

    #[test]
    fn key_files_are_in_key_order_however_the_ranges_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(vec![
            ("public.a".into(), vec!["id".into()]),
            ("public.b".into(), vec!["id".into()]),
        ]);
        let mut sink = KeySink::new(dir.path()).unwrap();
        // Three ranges of table 0 ([0,100), [100,200), [200,300)) and one of table 1, finishing
        // in chunks that interleave; the last range's chunks arrive first.
        let chunks: Vec<Vec<Finding>> = vec![
            (250..260).map(|k| finding(0, k)).collect(),
            (100..105).map(|k| finding(0, k)).collect(),
            (0..3).map(|k| finding(1, k)).collect(),
            (10..20).map(|k| finding(0, k)).collect(),
            (260..270).map(|k| finding(0, k)).collect(),
            (105..110).map(|k| finding(0, k)).collect(),
            (3..6).map(|k| finding(1, k)).collect(),
            (20..30).map(|k| finding(0, k)).collect(),
        ];
        for chunk in &chunks {
            sink.write_all(&layout, chunk).unwrap();
        }
        sink.finish().unwrap();
        let want = |ranges: &[(u32, u32)]| -> Vec<String> {
            ranges
                .iter()
                .flat_map(|&(a, b)| a..b)
                .map(|k| k.to_string())
                .collect()
        };
        assert_eq!(
            keys_in(&key_file(dir.path(), 0)),
            want(&[(10, 30), (100, 110), (250, 270)])
        );
        assert_eq!(keys_in(&key_file(dir.path(), 1)), want(&[(0, 6)]));
        // Nothing but the key files is left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["0.jsonl", "1.jsonl"]);
    }

    #[test]
    fn runs_are_cut_where_keys_descend_and_ordered_by_their_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(vec![("public.a".into(), vec!["id".into()])]);
        let mut sink = KeySink::new(dir.path()).unwrap();
        let chunk: Vec<Finding> = [5, 6, 7, 1, 2, 9].iter().map(|&k| finding(0, k)).collect();
        sink.write_all(&layout, &chunk).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            keys_in(&key_file(dir.path(), 0)),
            ["1", "2", "9", "5", "6", "7"]
        );
    }

    #[test]
    fn quotes_csv_fields() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("[10,2]"), "\"[10,2]\"");
        assert_eq!(csv_field("[\"a\"]"), "\"[\"\"a\"\"]\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }
}
