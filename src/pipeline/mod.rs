//! The conductor: sources → plans → ranges → workers → tallies → report.
//!
//! [`verify`] opens every source on its own exported snapshot, reads the catalogs, reconciles each
//! table across sources ([`narrowed`]), samples key boundaries and queues one unit of work per
//! (table, range). `jobs` workers each hold one session per source and take units from the queue
//! until it is empty. Each unit passes the throttle's gate, then is read in one short visit per
//! source ([`visit`]): a transaction on the snapshot that locks just that table and ends with the
//! range, so a live primary's DDL never waits for more than one range. A worker whose unit fails
//! reconnects and goes on, so one lost connection costs one range, which the report marks
//! unverified. The findings flow to one collector task ([`findings`]) that writes the CSV and keeps
//! the capped listing. Nothing here is CPU-heavy: hashing happens on rayon, behind `hash::digest`.

pub mod checkpoint;
pub mod findings;
pub mod keyless;
pub mod matching;
pub mod narrow;
pub mod range_diff;
pub mod readers;
pub mod spill;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::try_join_all;
use tokio::sync::mpsc;

use crate::classify::Finding;
use crate::compare::restore::CaptureSpec;
use crate::compare::tally::{RangeTally, TableTally};
use crate::error::{Error, Result};
use crate::plan::{narrowed, TablePlan, TableRun};
use crate::pool::off_runtime;
use crate::progress::{Reporter, TableDone};
use crate::report::{self, VerifyReport};
use crate::settings::{ShardRun, VerifySettings};
use crate::shape::{TableName, TableShape};
use crate::source::throttle::Gate;
use crate::source::visit::{self, Patience};
use crate::source::{catalog, key_check, sample, Role, Session, Source};
use checkpoint::Checkpoint;

/// What all of a run's row batches may hold at once: each COPY stream has up to
/// `readers::QUEUE_DEPTH` batches queued, one being hashed and one filling.
const BATCH_MEMORY: usize = 64 << 20;

/// The batch size for `streams` concurrent COPY streams: as asked, within [`BATCH_MEMORY`].
/// Bigger batches mean fewer hand-offs to the hashing pool, each of which wakes a thread (a
/// 2 MiB batch took a tenth of the client CPU off a baseline against 512 KiB ones). The 1 MiB
/// default is the middle way: at 1e7 rows a verify measured 1.18 × the raw COPY time with a
/// 110 MB peak, against 1.14 × and 178 MB with 2 MiB batches.
pub fn batch_bytes(asked: usize, streams: usize) -> usize {
    let per_stream = BATCH_MEMORY / (streams.max(1) * (readers::QUEUE_DEPTH + 2));
    asked.min(per_stream).max(64 * 1024)
}

/// What every worker shares.
pub struct RunContext {
    pub roles: Vec<Role>,
    pub sources: Vec<Source>,
    pub tables: Vec<TableRun>,
    pub batch_bytes: usize,
    /// Memory for keyless copies waiting for their match.
    pub keyless_window: usize,
    /// Recover runs: how classes become actions; findings then carry restore records.
    pub capture: Option<CaptureSpec>,
    pub findings: mpsc::Sender<Vec<Finding>>,
    pub reporter: Arc<dyn Reporter>,
    /// Throttle and pause, passed before every unit.
    gate: Gate,
    lock_wait: std::time::Duration,
    /// `--checkpoint`: finished ranges are saved there.
    checkpoint: Option<Arc<Checkpoint>>,
    /// `--show-values`: divergent findings carry their values.
    pub show_values: bool,
    tallies: Mutex<Vec<TableTally>>,
    queue: Mutex<VecDeque<(usize, usize)>>,
}

/// A finished comparison whose sources are still open on their snapshots (recover reads the
/// differing rows from them afterwards).
pub struct Run {
    pub report: VerifyReport,
    pub sources: Vec<Source>,
    pub tables: Vec<TableRun>,
}

