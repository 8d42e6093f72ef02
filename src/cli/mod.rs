//! The command line: clap definitions (their doc comments are the `--help`), turned into
//! [`Settings`](crate::settings) and run, with the exit status carrying the answer.
//!
//! Exit status: 0 identical, 1 differences found, 2 an error or anything left unverified.

pub mod apply;
pub mod args;
pub mod bars;
pub mod baseline;
pub mod check;
pub mod demo;
pub mod examples;
pub mod recover;
pub mod report;
pub mod shard;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::baseline::manifest::looks_like_baseline;
use crate::error::{Error, Result};
use crate::progress::{NullReporter, Reporter};
use crate::report::{human, VerifyReport};
use crate::settings::{TableFilter, VerifySettings};
use crate::shape::TableName;
use crate::source::conninfo::{resolve, ProcessEnv};
use crate::source::{ConnInfo, Role};
use args::{OutputArgs, ScopeArgs, TargetArgs, WorkArgs};

/// Exact data-integrity diff and recovery for PostgreSQL.
///
/// Compares a known-good database (a restored backup) with a suspect one (a primary after a
/// failed migration) row by row, from consistent snapshots, and says exactly which rows are
/// missing, extra or different, down to the column.
#[derive(Debug, Parser)]
#[command(
    name = "pgsalvage",
    version = crate::report::provenance::long_version(),
    propagate_version = true,
    max_term_width = 100,
    after_help = examples::TOP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log what runs to standard error: -v connections and phases, -vv also the SQL that reads
    /// (snapshot imports, COPY queries) and each key range. Progress bars give way to lines.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare a base database with a target database, row by row.
    ///
    /// Exit status: 0 identical, 1 differences, 2 error or anything not verified. --json writes
    /// schema pgsalvage.verify/2; --html a self-contained page.
    #[command(after_help = examples::VERIFY)]
    Verify(VerifyArgs),
    /// Compare, then write restore batches that put lost and damaged rows back.
    ///
    /// Writes into --out: plan.json (review it first), restore.sql (one transaction, tables in
    /// foreign-key order), undo.sql (reverts restore.sql), keys/ (what apply guards with).
    /// Exit status: 0 nothing to restore, 1 a restore was written, 2 error. --json writes the
    /// comparison (schema pgsalvage.verify/2), --html the page of it.
    #[command(after_help = examples::RECOVER)]
    Recover(recover::RecoverArgs),
    /// Apply a recovery to the target in one transaction, guarded and re-verified.
    ///
    /// Every row the restore touches must still be as it was when recover compared it; rows
    /// changed since are conflicts (abort, or skip them with --skip-changed). --dry-run does all
    /// of it and rolls back. Exit status: 0 applied and verified, 1 conflicts skipped or
    /// differences remain, 2 error or aborted. --json writes what apply did.
    #[command(after_help = examples::APPLY)]
    Apply(apply::ApplyArgs),
    /// Take a checksum baseline of a database (or inspect one: baseline inspect DIR).
    ///
    /// Writes a directory (manifest.json and Parquet files) from one consistent snapshot, with
    /// nothing installed on the source; a hot standby works. Later, pass the directory as
    /// --base or --target of verify to see which tables and key spans changed since.
    #[command(after_help = examples::BASELINE)]
    Baseline(baseline::BaselineArgs),
    /// Look at a database in the first minutes of an incident, read-only.
    ///
    /// Reports migration tables (dirty, failed, locked), lock waits and who blocks whom, running
    /// DDL, long transactions, replication (replicas, replay pause, lag, slots) and invalid
    /// indexes, with the SQL a person could run about each; pgsalvage changes nothing.
    /// Exit status: 0 nothing notable, 1 something notable, 2 error or a part not read. --json
    /// writes schema pgsalvage.status/2; --html a page with the lock-wait graph.
    #[command(after_help = examples::STATUS)]
    Status(status::StatusArgs),
    /// Check integrity on the target: constraints not validated, orphans, sequences behind
    /// their tables, and with --base the NOT NULL and unique rules it lost and its schema drift.
    ///
    /// Read-only, in one snapshot. Exit status: 0 nothing found, 1 problems found, 2 error.
    /// --json writes schema pgsalvage.check/2; --html a self-contained page.
    #[command(after_help = examples::CHECK)]
    Check(check::CheckArgs),
    /// Run verify on a throwaway local cluster with a damaged-migration scenario.
    Demo(demo::DemoArgs),
    /// Plan a comparison for N shards (processes, pods): tables, key ranges dealt by size,
    /// schema fingerprints, into DIR/plan.json.
    ///
    /// Then: `snapshot hold --plan DIR` for a live source, each shard
    /// `verify ... --plan DIR --shard auto`, and `merge shard-*`. Exit status: 0 planned, 2 error.
    Plan(shard::PlanArgs),
    /// Hold (or release) one snapshot of every source for a plan's shards.
    Snapshot(shard::SnapshotArgs),
    /// Merge the directories of every shard of a plan into one report.
    ///
    /// Refuses missing, repeated or foreign shards. Exit status as a single verify's: 0
    /// identical, 1 differences, 2 error or anything not verified.
    Merge(shard::MergeArgs),
    /// Render a saved JSON report (verify, recover, check or status) as a self-contained HTML
    /// page, or print its summary again.
    #[command(after_help = examples::REPORT)]
    Report(report::ReportArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(after_help = examples::COMPLETIONS)]
    Completions(report::CompletionsArgs),
    /// Print the manual page (roff) of pgsalvage or of one of its commands.
    #[command(after_help = examples::MAN)]
    Man(report::ManArgs),
}

