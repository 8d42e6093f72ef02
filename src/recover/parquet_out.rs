//! `parquet/<schema>.<table>.parquet`: the rows a recovery restores, for people and tools that
//! read Parquet rather than SQL.
//!
//! One file per table with differing keys: the restore source's rows (base, or replica in a
//! three-way run) for every insert and update, key-only rows for deletes, each with the action
//! and the finding's class in the extra columns `__action` and `__class` (names no table column
//! is likely to have). Values are the sources' binary COPY forms mapped exactly by
//! [`crate::sink::parquet`]; the file is written beside its final name and renamed into place.

use std::path::Path;

use tokio_postgres::Client;

use super::fetch::{copy_keys, KeyChunks};
use super::plan::TableRestore;
use crate::classify::{Action, Class};
use crate::error::{Error, Result};
use crate::pipeline::findings::key_file;
use crate::pipeline::TableRun;
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
    let plan = &run.plan;
    let (client, index) = source;
    let codec = plan.codecs[index]
        .as_ref()
        .ok_or_else(|| Error::internal("restore source without the table"))?;
    let shape = plan.shapes[index]
        .as_ref()
        .ok_or_else(|| Error::internal("restore source without the table"))?;
    let columns: Vec<ParquetColumn> = plan
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
        .collect();
    let path = dir.join(format!("{}.{}.parquet", t.schema, t.name));
    let mut sink = ParquetSink::create(&path, columns, &EXTRA).map_err(|e| sink_error(&path, e))?;
    let file = key_file(keys_dir, t.index);
    let table_sql = plan.name.sql();
    for &class in Class::ALL.iter() {
        for action in [Action::Insert, Action::Update] {
            let keys = KeyChunks::open(&file, &[action])?.of_class(class);
            let extra = [action_name(action), class.as_str()];
            stream_rows(
                client,
                &table_sql,
                &plan.columns,
                &t.key,
                keys,
                &mut sink,
                &extra,
                None,
            )
            .await?;
        }
        let keys = KeyChunks::open(&file, &[Action::Delete])?.of_class(class);
        let extra = [action_name(Action::Delete), class.as_str()];
        stream_rows(
            target,
            &table_sql,
            &t.key,
            &t.key,
            keys,
            &mut sink,
            &extra,
            Some(t.key.len()),
        )
        .await?;
    }
    sink.finish().map_err(|e| sink_error(&path, e))
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Insert => "insert",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Keep => "keep",
    }
}

/// Fetches rows by key in binary and appends them (`key_only`: only the key columns were read).
#[allow(clippy::too_many_arguments)]
async fn stream_rows(
    client: &Client,
    table_sql: &str,
    cols: &[String],
    key: &[String],
    keys: KeyChunks,
    sink: &mut ParquetSink,
    extra: &[&str],
    key_only: Option<usize>,
) -> Result<()> {
    let mut decoder = CopyDecoder::new(cols.len());
    copy_keys(client, table_sql, cols, key, keys, true, |piece| {
        match piece {
            Some(bytes) => decoder.push(&bytes)?,
            None => {
                let done = std::mem::replace(&mut decoder, CopyDecoder::new(cols.len()));
                if let Some(batch) = done.finish()? {
                    let rows: Vec<usize> = (0..batch.len()).collect();
                    let written = match key_only {
                        Some(nkey) => sink.write_keys(&batch, &rows, nkey, extra),
                        None => sink.write_rows(&batch, &rows, extra),
                    };
                    written.map_err(|e| {
                        Error::internal(format!("writing Parquet for {table_sql}: {e}"))
                    })?;
                }
            }
        }
        Ok(())
    })
    .await
}

fn sink_error(path: &Path, e: crate::sink::parquet::SinkError) -> Error {
    Error::io(path.display(), std::io::Error::other(e.to_string()))
}
