//! Restore rows → a Parquet file whose Arrow schema is mapped exactly from the PostgreSQL types.
//!
//! The diff finds the rows to restore (or delete) and hands them over still in binary COPY form
//! ([`RowBatch`]); this sink appends them to Arrow builders column by column, cuts a
//! [`RecordBatch`] every 64k rows or 32 MiB, and streams it to a zstd-compressed Parquet file
//! (row groups of at most 128k rows or 64 MiB), so memory stays bounded however many rows come.
//! The file is written under a temporary name in the target directory and renamed into place by
//! [`ParquetSink::finish`]: a crash or an error never leaves a half file under the real name.
//!
//! Exactness is the contract: every value reads back (pyarrow, DuckDB, the `parquet` crate) as
//! exactly what PostgreSQL holds, or the write fails naming the column. Every field is nullable
//! (a delete row leaves its non-key columns NULL), NULL stays NULL, and every field carries the
//! metadata `pg.type` (the column's `format_type` text; `text` for companion and extra columns).
//!
//! | PostgreSQL kind | Arrow type | notes |
//! | --- | --- | --- |
//! | bool | Boolean | |
//! | int2 / int4 / int8 | Int16 / Int32 / Int64 | |
//! | float4 / float8 | Float32 / Float64 | the exact bits: NaN, ±Infinity and -0 kept |
//! | `numeric(p,s)`, 0 ≤ s ≤ p ≤ 38 | Decimal128(p, s) + `<name>__special` Utf8 | see below |
//! | any other numeric | Utf8, `pg.encoding` = `text` | numeric_out's text, scale kept: `3000.00` |
//! | text, varchar, name, enum labels | Utf8 | |
//! | bpchar | Utf8 | as stored, with its padding |
//! | bytea | Binary | |
//! | json / jsonb | Utf8, extension `arrow.json` | Parquet JSON logical type; jsonb without its version byte |
//! | inet / cidr | Utf8, `pg.encoding` = `text` | PostgreSQL's text form (`10.0.0.0/8`) |
//! | uuid | FixedSizeBinary(16), extension `arrow.uuid` | Parquet UUID logical type |
//! | date | Date32 | days from 1970-01-01 (PostgreSQL's days + 10957) |
//! | timestamp | Timestamp(µs, none) | µs from 1970-01-01 (PostgreSQL's µs + 946684800000000) |
//! | timestamptz | Timestamp(µs, "UTC") | as timestamp; the instant in UTC |
//! | time | Time64(µs) | `24:00:00` is kept as 86400000000 |
//! | timetz | Struct{time: Time64(µs), offset_seconds: Int32} | offset east of UTC (`+05:30` → 19800) |
//! | interval | Struct{months: Int32, days: Int32, microseconds: Int64} | the three stored fields as they are |
//! | array of K | List(K as above) + `<name>__dims` Utf8 | see below |
//! | composite, any other type | Binary, `pg.encoding` = `binary` | PostgreSQL's binary send form |
//!
//! Decisions where Arrow cannot say what PostgreSQL can:
//! - **numeric specials.** A Decimal cannot hold NaN or ±Infinity, which PostgreSQL allows even
//!   in `numeric(p,s)`. Decimal columns always get a companion nullable Utf8 field
//!   `<name>__special` (metadata `pg.companion` = `special`, `pg.companion_of` = the column):
//!   it holds `NaN`, `Infinity` or `-Infinity` with the decimal NULL in that row, and is NULL
//!   otherwise. A stored `numeric(p,s)` value always has exactly `s` fraction digits, so the
//!   Decimal's scale is the value's display scale; a value with another scale, or more than `p`
//!   digits, is refused rather than rounded. Negative scales and scales above the precision
//!   (PostgreSQL 15+) and numerics behind a domain (whose type name shows no typmod) map to the
//!   exact text.
//! - **numeric precision above 38.** Decimal256 would hold `numeric(50,10)` exactly, but DuckDB
//!   reads a Parquet decimal wider than 38 digits as DOUBLE, silently rounding it; those columns
//!   are the exact text instead, like unconstrained numeric.
//! - **infinite dates and timestamps.** PostgreSQL's `-infinity`/`infinity` (i32/i64 MIN/MAX)
//!   cannot be shifted to the Unix epoch. They map to `-MAX` and `MAX` of the Arrow storage type
//!   (`-2147483647`/`2147483647` days, `-9223372036854775807`/`9223372036854775807` µs): DuckDB
//!   reads exactly those as `-infinity`/`infinity` (and fails on i64::MIN), and every other
//!   reader keeps the integers. A finite value whose shifted form would reach or pass those
//!   sentinels (timestamps after about year 294247) is refused, so the mapping stays one to one.
//! - **arrays.** A PostgreSQL array type does not fix the number of dimensions (one `integer[]`
//!   column may hold 1-D and 2-D values) nor the lower bounds, and a schema cannot depend on the
//!   data. So the List holds the elements in row-major order (for a 1-D array with lower bound 1,
//!   the array itself), and the companion nullable Utf8 field `<name>__dims` (`pg.companion` =
//!   `dims`) holds PostgreSQL's `array_dims()` text (`[1:2][1:3]`, `[0:1]`) whenever the value is
//!   not empty and not a 1-D array with lower bound 1; it is NULL otherwise. Elements map as the
//!   table says, except numerics (always their exact text: a Decimal element has no room for
//!   NaN) and elements that are themselves arrays, composites or other types (binary send form).
//!   The item field carries `pg.type` = the element type.
//!
//! `extra` columns (pgsalvage's `action` and `class`) are non-nullable Utf8 after the data
//! columns. A column name used twice (say a table column named `action`, or `x` next to a
//! numeric `x` with its `x__special`) is refused when the sink is created.
//!
//! A value that fails to convert fails the write and abandons the file (its columns may hold
//! part of the row): every later call returns [`SinkError::Abandoned`] and the temporary file is
//! removed when the sink is dropped.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBufferBuilder, OffsetBufferBuilder};
use arrow_schema::extension::{Json, Uuid};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use tempfile::NamedTempFile;

use crate::key::render::render_text;
use crate::rows::batch::RowBatch;
use crate::shape::{TypeKind, ValueError};
use crate::value::{
    fixed, jsonb_text, parse_numeric, read_bool, read_int, Array, Decimal, Numeric,
};

/// Field metadata key: the PostgreSQL type name.
pub const META_PG_TYPE: &str = "pg.type";
/// Field metadata key: `binary` (send form) or `text` (output function) for encoded values.
pub const META_PG_ENCODING: &str = "pg.encoding";
/// Field metadata key on companion fields: `special` or `dims`.
pub const META_COMPANION: &str = "pg.companion";
/// Field metadata key on companion fields: the column they complete.
pub const META_COMPANION_OF: &str = "pg.companion_of";
/// Suffix of a Decimal column's companion holding NaN / Infinity / -Infinity.
pub const SPECIAL_SUFFIX: &str = "__special";
/// Suffix of an array column's companion holding `array_dims()` for non-default shapes.
pub const DIMS_SUFFIX: &str = "__dims";

const BATCH_ROWS: usize = 64 * 1024;
const BATCH_BYTES: usize = 32 << 20;
const ROW_GROUP_ROWS: usize = 128 * 1024;
const ROW_GROUP_BYTES: usize = 64 << 20;
const ZSTD_LEVEL: i32 = 3;
/// What a field costs in the builders beyond its bytes, for the batch byte bound.
const FIELD_OVERHEAD: usize = 8;

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Arrow's stand-ins for PostgreSQL's ±infinity, as DuckDB reads them.
const DAYS_INFINITY: i32 = i32::MAX;
const DAYS_NEG_INFINITY: i32 = -i32::MAX;
const MICROS_INFINITY: i64 = i64::MAX;
const MICROS_NEG_INFINITY: i64 = -i64::MAX;

/// One column to write: its name, value kind, and PostgreSQL type name as
/// `format_type(oid, typmod)` prints it (e.g. "numeric(12,2)", "character varying(20)",
/// "timestamp with time zone", "public.mood", "integer[]").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetColumn {
    pub name: String,
    pub kind: TypeKind,
    pub type_name: String,
}

impl ParquetColumn {
    pub fn new(name: impl Into<String>, kind: TypeKind, type_name: impl Into<String>) -> Self {
        ParquetColumn {
            name: name.into(),
            kind,
            type_name: type_name.into(),
        }
    }
}

/// Why a write failed; every message is one lowercase line.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("parquet file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("column {column:?}: {source}")]
    Malformed {
        column: String,
        #[source]
        source: ValueError,
    },
    #[error("column {column:?}: {reason}")]
    Unrepresentable { column: String, reason: String },
    #[error("column {column:?} appears twice in the parquet schema")]
    DuplicateColumn { column: String },
    #[error("row batch has {got} columns, the parquet file needs {expected}")]
    Width { expected: usize, got: usize },
    #[error("{nkey} key columns asked for, the parquet file has {columns} data columns")]
    KeyCount { nkey: usize, columns: usize },
    #[error("row {row} is beyond the batch's {len} rows")]
    NoSuchRow { row: usize, len: usize },
    #[error("{got} extra values given, the parquet file has {expected} extra columns")]
    ExtraCount { expected: usize, got: usize },
    #[error("parquet writer: {0}")]
    Parquet(#[from] ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("an earlier write failed, so the parquet file was abandoned")]
    Abandoned,
}

/// Why one value could not be appended, before the column is named.
#[derive(Debug)]
enum Refusal {
    Malformed(ValueError),
    Unrepresentable(String),
}

impl From<ValueError> for Refusal {
    fn from(e: ValueError) -> Self {
        Refusal::Malformed(e)
    }
}

impl Refusal {
    fn named(self, column: &str) -> SinkError {
        let column = column.to_string();
        match self {
            Refusal::Malformed(source) => SinkError::Malformed { column, source },
            Refusal::Unrepresentable(reason) => SinkError::Unrepresentable { column, reason },
        }
    }
}

fn unrepresentable(reason: impl Into<String>) -> Refusal {
    Refusal::Unrepresentable(reason.into())
}

/// Maps PostgreSQL columns to an Arrow schema (also used by tests and documentation).
pub fn arrow_schema(columns: &[ParquetColumn], extra: &[&str]) -> Schema {
    let mut fields: Vec<Field> = columns.iter().flat_map(column_fields).collect();
    fields.extend(extra.iter().map(|name| {
        Field::new(*name, DataType::Utf8, false).with_metadata(pg_type_metadata("text"))
    }));
    Schema::new(fields)
}

/// The fields of one column: the value field, then its companion when it has one.
fn column_fields(column: &ParquetColumn) -> Vec<Field> {
    let (name, type_name) = (column.name.as_str(), column.type_name.as_str());
    match Plan::of(column) {
        Plan::Leaf(leaf) => vec![leaf.field(name, type_name)],
        Plan::Decimal { precision, scale } => vec![
            Field::new(name, DataType::Decimal128(precision, scale), true)
                .with_metadata(pg_type_metadata(type_name)),
            companion_field(name, SPECIAL_SUFFIX, "special"),
        ],
        Plan::List(leaf) => vec![
            list_field(name, type_name, leaf),
            companion_field(name, DIMS_SUFFIX, "dims"),
        ],
    }
}

fn pg_type_metadata(type_name: &str) -> HashMap<String, String> {
    HashMap::from([(META_PG_TYPE.to_string(), type_name.to_string())])
}

fn companion_field(column: &str, suffix: &str, role: &str) -> Field {
    let mut metadata = pg_type_metadata("text");
    metadata.insert(META_COMPANION.to_string(), role.to_string());
    metadata.insert(META_COMPANION_OF.to_string(), column.to_string());
    Field::new(format!("{column}{suffix}"), DataType::Utf8, true).with_metadata(metadata)
}

fn list_field(name: &str, type_name: &str, leaf: Leaf) -> Field {
    let item = item_field(type_name, leaf);
    Field::new(name, DataType::List(Arc::new(item)), true)
        .with_metadata(pg_type_metadata(type_name))
}

fn item_field(type_name: &str, leaf: Leaf) -> Field {
    leaf.field("item", element_type_name(type_name))
}

/// `integer[]` → `integer`; a domain over an array type has no element name to take apart.
fn element_type_name(type_name: &str) -> &str {
    type_name.strip_suffix("[]").unwrap_or("unknown")
}

/// `numeric(p,s)` (or `numeric(p)`) as Decimal128 holds it and every reader reads it exactly:
/// 1 ≤ p ≤ 38 and 0 ≤ s ≤ p.
fn decimal_typmod(type_name: &str) -> Option<(u8, i8)> {
    let inner = type_name.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    let (precision, scale): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    let fits = (1..=38).contains(&precision) && scale >= 0 && scale as u8 <= precision;
    fits.then_some((precision, scale))
}

/// How one column maps to Arrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// One field of a leaf type.
    Leaf(Leaf),
    /// A Decimal field and its `__special` companion.
    Decimal { precision: u8, scale: i8 },
    /// A List of a leaf type and its `__dims` companion.
    List(Leaf),
}

