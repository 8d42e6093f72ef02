//! `keys/<table>.jsonl`: one record per differing key, the heart of a recovery directory.
//!
//! recover's findings collector writes them ([`KeySink`]) as findings arrive, in segments sorted
//! by order key and merged at the end, so memory stays bounded however many keys differ; recover
//! then fetches the rows of these keys and apply reads them back to guard and re-verify.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use crate::classify::Action;
use crate::classify::Finding;
use crate::error::{Error, Result};
use crate::report::listing::Layout;

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
    /// A keyless table's copy: its `ctid` (`(block,line)`) on the side its section reads it
    /// from, in the comparison's snapshot (see [`crate::classify::RestoreKey::ctid`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctid: Option<String>,
    /// A keyless table's copy: the target's count of copies of the row at diff time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u64>,
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
pub struct KeySink {
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
    pub fn new(dir: &Path) -> Result<KeySink> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(KeySink {
            dir: dir.to_path_buf(),
            tables: Default::default(),
        })
    }

    pub fn write_all(&mut self, layout: &Layout, chunk: &[Finding]) -> Result<()> {
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
                ctid: r.ctid.as_ref().map(crate::compare::multiset::ctid_text),
                copies: r.copies,
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
    pub fn finish(self) -> Result<()> {
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

/// Keys per fetch query: enough to make the per-query cost (a round trip, a plan, a scan's
/// descent) vanish, few enough that a chunk's rows and its query text stay a few MiB.
pub const KEYS_PER_QUERY: usize = 10_000;

/// Calls `each` with every record of a table's key file (none when the table has no file).
pub fn for_each_record(path: &Path, mut each: impl FnMut(KeyRecord) -> Result<()>) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| Error::io(path.display(), e))?;
        let record: KeyRecord = serde_json::from_str(&line)
            .map_err(|e| Error::usage(format!("{}: corrupt key record: {e}", path.display())))?;
        each(record)?;
    }
    Ok(())
}

/// Reads a table's key file lazily, a chunk of keys with the wanted actions at a time, so the
/// keys of a large difference never sit in memory all at once.
pub struct KeyChunks {
    lines: Option<std::io::BufReader<std::fs::File>>,
    /// The line being read, its buffer kept from one line to the next.
    line: Vec<u8>,
    actions: Vec<Action>,
    class: Option<crate::classify::Class>,
    path: std::path::PathBuf,
    chunk: usize,
    ramp: Option<Ramp>,
}

/// Chunk sizes that grow from small to full and shrink again before the end (see
/// [`KeyChunks::with_ramp`]).
#[derive(Clone, Copy, Debug)]
struct Ramp {
    /// The first and the last chunk's size.
    small: usize,
    /// The size the next chunk may grow to, on the way up.
    up: usize,
    /// Records expected to be left.
    left: u64,
}

impl Ramp {
    /// The next chunk's size, with `full` the largest: up by a factor four from `small`, and at
    /// the end down again (…, 4 × small, small), as far as `left` is right.
    fn next(&mut self, full: usize) -> usize {
        let (small, left) = (self.small as u64, self.left);
        let size = if left <= small {
            small
        } else if left <= 5 * small {
            left - small
        } else if left <= 5 * small + full as u64 {
            left - 5 * small
        } else {
            full as u64
        };
        let size = (size.min(self.up as u64) as usize).clamp(1, full);
        self.up = self.up.saturating_mul(4);
        size
    }
}

