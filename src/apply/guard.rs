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

use tokio_postgres::Client;

use crate::classify::Action;
use crate::error::Result;
use crate::hash::digest::{digest_batch, RowCodec};
use crate::pipeline::findings::KeyRecord;
use crate::recover::fetch::{copy_chunk, KeyChunks};
use crate::recover::plan::TableRestore;
use crate::rows::batch::CopyDecoder;
use crate::shape::TableName;
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

/// Checks every record of one table, a chunk of keys at a time; returns the keys that differ
/// from `expect`.
pub async fn check_table(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    keys_file: &Path,
    expect: Expect,
    skip: &dyn Fn(&KeyRecord) -> bool,
) -> Result<Vec<Mismatch>> {
    let all = [Action::Insert, Action::Update, Action::Delete, Action::Keep];
    let mut chunks = KeyChunks::open(keys_file, &all)?;
    let mut mismatches = Vec::new();
    while let Some(records) = chunks.next_records()? {
        let found = current_digests(client, table, &codec, &records).await?;
        for r in records.into_iter().filter(|r| !skip(r)) {
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
    }
    Ok(mismatches)
}

/// Order key (hex) → digest (hex) of the target's current rows for a chunk of records.
async fn current_digests(
    client: &Client,
    table: &TableRestore,
    codec: &RowCodec,
    records: &[KeyRecord],
) -> Result<HashMap<String, String>> {
    let table_sql = TableName::new(&table.schema, &table.name).sql();
    let literals: Vec<Vec<String>> = records.iter().map(|r| r.key.clone()).collect();
    let mut decoder = CopyDecoder::new(table.columns.len());
    copy_chunk(
        client,
        &table_sql,
        &table.columns,
        &table.key,
        &literals,
        true,
        &mut |piece| match piece {
            Some(bytes) => Ok(decoder.push(&bytes)?),
            None => Ok(()),
        },
    )
    .await?;
    let mut found = HashMap::with_capacity(records.len());
    if let Some(batch) = decoder.finish()? {
        let digests = digest_batch(codec, batch)?;
        for i in 0..digests.len() {
            found.insert(hex_bytes(digests.key(i)), hex(&digests.digests[i]));
        }
    }
    Ok(found)
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