impl Plan {
    fn of(column: &ParquetColumn) -> Plan {
        match &column.kind {
            TypeKind::Numeric => match decimal_typmod(&column.type_name) {
                Some((precision, scale)) => Plan::Decimal { precision, scale },
                None => Plan::Leaf(Leaf::of(&TypeKind::Numeric)),
            },
            TypeKind::Array(elem) => Plan::List(Leaf::of(elem)),
            kind => Plan::Leaf(Leaf::of(kind)),
        }
    }
}

/// A value kind that maps to one Arrow type on its own (a column's or an array element's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Text(TextForm),
    Bytea,
    /// PostgreSQL's binary send form of a type Arrow has no counterpart for.
    SendForm,
    Date,
    Timestamp,
    TimestampUtc,
    Time,
    TimeTz,
    Interval,
    Uuid,
}

/// Where a Utf8 value's text comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextForm {
    /// The bytes are the text (text, varchar, bpchar, enum labels).
    Plain,
    /// JSON text: json's bytes, jsonb's after the version byte.
    Json,
    Jsonb,
    /// PostgreSQL's output function of a kind with no Arrow counterpart.
    Numeric,
    Inet,
}

impl Leaf {
    fn of(kind: &TypeKind) -> Leaf {
        match kind {
            TypeKind::Bool => Leaf::Bool,
            TypeKind::Int(2) => Leaf::Int16,
            TypeKind::Int(4) => Leaf::Int32,
            TypeKind::Int(_) => Leaf::Int64,
            TypeKind::Float4 => Leaf::Float32,
            TypeKind::Float8 => Leaf::Float64,
            TypeKind::Numeric => Leaf::Text(TextForm::Numeric),
            TypeKind::Text | TypeKind::Bpchar => Leaf::Text(TextForm::Plain),
            TypeKind::Json => Leaf::Text(TextForm::Json),
            TypeKind::Jsonb => Leaf::Text(TextForm::Jsonb),
            TypeKind::Inet => Leaf::Text(TextForm::Inet),
            TypeKind::Bytea => Leaf::Bytea,
            TypeKind::Date => Leaf::Date,
            TypeKind::Timestamp => Leaf::Timestamp,
            TypeKind::TimestampTz => Leaf::TimestampUtc,
            TypeKind::Time => Leaf::Time,
            TypeKind::TimeTz => Leaf::TimeTz,
            TypeKind::Interval => Leaf::Interval,
            TypeKind::Uuid => Leaf::Uuid,
            TypeKind::Array(_) | TypeKind::Composite(_) | TypeKind::Other => Leaf::SendForm,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Leaf::Bool => DataType::Boolean,
            Leaf::Int16 => DataType::Int16,
            Leaf::Int32 => DataType::Int32,
            Leaf::Int64 => DataType::Int64,
            Leaf::Float32 => DataType::Float32,
            Leaf::Float64 => DataType::Float64,
            Leaf::Text(_) => DataType::Utf8,
            Leaf::Bytea | Leaf::SendForm => DataType::Binary,
            Leaf::Date => DataType::Date32,
            Leaf::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Leaf::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Leaf::Time => DataType::Time64(TimeUnit::Microsecond),
            Leaf::TimeTz => DataType::Struct(timetz_fields()),
            Leaf::Interval => DataType::Struct(interval_fields()),
            Leaf::Uuid => DataType::FixedSizeBinary(16),
        }
    }

    fn field(self, name: &str, type_name: &str) -> Field {
        let mut metadata = pg_type_metadata(type_name);
        let encoding = match self {
            Leaf::SendForm => Some("binary"),
            Leaf::Text(TextForm::Numeric | TextForm::Inet) => Some("text"),
            _ => None,
        };
        if let Some(encoding) = encoding {
            metadata.insert(META_PG_ENCODING.to_string(), encoding.to_string());
        }
        let field = Field::new(name, self.data_type(), true).with_metadata(metadata);
        // The canonical extensions make the parquet writer use the UUID and JSON logical types.
        match self {
            Leaf::Uuid => field.with_extension_type(Uuid),
            Leaf::Text(TextForm::Json | TextForm::Jsonb) => {
                field.with_extension_type(Json::default())
            }
            _ => field,
        }
    }
}

/// timetz: the local time and its offset east of UTC; never NULL inside a non-NULL value.
fn timetz_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", DataType::Time64(TimeUnit::Microsecond), false),
        Field::new("offset_seconds", DataType::Int32, false),
    ])
}

/// interval: its three independent fields, as PostgreSQL stores them.
fn interval_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("microseconds", DataType::Int64, false),
    ])
}

/// Writes rows to one Parquet file, renamed into place by [`ParquetSink::finish`].
pub struct ParquetSink {
    path: PathBuf,
    columns: Vec<ParquetColumn>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    extras: Vec<StringBuilder>,
    writer: ArrowWriter<NamedTempFile>,
    buffered_rows: usize,
    buffered_bytes: usize,
    written: u64,
    /// Reused for values rendered as text.
    scratch: String,
    abandoned: bool,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    /// Starts a file at `path` (written to a temporary file in the same directory and renamed
    /// into place by `finish`, so a crash never leaves a half file). `extra` names additional
    /// Utf8 columns appended after the data columns (pgsalvage passes ["action", "class"]).
    pub fn create(
        path: &Path,
        columns: Vec<ParquetColumn>,
        extra: &[&str],
    ) -> Result<ParquetSink, SinkError> {
        let schema = Arc::new(arrow_schema(&columns, extra));
        check_unique_names(&schema)?;
        let file = temp_file_beside(path)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()?))?;
        let builders = columns.iter().map(ColumnBuilder::new).collect();
        Ok(ParquetSink {
            path: path.to_path_buf(),
            columns,
            schema,
            builders,
            extras: extra.iter().map(|_| StringBuilder::new()).collect(),
            writer,
            buffered_rows: 0,
            buffered_bytes: 0,
            written: 0,
            scratch: String::new(),
            abandoned: false,
        })
    }

    /// Records `key = value` in the file's key-value metadata (a table's real name, which its
    /// file name may only approximate).
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        self.writer
            .append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                key.to_string(),
                value.to_string(),
            ));
    }

    /// Appends the given rows of a batch (binary values in column order) with their extra
    /// column values.
    pub fn write_rows(
        &mut self,
        batch: &RowBatch,
        rows: &[usize],
        extra: &[&str],
    ) -> Result<(), SinkError> {
        self.check_call(batch, rows, extra)?;
        if batch.ncols() != self.columns.len() {
            return Err(SinkError::Width {
                expected: self.columns.len(),
                got: batch.ncols(),
            });
        }
        let result = self.append_rows(batch, rows, self.columns.len(), extra);
        self.abandon_on_error(result)
    }

    /// Appends a row given only its first `nkey` key columns from `batch` (the other data
    /// columns NULL): for deletes.
    pub fn write_keys(
        &mut self,
        batch: &RowBatch,
        rows: &[usize],
        nkey: usize,
        extra: &[&str],
    ) -> Result<(), SinkError> {
        self.check_call(batch, rows, extra)?;
        if nkey > self.columns.len() {
            return Err(SinkError::KeyCount {
                nkey,
                columns: self.columns.len(),
            });
        }
        // The batch may hold the whole rows or just their keys.
        if batch.ncols() < nkey {
            return Err(SinkError::Width {
                expected: nkey,
                got: batch.ncols(),
            });
        }
        let result = self.append_rows(batch, rows, nkey, extra);
        self.abandon_on_error(result)
    }

    /// Flushes and renames the file into place; returns the number of rows written.
    pub fn finish(mut self) -> Result<u64, SinkError> {
        if self.abandoned {
            return Err(SinkError::Abandoned);
        }
        self.flush()?;
        let file = self.writer.into_inner()?;
        let io_error = |source| SinkError::Io {
            path: self.path.clone(),
            source,
        };
        // The data must be on disk before the name points at it.
        file.as_file().sync_all().map_err(io_error)?;
        file.persist(&self.path).map_err(|e| io_error(e.error))?;
        sync_parent(&self.path).map_err(io_error)?;
        Ok(self.written)
    }

    /// Refuses a call that does not fit the file before anything is appended.
    fn check_call(
        &self,
        batch: &RowBatch,
        rows: &[usize],
        extra: &[&str],
    ) -> Result<(), SinkError> {
        if self.abandoned {
            return Err(SinkError::Abandoned);
        }
        if extra.len() != self.extras.len() {
            return Err(SinkError::ExtraCount {
                expected: self.extras.len(),
                got: extra.len(),
            });
        }
        match rows.iter().find(|&&row| row >= batch.len()) {
            Some(&row) => Err(SinkError::NoSuchRow {
                row,
                len: batch.len(),
            }),
            None => Ok(()),
        }
    }

    fn abandon_on_error(&mut self, result: Result<(), SinkError>) -> Result<(), SinkError> {
        if result.is_err() {
            self.abandoned = true;
        }
        result
    }

    /// Appends rows whose first `ncols` columns come from `batch`, the rest NULL.
    fn append_rows(
        &mut self,
        batch: &RowBatch,
        rows: &[usize],
        ncols: usize,
        extra: &[&str],
    ) -> Result<(), SinkError> {
        for &row in rows {
            self.append_row(batch, row, ncols)?;
            for (builder, value) in self.extras.iter_mut().zip(extra) {
                builder.append_value(value);
            }
            self.buffered_rows += 1;
            if self.buffered_rows >= BATCH_ROWS || self.buffered_bytes >= BATCH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn append_row(&mut self, batch: &RowBatch, row: usize, ncols: usize) -> Result<(), SinkError> {
        for (col, builder) in self.builders.iter_mut().enumerate() {
            let value = if col < ncols {
                batch.field(row, col)
            } else {
                None
            };
            self.buffered_bytes += FIELD_OVERHEAD + value.map_or(0, <[u8]>::len);
            builder
                .append(value, &mut self.scratch)
                .map_err(|refusal| refusal.named(&self.columns[col].name))?;
        }
        Ok(())
    }

    /// Hands the buffered rows to the parquet writer as one record batch.
    fn flush(&mut self) -> Result<(), SinkError> {
        if self.buffered_rows == 0 {
            return Ok(());
        }
        let mut arrays = Vec::with_capacity(self.schema.fields().len());
        for builder in &mut self.builders {
            builder.finish(&mut arrays)?;
        }
        for builder in &mut self.extras {
            arrays.push(Arc::new(builder.finish()));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.writer.write(&batch)?;
        self.written += self.buffered_rows as u64;
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        Ok(())
    }
}

fn check_unique_names(schema: &Schema) -> Result<(), SinkError> {
    let mut seen = HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().as_str()) {
            return Err(SinkError::DuplicateColumn {
                column: field.name().clone(),
            });
        }
    }
    Ok(())
}

fn writer_properties() -> Result<WriterProperties, SinkError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build())
}

