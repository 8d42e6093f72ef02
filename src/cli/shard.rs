//! `plan`, `snapshot hold|release`, `merge`, and verify's `--plan/--shard`: sharded runs from the
//! command line (see `shard`).
//!
//! A shard exits 0 once its directory is written, whatever its ranges found (a scheduler counts
//! any other status as a failure to retry), and 2 when it could not read its part; the answer,
//! 0, 1 or 2 as a single run gives it, is the merge's.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::{parse_duration, OutputArgs};
use super::{finish, interruptible_runtime, Shown};
use crate::error::{Error, Result};
use crate::settings::VerifySettings;
use crate::shard::{self, hold};
use crate::source::conninfo::{resolve, ProcessEnv};
use crate::source::Role;

/// `pgsalvage plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The base of the verify or recover shards (as verify's --base).
    #[arg(
        long,
        env = "PGSALVAGE_BASE",
        hide_env_values = true,
        value_name = "URL",
        required_unless_present = "source",
        conflicts_with = "source",
        help_heading = "Sources"
    )]
    pub base: Option<String>,

    /// Their replica, for three-way shards.
    #[arg(
        long,
        env = "PGSALVAGE_REPLICA",
        hide_env_values = true,
        value_name = "URL",
        conflicts_with = "source",
        help_heading = "Sources"
    )]
    pub replica: Option<String>,

    /// Their target.
    #[arg(
        long,
        env = "PGSALVAGE_TARGET",
        hide_env_values = true,
        value_name = "URL",
        required_unless_present = "source",
        conflicts_with = "source",
        help_heading = "Sources"
    )]
    pub target: Option<String>,

    /// Instead: the database of baseline shards (as baseline's --source).
    #[arg(
        long,
        env = "PGSALVAGE_SOURCE",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub source: Option<String>,

    #[command(flatten)]
    pub scope: super::args::ScopeArgs,

    #[command(flatten)]
    pub narrow: super::args::NarrowArgs,

    /// As verify's --key: --key public.events=tenant_id,event_id (repeatable).
    #[arg(long, value_name = "TABLE=COLS", help_heading = "What to compare")]
    pub key: Vec<String>,

    #[command(flatten)]
    pub work: super::args::WorkArgs,

    /// How many shards (processes, pods, tasks) will read the comparison.
    #[arg(long, value_name = "N", help_heading = "Shards")]
    pub shards: usize,

    /// The plan directory: plan.json is written there; `snapshot hold` adds snapshots.json.
    #[arg(long, value_name = "DIR", help_heading = "Shards")]
    pub out: PathBuf,

    /// Replace a plan already in --out.
    #[arg(long, help_heading = "Shards")]
    pub force: bool,

    /// Print the plan's summary only.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,
}

impl PlanArgs {
    fn settings(&self) -> Result<VerifySettings> {
        let sides = [
            (Role::Base, self.base.as_ref().or(self.source.as_ref())),
            (Role::Replica, self.replica.as_ref()),
            (Role::Target, self.target.as_ref()),
        ];
        let mut sources = Vec::new();
        for (role, text) in sides {
            if let Some(text) = text {
                let flag = if self.source.is_some() {
                    "source".into()
                } else {
                    role.to_string()
                };
                let info =
                    resolve(text, &ProcessEnv).map_err(|e| e.context(format!("--{flag}")))?;
                sources.push((role, info));
            }
        }
        let what = super::What {
            scope: &self.scope,
            narrow: &self.narrow,
            key: &self.key,
            work: &self.work,
        };
        what.settings(sources)
    }
}

/// verify's shard flags.
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// Read one shard of the plan in DIR (made by `pgsalvage plan --shards N`), with --shard.
    /// Give the sources, --key and scope flags the plan was made with.
    #[arg(long, value_name = "DIR", requires = "shard", help_heading = "Shards")]
    pub plan: Option<PathBuf>,

    /// Which shard: a number from 0, or `auto` for the index the scheduler gives
    /// (JOB_COMPLETION_INDEX, CLOUD_RUN_TASK_INDEX or AWS_BATCH_JOB_ARRAY_INDEX).
    #[arg(
        long,
        value_name = "auto|I",
        requires = "plan",
        help_heading = "Shards"
    )]
    pub shard: Option<String>,

    /// Where the shard writes its directory, shard-NNN (default: the current directory).
    #[arg(
        long = "shard-out",
        value_name = "DIR",
        requires = "plan",
        help_heading = "Shards"
    )]
    pub shard_out: Option<PathBuf>,
}

