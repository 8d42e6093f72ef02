//! `pgsalvage recover`: flags → [`RecoverSettings`], then the run and its summary.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;

use super::args::OutputArgs;
use super::{parse_table, parse_table_columns, show, CompareArgs};
use crate::classify::ConflictPolicy;
use crate::error::{Error, Result};
use crate::recover::{recover, RecoverSettings};
use crate::settings::{OrphanPolicy, RestoreSpec};
use crate::shape::TableName;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Sql,
    Parquet,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OnConflict {
    KeepTarget,
    TakeReplica,
    Fail,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub compare: CompareArgs,

    /// The directory to write the recovery into; it must not exist (see --force). A shard
    /// (--plan) writes no recovery: its merge does.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "plan",
        help_heading = "Restore"
    )]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub sharded: super::shard::ShardArgs,

    /// Output formats: sql (always written: apply reads it) and parquet
    /// (parquet/SCHEMA.TABLE.parquet with the rows to restore).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sql",
        help_heading = "Restore"
    )]
    pub format: Vec<Format>,

    /// Replace --out if it exists.
    #[arg(long, help_heading = "Restore")]
    pub force: bool,

    /// On divergent rows of a table, restore only these columns:
    /// --columns public.orders:status,total (repeatable). Other columns keep the target's values.
    #[arg(long, value_name = "TABLE:COLS", help_heading = "Restore")]
    pub columns: Vec<String>,

    /// Two sources: also delete the rows that exist only on the target. By default they are
    /// kept and listed, since a row written after the backup is usually a legitimate one.
    #[arg(long, help_heading = "Restore", conflicts_with = "no_delete")]
    pub delete_extra: bool,

    /// Keep rows that exist only on the target: the default (kept for older command lines).
    #[arg(long, hide = true)]
    pub no_delete: bool,

    /// Three sources: rows only the target holds (new_on_target) are kept by default; delete
    /// removes them (rows marked by --changed-after are always kept).
    #[arg(long, value_enum, default_value = "keep", help_heading = "Restore")]
    pub new_on_target: NewOnTarget,

    /// Rows whose parent exists on no source (orphans nothing can restore): keep lists them
    /// with both choices commented out in restore.sql; delete removes them; set-null sets their
    /// reference NULL where its columns allow it. undo.sql puts them back as they were.
    #[arg(long, value_enum, default_value = "keep", help_heading = "Restore")]
    pub orphans: Orphans,

    /// Mark target rows written legitimately after the replica, so they are never overwritten:
    /// --changed-after "public.orders:updated_at > '2026-11-24 03:00+00'" (repeatable; the
    /// predicate is SQL evaluated on the target's rows of that table).
    #[arg(long, value_name = "TABLE:PREDICATE", help_heading = "Restore")]
    pub changed_after: Vec<String>,

    /// Three-way conflicts (the target differs from both the backup and the replica):
    /// keep-target leaves them (listed, exit 1), take-replica restores the replica's row,
    /// fail writes no recovery.
    #[arg(
        long,
        value_enum,
        default_value = "keep-target",
        help_heading = "Restore"
    )]
    pub on_conflict: OnConflict,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub html: super::report::HtmlArgs,
}

impl RecoverArgs {
    pub fn settings(&self) -> Result<RecoverSettings> {
        self.output.check()?;
        self.html.check()?;
        let mut verify = self.compare.settings()?;
        if !verify.baselines.is_empty() {
            return Err(Error::usage("recover needs databases: a baseline holds digests, not rows")
                .with_hint("compare with the baseline using verify, then recover from a restored backup database"));
        }
        verify.json = self.output.json.clone();
        let three_way = verify.sources.len() == 3;
        if three_way && self.delete_extra {
            return Err(Error::usage("--delete-extra is for two sources")
                .with_hint("with a replica, rows only the target holds are classed new_on_target: use --new-on-target delete"));
        }
        if !three_way && self.new_on_target == NewOnTarget::Delete {
            return Err(
                Error::usage("--new-on-target is for three sources (with --replica)")
                    .with_hint("with two sources, use --delete-extra"),
            );
        }
        verify.restore = Some(RestoreSpec {
            columns: parse_columns(&self.columns)?,
            // Three-way deletions come only from a class's rule or a policy, never by default.
            no_delete: !three_way && !self.delete_extra,
            delete_new_on_target: self.new_on_target == NewOnTarget::Delete,
            on_conflict: match self.on_conflict {
                OnConflict::KeepTarget => ConflictPolicy::KeepTarget,
                OnConflict::TakeReplica => ConflictPolicy::TakeReplica,
                OnConflict::Fail => ConflictPolicy::Fail,
            },
            keys_dir: PathBuf::new(),
            changed_after: parse_predicates(&self.changed_after)?,
            orphans: match self.orphans {
                Orphans::Keep => OrphanPolicy::Keep,
                Orphans::Delete => OrphanPolicy::Delete,
                Orphans::SetNull => OrphanPolicy::SetNull,
            },
        });
        Ok(RecoverSettings {
            verify,
            out: self.out.clone().unwrap_or_default(),
            parquet: self.format.contains(&Format::Parquet),
            force: self.force,
        })
    }
}

