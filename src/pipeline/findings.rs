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

use crate::classify::Finding;
use crate::error::{Error, Result};
use crate::recovery::keys::KeySink;
use crate::report::listing::{Layout, Listed};
use crate::settings::VerifySettings;
use crate::staging::temp_beside;

/// Starts the collector on a blocking thread (it writes files as findings arrive) and returns
/// where its listing will arrive.
pub fn spawn(
    rx: mpsc::Receiver<Vec<Finding>>,
    layout: Layout,
    settings: VerifySettings,
) -> tokio::task::JoinHandle<Result<Listed>> {
    tokio::task::spawn_blocking(move || collect(rx, layout, settings))
}

/// Receives findings until every sender is gone.
pub fn collect(
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
    let mut kept = Kept::new(settings.max_findings);
    let mut shown = std::collections::HashMap::<usize, usize>::new();
    while let Some(mut chunk) = rx.blocking_recv() {
        keep_shown(&mut chunk, &mut shown, settings.show_values);
        if let Some(csv) = csv.as_mut() {
            csv.write_all(&layout, &chunk)?;
        }
        if let Some(keys) = keys.as_mut() {
            keys.write_all(&layout, &chunk)?;
        }
        kept.extend(chunk);
    }
    if let (Some(csv), Some(path)) = (csv, settings.findings_csv.as_deref()) {
        csv.persist(path)?;
    }
    if let Some(keys) = keys {
        keys.finish()?;
    }
    let (findings, truncated) = kept.into_sorted();
    Ok(Listed {
        layout,
        findings,
        truncated,
    })
}

/// The listing: the first `max` findings in (table, key) order, whatever order the ranges end
/// in, so two runs of one comparison (with other `--jobs`, narrow or full, one process or merged
/// shards) list the same findings. A max-heap by that order holds them: a finding past the
/// largest kept one is dropped, else it takes that one's place.
struct Kept {
    max: usize,
    heap: std::collections::BinaryHeap<ByKey>,
    truncated: bool,
}

/// A finding ordered by table, then key.
struct ByKey(Finding);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.table, &self.0.order_key).cmp(&(other.0.table, &other.0.order_key))
    }
}

impl Kept {
    fn new(max: usize) -> Kept {
        Kept {
            max,
            heap: std::collections::BinaryHeap::new(),
            truncated: false,
        }
    }

    fn extend(&mut self, chunk: Vec<Finding>) {
        for f in chunk {
            if self.heap.len() < self.max {
                self.heap.push(ByKey(f));
                continue;
            }
            self.truncated = true;
            match self.heap.peek() {
                Some(top) if (f.table, &f.order_key) < (top.0.table, &top.0.order_key) => {
                    self.heap.pop();
                    self.heap.push(ByKey(f));
                }
                _ => {}
            }
        }
    }

    /// The kept findings in (table, key) order, and whether any were dropped.
    fn into_sorted(self) -> (Vec<Finding>, bool) {
        let found = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|k| k.0)
            .collect();
        (found, self.truncated)
    }
}

/// Leaves values on the first `limit` findings of each table that carry them, and drops the rest.
fn keep_shown(
    chunk: &mut [Finding],
    shown: &mut std::collections::HashMap<usize, usize>,
    limit: usize,
) {
    for f in chunk.iter_mut().filter(|f| f.values.is_some()) {
        let n = shown.entry(f.table).or_default();
        match *n < limit {
            true => *n += 1,
            false => f.values = None,
        }
    }
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
    use crate::recovery::keys::{key_file, KeyRecord};

    fn finding(table: usize, k: u32) -> Finding {
        Finding {
            table,
            class: Class::Missing,
            key: format!("[{k}]"),
            order_key: k.to_be_bytes().to_vec(),
            columns: vec![],
            values: None,
            restore: Some(Box::new(RestoreKey {
                action: Action::Insert,
                literals: vec![format!("'{k}'::integer")],
                texts: vec![k.to_string()],
                order_key: k.to_be_bytes().to_vec(),
                before: None,
                after: None,
                ctid: None,
                copies: None,
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
