//! One source → per table, its content-defined leaves (and, for `--rows` baselines, its
//! `(key, digest)` row files): what a baseline stores, and what a database is reduced to when it
//! is compared with one.
//!
//! The work is cut as a verify's is: one unit per (table, key range), `jobs` worker sessions all
//! in the source's exported snapshot, rows streamed by binary COPY in byte-bounded batches and
//! digested on rayon (`range_diff`'s readers). Each batch then goes back to the pool to be cut
//! into leaves and, with rows, encoded into the range's Parquet file, so the tokio workers only
//! move bytes. A range's leaves are joined to its neighbours' in key order at the end
//! (`tree::leaves::combine`); memory is one leaf list per table and a few batches per worker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::mpsc;

use crate::baseline::epochs::Epochs;
use crate::baseline::files::{frame_key, KeyedRow, RowsWriter};
use crate::baseline::manifest::RowPart;
use crate::error::{Error, Result};
use crate::hash::digest::{DigestBatch, RowCodec};
use crate::key::range::KeyRange;
use crate::key::render::row_key_json;
use crate::pipeline::readers::{next_batch, start_query, start_reader};
use crate::plan::TablePlan;
use crate::pool::on_pool;
use crate::progress::{Reporter, TableDone};
use crate::settings::LiveLimits;
use crate::shape::TypeKind;
use crate::source::throttle::Gate;
use crate::source::visit::{self, Patience};
use crate::source::Source;
use crate::tree::leaves::{combine, total, Leaf, LeafBuilder, RangeLeaves};
use crate::tree::Fingerprint;

/// One table to capture.
pub struct CaptureTable {
    /// Shared with whoever compares the table once it is captured.
    pub plan: Arc<TablePlan>,
    /// Which of the plan's codecs reads this source.
    pub codec: usize,
    pub ranges: Vec<KeyRange>,
    pub leaf_shift: u8,
    /// With rows: the directory the range files go to, and their names relative to the baseline.
    pub rows: Option<(PathBuf, String)>,
}

/// A captured table.
#[derive(Debug, Default)]
pub struct Captured {
    pub leaves: Vec<Leaf>,
    pub total: Fingerprint,
    pub parts: Vec<RowPart>,
    /// The first range that failed; the capture of this table is then incomplete.
    pub error: Option<Error>,
    /// The snapshots (epochs, see `epochs`) the table's ranges read.
    pub epochs: Vec<u32>,
    pub elapsed: Duration,
}

type RangeOutcome = Result<(RangeLeaves, Option<RowPart>)>;

struct Shared<'a> {
    source: &'a Source,
    tables: &'a [CaptureTable],
    batch_bytes: usize,
    reporter: Arc<dyn Reporter>,
    gate: Gate,
    lock_wait: std::time::Duration,
    epochs: &'a Epochs,
    /// Per table, the epochs its ranges read so far.
    read_in: Mutex<Vec<std::collections::BTreeSet<u32>>>,
    queue: Mutex<Vec<(usize, usize)>>,
    results: Mutex<Vec<Vec<Option<RangeOutcome>>>>,
    started: Mutex<Vec<Option<Instant>>>,
    done: mpsc::UnboundedSender<(usize, Captured)>,
}

/// How hard and how a capture reads its source.
pub struct CaptureWork<'a> {
    /// Worker sessions.
    pub jobs: usize,
    pub batch_bytes: usize,
    pub live: &'a LiveLimits,
    /// The snapshot(s) ranges read.
    pub epochs: &'a Epochs,
}