/// The sources and what to compare: shared by verify and recover.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The known-good side, e.g. a restored pre-migration backup, or a baseline directory.
    ///
    /// A libpq connection URI or key=value string, like --target.
    #[arg(
        long,
        env = "PGSALVAGE_BASE",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub base: String,

    #[command(flatten)]
    pub target: TargetArgs,

    /// A copy that saw the legitimate writes after the backup but not the damage (a delayed or
    /// paused standby, a later backup). With it, differences are classified three ways: lost,
    /// damaged, changed legitimately since the backup, new since the backup, conflict, ...
    #[arg(
        long,
        env = "PGSALVAGE_REPLICA",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Sources"
    )]
    pub replica: Option<String>,

    #[command(flatten)]
    pub scope: ScopeArgs,

    #[command(flatten)]
    pub narrow: args::NarrowArgs,

    /// Use these columns as the key of a table without a usable primary key:
    /// --key public.events=tenant_id,event_id (repeatable). They may allow NULL: each snapshot
    /// is checked to hold no NULL and no repeated key in them first (exit 2 otherwise).
    #[arg(long, value_name = "TABLE=COLS", help_heading = "What to compare")]
    pub key: Vec<String>,

    /// For up to N divergent rows per table, print the key and each differing column's values
    /// (base → target, as PostgreSQL prints them, long ones elided); the JSON report carries
    /// them in each finding's "values".
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Output")]
    pub show_values: usize,

    /// In the text summary, list only the tables that differ or failed (the verdict still
    /// counts every table).
    #[arg(long, help_heading = "Output")]
    pub only_differences: bool,

    #[command(flatten)]
    pub work: WorkArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub compare: CompareArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub html: report::HtmlArgs,

    #[command(flatten)]
    pub sharded: shard::ShardArgs,

    #[command(flatten)]
    pub listing: args::ListingArgs,

    /// Record each finished key range in DIR, and resume from it: a run started again with the
    /// same DIR (after a kill, a crash, a lost connection) reads only the ranges not yet done
    /// and reports as one run would, saying which ranges came from earlier runs. A run that
    /// verifies everything removes DIR.
    #[arg(long, value_name = "DIR", help_heading = "Live primary")]
    pub checkpoint: Option<PathBuf>,

    /// Read keys and row hashes computed by the server first, and full rows only for the keys
    /// whose hashes differ: far fewer bytes from a remote source (about 40 bytes a row instead of
    /// the row). `auto` does so when a source is not on this machine (its host is neither a
    /// Unix socket nor a loopback address); `--narrow` alone is `on`. Columns the server cannot
    /// hash exactly (json, jsonb, composites) are still read whole.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        num_args = 0..=1,
        default_value = "off",
        default_missing_value = "on",
        help_heading = "What to compare"
    )]
    pub narrow: NarrowWhen,

    /// Against a baseline taken of some tables (--tables, --exclude-*): compare every table
    /// anyway, those it does not hold reported as table_absent. Without it they are left out
    /// and listed in the JSON report's scope.outside_baseline.
    #[arg(long, help_heading = "What to compare")]
    pub all_tables: bool,
}

