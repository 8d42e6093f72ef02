//! Leaves and rows ⇄ Parquet: the data files of a baseline (layout in the module doc above).
//!
//! Keys travel in two forms: the order key (`key::encode`), which the comparison sorts and
//! cuts by, and the key's binary COPY fields (each with an i32 length), from which typed SQL
//! literals and the exact JSON are rendered; the JSON is also stored so that any Parquet reader
//! can see which key a leaf or a row is. Row files are written one per key range as the range is
//! read, in row groups of bounded size, and read back forward only, span after span.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, FixedSizeBinaryBuilder, StringBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, BinaryArray, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::manifest::RowPart;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::digest::{Digest, DigestBatch};
use crate::key::range::KeyRange;
use crate::key::render::render_key_json;
use crate::rows::batch::RowBatch;
use crate::shape::{TypeKind, ValueError};
use crate::tree::leaves::{Anchor, Leaf};
use crate::tree::{hex, Fingerprint};

const ROW_GROUP_ROWS: usize = 128 * 1024;
const READ_BATCH_ROWS: usize = 8192;

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {e}", path.display()))
}

/// The key fields of one row, each as an i32 length and its bytes.
pub fn frame_key(rows: &RowBatch, row: usize, nkey: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(nkey * 12);
    for col in 0..nkey {
        let raw = rows.field(row, col).unwrap_or_default();
        out.extend_from_slice(&(raw.len() as i32).to_be_bytes());
        out.extend_from_slice(raw);
    }
    out
}

/// The fields of a framed key.
pub fn unframe_key(framed: &[u8]) -> Result<Vec<&[u8]>, ValueError> {
    let mut fields = Vec::new();
    let mut rest = framed;
    while !rest.is_empty() {
        let bad = || ValueError::new("key", "truncated key fields");
        let len = rest.get(..4).ok_or_else(bad)?;
        let len = i32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let field = rest.get(4..4 + len).ok_or_else(bad)?;
        fields.push(field);
        rest = &rest[4 + len..];
    }
    Ok(fields)
}

/// The exact JSON array of a framed key.
pub fn key_json(kinds: &[TypeKind], framed: &[u8]) -> Result<String, ValueError> {
    let fields = unframe_key(framed)?;
    if fields.len() != kinds.len() {
        return Err(ValueError::new(
            "key",
            "key fields do not match the key columns",
        ));
    }
    let mut out = String::new();
    render_key_json(kinds, fields.into_iter().map(Some), &mut out)?;
    Ok(out)
}

fn properties(digest_column: &str) -> Result<WriterProperties> {
    let zstd = ZstdLevel::try_new(1).map_err(|e| Error::internal(e.to_string()))?;
    // Every key is unique, so a dictionary never pays: building one until it overflows cost a
    // seventh of the client's CPU on a `--rows` baseline. Digests are random bytes: statistics
    // and compression only cost time there too.
    let digest = ColumnPath::from(digest_column);
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .set_column_statistics_enabled(digest.clone(), EnabledStatistics::None)
        .set_column_compression(digest, Compression::UNCOMPRESSED)
        .build())
}

fn leaves_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("anchor_order_key", DataType::Binary, true),
        Field::new("anchor_key", DataType::Utf8, true),
        Field::new("anchor_key_fields", DataType::Binary, true),
        Field::new("rows", DataType::UInt64, false),
        Field::new("sum", DataType::FixedSizeBinary(32), false),
    ]))
}

fn rows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_key", DataType::Binary, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("digest", DataType::FixedSizeBinary(32), false),
    ]))
}

/// Writes a table's leaves; anchors' payloads are framed keys of `key_kinds`.
pub fn write_leaves(path: &Path, leaves: &[Leaf], key_kinds: &[TypeKind]) -> Result<()> {
    let (mut okey, mut json, mut fields) = (
        BinaryBuilder::new(),
        StringBuilder::new(),
        BinaryBuilder::new(),
    );
    let mut rows = UInt64Builder::with_capacity(leaves.len());
    let mut sums = FixedSizeBinaryBuilder::with_capacity(leaves.len(), 32);
    for leaf in leaves {
        match &leaf.anchor {
            Some(a) => {
                okey.append_value(a.order_key());
                json.append_value(key_json(key_kinds, a.payload())?);
                fields.append_value(a.payload());
            }
            None => {
                okey.append_null();
                json.append_null();
                fields.append_null();
            }
        }
        rows.append_value(leaf.fp.count);
        sums.append_value(leaf.fp.sum_bytes())
            .map_err(|e| Error::internal(e.to_string()))?;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(okey.finish()),
        Arc::new(json.finish()),
        Arc::new(fields.finish()),
        Arc::new(rows.finish()),
        Arc::new(sums.finish()),
    ];
    let batch =
        RecordBatch::try_new(leaves_schema(), columns).map_err(|e| parquet_error(path, e))?;
    let file = File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let mut writer = ArrowWriter::try_new(file, leaves_schema(), Some(properties("sum")?))
        .map_err(|e| parquet_error(path, e))?;
    writer.write(&batch).map_err(|e| parquet_error(path, e))?;
    writer.close().map_err(|e| parquet_error(path, e))?;
    Ok(())
}

fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send> {
    let file = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
        .map_err(|e| parquet_error(path, e))?;
    let path = path.to_path_buf();
    Ok(reader.map(move |b| b.map_err(|e| parquet_error(&path, e))))
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| parquet_error(path, format!("no column {name}")))
}

/// Reads a table's leaves back.
pub fn read_leaves(path: &Path) -> Result<Vec<Leaf>> {
    let mut leaves = Vec::new();
    for batch in batches(path)? {
        let batch = batch?;
        let okey = column(&batch, "anchor_order_key", path)?.as_binary::<i32>();
        let fields = column(&batch, "anchor_key_fields", path)?.as_binary::<i32>();
        let rows = column(&batch, "rows", path)?.as_primitive::<UInt64Type>();
        let sums = column(&batch, "sum", path)?.as_fixed_size_binary();
        for i in 0..batch.num_rows() {
            let anchor = (!okey.is_null(i)).then(|| Anchor::new(okey.value(i), fields.value(i)));
            let sum = sums
                .value(i)
                .try_into()
                .map_err(|_| parquet_error(path, "a leaf sum is not 32 bytes"))?;
            let fp = Fingerprint::from_sum(rows.value(i), sum);
            leaves.push(Leaf { anchor, fp });
        }
    }
    if leaves.first().is_none_or(|l| l.anchor.is_some()) {
        return Err(parquet_error(path, "the head leaf is missing"));
    }
    Ok(leaves)
}

/// Writes one key range's `(key, digest)` rows as they stream by.
pub struct RowsWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    part: RowPart,
}

impl RowsWriter {
    pub fn create(path: PathBuf, name: String) -> Result<RowsWriter> {
        let file = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        let writer = ArrowWriter::try_new(file, rows_schema(), Some(properties("digest")?))
            .map_err(|e| parquet_error(&path, e))?;
        Ok(RowsWriter {
            path,
            writer,
            part: RowPart {
                file: name,
                rows: 0,
                first_key: None,
                last_key: None,
            },
        })
    }

    /// Appends a batch of digested rows (in key order).
    pub fn write(&mut self, batch: &DigestBatch, key_kinds: &[TypeKind]) -> Result<()> {
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        let mut okey = BinaryBuilder::with_capacity(n, n * 12);
        let mut json = StringBuilder::with_capacity(n, n * 12);
        let mut digests = FixedSizeBinaryBuilder::with_capacity(n, 32);
        let mut text = String::new();
        for row in 0..n {
            okey.append_value(batch.key(row));
            text.clear();
            let fields = (0..key_kinds.len()).map(|col| batch.rows.field(row, col));
            render_key_json(key_kinds, fields, &mut text)?;
            json.append_value(&text);
            digests
                .append_value(batch.digests[row])
                .map_err(|e| Error::internal(e.to_string()))?;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(okey.finish()),
            Arc::new(json.finish()),
            Arc::new(digests.finish()),
        ];
        let record = RecordBatch::try_new(rows_schema(), columns)
            .map_err(|e| parquet_error(&self.path, e))?;
        self.writer
            .write(&record)
            .map_err(|e| parquet_error(&self.path, e))?;
        if self.part.first_key.is_none() {
            self.part.first_key = Some(hex(batch.key(0)));
        }
        self.part.last_key = Some(hex(batch.key(n - 1)));
        self.part.rows += n as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<RowPart> {
        self.writer
            .close()
            .map_err(|e| parquet_error(&self.path, e))?;
        Ok(self.part)
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    crate::tree::unhex_into(text, &mut out).then_some(out)
}

/// One stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedRow {
    pub order_key: Vec<u8>,
    pub digest: Digest,
    /// The key as an exact JSON array.
    pub key: String,
}

/// Reads a table's stored rows forward, one key span after another (spans in key order). Only
/// rows inside a span are copied out of the decoded batches; the rest are passed over in place.
pub struct StoredRows {
    dir: PathBuf,
    parts: Vec<RowPart>,
    next_part: usize,
    current: Option<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>>,
    loaded: Option<Loaded>,
    /// The start of the span being taken: parts that end before it are never opened.
    lo: Vec<u8>,
}

/// One decoded batch of stored rows and how far it has been read.
struct Loaded {
    order_key: BinaryArray,
    key: StringArray,
    digest: FixedSizeBinaryArray,
    pos: usize,
}

impl Loaded {
    fn of(batch: &RecordBatch, path: &Path) -> Result<Loaded> {
        let digest = column(batch, "digest", path)?
            .as_fixed_size_binary()
            .clone();
        if digest.value_length() != 32 {
            return Err(parquet_error(path, "digests are not 32 bytes"));
        }
        Ok(Loaded {
            order_key: column(batch, "order_key", path)?.as_binary::<i32>().clone(),
            key: column(batch, "key", path)?.as_string::<i32>().clone(),
            digest,
            pos: 0,
        })
    }

