//! The row guard: does every row a recovery touches still look as it did when it was planned?
//!
//! For each table of the plan, the key records are read back in chunks, the target's current rows
//! for those keys are fetched in binary and digested with the same canonical encoding the
//! comparison used, and each digest is compared with the record's expected one (`before` for the
//! guard ahead of the restore, `after` for the re-verify behind it). A key without a row counts as
//! "no row". Rows are matched to records by their order key, never by rendered text.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;

use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::hash::digest::{digest_batch, on_pool, RowCodec};
use crate::pipeline::findings::KeyRecord;
use crate::recover::fetch::KeyChunks;
use crate::recover::plan::TableRestore;
use crate::rows::batch::{CopyDecoder, RowBatch};
use crate::shape::{quote_ident, TableName};
use crate::sink::sql::{qualified_list, select_list};
use crate::tree::hex;

/// Which expected state to check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Before,
    After,
}

/// A key whose row is not as expected.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mismatch {
    pub table: String,
    pub key: Box<serde_json::value::RawValue>,
    /// Hex digest expected, or null for "no row".
    pub expected: Option<String>,
    /// Hex digest found, or null for "no row".
    pub found: Option<String>,
}

/// Keys checked per round trip: the keys go into a temporary table with one COPY and the rows
/// come back through one join, so the cost is per chunk, not per key.
const GUARD_CHUNK: usize = 100_000;

/// Checks the records of one table with one of `actions`, a chunk of keys at a time; returns the
/// keys that differ from `expect`. Runs inside a transaction (its key table is dropped at commit).
pub async fn check_table(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    keys_file: &Path,
    expect: Expect,
    actions: &[Action],
    skip: &dyn Fn(&KeyRecord) -> bool,
) -> Result<Vec<Mismatch>> {
    let chunks = KeyChunks::open(keys_file, actions)?.with_chunk(GUARD_CHUNK);
    let keys_table = key_table(client, table).await?;
    let mut mismatches = Vec::new();
    // Three things overlap: parsing the next chunk of key records (pool), the server reading the
    // rows of this chunk, and digesting the rows of the previous one (pool).
    let mut next = read_chunk(chunks);
    let mut digesting: Option<(Vec<KeyRecord>, Pending)> = None;
    loop {
        let (chunks, records) = next
            .await
            .map_err(|_| Error::internal("the pool dropped a job"))?;
        let Some(records) = records? else { break };
        next = read_chunk(chunks);
        let rows = current_rows(client, table, &keys_table, &records).await?;
        let pending = digest_rows(codec.clone(), rows);
        if let Some((records, found)) = digesting.replace((records, pending)) {
            compare(table, records, found, expect, skip, &mut mismatches).await?;
        }
    }
    if let Some((records, found)) = digesting {
        compare(table, records, found, expect, skip, &mut mismatches).await?;
    }
    Ok(mismatches)
}

/// Order key (hex) → digest (hex) of a chunk's current rows, on its way from the pool.
type Pending = tokio::sync::oneshot::Receiver<Result<HashMap<String, String>>>;

/// Lists the records whose key does not hold the row `expect` says.
async fn compare(
    table: &TableRestore,
    records: Vec<KeyRecord>,
    found: Pending,
    expect: Expect,
    skip: &dyn Fn(&KeyRecord) -> bool,
    mismatches: &mut Vec<Mismatch>,
) -> Result<()> {
    let found = found
        .await
        .map_err(|_| Error::internal("the pool dropped a job"))??;
    // Kept keys are listed, never touched: nothing to guard or re-verify.
    for r in records
        .into_iter()
        .filter(|r| r.action != Action::Keep && !skip(r))
    {
        let wanted = match expect {
            Expect::Before => r.before,
            Expect::After => r.after,
        };
        let now = found.get(&r.okey).cloned();
        if now != wanted {
            mismatches.push(Mismatch {
                table: table.table.clone(),
                key: r.key_json,
                expected: wanted,
                found: now,
            });
        }
    }
    Ok(())
}

