//! Sharded runs: one comparison read by many processes, on many machines, and put back together.
//!
//! The flow is plan → hold → shards → merge, each step a command a scheduler (a Kubernetes
//! Indexed Job, Cloud Run tasks, AWS Batch arrays) can run; pgsalvage schedules nothing itself.
//! [`plan`] opens the sources once, plans every table as a single run would, cuts key ranges for
//! `shards × jobs` workers and deals them to the shards by sampled size, into `plan.json`
//! (`plan::shards`). [`hold`] exports each source's snapshot and keeps it open, its ids in
//! `snapshots.json` beside the plan, so every shard reads the same instant of a live source.
//! [`run_shard`] is a verify that takes its plans and ranges from the plan, checks that the
//! catalogs still match it, reads only its own ranges and writes them, range by range, as a
//! checkpoint does, into `shard-NNN/`, published by one rename once every range is in.
//! [`merge`] checks that the directories are every shard of one plan, adds their ranges' tallies
//! (rows, classes, column counts, checksum-tree leaves) and joins their findings into the report
//! a single run over the same cut would give, with its exit code.

pub mod hold;
pub mod merge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::{self, checkpoint::range_file, Planned};
use crate::plan::shards::{PlannedTable, ShardPlan, FORMAT};
use crate::progress::Reporter;
use crate::role::Role;
use crate::settings::{FilterFile, RestoreSpec, ShardRun, VerifySettings};
use crate::source::visit::Patience;
use crate::source::SnapshotInfo;
use crate::staging::StagedDir;

/// The plan in a plan directory, and in every shard directory.
pub const PLAN_FILE: &str = "plan.json";
/// What a shard directory says of itself.
pub const SHARD_FILE: &str = "shard.json";
/// The ranges a shard read, in a checkpoint's layout.
const RANGES_DIR: &str = "checkpoint";
/// A recover shard's key records (`recovery::keys`), for the merge to join.
const KEYS_DIR: &str = "keys";
pub const SHARD_FORMAT: &str = "pgsalvage.shard/1";

/// `shard.json`: which shard of which plan a directory holds, read from which snapshots.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: String,
    pub plan_hash: String,
    pub shard: usize,
    pub shards: usize,
    /// How many (table, range) units it read.
    pub units: usize,
    /// Whether it read snapshots a `snapshot hold` kept (else each source exported its own).
    pub held: bool,
    pub snapshots: BTreeMap<Role, SnapshotInfo>,
    /// Rows read per source, over its ranges.
    pub rows: BTreeMap<Role, u64>,
    /// Keys its ranges found differing, by class name.
    pub classes: BTreeMap<String, u64>,
    /// A recover shard: the options it captured its key records with.
    #[serde(default)]
    pub restore: Option<RestoreSpec>,
    /// Read narrow first (`--narrow`): its checksum trees are of the narrow rows, which do not
    /// add up with a full read's.
    #[serde(default)]
    pub narrow: bool,
    /// A baseline shard: what it captured (its ranges' leaves and row files).
    #[serde(default)]
    pub baseline: Option<BaselineShard>,
}

/// What a baseline shard captured.
#[derive(Debug, Serialize, Deserialize)]
pub struct BaselineShard {
    /// `--rows`: each range's `(key, digest)` file too.
    pub rows: bool,
    pub units: Vec<crate::baseline::sharded::UnitOut>,
}

