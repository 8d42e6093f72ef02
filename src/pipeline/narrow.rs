//! One key range read narrow first (`--narrow`, see `plan::narrow`): keys and row hashes, then
//! the full rows of the keys whose hashes differ.
//!
//! The range is streamed from every source as `(key, row hash, columns that travel whole)` and
//! merged as a full read would be: missing and extra keys are final as they come. A key whose
//! rows differ is held until the streams end (a session streams one COPY at a time), then its
//! full rows are read from every source, by key, in the same visit of the same snapshot, and
//! compared column by column with the canonical encoding: the finding names its columns as a
//! full read's would, and the range's column counts are recounted from them.

use std::collections::HashMap;

use super::range_diff::{merge_error, Unit};
use super::readers::{next_batch, start_query, start_reader};
use super::RunContext;
use crate::classify::Finding;
use crate::compare::range::{differing_columns, RangeMerge};
use crate::compare::restore::CaptureSpec;
use crate::compare::tally::RangeTally;
use crate::error::{Error, Result};
use crate::hash::digest::DigestBatch;
use crate::key::range::KeyRange;
use crate::plan::{TablePlan, TableRun};
use crate::source::Session;

/// Keys read back per query.
const KEYS_PER_FETCH: usize = 2000;

/// [`super::range_diff::diff_range`] for a table with a narrow run.
pub async fn diff_range(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    range: &KeyRange,
    narrow: &TableRun,
) -> Result<(RangeTally, Vec<Finding>)> {
    let plan = &narrow.plan;
    let mut readers = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let reader = match &plan.codecs[i] {
            Some(codec) => Some(
                start_reader(client, plan, i, range, codec.clone(), ctx.batch_bytes, None)
                    .await
                    .map_err(|e| e.context(at(ctx, table, i, range)))?,
            ),
            None => None,
        };
        readers.push(reader);
    }
    // The restore records carry each key's literals, which the fetch names rows by.
    let capture = CaptureSpec {
        no_delete: true,
        delete_new_on_target: false,
        on_conflict: Default::default(),
        source: if clients.len() == 3 { 1 } else { 0 },
        keep_all: true,
    };
    let mut merge = RangeMerge::new(narrow, table, range, clients.len(), Some(capture));
    let counted = plan.codecs.iter().position(Option::is_some);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    loop {
        let step = merge
            .step()
            .map_err(|e| merge_error(ctx, table, range, e))?;
        let (divergent, settled): (Vec<Finding>, Vec<Finding>) = merge
            .take_found()
            .into_iter()
            .partition(|f| !f.columns.is_empty());
        held.extend(divergent);
        send(ctx, settled, &mut kept).await;
        let crate::compare::merge::Step::Need(i) = step else {
            break;
        };
        let unit = Unit {
            ctx,
            table,
            range,
            counted,
        };
        unit.feed(&mut readers, &mut merge, i).await?;
    }
    let mut tally = merge.finish();
    let full = &ctx.tables[table].plan;
    let mut columns = vec![0u64; full.columns.len()];
    for chunk in held.chunks_mut(KEYS_PER_FETCH) {
        name_columns(ctx, clients, full, chunk).await.map_err(|e| {
            e.context(format!(
                "reading the differing rows of {} in range {range}",
                full.name
            ))
        })?;
        for f in chunk.iter() {
            for &c in &f.columns {
                columns[c as usize] += 1;
            }
        }
    }
    tally.columns = columns;
    send(ctx, held, &mut kept).await;
    Ok((tally, kept))
}

/// Sends findings on (without the restore records only the fetch needed).
async fn send(ctx: &RunContext, mut found: Vec<Finding>, kept: &mut Vec<Finding>) {
    if found.is_empty() {
        return;
    }
    for f in &mut found {
        f.restore = None;
    }
    if ctx.keeps_findings() {
        kept.extend(found.iter().cloned());
    }
    let _ = ctx.findings.send(found).await;
}

/// Reads the full rows of `found`'s keys from every source and sets each finding's columns to
/// the compared columns whose canonical values differ, as a full read names them.
async fn name_columns(
    ctx: &RunContext,
    clients: &[Session],
    full: &TablePlan,
    found: &mut [Finding],
) -> Result<()> {
    let literals: Vec<Vec<String>> = found
        .iter()
        .map(|f| {
            f.restore
                .as_ref()
                .map(|r| r.literals.clone())
                .unwrap_or_default()
        })
        .collect();
    let filter = crate::sql::key_filter(full.key(), &literals);
    let mut per_source: Vec<Option<Fetched>> = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let Some(codec) = &full.codecs[i] else {
            per_source.push(None);
            continue;
        };
        let query = format!(
            "COPY (SELECT {} FROM {}{} ORDER BY {}) TO STDOUT (FORMAT binary)",
            full.select_list_on(i),
            full.name.sql(),
            full.where_clause(Some(&filter)),
            full.key_exprs().join(", ")
        );
        let mut reader = Some(
            start_query(
                client,
                &query,
                codec.clone(),
                codec.kinds.len(),
                ctx.batch_bytes,
            )
            .await?,
        );
        let mut fetched = Fetched::default();
        while let Some(batch) = next_batch(&mut reader).await? {
            for row in 0..batch.len() {
                fetched
                    .at
                    .insert(batch.key(row).to_vec(), (fetched.batches.len(), row));
            }
            fetched.batches.push(batch);
        }
        per_source.push(Some(fetched));
    }
    let last = clients.len() - 1;
    for f in found.iter_mut() {
        let rows: Vec<Option<(&DigestBatch, usize)>> = per_source
            .iter()
            .map(|s| s.as_ref().and_then(|s| s.row(&f.order_key)))
            .collect();
        let reference = if rows.len() == 3 && rows[1].is_some() {
            1
        } else {
            0
        };
        let (Some(a), Some(b)) = (rows[reference], rows[last]) else {
            return Err(Error::internal(format!(
                "the row of key {} was in the narrow read but not in the full one",
                f.key
            )));
        };
        f.columns = differing_columns(full, reference, a, b)?;
        if f.columns.is_empty() {
            // The server's hash and the canonical encoding disagree on what equal means for
            // some value: an answer either way could be wrong, so none is given.
            return Err(Error::internal(format!(
                "the server's row hashes of key {} differ but its full rows compare equal",
                f.key
            ))
            .with_hint("run without --narrow, and please report the column types of the table"));
        }
    }
    Ok(())
}

/// One source's fetched rows, by order key.
#[derive(Default)]
struct Fetched {
    batches: Vec<DigestBatch>,
    at: HashMap<Vec<u8>, (usize, usize)>,
}

impl Fetched {
    fn row(&self, key: &[u8]) -> Option<(&DigestBatch, usize)> {
        self.at.get(key).map(|&(b, r)| (&self.batches[b], r))
    }
}

fn at(ctx: &RunContext, table: usize, source: usize, range: &KeyRange) -> String {
    format!(
        "reading {} narrow from {}, range {range}",
        ctx.tables[table].plan.name, ctx.roles[source]
    )
}