/// Captures every table of `tables` from `source` with `jobs` sessions, handing each table to
/// `done` as soon as its last range is read, so that only the tables in flight are in memory.
pub async fn capture(
    source: &Source,
    tables: &[CaptureTable],
    work: CaptureWork<'_>,
    reporter: Arc<dyn Reporter>,
    done: mpsc::UnboundedSender<(usize, Captured)>,
) {
    let CaptureWork {
        jobs,
        batch_bytes,
        live,
        epochs,
    } = work;
    let gate = match Gate::open(&[source], live).await {
        Ok(gate) => gate,
        Err(e) => {
            reporter.message(&format!("the throttle cannot watch {}: {e}", source.role));
            Gate::open_always()
        }
    };
    let mut units: Vec<(usize, usize)> = Vec::new();
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(tables[t].plan.est_rows));
    for t in order {
        units.extend((0..tables[t].ranges.len()).map(|r| (t, r)));
    }
    units.reverse();
    let shared = Shared {
        source,
        tables,
        batch_bytes,
        reporter,
        gate,
        lock_wait: live.lock_wait,
        epochs,
        read_in: Mutex::new(vec![Default::default(); tables.len()]),
        queue: Mutex::new(units),
        results: Mutex::new(
            tables
                .iter()
                .map(|t| t.ranges.iter().map(|_| None).collect())
                .collect(),
        ),
        started: Mutex::new(vec![None; tables.len()]),
        done,
    };
    join_all((0..jobs.max(1)).map(|_| worker(&shared))).await;
}

fn assemble(ranges: Vec<Option<RangeOutcome>>, started: Option<Instant>) -> Captured {
    let mut out = Captured {
        elapsed: started.map(|s| s.elapsed()).unwrap_or_default(),
        ..Captured::default()
    };
    let mut leaves = Vec::with_capacity(ranges.len());
    for range in ranges {
        match range {
            Some(Ok((l, part))) => {
                leaves.push(l);
                out.parts.extend(part);
            }
            Some(Err(e)) => {
                out.error.get_or_insert(e);
            }
            None => {
                out.error
                    .get_or_insert_with(|| Error::source("a key range was never read"));
            }
        }
    }
    out.leaves = combine(leaves);
    out.total = total(&out.leaves);
    out
}

async fn worker(shared: &Shared<'_>) {
    let mut client = None;
    while !crate::interrupt::requested() {
        let Some((t, r)) = shared.queue.lock().expect("queue lock").pop() else {
            return;
        };
        mark_started(shared, t);
        if client.is_none() {
            client = match shared.source.worker().await {
                Ok(c) => Some(c),
                Err(e) => {
                    finish_unit(shared, t, r, Err(e));
                    continue;
                }
            };
        }
        let session = client.as_ref().expect("connected");
        shared.gate.pass(&*shared.reporter).await;
        let outcome = visited_range(shared, session, t, r).await;
        if outcome.is_err() {
            client = None;
        }
        finish_unit(shared, t, r, outcome);
    }
}

fn mark_started(shared: &Shared<'_>, t: usize) {
    let mut started = shared.started.lock().expect("start lock");
    if started[t].is_none() {
        started[t] = Some(Instant::now());
        let plan = &shared.tables[t].plan;
        shared.reporter.table_started(t, &plan.name, plan.est_rows);
    }
}

fn finish_unit(shared: &Shared<'_>, t: usize, r: usize, outcome: RangeOutcome) {
    if let Err(e) = &outcome {
        shared.reporter.message(&e.to_string());
    }
    let ranges = {
        let mut results = shared.results.lock().expect("results lock");
        results[t][r] = Some(outcome);
        if !results[t].iter().all(Option::is_some) {
            return;
        }
        std::mem::take(&mut results[t])
    };
    let started = shared.started.lock().expect("start lock")[t];
    let mut captured = assemble(ranges, started);
    let read_in = std::mem::take(&mut shared.read_in.lock().expect("epochs lock")[t]);
    captured.epochs = read_in.into_iter().collect();
    let done = TableDone {
        rows: captured.total.count,
        differences: 0,
        failed: captured.error.is_some(),
    };
    shared.reporter.table_finished(t, &done);
    let _ = shared.done.send((t, captured));
}

