//! One unit of work: one key range of one table, streamed from every source and merged.
//!
//! Per source a reader task runs the range's `COPY (SELECT … ORDER BY key) TO STDOUT (FORMAT
//! binary)`, cuts the stream into byte-bounded [`RowBatch`](crate::rows::batch::RowBatch)es and hands each to the rayon pool for
//! digesting; it passes the pending results, in order, through a bounded channel, so reading,
//! hashing and merging overlap while at most `QUEUE_DEPTH` batches per source are in memory. The
//! merge classifies every key and tallies counts, per-column differences and checksum trees for
//! the range; findings leave in small chunks as they are found.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::CopyOutStream;

use crate::source::tapped_copy::TappedCopy;
use crate::source::Session;

use super::tally::RangeTally;
use super::RunContext;
use crate::classify::{three_way, two_way, Class, Finding};
use crate::compare::merge::{merge, Cursor, OrderError, Present, Step};
use crate::compare::restore::{restore_key, Row};
use crate::compare::schema::TablePlan;
use crate::error::{Context, Error, Result};
use crate::hash::digest::{digest_on_pool, DigestBatch, RowCodec};
use crate::key::range::KeyRange;
use crate::key::render::row_key_json;
use crate::rows::batch::CopyDecoder;
use crate::shape::ValueError;

/// Batches per source waiting to be merged (hashing or hashed).
pub(super) const QUEUE_DEPTH: usize = 4;

/// What a reader passes to the merge.
pub(super) enum Item {
    Batch(oneshot::Receiver<Result<DigestBatch, ValueError>>),
    Failed(Error),
    End,
}

/// The COPY statement of one range on one source; `flag` adds a trailing boolean column (the
/// target's `--changed-after` predicate), which the digest leaves out.
pub fn copy_query(plan: &TablePlan, range: &KeyRange, flag: Option<&str>) -> String {
    let keys = plan.key_exprs();
    let filter = range
        .predicate(&keys)
        .map(|p| format!(" WHERE {p}"))
        .unwrap_or_default();
    let flag = flag.map(|f| format!(", ({f}) IS TRUE")).unwrap_or_default();
    format!(
        "COPY (SELECT {}{flag} FROM {}{filter} ORDER BY {}) TO STDOUT (FORMAT binary)",
        plan.select_list(),
        plan.name.sql(),
        keys.join(", ")
    )
}

/// Compares one range of one table across the sources, whose sessions are `clients`.
pub async fn diff_range(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    range: &KeyRange,
) -> Result<RangeTally> {
    let plan = &ctx.tables[table].plan;
    let mut readers = Vec::with_capacity(clients.len());
    for (i, client) in clients.iter().enumerate() {
        let flag = ctx.tables[table]
            .changed_after
            .as_deref()
            .filter(|_| i == clients.len() - 1);
        let reader = match &plan.codecs[i] {
            Some(codec) => {
                Some(start_reader(client, plan, range, codec.clone(), ctx.batch_bytes, flag).await)
            }
            None => None,
        };
        let reader = reader
            .transpose()
            .map_err(|e| e.context(at(ctx, table, i, range)))?;
        readers.push(reader);
    }
    let mut tally = RangeTally::new(plan, clients.len(), ctx.tables[table].tree_bits);
    let mut cursors: Vec<Cursor> = (0..clients.len()).map(|_| Cursor::new()).collect();
    let mut found = Vec::new();
    loop {
        let step = merge(&mut cursors, &mut |cs, present| {
            on_key(ctx, table, cs, present, &mut tally, &mut found)
        })
        .map_err(|e| order_error(ctx, table, range, e))?;
        if let Some(err) = tally.take_error() {
            return Err(
                Error::from(err).context(format!("comparing {} in range {range}", plan.name))
            );
        }
        if !found.is_empty() {
            let _ = ctx.findings.send(std::mem::take(&mut found)).await;
        }
        let Step::Need(i) = step else { break };
        let batch = next_batch(&mut readers[i])
            .await
            .map_err(|e| e.context(at(ctx, table, i, range)))?;
        if let Some(b) = batch
            .as_ref()
            .filter(|_| Some(i) == plan.codecs.iter().position(Option::is_some))
        {
            ctx.reporter.rows(table, b.len() as u64);
        }
        cursors[i]
            .feed(batch, range, i)
            .map_err(|e| order_error(ctx, table, range, e))?;
    }
    Ok(tally)
}