fn parse_columns(specs: &[String]) -> Result<HashMap<TableName, Vec<String>>> {
    parse_table_columns(specs, "--columns", ':')
}

fn parse_predicates(specs: &[String]) -> Result<HashMap<TableName, String>> {
    let mut map = HashMap::new();
    for spec in specs {
        let (table, predicate) = spec
            .split_once(':')
            .filter(|(_, p)| !p.trim().is_empty())
            .ok_or_else(|| {
                Error::usage(format!("invalid --changed-after \"{spec}\"")).with_hint(
                    "write --changed-after \"schema.table:updated_at > '2026-11-24 03:00+00'\"",
                )
            })?;
        map.insert(parse_table(table)?, predicate.trim().to_string());
    }
    Ok(map)
}

/// `--orphans`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Orphans {
    Keep,
    Delete,
    SetNull,
}

/// `--new-on-target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NewOnTarget {
    Keep,
    Delete,
}

pub fn run(args: &RecoverArgs) -> Result<i32> {
    let settings = args.settings()?;
    if args.sharded.plan.is_some() {
        return super::shard::run_verify_shard(settings.verify, &args.sharded, &args.output);
    }
    let reporter = args.output.reporter();
    let outcome = super::interruptible_runtime()?.block_on(recover(&settings, reporter.clone()))?;
    reporter.finish();
    let shown = super::Shown {
        quiet: args.output.quiet,
        only_differences: args.compare.only_differences,
        html: args.html.html.as_deref(),
    };
    show_recovery(&outcome, &settings.verify, &shown, &settings.out)
}

/// Prints and writes a written recovery's report (recover's, or a merge of recover shards');
/// returns its exit status.
pub fn show_recovery(
    outcome: &crate::recover::RecoverOutcome,
    settings: &crate::settings::VerifySettings,
    shown: &super::Shown,
    out: &std::path::Path,
) -> Result<i32> {
    if let Some(path) = &settings.json {
        let json = RecoverJson {
            report: &outcome.report,
            fixups: &outcome.plan.fixups,
        };
        crate::report::write_report_file(path, &json)?;
    }
    let page = shown.html;
    let shown = super::Shown {
        html: None,
        ..*shown
    };
    let code = show(&outcome.report, settings, &shown)?;
    if let Some(path) = page {
        let plan = &outcome.plan;
        let fixups: Vec<String> = plan
            .summary
            .iter()
            .chain(&plan.fixups.summary)
            .cloned()
            .collect();
        super::report::write_recover_html(&outcome.report, &fixups, path)?;
    }
    let text = plan_text(&outcome.plan, out);
    super::args::print_text(&text, false, settings.json.as_deref());
    // Fix-ups alone (schema drift, unvalidated constraints) are a recovery written, too.
    Ok(code.max(i32::from(outcome.plan.fixups.active() > 0)))
}

/// recover's `--json`: the comparison's report (schema `pgsalvage.verify/2`, see `report`) with
/// the recovery's fix-ups added at the top level, exactly as plan.json lists them:
///
/// ```text
/// "fixups": { "summary": [ "fix-up before rows: add constraint public.items.items_qty_check" ],
///             "steps": [ { "stage": "before_rows" | "after_rows", "kind": "add_constraint" | …,
///                          "table": "public.items" | null, "object": "…", "active": true,
///                          "rows": n | null, "statements": [ "ALTER TABLE …" ],
///                          "note": "…" | null } ],
///             "insert_tables": [ "public.parents" ], "not_undone": [ "setval of …" ] }
/// ```
/// Empty lists when there is nothing to fix; the steps' kinds are plan.json's (`recovery::plan`).
/// verify's report has no `fixups`; an incomplete recover, which writes no recovery, neither.
#[derive(serde::Serialize)]
struct RecoverJson<'a> {
    #[serde(flatten)]
    report: &'a crate::report::VerifyReport,
    fixups: &'a crate::recovery::fixups::FixupPlan,
}

/// Where the recovery went, what it does, and what to run next.
fn plan_text(plan: &crate::recovery::plan::RecoverPlan, out: &std::path::Path) -> String {
    use std::fmt::Write as _;
    let t = &plan.totals;
    let mut text = format!(
        "\nrecovery written to {}: insert {}, update {}, delete {}, keep {}\n",
        out.display(),
        t.insert,
        t.update,
        t.delete,
        t.keep
    );
    for line in plan.summary.iter().chain(&plan.fixups.summary) {
        let _ = writeln!(text, "  {line}");
    }
    let _ = writeln!(
        text,
        "review {}/plan.json, then: pgsalvage apply {} --target <URL> --dry-run",
        out.display(),
        out.display()
    );
    text
}
