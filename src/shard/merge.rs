//! `pgsalvage merge`: the shards of one plan put back together into one report.
//!
//! Every directory must be a published shard directory of the same plan (the plan's hash in
//! `shard.json` and in its copy of `plan.json`), and together they must be every shard exactly
//! once: a missing, repeated or foreign shard is refused (exit 2), never merged into a partial
//! answer. The plan rebuilds every table's plan and cut; each shard's ranges are read back as a
//! checkpoint's are and added to their tables' tallies in the plan's order, the trees' leaves
//! summed; the findings go through the same collector as a single run's (the listing, the
//! `--findings` CSV). The report is built by the same code as a single run's, so its counts,
//! roots, findings and exit code are those a single run over the same ranges gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc;

use super::{read_plan, ShardFile, SHARD_FILE, SHARD_FORMAT};
use crate::baseline::Manifest;
use crate::compare::tally::TableTally;
use crate::error::{Error, Result};
use crate::pipeline::checkpoint::Checkpoint;
use crate::pipeline::findings;
use crate::plan::shards::ShardPlan;
use crate::plan::TableRun;
use crate::progress::Reporter;
use crate::recover::RecoverOutcome;
use crate::recovery::keys::key_file;
use crate::report::{self, VerifyReport};
use crate::role::Role;
use crate::settings::VerifySettings;
use crate::settings::{FilterFile, RestoreSpec};
use crate::source::SnapshotInfo;
use crate::source::{ConnInfo, Source};
use crate::staging::StagedDir;

/// One shard directory, read.
struct Shard {
    dir: PathBuf,
    file: ShardFile,
}

/// Merges the shard directories `dirs` into one report; `settings` carries the outputs (the
/// listing's size, `--findings`, `--json`). Messages (snapshots that differ between shards) go to
/// `note`.
pub async fn merge(
    dirs: &[PathBuf],
    settings: &VerifySettings,
    note: &dyn Fn(&str),
) -> Result<VerifyReport> {
    let merged = gather(dirs, note)?;
    if merged.baseline_rows().is_some() {
        return Err(Error::usage(
            "these are baseline shards: their merge writes a baseline, so it needs --out DIR",
        )
        .with_hint("pgsalvage merge shard-* --out baseline/"));
    }
    if merged.restore().is_some() {
        return Err(Error::usage(
            "these are recover shards: their merge writes a recovery, so it needs --out DIR",
        )
        .with_hint("pgsalvage merge shard-* --out recovery/ (the sources are the plan's, or --base/--target)"));
    }
    let (report, _) = merged.report(settings).await?;
    Ok(report)
}

/// Every shard of one plan, read and checked.
pub struct Merged {
    pub plan: ShardPlan,
    shards: Vec<Shard>,
    pub snapshots: Vec<SnapshotInfo>,
}

/// Reads and checks the shard directories: every shard of one plan, once.
pub fn gather(dirs: &[PathBuf], note: &dyn Fn(&str)) -> Result<Merged> {
    if dirs.is_empty() {
        return Err(Error::usage("merge: no shard directories given")
            .with_hint("pgsalvage merge shards/shard-*"));
    }
    let shards = dirs
        .iter()
        .map(|d| read_shard(d))
        .collect::<Result<Vec<_>>>()?;
    let plan = read_plan(&shards[0].dir)?;
    let shards = every_shard_once(&plan, shards)?;
    let first = &shards[0].file.restore;
    if let Some(other) = shards.iter().find(|s| &s.file.restore != first) {
        return Err(Error::usage(format!(
            "{} and {} were run with different recover options (or one by verify)",
            shards[0].dir.display(),
            other.dir.display()
        ))
        .with_hint("run every shard of a plan with the same command"));
    }
    if let Some(other) = shards
        .iter()
        .find(|s| s.file.narrow != shards[0].file.narrow)
    {
        return Err(Error::usage(format!(
            "{} and {} were read one with --narrow and one without: their checksum trees do not add up",
            shards[0].dir.display(),
            other.dir.display()
        ))
        .with_hint("run every shard of a plan with the same command"));
    }
    let snapshots = one_instant(&plan, &shards, note)?;
    Ok(Merged {
        plan,
        shards,
        snapshots,
    })
}