/// Plans a comparison for `shards` shards; writes `out/plan.json` (replacing an older plan only
/// with `force`). The comparison's own snapshots end with it: shards read the snapshots a
/// `snapshot hold` keeps, or their own.
pub async fn plan(
    settings: &VerifySettings,
    shards: usize,
    out: &Path,
    force: bool,
    reporter: Arc<dyn Reporter>,
) -> Result<ShardPlan> {
    if shards == 0 {
        return Err(Error::usage("--shards 0: a plan needs at least one shard"));
    }
    if !settings.baselines.is_empty() {
        return Err(
            Error::usage("a shard plan compares databases, not baselines")
                .with_hint("compare with a baseline in one run; it reads one database once"),
        );
    }
    let path = out.join(PLAN_FILE);
    if path.exists() && !force {
        return Err(Error::usage(format!("{} already exists", path.display()))
            .with_hint("plan into a new directory, or add --force to replace the plan"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display(), e))?;
    crate::report::check_writable(&path, "--out")?;
    let Planned {
        roles,
        sources,
        catalogs,
        plans,
        refused,
    } = pipeline::plan(settings, &*reporter).await?;
    let compare_hash = pipeline::compare_hash(settings, &sources, &plans);
    let patience = Patience {
        lock_wait: settings.live.lock_wait,
        reporter: &*reporter,
    };
    let jobs = shards * settings.jobs.max(1);
    let runs = pipeline::plan_ranges(&sources, plans, jobs, &patience).await?;
    let tables = runs
        .iter()
        .map(|run| {
            let name = &run.plan.name;
            let shapes = catalogs
                .iter()
                .map(|c| c.iter().find(|s| &s.name == name).cloned())
                .collect();
            let key = settings.keys.get(name).cloned();
            PlannedTable::of(run, shapes, settings.filter.narrowing(name), key)
        })
        .collect();
    let mut plan = ShardPlan {
        format: FORMAT.into(),
        plan_hash: String::new(),
        pgsalvage_version: env!("CARGO_PKG_VERSION").into(),
        shards,
        sources: sources
            .iter()
            .map(|s| (s.role, s.info.to_string()))
            .collect(),
        filter: settings.filter.describe(),
        compare_hash,
        scope: serde_json::to_value(settings.filter.scope()).expect("a scope serializes"),
        filter_flags: serde_json::to_value(FilterFile::of(&settings.filter))
            .expect("a filter serializes"),
        tables,
        refused: refused
            .iter()
            .map(|(n, e)| (n.to_string(), e.to_string(), e.hint().map(str::to_string)))
            .collect(),
    };
    debug_assert_eq!(roles, plan.roles());
    plan.deal();
    plan.seal();
    crate::report::write_json_file(&path, &plan)?;
    Ok(plan)
}

/// Reads the plan in `dir` (a plan directory or a shard directory), refusing one that is not
/// whole.
pub fn read_plan(dir: &Path) -> Result<ShardPlan> {
    let path = dir.join(PLAN_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::io(path.display(), e).with_hint("make one with pgsalvage plan --shards N --out DIR")
    })?;
    let not_a_plan = |why: String| {
        Error::usage(format!(
            "{} is not a whole shard plan: {why}",
            path.display()
        ))
        .with_hint("make a new plan with pgsalvage plan --shards N")
    };
    let plan: ShardPlan = serde_json::from_slice(&bytes).map_err(|e| not_a_plan(e.to_string()))?;
    if plan.format != FORMAT {
        return Err(not_a_plan(format!("its format is {:?}", plan.format)));
    }
    if !plan.intact() {
        return Err(not_a_plan(
            "its content does not match its plan_hash".into(),
        ));
    }
    Ok(plan)
}

/// What a finished shard wrote.
pub struct ShardOutcome {
    pub dir: PathBuf,
    pub file: ShardFile,
}

/// The directory shard `index` writes under `out`.
pub fn shard_dir(out: &Path, index: usize) -> PathBuf {
    out.join(format!("shard-{index:03}"))
}

/// Reads shard `shard.index` of its plan into `out/shard-NNN/`. The directory appears only when
/// every range of the shard is in it; a range that failed fails the shard (exit 2), so its
/// scheduler runs it again. An earlier directory of the same shard is replaced.
pub async fn run_shard(
    settings: &VerifySettings,
    out: &Path,
    reporter: Arc<dyn Reporter>,
) -> Result<ShardOutcome> {
    let shard = settings
        .shard
        .as_ref()
        .ok_or_else(|| Error::internal("run_shard without a shard"))?;
    let dir = shard_dir(out, shard.index);
    let staging = StagedDir::create(&dir, "shard", true)?;
    let ranges = staging.path().join(RANGES_DIR);
    let mut settings = settings.clone();
    settings.checkpoint = Some(ranges.clone());
    if let Some(restore) = settings.restore.as_mut() {
        restore.keys_dir = staging.path().join(KEYS_DIR);
    }
    let run = pipeline::run(&settings, reporter).await?;
    let units = shard.plan.units_of(shard.index);
    let missing: Vec<String> = units
        .iter()
        .filter(|(t, r)| !range_file(&ranges, *t, *r).exists())
        .map(|(t, r)| format!("{} range {r}", shard.plan.tables[*t].name))
        .collect();
    if !missing.is_empty() || crate::interrupt::requested() {
        let errors: Vec<&str> = run
            .report
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .filter(|m| !m.contains("not verified"))
            .collect();
        return Err(Error::source(format!(
            "shard {} left {} of its {} ranges unread ({}): {}",
            shard.index,
            missing.len(),
            units.len(),
            missing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if errors.is_empty() {
                "interrupted".into()
            } else {
                errors.join("; ")
            }
        ))
        .with_hint("nothing was written for this shard; run it again (a scheduler retries it)"));
    }
    let file = ShardFile {
        format: SHARD_FORMAT.into(),
        plan_hash: shard.plan.plan_hash.clone(),
        shard: shard.index,
        shards: shard.plan.shards,
        units: units.len(),
        held: shard.held.is_some(),
        snapshots: run.report.sources.clone(),
        rows: shard_rows(&run.report),
        classes: run
            .report
            .totals
            .classes
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
        restore: settings.restore.clone(),
        narrow: settings.narrow,
        baseline: None,
    };
    publish(staging, &shard.plan, file, dir).await
}

