//! `pgsalvage apply`: flags → [`ApplySettings`], then the run and what it did.

use std::path::PathBuf;

use clap::Args;

use super::runtime;
use crate::apply::{apply, ApplySettings};
use crate::error::Result;
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The recovery directory written by `pgsalvage recover`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The database to restore into (the target the recovery was computed against).
    #[arg(long, env = "PGSALVAGE_TARGET", value_name = "URL")]
    pub target: String,

    /// Do everything, print what would change, and roll back.
    #[arg(long)]
    pub dry_run: bool,

    /// Skip rows changed since recover compared them (listed), instead of aborting.
    #[arg(long)]
    pub skip_changed: bool,

    /// Write what apply did as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(args: &ApplyArgs) -> Result<i32> {
    let target = resolve(&args.target, &ProcessEnv).map_err(|e| e.context("--target"))?;
    let settings = ApplySettings {
        dir: args.dir.clone(),
        target,
        dry_run: args.dry_run,
        skip_changed: args.skip_changed,
    };
    let report = runtime()?.block_on(apply(&settings))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&report)
            .map_err(|e| crate::Error::internal(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| crate::Error::io(path.display(), e))?;
    }
    for c in &report.conflicts {
        let verb = if args.skip_changed {
            "skipped"
        } else {
            "conflict"
        };
        println!(
            "{verb}: {} key {} changed since recover",
            c.table,
            c.key.get()
        );
    }
    if !report.conflicts.is_empty() && !args.skip_changed {
        eprintln!(
            "error: {} rows changed since recover; nothing was applied",
            report.conflicts.len()
        );
        eprintln!(
            "  hint: run recover again, or apply with --skip-changed to leave those rows alone"
        );
        return Ok(report.exit_code);
    }
    for s in &report.statements {
        println!("{:>10} rows  {}", s.rows, s.statement);
    }
    for table in &report.index_guarded {
        println!("  rows to insert into {table}: guarded by its unique key index, not read ahead");
    }
    for table in &report.scanned {
        println!("  rows written to {table}: re-verified by one scan of what this apply wrote");
    }
    for m in &report.reverify_mismatches {
        println!("  not as planned: {} key {}", m.table, m.key.get());
    }
    let checked = format!(
        "re-verified {} keys: {} not as planned",
        report.reverified_keys,
        report.reverify_mismatches.len()
    );
    if report.dry_run {
        println!("dry run: {checked}; rolled back, nothing changed");
    } else if report.committed {
        println!("committed; {checked}");
    } else {
        eprintln!("error: the restore did not produce the planned rows ({checked}); rolled back, nothing changed");
    }
    Ok(report.exit_code)
}