/// One range in one visit of the source: the table is locked only while it streams.
async fn visited_range(
    shared: &Shared<'_>,
    session: &crate::source::Session,
    t: usize,
    r: usize,
) -> RangeOutcome {
    let (epoch, snapshot_id) = shared.epochs.current().await?;
    let stop = [visit::Stop {
        role: shared.source.role.to_string(),
        session,
        snapshot_id: &snapshot_id,
    }];
    let table = &shared.tables[t];
    let patience = Patience {
        lock_wait: shared.lock_wait,
        reporter: &*shared.reporter,
    };
    let range = &table.ranges[r];
    let what = format!(", range {range}");
    visit::enter_all(&stop, &table.plan.name, &what, &patience).await?;
    let outcome = capture_range(shared, session, t, r).await?;
    shared.read_in.lock().expect("epochs lock")[t].insert(epoch as u32);
    visit::leave_all(&stop).await.map_err(|e| {
        e.context(format!(
            "ending the read of {} range {range}",
            table.plan.name
        ))
    })?;
    Ok(outcome)
}

/// Reads one range and cuts it into leaves (and a row file).
async fn capture_range(
    shared: &Shared<'_>,
    client: &crate::source::Session,
    t: usize,
    r: usize,
) -> RangeOutcome {
    let table = &shared.tables[t];
    if table.plan.keyless() {
        return capture_keyless(shared, client, t).await;
    }
    let range = &table.ranges[r];
    let at = || {
        format!(
            "reading {} from {}, range {range}",
            table.plan.name, shared.source.role
        )
    };
    let codec: Arc<RowCodec> = table.plan.codecs[table.codec]
        .clone()
        .ok_or_else(|| Error::internal("capturing a table absent from its source"))?;
    let writer = match &table.rows {
        Some((dir, prefix)) => {
            let name = format!("{prefix}/{r:05}.parquet");
            Some(RowsWriter::create(
                dir.join(format!("{r:05}.parquet")),
                name,
            )?)
        }
        None => None,
    };
    let mut state = RangeState {
        builder: LeafBuilder::new(table.leaf_shift),
        writer,
        key_kinds: codec.kinds[..codec.nkey].to_vec(),
        range: range.clone(),
        last: None,
    };
    let mut reader = Some(
        start_reader(
            client,
            &table.plan,
            table.codec,
            range,
            codec,
            shared.batch_bytes,
            None,
        )
        .await
        .map_err(|e| e.context(at()))?,
    );
    while let Some(batch) = next_batch(&mut reader).await.map_err(|e| e.context(at()))? {
        shared.reporter.rows(t, batch.len() as u64);
        state = on_pool(move || state.absorb(batch).map(|()| state))
            .await
            .map_err(|_| Error::internal("the hashing pool dropped a batch"))?
            .map_err(|e| e.context(at()))?;
    }
    state.finish()
}

/// A keyless table, read whole: its copies in digest order, copy `k` of a row content keyed by
/// (digest, k) as `compare::multiset` counts them, so two captures of the same multiset cut the
/// same leaves and a difference is a span of digests. No row file: a keyless row has no key to
/// find it by again.
async fn capture_keyless(
    shared: &Shared<'_>,
    client: &crate::source::Session,
    t: usize,
) -> RangeOutcome {
    use crate::pipeline::keyless::{partition_bits, passes_bits, read_partition, spill_table};
    let table = &shared.tables[t];
    let at = || {
        format!(
            "reading {} (keyless) from {}",
            table.plan.name, shared.source.role
        )
    };
    let bits = partition_bits(table.plan.est_rows, 1);
    let rows = |n| shared.reporter.rows(t, n);
    let spill = spill_table(
        client,
        &table.plan,
        table.codec,
        0,
        bits,
        shared.batch_bytes,
        rows,
    )
    .await
    .map_err(|e| e.context(at()))?;
    let mut builder = LeafBuilder::new(table.leaf_shift);
    for p in 0..(1usize << bits) {
        let sub_bits = passes_bits(spill.bytes_in(p));
        for sub in 0..(1usize << sub_bits) {
            let mut copies = read_partition([&spill], p, sub, sub_bits)?;
            builder = on_pool(move || {
                crate::compare::multiset::count(
                    &mut copies,
                    1,
                    |digest, n| {
                        for k in 0..n {
                            let mut key = digest.to_vec();
                            key.extend_from_slice(&k.to_be_bytes());
                            builder.push(&key, digest, Vec::new);
                        }
                    },
                    |_| unreachable!("one source's copies never differ in number"),
                );
                builder
            })
            .await
            .map_err(|_| Error::internal("the hashing pool dropped a batch"))?;
        }
    }
    Ok((builder.finish(), None))
}