fn at(ctx: &RunContext, table: usize, source: usize, range: &KeyRange) -> String {
    format!(
        "reading {} from {}, range {range}",
        ctx.tables[table].plan.name, ctx.roles[source]
    )
}

fn order_error(ctx: &RunContext, table: usize, range: &KeyRange, err: OrderError) -> Error {
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

/// Classifies one key and records it.
fn on_key(
    ctx: &RunContext,
    table: usize,
    cursors: &[Cursor],
    present: &Present,
    tally: &mut RangeTally,
    found: &mut Vec<Finding>,
) {
    let mut digests = [None; 3];
    // Every source holding this key holds the same key: hash it into a leaf once.
    let mut leaf = None;
    for (i, cursor) in cursors.iter().enumerate() {
        if let (Some(_), Some((batch, row))) = (present[i], cursor.current()) {
            let leaf = *leaf.get_or_insert_with(|| tally.leaf_of(batch.key(row)));
            tally.add_row(i, leaf, &batch.digests[row]);
            digests[i] = Some(&batch.digests[row]);
        }
    }
    let class = match cursors.len() {
        3 => three_way(digests[0], digests[1], digests[2]),
        _ => two_way(digests[0], digests[1]),
    };
    let Some(class) = class else { return };
    match finding(ctx, table, class, cursors, present) {
        Ok(f) => {
            tally.add_finding(&f);
            found.push(f);
        }
        Err(e) => tally.set_error(e),
    }
}

/// The finding of a differing key, with its restore record in recover runs.
fn finding(
    ctx: &RunContext,
    table: usize,
    class: Class,
    cursors: &[Cursor],
    present: &Present,
) -> Result<Finding, ValueError> {
    let run = &ctx.tables[table];
    let plan = &run.plan;
    let rows: Vec<Row<'_>> = (0..cursors.len())
        .map(|i| present[i].and(cursors[i].current()))
        .collect();
    let last = rows.len() - 1;
    // Columns are named against the row a restore would write: the replica's in a three-way run.
    let reference = if rows.len() == 3 && rows[1].is_some() {
        1
    } else {
        0
    };
    let columns = match (rows[reference], rows[last]) {
        (Some(a), Some(b)) => differing_columns(plan, reference, a, b)?,
        _ => Vec::new(),
    };
    let holder = rows
        .iter()
        .position(Option::is_some)
        .expect("a key has a holder");
    let (batch, r) = rows[holder].expect("present");
    let key = key_json(
        plan.codecs[holder].as_ref().expect("holder has the table"),
        batch,
        r,
    )?;
    // A target row the `--changed-after` predicate marks as written after the replica is never
    // overwritten: its key is kept, whatever its class.
    let written_after = run.changed_after.is_some()
        && rows[last].is_some_and(|(b, i)| b.rows.field(i, plan.columns.len()) == Some(&[1][..]));
    let restore = match ctx.capture {
        Some(mut spec) => {
            spec.keep_all |= written_after;
            Some(Box::new(restore_key(
                plan,
                run.restore_mask.as_deref(),
                class,
                spec,
                &rows,
            )?))
        }
        None => None,
    };
    Ok(Finding {
        table,
        class,
        key,
        columns,
        restore,
    })
}

/// The compared columns whose canonical values differ between two rows.
fn differing_columns(
    plan: &TablePlan,
    reference: usize,
    a: (&DigestBatch, usize),
    b: (&DigestBatch, usize),
) -> Result<Vec<u16>, ValueError> {
    let (ca, cb) = (
        plan.codecs[reference].as_ref().expect("reference"),
        plan.codecs[plan.codecs.len() - 1].as_ref().expect("target"),
    );
    let mut cols = Vec::new();
    for col in 0..plan.columns.len() {
        if ca.canonical_field(&a.0.rows, a.1, col)? != cb.canonical_field(&b.0.rows, b.1, col)? {
            cols.push(col as u16);
        }
    }
    Ok(cols)
}

/// The key of a row as a JSON array of exact values.
fn key_json(codec: &RowCodec, batch: &DigestBatch, row: usize) -> Result<String, ValueError> {
    row_key_json(&codec.kinds[..codec.nkey], &batch.rows, row)
}

pub(super) type Reader = mpsc::Receiver<Item>;

pub(super) async fn start_reader(
    client: &Session,
    plan: &TablePlan,
    range: &KeyRange,
    codec: Arc<RowCodec>,
    batch_bytes: usize,
    flag: Option<&str>,
) -> Result<Reader> {
    let ncols = codec.kinds.len() + usize::from(flag.is_some());
    start_query(
        client,
        &copy_query(plan, range, flag),
        codec,
        ncols,
        batch_bytes,
    )
    .await
}

/// Starts a reader over any binary COPY of `ncols` columns whose leading ones `codec` reads: off
/// the session's socket when it can be tapped (see [`crate::source::socket`]), else through
/// tokio-postgres.
pub(super) async fn start_query(
    session: &Session,
    query: &str,
    codec: Arc<RowCodec>,
    ncols: usize,
    batch_bytes: usize,
) -> Result<Reader> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let batcher = Batcher {
        decoder: CopyDecoder::with_capacity(ncols, batch_bytes),
        codec,
        batch_bytes,
        tx,
    };
    let diverted = session
        .divert()
        .await
        .map_err(|e| e.context("starting COPY"))?;
    if let Some(socket) = diverted {
        let copy = TappedCopy::start(socket, query)
            .await
            .map_err(|e| e.context("starting COPY"))?;
        tokio::spawn(read_tapped(copy, batcher));
        return Ok(rx);
    }
    let stream = session
        .copy_out(query)
        .await
        .context(|| "starting COPY".into())?;
    tokio::spawn(read_stream(stream, batcher));
    Ok(rx)
}

