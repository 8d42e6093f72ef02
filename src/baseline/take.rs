//! Taking a baseline: one source → a baseline directory, written atomically.
//!
//! The source is opened like a verify source (one exported snapshot, read-only, a hot standby
//! works), its tables are planned and captured by `pipeline::capture`, and everything is written
//! into a hidden staging directory beside `--out`; the manifest goes in last, sealed with the
//! digests of every file, and the staging directory is renamed into place. Any failure leaves no
//! directory at `--out`.
//!
//! `baseline --json` writes the manifest with the provenance fields of every report
//! (`report::provenance`); the phases of its `timings` are `connecting and exporting a
//! snapshot`, `reading the catalog and planning key ranges`, `capturing rows` (the leaves, and
//! with `--rows` the row digests, written as each table finishes) and `sealing and publishing`
//! (every file's digest into the manifest, then the rename).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::plan::{narrowed, TablePlan};
use tokio::sync::mpsc;

use crate::baseline::capture::{capture, CaptureTable, CaptureWork, Captured};
use crate::baseline::epochs::Epochs;
use crate::pool::on_pool;
use crate::progress::Reporter;
use crate::settings::BaselineSettings;
use crate::shape::{TableName, TableShape};
use crate::source::sample::Planner;
use crate::source::visit::Patience;
use crate::source::{catalog, key_check, Role, Source};
use crate::staging::StagedDir;
use crate::tree::leaves::shift_for;

use super::files::write_leaves;
use super::manifest::{root_of, schema_fingerprint, Manifest, TableEntry, MANIFEST};

/// Takes a baseline; returns its manifest.
pub async fn take(settings: &BaselineSettings, reporter: Arc<dyn Reporter>) -> Result<Manifest> {
    let staging = StagedDir::create(&settings.out, "baseline", settings.force)?;
    create_leaves_dir(&staging)?;
    crate::log::phase("connecting and exporting a snapshot");
    let mut source = Source::open(Role::Base, settings.source.clone()).await?;
    source.limit_rate(settings.live.max_rate);
    crate::log::phase("reading the catalog and planning key ranges");
    let shapes = catalog::read_tables(source.client())
        .await
        .map_err(|e| e.context("reading the catalog of the source"))?;
    let plans = plan_tables(settings, &shapes)?;
    catalog::check_predicates(std::slice::from_ref(&source), &plans).await?;
    let patience = Patience {
        lock_wait: settings.live.lock_wait,
        reporter: &*reporter,
    };
    let (plans, unchecked) =
        key_check::settle(std::slice::from_ref(&source), plans, &patience).await?;
    if let Some((name, e)) = unchecked.into_iter().next() {
        return Err(e.context(format!("taking the baseline of {name}")));
    }
    let mut tables = Vec::with_capacity(plans.len());
    let mut planner = Planner::new(&source, settings.jobs);
    for (i, mut plan) in plans.into_iter().enumerate() {
        let (ranges, est_rows) = planner.cut(&plan, &patience).await?;
        plan.est_rows = est_rows;
        // A keyless table keeps its leaves only (see `capture_keyless`).
        let rows = match settings.rows && !plan.keyless() {
            true => Some(rows_dir(staging.path(), i, &plan.name)?),
            false => None,
        };
        tables.push(CaptureTable {
            leaf_shift: shift_for(plan.est_rows),
            plan: Arc::new(plan),
            codec: 0,
            ranges,
            rows,
        });
    }
    drop(planner);
    crate::log::phase("capturing rows");
    let epochs = match settings.max_snapshot_age {
        Some(age) => Epochs::aging(&mut source, age),
        None => Epochs::fixed(&source),
    };
    // Each table's leaves are written as soon as its last range is read and then dropped, so
    // memory holds only the tables in flight, however many the database has.
    let (done, mut finished) = mpsc::unbounded_channel();
    let work = CaptureWork {
        jobs: settings.jobs,
        batch_bytes: crate::pipeline::batch_bytes(settings.batch_bytes, settings.jobs),
        live: &settings.live,
        epochs: &epochs,
    };
    let capturing = capture(&source, &tables, work, reporter.clone(), done);
    let ((), entries) = tokio::join!(
        capturing,
        write_tables(staging.path(), &tables, &mut finished)
    );
    let mut manifest = Manifest::new(source.snapshot.clone(), settings.rows);
    manifest.tables = entries?;
    manifest.scope = Some(settings.filter.describe()).filter(|_| settings.filter.narrows());
    let snapshots = epochs.snapshots().await;
    if snapshots.len() > 1 {
        manifest.epochs = snapshots;
    } else {
        manifest.tables.iter_mut().for_each(|t| t.epochs.clear());
    }
    crate::log::phase("sealing and publishing");
    crate::pool::blocking(move || {
        manifest.seal(staging.path())?;
        write_manifest(staging.path(), &manifest)?;
        staging.publish()?;
        Ok(manifest)
    })
    .await
}

