//! The re-verify of a dense restore: one scan of the rows the apply's transaction wrote, summed
//! and compared with the plan's sum, instead of a probe per key.
//!
//! Reading a restored row back by key costs an index descent and a heap visit: about 2.9 µs a
//! key on cached data, where a sequential scan costs about 6 µs a page, 3.4 µs with parallel
//! workers (measured on the benchmark's 13-column table, 54 rows a page, 1e5 restored keys over
//! 35 k pages: probes 290-296 ms, the scan 289-304 ms alone and 207-213 ms in parallel). Every
//! row the transaction wrote, and no other visible row, has the transaction's own id as `xmin`
//! (a frozen row reads as xid 2, and no older row can share a live 32-bit xid), and parallel
//! workers share the transaction, so they see its uncommitted rows too. So when a table's restore
//! writes more than about two keys a page, one `COPY (SELECT … WHERE xmin = <xid>)` reads less.
//!
//! The rows it returns are digested as the guard digests them and added into one
//! [`Fingerprint`] (count and 256-bit sum, never XOR), and compared with the sum of the plan's
//! `after` digests of the table's inserts and updates: recover's, from plan.json, or with
//! conflicts skipped, summed again from the key records less those keys. Row digests
//! cover the key, so equal fingerprints mean every planned row is there, exactly, and nothing
//! else was written: the re-verify of those keys is done. Unequal (a planned row is wrong, or the
//! transaction wrote other rows of the table, say an `ON DELETE SET NULL` cascade), the caller
//! reads every key back the usual way, which names the keys; so this path never concludes less
//! than the probes would. Deleted keys leave no row to scan for: they are still probed.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokio_postgres::Client;

use super::guard::Skipped;
use super::scan::scan_on_pool;
use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::hash::digest::{digest_batch, RowCodec};
use crate::pool::on_pool;
use crate::recovery::fixups::FixupPlan;
use crate::recovery::plan::{TableRestore, WrittenSum};
use crate::rows::batch::RowBatch;
use crate::shape::TableName;
use crate::sql::qualified_list;
use crate::tree::{unhex_digest, Fingerprint};

/// Restored keys per page of the table from which one scan reads less than a probe per key,
/// with parallel workers and without (see the module notes).
const KEYS_PER_PAGE_PARALLEL: u64 = 2;
const KEYS_PER_PAGE_SERIAL: u64 = 3;

/// Whether the scan pays for `table`, whose restore writes `keys` rows: on its size now (the
/// catalog's page count can be stale; a partitioned table's is its partitions') and whether the
/// session may use parallel workers.
pub async fn scan_pays(client: &Client, table: &TableRestore, keys: u64) -> Result<bool> {
    let name = TableName::new(&table.schema, &table.name);
    let row = client
        .query_one(
            "SELECT (pg_relation_size(r) + coalesce((SELECT sum(pg_relation_size(p.relid)) \
                       FROM pg_partition_tree(r) p WHERE p.relid <> r), 0))::bigint \
                      / current_setting('block_size')::bigint, \
                    current_setting('max_parallel_workers_per_gather')::int > 0 \
               FROM (SELECT format('%I.%I', $1::text, $2::text)::regclass AS r) t",
            &[&name.schema, &name.name],
        )
        .await
        .context(|| format!("reading the size of {name}"))?;
    let (pages, parallel): (i64, bool) = (row.get(0), row.get(1));
    let per_page = if parallel {
        KEYS_PER_PAGE_PARALLEL
    } else {
        KEYS_PER_PAGE_SERIAL
    };
    Ok(keys >= per_page * pages.max(1) as u64)
}

/// Whether check's fix-ups in the plan may write rows of `table` (adding a column can rewrite
/// every row): then its written rows are not the row restore's alone, and the scan would only
/// fall back. Steps without a table count as writing anywhere.
pub fn fixups_write(fixups: &FixupPlan, table: &TableRestore) -> bool {
    const NO_ROWS: &[&str] = &[
        "create_sequence",
        "set_default",
        "add_constraint",
        "create_index",
        "validate",
        "set_not_null",
        "setval",
    ];
    fixups.insert_tables.contains(&table.table)
        || fixups.steps.iter().any(|s| {
            s.active
                && !NO_ROWS.contains(&s.kind.as_str())
                && s.table.as_ref().is_none_or(|t| *t == table.table)
        })
}

/// The transaction's own id as `xmin` shows it (32 bits; `txid_current` adds the epoch).
pub async fn own_xid(client: &Client) -> Result<String> {
    let row = client
        .query_one("SELECT (txid_current() % 4294967296)::text", &[])
        .await
        .context(|| "reading the apply's transaction id".into())?;
    Ok(row.get(0))
}

