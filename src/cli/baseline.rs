//! `pgsalvage baseline`: take a checksum baseline of a database, or inspect one.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::args::{OutputArgs, ScopeArgs, WorkArgs};
use super::parse_keys;
use crate::baseline::manifest::Baseline;
use crate::baseline::take::take;
use crate::baseline::Manifest;
use crate::error::{Error, Result};
use crate::settings::BaselineSettings;
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: Option<BaselineCommand>,

    /// The database to record (a libpq URL or key=value string; a hot standby works).
    #[arg(
        long,
        env = "PGSALVAGE_SOURCE",
        hide_env_values = true,
        value_name = "URL",
        required = true
    )]
    pub source: Option<String>,

    /// The directory to write; it must not exist (see --force). Written atomically. A shard
    /// (--plan) writes its part into --shard-out instead; the merge writes the baseline.
    #[arg(long, value_name = "DIR", required_unless_present = "plan")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub sharded: super::shard::ShardArgs,

    /// Also store every row's key and digest, so a later comparison names exact keys.
    #[arg(long)]
    pub rows: bool,

    /// Replace --out if it exists (the old baseline is removed only once the new one is in place).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub scope: ScopeArgs,

    #[command(flatten)]
    pub narrow: super::args::NarrowArgs,

    /// Key columns for a table without a primary key: --key public.events=tenant_id,event_id.
    /// They may allow NULL: the snapshot is checked to hold no NULL and no repeated key in them.
    #[arg(long, value_name = "TABLE=COLS")]
    pub key: Vec<String>,

    #[command(flatten)]
    pub work: WorkArgs,

    /// For long captures: move to a new snapshot once the current one is this old (e.g. 30m),
    /// so the source's vacuum horizon is not held back for the whole run. Each key range still
    /// reads one snapshot; the manifest lists the snapshots and which tables read which.
    #[arg(long, value_name = "TIME", value_parser = super::args::parse_duration, help_heading = "Live primary")]
    pub max_snapshot_age: Option<std::time::Duration>,

    /// Also write the manifest as JSON to this file (what `baseline inspect --json` prints).
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Check a baseline (every file against its digest) and print its manifest readably.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The baseline directory.
    pub dir: PathBuf,
    /// Print the manifest as JSON instead.
    #[arg(long)]
    pub json: bool,
}

impl BaselineArgs {
    pub fn settings(&self) -> Result<BaselineSettings> {
        self.output.check()?;
        let source = self
            .source
            .as_deref()
            .ok_or_else(|| Error::usage("--source is required"))?;
        let out = match (&self.out, &self.sharded.plan) {
            (Some(out), _) => out.clone(),
            (None, Some(_)) => PathBuf::new(),
            (None, None) => return Err(Error::usage("--out is required")),
        };
        let mut filter = self.scope.filter()?;
        self.narrow.narrow(&mut filter)?;
        Ok(BaselineSettings {
            source: resolve(source, &ProcessEnv).map_err(|e| e.context("--source"))?,
            out,
            rows: self.rows,
            force: self.force,
            filter,
            keys: parse_keys(&self.key)?,
            jobs: self.work.jobs,
            batch_bytes: self.work.batch_bytes(2048),
            live: self.work.live()?,
            max_snapshot_age: self.max_snapshot_age,
        })
    }
}

pub fn run(args: &BaselineArgs) -> Result<i32> {
    if let Some(BaselineCommand::Inspect(inspect)) = &args.command {
        return run_inspect(inspect);
    }
    let settings = args.settings()?;
    if args.sharded.plan.is_some() {
        return super::shard::run_baseline_shard(&settings, &args.sharded, &args.output);
    }
    let reporter = args.output.reporter();
    let manifest = super::interruptible_runtime()?.block_on(take(&settings, reporter))?;
    if let Some(path) = &args.output.json {
        crate::report::write_report_file(path, &manifest)?;
    }
    args.output.print(&summary(&manifest, &settings.out));
    Ok(0)
}

fn run_inspect(args: &InspectArgs) -> Result<i32> {
    let baseline = Baseline::load(&args.dir)?;
    if args.json {
        let json = serde_json::to_string_pretty(&baseline.manifest).expect("a manifest serializes");
        println!("{json}");
    } else {
        print!("{}", summary(&baseline.manifest, &args.dir));
    }
    Ok(0)
}

/// The manifest as a person reads it: where and when it was taken, then one line per table.
pub fn summary(m: &Manifest, dir: &std::path::Path) -> String {
    let mut out = String::new();
    let s = &m.source;
    let _ = writeln!(out, "baseline {} ({}, {})", dir.display(), m.format, m.tool);
    let _ = writeln!(
        out,
        "  source {} (PostgreSQL {}{}), snapshot at {} UTC, WAL {}",
        s.connection,
        s.server_version,
        if s.in_recovery { ", standby" } else { "" },
        s.taken_at,
        s.wal_lsn
    );
    let _ = writeln!(
        out,
        "  rows stored: {}",
        if m.rows {
            "yes (exact keys on compare)"
        } else {
            "no (changed key spans on compare)"
        }
    );
    let width = m
        .tables
        .iter()
        .map(|t| t.table.to_string().len())
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    let _ = writeln!(
        out,
        "  {:<width$} {:>12} {:>8} {:>7}  key / root",
        "table", "rows", "leaves", "columns"
    );
    for t in &m.tables {
        let _ = writeln!(
            out,
            "  {:<width$} {:>12} {:>8} {:>7}  ({}) {}",
            t.table.to_string(),
            t.rows,
            t.leaf_count,
            t.columns.len(),
            t.key.join(", "),
            &t.root[..16]
        );
    }
    let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
    let _ = writeln!(
        out,
        "{} tables, {rows} rows, {} files, {:.1} MiB, every file checked against its digest",
        m.tables.len(),
        m.files.len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    out
}