/// Runs a comparison and keeps the sources open.
pub async fn run(settings: &VerifySettings, reporter: Arc<dyn Reporter>) -> Result<Run> {
    let started = Instant::now();
    let planned = plan(settings, &*reporter).await?;
    let Planned {
        roles,
        sources,
        plans,
        refused,
        ..
    } = planned;
    let patience = Patience {
        lock_wait: settings.live.lock_wait,
        reporter: &*reporter,
    };
    let checkpoint = open_checkpoint(settings, &sources, &plans)?;
    let mut tables = match (
        &settings.shard,
        checkpoint.as_ref().filter(|c| c.resuming()),
    ) {
        (Some(shard), _) => shard.plan.runs()?,
        (None, Some(c)) => resumed_cut(c, plans)?,
        (None, None) => plan_ranges(&sources, plans, settings.jobs, &patience).await?,
    };
    let gate = Gate::open(&sources.iter().collect::<Vec<_>>(), &settings.live).await?;
    if let Some(spec) = &settings.restore {
        crate::plan::restore_masks(&mut tables, &spec.columns, &spec.changed_after)?;
    }
    // A recover run needs every differing row whole (its restore records), so it reads full.
    if settings.narrow && settings.restore.is_none() {
        narrow_reads(&mut tables, &sources, &*reporter);
    }
    let checkpoint = match checkpoint {
        Some(mut c) => {
            let snapshots = roles
                .iter()
                .copied()
                .zip(sources.iter().map(|s| s.snapshot.clone()));
            c.start_run(&tables, snapshots.collect())?;
            Some(Arc::new(c))
        }
        None => None,
    };
    let (tx, rx) = mpsc::channel(64);
    let layout = crate::report::listing::Layout::of(&tables);
    let collector = findings::spawn(rx, layout, settings.clone());
    let mut ctx = RunContext::new(settings, roles.clone(), sources, tables, tx, reporter);
    ctx.gate = gate;
    ctx.checkpoint = checkpoint.clone();
    if let Some(shard) = &settings.shard {
        ctx.keep_only(&shard.plan.units_of(shard.index));
    }
    crate::log::phase("comparing rows");
    let resumed = ctx.replay().await?;
    let (tallies, sources, tables) = run_workers(ctx, settings.jobs).await?;
    crate::log::phase("reporting");
    let listed = collector
        .await
        .map_err(|e| Error::internal(format!("findings collector: {e}")))??;
    let parts = report::Parts {
        roles: &roles,
        snapshots: sources.iter().map(|s| s.snapshot.clone()).collect(),
        tables: &tables,
        tallies,
        refused,
        listed,
        started,
    };
    let mut report = report::build(parts);
    report.scope = settings.filter.scope();
    if let (Some(c), None) = (checkpoint, &settings.shard) {
        close_checkpoint(&c, &mut report, resumed)?;
    }
    Ok(Run {
        report,
        sources,
        tables,
    })
}

/// `--narrow`: every table the server can hash is read as keys and row hashes first, when every
/// source can compute the hash.
fn narrow_reads(tables: &mut [TableRun], sources: &[Source], reporter: &dyn Reporter) {
    let major = |s: &Source| -> u32 {
        let v = &s.snapshot.server_version;
        v.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    };
    if let Some(old) = sources
        .iter()
        .find(|s| major(s) < crate::plan::narrow::MIN_MAJOR)
    {
        reporter.message(&format!(
            "--narrow: {} runs PostgreSQL {}, which cannot compute the row hash (14 and later can): reading full rows",
            old.role, old.snapshot.server_version
        ));
        return;
    }
    for t in tables {
        t.narrow = crate::plan::narrow::narrow_plan(&t.plan).map(|plan| {
            Box::new(TableRun {
                plan,
                ranges: Vec::new(),
                tree_bits: t.tree_bits,
                restore_mask: None,
                changed_after: None,
                narrow: None,
            })
        });
    }
}

/// A comparison planned and not yet cut: its sources open on their snapshots, the catalogs
/// they showed, the tables' plans with their keys settled, and the tables refused.
pub struct Planned {
    pub roles: Vec<Role>,
    pub sources: Vec<Source>,
    pub catalogs: Vec<Vec<TableShape>>,
    pub plans: Vec<TablePlan>,
    pub refused: Refused,
}