impl VerifyArgs {
    /// Resolves the flags into settings; every mistake is reported before connecting.
    pub fn settings(&self) -> Result<VerifySettings> {
        self.output.check()?;
        self.html.check()?;
        let mut settings = self.compare.settings()?;
        self.listing.apply(&mut settings)?;
        settings.json = self.output.json.clone();
        if let Some(dir) = &self.checkpoint {
            if !settings.baselines.is_empty() {
                return Err(Error::usage("--checkpoint works with databases, not baselines")
                    .with_hint("a comparison with a baseline reads one database once; run it again instead"));
            }
            match dir.is_dir() {
                true => crate::report::check_writable(&dir.join("plan.json"), "--checkpoint")?,
                false => crate::report::check_writable(dir, "--checkpoint")?,
            }
        }
        settings.checkpoint = self.checkpoint.clone();
        settings.filter.all_tables = self.all_tables;
        settings.narrow = match self.narrow {
            NarrowWhen::Off => false,
            NarrowWhen::On => true,
            NarrowWhen::Auto => settings.sources.iter().any(|(_, s)| !s.is_local()),
        };
        if settings.narrow && !settings.baselines.is_empty() {
            return Err(
                Error::usage("--narrow reads databases; a baseline holds digests already")
                    .with_hint("drop --narrow, or compare two databases"),
            );
        }
        if settings.narrow && settings.show_values > 0 {
            return Err(
                Error::usage("--show-values shows values of full rows: not with --narrow")
                    .with_hint("drop one of them"),
            );
        }
        Ok(settings)
    }
}

/// `--narrow`: when to read keys and row hashes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NarrowWhen {
    Off,
    On,
    /// When a source is not on this machine.
    Auto,
}

/// The sides of a comparison: databases, and baseline directories.
type Sides = (Vec<(Role, ConnInfo)>, Vec<(Role, PathBuf)>);

impl CompareArgs {
    /// Resolves the flags into settings; every mistake is reported before connecting.
    pub fn settings(&self) -> Result<VerifySettings> {
        let (sources, baselines) = self.sides()?;
        if !baselines.is_empty() && self.replica.is_some() {
            return Err(Error::usage("--replica cannot be combined with a baseline")
                .with_hint("compare a baseline with one database or another baseline"));
        }
        let what = What {
            scope: &self.scope,
            narrow: &self.narrow,
            key: &self.key,
            work: &self.work,
        };
        let mut settings = what.settings(sources)?;
        settings.baselines = baselines;
        settings.show_values = self.show_values;
        Ok(settings)
    }

    /// Each side given: a database (resolved like libpq) or a baseline directory.
    fn sides(&self) -> Result<Sides> {
        let (mut sources, mut baselines) = (Vec::new(), Vec::new());
        let sides = [
            (Role::Base, Some(&self.base)),
            (Role::Replica, self.replica.as_ref()),
            (Role::Target, Some(&self.target.target)),
        ];
        for (role, text) in sides {
            let Some(text) = text else { continue };
            if looks_like_baseline(text) {
                baselines.push((role, PathBuf::from(text)));
            } else {
                let info =
                    resolve(text, &ProcessEnv).map_err(|e| e.context(format!("--{role}")))?;
                sources.push((role, info));
            }
        }
        Ok((sources, baselines))
    }
}

/// What a comparison reads and how hard, as flags: shared by verify, recover and plan.
pub(crate) struct What<'a> {
    pub scope: &'a ScopeArgs,
    pub narrow: &'a args::NarrowArgs,
    pub key: &'a [String],
    pub work: &'a WorkArgs,
}