impl Merged {
    /// The recover options the shards ran with; `None` for verify shards.
    pub fn restore(&self) -> Option<&RestoreSpec> {
        self.shards[0].file.restore.as_ref()
    }

    /// Baseline shards: whether they kept rows (`--rows`); `None` for other shards.
    pub fn baseline_rows(&self) -> Option<bool> {
        self.shards[0].file.baseline.as_ref().map(|b| b.rows)
    }

    /// Whether every shard read snapshots a `snapshot hold` kept.
    pub fn held(&self) -> bool {
        self.shards.iter().all(|s| s.file.held)
    }

    /// The report of the whole comparison, and its tables.
    pub async fn report(&self, settings: &VerifySettings) -> Result<(VerifyReport, Vec<TableRun>)> {
        let started = Instant::now();
        let plan = &self.plan;
        let runs = plan.runs()?;
        let roles = plan.roles();
        let (tx, rx) = mpsc::channel(64);
        let layout = report::listing::Layout::of(&runs);
        let mut listing = settings.clone();
        listing.restore = None;
        let collector = findings::spawn(rx, layout, listing);
        let mut tallies: Vec<TableTally> = runs
            .iter()
            .map(|t| {
                TableTally::new(
                    t.plan.columns.len(),
                    roles.len(),
                    t.tree_bits,
                    t.ranges.len(),
                )
            })
            .collect();
        for shard in &self.shards {
            let ranges = Checkpoint::open(
                &shard.dir.join(super::RANGES_DIR),
                plan.compare_hash.clone(),
            )?;
            for (t, r) in plan.units_of(shard.file.shard) {
                let run = &runs[t];
                let saved = crate::pool::off_runtime(|| ranges.load(t, r, &run.plan))?.ok_or_else(
                    || {
                        Error::usage(format!(
                            "{} lacks range {r} of {}: it is not a whole shard directory",
                            shard.dir.display(),
                            run.plan.name
                        ))
                        .with_hint("run that shard again, then merge")
                    },
                )?;
                tallies[t].start();
                tallies[t].add_range_at(r, saved.tally);
                if !saved.findings.is_empty() {
                    let _ = tx.send(saved.findings).await;
                }
            }
        }
        drop(tx);
        let listed = collector
            .await
            .map_err(|e| Error::internal(format!("findings collector: {e}")))??;
        let parts = report::Parts {
            roles: &roles,
            snapshots: self.snapshots.clone(),
            tables: &runs,
            tallies,
            refused: plan.refused_tables()?,
            listed,
            started,
        };
        let mut report = report::build(parts);
        report.scope = serde_json::from_value(plan.scope.clone()).unwrap_or_default();
        Ok((report, runs))
    }

    /// Joins the shards' key records into `keys`, table by table in key order: each shard's
    /// file is in key order and the shards' ranges do not overlap, so a merge of the files by
    /// order key is the file a single run writes.
    pub fn join_keys(&self, keys: &Path) -> Result<()> {
        std::fs::create_dir_all(keys).map_err(|e| Error::io(keys.display(), e))?;
        for t in 0..self.plan.tables.len() {
            let parts: Vec<PathBuf> = self
                .shards
                .iter()
                .map(|s| key_file(&s.dir.join(super::KEYS_DIR), t))
                .filter(|p| p.exists())
                .collect();
            if !parts.is_empty() {
                merge_key_files(&parts, &key_file(keys, t))?;
            }
        }
        Ok(())
    }
}

/// Where a merge of recover shards writes its recovery.
pub struct RecoveryOut<'a> {
    pub dir: &'a Path,
    pub force: bool,
    pub parquet: bool,
}