impl KeyChunks {
    pub fn open(path: &Path, actions: &[Action]) -> Result<KeyChunks> {
        let lines = match std::fs::File::open(path) {
            Ok(f) => Some(std::io::BufReader::with_capacity(1 << 20, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        Ok(KeyChunks {
            lines,
            line: Vec::new(),
            actions: actions.to_vec(),
            class: None,
            path: path.to_path_buf(),
            chunk: KEYS_PER_QUERY,
            ramp: None,
        })
    }

    /// Only records of this class.
    pub fn of_class(mut self, class: crate::classify::Class) -> Self {
        self.class = Some(class);
        self
    }

    /// Chunks of `n` records instead of one query's worth.
    pub fn with_chunk(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// Chunks that start and end small, for a pipeline of `total` records whose stages (read
    /// the records, fetch their rows, judge them) overlap: the first fetch starts after a small
    /// read, and the last judging, which nothing overlaps, is of a small chunk (with 20 k-key
    /// chunks each end cost about 20 ms, on a 100 k-key re-verify of 500 ms).
    pub fn with_ramp(mut self, small: usize, total: u64) -> Self {
        let small = small.clamp(1, self.chunk);
        self.ramp = Some(Ramp {
            small,
            up: small,
            left: total,
        });
        self
    }

    /// The next chunk of records, `None` at the end.
    pub fn next_records(&mut self) -> Result<Option<Vec<KeyRecord>>> {
        let size = match self.ramp.as_mut() {
            Some(ramp) => ramp.next(self.chunk),
            None => self.chunk,
        };
        let mut chunk = Vec::new();
        let Some(lines) = self.lines.as_mut() else {
            return Ok(None);
        };
        let io = |e| Error::io(self.path.display(), e);
        loop {
            self.line.clear();
            if lines.read_until(b'\n', &mut self.line).map_err(io)? == 0 {
                break;
            }
            // A guard or re-verify of the few updates and deletes among many inserts would
            // otherwise parse every insert's record in full: 150-210 ms per 1e5 records.
            if leading_action(&self.line).is_some_and(|a| !self.actions.contains(&a)) {
                continue;
            }
            let record: KeyRecord = serde_json::from_slice(&self.line).map_err(|e| {
                Error::usage(format!("{}: corrupt key record: {e}", self.path.display()))
            })?;
            if self.actions.contains(&record.action) && self.class.is_none_or(|c| c == record.class)
            {
                chunk.push(record);
                if chunk.len() >= size {
                    break;
                }
            }
        }
        if let Some(ramp) = self.ramp.as_mut() {
            ramp.left = ramp.left.saturating_sub(chunk.len() as u64);
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// The action of a key record as [`KeyRecord`] writes it (`{"action":"insert",…`), read without
/// parsing the rest; `None` for any other spelling, which the caller then parses in full.
fn leading_action(line: &[u8]) -> Option<Action> {
    let rest = line.strip_prefix(br#"{"action":""#)?;
    match &rest[..rest.iter().position(|&b| b == b'"')?] {
        b"insert" => Some(Action::Insert),
        b"update" => Some(Action::Update),
        b"delete" => Some(Action::Delete),
        b"keep" => Some(Action::Keep),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classify::Class;

    pub(crate) fn record(texts: &[&str], literals: &[&str], okey: &str) -> KeyRecord {
        KeyRecord {
            action: Action::Insert,
            class: Class::Missing,
            key: literals.iter().map(|s| s.to_string()).collect(),
            key_text: texts.iter().map(|s| s.to_string()).collect(),
            key_json: serde_json::value::RawValue::from_string("[0]".into()).unwrap(),
            okey: okey.into(),
            before: None,
            after: None,
            columns: vec![],
            ctid: None,
            copies: None,
        }
    }

    fn ramp_sizes(small: usize, full: usize, total: u64) -> Vec<usize> {
        let mut ramp = Ramp {
            small,
            up: small,
            left: total,
        };
        let mut sizes = Vec::new();
        while ramp.left > 0 {
            let size = ramp.next(full).min(ramp.left as usize);
            ramp.left -= size as u64;
            sizes.push(size);
        }
        sizes
    }

    #[test]
    fn chunks_ramp_up_and_down() {
        assert_eq!(
            ramp_sizes(2_000, 20_000, 100_000),
            [2_000, 8_000, 20_000, 20_000, 20_000, 20_000, 8_000, 2_000]
        );
        for total in [
            1u64, 1_999, 2_000, 2_001, 9_999, 10_001, 29_999, 30_001, 1_000_003,
        ] {
            let sizes = ramp_sizes(2_000, 20_000, total);
            assert_eq!(
                sizes.iter().sum::<usize>() as u64,
                total,
                "{total}: {sizes:?}"
            );
            assert!(sizes.iter().all(|&s| s <= 20_000), "{total}: {sizes:?}");
            assert!(sizes[0] <= 2_000, "{total}: {sizes:?}");
            assert!(*sizes.last().unwrap() <= 2_000, "{total}: {sizes:?}");
        }
    }

    #[test]
    fn reads_the_action_of_a_record_as_written_and_parses_anything_else() {
        for action in [Action::Insert, Action::Update, Action::Delete, Action::Keep] {
            let mut r = record(&["1"], &["1"], "01");
            r.action = action;
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(leading_action(line.as_bytes()), Some(action), "{line}");
        }
        for other in [
            r#"{ "action":"insert"}"#,
            r#"{"class":"missing","action":"insert"}"#,
        ] {
            assert_eq!(leading_action(other.as_bytes()), None);
        }
        assert_eq!(leading_action(br#"{"action":"upsert","#), None);

        // Chunks of one action skip the others' lines unparsed, and still read every match.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.jsonl");
        let mut text = String::new();
        for i in 0..10 {
            let mut r = record(&[&i.to_string()], &["1"], "01");
            r.action = if i % 3 == 0 {
                Action::Delete
            } else {
                Action::Insert
            };
            text += &serde_json::to_string(&r).unwrap();
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let mut chunks = KeyChunks::open(&path, &[Action::Delete]).unwrap();
        let read = chunks.next_records().unwrap().unwrap();
        let keys: Vec<&str> = read.iter().map(|r| r.key_text[0].as_str()).collect();
        assert_eq!(keys, ["0", "3", "6", "9"]);
        assert!(chunks.next_records().unwrap().is_none());
    }
}
