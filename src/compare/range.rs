//! One key range of one table, merged: digested batches of every source in, counts and findings
//! out. The sans-I/O core of a verify.
//!
//! A [`RangeMerge`] walks the sources' batches together by key ([`merge`]), classifies each key
//! (two-way, or three-way with the backup as base), adds every row to its source's checksum tree,
//! counts classes and differing columns in a [`RangeTally`], and keeps the findings (with their
//! restore records in recover runs) until the caller takes them. It asks for batches through
//! [`Step::Need`]; whoever owns the sockets (`pipeline::range_diff`) fetches them. Everything
//! here is a function of the batches, so it is tested with batches built in memory.

use crate::classify::{three_way, two_way, Class, Finding};
use crate::compare::merge::{merge, Cursor, OrderError, Present, Step};
use crate::compare::restore::{restore_key, CaptureSpec, Row};
use crate::compare::tally::RangeTally;
use crate::hash::digest::{DigestBatch, RowCodec};
use crate::key::range::KeyRange;
use crate::key::render::row_key_json;
use crate::plan::{TablePlan, TableRun};
use crate::shape::ValueError;

/// What every key of the range shares.
struct KeyContext<'a> {
    run: &'a TableRun,
    table: usize,
    capture: Option<CaptureSpec>,
}

/// The merge of one range across 2 or 3 sources.
pub struct RangeMerge<'a> {
    key: KeyContext<'a>,
    range: &'a KeyRange,
    cursors: Vec<Cursor>,
    tally: RangeTally,
    found: Vec<Finding>,
}

impl<'a> RangeMerge<'a> {
    /// A merge of `range` of table number `table` (`run`) across `sources` sources; `capture`
    /// is set in recover runs, and findings then carry restore records.
    pub fn new(
        run: &'a TableRun,
        table: usize,
        range: &'a KeyRange,
        sources: usize,
        capture: Option<CaptureSpec>,
    ) -> Self {
        RangeMerge {
            key: KeyContext {
                run,
                table,
                capture,
            },
            range,
            cursors: (0..sources).map(|_| Cursor::new()).collect(),
            tally: RangeTally::new(&run.plan, sources, run.tree_bits),
            found: Vec::new(),
        }
    }

    /// Merges as far as the batches at hand go: `Need(i)` asks for source `i`'s next batch,
    /// `Done` ends the range. A value that cannot be read stops the merge with its error.
    pub fn step(&mut self) -> Result<Step, MergeError> {
        let (key, tally, found) = (&self.key, &mut self.tally, &mut self.found);
        let step = merge(&mut self.cursors, &mut |cs, present| {
            on_key(key, cs, present, tally, found)
        })
        .map_err(MergeError::Order)?;
        match self.tally.take_error() {
            Some(err) => Err(MergeError::Value(err)),
            None => Ok(step),
        }
    }

    /// Gives source `i` its next batch, or `None` at the end of its stream.
    pub fn feed(&mut self, i: usize, batch: Option<DigestBatch>) -> Result<(), MergeError> {
        self.cursors[i]
            .feed(batch, self.range, i)
            .map_err(MergeError::Order)
    }

    /// The findings made since the last call.
    pub fn take_found(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.found)
    }

    /// The range's counts and trees, once `step` said `Done`.
    pub fn finish(self) -> RangeTally {
        self.tally
    }
}

/// Why a merge stopped.
#[derive(Debug)]
pub enum MergeError {
    /// A source broke the order contract (see [`OrderError`]).
    Order(OrderError),
    /// A value could not be read.
    Value(ValueError),
}

/// Classifies one key and records it.
fn on_key(
    key: &KeyContext<'_>,
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
    match finding(key, class, cursors, present) {
        Ok(f) => {
            tally.add_finding(&f);
            found.push(f);
        }
        Err(e) => tally.set_error(e),
    }
}

/// The finding of a differing key, with its restore record in recover runs.
fn finding(
    key: &KeyContext<'_>,
    class: Class,
    cursors: &[Cursor],
    present: &Present,
) -> Result<Finding, ValueError> {
    let run = key.run;
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
    let key_text = key_json(
        plan.codecs[holder].as_ref().expect("holder has the table"),
        batch,
        r,
    )?;
    // A target row the `--changed-after` predicate marks as written after the replica is never
    // overwritten: its key is kept, whatever its class.
    let written_after = run.changed_after.is_some()
        && rows[last].is_some_and(|(b, i)| b.rows.field(i, plan.columns.len()) == Some(&[1][..]));
    let restore = match key.capture {
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
        table: key.table,
        class,
        key: key_text,
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