impl ShardArgs {
    /// Makes `settings` those of the shard of the plan these flags name; returns where its
    /// directory goes.
    fn resolve(&self, settings: &mut VerifySettings) -> Result<PathBuf> {
        let plan_dir = self.plan.as_deref().expect("clap requires --plan");
        let flag = self.shard.as_deref().expect("clap requires --shard");
        shard::shard_settings(settings, plan_dir, flag)?;
        Ok(self.shard_out.clone().unwrap_or_else(|| PathBuf::from(".")))
    }
}

/// `pgsalvage snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub action: SnapshotAction,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Export each source's snapshot for a plan's shards and keep it until released.
    ///
    /// Writes the snapshot ids to snapshots.json in the plan directory and waits (reading
    /// nothing, locking nothing) until `snapshot release`, SIGINT/SIGTERM or --for has passed.
    /// Its open transactions hold back VACUUM on every source while it waits. Exit status: 0
    /// released, 2 a source could not be held or a session was lost.
    Hold(HoldArgs),
    /// Tell the holder of a plan's snapshots to let them go, and wait until it has.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// The plan directory.
    #[arg(long, value_name = "DIR")]
    pub plan: PathBuf,

    /// Let go after this long at most (VACUUM waits on the sources while the hold lasts).
    #[arg(long = "for", value_name = "TIME", default_value = "6h", value_parser = parse_duration)]
    pub limit: Duration,

    /// The plan's base (or, for a baseline plan, its source: --source).
    #[arg(
        long,
        visible_alias = "source",
        env = "PGSALVAGE_BASE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub base: String,

    /// The plan's replica, if it has one.
    #[arg(
        long,
        env = "PGSALVAGE_REPLICA",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub replica: Option<String>,

    /// The plan's target (none for a baseline plan).
    #[arg(
        long,
        env = "PGSALVAGE_TARGET",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The plan directory.
    #[arg(long, value_name = "DIR")]
    pub plan: PathBuf,

    /// How long to wait for the holder to let go.
    #[arg(long, value_name = "TIME", default_value = "30s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// `pgsalvage merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Every shard directory of one plan (shard-NNN), e.g. shards/shard-*.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub html: super::report::HtmlArgs,

    #[command(flatten)]
    pub listing: super::args::ListingArgs,

    /// In the text summary, list only the tables that differ or failed.
    #[arg(long, help_heading = "Output")]
    pub only_differences: bool,

    /// Recover shards: write the recovery (restore.sql, undo.sql, keys/, plan.json) into DIR.
    /// The differing rows are read on the snapshots the shards read, which a `snapshot hold`
    /// must still keep.
    #[arg(long, value_name = "DIR", help_heading = "Recovery")]
    pub out: Option<PathBuf>,

    /// Replace --out if it exists.
    #[arg(long, requires = "out", help_heading = "Recovery")]
    pub force: bool,

    /// Recovery formats: sql (always) and parquet.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sql",
        requires = "out",
        help_heading = "Recovery"
    )]
    pub format: Vec<super::recover::Format>,

    /// The plan's base (default: the plan's connection, password from PGPASSWORD or ~/.pgpass).
    #[arg(
        long,
        env = "PGSALVAGE_BASE",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Recovery"
    )]
    pub base: Option<String>,

    /// The plan's replica (default: the plan's).
    #[arg(
        long,
        env = "PGSALVAGE_REPLICA",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Recovery"
    )]
    pub replica: Option<String>,

    /// The plan's target (default: the plan's).
    #[arg(
        long,
        env = "PGSALVAGE_TARGET",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Recovery"
    )]
    pub target: Option<String>,
}