    fn row(&self, i: usize) -> KeyedRow {
        KeyedRow {
            order_key: self.order_key.value(i).to_vec(),
            key: self.key.value(i).to_string(),
            digest: self.digest.value(i).try_into().expect("checked width"),
        }
    }
}

impl StoredRows {
    pub fn new(dir: &Path, parts: &[RowPart]) -> Self {
        StoredRows {
            dir: dir.to_path_buf(),
            parts: parts.to_vec(),
            next_part: 0,
            current: None,
            loaded: None,
            lo: Vec::new(),
        }
    }

    /// The stored rows inside `range`; rows before it are passed over for good.
    pub fn take(&mut self, range: &KeyRange) -> Result<Vec<KeyedRow>> {
        let mut out = Vec::new();
        self.lo = range
            .lo
            .as_ref()
            .map(|b| b.order_key.clone())
            .unwrap_or_default();
        let hi = range.hi.as_ref().map(|b| b.order_key.as_slice());
        while self.ensure_loaded()? {
            let batch = self.loaded.as_mut().expect("loaded");
            let n = batch.order_key.len();
            // Keys ascend: skip to the span's start, then copy out up to its end.
            let lo = self.lo.as_slice();
            let start = batch.pos + partition(batch.pos, n, |i| batch.order_key.value(i) < lo);
            let end = match hi {
                Some(hi) => start + partition(start, n, |i| batch.order_key.value(i) < hi),
                None => n,
            };
            out.extend((start..end).map(|i| batch.row(i)));
            batch.pos = end;
            if end < n {
                break;
            }
        }
        Ok(out)
    }

    /// Makes sure a batch with unread rows is loaded; false at the end of the last part.
    fn ensure_loaded(&mut self) -> Result<bool> {
        loop {
            if self
                .loaded
                .as_ref()
                .is_some_and(|l| l.pos < l.order_key.len())
            {
                return Ok(true);
            }
            self.loaded = None;
            if let Some(batch) = self.current.as_mut().and_then(|it| it.next()) {
                self.loaded = Some(Loaded::of(&batch?, &self.dir)?);
                continue;
            }
            let Some(part) = self.parts.get(self.next_part) else {
                return Ok(false);
            };
            self.next_part += 1;
            let ends_before = part
                .last_key
                .as_deref()
                .and_then(unhex)
                .is_none_or(|last| last < self.lo);
            if ends_before {
                self.current = None;
                continue;
            }
            self.current = Some(Box::new(batches(&self.dir.join(&part.file))?));
        }
    }
}

/// How many of the indexes `from..to` satisfy `below` (which holds for a prefix of them).
fn partition(from: usize, to: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (from, to);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo - from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_frame_and_unframe() {
        let framed = [
            &1i32.to_be_bytes()[..],
            b"a",
            &0i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            b"bc",
        ]
        .concat();
        assert_eq!(unframe_key(&framed).unwrap(), vec![&b"a"[..], b"", b"bc"]);
        assert!(unframe_key(&framed[..framed.len() - 1]).is_err());
        let json = key_json(
            &[TypeKind::Int(4)],
            &[&4i32.to_be_bytes()[..], &42i32.to_be_bytes()].concat(),
        );
        assert_eq!(json.unwrap(), "[42]");
    }

    #[test]
    fn leaves_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.parquet");
        let payload = [&8i32.to_be_bytes()[..], &7i64.to_be_bytes()].concat();
        let leaves = vec![
            Leaf {
                anchor: None,
                fp: Fingerprint {
                    count: 3,
                    sum: [1, 2, 3, u64::MAX],
                },
            },
            Leaf {
                anchor: Some(Anchor::new(&[1, 2], &payload)),
                fp: Fingerprint {
                    count: 1,
                    sum: [9, 0, 0, 1],
                },
            },
        ];
        write_leaves(&path, &leaves, &[TypeKind::Int(8)]).unwrap();
        assert_eq!(read_leaves(&path).unwrap(), leaves);
    }
}