/// The directory a path names its file in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A hidden temporary file in the target's directory, so the final rename stays on one
/// filesystem (and is atomic); removed on drop unless persisted.
fn temp_file_beside(path: &Path) -> Result<NamedTempFile, SinkError> {
    let stem = path
        .file_name()
        .map_or_else(|| "parquet".into(), |n| n.to_string_lossy());
    let prefix = format!(".{stem}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    // A temporary file is private (0600); the finished file is an ordinary one (0666 less the
    // umask), as any other output of the tool.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder
        .tempfile_in(parent_dir(path))
        .map_err(|source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Makes the rename itself durable (best effort where directories cannot be opened).
fn sync_parent(path: &Path) -> io::Result<()> {
    match std::fs::File::open(parent_dir(path)) {
        Ok(dir) => dir.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// The builders of one column: its field and companion, if any.
enum ColumnBuilder {
    Leaf(LeafBuilder),
    Decimal(DecimalBuilder),
    List(ListBuilder),
}

impl ColumnBuilder {
    fn new(column: &ParquetColumn) -> ColumnBuilder {
        match Plan::of(column) {
            Plan::Leaf(leaf) => ColumnBuilder::Leaf(LeafBuilder::new(leaf)),
            Plan::Decimal { precision, scale } => {
                ColumnBuilder::Decimal(DecimalBuilder::new(precision, scale))
            }
            Plan::List(leaf) => {
                ColumnBuilder::List(ListBuilder::new(item_field(&column.type_name, leaf), leaf))
            }
        }
    }

    fn append(&mut self, raw: Option<&[u8]>, scratch: &mut String) -> Result<(), Refusal> {
        match (self, raw) {
            (ColumnBuilder::Leaf(b), None) => b.append_null(),
            (ColumnBuilder::Leaf(b), Some(raw)) => b.append(raw, scratch)?,
            (ColumnBuilder::Decimal(b), None) => b.append_null(),
            (ColumnBuilder::Decimal(b), Some(raw)) => b.append(raw)?,
            (ColumnBuilder::List(b), None) => b.append_null(),
            (ColumnBuilder::List(b), Some(raw)) => b.append(raw, scratch)?,
        }
        Ok(())
    }

    /// Moves the buffered values out as arrays (one per field), leaving the builder empty.
    fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        match self {
            ColumnBuilder::Leaf(b) => out.push(b.finish()?),
            ColumnBuilder::Decimal(b) => {
                out.push(Arc::new(b.values.finish()));
                out.push(Arc::new(b.special.finish()));
            }
            ColumnBuilder::List(b) => {
                out.push(b.finish_list()?);
                out.push(Arc::new(b.dims.finish()));
            }
        }
        Ok(())
    }
}

/// Builds the arrays of one leaf type.
enum LeafBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Text(StringBuilder, TextForm),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    TimeTz(TimeTzBuilder),
    Interval(IntervalBuilder),
    Uuid(FixedSizeBinaryBuilder),
}

impl LeafBuilder {
    fn new(leaf: Leaf) -> LeafBuilder {
        match leaf {
            Leaf::Bool => LeafBuilder::Bool(BooleanBuilder::new()),
            Leaf::Int16 => LeafBuilder::Int16(Int16Builder::new()),
            Leaf::Int32 => LeafBuilder::Int32(Int32Builder::new()),
            Leaf::Int64 => LeafBuilder::Int64(Int64Builder::new()),
            Leaf::Float32 => LeafBuilder::Float32(Float32Builder::new()),
            Leaf::Float64 => LeafBuilder::Float64(Float64Builder::new()),
            Leaf::Text(form) => LeafBuilder::Text(StringBuilder::new(), form),
            Leaf::Bytea | Leaf::SendForm => LeafBuilder::Binary(BinaryBuilder::new()),
            Leaf::Date => LeafBuilder::Date(Date32Builder::new()),
            Leaf::Timestamp => LeafBuilder::Timestamp(TimestampMicrosecondBuilder::new()),
            Leaf::TimestampUtc => {
                LeafBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            Leaf::Time => LeafBuilder::Time(Time64MicrosecondBuilder::new()),
            Leaf::TimeTz => LeafBuilder::TimeTz(TimeTzBuilder::new()),
            Leaf::Interval => LeafBuilder::Interval(IntervalBuilder::new()),
            Leaf::Uuid => LeafBuilder::Uuid(FixedSizeBinaryBuilder::new(16)),
        }
    }

    fn append_null(&mut self) {
        match self {
            LeafBuilder::Bool(b) => b.append_null(),
            LeafBuilder::Int16(b) => b.append_null(),
            LeafBuilder::Int32(b) => b.append_null(),
            LeafBuilder::Int64(b) => b.append_null(),
            LeafBuilder::Float32(b) => b.append_null(),
            LeafBuilder::Float64(b) => b.append_null(),
            LeafBuilder::Text(b, _) => b.append_null(),
            LeafBuilder::Binary(b) => b.append_null(),
            LeafBuilder::Date(b) => b.append_null(),
            LeafBuilder::Timestamp(b) => b.append_null(),
            LeafBuilder::Time(b) => b.append_null(),
            LeafBuilder::TimeTz(b) => b.append(None),
            LeafBuilder::Interval(b) => b.append(None),
            LeafBuilder::Uuid(b) => b.append_null(),
        }
    }

    /// Appends one non-NULL value from its binary send form.
    fn append(&mut self, raw: &[u8], scratch: &mut String) -> Result<(), Refusal> {
        match self {
            LeafBuilder::Bool(b) => b.append_value(read_bool(raw)?),
            LeafBuilder::Int16(b) => b.append_value(i16::from_be_bytes(fixed(&INT2, raw)?)),
            LeafBuilder::Int32(b) => b.append_value(i32::from_be_bytes(fixed(&INT4, raw)?)),
            LeafBuilder::Int64(b) => b.append_value(read_int(8, raw)?),
            LeafBuilder::Float32(b) => {
                b.append_value(f32::from_be_bytes(fixed(&TypeKind::Float4, raw)?))
            }
            LeafBuilder::Float64(b) => {
                b.append_value(f64::from_be_bytes(fixed(&TypeKind::Float8, raw)?))
            }
            LeafBuilder::Text(b, form) => b.append_value(text_value(*form, raw, scratch)?),
            LeafBuilder::Binary(b) => b.append_value(raw),
            LeafBuilder::Date(b) => b.append_value(unix_days(raw)?),
            LeafBuilder::Timestamp(b) => b.append_value(unix_micros(raw)?),
            LeafBuilder::Time(b) => {
                b.append_value(i64::from_be_bytes(fixed(&TypeKind::Time, raw)?))
            }
            LeafBuilder::TimeTz(b) => b.append(Some(timetz(raw)?)),
            LeafBuilder::Interval(b) => b.append(Some(interval(raw)?)),
            LeafBuilder::Uuid(b) => b
                .append_value(fixed::<16>(&TypeKind::Uuid, raw)?)
                .map_err(|e| unrepresentable(e.to_string()))?,
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            LeafBuilder::Bool(b) => Arc::new(b.finish()),
            LeafBuilder::Int16(b) => Arc::new(b.finish()),
            LeafBuilder::Int32(b) => Arc::new(b.finish()),
            LeafBuilder::Int64(b) => Arc::new(b.finish()),
            LeafBuilder::Float32(b) => Arc::new(b.finish()),
            LeafBuilder::Float64(b) => Arc::new(b.finish()),
            LeafBuilder::Text(b, _) => Arc::new(b.finish()),
            LeafBuilder::Binary(b) => Arc::new(b.finish()),
            LeafBuilder::Date(b) => Arc::new(b.finish()),
            LeafBuilder::Timestamp(b) => Arc::new(b.finish()),
            LeafBuilder::Time(b) => Arc::new(b.finish()),
            LeafBuilder::TimeTz(b) => b.finish()?,
            LeafBuilder::Interval(b) => b.finish()?,
            LeafBuilder::Uuid(b) => Arc::new(b.finish()),
        })
    }
}

const INT2: TypeKind = TypeKind::Int(2);
const INT4: TypeKind = TypeKind::Int(4);

/// The Utf8 text of a value: its own bytes (checked to be UTF-8) or its PostgreSQL text form.
fn text_value<'a>(
    form: TextForm,
    raw: &'a [u8],
    scratch: &'a mut String,
) -> Result<&'a str, Refusal> {
    let kind = match form {
        TextForm::Plain => return utf8("text", raw),
        TextForm::Json => return utf8("json", raw),
        TextForm::Jsonb => return utf8("jsonb", jsonb_text(raw)?),
        TextForm::Numeric => TypeKind::Numeric,
        TextForm::Inet => TypeKind::Inet,
    };
    scratch.clear();
    render_text(&kind, raw, scratch)?;
    Ok(scratch.as_str())
}

fn utf8<'a>(type_name: &'static str, raw: &'a [u8]) -> Result<&'a str, Refusal> {
    std::str::from_utf8(raw).map_err(|_| ValueError::new(type_name, "not valid UTF-8").into())
}

/// A date as days from 1970-01-01; ±infinity as ±i32::MAX.
fn unix_days(raw: &[u8]) -> Result<i32, Refusal> {
    match i32::from_be_bytes(fixed(&TypeKind::Date, raw)?) {
        i32::MIN => Ok(DAYS_NEG_INFINITY),
        i32::MAX => Ok(DAYS_INFINITY),
        days => days
            .checked_add(PG_EPOCH_DAYS)
            .filter(|d| (DAYS_NEG_INFINITY + 1..DAYS_INFINITY).contains(d))
            .ok_or_else(|| unrepresentable(format!("date {days} days from 2000 is out of range"))),
    }
}

/// A timestamp as µs from 1970-01-01; ±infinity as ±i64::MAX.
fn unix_micros(raw: &[u8]) -> Result<i64, Refusal> {
    match i64::from_be_bytes(fixed(&TypeKind::Timestamp, raw)?) {
        i64::MIN => Ok(MICROS_NEG_INFINITY),
        i64::MAX => Ok(MICROS_INFINITY),
        micros => micros
            .checked_add(PG_EPOCH_MICROS)
            .filter(|m| (MICROS_NEG_INFINITY + 1..MICROS_INFINITY).contains(m))
            .ok_or_else(|| {
                unrepresentable(format!("timestamp {micros} µs from 2000 is out of range"))
            }),
    }
}

/// timetz: the time of day, and the zone turned from seconds west to seconds east of UTC.
fn timetz(raw: &[u8]) -> Result<(i64, i32), Refusal> {
    let raw: [u8; 12] = fixed(&TypeKind::TimeTz, raw)?;
    let west = i32::from_be_bytes(be_bytes(&raw, 8));
    let east = west
        .checked_neg()
        .ok_or(ValueError::new("timetz", "zone out of range"))?;
    Ok((i64::from_be_bytes(be_bytes(&raw, 0)), east))
}

/// interval: (months, days, microseconds) from interval_send's (time, day, month).
fn interval(raw: &[u8]) -> Result<(i32, i32, i64), Refusal> {
    let raw: [u8; 16] = fixed(&TypeKind::Interval, raw)?;
    Ok((
        i32::from_be_bytes(be_bytes(&raw, 12)),
        i32::from_be_bytes(be_bytes(&raw, 8)),
        i64::from_be_bytes(be_bytes(&raw, 0)),
    ))
}

/// `N` bytes at `at` of a value whose length was checked.
fn be_bytes<const N: usize>(raw: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&raw[at..at + N]);
    out
}

/// timetz values: the struct's validity beside its children, which are never NULL themselves
/// (a NULL value keeps zeros there).
struct TimeTzBuilder {
    time: Time64MicrosecondBuilder,
    offset: Int32Builder,
    nulls: NullBufferBuilder,
}

impl TimeTzBuilder {
    fn new() -> Self {
        TimeTzBuilder {
            time: Time64MicrosecondBuilder::new(),
            offset: Int32Builder::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, value: Option<(i64, i32)>) {
        let (time, offset) = value.unwrap_or_default();
        self.time.append_value(time);
        self.offset.append_value(offset);
        self.nulls.append(value.is_some());
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let children: Vec<ArrayRef> =
            vec![Arc::new(self.time.finish()), Arc::new(self.offset.finish())];
        let nulls = self.nulls.finish();
        Ok(Arc::new(StructArray::try_new(
            timetz_fields(),
            children,
            nulls,
        )?))
    }
}

/// interval values, built as [`TimeTzBuilder`] is.
struct IntervalBuilder {
    months: Int32Builder,
    days: Int32Builder,
    micros: Int64Builder,
    nulls: NullBufferBuilder,
}

impl IntervalBuilder {
    fn new() -> Self {
        IntervalBuilder {
            months: Int32Builder::new(),
            days: Int32Builder::new(),
            micros: Int64Builder::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, value: Option<(i32, i32, i64)>) {
        let (months, days, micros) = value.unwrap_or_default();
        self.months.append_value(months);
        self.days.append_value(days);
        self.micros.append_value(micros);
        self.nulls.append(value.is_some());
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.months.finish()),
            Arc::new(self.days.finish()),
            Arc::new(self.micros.finish()),
        ];
        let nulls = self.nulls.finish();
        Ok(Arc::new(StructArray::try_new(
            interval_fields(),
            children,
            nulls,
        )?))
    }
}

/// A `numeric(p,s)` column: the Decimal128 values and the `__special` companion.
struct DecimalBuilder {
    values: Decimal128Builder,
    special: StringBuilder,
    precision: u8,
    scale: u16,
    /// 10^precision: the smallest magnitude that does not fit.
    limit: i128,
}

impl DecimalBuilder {
    fn new(precision: u8, scale: i8) -> Self {
        DecimalBuilder {
            values: Decimal128Builder::new().with_data_type(DataType::Decimal128(precision, scale)),
            special: StringBuilder::new(),
            precision,
            scale: scale.unsigned_abs().into(),
            limit: 10i128.pow(u32::from(precision)),
        }
    }

    fn append_null(&mut self) {
        self.values.append_null();
        self.special.append_null();
    }

    fn append(&mut self, raw: &[u8]) -> Result<(), Refusal> {
        let special = match parse_numeric(raw)? {
            Numeric::Finite(d) => {
                self.values.append_value(self.unscaled(&d)?);
                self.special.append_null();
                return Ok(());
            }
            Numeric::NaN => "NaN",
            Numeric::Infinity => "Infinity",
            Numeric::NegInfinity => "-Infinity",
        };
        self.values.append_null();
        self.special.append_value(special);
        Ok(())
    }

    /// The value × 10^scale, refused unless it is exact at the column's precision and scale.
    fn unscaled(&self, d: &Decimal<'_>) -> Result<i128, Refusal> {
        if d.dscale != self.scale {
            return Err(unrepresentable(format!(
                "numeric value with {} fraction digits in a column of scale {}",
                d.dscale, self.scale
            )));
        }
        let magnitude = unscaled_magnitude(d, self.scale)
            .filter(|m| *m < self.limit)
            .ok_or_else(|| {
                unrepresentable(format!(
                    "numeric value has more than {} digits",
                    self.precision
                ))
            })?;
        Ok(if d.negative { -magnitude } else { magnitude })
    }
}

/// |value| × 10^scale as an integer, None when it overflows. The digits past `scale` are zero:
/// parse_numeric refuses digits past the value's dscale, which the caller checked is `scale`.
fn unscaled_magnitude(d: &Decimal<'_>, scale: u16) -> Option<i128> {
    let groups = i32::from(scale.div_ceil(4));
    let mut value: i128 = 0;
    for power in (-groups..=d.weight).rev() {
        let digit = i128::from(d.digit(usize::try_from(d.weight - power).ok()?));
        // The last fraction group holds only the scale's remaining places (the rest are zero);
        // taking just those keeps a 38-digit value from overflowing on its way.
        let places = if power == -groups && groups > 0 {
            u32::from(scale) - 4 * (groups as u32 - 1)
        } else {
            4
        };
        value = value
            .checked_mul(10i128.pow(places))?
            .checked_add(digit / 10i128.pow(4 - places))?;
    }
    Some(value)
}