impl What<'_> {
    /// The settings of a comparison of `sources` with these flags.
    pub fn settings(&self, sources: Vec<(Role, ConnInfo)>) -> Result<VerifySettings> {
        let mut settings = VerifySettings::new(sources);
        settings.filter = self.scope.filter()?;
        self.narrow.narrow(&mut settings.filter)?;
        settings.keys = parse_keys(self.key)?;
        settings.jobs = self.work.jobs;
        settings.batch_bytes = self.work.batch_bytes(1024);
        if let Some(w) = self.work.keyless_window {
            settings.keyless_window = w as usize;
        }
        settings.live = self.work.live()?;
        Ok(settings)
    }
}

/// `--tables` and `--schema` as a filter.
pub(crate) fn table_filter(tables: &[String], schemas: &[String]) -> Result<TableFilter> {
    let tables = tables
        .iter()
        .map(|t| parse_table(t))
        .collect::<Result<Vec<_>>>()?;
    Ok(TableFilter {
        tables: (!tables.is_empty()).then_some(tables),
        schemas: (!schemas.is_empty()).then(|| schemas.to_vec()),
        ..TableFilter::default()
    })
}

pub(crate) fn parse_table(text: &str) -> Result<TableName> {
    TableName::parse(text.trim()).ok_or_else(|| {
        Error::usage(format!("invalid table name \"{text}\""))
            .with_hint("write schema.table, quoting parts with \"\" if needed")
    })
}

pub(crate) fn parse_keys(specs: &[String]) -> Result<HashMap<TableName, Vec<String>>> {
    parse_table_columns(specs, "--key", '=')
}

/// Parses repeated `TABLE<sep>col1,col2` flags (`--key`, `--columns`) into columns per table.
pub(crate) fn parse_table_columns(
    specs: &[String],
    flag: &str,
    sep: char,
) -> Result<HashMap<TableName, Vec<String>>> {
    let mut map = HashMap::new();
    for spec in specs {
        let (table, cols) = spec.rsplit_once(sep).ok_or_else(|| {
            Error::usage(format!("invalid {flag} \"{spec}\""))
                .with_hint(format!("write {flag} schema.table{sep}col1,col2"))
        })?;
        let cols: Vec<String> = cols
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if cols.is_empty() {
            return Err(Error::usage(format!("{flag} \"{spec}\" names no columns")));
        }
        map.insert(parse_table(table)?, cols);
    }
    Ok(map)
}

/// Runs a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> i32 {
    crate::report::provenance::record_invocation(std::env::args());
    crate::log::set_level(cli.verbose);
    crate::log!(1, "pgsalvage {}", crate::report::provenance::long_version());
    let outcome = match cli.command {
        Command::Verify(args) => run_verify(&args),
        Command::Recover(args) => recover::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Baseline(args) => baseline::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Plan(args) => shard::run_plan(&args),
        Command::Snapshot(args) => shard::run_snapshot(&args),
        Command::Merge(args) => shard::run_merge(&args),
        Command::Status(args) => status::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Completions(args) => report::completions(&args),
        Command::Man(args) => report::man(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            2
        }
    }
}

/// Prints an error as one line, and its hint under it.
pub fn print_error(e: &Error) {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("  hint: {hint}");
    }
}

fn run_verify(args: &VerifyArgs) -> Result<i32> {
    let settings = args.settings()?;
    if args.sharded.plan.is_some() {
        return shard::run_verify_shard(settings, &args.sharded, &args.output);
    }
    let reporter = args.output.reporter();
    let report = interruptible_runtime()?.block_on(crate::verify(&settings, reporter.clone()))?;
    reporter.finish();
    let shown = Shown {
        quiet: args.output.quiet,
        only_differences: args.compare.only_differences,
        html: args.html.html.as_deref(),
    };
    finish(&report, &settings, &shown)
}

/// How a finished comparison is shown: the summary's flags and the HTML page.
pub struct Shown<'a> {
    pub quiet: bool,
    pub only_differences: bool,
    pub html: Option<&'a std::path::Path>,
}

impl Shown<'static> {
    /// The whole summary, printed; no page.
    pub fn plain() -> Self {
        Shown {
            quiet: false,
            only_differences: false,
            html: None,
        }
    }
}