/// Rows of one COPY on their way to the hashing pool, in batches of about `batch_bytes`.
struct Batcher {
    decoder: CopyDecoder,
    codec: Arc<RowCodec>,
    batch_bytes: usize,
    tx: mpsc::Sender<Item>,
}

impl Batcher {
    /// Sends the complete rows off to be digested once they fill a batch; `false` when the
    /// receiving side is gone.
    async fn cut(&mut self) -> bool {
        if self.decoder.complete_bytes() < self.batch_bytes {
            return true;
        }
        let batch = self.decoder.take_batch().expect("complete rows");
        let pending = digest_on_pool(self.codec.clone(), batch);
        self.tx.send(Item::Batch(pending)).await.is_ok()
    }

    async fn fail(self, error: Error) {
        let _ = self.tx.send(Item::Failed(error)).await;
    }

    /// Sends the last rows and the end of the stream.
    async fn finish(self) {
        let last = match self.decoder.finish() {
            Ok(last) => last,
            Err(e) => {
                let _ = self.tx.send(Item::Failed(e.into())).await;
                return;
            }
        };
        if let Some(batch) = last {
            let pending = digest_on_pool(self.codec, batch);
            let _ = self.tx.send(Item::Batch(pending)).await;
        }
        let _ = self.tx.send(Item::End).await;
    }
}

/// Reads one COPY stream of tokio-postgres to its end.
async fn read_stream(stream: CopyOutStream, mut batcher: Batcher) {
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let pushed = chunk
            .map_err(Error::pg)
            .and_then(|c| batcher.decoder.push(&c).map_err(Error::from));
        if let Err(e) = pushed {
            return batcher.fail(e).await;
        }
        if !batcher.cut().await {
            return;
        }
    }
    batcher.finish().await;
}

/// Reads one COPY off a tapped session to its end (giving the socket back there).
async fn read_tapped(mut copy: TappedCopy, mut batcher: Batcher) {
    loop {
        match copy.feed(&mut batcher.decoder).await {
            Err(e) => return batcher.fail(e).await,
            Ok(more) => {
                if !batcher.cut().await {
                    return;
                }
                if !more {
                    break;
                }
            }
        }
    }
    batcher.finish().await;
}

/// The next digested batch of a source, `None` at its end (or when the table is absent there).
pub(super) async fn next_batch(reader: &mut Option<Reader>) -> Result<Option<DigestBatch>> {
    let Some(rx) = reader else { return Ok(None) };
    match rx.recv().await {
        Some(Item::Batch(pending)) => {
            let batch = pending
                .await
                .map_err(|_| Error::internal("the hashing pool dropped a batch"))??;
            Ok(Some(batch))
        }
        Some(Item::End) => Ok(None),
        Some(Item::Failed(e)) => Err(e),
        None => Err(Error::internal(
            "a reader stopped without finishing its stream",
        )),
    }
}
