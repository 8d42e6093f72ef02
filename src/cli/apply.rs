//! `pgsalvage apply`: flags → [`ApplySettings`], then the run and what it did.

use std::path::PathBuf;

use clap::Args;

use super::args::print_text;
use super::args::{OutputArgs, TargetArgs};
use crate::apply::{apply_reporting, ApplyReport, ApplySettings};
use crate::error::Result;
use crate::source::conninfo::{resolve, ProcessEnv};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The recovery directory written by `pgsalvage recover`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The database to restore into: the target the recovery was computed against.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Do everything, print what would change, and roll back.
    #[arg(long)]
    pub dry_run: bool,

    /// Skip rows changed since recover compared them (listed), instead of aborting.
    #[arg(long)]
    pub skip_changed: bool,

    /// How long to try for the tables' locks (each try gives up within a second, so apply never
    /// queues in front of the application) before giving up, changing nothing, e.g. 60s, 5m.
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = super::args::parse_duration)]
    pub lock_wait: std::time::Duration,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: &ApplyArgs) -> Result<i32> {
    let target = resolve(&args.target.target, &ProcessEnv).map_err(|e| e.context("--target"))?;
    let settings = ApplySettings {
        dir: args.dir.clone(),
        target,
        dry_run: args.dry_run,
        skip_changed: args.skip_changed,
        lock_wait: args.lock_wait,
    };
    let reporter = args.output.reporter();
    let report = super::apply_runtime()?.block_on(apply_reporting(&settings, &*reporter))?;
    if let Some(path) = &args.output.json {
        crate::report::write_report_file(path, &report)?;
    }
    let json = args.output.json.as_deref();
    for c in &report.conflicts {
        let verb = if args.skip_changed {
            "skipped"
        } else {
            "conflict"
        };
        let line = format!("{verb}: {} {} changed since recover\n", c.table, c.named());
        print_text(&line, false, json);
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
    if !args.output.quiet {
        print_text(&steps_text(&report), false, json);
    }
    let checked = format!(
        "re-verified {} keys: {} not as planned",
        report.reverified_keys,
        report.reverify_mismatches.len()
    );
    if report.dry_run {
        print_text(
            &format!("dry run: {checked}; rolled back, nothing changed\n"),
            false,
            json,
        );
    } else if report.committed {
        print_text(&format!("committed; {checked}\n"), false, json);
    } else {
        eprintln!("error: the restore did not produce the planned rows ({checked}); rolled back, nothing changed");
    }
    Ok(report.exit_code)
}

/// What apply ran, table by table, and how it re-verified.
fn steps_text(report: &ApplyReport) -> String {
    let mut lines: Vec<String> = Vec::new();
    for s in &report.statements {
        let done = match (s.not_run, s.writes_rows) {
            (true, _) => "not run (dry run)".to_string(),
            (false, true) => format!("{} rows", s.rows),
            (false, false) => "done".to_string(),
        };
        lines.push(format!("{done:>17}  {}", s.statement));
    }
    for table in &report.index_guarded {
        lines.push(format!(
            "  rows to insert into {table}: guarded by its unique key index, not read ahead"
        ));
    }
    for table in &report.scanned {
        lines.push(format!(
            "  rows written to {table}: re-verified by one scan of what this apply wrote"
        ));
    }
    for m in &report.reverify_mismatches {
        lines.push(format!("  not as planned: {} {}", m.table, m.named()));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}