/// Captures shard `index` of a baseline plan into `out/shard-NNN/`: `settings` is the
/// comparison the plan was made for (the source as base, its scope and keys), `rows` is
/// `baseline --rows`. Published once every range is captured, as a verify shard is.
pub async fn run_baseline_shard(
    settings: &VerifySettings,
    rows: bool,
    out: &Path,
    reporter: Arc<dyn Reporter>,
) -> Result<ShardOutcome> {
    let shard = settings
        .shard
        .as_ref()
        .ok_or_else(|| Error::internal("run_baseline_shard without a shard"))?;
    if shard.plan.sources.len() != 1 {
        return Err(Error::usage(
            "this plan compares databases: a baseline shard needs a plan of one source",
        )
        .with_hint("make it with pgsalvage plan --source URL --shards N --out DIR"));
    }
    let dir = shard_dir(out, shard.index);
    let staging = StagedDir::create(&dir, "shard", true)?;
    let Planned { sources, plans, .. } = pipeline::plan(settings, &*reporter).await?;
    if pipeline::compare_hash(settings, &sources, &plans) != shard.plan.compare_hash {
        return Err(Error::usage(format!(
            "this shard's baseline is not the plan's: the plan records {} ({})",
            shard
                .plan
                .sources
                .iter()
                .map(|(r, c)| format!("{r} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            shard.plan.filter
        ))
        .with_hint("give every shard the --source, --key and scope flags the plan was made with"));
    }
    let runs = shard.plan.runs()?;
    let plans: Vec<Arc<crate::plan::TablePlan>> = plans.into_iter().map(Arc::new).collect();
    let units = shard.plan.units_of(shard.index);
    let source = &sources[0];
    let epochs = crate::baseline::epochs::Epochs::fixed(source);
    let work = crate::baseline::capture::CaptureWork {
        jobs: settings.jobs,
        batch_bytes: pipeline::batch_bytes(settings.batch_bytes, settings.jobs),
        live: &settings.live,
        epochs: &epochs,
    };
    let part = crate::baseline::sharded::ShardPart {
        runs: &runs,
        plans: &plans,
        units: &units,
        rows,
    };
    let captured =
        crate::baseline::sharded::capture_units(source, part, staging.path(), work, reporter)
            .await?;
    if crate::interrupt::requested() {
        return Err(Error::source("interrupted: the shard wrote nothing")
            .with_hint("run it again (a scheduler retries it)"));
    }
    let file = ShardFile {
        format: SHARD_FORMAT.into(),
        plan_hash: shard.plan.plan_hash.clone(),
        shard: shard.index,
        shards: shard.plan.shards,
        units: units.len(),
        held: shard.held.is_some(),
        snapshots: BTreeMap::from([(source.role, source.snapshot.clone())]),
        rows: BTreeMap::new(),
        classes: BTreeMap::new(),
        restore: None,
        narrow: false,
        baseline: Some(BaselineShard {
            rows,
            units: captured,
        }),
    };
    publish(staging, &shard.plan, file, dir).await
}

/// Finishes a shard's directory: the plan's copy and `shard.json` in, then one rename.
async fn publish(
    staging: StagedDir,
    plan: &ShardPlan,
    file: ShardFile,
    dir: PathBuf,
) -> Result<ShardOutcome> {
    crate::report::write_json_file(&staging.path().join(PLAN_FILE), plan)?;
    crate::report::write_json_file(&staging.path().join(SHARD_FILE), &file)?;
    crate::pool::blocking(move || staging.publish()).await?;
    Ok(ShardOutcome { dir, file })
}

/// Rows read per source, summed over the tables.
fn shard_rows(report: &crate::report::VerifyReport) -> BTreeMap<Role, u64> {
    let mut rows = BTreeMap::new();
    for (role, n) in report.tables.iter().flat_map(|t| &t.rows) {
        *rows.entry(*role).or_default() += n;
    }
    rows
}

/// The settings of shard `flag` (`auto` or a number) of the plan in `plan_dir`, with the
/// snapshots a `snapshot hold` keeps for it, if one does.
pub fn shard_settings(settings: &mut VerifySettings, plan_dir: &Path, flag: &str) -> Result<()> {
    let plan = read_plan(plan_dir)?;
    let index = crate::plan::shards::shard_index(flag, plan.shards, |v| std::env::var(v).ok())?;
    let held = hold::held_snapshots(plan_dir, &plan)?;
    settings.shard = Some(ShardRun {
        plan: Arc::new(plan),
        index,
        held,
    });
    Ok(())
}
