//! The guard and the re-verify of a keyless table: how many copies of each row it touches the
//! target holds.
//!
//! A keyless row has no key to read it back by, and its copies are interchangeable, so what a
//! recovery of one promises is a count: of every row content its records touch, the target held
//! `copies` at diff time (the guard's expectation), and holds that plus the copies inserted less
//! the copies deleted once the restore ran (the re-verify's). Both are checked the same way,
//! inside apply's transaction and under its lock: one scan of the table (of its `--where` scope),
//! every row digested as the comparison digested it, and the digests the records name counted.
//! Memory is the map of touched contents, not the table. A count off either way is reported like
//! a keyed row that changed: a conflict before the restore, a mismatch after it.
//!
//! Which physical copy a restore deletes does not matter (they are equal), which is why the
//! script deletes by content and not by the place recover read the copy from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tokio_postgres::Client;

use super::guard::{Expect, Mismatch};
use super::scan::scan_on_pool;
use crate::classify::Action;
use crate::error::{Error, Result};
use crate::hash::digest::{digest_batch, Digest, RowCodec};
use crate::pool::on_pool;
use crate::recovery::keys::for_each_record;
use crate::recovery::plan::TableRestore;
use crate::rows::batch::RowBatch;
use crate::shape::TableName;
use crate::sql::qualified_list;
use crate::tree::{hex, unhex_digest};

/// One touched row content: its copies on the target before and after the restore.
struct Wanted {
    digest: Digest,
    before: u64,
    after: u64,
    /// The row's values as JSON, to name it in a mismatch.
    key: Box<serde_json::value::RawValue>,
}

/// Checks the target's copies of every row content the records of `table` touch against
/// `expect`; returns the contents whose count is off. Runs inside the apply's transaction.
pub async fn check_copies(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    keys_file: &Path,
    expect: Expect,
) -> Result<Vec<Mismatch>> {
    let file = keys_file.to_path_buf();
    let name = table.table.clone();
    let wanted = on_pool(move || wanted_copies(&file, &name));
    let wanted = wanted
        .await
        .map_err(|_| Error::internal("the pool dropped a job"))??;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let index: Arc<HashMap<Digest, usize>> = Arc::new(
        wanted
            .iter()
            .enumerate()
            .map(|(i, w)| (w.digest, i))
            .collect(),
    );
    let found = count_copies(client, table, codec, index).await?;
    Ok(wanted
        .into_iter()
        .zip(found)
        .filter_map(|(w, n)| {
            let want = match expect {
                Expect::Before => w.before,
                Expect::After => w.after,
            };
            (n != want).then(|| Mismatch {
                table: table.table.clone(),
                key: w.key,
                expected: (want > 0).then(|| hex(&w.digest)),
                found: (n > 0).then(|| hex(&w.digest)),
                expected_copies: Some(want),
                found_copies: Some(n),
            })
        })
        .collect())
}

/// The touched row contents of a keyless table's records, in record order: the target's count
/// at diff time, and that count moved by each insert and delete.
fn wanted_copies(path: &Path, table: &str) -> Result<Vec<Wanted>> {
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut at: HashMap<Digest, usize> = HashMap::new();
    let corrupt = |what: &str| Error::usage(format!("corrupt key record of {table}: {what}"));
    for_each_record(path, |r| {
        let step: i64 = match r.action {
            Action::Insert => 1,
            Action::Delete => -1,
            Action::Update | Action::Keep => return Ok(()),
        };
        let digest = r
            .okey
            .get(..64)
            .and_then(unhex_digest)
            .ok_or_else(|| corrupt("the order key holds no digest"))?;
        let copies = r.copies.ok_or_else(|| corrupt("no count of copies"))?;
        let i = *at.entry(digest).or_insert_with(|| {
            wanted.push(Wanted {
                digest,
                before: copies,
                after: copies,
                key: r.key_json,
            });
            wanted.len() - 1
        });
        let w = &mut wanted[i];
        w.after = w
            .after
            .checked_add_signed(step)
            .ok_or_else(|| corrupt("more copies deleted than the target held"))?;
        Ok(())
    })?;
    Ok(wanted)
}

/// The target's count of each content of `index` (by its position there), from one scan.
async fn count_copies(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    index: Arc<HashMap<Digest, usize>>,
) -> Result<Vec<u64>> {
    let at = || format!("counting the copies of rows of {} (keyless)", table.table);
    let query = format!(
        "COPY (SELECT {} FROM {} t WHERE true{}) TO STDOUT (FORMAT binary)",
        qualified_list("t", &table.columns),
        TableName::new(&table.schema, &table.name).sql(),
        crate::recover::fetch::in_scope(table),
    );
    let mut counts = vec![0u64; index.len()];
    let hits = move |rows: RowBatch| -> Result<Vec<usize>> {
        let digests = digest_batch(&codec, rows)?;
        Ok(digests
            .digests
            .iter()
            .filter_map(|d| index.get(d).copied())
            .collect())
    };
    let add = |hits: Vec<usize>| hits.into_iter().for_each(|i| counts[i] += 1);
    scan_on_pool(client, &query, table.columns.len(), at, hits, add).await?;
    Ok(counts)
}