type Chunk = (KeyChunks, Result<Option<Vec<KeyRecord>>>);

/// The next chunk of key records, parsed on the pool.
fn read_chunk(mut chunks: KeyChunks) -> tokio::sync::oneshot::Receiver<Chunk> {
    on_pool(move || {
        let records = chunks.next_records();
        (chunks, records)
    })
}

/// A temporary table shaped like the table's key, dropped at commit.
async fn key_table(client: &Client, table: &TableRestore) -> Result<String> {
    let name = quote_ident(&format!("pgsalvage_guard_{}", table.index));
    let sql = format!(
        "CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
        select_list(&table.key),
        table_sql(table)
    );
    client
        .batch_execute(&sql)
        .await
        .context(|| format!("preparing the guard of {}", table.table))?;
    Ok(name)
}

fn table_sql(table: &TableRestore) -> String {
    TableName::new(&table.schema, &table.name).sql()
}

/// The target's current rows for a chunk of records, in one batch.
async fn current_rows(
    client: &Client,
    table: &TableRestore,
    keys_table: &str,
    records: &[KeyRecord],
) -> Result<Option<RowBatch>> {
    let at = || format!("checking rows of {}", table.table);
    client
        .batch_execute(&format!("TRUNCATE {keys_table}"))
        .await
        .context(at)?;
    let sink = client
        .copy_in(&format!(
            "COPY {keys_table} ({}) FROM STDIN",
            select_list(&table.key)
        ))
        .await
        .context(at)?;
    let mut sink = std::pin::pin!(sink);
    sink.send(Bytes::from(copy_text_rows(records)))
        .await
        .context(at)?;
    sink.as_mut().finish().await.context(at)?;
    // Statistics let the planner choose between probing the key index and one hash join.
    client
        .batch_execute(&format!("ANALYZE {keys_table}"))
        .await
        .context(at)?;
    let join: Vec<String> = table
        .key
        .iter()
        .map(|k| format!("t.{0} = g.{0}", quote_ident(k)))
        .collect();
    let query = format!(
        "COPY (SELECT {} FROM {} t JOIN {keys_table} g ON {}) TO STDOUT (FORMAT binary)",
        qualified_list("t", &table.columns),
        table_sql(table),
        join.join(" AND ")
    );
    // Probe the key index once per key: a hash join would read the whole table for every chunk,
    // which for a large table and a small recovery costs far more than the recovery itself.
    client
        .batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        .await
        .context(at)?;
    let stream = client.copy_out(&query).await.context(at)?;
    let mut stream = std::pin::pin!(stream);
    let mut decoder = CopyDecoder::new(table.columns.len());
    while let Some(piece) = stream.next().await {
        decoder.push(&piece.context(at)?)?;
    }
    client
        .batch_execute("RESET enable_hashjoin; RESET enable_mergejoin")
        .await
        .context(at)?;
    Ok(decoder.finish()?)
}

/// Digests and indexes a chunk's rows on the pool: order key (hex) → digest (hex).
fn digest_rows(codec: Arc<RowCodec>, rows: Option<RowBatch>) -> Pending {
    on_pool(move || {
        let Some(batch) = rows else {
            return Ok(HashMap::new());
        };
        let digests = digest_batch(&codec, batch)?;
        let mut found = HashMap::with_capacity(digests.len());
        for i in 0..digests.len() {
            found.insert(hex(digests.key(i)), hex(&digests.digests[i]));
        }
        Ok(found)
    })
}

/// The records' key values as text COPY rows.
fn copy_text_rows(records: &[KeyRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 16);
    for r in records {
        for (i, value) in r.key_text.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            copy_escape(value, &mut out);
        }
        out.push(b'\n');
    }
    out
}

/// Text COPY escaping: backslash, tab, newline and carriage return.
fn copy_escape(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_escape;

    #[test]
    fn escapes_copy_text() {
        let mut out = Vec::new();
        copy_escape("a\\b\tc\nd\re", &mut out);
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
    }
}