/// Whether the rows of `table` written by the transaction `xid` are exactly the planned inserts
/// and updates (less `skip`), by fingerprint.
pub async fn written_as_planned(
    client: &Client,
    table: &TableRestore,
    codec: Arc<RowCodec>,
    keys_file: &Path,
    skip: Skipped,
    xid: &str,
) -> Result<bool> {
    let at = || format!("re-verifying the rows written to {}", table.table);
    let planned = planned(table, keys_file, skip)?;
    let query = format!(
        "COPY (SELECT {} FROM {} t WHERE t.xmin = '{xid}'::xid{}) TO STDOUT (FORMAT binary)",
        qualified_list("t", &table.columns),
        TableName::new(&table.schema, &table.name).sql(),
        crate::recover::fetch::in_scope(table),
    );
    let mut written = Fingerprint::default();
    let sum = move |rows: RowBatch| -> Result<Fingerprint> {
        let digests = digest_batch(&codec, rows)?;
        let mut sum = Fingerprint::default();
        digests.digests.iter().for_each(|d| sum.add_digest(d));
        Ok(sum)
    };
    let ncols = table.columns.len();
    scan_on_pool(client, &query, ncols, at, sum, |f| written.merge(&f)).await?;
    let planned = match planned {
        Planned::Known(sum) => Some(sum),
        Planned::Reading(job) => job
            .await
            .map_err(|_| Error::internal("the pool dropped a job"))??,
    };
    Ok(planned == Some(written))
}

/// The fingerprint the plan expects of the written rows.
enum Planned {
    /// From plan.json: recover summed the digests.
    Known(Fingerprint),
    /// Being summed from the key records on the pool (`None`: it cannot be).
    Reading(tokio::sync::oneshot::Receiver<Result<Option<Fingerprint>>>),
}

/// The planned fingerprint: recover's sum when no key is skipped, else the key records' sum
/// less the skipped keys, read while the scan runs.
fn planned(table: &TableRestore, keys_file: &Path, skip: Skipped) -> Result<Planned> {
    if let (true, Some(text)) = (skip.is_empty(), &table.written_sum) {
        let sum = unhex_digest(text).ok_or_else(|| {
            Error::usage(format!("plan.json: corrupt written_sum of {}", table.table))
        })?;
        return Ok(Planned::Known(Fingerprint::from_sum(
            table.insert + table.update,
            &sum,
        )));
    }
    let file = keys_file.to_path_buf();
    Ok(Planned::Reading(on_pool(move || {
        planned_fingerprint(&file, &skip)
    })))
}

/// The part of a key record the sum needs, borrowed from its line.
#[derive(Deserialize)]
struct RecordDigest<'a> {
    action: Action,
    #[serde(borrow)]
    key_json: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    after: Option<&'a str>,
}

/// The planned sum ([`WrittenSum`]) of a table's key records, less the keys of `skip`.
fn planned_fingerprint(path: &Path, skip: &Skipped) -> Result<Option<Fingerprint>> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(Fingerprint::default()))
        }
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let mut sum = WrittenSum::default();
    let mut line = String::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .map_err(|e| Error::io(path.display(), e))?
            == 0
        {
            return Ok(sum.finish());
        }
        let record: RecordDigest = serde_json::from_str(line.trim_end())
            .map_err(|e| Error::usage(format!("{}: corrupt key record: {e}", path.display())))?;
        if !skip.contains(record.key_json.get()) {
            sum.add(record.action, record.after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::fixups::FixupEntry;

    fn step(kind: &str, table: Option<&str>, active: bool) -> FixupEntry {
        FixupEntry {
            stage: "before_rows".into(),
            kind: kind.into(),
            table: table.map(str::to_string),
            object: "x".into(),
            active,
            rows: None,
            statements: Vec::new(),
            note: None,
        }
    }

    #[test]
    fn fix_ups_that_may_write_a_tables_rows_keep_it_off_the_scan() {
        let table: TableRestore = serde_json::from_value(serde_json::json!({
            "index": 0, "table": "public.t", "schema": "public", "name": "t", "key": ["id"],
            "key_types": ["integer"], "key_spans": true, "columns": ["id"],
            "insert_columns": ["id"], "update_columns": [], "target_columns": ["id"],
            "overriding": false, "target_overriding": false, "insert": 1, "update": 0,
            "delete": 0, "keep": 0, "classes": {}, "by_action": {}, "differing_columns": {},
            "insert_order": 0, "delete_order": 0
        }))
        .unwrap();
        let plan = |steps: Vec<FixupEntry>, inserts: &[&str]| FixupPlan {
            steps,
            insert_tables: inserts.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        assert!(!fixups_write(&plan(vec![], &[]), &table));
        // Steps that write no rows, writes elsewhere, and commented-out steps.
        let harmless = vec![
            step("validate", Some("public.t"), true),
            step("setval", None, true),
            step("add_column", Some("public.other"), true),
            step("orphans", Some("public.t"), false),
        ];
        assert!(!fixups_write(&plan(harmless, &["public.other"]), &table));
        assert!(fixups_write(&plan(vec![], &["public.t"]), &table));
        for kind in ["add_column", "copy_column", "orphans", "restore_parents"] {
            assert!(fixups_write(
                &plan(vec![step(kind, Some("public.t"), true)], &[]),
                &table
            ));
        }
        assert!(fixups_write(
            &plan(vec![step("manual", None, true)], &[]),
            &table
        ));
    }
}