/// Merges recover shards and writes the recovery a single recover run would: the shards' key
/// records joined in key order, then the rows of those keys read, and the fix-ups checked, on
/// the snapshots the shards read (a `snapshot hold` must still keep them), from `sources` (the
/// plan's). `outputs` carries the report's outputs.
pub async fn merge_recovery(
    merged: Merged,
    sources: Vec<(Role, ConnInfo)>,
    out: RecoveryOut<'_>,
    outputs: &VerifySettings,
    reporter: &dyn Reporter,
) -> Result<RecoverOutcome> {
    let Some(spec) = merged.restore().cloned() else {
        return Err(Error::usage(
            "these are verify shards: --out is for the merge of recover shards",
        )
        .with_hint("drop --out, or run the shards with pgsalvage recover --plan DIR --shard I"));
    };
    if !merged.held() {
        return Err(Error::usage(
            "recover shards must read held snapshots: the merge reads the differing rows from the same instant",
        )
        .with_hint("pgsalvage snapshot hold --plan DIR, run every shard again, then merge before releasing it"));
    }
    let given: Vec<(Role, String)> = sources.iter().map(|(r, i)| (*r, i.to_string())).collect();
    merged.plan.check_sources(&given, "the merge")?;
    let staging = StagedDir::create(out.dir, "recover", out.force)?;
    let keys = staging.path().join("keys");
    let mut verify = outputs.clone();
    verify.sources = sources.clone();
    verify.filter = serde_json::from_value::<FilterFile>(merged.plan.filter_flags.clone())
        .map_err(|e| Error::usage(format!("the shard plan's filter: {e}")))?
        .filter()?;
    verify.keys = merged.plan.keys();
    verify.restore = Some(RestoreSpec {
        keys_dir: keys.clone(),
        ..spec.clone()
    });
    merged.join_keys(&keys)?;
    let (report, mut runs) = merged.report(outputs).await?;
    crate::plan::restore_masks(&mut runs, &spec.columns, &spec.changed_after)?;
    reporter.message("reading the differing rows on the held snapshots");
    let opening = sources
        .into_iter()
        .zip(merged.snapshots.clone())
        .map(|((role, info), snapshot)| Source::open_on(role, info, snapshot));
    let sources = futures_util::future::try_join_all(opening).await?;
    let run = crate::pipeline::Run {
        report,
        sources,
        tables: runs,
    };
    crate::recover::write_recovery(&verify, out.parquet, staging, run).await
}

/// Assembles the baseline the shards captured into `out` (replacing it only with `force`): every
/// table's ranges joined in key order, as one `baseline` run joins them.
pub async fn merge_baseline(merged: Merged, out: &Path, force: bool) -> Result<Manifest> {
    let Some(rows) = merged.baseline_rows() else {
        return Err(Error::usage("these are not baseline shards").with_hint(
            "verify shards merge without --out; recover shards need the plan's sources",
        ));
    };
    let mut units = BTreeMap::new();
    for shard in &merged.shards {
        for unit in shard.file.baseline.iter().flat_map(|b| &b.units) {
            units.insert((unit.table, unit.range), (shard.dir.clone(), unit.clone()));
        }
    }
    let filter = serde_json::from_value::<FilterFile>(merged.plan.filter_flags.clone())
        .map_err(|e| Error::usage(format!("the shard plan's filter: {e}")))?
        .filter()?;
    let scope = Some(filter.describe()).filter(|_| filter.narrows());
    let staging = StagedDir::create(out, "baseline", force)?;
    let snapshot = merged.snapshots[0].clone();
    let runs = merged.plan.runs()?;
    let mut manifest =
        crate::baseline::sharded::assemble(staging.path(), runs, &units, snapshot, rows, scope)
            .await?;
    crate::pool::blocking(move || {
        manifest.seal(staging.path())?;
        crate::baseline::take::write_manifest(staging.path(), &manifest)?;
        staging.publish()?;
        Ok(manifest)
    })
    .await
}

/// Merges key files, each in order-key order, into `out` in that order.
fn merge_key_files(parts: &[PathBuf], out: &Path) -> Result<()> {
    use std::cmp::Reverse;
    use std::io::{BufRead, Write};
    #[derive(serde::Deserialize)]
    struct OrderKey {
        okey: String,
    }
    let mut readers = Vec::with_capacity(parts.len());
    for p in parts {
        let f = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
        readers.push(std::io::BufReader::new(f).lines());
    }
    let next = |i: usize,
                r: &mut std::io::Lines<std::io::BufReader<std::fs::File>>|
     -> Result<Option<(String, usize, String)>> {
        let Some(line) = r.next() else {
            return Ok(None);
        };
        let line = line.map_err(|e| Error::io(parts[i].display(), e))?;
        let k: OrderKey = serde_json::from_str(&line).map_err(|e| {
            Error::usage(format!("{}: corrupt key record: {e}", parts[i].display()))
        })?;
        Ok(Some((k.okey, i, line)))
    };
    let mut heap = std::collections::BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(head) = next(i, r)? {
            heap.push(Reverse(head));
        }
    }
    let file = std::fs::File::create(out).map_err(|e| Error::io(out.display(), e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    while let Some(Reverse((_, i, line))) = heap.pop() {
        w.write_all(line.as_bytes())
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|e| Error::io(out.display(), e))?;
        if let Some(head) = next(i, &mut readers[i])? {
            heap.push(Reverse(head));
        }
    }
    w.flush().map_err(|e| Error::io(out.display(), e))
}