pub fn run_plan(args: &PlanArgs) -> Result<i32> {
    let settings = args.settings()?;
    let reporter = super::reporter_for(true);
    let rt = interruptible_runtime()?;
    let plan = rt.block_on(shard::plan(
        &settings,
        args.shards,
        &args.out,
        args.force,
        reporter,
    ))?;
    let ranges: usize = plan.tables.iter().map(|t| t.ranges.len()).sum();
    let rows: u64 = plan.tables.iter().map(|t| t.est_rows).sum();
    let mut load = vec![0u64; plan.shards];
    for t in &plan.tables {
        let per = t.est_rows / t.ranges.len().max(1) as u64;
        for s in &t.shard_of {
            load[*s] += per;
        }
    }
    println!(
        "plan {}: {} tables, {ranges} key ranges, ~{rows} rows in {} shards (~{} to {} rows each) → {}",
        &plan.plan_hash[..12],
        plan.tables.len(),
        plan.shards,
        load.iter().min().unwrap_or(&0),
        load.iter().max().unwrap_or(&0),
        args.out.join(shard::PLAN_FILE).display()
    );
    if !args.quiet {
        for (name, message, _) in &plan.refused {
            eprintln!("  not compared: {name}: {message}");
        }
        let (command, merge) = match args.source.is_some() {
            true => ("baseline --source URL", " --out baseline/"),
            false => ("verify (or recover) ...", ""),
        };
        println!(
            "next: pgsalvage snapshot hold --plan {0} (for a live source), then each shard: pgsalvage {command} --plan {0} --shard auto|I --shard-out shards/, then pgsalvage merge shards/shard-*{merge}",
            args.out.display()
        );
    }
    Ok(0)
}

/// verify with `--plan`: one shard.
pub fn run_verify_shard(
    mut settings: VerifySettings,
    shard_args: &ShardArgs,
    output: &OutputArgs,
) -> Result<i32> {
    if settings.checkpoint.is_some() || settings.findings_csv.is_some() || settings.json.is_some() {
        return Err(Error::usage(
            "a shard writes its directory only: --checkpoint, --findings and --json belong to the merge",
        )
        .with_hint("pass them to pgsalvage merge"));
    }
    let out = shard_args.resolve(&mut settings)?;
    let reporter = output.reporter();
    let outcome =
        interruptible_runtime()?.block_on(shard::run_shard(&settings, &out, reporter.clone()))?;
    reporter.finish();
    let f = &outcome.file;
    let rows: Vec<String> = f.rows.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let differing: u64 = f.classes.values().sum();
    println!(
        "shard {} of {}: {} key ranges read ({} rows; {differing} differing keys) → {}",
        f.shard,
        f.shards,
        f.units,
        if rows.is_empty() {
            "no".into()
        } else {
            rows.join(", ")
        },
        outcome.dir.display()
    );
    Ok(0)
}

/// baseline with `--plan`: one shard of a baseline plan.
pub fn run_baseline_shard(
    baseline: &crate::settings::BaselineSettings,
    shard_args: &ShardArgs,
    output: &OutputArgs,
) -> Result<i32> {
    if baseline.max_snapshot_age.is_some() {
        return Err(
            Error::usage("--max-snapshot-age moves to newer snapshots: not in a shard")
                .with_hint("a shard reads the plan's one snapshot; drop --max-snapshot-age"),
        );
    }
    let mut settings = VerifySettings::new(vec![(Role::Base, baseline.source.clone())]);
    settings.filter = baseline.filter.clone();
    settings.keys = baseline.keys.clone();
    settings.jobs = baseline.jobs;
    settings.batch_bytes = baseline.batch_bytes;
    settings.live = baseline.live.clone();
    let out = shard_args.resolve(&mut settings)?;
    let reporter = output.reporter();
    let outcome = interruptible_runtime()?.block_on(shard::run_baseline_shard(
        &settings,
        baseline.rows,
        &out,
        reporter.clone(),
    ))?;
    reporter.finish();
    let f = &outcome.file;
    println!(
        "baseline shard {} of {}: {} key ranges captured → {}",
        f.shard,
        f.shards,
        f.units,
        outcome.dir.display()
    );
    Ok(0)
}