/// An array column: the List (offsets, validity, elements) and the `__dims` companion.
struct ListBuilder {
    item: FieldRef,
    offsets: OffsetBufferBuilder<i32>,
    nulls: NullBufferBuilder,
    items: LeafBuilder,
    dims: StringBuilder,
}

impl ListBuilder {
    fn new(item: Field, leaf: Leaf) -> Self {
        ListBuilder {
            item: Arc::new(item),
            offsets: OffsetBufferBuilder::new(0),
            nulls: NullBufferBuilder::new(0),
            items: LeafBuilder::new(leaf),
            dims: StringBuilder::new(),
        }
    }

    fn append_null(&mut self) {
        self.offsets.push_length(0);
        self.nulls.append_null();
        self.dims.append_null();
    }

    fn append(&mut self, raw: &[u8], scratch: &mut String) -> Result<(), Refusal> {
        let array = Array::parse(raw)?;
        for element in array.elements() {
            match element {
                Some(value) => self.items.append(value, scratch)?,
                None => self.items.append_null(),
            }
        }
        self.offsets
            .try_push_length(array.items)
            .map_err(|_| unrepresentable("too many array elements for one batch"))?;
        self.nulls.append_non_null();
        match dims_text(&array.dims) {
            Some(text) => self.dims.append_value(text),
            None => self.dims.append_null(),
        }
        Ok(())
    }

    fn finish_list(&mut self) -> Result<ArrayRef, ArrowError> {
        let offsets = std::mem::replace(&mut self.offsets, OffsetBufferBuilder::new(0)).finish();
        let values = self.items.finish()?;
        let nulls = self.nulls.finish();
        Ok(Arc::new(ListArray::try_new(
            self.item.clone(),
            offsets,
            values,
            nulls,
        )?))
    }
}