fn read_shard(dir: &Path) -> Result<Shard> {
    let path = dir.join(SHARD_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::io(path.display(), e).with_hint(
            "give merge the directories the shards wrote (shard-NNN); a shard that failed wrote none",
        )
    })?;
    let file: ShardFile = serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(format!(
            "{} is not a shard directory's file: {e}",
            path.display()
        ))
    })?;
    if file.format != SHARD_FORMAT {
        return Err(Error::usage(format!(
            "{} has format {:?}, not {SHARD_FORMAT}",
            path.display(),
            file.format
        )));
    }
    let own = read_plan(dir)?;
    if own.plan_hash != file.plan_hash {
        return Err(Error::usage(format!(
            "{} holds a plan other than the one its shard.json names",
            dir.display()
        )));
    }
    Ok(Shard {
        dir: dir.to_path_buf(),
        file,
    })
}

/// The shards in index order, once each shard of `plan` is there exactly once.
fn every_shard_once(plan: &ShardPlan, shards: Vec<Shard>) -> Result<Vec<Shard>> {
    let mut by_index: BTreeMap<usize, Shard> = BTreeMap::new();
    for shard in shards {
        if shard.file.plan_hash != plan.plan_hash {
            return Err(Error::usage(format!(
                "{} is a shard of another plan ({}…, not {}…)",
                shard.dir.display(),
                &shard.file.plan_hash[..12.min(shard.file.plan_hash.len())],
                &plan.plan_hash[..12]
            ))
            .with_hint(
                "merge the shards of one plan: one directory per shard, all from the same plan run",
            ));
        }
        if let Some(earlier) = by_index.get(&shard.file.shard) {
            return Err(Error::usage(format!(
                "shard {} is given twice: {} and {}",
                shard.file.shard,
                earlier.dir.display(),
                shard.dir.display()
            ))
            .with_hint("give each shard's directory once"));
        }
        by_index.insert(shard.file.shard, shard);
    }
    let missing: Vec<String> = (0..plan.shards)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "shard{} {} of {} missing: a merge of some shards is not the comparison",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            plan.shards
        ))
        .with_hint(
            "run the missing shards (verify --plan DIR --shard i), then merge every shard",
        ));
    }
    Ok(by_index.into_values().collect())
}

/// The snapshots the report names. Shards that read held snapshots must all have read the same
/// ones; shards that exported their own read each source at different instants, which is exact
/// only for a source nobody writes to, and is said.
fn one_instant(
    plan: &ShardPlan,
    shards: &[Shard],
    note: &dyn Fn(&str),
) -> Result<Vec<SnapshotInfo>> {
    let first = &shards[0].file;
    let ids = |f: &ShardFile| -> BTreeMap<Role, String> {
        f.snapshots
            .iter()
            .map(|(r, s)| (*r, s.snapshot_id.clone()))
            .collect()
    };
    let held: Vec<&Shard> = shards.iter().filter(|s| s.file.held).collect();
    if let Some(h) = held.first() {
        if let Some(other) = shards.iter().find(|s| ids(&s.file) != ids(&h.file)) {
            return Err(Error::usage(format!(
                "{} and {} read different snapshots: the shards do not show one instant",
                h.dir.display(),
                other.dir.display()
            ))
            .with_hint("run every shard while one snapshot hold keeps the plan's snapshots"));
        }
    } else if shards.len() > 1 {
        note(&format!(
            "the {} shards read their own snapshots (no snapshot hold): exact for sources nobody wrote to during the run",
            shards.len()
        ));
    }
    plan.roles()
        .iter()
        .map(|role| {
            first.snapshots.get(role).cloned().ok_or_else(|| {
                Error::usage(format!(
                    "{} has no snapshot of {role}",
                    shards[0].dir.display()
                ))
            })
        })
        .collect()
}
