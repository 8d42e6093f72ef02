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
use crate::compare::tally::TableTally;
use crate::error::{Error, Result};
use crate::pipeline::checkpoint::Checkpoint;
use crate::pipeline::findings;
use crate::plan::shards::ShardPlan;
use crate::report::{self, VerifyReport};
use crate::role::Role;
use crate::settings::VerifySettings;
use crate::source::SnapshotInfo;

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
    let started = Instant::now();
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
    let snapshots = one_instant(&plan, &shards, note)?;
    let runs = plan.runs()?;
    let roles = plan.roles();
    let (tx, rx) = mpsc::channel(64);
    let layout = report::listing::Layout::of(&runs);
    let collector = findings::spawn(rx, layout, settings.clone());
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
    for shard in &shards {
        let ranges = Checkpoint::open(
            &shard.dir.join(super::RANGES_DIR),
            plan.compare_hash.clone(),
        )?;
        for (t, r) in plan.units_of(shard.file.shard) {
            let run = &runs[t];
            let saved =
                crate::pool::off_runtime(|| ranges.load(t, r, &run.plan))?.ok_or_else(|| {
                    Error::usage(format!(
                        "{} lacks range {r} of {}: it is not a whole shard directory",
                        shard.dir.display(),
                        run.plan.name
                    ))
                    .with_hint("run that shard again, then merge")
                })?;
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
        snapshots,
        tables: &runs,
        tallies,
        refused: plan.refused_tables()?,
        listed,
        started,
    };
    let mut report = report::build(parts);
    report.scope = serde_json::from_value(plan.scope.clone()).unwrap_or_default();
    Ok(report)
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