/// A range being cut: the leaf builder, the row file, the last key seen.
struct RangeState {
    builder: LeafBuilder,
    writer: Option<RowsWriter>,
    key_kinds: Vec<TypeKind>,
    range: KeyRange,
    last: Option<Vec<u8>>,
}

impl RangeState {
    /// Leaves depend on key order: a key out of order or outside the range stops the capture.
    fn absorb(&mut self, batch: DigestBatch) -> Result<()> {
        let nkey = self.key_kinds.len();
        for row in 0..batch.len() {
            let key = batch.key(row);
            let prev = match row {
                0 => self.last.as_deref(),
                _ => Some(batch.key(row - 1)),
            };
            let ordered = prev.is_none_or(|prev| prev < key);
            if !ordered || !self.range.contains(key) {
                return Err(Error::internal(format!(
                    "the server returned keys out of order or outside range {}",
                    self.range
                ))
                .with_hint("the server's key order disagrees with byte order; please report this with the key's type"));
            }
            self.builder.push(key, &batch.digests[row], || {
                frame_key(&batch.rows, row, nkey)
            });
            if row + 1 == batch.len() {
                self.last = Some(key.to_vec());
            }
        }
        if let Some(w) = &mut self.writer {
            w.write(&batch, &self.key_kinds)?;
        }
        Ok(())
    }

    fn finish(self) -> RangeOutcome {
        let part = self.writer.map(RowsWriter::finish).transpose()?;
        Ok((self.builder.finish(), part))
    }
}

/// The rows of a few key ranges of a table on `client` as `(order key, digest, key JSON)`, in
/// key order: the live side of a comparison with a `--rows` baseline, read only where spans
/// differ, several spans per statement to save round trips.
pub async fn span_rows(
    client: &crate::source::Session,
    plan: &TablePlan,
    source: usize,
    ranges: &[KeyRange],
    batch_bytes: usize,
) -> Result<Vec<KeyedRow>> {
    let codec: Arc<RowCodec> = plan.codecs[source]
        .clone()
        .ok_or_else(|| Error::internal("reading a table absent from its source"))?;
    let key_kinds = codec.kinds[..codec.nkey].to_vec();
    let query = spans_query(plan, source, ranges);
    let ncols = codec.kinds.len();
    let mut reader = Some(start_query(client, &query, codec, ncols, batch_bytes).await?);
    let mut rows: Vec<KeyedRow> = Vec::new();
    while let Some(batch) = next_batch(&mut reader).await? {
        for row in 0..batch.len() {
            let key = batch.key(row);
            let inside = ranges.iter().any(|r| r.contains(key));
            if !inside
                || rows
                    .last()
                    .is_some_and(|prev| prev.order_key.as_slice() >= key)
            {
                return Err(Error::internal(format!(
                    "{} returned keys out of order or outside the spans asked for",
                    plan.name
                )));
            }
            rows.push(KeyedRow {
                order_key: key.to_vec(),
                digest: batch.digests[row],
                key: row_key_json(&key_kinds, &batch.rows, row)?,
            });
        }
    }
    Ok(rows)
}

/// `COPY (SELECT … WHERE range1 OR range2 … ORDER BY key)`.
fn spans_query(plan: &TablePlan, source: usize, ranges: &[KeyRange]) -> String {
    let keys = plan.key_exprs();
    let predicates: Vec<String> = ranges
        .iter()
        .map(|r| {
            r.predicate(&keys)
                .map_or("TRUE".to_string(), |p| format!("({p})"))
        })
        .collect();
    format!(
        "COPY (SELECT {} FROM {}{} ORDER BY {}) TO STDOUT (FORMAT binary)",
        plan.select_list_on(source),
        plan.name.sql(),
        plan.where_clause(Some(&predicates.join(" OR "))),
        keys.join(", ")
    )
}