pub fn run_snapshot(args: &SnapshotArgs) -> Result<i32> {
    match &args.action {
        SnapshotAction::Hold(a) => run_hold(a),
        SnapshotAction::Release(a) => {
            let rt = super::runtime()?;
            match rt.block_on(hold::release(&a.plan, a.wait))? {
                true => {
                    println!("released the snapshots held for {}", a.plan.display());
                    Ok(0)
                }
                false => Err(Error::source(format!(
                    "the holder of {} did not let go within {:?}",
                    a.plan.display(),
                    a.wait
                ))
                .with_hint("it may have died: its sessions, and the snapshots, end with it")),
            }
        }
    }
}

fn run_hold(args: &HoldArgs) -> Result<i32> {
    let mut sources = Vec::new();
    for (role, text) in [
        (Role::Base, Some(&args.base)),
        (Role::Replica, args.replica.as_ref()),
        (Role::Target, args.target.as_ref()),
    ] {
        if let Some(text) = text {
            let info = resolve(text, &ProcessEnv).map_err(|e| e.context(format!("--{role}")))?;
            sources.push((role, info));
        }
    }
    let rt = interruptible_runtime()?;
    let ready = |f: &hold::HeldFile| {
        let ids: Vec<String> = f
            .sources
            .iter()
            .map(|(r, s)| format!("{r} {}", s.snapshot_id))
            .collect();
        println!(
            "holding {} for plan {} until released (pgsalvage snapshot release --plan {}) or {:?} pass",
            ids.join(", "),
            &f.plan_hash[..12],
            args.plan.display(),
            args.limit
        );
    };
    let ended = rt.block_on(hold::hold(&args.plan, &sources, args.limit, &ready))?;
    let why = match ended {
        hold::Ended::Released => "released",
        hold::Ended::Deadline => "--for passed",
        hold::Ended::Interrupted => "stopped",
    };
    println!("let the snapshots go: {why}");
    Ok(0)
}

pub fn run_merge(args: &MergeArgs) -> Result<i32> {
    args.output.check()?;
    args.html.check()?;
    let mut settings = VerifySettings::new(Vec::new());
    args.listing.apply(&mut settings)?;
    settings.json = args.output.json.clone();
    let note = |m: &str| eprintln!("note: {m}");
    let shown = Shown {
        quiet: args.output.quiet,
        only_differences: args.only_differences,
        html: args.html.html.as_deref(),
    };
    let rt = super::runtime()?;
    let Some(out) = &args.out else {
        let report = rt.block_on(shard::merge::merge(&args.dirs, &settings, &note))?;
        return finish(&report, &settings, &shown);
    };
    let merged = shard::merge::gather(&args.dirs, &note)?;
    if merged.baseline_rows().is_some() {
        let manifest = rt.block_on(shard::merge::merge_baseline(merged, out, args.force))?;
        args.output.print(&super::baseline::summary(&manifest, out));
        return Ok(0);
    }
    let sources = merge_sources(args, &merged.plan)?;
    let target = shard::merge::RecoveryOut {
        dir: out,
        force: args.force,
        parquet: args.format.contains(&super::recover::Format::Parquet),
    };
    let reporter = args.output.reporter();
    let outcome = rt.block_on(shard::merge::merge_recovery(
        merged, sources, target, &settings, &*reporter,
    ))?;
    reporter.finish();
    super::recover::show_recovery(&outcome, &settings, &shown, out)
}

/// The sources a merge of recover shards reads rows from: as given, else the plan's.
fn merge_sources(
    args: &MergeArgs,
    plan: &crate::plan::shards::ShardPlan,
) -> Result<Vec<(Role, crate::source::ConnInfo)>> {
    let given = |role: Role| match role {
        Role::Base => args.base.clone(),
        Role::Replica => args.replica.clone(),
        Role::Target => args.target.clone(),
    };
    plan.sources
        .iter()
        .map(|(role, conn)| {
            let text = given(*role).unwrap_or_else(|| format!("postgresql://{conn}"));
            let info = resolve(&text, &ProcessEnv).map_err(|e| e.context(format!("--{role}")))?;
            Ok((*role, info))
        })
        .collect()
}