/// PostgreSQL's `array_dims()` text, unless the shape is the one a plain list implies (empty,
/// or one dimension from 1).
fn dims_text(dims: &[(i32, i32)]) -> Option<String> {
    if matches!(dims, [] | [(_, 1)]) {
        return None;
    }
    let mut text = String::new();
    for &(len, lower) in dims {
        let upper = i64::from(lower) + i64::from(len) - 1;
        let _ = write!(text, "[{lower}:{upper}]");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::batch::CopyDecoder;
    use crate::value::testing::{array_bytes, composite_bytes, inet_bytes, numeric_from_str};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Float32Type, Float64Type};
    use arrow_array::{
        Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray,
        Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, StringArray,
        Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use arrow_buffer::{NullBuffer, OffsetBuffer};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    type Raw = Option<Vec<u8>>;

    const DAY: i64 = 86_400_000_000;
    const ROWS: usize = 6;
    const EXTRA: [&str; 2] = ["action", "class"];

    // ---- binary send forms ----

    fn be<const N: usize>(bytes: [u8; N]) -> Raw {
        Some(bytes.to_vec())
    }

    fn num(text: &str) -> Raw {
        Some(numeric_from_str(text))
    }

    fn text(s: &str) -> Raw {
        Some(s.as_bytes().to_vec())
    }

    fn jsonb(s: &str) -> Raw {
        let mut out = vec![1];
        out.extend_from_slice(s.as_bytes());
        Some(out)
    }

    fn timetz_raw(micros: i64, west: i32) -> Raw {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(&west.to_be_bytes());
        Some(raw)
    }

    fn interval_raw(micros: i64, days: i32, months: i32) -> Raw {
        let mut raw = micros.to_be_bytes().to_vec();
        raw.extend_from_slice(&days.to_be_bytes());
        raw.extend_from_slice(&months.to_be_bytes());
        Some(raw)
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr(oid: u32, dims: &[(i32, i32)], elems: &[Raw]) -> Raw {
        Some(array_bytes(oid, dims, elems))
    }

    fn ints(values: &[Option<i32>]) -> Vec<Raw> {
        values
            .iter()
            .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
            .collect()
    }

    fn texts(values: &[Option<&str>]) -> Vec<Raw> {
        values.iter().map(|v| v.and_then(text)).collect()
    }

    fn batch_of(rows: &[Vec<Raw>], ncols: usize) -> RowBatch {
        let mut decoder = CopyDecoder::new(ncols);
        decoder
            .push(&crate::rows::batch::tests::copy_stream(rows))
            .unwrap();
        decoder.finish().unwrap().unwrap()
    }

    /// Rows from per-column values (every column has `n` values).
    fn transpose(columns: &[Vec<Raw>], n: usize) -> Vec<Vec<Raw>> {
        (0..n)
            .map(|r| columns.iter().map(|c| c[r].clone()).collect())
            .collect()
    }

    fn read_back(path: &Path) -> RecordBatch {
        let file = std::fs::File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .with_batch_size(1 << 20)
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1, "one batch expected");
        batches.into_iter().next().unwrap()
    }

    // ---- expected arrays ----

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    fn utc(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }

    fn timetz_array(values: &[Option<(i64, i32)>]) -> ArrayRef {
        let times: Vec<i64> = values.iter().map(|v| v.unwrap_or_default().0).collect();
        let offsets: Vec<i32> = values.iter().map(|v| v.unwrap_or_default().1).collect();
        let children: Vec<ArrayRef> = vec![
            Arc::new(Time64MicrosecondArray::from(times)),
            Arc::new(Int32Array::from(offsets)),
        ];
        let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
        Arc::new(StructArray::try_new(timetz_fields(), children, Some(nulls)).unwrap())
    }

    fn interval_array(values: &[Option<(i32, i32, i64)>]) -> ArrayRef {
        let get = |v: &Option<(i32, i32, i64)>| v.unwrap_or_default();
        let children: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(
                values.iter().map(|v| get(v).0),
            )),
            Arc::new(Int32Array::from_iter_values(
                values.iter().map(|v| get(v).1),
            )),
            Arc::new(Int64Array::from_iter_values(
                values.iter().map(|v| get(v).2),
            )),
        ];
        let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
        Arc::new(StructArray::try_new(interval_fields(), children, Some(nulls)).unwrap())
    }

    /// A list of `values` cut into rows of `lens` elements (None: a NULL list).
    fn list(column: &ParquetColumn, values: ArrayRef, lens: &[Option<usize>]) -> ArrayRef {
        let TypeKind::Array(elem) = &column.kind else {
            panic!("not an array column")
        };
        let item = Arc::new(item_field(&column.type_name, Leaf::of(elem)));
        let offsets = OffsetBuffer::from_lengths(lens.iter().map(|l| l.unwrap_or(0)));
        let nulls = NullBuffer::from(lens.iter().map(Option::is_some).collect::<Vec<_>>());
        Arc::new(ListArray::try_new(item, offsets, values, Some(nulls)).unwrap())
    }

    fn uuids(values: &[Option<&str>]) -> ArrayRef {
        let bytes = values.iter().map(|v| v.map(hex));
        Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(bytes, 16).unwrap())
    }

    fn binaries(values: &[Option<&[u8]>]) -> ArrayRef {
        Arc::new(BinaryArray::from_opt_vec(values.to_vec()))
    }

    fn decimals(values: Vec<Option<i128>>, precision: u8, scale: i8) -> ArrayRef {
        Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(precision, scale)
                .unwrap(),
        )
    }

    /// One column of the every-kind file: its raw values and its expected arrays (one per field).
    struct Case {
        column: ParquetColumn,
        raw: Vec<Raw>,
        expected: Vec<ArrayRef>,
        duckdb_type: &'static str,
    }

    fn case(
        name: &str,
        kind: TypeKind,
        type_name: &str,
        raw: Vec<Raw>,
        expected: Vec<ArrayRef>,
        duckdb_type: &'static str,
    ) -> Case {
        assert_eq!(raw.len(), ROWS, "{name}");
        Case {
            column: ParquetColumn::new(name, kind, type_name),
            raw,
            expected,
            duckdb_type,
        }
    }

    fn array_of(kind: TypeKind) -> TypeKind {
        TypeKind::Array(Box::new(kind))
    }

    fn big_numeric() -> String {
        format!("{}.5", "1234567890".repeat(100))
    }

    fn scalar_cases() -> Vec<Case> {
        let mut cases = vec![
            case(
                "b",
                TypeKind::Bool,
                "boolean",
                vec![be([1]), be([0]), None, be([1]), be([0]), be([1])],
                vec![Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                    Some(false),
                    Some(true),
                ]))],
                "BOOLEAN",
            ),
            case(
                "i2",
                TypeKind::Int(2),
                "smallint",
                [
                    Some(i16::MIN),
                    Some(i16::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(1),
                ]
                .iter()
                .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
                .collect(),
                vec![Arc::new(Int16Array::from(vec![
                    Some(i16::MIN),
                    Some(i16::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(1),
                ]))],
                "SMALLINT",
            ),
            case(
                "i4",
                TypeKind::Int(4),
                "integer",
                ints(&[
                    Some(i32::MIN),
                    Some(i32::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(42),
                ]),
                vec![Arc::new(Int32Array::from(vec![
                    Some(i32::MIN),
                    Some(i32::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(42),
                ]))],
                "INTEGER",
            ),
            case(
                "i8",
                TypeKind::Int(8),
                "bigint",
                [
                    Some(i64::MIN),
                    Some(i64::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(42),
                ]
                .iter()
                .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
                .collect(),
                vec![Arc::new(Int64Array::from(vec![
                    Some(i64::MIN),
                    Some(i64::MAX),
                    None,
                    Some(0),
                    Some(-1),
                    Some(42),
                ]))],
                "BIGINT",
            ),
        ];
        cases.extend(float_cases());
        cases.extend(numeric_cases());
        cases.extend(text_cases());
        cases.extend(time_cases());
        cases.extend(other_scalar_cases());
        cases
    }

    fn float_cases() -> Vec<Case> {
        let f4 = [
            Some(f32::NAN),
            Some(-0.0),
            Some(f32::INFINITY),
            Some(f32::NEG_INFINITY),
            None,
            Some(f32::MIN_POSITIVE),
        ];
        let f8 = [
            Some(f64::NAN),
            Some(-0.0),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
            Some(f64::from_bits(1)),
        ];
        vec![
            case(
                "f4",
                TypeKind::Float4,
                "real",
                f4.iter()
                    .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
                    .collect(),
                vec![Arc::new(Float32Array::from(f4.to_vec()))],
                "FLOAT",
            ),
            case(
                "f8",
                TypeKind::Float8,
                "double precision",
                f8.iter()
                    .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
                    .collect(),
                vec![Arc::new(Float64Array::from(f8.to_vec()))],
                "DOUBLE",
            ),
        ]
    }

    fn numeric_cases() -> Vec<Case> {
        let big = big_numeric();
        let free = [
            Some(big.as_str()),
            Some("3000.00"),
            Some("NaN"),
            Some("-Infinity"),
            None,
            Some("-0.000001"),
        ];
        vec![
            case(
                "n",
                TypeKind::Numeric,
                "numeric",
                free.iter().map(|v| v.and_then(num)).collect(),
                vec![strings(&free)],
                "VARCHAR",
            ),
            case(
                "n12",
                TypeKind::Numeric,
                "numeric(12,2)",
                vec![
                    num("3000.00"),
                    num("NaN"),
                    None,
                    num("-9999999999.99"),
                    num("0.00"),
                    num("Infinity"),
                ],
                vec![
                    decimals(
                        vec![
                            Some(300_000),
                            None,
                            None,
                            Some(-999_999_999_999),
                            Some(0),
                            None,
                        ],
                        12,
                        2,
                    ),
                    strings(&[None, Some("NaN"), None, None, None, Some("Infinity")]),
                ],
                "DECIMAL(12,2)",
            ),
            case(
                "n38",
                TypeKind::Numeric,
                "numeric(38,5)",
                vec![
                    num("123456789012345678901234567890123.45678"),
                    num("-999999999999999999999999999999999.99999"),
                    None,
                    num("-0.00001"),
                    num("-Infinity"),
                    num("1.00000"),
                ],
                vec![
                    decimals(
                        vec![
                            Some(12_345_678_901_234_567_890_123_456_789_012_345_678),
                            Some(-99_999_999_999_999_999_999_999_999_999_999_999_999),
                            None,
                            Some(-1),
                            None,
                            Some(100_000),
                        ],
                        38,
                        5,
                    ),
                    strings(&[None, None, None, None, Some("-Infinity"), None]),
                ],
                "DECIMAL(38,5)",
            ),
            case(
                "n50",
                TypeKind::Numeric,
                "numeric(50,10)",
                vec![
                    num("1234567890123456789012345678901234567890.1234567890"),
                    num("-0.0000000001"),
                    None,
                    num("NaN"),
                    num("0.0000000000"),
                    num("7.0000000000"),
                ],
                vec![strings(&[
                    Some("1234567890123456789012345678901234567890.1234567890"),
                    Some("-0.0000000001"),
                    None,
                    Some("NaN"),
                    Some("0.0000000000"),
                    Some("7.0000000000"),
                ])],
                "VARCHAR",
            ),
        ]
    }

    fn text_cases() -> Vec<Case> {
        let t = [
            Some(""),
            Some("héllo wörld ✓ 𝄞"),
            None,
            Some("line\nbreak\ttab"),
            Some("NULL"),
            Some("'quote\"\\"),
        ];
        let bp = [
            Some("ab   "),
            Some("     "),
            None,
            Some("é    "),
            Some("abcde"),
            Some("x    "),
        ];
        let mood = [
            Some("happy"),
            Some("sad"),
            None,
            Some("ok"),
            Some("😀"),
            Some("sad"),
        ];
        vec![
            case(
                "t",
                TypeKind::Text,
                "text",
                texts(&t),
                vec![strings(&t)],
                "VARCHAR",
            ),
            case(
                "bp",
                TypeKind::Bpchar,
                "character(5)",
                texts(&bp),
                vec![strings(&bp)],
                "VARCHAR",
            ),
            case(
                "mood",
                TypeKind::Text,
                "public.mood",
                texts(&mood),
                vec![strings(&mood)],
                "VARCHAR",
            ),
            case(
                "vc",
                TypeKind::Text,
                "character varying(20)",
                texts(&[Some("x"), None, None, None, None, Some("y")]),
                vec![strings(&[Some("x"), None, None, None, None, Some("y")])],
                "VARCHAR",
            ),
            case(
                "by",
                TypeKind::Bytea,
                "bytea",
                vec![
                    Some(vec![]),
                    Some(vec![0, 255, 1, 0]),
                    None,
                    Some(vec![0x5c]),
                    Some(vec![7; 300]),
                    Some(vec![0]),
                ],
                vec![binaries(&[
                    Some(&[]),
                    Some(&[0, 255, 1, 0]),
                    None,
                    Some(&[0x5c]),
                    Some(&[7; 300]),
                    Some(&[0]),
                ])],
                "BLOB",
            ),
        ]
    }

    /// 0001-01-01 BC and 4714-11-24 BC (Julian day 0) in PostgreSQL's days from 2000-01-01.
    const BC_1: i32 = -730_485;
    const JULIAN_0: i32 = -2_451_545;

    fn time_cases() -> Vec<Case> {
        let days = [
            Some(0),
            Some(i32::MIN),
            Some(i32::MAX),
            None,
            Some(BC_1),
            Some(JULIAN_0),
        ];
        let date_raw = days
            .iter()
            .map(|d| d.map(|d: i32| d.to_be_bytes().to_vec()))
            .collect();
        let stamps = [
            Some(0),
            Some(i64::MIN),
            Some(i64::MAX),
            None,
            Some(i64::from(BC_1) * DAY),
            Some(1),
        ];
        let stamps_tz = [
            Some(-1),
            Some(i64::MIN),
            Some(i64::MAX),
            None,
            Some(i64::from(JULIAN_0) * DAY),
            Some(0),
        ];
        let raw = |v: &[Option<i64>]| {
            v.iter()
                .map(|v| v.map(|v| v.to_be_bytes().to_vec()))
                .collect()
        };
        let times = [
            Some(0),
            Some(DAY),
            None,
            Some(1),
            Some(45_296_789_012),
            Some(DAY - 1),
        ];
        vec![
            case(
                "d",
                TypeKind::Date,
                "date",
                date_raw,
                vec![Arc::new(Date32Array::from(vec![
                    Some(10_957),
                    Some(-i32::MAX),
                    Some(i32::MAX),
                    None,
                    Some(-719_528),
                    Some(-2_440_588),
                ]))],
                "DATE",
            ),
            case(
                "ts",
                TypeKind::Timestamp,
                "timestamp without time zone",
                raw(&stamps),
                vec![Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(946_684_800_000_000),
                    Some(-i64::MAX),
                    Some(i64::MAX),
                    None,
                    Some(-62_167_219_200_000_000),
                    Some(946_684_800_000_001),
                ]))],
                "TIMESTAMP",
            ),
            case(
                "tstz",
                TypeKind::TimestampTz,
                "timestamp with time zone",
                raw(&stamps_tz),
                vec![utc(vec![
                    Some(946_684_799_999_999),
                    Some(-i64::MAX),
                    Some(i64::MAX),
                    None,
                    Some(-210_866_803_200_000_000),
                    Some(946_684_800_000_000),
                ])],
                "TIMESTAMP WITH TIME ZONE",
            ),
            case(
                "tm",
                TypeKind::Time,
                "time without time zone",
                raw(&times),
                vec![Arc::new(Time64MicrosecondArray::from(times.to_vec()))],
                "TIME",
            ),
            case(
                "ttz",
                TypeKind::TimeTz,
                "time with time zone",
                vec![
                    timetz_raw(45_296_000_000, -19_800),
                    timetz_raw(0, 0),
                    None,
                    timetz_raw(DAY, 57_599),
                    timetz_raw(1, -57_599),
                    timetz_raw(3_600_000_000, 3_600),
                ],
                vec![timetz_array(&[
                    Some((45_296_000_000, 19_800)),
                    Some((0, 0)),
                    None,
                    Some((DAY, -57_599)),
                    Some((1, 57_599)),
                    Some((3_600_000_000, -3_600)),
                ])],
                "STRUCT(\"time\" TIME, offset_seconds INTEGER)",
            ),
            case(
                "iv",
                TypeKind::Interval,
                "interval",
                vec![
                    interval_raw(14_706_700_000, 3, 14),
                    interval_raw(0, 0, 0),
                    None,
                    interval_raw(i64::MAX, i32::MAX, i32::MAX),
                    interval_raw(i64::MIN, i32::MIN, i32::MIN),
                    interval_raw(-500_000, -1, -13),
                ],
                vec![interval_array(&[
                    Some((14, 3, 14_706_700_000)),
                    Some((0, 0, 0)),
                    None,
                    Some((i32::MAX, i32::MAX, i64::MAX)),
                    Some((i32::MIN, i32::MIN, i64::MIN)),
                    Some((-13, -1, -500_000)),
                ])],
                "STRUCT(\"months\" INTEGER, \"days\" INTEGER, \"microseconds\" BIGINT)",
            ),
        ]
    }

    const UUID_A: &str = "a0eebc999c0b4ef8bb6d6bb9bd380a11";
    const UUID_0: &str = "00000000000000000000000000000000";
    const UUID_F: &str = "ffffffffffffffffffffffffffffffff";

    fn pair(a: Option<i32>, b: Option<&str>) -> Vec<u8> {
        composite_bytes(&[
            (23, a.map(|a| a.to_be_bytes().to_vec())),
            (25, b.map(|b| b.as_bytes().to_vec())),
        ])
    }

    fn other_scalar_cases() -> Vec<Case> {
        let uuid = [
            Some(UUID_A),
            Some(UUID_0),
            None,
            Some(UUID_F),
            Some(UUID_A),
            Some(UUID_0),
        ];
        let json = [
            Some("{\"a\": 1.50, \"b\": [true, null]}"),
            Some("\"é\""),
            None,
            Some("[]"),
            Some(" 1 "),
            Some("{\"k\":\"\\u0000\", \"k\": 2}"),
        ];
        let jsonb_text = [
            Some("{\"a\": 1.50}"),
            Some("\"é\""),
            None,
            Some("[]"),
            Some("null"),
            Some("{\"b\": [1, 2]}"),
        ];
        let point: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        vec![
            case(
                "u",
                TypeKind::Uuid,
                "uuid",
                uuid.iter().map(|u| u.map(hex)).collect(),
                vec![uuids(&uuid)],
                "UUID",
            ),
            case(
                "js",
                TypeKind::Json,
                "json",
                texts(&json),
                vec![strings(&json)],
                "JSON",
            ),
            case(
                "jb",
                TypeKind::Jsonb,
                "jsonb",
                jsonb_text.iter().map(|v| v.and_then(jsonb)).collect(),
                vec![strings(&jsonb_text)],
                "JSON",
            ),
            case(
                "ip",
                TypeKind::Inet,
                "inet",
                vec![
                    Some(inet_bytes(2, 24, false, &[1, 2, 3, 4])),
                    Some(inet_bytes(2, 8, true, &[10, 0, 0, 0])),
                    None,
                    Some(inet_bytes(
                        3,
                        128,
                        false,
                        &hex("00000000000000000000ffff01020304"),
                    )),
                    Some(inet_bytes(
                        3,
                        128,
                        true,
                        &hex("20010db8000000000000000000000001"),
                    )),
                    Some(inet_bytes(2, 0, false, &[0, 0, 0, 0])),
                ],
                vec![strings(&[
                    Some("1.2.3.4/24"),
                    Some("10.0.0.0/8"),
                    None,
                    Some("::ffff:1.2.3.4"),
                    Some("2001:db8::1/128"),
                    Some("0.0.0.0/0"),
                ])],
                "VARCHAR",
            ),
            case(
                "pr",
                TypeKind::Composite(vec![TypeKind::Int(4), TypeKind::Text]),
                "public.pair",
                vec![
                    Some(pair(Some(1), Some("x"))),
                    Some(pair(None, None)),
                    None,
                    None,
                    None,
                    None,
                ],
                vec![binaries(&[
                    Some(&pair(Some(1), Some("x"))),
                    Some(&pair(None, None)),
                    None,
                    None,
                    None,
                    None,
                ])],
                "BLOB",
            ),
            case(
                "pt",
                TypeKind::Other,
                "point",
                vec![Some(point.clone()), None, None, None, None, Some(vec![])],
                vec![binaries(&[Some(&point), None, None, None, None, Some(&[])])],
                "BLOB",
            ),
        ]
    }

    /// An array column's case: its elements in row-major order cut by `lens`, and `dims`.
    struct ListCase<'a> {
        name: &'a str,
        elem: TypeKind,
        type_name: &'a str,
        raw: Vec<Raw>,
        values: ArrayRef,
        lens: [Option<usize>; ROWS],
        dims: [Option<&'a str>; ROWS],
        duckdb_type: &'static str,
    }

    fn array_case(c: ListCase<'_>) -> Case {
        let column = ParquetColumn::new(c.name, array_of(c.elem), c.type_name);
        let expected = vec![list(&column, c.values, &c.lens), strings(&c.dims)];
        case(
            c.name,
            column.kind,
            c.type_name,
            c.raw,
            expected,
            c.duckdb_type,
        )
    }

    fn array_cases() -> Vec<Case> {
        let mut cases = vec![
            array_case(ListCase {
                name: "ai",
                elem: TypeKind::Int(4),
                type_name: "integer[]",
                raw: vec![
                    arr(23, &[(3, 1)], &ints(&[Some(1), Some(2), None])),
                    arr(23, &[], &[]),
                    None,
                    arr(
                        23,
                        &[(2, 1), (2, 1)],
                        &ints(&[Some(1), Some(2), Some(3), None]),
                    ),
                    arr(23, &[(2, 0)], &ints(&[Some(5), Some(6)])),
                    arr(23, &[(1, 1)], &ints(&[None])),
                ],
                values: Arc::new(Int32Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(1),
                    Some(2),
                    Some(3),
                    None,
                    Some(5),
                    Some(6),
                    None,
                ])),
                lens: [Some(3), Some(0), None, Some(4), Some(2), Some(1)],
                dims: [None, None, None, Some("[1:2][1:2]"), Some("[0:1]"), None],
                duckdb_type: "INTEGER[]",
            }),
            array_case(ListCase {
                name: "at",
                elem: TypeKind::Text,
                type_name: "text[]",
                raw: vec![
                    arr(25, &[(3, 1)], &texts(&[Some(""), Some("é"), None])),
                    None,
                    arr(25, &[(1, 1)], &texts(&[Some("NULL")])),
                    arr(
                        25,
                        &[(2, 1), (1, 1), (1, 1)],
                        &texts(&[Some("a"), Some("b")]),
                    ),
                    arr(25, &[(0, 1)], &[]),
                    arr(
                        25,
                        &[(2, -2), (2, 3)],
                        &texts(&[Some("w"), Some("x"), Some("y"), Some("z")]),
                    ),
                ],
                values: strings(&[
                    Some(""),
                    Some("é"),
                    None,
                    Some("NULL"),
                    Some("a"),
                    Some("b"),
                    Some("w"),
                    Some("x"),
                    Some("y"),
                    Some("z"),
                ]),
                lens: [Some(3), None, Some(1), Some(2), Some(0), Some(4)],
                dims: [
                    None,
                    None,
                    None,
                    Some("[1:2][1:1][1:1]"),
                    None,
                    Some("[-2:-1][3:4]"),
                ],
                duckdb_type: "VARCHAR[]",
            }),
            array_case(ListCase {
                name: "an",
                elem: TypeKind::Numeric,
                type_name: "numeric(12,2)[]",
                raw: vec![
                    arr(1700, &[(3, 1)], &[num("1.50"), num("NaN"), None]),
                    arr(1700, &[(1, 1)], &[num("-3000.00")]),
                    None,
                    arr(1700, &[], &[]),
                    arr(1700, &[(1, 1)], &[num("Infinity")]),
                    arr(1700, &[(1, 1)], &[num("0.00")]),
                ],
                values: strings(&[
                    Some("1.50"),
                    Some("NaN"),
                    None,
                    Some("-3000.00"),
                    Some("Infinity"),
                    Some("0.00"),
                ]),
                lens: [Some(3), Some(1), None, Some(0), Some(1), Some(1)],
                dims: [None; ROWS],
                duckdb_type: "VARCHAR[]",
            }),
            array_case(ListCase {
                name: "ats",
                elem: TypeKind::TimestampTz,
                type_name: "timestamp with time zone[]",
                raw: vec![
                    arr(
                        1184,
                        &[(2, 1)],
                        &[be(i64::MIN.to_be_bytes()), be(0i64.to_be_bytes())],
                    ),
                    arr(1184, &[(1, 1)], &[None]),
                    None,
                    arr(1184, &[], &[]),
                    arr(1184, &[(1, 1)], &[be(i64::MAX.to_be_bytes())]),
                    arr(
                        1184,
                        &[(1, 1)],
                        &[be((i64::from(BC_1) * DAY).to_be_bytes())],
                    ),
                ],
                values: utc(vec![
                    Some(-i64::MAX),
                    Some(946_684_800_000_000),
                    None,
                    Some(i64::MAX),
                    Some(-62_167_219_200_000_000),
                ]),
                lens: [Some(2), Some(1), None, Some(0), Some(1), Some(1)],
                dims: [None; ROWS],
                duckdb_type: "TIMESTAMP WITH TIME ZONE[]",
            }),
            array_case(ListCase {
                name: "ad",
                elem: TypeKind::Date,
                type_name: "date[]",
                raw: vec![
                    arr(
                        1082,
                        &[(2, 1)],
                        &[be(i32::MIN.to_be_bytes()), be(0i32.to_be_bytes())],
                    ),
                    None,
                    None,
                    None,
                    None,
                    arr(1082, &[(1, 5)], &[be(i32::MAX.to_be_bytes())]),
                ],
                values: Arc::new(Date32Array::from(vec![-i32::MAX, 10_957, i32::MAX])),
                lens: [Some(2), None, None, None, None, Some(1)],
                dims: [None, None, None, None, None, Some("[5:5]")],
                duckdb_type: "DATE[]",
            }),
        ];
        cases.extend(more_array_cases());
        cases
    }

    fn more_array_cases() -> Vec<Case> {
        let uuid_raw = |u: &str| Some(hex(u));
        let pr = pair(Some(1), Some("x"));
        vec![
            array_case(ListCase {
                name: "au",
                elem: TypeKind::Uuid,
                type_name: "uuid[]",
                raw: vec![
                    arr(2950, &[(2, 1)], &[uuid_raw(UUID_A), None]),
                    None,
                    arr(2950, &[], &[]),
                    arr(2950, &[(1, 1)], &[uuid_raw(UUID_0)]),
                    None,
                    arr(2950, &[(1, 1)], &[uuid_raw(UUID_F)]),
                ],
                values: uuids(&[Some(UUID_A), None, Some(UUID_0), Some(UUID_F)]),
                lens: [Some(2), None, Some(0), Some(1), None, Some(1)],
                dims: [None; ROWS],
                duckdb_type: "UUID[]",
            }),
            array_case(ListCase {
                name: "attz",
                elem: TypeKind::TimeTz,
                type_name: "time with time zone[]",
                raw: vec![
                    arr(
                        1266,
                        &[(2, 1)],
                        &[timetz_raw(45_296_000_000, -19_800), None],
                    ),
                    None,
                    None,
                    None,
                    None,
                    arr(1266, &[], &[]),
                ],
                values: timetz_array(&[Some((45_296_000_000, 19_800)), None]),
                lens: [Some(2), None, None, None, None, Some(0)],
                dims: [None; ROWS],
                duckdb_type: "STRUCT(\"time\" TIME, offset_seconds INTEGER)[]",
            }),
            array_case(ListCase {
                name: "aiv",
                elem: TypeKind::Interval,
                type_name: "interval[]",
                raw: vec![
                    arr(1186, &[(1, 1)], &[interval_raw(0, 1, 0)]),
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
                values: interval_array(&[Some((0, 1, 0))]),
                lens: [Some(1), None, None, None, None, None],
                dims: [None; ROWS],
                duckdb_type:
                    "STRUCT(\"months\" INTEGER, \"days\" INTEGER, \"microseconds\" BIGINT)[]",
            }),
            array_case(ListCase {
                name: "ajb",
                elem: TypeKind::Jsonb,
                type_name: "jsonb[]",
                raw: vec![
                    arr(3802, &[(2, 1)], &[jsonb("{}"), None]),
                    None,
                    None,
                    None,
                    None,
                    arr(3802, &[(1, 1)], &[jsonb("[1]")]),
                ],
                values: strings(&[Some("{}"), None, Some("[1]")]),
                lens: [Some(2), None, None, None, None, Some(1)],
                dims: [None; ROWS],
                duckdb_type: "JSON[]",
            }),
            array_case(ListCase {
                name: "aby",
                elem: TypeKind::Bytea,
                type_name: "bytea[]",
                raw: vec![
                    arr(17, &[(2, 1)], &[Some(vec![0]), Some(vec![])]),
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
                values: binaries(&[Some(&[0]), Some(&[])]),
                lens: [Some(2), None, None, None, None, None],
                dims: [None; ROWS],
                duckdb_type: "BLOB[]",
            }),
            array_case(ListCase {
                name: "apr",
                elem: TypeKind::Composite(vec![TypeKind::Int(4), TypeKind::Text]),
                type_name: "public.pair[]",
                raw: vec![
                    arr(16_385, &[(2, 1)], &[Some(pr.clone()), None]),
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
                values: binaries(&[Some(&pr), None]),
                lens: [Some(2), None, None, None, None, None],
                dims: [None; ROWS],
                duckdb_type: "BLOB[]",
            }),
        ]
    }

    fn every_kind_cases() -> Vec<Case> {
        let mut cases = scalar_cases();
        cases.extend(array_cases());
        cases
    }

    fn columns_of(cases: &[Case]) -> Vec<ParquetColumn> {
        cases.iter().map(|c| c.column.clone()).collect()
    }

    /// Writes the cases' rows in two calls with different extra values; returns the file.
    fn write_cases(dir: &Path, cases: &[Case]) -> PathBuf {
        let path = dir.join("every_kind.parquet");
        let raw: Vec<Vec<Raw>> = cases.iter().map(|c| c.raw.clone()).collect();
        let batch = batch_of(&transpose(&raw, ROWS), cases.len());
        let mut sink = ParquetSink::create(&path, columns_of(cases), &EXTRA).unwrap();
        sink.write_rows(&batch, &[0, 1, 2], &["insert", "missing"])
            .unwrap();
        sink.write_rows(&batch, &[3, 4, 5], &["update", "divergent"])
            .unwrap();
        assert_eq!(sink.finish().unwrap(), ROWS as u64);
        path
    }

    fn expected_arrays(cases: &[Case]) -> Vec<ArrayRef> {
        let mut arrays: Vec<ArrayRef> = cases.iter().flat_map(|c| c.expected.clone()).collect();
        arrays.push(strings(&[
            Some("insert"),
            Some("insert"),
            Some("insert"),
            Some("update"),
            Some("update"),
            Some("update"),
        ]));
        arrays.push(strings(&[
            Some("missing"),
            Some("missing"),
            Some("missing"),
            Some("divergent"),
            Some("divergent"),
            Some("divergent"),
        ]));
        arrays
    }

    #[test]
    fn every_kind_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let cases = every_kind_cases();
        let path = write_cases(dir.path(), &cases);
        let batch = read_back(&path);
        let schema = arrow_schema(&columns_of(&cases), &EXTRA);
        assert_eq!(batch.schema().fields(), schema.fields());
        let expected = expected_arrays(&cases);
        assert_eq!(batch.num_columns(), expected.len());
        for (i, field) in schema.fields().iter().enumerate() {
            assert_eq!(
                batch.column(i).data_type(),
                field.data_type(),
                "{}",
                field.name()
            );
            assert_eq!(
                batch.column(i).as_ref(),
                expected[i].as_ref(),
                "{}",
                field.name()
            );
        }
        // Array equality may compare floats by value: check the bits too.
        let f4 = |a: &ArrayRef| -> Vec<Option<u32>> {
            let values = a.as_primitive::<Float32Type>();
            values.iter().map(|v| v.map(f32::to_bits)).collect()
        };
        let f8 = |a: &ArrayRef| -> Vec<Option<u64>> {
            let values = a.as_primitive::<Float64Type>();
            values.iter().map(|v| v.map(f64::to_bits)).collect()
        };
        let at = |name: &str| schema.index_of(name).unwrap();
        assert_eq!(f4(batch.column(at("f4"))), f4(&expected[at("f4")]));
        assert_eq!(f8(batch.column(at("f8"))), f8(&expected[at("f8")]));
        if let Some(dir) = std::env::var_os("PGSALVAGE_PARQUET_EXPORT") {
            export(Path::new(&dir), &path, &cases, &expected);
        }
    }

    #[test]
    fn keeps_the_metadata_readers_need() {
        let dir = tempfile::tempdir().unwrap();
        let cases = every_kind_cases();
        let path = write_cases(dir.path(), &cases);
        let file = std::fs::File::open(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = builder.schema().clone();
        for case in &cases {
            let field = schema.field_with_name(&case.column.name).unwrap();
            assert_eq!(field.metadata()[META_PG_TYPE], case.column.type_name);
        }
        let field = |name: &str| schema.field_with_name(name).unwrap().clone();
        assert_eq!(field("u").extension_type_name(), Some("arrow.uuid"));
        assert_eq!(field("js").extension_type_name(), Some("arrow.json"));
        assert_eq!(field("jb").extension_type_name(), Some("arrow.json"));
        assert_eq!(field("pr").metadata()[META_PG_ENCODING], "binary");
        assert_eq!(field("n").metadata()[META_PG_ENCODING], "text");
        assert_eq!(field("n12__special").metadata()[META_COMPANION_OF], "n12");
        assert_eq!(field("ai__dims").metadata()[META_COMPANION], "dims");
        let DataType::List(item) = field("au").data_type().clone() else {
            panic!("uuid[] is a list")
        };
        assert_eq!(item.extension_type_name(), Some("arrow.uuid"));
        assert_eq!(item.metadata()[META_PG_TYPE], "uuid");
        // The Parquet logical types independent readers go by.
        let parquet = builder.parquet_schema();
        let logical = |name: &str| {
            let column = parquet
                .columns()
                .iter()
                .find(|c| c.path().string() == name)
                .unwrap();
            format!("{:?}", column.logical_type_ref())
        };
        assert_eq!(logical("u"), "Some(Uuid)");
        assert_eq!(logical("js"), "Some(Json)");
        assert!(
            logical("tstz").contains("is_adjusted_to_u_t_c: true"),
            "{}",
            logical("tstz")
        );
        assert!(
            logical("ts").contains("is_adjusted_to_u_t_c: false"),
            "{}",
            logical("ts")
        );
        assert!(
            logical("tm").contains("is_adjusted_to_u_t_c: false"),
            "{}",
            logical("tm")
        );
        assert!(
            logical("n12").contains("scale: 2, precision: 12"),
            "{}",
            logical("n12")
        );
    }

    // ---- the expected values as JSON, for scripts/check_parquet.py ----

    use crate::key::render::push_json_string;

    use crate::tree::hex as hex_string;

    /// A Decimal128's unscaled value at `scale` as exact decimal text (`300000`, 2 → `3000.00`).
    fn decimal_text(unscaled: i128, scale: usize) -> String {
        let digits = format!("{:0>width$}", unscaled.unsigned_abs(), width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        let sign = if unscaled < 0 { "-" } else { "" };
        match scale {
            0 => format!("{sign}{int}"),
            _ => format!("{sign}{int}.{frac}"),
        }
    }

    /// The checker's normal form: floats as their bits in hex, decimals as exact text, bytes in
    /// hex, dates/times/timestamps as their integers, structs as objects, lists as arrays.
    fn push_json_value(out: &mut String, array: &dyn Array, i: usize) {
        use arrow_array::types::*;
        if array.is_null(i) {
            return out.push_str("null");
        }
        let text = match array.data_type() {
            DataType::Boolean => array.as_boolean().value(i).to_string(),
            DataType::Int16 => array.as_primitive::<Int16Type>().value(i).to_string(),
            DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
            DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
            DataType::Date32 => array.as_primitive::<Date32Type>().value(i).to_string(),
            DataType::Time64(_) => array
                .as_primitive::<Time64MicrosecondType>()
                .value(i)
                .to_string(),
            DataType::Timestamp(..) => array
                .as_primitive::<TimestampMicrosecondType>()
                .value(i)
                .to_string(),
            DataType::Float32 => {
                format!(
                    "\"{:08x}\"",
                    array.as_primitive::<Float32Type>().value(i).to_bits()
                )
            }
            DataType::Float64 => {
                format!(
                    "\"{:016x}\"",
                    array.as_primitive::<Float64Type>().value(i).to_bits()
                )
            }
            DataType::Decimal128(_, scale) => format!(
                "\"{}\"",
                decimal_text(
                    array.as_primitive::<Decimal128Type>().value(i),
                    *scale as usize
                )
            ),
            DataType::Utf8 => {
                let mut s = String::new();
                push_json_string(&mut s, array.as_string::<i32>().value(i));
                s
            }
            DataType::Binary => format!("\"{}\"", hex_string(array.as_binary::<i32>().value(i))),
            DataType::FixedSizeBinary(_) => {
                format!("\"{}\"", hex_string(array.as_fixed_size_binary().value(i)))
            }
            DataType::Struct(_) => return push_json_struct(out, array.as_struct(), i),
            DataType::List(_) => {
                let values = array.as_list::<i32>().value(i);
                out.push('[');
                for j in 0..values.len() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_json_value(out, values.as_ref(), j);
                }
                return out.push(']');
            }
            other => panic!("no JSON form for {other}"),
        };
        out.push_str(&text);
    }

    fn push_json_struct(out: &mut String, array: &StructArray, i: usize) {
        out.push('{');
        for (k, (field, child)) in array.fields().iter().zip(array.columns()).enumerate() {
            if k > 0 {
                out.push(',');
            }
            push_json_string(out, field.name());
            out.push(':');
            push_json_value(out, child.as_ref(), i);
        }
        out.push('}');
    }

    /// The Parquet logical type the checker should see, in its summary form.
    fn parquet_logical(field: &Field) -> &'static str {
        match (field.name().as_str(), field.data_type()) {
            ("u", _) => "UUID",
            ("js" | "jb", _) => "JSON",
            (_, DataType::Decimal128(..)) => "DECIMAL",
            (_, DataType::Timestamp(_, Some(_))) => "TIMESTAMP(UTC)",
            (_, DataType::Timestamp(_, None)) => "TIMESTAMP(LOCAL)",
            (_, DataType::Time64(_)) => "TIME(LOCAL)",
            (_, DataType::Date32) => "DATE",
            (_, DataType::Int16) => "INT",
            (_, DataType::Utf8) => "STRING",
            _ => "",
        }
    }

    /// Copies the file to `dir` with `every_kind.expected.json` beside it.
    fn export(dir: &Path, path: &Path, cases: &[Case], expected: &[ArrayRef]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(path, dir.join("every_kind.parquet")).unwrap();
        let schema = arrow_schema(&columns_of(cases), &EXTRA);
        let duckdb: HashMap<String, &str> = cases
            .iter()
            .map(|c| (c.column.name.clone(), c.duckdb_type))
            .collect();
        let mut out = format!("{{\"rows\": {ROWS}, \"columns\": [\n");
        for (i, field) in schema.fields().iter().enumerate() {
            let duckdb_type = duckdb.get(field.name()).copied().unwrap_or("VARCHAR");
            let _ = write!(
                out,
                "{{\"name\": \"{}\", \"pg_type\": \"{}\", \"duckdb_type\": \"{}\", \"parquet_logical\": \"{}\", \"values\": [",
                field.name(),
                field.metadata()[META_PG_TYPE],
                duckdb_type.replace('"', "\\\""),
                parquet_logical(field),
            );
            for row in 0..ROWS {
                if row > 0 {
                    out.push_str(", ");
                }
                push_json_value(&mut out, expected[i].as_ref(), row);
            }
            out.push_str(if i + 1 < expected.len() {
                "]},\n"
            } else {
                "]}\n"
            });
        }
        out.push_str("]}\n");
        std::fs::write(dir.join("every_kind.expected.json"), out).unwrap();
    }

    // ---- a real server's bytes ----

    /// The kinds of fixtures/parquet/pg_fixture.sql's columns, as the catalog reader classifies them.
    fn fixture_kind(name: &str) -> TypeKind {
        match name {
            "id" | "i8" => TypeKind::Int(8),
            "b" => TypeKind::Bool,
            "i2" => TypeKind::Int(2),
            "i4" => TypeKind::Int(4),
            "f4" => TypeKind::Float4,
            "f8" => TypeKind::Float8,
            "n" | "n12" | "n38" | "n50" => TypeKind::Numeric,
            "t" | "vc" | "md" => TypeKind::Text,
            "bp" => TypeKind::Bpchar,
            "by" => TypeKind::Bytea,
            "d" => TypeKind::Date,
            "ts" => TypeKind::Timestamp,
            "tstz" => TypeKind::TimestampTz,
            "tm" => TypeKind::Time,
            "ttz" => TypeKind::TimeTz,
            "iv" => TypeKind::Interval,
            "u" => TypeKind::Uuid,
            "js" => TypeKind::Json,
            "jb" => TypeKind::Jsonb,
            "ip" | "cd" => TypeKind::Inet,
            "pr" => TypeKind::Composite(vec![TypeKind::Int(4), TypeKind::Text]),
            "pt" => TypeKind::Other,
            "ai" => array_of(TypeKind::Int(4)),
            "at" => array_of(TypeKind::Text),
            "an" => array_of(TypeKind::Numeric),
            "ats" => array_of(TypeKind::TimestampTz),
            "au" => array_of(TypeKind::Uuid),
            "attz" => array_of(TypeKind::TimeTz),
            "ajb" => array_of(TypeKind::Jsonb),
            "apr" => array_of(TypeKind::Composite(vec![TypeKind::Int(4), TypeKind::Text])),
            other => panic!("no column {other} in the fixture"),
        }
    }

    /// A column's values in the checker's normal form, as JSON.
    fn normal_form(array: &dyn Array) -> serde_json::Value {
        let mut out = String::from("[");
        for i in 0..array.len() {
            if i > 0 {
                out.push(',');
            }
            push_json_value(&mut out, array, i);
        }
        out.push(']');
        serde_json::from_str(&out).unwrap()
    }

    /// tests/fixtures/pg_types.copy is PostgreSQL 15's binary COPY of fixtures/parquet/pg_fixture.sql's
    /// table; pg_types.expected.json holds the values the server itself computed for each
    /// column (days and µs since 1970, float bits, numeric text, array_dims, ...).
    #[test]
    fn real_server_values_read_back_as_the_server_computes_them() {
        let expected: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/pg_types.expected.json"))
                .unwrap();
        let expected = expected["columns"].as_array().unwrap();
        let columns: Vec<ParquetColumn> = expected
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .filter(|name| !name.ends_with(SPECIAL_SUFFIX) && !name.ends_with(DIMS_SUFFIX))
            .map(|name| {
                let column = expected.iter().find(|c| c["name"] == name).unwrap();
                let pg_type = column["pg_type"].as_str().unwrap();
                ParquetColumn::new(name, fixture_kind(name), pg_type)
            })
            .collect();
        let mut decoder = CopyDecoder::new(columns.len());
        decoder
            .push(include_bytes!("../../tests/fixtures/pg_types.copy"))
            .unwrap();
        let batch = decoder.finish().unwrap().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg_types.parquet");
        let mut sink = ParquetSink::create(&path, columns, &[]).unwrap();
        let rows: Vec<usize> = (0..batch.len()).collect();
        sink.write_rows(&batch, &rows, &[]).unwrap();
        assert_eq!(sink.finish().unwrap(), 5);
        let read = read_back(&path);
        assert_eq!(read.num_columns(), expected.len());
        for (i, want) in expected.iter().enumerate() {
            let name = read.schema().field(i).name().clone();
            assert_eq!(want["name"], name.as_str());
            assert_eq!(
                normal_form(read.column(i).as_ref()),
                want["values"],
                "{name}"
            );
        }
        if let Some(dir) = std::env::var_os("PGSALVAGE_PARQUET_EXPORT") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&path, Path::new(&dir).join("pg_types.parquet")).unwrap();
        }
    }

    #[test]
    fn a_sink_can_move_to_another_thread() {
        fn is_send<T: Send>() {}
        is_send::<ParquetSink>();
    }

    // ---- the schema ----

    #[test]
    fn maps_every_kind_to_its_arrow_type() {
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let item = |leaf: Leaf, elem: &str| Arc::new(leaf.field("item", elem));
        let cases: Vec<(TypeKind, &str, Vec<DataType>)> = vec![
            (TypeKind::Bool, "boolean", vec![DataType::Boolean]),
            (TypeKind::Int(2), "smallint", vec![DataType::Int16]),
            (TypeKind::Int(4), "integer", vec![DataType::Int32]),
            (TypeKind::Int(8), "bigint", vec![DataType::Int64]),
            (TypeKind::Float4, "real", vec![DataType::Float32]),
            (
                TypeKind::Float8,
                "double precision",
                vec![DataType::Float64],
            ),
            (TypeKind::Numeric, "numeric", vec![DataType::Utf8]),
            (
                TypeKind::Numeric,
                "numeric(12,2)",
                vec![DataType::Decimal128(12, 2), DataType::Utf8],
            ),
            (
                TypeKind::Numeric,
                "numeric(38,38)",
                vec![DataType::Decimal128(38, 38), DataType::Utf8],
            ),
            (TypeKind::Numeric, "numeric(39,2)", vec![DataType::Utf8]),
            (TypeKind::Numeric, "numeric(3,-2)", vec![DataType::Utf8]),
            (TypeKind::Numeric, "public.amount", vec![DataType::Utf8]),
            (
                TypeKind::Text,
                "character varying(20)",
                vec![DataType::Utf8],
            ),
            (TypeKind::Bpchar, "character(3)", vec![DataType::Utf8]),
            (TypeKind::Text, "public.mood", vec![DataType::Utf8]),
            (TypeKind::Bytea, "bytea", vec![DataType::Binary]),
            (TypeKind::Date, "date", vec![DataType::Date32]),
            (
                TypeKind::Timestamp,
                "timestamp without time zone",
                vec![DataType::Timestamp(TimeUnit::Microsecond, None)],
            ),
            (
                TypeKind::TimestampTz,
                "timestamp with time zone",
                vec![utc.clone()],
            ),
            (
                TypeKind::Time,
                "time without time zone",
                vec![DataType::Time64(TimeUnit::Microsecond)],
            ),
            (
                TypeKind::TimeTz,
                "time with time zone",
                vec![DataType::Struct(Fields::from(vec![
                    Field::new("time", DataType::Time64(TimeUnit::Microsecond), false),
                    Field::new("offset_seconds", DataType::Int32, false),
                ]))],
            ),
            (
                TypeKind::Interval,
                "interval",
                vec![DataType::Struct(Fields::from(vec![
                    Field::new("months", DataType::Int32, false),
                    Field::new("days", DataType::Int32, false),
                    Field::new("microseconds", DataType::Int64, false),
                ]))],
            ),
            (TypeKind::Uuid, "uuid", vec![DataType::FixedSizeBinary(16)]),
            (TypeKind::Json, "json", vec![DataType::Utf8]),
            (TypeKind::Jsonb, "jsonb", vec![DataType::Utf8]),
            (TypeKind::Inet, "inet", vec![DataType::Utf8]),
            (
                TypeKind::Composite(vec![TypeKind::Int(4)]),
                "public.pair",
                vec![DataType::Binary],
            ),
            (TypeKind::Other, "point", vec![DataType::Binary]),
            (
                array_of(TypeKind::Int(4)),
                "integer[]",
                vec![DataType::List(item(Leaf::Int32, "integer")), DataType::Utf8],
            ),
            (
                array_of(TypeKind::Numeric),
                "numeric(12,2)[]",
                vec![
                    DataType::List(item(Leaf::Text(TextForm::Numeric), "numeric(12,2)")),
                    DataType::Utf8,
                ],
            ),
            (
                array_of(TypeKind::TimestampTz),
                "timestamp with time zone[]",
                vec![
                    DataType::List(item(Leaf::TimestampUtc, "timestamp with time zone")),
                    DataType::Utf8,
                ],
            ),
            (
                array_of(array_of(TypeKind::Int(4))),
                "public.int_arrays[]",
                vec![
                    DataType::List(item(Leaf::SendForm, "public.int_arrays")),
                    DataType::Utf8,
                ],
            ),
        ];
        for (kind, type_name, types) in cases {
            let column = ParquetColumn::new("c", kind, type_name);
            let schema = arrow_schema(std::slice::from_ref(&column), &[]);
            let got: Vec<DataType> = schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            assert_eq!(got, types, "{type_name}");
            for field in schema.fields() {
                assert!(field.is_nullable(), "{type_name}");
                assert!(field.metadata().contains_key(META_PG_TYPE), "{type_name}");
            }
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            match names.as_slice() {
                ["c"] => {}
                ["c", companion] => assert!(*companion == "c__special" || *companion == "c__dims"),
                other => panic!("{type_name}: {other:?}"),
            }
        }
    }

    #[test]
    fn extra_columns_come_last_and_are_never_null() {
        let columns = vec![ParquetColumn::new("id", TypeKind::Int(8), "bigint")];
        let schema = arrow_schema(&columns, &EXTRA);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "action", "class"]);
        assert!(!schema.field(1).is_nullable());
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    }

    #[test]
    fn reads_numeric_typmods() {
        assert_eq!(decimal_typmod("numeric(12,2)"), Some((12, 2)));
        assert_eq!(decimal_typmod("numeric(38,0)"), Some((38, 0)));
        assert_eq!(decimal_typmod("numeric(38,38)"), Some((38, 38)));
        assert_eq!(decimal_typmod("numeric(10)"), Some((10, 0)));
        assert_eq!(decimal_typmod("numeric(39,2)"), None);
        assert_eq!(decimal_typmod("numeric(3,-2)"), None);
        assert_eq!(decimal_typmod("numeric(2,5)"), None);
        assert_eq!(decimal_typmod("numeric"), None);
        assert_eq!(decimal_typmod("numeric(12,2)[]"), None);
        assert_eq!(decimal_typmod("public.amount"), None);
    }

    // ---- writing ----

    fn order_columns() -> Vec<ParquetColumn> {
        vec![
            ParquetColumn::new("id", TypeKind::Int(8), "bigint"),
            ParquetColumn::new("region", TypeKind::Text, "text"),
            ParquetColumn::new("amount", TypeKind::Numeric, "numeric(12,2)"),
            ParquetColumn::new("tags", array_of(TypeKind::Text), "text[]"),
        ]
    }

    fn order_row(id: i64, region: &str, amount: &str) -> Vec<Raw> {
        vec![
            be(id.to_be_bytes()),
            text(region),
            num(amount),
            arr(25, &[(2, 0)], &texts(&[Some("a"), None])),
        ]
    }

    #[test]
    fn deletes_keep_their_keys_and_null_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deletes.parquet");
        let full = batch_of(&[order_row(7, "eu", "1.00"), order_row(8, "us", "NaN")], 4);
        let keys = batch_of(&[vec![be(9i64.to_be_bytes()), text("apac")]], 2);
        let mut sink = ParquetSink::create(&path, order_columns(), &EXTRA).unwrap();
        sink.write_keys(&full, &[1, 0], 1, &["delete", "extra"])
            .unwrap();
        sink.write_keys(&keys, &[0], 2, &["delete", "extra"])
            .unwrap();
        sink.write_rows(&full, &[0], &["insert", "missing"])
            .unwrap();
        assert_eq!(sink.finish().unwrap(), 4);
        let batch = read_back(&path);
        let ids = batch
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            [Some(8), Some(7), Some(9), Some(7)]
        );
        let region = batch.column(1).as_string::<i32>();
        assert_eq!(
            region.iter().collect::<Vec<_>>(),
            [None, None, Some("apac"), Some("eu")]
        );
        let nulls = [
            (2, "amount", 3),
            (3, "amount__special", 4),
            (4, "tags", 3),
            (5, "tags__dims", 3),
        ];
        for (col, name, count) in nulls {
            assert_eq!(batch.schema().field(col).name(), name);
            assert_eq!(batch.column(col).null_count(), count, "{name}");
        }
        let amount = batch.column(2).as_primitive::<Decimal128Type>();
        assert_eq!(amount.value(3), 100);
        assert_eq!(batch.column(5).as_string::<i32>().value(3), "[0:1]");
        let action = batch.column(6).as_string::<i32>();
        assert_eq!(
            action.iter().collect::<Vec<_>>(),
            [
                Some("delete"),
                Some("delete"),
                Some("delete"),
                Some("insert")
            ]
        );
    }

    /// The entries of a directory, to see what a sink left behind.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_file_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let batch = batch_of(&[order_row(1, "eu", "2.50")], 4);
        let mut sink = ParquetSink::create(&path, order_columns(), &EXTRA).unwrap();
        sink.write_rows(&batch, &[0], &["insert", "missing"])
            .unwrap();
        let pending = entries(dir.path());
        assert_eq!(pending.len(), 1);
        assert!(pending[0].starts_with(".out.parquet.") && pending[0].ends_with(".partial"));
        assert_eq!(sink.finish().unwrap(), 1);
        assert_eq!(entries(dir.path()), ["out.parquet"]);

        // Dropped unfinished, a sink leaves nothing (and the finished file stays as it was).
        let mut sink = ParquetSink::create(&path, order_columns(), &EXTRA).unwrap();
        sink.write_rows(&batch, &[0, 0], &["insert", "missing"])
            .unwrap();
        drop(sink);
        assert_eq!(entries(dir.path()), ["out.parquet"]);
        assert_eq!(read_back(&path).num_rows(), 1);
    }

    #[test]
    fn an_empty_file_is_still_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        let sink = ParquetSink::create(&path, order_columns(), &EXTRA).unwrap();
        assert_eq!(sink.finish().unwrap(), 0);
        let file = std::fs::File::open(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
        assert_eq!(builder.schema().fields().len(), 8);
    }

    /// Writes one value of `kind` and returns the error it gets.
    fn refusal(kind: TypeKind, type_name: &str, raw: Raw) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        let columns = vec![
            ParquetColumn::new("ok", TypeKind::Int(4), "integer"),
            ParquetColumn::new("bad", kind, type_name),
        ];
        let batch = batch_of(&[vec![be(1i32.to_be_bytes()), raw]], 2);
        let mut sink = ParquetSink::create(&path, columns, &[]).unwrap();
        let error = sink.write_rows(&batch, &[0], &[]).unwrap_err().to_string();
        // The file is abandoned: every later call fails and nothing is left behind.
        assert!(matches!(
            sink.write_rows(&batch, &[0], &[]),
            Err(SinkError::Abandoned)
        ));
        assert!(matches!(sink.finish(), Err(SinkError::Abandoned)));
        assert!(entries(dir.path()).is_empty());
        error
    }

    #[test]
    fn refuses_values_that_would_not_read_back_exactly() {
        let numeric = |t: &'static str| (TypeKind::Numeric, t);
        let cases: Vec<((TypeKind, &str), Raw, &str)> = vec![
            (
                numeric("numeric(5,2)"),
                num("1234.56"),
                "column \"bad\": numeric value has more than 5 digits",
            ),
            (
                numeric("numeric(12,2)"),
                num("1.5"),
                "column \"bad\": numeric value with 1 fraction digits in a column of scale 2",
            ),
            (
                numeric("numeric(38,0)"),
                num(&"9".repeat(39)),
                "column \"bad\": numeric value has more than 38 digits",
            ),
            (
                numeric("numeric(38,0)"),
                Some(vec![0; 7]),
                "column \"bad\": malformed numeric value: short header",
            ),
            (
                (TypeKind::Timestamp, "timestamp without time zone"),
                be((i64::MAX - PG_EPOCH_MICROS).to_be_bytes()),
                "column \"bad\": timestamp 9222425352054775807 µs from 2000 is out of range",
            ),
            (
                (TypeKind::Text, "text"),
                Some(vec![0xff]),
                "column \"bad\": malformed text value: not valid UTF-8",
            ),
            (
                (TypeKind::Int(4), "integer"),
                Some(vec![0; 3]),
                "column \"bad\": malformed int4 value: wrong length",
            ),
            (
                (TypeKind::Uuid, "uuid"),
                Some(vec![0; 15]),
                "column \"bad\": malformed uuid value: wrong length",
            ),
            (
                (TypeKind::Jsonb, "jsonb"),
                Some(b"\x02{}".to_vec()),
                "column \"bad\": malformed jsonb value: unknown jsonb version",
            ),
            (
                (array_of(TypeKind::Int(4)), "integer[]"),
                Some(vec![0; 5]),
                "column \"bad\": malformed array value: truncated",
            ),
        ];
        for ((kind, type_name), raw, message) in cases {
            assert_eq!(refusal(kind, type_name, raw), message);
        }
    }

    #[test]
    fn refuses_calls_that_do_not_fit_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut columns = order_columns();
        columns.push(ParquetColumn::new("action", TypeKind::Text, "text"));
        let error = ParquetSink::create(&path, columns, &EXTRA).unwrap_err();
        assert_eq!(
            error.to_string(),
            "column \"action\" appears twice in the parquet schema"
        );
        let mut columns = order_columns();
        columns.push(ParquetColumn::new(
            "amount__special",
            TypeKind::Text,
            "text",
        ));
        assert!(matches!(
            ParquetSink::create(&path, columns, &EXTRA),
            Err(SinkError::DuplicateColumn { .. })
        ));

        let mut sink = ParquetSink::create(&path, order_columns(), &EXTRA).unwrap();
        let batch = batch_of(&[order_row(1, "eu", "2.50")], 4);
        let keys = batch_of(&[vec![be(1i64.to_be_bytes())]], 1);
        let message = |r: Result<(), SinkError>| r.unwrap_err().to_string();
        assert_eq!(
            message(sink.write_rows(&batch, &[0], &["insert"])),
            "1 extra values given, the parquet file has 2 extra columns"
        );
        assert_eq!(
            message(sink.write_rows(&keys, &[0], &EXTRA)),
            "row batch has 1 columns, the parquet file needs 4"
        );
        assert_eq!(
            message(sink.write_rows(&batch, &[1], &EXTRA)),
            "row 1 is beyond the batch's 1 rows"
        );
        assert_eq!(
            message(sink.write_keys(&keys, &[0], 2, &EXTRA)),
            "row batch has 1 columns, the parquet file needs 2"
        );
        assert_eq!(
            message(sink.write_keys(&batch, &[0], 5, &EXTRA)),
            "5 key columns asked for, the parquet file has 4 data columns"
        );
        // Refusing a call before it appends anything does not abandon the file.
        sink.write_rows(&batch, &[0], &EXTRA).unwrap();
        assert_eq!(sink.finish().unwrap(), 1);
    }

    #[test]
    fn flushes_bounded_batches_into_bounded_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.parquet");
        let columns = vec![
            ParquetColumn::new("id", TypeKind::Int(8), "bigint"),
            ParquetColumn::new("amount", TypeKind::Numeric, "numeric(12,2)"),
        ];
        let n = 300_000usize;
        let rows: Vec<Vec<Raw>> = (0..n)
            .map(|i| {
                vec![
                    be((i as i64).to_be_bytes()),
                    num(&format!("{}.{:02}", i / 100, i % 100)),
                ]
            })
            .collect();
        let batch = batch_of(&rows, 2);
        let all: Vec<usize> = (0..n).collect();
        let mut sink = ParquetSink::create(&path, columns, &[]).unwrap();
        for chunk in all.chunks(7_001) {
            sink.write_rows(&batch, chunk, &[]).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), n as u64);
        let file = std::fs::File::open(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let groups: Vec<i64> = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert!(
            groups.iter().all(|&g| g as usize <= ROW_GROUP_ROWS),
            "{groups:?}"
        );
        assert_eq!(groups.iter().sum::<i64>(), n as i64);
        let mut next = 0i64;
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let ids = batch
                .column(0)
                .as_primitive::<arrow_array::types::Int64Type>();
            let amounts = batch.column(1).as_primitive::<Decimal128Type>();
            for i in 0..batch.num_rows() {
                assert_eq!((ids.value(i), amounts.value(i)), (next, i128::from(next)));
                next += 1;
            }
        }
        assert_eq!(next, n as i64);
    }

    fn decimal_of(text: &str, precision: u8, scale: i8) -> Result<i128, Refusal> {
        let raw = numeric_from_str(text);
        let Ok(Numeric::Finite(d)) = parse_numeric(&raw) else {
            panic!("{text} is not a finite numeric")
        };
        DecimalBuilder::new(precision, scale).unscaled(&d)
    }

    proptest! {
        #[test]
        fn decimals_hold_every_value_of_their_typmod(
            precision in 1u8..=38,
            scale_pick in 0u8..=38,
            digits in "[0-9]{38}",
            negative in any::<bool>(),
        ) {
            let scale = scale_pick % (precision + 1);
            let digits = &digits[..usize::from(precision)];
            let (int, frac) = digits.split_at(usize::from(precision - scale));
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let body = if scale == 0 { int.to_string() } else { format!("{int}.{frac}") };
            let unscaled: i128 = digits.parse().unwrap();
            let zero = unscaled == 0;
            let text = if negative && !zero { format!("-{body}") } else { body.clone() };
            let want = if negative { -unscaled } else { unscaled };
            let got = decimal_of(&text, precision, scale as i8).unwrap();
            prop_assert_eq!(got, want);
            prop_assert_eq!(decimal_text(got, usize::from(scale)), text);
        }

        #[test]
        fn timestamps_shift_exactly_or_are_refused(pg in any::<i64>()) {
            let got = unix_micros(&pg.to_be_bytes());
            match pg {
                i64::MIN => prop_assert_eq!(got.unwrap(), -i64::MAX),
                i64::MAX => prop_assert_eq!(got.unwrap(), i64::MAX),
                _ => match pg.checked_add(PG_EPOCH_MICROS) {
                    Some(v) if v < i64::MAX => prop_assert_eq!(got.unwrap(), v),
                    _ => prop_assert!(got.is_err()),
                },
            }
        }

        #[test]
        fn dates_shift_exactly(pg in any::<i32>()) {
            let got = unix_days(&pg.to_be_bytes());
            match pg {
                i32::MIN => prop_assert_eq!(got.unwrap(), -i32::MAX),
                i32::MAX => prop_assert_eq!(got.unwrap(), i32::MAX),
                _ => match pg.checked_add(PG_EPOCH_DAYS) {
                    Some(v) if v < i32::MAX => prop_assert_eq!(got.unwrap(), v),
                    _ => prop_assert!(got.is_err()),
                },
            }
        }
    }
}
