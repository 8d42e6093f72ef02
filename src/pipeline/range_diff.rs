//! One unit of work: one key range of one table, streamed from every source and merged.
//!
//! Per source a reader ([`readers`](super::readers)) streams the range's rows by binary COPY into
//! digested batches; the pure [`RangeMerge`] walks them together by key, classifying, counting
//! and building the range's checksum trees. This file only moves batches between the two and
//! sends the findings on, in small chunks as they are found.

use super::readers::{next_batch, start_reader, Reader};
use super::RunContext;
use crate::classify::Finding;
use crate::compare::merge::{OrderError, Step};
use crate::compare::range::{MergeError, RangeMerge};
use crate::compare::tally::RangeTally;
use crate::error::{Error, Result};
use crate::key::range::KeyRange;
use crate::source::Session;

/// Compares one range of one table across the sources, whose sessions are `clients`; with a
/// checkpoint, the range's findings come back too, to be saved with its tally.
pub async fn diff_range(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    range: &KeyRange,
) -> Result<(RangeTally, Vec<Finding>)> {
    if let Some(narrow) = &ctx.tables[table].narrow {
        return super::narrow::diff_range(ctx, clients, table, range, narrow).await;
    }
    let plan = &ctx.tables[table].plan;
    let mut readers = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let flag = ctx.tables[table]
            .changed_after
            .as_deref()
            .filter(|_| i == clients.len() - 1);
        let reader = match &plan.codecs[i] {
            Some(codec) => Some(
                start_reader(client, plan, i, range, codec.clone(), ctx.batch_bytes, flag).await,
            ),
            None => None,
        };
        let reader = reader
            .transpose()
            .map_err(|e| e.context(at(ctx, table, i, range)))?;
        readers.push(reader);
    }
    let run = &ctx.tables[table];
    let mut merge = RangeMerge::new(run, table, range, clients.len(), ctx.capture);
    if ctx.show_values {
        merge = merge.show_values();
    }
    let counted = plan.codecs.iter().position(Option::is_some);
    let mut kept = Vec::new();
    loop {
        let step = merge
            .step()
            .map_err(|e| merge_error(ctx, table, range, e))?;
        let found = merge.take_found();
        if ctx.keeps_findings() {
            kept.extend(found.iter().cloned());
        }
        if !found.is_empty() {
            let _ = ctx.findings.send(found).await;
        }
        let Step::Need(i) = step else { break };
        let unit = Unit {
            ctx,
            table,
            range,
            counted,
        };
        unit.feed(&mut readers, &mut merge, i).await?;
    }
    Ok((merge.finish(), kept))
}

/// The range being merged, for [`Unit::feed`].
pub(super) struct Unit<'a> {
    pub ctx: &'a RunContext,
    pub table: usize,
    pub range: &'a KeyRange,
    /// The source whose rows the progress counts.
    pub counted: Option<usize>,
}

impl Unit<'_> {
    /// Gives the merge the next batch of source `i`, counting its rows for the progress.
    pub async fn feed(
        &self,
        readers: &mut [Option<Reader>],
        merge: &mut RangeMerge<'_>,
        i: usize,
    ) -> Result<()> {
        let (ctx, table, range) = (self.ctx, self.table, self.range);
        let batch = next_batch(&mut readers[i])
            .await
            .map_err(|e| e.context(at(ctx, table, i, range)))?;
        if let Some(b) = batch.as_ref().filter(|_| Some(i) == self.counted) {
            ctx.reporter.rows(table, b.len() as u64);
        }
        merge
            .feed(i, batch)
            .map_err(|e| merge_error(ctx, table, range, e))
    }
}

fn at(ctx: &RunContext, table: usize, source: usize, range: &KeyRange) -> String {
    format!(
        "reading {} from {}, range {range}",
        ctx.tables[table].plan.name, ctx.roles[source]
    )
}

pub(super) fn merge_error(
    ctx: &RunContext,
    table: usize,
    range: &KeyRange,
    err: MergeError,
) -> Error {
    let err = match err {
        MergeError::Value(e) => {
            let name = &ctx.tables[table].plan.name;
            return Error::from(e).context(format!("comparing {name} in range {range}"));
        }
        MergeError::Order(e) => e,
    };
    let (source, what) = match err {
        OrderError::OutOfOrder { source } => (source, "returned keys out of order or duplicated"),
        OrderError::OutsideRange { source } => (source, "returned a key outside the range"),
    };
    Error::internal(format!(
        "{} {what} while reading {} range {range}",
        ctx.roles[source], ctx.tables[table].plan.name
    ))
    .with_hint("the server's key order disagrees with byte order; please report this with the key's type and collation")
}