/// Opens the sources and plans the tables: a single run's plans, or a shard's from its plan
/// (after checking the catalogs still match it).
pub async fn plan(settings: &VerifySettings, reporter: &dyn Reporter) -> Result<Planned> {
    let roles: Vec<Role> = settings.sources.iter().map(|(r, _)| *r).collect();
    crate::log::phase("connecting and exporting snapshots");
    let mut sources = open_sources(settings).await?;
    for source in &mut sources {
        source.limit_rate(settings.live.max_rate);
    }
    crate::log::phase("reading catalogs");
    let catalogs = try_join_all(sources.iter().map(read_catalog)).await?;
    let (plans, mut refused) = match &settings.shard {
        Some(shard) => shard_tables(settings, shard, &catalogs)?,
        None => plan_tables(settings, &roles, &catalogs)?,
    };
    catalog::check_predicates(&sources, &plans).await?;
    let patience = Patience {
        lock_wait: settings.live.lock_wait,
        reporter,
    };
    crate::log::phase("planning key ranges");
    // Keys the catalogs do not vouch for are checked in the snapshots before ranges are cut by
    // them: a table may turn keyless, or its check fail.
    let (plans, unchecked) = key_check::settle(&sources, plans, &patience).await?;
    if let Some(shard) = &settings.shard {
        same_keys_as_planned(shard, &plans, &unchecked)?;
    }
    refused.extend(unchecked);
    for (name, err) in &refused {
        reporter.message(&format!("{name}: {err}"));
    }
    Ok(Planned {
        roles,
        sources,
        catalogs,
        plans,
        refused,
    })
}

/// Each source on its own exported snapshot, or, for a shard whose plan has held snapshots, on
/// those.
async fn open_sources(settings: &VerifySettings) -> Result<Vec<Source>> {
    let held = settings.shard.as_ref().and_then(|s| s.held.as_ref());
    let opening = settings.sources.iter().map(|(role, info)| {
        let snapshot = held.and_then(|h| h.get(role)).cloned();
        async move {
            match snapshot {
                Some(snapshot) => Source::open_on(*role, info.clone(), snapshot).await,
                None => Source::open(*role, info.clone()).await,
            }
        }
    });
    try_join_all(opening).await
}