/// Prints and writes a finished report; returns its exit status.
pub fn finish(report: &VerifyReport, settings: &VerifySettings, shown: &Shown) -> Result<i32> {
    if let Some(path) = &settings.json {
        report.write_json(path)?;
    }
    show(report, settings, shown)
}

/// All of [`finish`] but the JSON file, for a command that writes its own (recover adds its
/// fix-ups to it).
pub fn show(report: &VerifyReport, settings: &VerifySettings, shown: &Shown) -> Result<i32> {
    if let Some(path) = shown.html {
        report::write_verify_html(report, path)?;
    }
    let options = human::Options {
        only_differences: shown.only_differences,
    };
    args::print_text(
        &human::summary_with(report, &options),
        shown.quiet,
        settings.json.as_deref(),
    );
    for e in &report.errors {
        eprintln!("error: {}", e.message);
        if let Some(hint) = &e.hint {
            eprintln!("  hint: {hint}");
        }
    }
    Ok(report.exit_code)
}

/// Bars on a terminal, plain lines elsewhere (messages and waits are never dropped), nothing
/// with `-q`.
pub fn reporter_for(silent: bool) -> Arc<dyn Reporter> {
    if silent {
        Arc::new(NullReporter)
    } else if bars::stderr_is_terminal() {
        Arc::new(bars::Bars::new())
    } else {
        Arc::new(bars::Lines::default())
    }
}

/// The async runtime: few threads, since they only move bytes (every row's CPU work crosses to
/// the rayon pool). Each COPY stream wakes its reader some ten thousand times a second; with a
/// worker per core, those wakeups hop between threads (futexes, context switches) and the idle
/// workers steal the cores the servers and the pool need. One worker per four cores measured, on
/// 2 cores, a 1e7-row baseline in 13.4-15.5 s instead of 16.0-16.6 s, with 20 % less CPU.
/// [`runtime`] for the commands that read sources for long (verify, recover, baseline), with a
/// task that turns SIGINT and SIGTERM into a clean stop: the first asks the run to stop after the
/// ranges being read ([`crate::interrupt`]), so it still reports what it compared, as incomplete,
/// and exits 2; a second one, or 15 s without the run ending, quits at once (exit 2), after
/// removing this run's unpublished staging directories. Sources are never written to by these
/// commands, and their transactions end with their sessions.
pub fn interruptible_runtime() -> Result<tokio::runtime::Runtime> {
    let rt = runtime()?;
    rt.spawn(on_signals());
    Ok(rt)
}

/// [`runtime`] for `apply`: SIGINT or SIGTERM ends it at once, saying so. Its transaction ends
/// with its session, so the server rolls back whatever was not committed yet; a restore that did
/// commit is then found applied by the next `apply` (every row already restored).
pub fn apply_runtime() -> Result<tokio::runtime::Runtime> {
    let rt = runtime()?;
    rt.spawn(async {
        let Some((mut int, mut term)) = signals() else {
            return;
        };
        let name = next_signal(&mut int, &mut term).await;
        eprintln!("interrupted ({name}): quitting; an apply transaction not yet committed is rolled back by the server as the session ends (exit 2)");
        std::process::exit(2);
    });
    Ok(rt)
}

type Signal = tokio::signal::unix::Signal;

fn signals() -> Option<(Signal, Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    let int = signal(SignalKind::interrupt()).ok()?;
    let term = signal(SignalKind::terminate()).ok()?;
    Some((int, term))
}

async fn next_signal(int: &mut Signal, term: &mut Signal) -> &'static str {
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn on_signals() {
    let Some((mut int, mut term)) = signals() else {
        return;
    };
    let name = next_signal(&mut int, &mut term).await;
    crate::interrupt::request();
    eprintln!(
        "interrupted ({name}): stopping after the key ranges being read; the report will say what was not compared (exit 2); interrupt again to quit at once"
    );
    let again = tokio::select! {
        _ = next_signal(&mut int, &mut term) => "interrupted again",
        _ = tokio::time::sleep(std::time::Duration::from_secs(15)) => "the run did not stop within 15 s",
    };
    let removed = crate::staging::remove_live();
    eprintln!(
        "{again}: quitting now, nothing written; removed {removed} unfinished output directories"
    );
    std::process::exit(2);
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.div_ceil(4))
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}
