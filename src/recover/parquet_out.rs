//! `parquet/<index>_<schema>.<table>.parquet`: the rows a recovery restores, for people and tools
//! that read Parquet rather than SQL. File names are sanitized (`TableName::file_stem`); the
//! table's real schema and name are in each file's key-value metadata (`pgsalvage.schema`,
//! `pgsalvage.table`).
//!
//! One file per table with differing keys: the restore source's rows (base, or replica in a
//! three-way run) for every insert and update, key-only rows for deletes, each with the action
//! and the finding's class in the extra columns `__action` and `__class` (names no table column
//! is likely to have). Values are the sources' binary COPY forms mapped exactly by
//! [`crate::sink::parquet`]; the file is written beside its final name and renamed into place.

use std::path::Path;

use tokio_postgres::Client;

use super::fetch::{
    copy_out, places_query, JoinChoice, KeyedFetch, RowOrder, NO_HASH_JOIN, RESET_HASH_JOIN,
};
use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::plan::TableRun;
use crate::recovery::keys::key_file;
use crate::recovery::keys::KeyChunks;
use crate::recovery::keys::KeyRecord;
use crate::recovery::plan::TableRestore;
use crate::rows::batch::CopyDecoder;
use crate::sink::parquet::{ParquetColumn, ParquetSink};

const EXTRA: [&str; 2] = ["__action", "__class"];

/// Writes the Parquet file of one table.
pub async fn write_table(
    source: (&Client, usize),
    target: &Client,
    run: &TableRun,
    t: &TableRestore,
    keys_dir: &Path,
    dir: &Path,
) -> Result<u64> {
    let (client, index) = source;
    let columns = parquet_columns(run, index)?;
    let name = crate::shape::TableName::new(&t.schema, &t.name);
    let path = dir.join(format!("{}.parquet", name.file_stem(t.index)));
    let mut sink = ParquetSink::create(&path, columns, &EXTRA).map_err(|e| sink_error(&path, e))?;
    sink.set_metadata("pgsalvage.schema", &t.schema);
    sink.set_metadata("pgsalvage.table", &t.name);
    // One pass over the key records; each chunk's rows are read per (action, class), which the
    // extra columns then name.
    let mut chunks = KeyChunks::open(&key_file(keys_dir, t.index), CHANGED)?;
    let at = || format!("reading rows of {} by key", t.table);
    for c in [client, target] {
        c.batch_execute(NO_HASH_JOIN).await.context(at)?;
    }
    let mut readers = Readers {
        source: client,
        target,
        source_join: JoinChoice::default(),
        target_join: JoinChoice::default(),
    };
    while let Some(records) = chunks.next_records()? {
        for group in groups(records) {
            let cols = &run.plan.columns;
            readers.write_group(t, cols, group, &mut sink, at).await?;
        }
    }
    for c in [client, target] {
        c.batch_execute(RESET_HASH_JOIN).await.context(at)?;
    }
    sink.finish().map_err(|e| sink_error(&path, e))
}

/// The file's columns: the plan's, with the restore source's types.
fn parquet_columns(run: &TableRun, index: usize) -> Result<Vec<ParquetColumn>> {
    let plan = &run.plan;
    let codec = plan.codecs[index]
        .as_ref()
        .ok_or_else(|| Error::internal("restore source without the table"))?;
    let shape = plan.shapes[index]
        .as_ref()
        .ok_or_else(|| Error::internal("restore source without the table"))?;
    Ok(plan
        .columns
        .iter()
        .zip(&codec.kinds)
        .map(|(name, kind)| {
            let type_name = shape
                .column(name)
                .map(|(_, c)| c.type_name.clone())
                .unwrap_or_default();
            ParquetColumn::new(name.clone(), kind.clone(), type_name)
        })
        .collect())
}

/// The two sessions rows are read from, each with its own join settings.
struct Readers<'a> {
    source: &'a Client,
    target: &'a Client,
    source_join: JoinChoice,
    target_join: JoinChoice,
}

impl Readers<'_> {
    /// Reads the rows of one (action, class) group of records and appends them, named by both.
    async fn write_group(
        &mut self,
        t: &TableRestore,
        columns: &[String],
        mut group: Vec<KeyRecord>,
        sink: &mut ParquetSink,
        at: impl Fn() -> String + Copy,
    ) -> Result<()> {
        let (action, class) = (group[0].action, group[0].class);
        let extra = [action_name(action), class.as_str()];
        // Deletes: the key only, from the target (the restore source has no row); a keyless
        // row is named by all its values, read by its place.
        let (from, cols, key_only) = match action {
            Action::Delete if t.keyless => (self.target, columns, None),
            Action::Delete => (self.target, &t.key[..], Some(t.key.len())),
            _ => (self.source, columns, None),
        };
        let names = match std::ptr::eq(from, self.target) {
            true => cols.to_vec(),
            false => t.source_columns(cols),
        };
        let copy = match t.keyless {
            true => places_query(t, &names, &group, true)?,
            false => {
                let fetch = KeyedFetch::new(t, &names, &mut group, true, RowOrder::Key);
                let join = match action {
                    Action::Delete => &mut self.target_join,
                    _ => &mut self.source_join,
                };
                join.prepare(from, &fetch).await.context(at)?
            }
        };
        stream_rows(from, &copy, cols.len(), sink, &extra, key_only, at).await
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Insert => "insert",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Keep => "keep",
    }
}

/// The actions whose rows a Parquet file holds.
const CHANGED: &[Action] = &[Action::Insert, Action::Update, Action::Delete];

/// A chunk's records grouped by (action, class), in the order the groups first appear.
fn groups(records: Vec<KeyRecord>) -> Vec<Vec<KeyRecord>> {
    let mut groups: Vec<Vec<KeyRecord>> = Vec::new();
    for r in records {
        match groups
            .iter_mut()
            .find(|g| (g[0].action, g[0].class) == (r.action, r.class))
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// Runs one fetch by key in binary and appends its rows (`key_only`: only the key columns were
/// read).
async fn stream_rows(
    client: &Client,
    query: &str,
    ncols: usize,
    sink: &mut ParquetSink,
    extra: &[&str],
    key_only: Option<usize>,
    at: impl Fn() -> String,
) -> Result<()> {
    let mut decoder = CopyDecoder::new(ncols);
    let mut collect = |piece: Option<bytes::Bytes>| match piece {
        Some(bytes) => decoder.push(&bytes).map_err(Error::from),
        None => Ok(()),
    };
    copy_out(client, query, &at, &mut collect).await?;
    let Some(batch) = decoder.finish()? else {
        return Ok(());
    };
    let rows: Vec<usize> = (0..batch.len()).collect();
    let written = match key_only {
        Some(nkey) => sink.write_keys(&batch, &rows, nkey, extra),
        None => sink.write_rows(&batch, &rows, extra),
    };
    written.map_err(|e| Error::internal(format!("writing Parquet for {}: {e}", at())))
}

fn sink_error(path: &Path, e: crate::sink::parquet::SinkError) -> Error {
    Error::io(path.display(), std::io::Error::other(e.to_string()))
}