/// A shard's tables: the plan's, once the catalogs show the tables the planner saw.
fn shard_tables(
    settings: &VerifySettings,
    shard: &ShardRun,
    catalogs: &[Vec<TableShape>],
) -> Result<(Vec<TablePlan>, Refused)> {
    let plan = &shard.plan;
    let roles: Vec<Role> = settings.sources.iter().map(|(r, _)| *r).collect();
    if roles != plan.roles() {
        return Err(Error::usage(format!(
            "the shard plan compares {}; this run was given {}",
            role_list(&plan.roles()),
            role_list(&roles)
        ))
        .with_hint("give every shard the sources the plan was made with"));
    }
    plan.check_catalogs(catalogs, |n| settings.filter.accepts(n))?;
    let plans = plan
        .tables
        .iter()
        .map(|t| t.plan(&roles))
        .collect::<Result<Vec<_>>>()?;
    Ok((plans, plan.refused_tables()?))
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(Role::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A shard's keys, checked in its snapshots, must be the planner's: a key that no longer holds
/// would have the shards compare by different keys.
fn same_keys_as_planned(shard: &ShardRun, plans: &[TablePlan], refused: &Refused) -> Result<()> {
    if let Some((name, e)) = refused.first() {
        return Err(Error::usage(format!(
            "checking the key of {name} for the shard plan: {e}"
        ))
        .with_hint(e.hint().unwrap_or("make a new plan").to_string()));
    }
    for (plan, planned) in plans.iter().zip(&shard.plan.tables) {
        if plan.key() != planned.plan(&shard.plan.roles())?.key() {
            return Err(Error::usage(format!(
                "the key of {} does not hold in this shard's snapshots as it did in the planner's",
                plan.name
            ))
            .with_hint("hold one snapshot for the plan and its shards (pgsalvage snapshot hold), or make a new plan"));
        }
    }
    Ok(())
}

/// `--checkpoint`: the directory, bound to this comparison.
fn open_checkpoint(
    settings: &VerifySettings,
    sources: &[Source],
    plans: &[TablePlan],
) -> Result<Option<Checkpoint>> {
    let Some(dir) = &settings.checkpoint else {
        return Ok(None);
    };
    let hash = compare_hash(settings, sources, plans);
    if let Some(shard) = settings
        .shard
        .as_ref()
        .filter(|s| s.plan.compare_hash != hash)
    {
        return Err(Error::usage(format!(
            "this shard's comparison is not the plan's: the plan compares {} ({}), this run {} ({})",
            shard.plan.sources.iter().map(|(r, c)| format!("{r} {c}")).collect::<Vec<_>>().join(", "),
            shard.plan.filter,
            sources.iter().map(|s| format!("{} {}", s.role, s.info)).collect::<Vec<_>>().join(", "),
            settings.filter.describe(),
        ))
        .with_hint("give every shard the sources, --key and scope flags the plan was made with"));
    }
    Checkpoint::open(dir, hash).map(Some)
}

/// The identity of a comparison: its sources, scope and every table's plan (`Checkpoint::hash_of`).
pub fn compare_hash(settings: &VerifySettings, sources: &[Source], plans: &[TablePlan]) -> String {
    let described: Vec<String> = sources
        .iter()
        .map(|s| format!("{} {}", s.role, s.info))
        .chain(std::iter::once(settings.filter.describe()))
        .collect();
    Checkpoint::hash_of(&described, plans)
}

/// The tables cut as the checkpoint's first run cut them.
fn resumed_cut(checkpoint: &Checkpoint, plans: Vec<TablePlan>) -> Result<Vec<TableRun>> {
    plans
        .into_iter()
        .map(|plan| {
            let (ranges, tree_bits) = checkpoint.cut_of(&plan).ok_or_else(|| {
                Error::usage(format!("{} is not in the checkpoint", plan.name))
                    .with_hint("remove the checkpoint directory to start afresh")
            })?;
            Ok(TableRun {
                plan,
                ranges,
                tree_bits,
                restore_mask: None,
                changed_after: None,
                narrow: None,
            })
        })
        .collect()
}

/// Labels what earlier runs read, and removes the checkpoint once everything is verified.
fn close_checkpoint(c: &Checkpoint, report: &mut VerifyReport, resumed: usize) -> Result<()> {
    if resumed > 0 {
        report.resumed = Some(report::Resumed {
            ranges: resumed,
            earlier_runs: c.earlier_runs().to_vec(),
        });
    }
    c.finish(report.verdict != report::Verdict::Incomplete)?;
    Ok(())
}

/// Runs `jobs` workers over the queue of units until it is empty.
async fn run_workers(
    ctx: RunContext,
    jobs: usize,
) -> Result<(Vec<TableTally>, Vec<Source>, Vec<TableRun>)> {
    let ctx = Arc::new(ctx);
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| tokio::spawn(worker(ctx.clone())))
        .collect();
    for w in workers {
        w.await
            .map_err(|e| Error::internal(format!("a worker panicked: {e}")))?;
    }
    let ctx = Arc::into_inner(ctx).ok_or_else(|| Error::internal("workers still hold the run"))?;
    Ok(ctx.into_parts())
}

async fn read_catalog(source: &Source) -> Result<Vec<TableShape>> {
    catalog::read_tables(source.client())
        .await
        .map_err(|e| e.context(format!("reading the catalog of {}", source.role)))
}

/// Tables that cannot be compared, with why.
pub type Refused = Vec<(TableName, Error)>;

/// Reconciles every selected table; tables that cannot be compared are returned apart with why.
fn plan_tables(
    settings: &VerifySettings,
    roles: &[Role],
    catalogs: &[Vec<TableShape>],
) -> Result<(Vec<TablePlan>, Refused)> {
    let names: BTreeSet<&TableName> = catalogs
        .iter()
        .flatten()
        .map(|t| &t.name)
        .filter(|n| settings.filter.accepts(n))
        .collect();
    for wanted in settings.filter.tables.iter().flatten() {
        if !names.contains(wanted) {
            let sides = roles
                .iter()
                .map(Role::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(Error::usage(format!("table {wanted} not found on {sides}"))
                .with_hint("check the name (schema.table); list tables with psql's \\dt"));
        }
    }
    if names.is_empty() {
        let sides = roles.iter().map(Role::to_string).collect::<Vec<_>>();
        return Err(settings.filter.matched_nothing(&sides.join(" or ")));
    }
    let (mut plans, mut refused) = (Vec::new(), Vec::new());
    for name in names {
        let shapes: Vec<Option<&TableShape>> = catalogs
            .iter()
            .map(|c| c.iter().find(|t| &t.name == name))
            .collect();
        let key = settings.keys.get(name).map(Vec::as_slice);
        match narrowed(settings.filter.narrowing(name), name, roles, &shapes, key) {
            Ok(plan) => plans.push(plan),
            Err(e) => refused.push((name.clone(), e)),
        }
    }
    Ok((plans, refused))
}

/// Sizes and samples the large tables and cuts every table into ranges, each in a short visit of
/// the source that samples it. A table that cannot be sampled (its lock does not come within
/// `--lock-wait`) is read as one range, and said so.
pub async fn plan_ranges(
    sources: &[Source],
    plans: Vec<TablePlan>,
    jobs: usize,
    patience: &Patience<'_>,
) -> Result<Vec<TableRun>> {
    let mut planners: Vec<_> = sources
        .iter()
        .map(|s| sample::Planner::new(s, jobs))
        .collect();
    let mut runs = Vec::with_capacity(plans.len());
    for mut plan in plans {
        let sampler = plan
            .codecs
            .iter()
            .position(Option::is_some)
            .expect("a table has a source");
        let ranges = match planners[sampler].cut(&plan, patience).await {
            Ok((ranges, est_rows)) => {
                plan.est_rows = est_rows;
                ranges
            }
            Err(e) => {
                patience.reporter.message(&format!(
                    "{}: read as one key range, since it could not be sampled on {}: {e}",
                    plan.name, sources[sampler].role
                ));
                crate::key::range::plan(Vec::new())
            }
        };
        runs.push(TableRun {
            tree_bits: crate::plan::tree_bits_for(plan.est_rows),
            plan,
            ranges,
            restore_mask: None,
            changed_after: None,
            narrow: None,
        });
    }
    Ok(runs)
}

impl RunContext {
    fn new(
        settings: &VerifySettings,
        roles: Vec<Role>,
        sources: Vec<Source>,
        tables: Vec<TableRun>,
        findings: mpsc::Sender<Vec<Finding>>,
        reporter: Arc<dyn Reporter>,
    ) -> Self {
        let batch_bytes = batch_bytes(settings.batch_bytes, settings.jobs * roles.len());
        // Recover runs: findings carry what restoring their key takes.
        let capture = settings.restore.as_ref().map(|r| CaptureSpec {
            no_delete: r.no_delete,
            delete_new_on_target: r.delete_new_on_target,
            on_conflict: r.on_conflict,
            source: if roles.len() == 3 { 1 } else { 0 },
            keep_all: false,
        });
        let n = roles.len();
        let tallies = tables
            .iter()
            .map(|t| TableTally::new(t.plan.columns.len(), n, t.tree_bits, t.ranges.len()))
            .collect();
        let mut order: Vec<usize> = (0..tables.len()).collect();
        order.sort_by_key(|&t| std::cmp::Reverse(tables[t].plan.est_rows));
        let queue = order
            .iter()
            .flat_map(|&t| (0..tables[t].ranges.len()).map(move |r| (t, r)))
            .collect();
        RunContext {
            roles,
            sources,
            tables,
            batch_bytes,
            keyless_window: settings.keyless_window,
            capture,
            findings,
            reporter,
            gate: Gate::open_always(),
            lock_wait: settings.live.lock_wait,
            checkpoint: None,
            show_values: settings.show_values > 0,
            tallies: Mutex::new(tallies),
            queue: Mutex::new(queue),
        }
    }

    /// Whether a range's findings are kept for its checkpoint file.
    pub(crate) fn keeps_findings(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Takes the ranges an earlier run finished out of the queue and into the tallies and the
    /// findings, as if just read; returns how many.
    async fn replay(&self) -> Result<usize> {
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(0);
        };
        let units: Vec<(usize, usize)> = self.queue.lock().expect("queue lock").drain(..).collect();
        let (mut left, mut resumed) = (VecDeque::new(), 0);
        for (t, r) in units {
            let plan = &self.tables[t].plan;
            match off_runtime(|| checkpoint.load(t, r, plan))? {
                Some(saved) => {
                    self.tallies.lock().expect("tally lock")[t].ranges_resumed += 1;
                    self.end_unit(t, r, Ok(saved.tally));
                    if !saved.findings.is_empty() {
                        let _ = self.findings.send(saved.findings).await;
                    }
                    resumed += 1;
                }
                None => left.push_back((t, r)),
            }
        }
        *self.queue.lock().expect("queue lock") = left;
        Ok(resumed)
    }

    /// A shard's run: only these units are read (the others stay unread in the tallies).
    fn keep_only(&mut self, units: &[(usize, usize)]) {
        let queue = self.queue.get_mut().expect("queue lock");
        queue.retain(|u| units.contains(u));
    }

    fn next_unit(&self) -> Option<(usize, usize)> {
        self.queue.lock().expect("queue lock").pop_front()
    }

    fn begin_unit(&self, table: usize) {
        let first = self.tallies.lock().expect("tally lock")[table].start();
        if first {
            let t = &self.tables[table];
            self.reporter
                .table_started(table, &t.plan.name, t.plan.est_rows);
        }
    }

    fn end_unit(&self, table: usize, index: usize, outcome: Result<RangeTally>) {
        let mut tallies = self.tallies.lock().expect("tally lock");
        let tally = &mut tallies[table];
        match outcome {
            Ok(range) => tally.add_range_at(index, range),
            Err(e) => {
                self.reporter.message(&e.to_string());
                tally.add_error(e.to_string());
            }
        }
        if tally.finished() {
            let done = TableDone {
                rows: tally.rows.iter().copied().max().unwrap_or(0),
                differences: tally.classes.actionable(),
                failed: !tally.complete(),
            };
            self.reporter.table_finished(table, &done);
        }
    }

    fn into_parts(self) -> (Vec<TableTally>, Vec<Source>, Vec<TableRun>) {
        (
            self.tallies.into_inner().expect("tally lock"),
            self.sources,
            self.tables,
        )
    }
}

/// Takes units until the queue is empty; reconnects after a failed unit.
async fn worker(ctx: Arc<RunContext>) {
    let mut clients = match open_sessions(&ctx).await {
        Ok(c) => c,
        Err(e) => {
            return ctx
                .reporter
                .message(&format!("a worker could not start: {e}"))
        }
    };
    while !crate::interrupt::requested() {
        let Some((table, range)) = ctx.next_unit() else {
            break;
        };
        ctx.begin_unit(table);
        ctx.gate.pass(&*ctx.reporter).await;
        let outcome = read_unit(&ctx, &clients, table, range).await;
        let failed = outcome.is_err();
        ctx.end_unit(table, range, outcome);
        if failed {
            clients = match open_sessions(&ctx).await {
                Ok(c) => c,
                Err(e) => return ctx.reporter.message(&format!("a worker stopped: {e}")),
            };
        }
    }
}

/// One unit in one visit per source that has the table: locked only while it streams.
async fn read_unit(
    ctx: &RunContext,
    clients: &[Session],
    table: usize,
    index: usize,
) -> Result<RangeTally> {
    let plan = &ctx.tables[table].plan;
    let range = &ctx.tables[table].ranges[index];
    let stops: Vec<_> = ctx
        .sources
        .iter()
        .zip(clients)
        .zip(&plan.codecs)
        .filter(|(_, codec)| codec.is_some())
        .map(|((source, session), _)| source.stop(session))
        .collect();
    let patience = Patience {
        lock_wait: ctx.lock_wait,
        reporter: &*ctx.reporter,
    };
    visit::enter_all(&stops, &plan.name, &format!(", range {range}"), &patience).await?;
    let (tally, found) = match plan.keyless() {
        true => keyless::diff_table(ctx, clients, table).await?,
        false => range_diff::diff_range(ctx, clients, table, range).await?,
    };
    visit::leave_all(&stops)
        .await
        .map_err(|e| e.context(format!("ending the read of {} range {range}", plan.name)))?;
    if let Some(c) = &ctx.checkpoint {
        off_runtime(|| c.save(table, index, &tally, &found))?;
    }
    Ok(tally)
}

async fn open_sessions(ctx: &RunContext) -> Result<Vec<Session>> {
    try_join_all(ctx.sources.iter().map(Source::worker)).await
}