/// The tables to capture, each reconciled on its own; a table that cannot be keyed fails the
/// baseline (a baseline that silently left a table out would later read as "table dropped").
fn plan_tables(settings: &BaselineSettings, shapes: &[TableShape]) -> Result<Vec<TablePlan>> {
    for wanted in settings.filter.tables.iter().flatten() {
        if !shapes.iter().any(|s| &s.name == wanted) {
            return Err(
                Error::usage(format!("table {wanted} not found on the source"))
                    .with_hint("check the name (schema.table); list tables with psql's \\dt"),
            );
        }
    }
    let mut plans = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for shape in shapes.iter().filter(|s| settings.filter.accepts(&s.name)) {
        let key = settings.keys.get(&shape.name).map(Vec::as_slice);
        match narrowed(
            settings.filter.narrowing(&shape.name),
            &shape.name,
            &[Role::Base],
            &[Some(shape)],
            key,
        ) {
            Ok(plan) => plans.push(plan),
            Err(e) => refused.push(e.to_string()),
        }
    }
    if plans.is_empty() && refused.is_empty() {
        return Err(settings.filter.matched_nothing("the source"));
    }
    if !refused.is_empty() {
        return Err(Error::usage(format!("cannot take a baseline: {}", refused.join("; ")))
            .with_hint("give those tables a key with --key schema.table=cols, or leave them out with --tables/--schema"));
    }
    Ok(plans)
}

fn rows_dir(staging: &Path, i: usize, name: &TableName) -> Result<(PathBuf, String)> {
    let relative = format!("rows/{}", name.file_stem(i));
    let dir = staging.join(&relative);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok((dir, relative))
}

/// Writes every captured table's leaves as it arrives; returns the manifest entries in table
/// order, or the first table that failed.
async fn write_tables(
    staging: &Path,
    tables: &[CaptureTable],
    finished: &mut mpsc::UnboundedReceiver<(usize, Captured)>,
) -> Result<Vec<TableEntry>> {
    let mut entries: Vec<Option<TableEntry>> = tables.iter().map(|_| None).collect();
    let mut failed = None;
    while let Some((i, got)) = finished.recv().await {
        match write_table(staging, i, &tables[i], got).await {
            Ok(entry) => entries[i] = Some(entry),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    entries
        .into_iter()
        .map(|e| e.ok_or_else(|| Error::internal("a table was never captured")))
        .collect()
}

pub(crate) async fn write_table(
    staging: &Path,
    i: usize,
    table: &CaptureTable,
    got: Captured,
) -> Result<TableEntry> {
    let plan = &table.plan;
    if let Some(e) = got.error {
        return Err(e.context(format!("taking the baseline of {}", plan.name)));
    }
    let codec = plan.codecs[0].as_ref().expect("the source has the table");
    let leaves_file = format!("leaves/{}.parquet", plan.name.file_stem(i));
    let shape = plan.shapes[0].clone().expect("the source has the table");
    let key: Vec<String> = plan.key_columns.iter().map(|c| c.name.clone()).collect();
    let entry = TableEntry {
        table: plan.name.clone(),
        schema_fingerprint: schema_fingerprint(&shape, &plan.columns, &key),
        shape,
        columns: plan.columns.clone(),
        key,
        rows: got.total.count,
        root: root_of(&got.total),
        leaf_shift: table.leaf_shift,
        leaf_count: got.leaves.len() as u64,
        leaves_file,
        row_parts: got.parts,
        epochs: got.epochs,
    };
    // Encoding Parquet is CPU work: it runs on the pool.
    let path = staging.join(&entry.leaves_file);
    let kinds = codec.kinds[..codec.nkey].to_vec();
    let leaves = got.leaves;
    on_pool(move || write_leaves(&path, &leaves, &kinds))
        .await
        .map_err(|_| Error::internal("the pool dropped a job"))??;
    Ok(entry)
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST);
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    std::fs::write(&path, json).map_err(|e| Error::io(path.display(), e))
}

fn create_leaves_dir(staging: &StagedDir) -> Result<()> {
    let dir = staging.path().join("leaves");
    std::fs::create_dir(&dir).map_err(|e| Error::io(dir.display(), e))
}
