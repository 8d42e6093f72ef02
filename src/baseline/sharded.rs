//! A baseline taken by many processes: each captures some key ranges, one assembles them.
//!
//! A shard captures each of its (table, range) units on its own, as a one-range table, so its
//! leaves are exactly that range's (`tree::leaves::RangeLeaves`: the head before the range's
//! first anchor, then its leaves) and its `--rows` file is that range's; it writes them as
//! `leaves/TTTTT-RRRRRR.parquet` and `rows/NNNN_<table>/RRRRR.parquet` in its directory.
//! [`assemble`] reads every table's ranges back in key order and joins them with
//! `tree::leaves::combine`, as a single capture joins its ranges: leaves start at keys chosen by
//! their hash, so the result does not depend on how the ranges were cut or who read them, and
//! the baseline is the one a single `baseline` run writes of the same snapshot (same leaves,
//! roots and row counts; the row files keep a single run's layout).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::capture::{capture, CaptureTable, CaptureWork, Captured};
use super::files::{read_leaves, write_leaves};
use super::manifest::{Manifest, RowPart, TableEntry};
use super::take::write_table;
use crate::error::{Error, Result};
use crate::plan::{TablePlan, TableRun};
use crate::progress::Reporter;
use crate::source::{SnapshotInfo, Source};
use crate::tree::leaves::{combine, shift_for, RangeLeaves};

/// What a shard captured of one unit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitOut {
    pub table: usize,
    pub range: usize,
    /// Its `--rows` file, named as in the baseline.
    pub part: Option<RowPart>,
}

fn leaves_file(dir: &Path, table: usize, range: usize) -> PathBuf {
    dir.join("leaves")
        .join(format!("{table:05}-{range:06}.parquet"))
}

/// The `--rows` file of range `range` of table `index`, relative to the baseline (and to a
/// shard's directory).
fn rows_file(plan: &TablePlan, index: usize, range: usize) -> String {
    format!("rows/{}/{range:05}.parquet", plan.name.file_stem(index))
}

/// A shard's part of a baseline plan.
pub struct ShardPart<'a> {
    /// Every table's plan and cut.
    pub runs: &'a [TableRun],
    /// The same plans, shared with the capture.
    pub plans: &'a [Arc<TablePlan>],
    /// The shard's (table, range) units.
    pub units: &'a [(usize, usize)],
    /// `--rows`.
    pub rows: bool,
}

/// Captures a shard's part from `source` into `dir` (see the module doc).
pub async fn capture_units(
    source: &Source,
    part: ShardPart<'_>,
    dir: &Path,
    work: CaptureWork<'_>,
    reporter: Arc<dyn Reporter>,
) -> Result<Vec<UnitOut>> {
    let ShardPart {
        runs,
        plans,
        units,
        rows,
    } = part;
    std::fs::create_dir_all(dir.join("leaves")).map_err(|e| Error::io(dir.display(), e))?;
    let mut tables = Vec::with_capacity(units.len());
    for &(t, r) in units {
        let plan = &plans[t];
        // A one-range table writes its row file as 00000.parquet into its own scratch folder.
        let scratch = match rows && !plan.keyless() {
            true => {
                let d = dir.join("scratch").join(format!("{t:05}-{r:06}"));
                std::fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
                Some((d, String::new()))
            }
            false => None,
        };
        tables.push(CaptureTable {
            plan: plan.clone(),
            codec: 0,
            ranges: vec![runs[t].ranges[r].clone()],
            leaf_shift: shift_for(plan.est_rows),
            rows: scratch,
        });
    }
    let (done, mut finished) = mpsc::unbounded_channel();
    capture(source, &tables, work, reporter, done).await;
    let mut got: Vec<Option<Captured>> = tables.iter().map(|_| None).collect();
    while let Ok((i, c)) = finished.try_recv() {
        got[i] = Some(c);
    }
    let mut out = Vec::with_capacity(units.len());
    for ((&(t, r), table), captured) in units.iter().zip(&tables).zip(got) {
        let captured = captured.ok_or_else(|| Error::internal("a unit was never captured"))?;
        if let Some(e) = captured.error {
            return Err(e.context(format!("taking the baseline of {}", table.plan.name)));
        }
        let codec = table.plan.codecs[0]
            .as_ref()
            .expect("the source has the table");
        let kinds = codec.kinds[..codec.nkey].to_vec();
        write_leaves(&leaves_file(dir, t, r), &captured.leaves, &kinds)?;
        let part = match (&table.rows, captured.parts.into_iter().next()) {
            (Some((scratch, _)), Some(mut part)) => {
                part.file = rows_file(&table.plan, t, r);
                let to = dir.join(&part.file);
                std::fs::create_dir_all(to.parent().expect("a folder"))
                    .map_err(|e| Error::io(to.display(), e))?;
                std::fs::rename(scratch.join("00000.parquet"), &to)
                    .map_err(|e| Error::io(to.display(), e))?;
                Some(part)
            }
            _ => None,
        };
        out.push(UnitOut {
            table: t,
            range: r,
            part,
        });
    }
    let _ = std::fs::remove_dir_all(dir.join("scratch"));
    Ok(out)
}

/// Assembles the baseline in `staging` from the units the shards captured: `units` maps every
/// (table, range) of `runs` to the shard directory holding it and what it holds.
pub async fn assemble(
    staging: &Path,
    runs: Vec<TableRun>,
    units: &BTreeMap<(usize, usize), (PathBuf, UnitOut)>,
    snapshot: SnapshotInfo,
    rows: bool,
    scope: Option<String>,
) -> Result<Manifest> {
    for sub in ["leaves", "rows"] {
        let d = staging.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
    }
    let mut manifest = Manifest::new(snapshot, rows);
    for (t, run) in runs.into_iter().enumerate() {
        let mut ranges = Vec::with_capacity(run.ranges.len());
        let mut parts = Vec::new();
        for r in 0..run.ranges.len() {
            let (dir, unit) = units.get(&(t, r)).ok_or_else(|| {
                Error::usage(format!("no shard holds range {r} of {}", run.plan.name))
            })?;
            let mut leaves = read_leaves(&leaves_file(dir, t, r))?.into_iter();
            let head = leaves.next().map(|l| l.fp).unwrap_or_default();
            ranges.push(RangeLeaves {
                head,
                leaves: leaves.collect(),
            });
            if let Some(part) = &unit.part {
                let to = staging.join(&part.file);
                std::fs::create_dir_all(to.parent().expect("a folder"))
                    .map_err(|e| Error::io(to.display(), e))?;
                let from = dir.join(&part.file);
                std::fs::hard_link(&from, &to)
                    .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
                    .map_err(|e| Error::io(from.display(), e))?;
                parts.push(part.clone());
            }
        }
        let leaves = combine(ranges);
        let got = Captured {
            total: crate::tree::leaves::total(&leaves),
            leaves,
            parts,
            ..Captured::default()
        };
        let table = CaptureTable {
            leaf_shift: shift_for(run.plan.est_rows),
            plan: Arc::new(run.plan),
            codec: 0,
            ranges: Vec::new(),
            rows: None,
        };
        let entry: TableEntry = write_table(staging, t, &table, got).await?;
        manifest.tables.push(entry);
    }
    manifest.scope = scope;
    Ok(manifest)
}
