//! The table plan: what will be compared, decided before any row is read.
//!
//! [`reconcile`] (in [`table`]) lines one table's shapes up across sources into a [`TablePlan`]
//! (key, compared columns, per-source codecs, schema differences). A [`TableRun`] adds what the run
//! needs on top: the key ranges the table is cut into, the size of its checksum trees, and the
//! restore options of recover runs. Everything here is pure: the sampling of key boundaries, which
//! needs a session, lives in `source::sample`, and the planning of ranges from those boundaries in
//! `key::range`.

pub mod table;

use std::collections::HashMap;

pub use table::{reconcile, SchemaDiff, TablePlan};

use crate::error::{Error, Result};
use crate::key::range::KeyRange;
use crate::shape::TableName;

/// A table that will be compared: its plan, its ranges, its tree shape.
#[derive(Debug)]
pub struct TableRun {
    pub plan: TablePlan,
    pub ranges: Vec<KeyRange>,
    pub tree_bits: u8,
    /// Recover runs with `--columns`: which compared columns divergent rows restore.
    pub restore_mask: Option<Vec<bool>>,
    /// Recover runs with `--changed-after`: the predicate marking target rows written after the
    /// replica (kept, never overwritten).
    pub changed_after: Option<String>,
}

/// Turns `--columns` into per-table masks over the compared columns.
pub fn restore_masks(
    tables: &mut [TableRun],
    columns: &HashMap<TableName, Vec<String>>,
    changed_after: &HashMap<TableName, String>,
) -> Result<()> {
    for (name, cols) in columns {
        let run = tables
            .iter_mut()
            .find(|t| &t.plan.name == name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--columns names table {name}, which is not compared"
                ))
            })?;
        let mut mask = vec![false; run.plan.columns.len()];
        for col in cols {
            let i = run
                .plan
                .columns
                .iter()
                .position(|c| c == col)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--columns: column {col} of {name} is not a compared column"
                    ))
                    .with_hint("name columns that exist on both sides with comparable types")
                })?;
            mask[i] = true;
        }
        run.restore_mask = Some(mask);
    }
    for (name, predicate) in changed_after {
        let run = tables
            .iter_mut()
            .find(|t| &t.plan.name == name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "--changed-after names table {name}, which is not compared"
                ))
            })?;
        run.changed_after = Some(predicate.clone());
    }
    Ok(())
}

/// Ranges of about 200k rows, at least two per worker for large tables so the workers stay busy
/// till the end; small tables stay whole.
pub fn ranges_for(est_rows: u64, jobs: usize) -> usize {
    const ROWS_PER_RANGE: u64 = 200_000;
    if est_rows < 50_000 {
        return 1;
    }
    let by_size = est_rows.div_ceil(ROWS_PER_RANGE) as usize;
    by_size.max(jobs * 2).min(4096)
}

/// About 32 rows per leaf, between 2^4 and 2^12 leaves. The cap keeps a range's trees (one per
/// source, 40 bytes a leaf) inside the CPU's L2 cache: every row adds to a random leaf, and with
/// 2^16 leaves those adds were cache misses that cost more than hashing the row.
pub fn tree_bits_for(est_rows: u64) -> u8 {
    let leaves = (est_rows / 32).max(1);
    (64 - leaves.leading_zeros()).clamp(4, 12) as u8
}
