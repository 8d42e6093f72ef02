//! Comparing with a baseline: baseline ↔ database, or baseline ↔ baseline, into a verify report.
//!
//! Each side is either a loaded, checked [`Baseline`] or a live [`Source`] on its snapshot. Per
//! table the shapes are reconciled with the baseline as reference (its columns, its key), and the
//! table is compared only if the other side still has every column the baseline digested, with a
//! comparable type; otherwise the schema change is the finding. A live side is reduced to leaves
//! by `pipeline::capture` with the baseline's leaf size, so both sides' leaves line up; equal
//! roots end the table, otherwise `tree::leaves::diff` names the key spans that differ. When both
//! sides hold row digests (a `--rows` baseline, or a database, which can always be read again in
//! its snapshot), the rows of just those spans are merged by key into exact missing, extra and
//! divergent findings: an unchanged table costs one pass over the live side, two unchanged
//! baselines cost reading two small leaf files.
//!
//! The report's `timings` phases are `loading baselines and exporting snapshots` (each
//! baseline's files checked against their digests), `reading catalogs`, `planning key ranges`
//! (only with a database side), `comparing rows` and `reporting`, as verify's are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use std::pin::Pin;

use futures_util::future::try_join_all;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::files::{read_leaves, unframe_key, KeyedRow, StoredRows};
use super::manifest::{root_of, Baseline, TableEntry};
use crate::baseline::capture::{capture, span_rows, CaptureTable, CaptureWork, Captured};
use crate::classify::{two_way, Class, Finding};
use crate::error::{Error, Result};
use crate::key::range::KeyRange;
use crate::pipeline::findings;
use crate::plan::{narrowed, SchemaDiff, TablePlan};
use crate::pool::on_pool;
use crate::progress::Reporter;
use crate::report::listing::Layout;
use crate::report::{
    self, ErrorOut, RangeCounts, SpanOut, SpansOut, TableReport, TableStatus, VerifyReport,
};
use crate::settings::VerifySettings;
use crate::shape::{TableName, TableShape};
use crate::source::sample::bound_of_fields;
use crate::source::{catalog, Role, SnapshotInfo, Source};
use crate::tree::leaves::{diff, total, Anchor, Leaf, SpanDiff};
use crate::tree::Fingerprint;

/// Rows of differing spans read per merge step (bounds memory), and spans per statement (saves
/// round trips; each is one index range scan).
const GROUP_ROWS: u64 = 50_000;
const GROUP_SPANS: usize = 64;

/// One side of the comparison. There are two per run, so their size does not matter.
#[allow(clippy::large_enum_variant)]
enum Side {
    Stored(Baseline),
    Live(Source),
}

impl Side {
    fn shapes(&self) -> Vec<TableShape> {
        match self {
            Side::Stored(b) => b.manifest.tables.iter().map(|t| t.shape.clone()).collect(),
            Side::Live(_) => Vec::new(),
        }
    }

    fn entry(&self, name: &TableName) -> Option<&TableEntry> {
        match self {
            Side::Stored(b) => b.manifest.table(name),
            Side::Live(_) => None,
        }
    }

    fn snapshot(&self) -> SnapshotInfo {
        match self {
            Side::Stored(b) => {
                let mut info = b.manifest.source.clone();
                info.connection = format!("baseline {} of {}", b.dir.display(), info.connection);
                info
            }
            Side::Live(s) => s.snapshot.clone(),
        }
    }
}

/// A table that can be compared: its plan (the reference side first), and where each role's
/// leaves come from.
struct Compared {
    plan: Arc<TablePlan>,
    /// For [base, target]: the index of that side in the plan's codecs.
    codec: [usize; 2],
    leaves: [Option<Vec<Leaf>>; 2],
    elapsed_ms: u64,
    error: Option<Error>,
}

/// Runs a comparison in which one or both sides are baselines.
pub async fn run(settings: &VerifySettings, reporter: Arc<dyn Reporter>) -> Result<VerifyReport> {
    let started = Instant::now();
    crate::log::phase("loading baselines and exporting snapshots");
    let sides = open_sides(settings).await?;
    crate::log::phase("reading catalogs");
    let catalogs = read_catalogs(&sides).await?;
    let (names, outside) = table_names(settings, &sides, &catalogs)?;
    let roles = [Role::Base, Role::Target];
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut compared: Vec<Compared> = Vec::new();
    for name in &names {
        let shapes: Vec<Option<&TableShape>> = catalogs
            .iter()
            .map(|c| c.iter().find(|t| &t.name == name))
            .collect();
        match plan_table(settings, &sides, name, &shapes) {
            Ok(Planned::Compare(c)) => compared.push(*c),
            Ok(Planned::Report(r)) => reports.push(*r),
            Err(e) => {
                errors.push(error_out(name, &e));
                reports.push(report::refused_report(name, &e));
            }
        }
    }
    let (tx, rx) = mpsc::channel(64);
    let layout = Layout::new(
        compared
            .iter()
            .map(|c| (c.plan.name.to_string(), c.plan.columns.clone()))
            .collect(),
    );
    let collector = findings::spawn(rx, layout, settings.clone());
    reports.extend(compare_all(settings, &sides, compared, reporter, &tx).await);
    crate::log::phase("reporting");
    drop(tx);
    let listed = collector
        .await
        .map_err(|e| Error::internal(format!("findings collector: {e}")))??;
    let sources = roles
        .iter()
        .copied()
        .zip(sides.iter().map(Side::snapshot))
        .collect();
    let findings = report::findings_out(&listed, &[]);
    let mut report = report::assemble(
        sources,
        reports,
        errors,
        findings,
        listed.truncated,
        started,
    );
    report.scope = settings.filter.scope();
    report.scope.outside_baseline = outside.iter().map(ToString::to_string).collect();
    Ok(report)
}

fn error_out(name: &TableName, e: &Error) -> ErrorOut {
    ErrorOut {
        table: Some(name.to_string()),
        message: e.to_string(),
        hint: e.hint().map(str::to_string),
    }
}

/// [base, target], each a baseline or a database.
async fn open_sides(settings: &VerifySettings) -> Result<Vec<Side>> {
    let mut sides = Vec::new();
    for role in [Role::Base, Role::Target] {
        if let Some((_, dir)) = settings.baselines.iter().find(|(r, _)| *r == role) {
            // Checking every file's digest is CPU work: it runs on the pool.
            let dir = dir.clone();
            let baseline = on_pool(move || Baseline::load(&dir))
                .await
                .map_err(|_| Error::internal("the pool dropped a job"))?
                .map_err(|e| e.context(format!("--{role}")))?;
            sides.push(Side::Stored(baseline));
        } else {
            let (_, info) = settings
                .sources
                .iter()
                .find(|(r, _)| *r == role)
                .ok_or_else(|| Error::usage(format!("no {role} given")))?;
            sides.push(Side::Live(Source::open(role, info.clone()).await?));
        }
    }
    Ok(sides)
}

async fn read_catalogs(sides: &[Side]) -> Result<Vec<Vec<TableShape>>> {
    try_join_all(sides.iter().map(|side| async move {
        match side {
            Side::Stored(_) => Ok(side.shapes()),
            Side::Live(s) => catalog::read_tables(s.client())
                .await
                .map_err(|e| e.context(format!("reading the catalog of {}", s.role))),
        }
    }))
    .await
}

/// The tables to compare, and those left out as outside a partial baseline's scope: against a
/// baseline taken of some tables (its manifest records the filter), only the tables it holds are
/// compared, unless `--all-tables`.
fn table_names(
    settings: &VerifySettings,
    sides: &[Side],
    catalogs: &[Vec<TableShape>],
) -> Result<(Vec<TableName>, Vec<TableName>)> {
    let mut names: BTreeSet<TableName> = catalogs
        .iter()
        .flatten()
        .map(|t| t.name.clone())
        .filter(|n| settings.filter.accepts(n))
        .collect();
    let partial = sides.iter().filter_map(|s| match s {
        Side::Stored(b) if b.manifest.scope.is_some() => Some(b),
        _ => None,
    });
    let mut outside = BTreeSet::new();
    for baseline in partial.filter(|_| !settings.filter.all_tables) {
        let (held, left): (BTreeSet<_>, BTreeSet<_>) = names
            .into_iter()
            .partition(|n| baseline.manifest.table(n).is_some());
        names = held;
        outside.extend(left);
    }
    for wanted in settings.filter.tables.iter().flatten() {
        if !names.contains(wanted) {
            return Err(Error::usage(format!("table {wanted} not found on base or target"))
                .with_hint("check the name (schema.table); `pgsalvage baseline inspect DIR` lists a baseline's tables"));
        }
    }
    Ok((names.into_iter().collect(), outside.into_iter().collect()))
}

enum Planned {
    Compare(Box<Compared>),
    /// Settled without reading rows (a schema change, a table on one side only).
    Report(Box<TableReport>),
}

/// Reconciles one table with a baseline as the reference and decides whether its rows compare.
fn plan_table(
    settings: &VerifySettings,
    sides: &[Side],
    name: &TableName,
    shapes: &[Option<&TableShape>],
) -> Result<Planned> {
    // The reference is a baseline holding the table: its columns and key are what was digested.
    let reference = (0..2)
        .find(|&i| sides[i].entry(name).is_some())
        .unwrap_or(usize::from(shapes[0].is_none()));
    let order = [reference, 1 - reference];
    let roles = [Role::Base, Role::Target];
    let key = sides[reference]
        .entry(name)
        .map(|e| e.key.clone())
        .or_else(|| settings.keys.get(name).cloned());
    let plan = narrowed(
        settings.filter.narrowing(name),
        name,
        &order.map(|i| roles[i]),
        &order.map(|i| shapes[i]),
        key.as_deref(),
    )?;
    // Where each role's codec sits in the plan, whose sources are in `order`.
    let codec = [usize::from(reference != 0), usize::from(reference != 1)];
    let unchanged_columns = sides
        .iter()
        .filter_map(|side| side.entry(name))
        .all(|entry| entry.columns == plan.columns);
    if shapes.iter().any(Option::is_none) || !unchanged_columns {
        return Ok(Planned::Report(Box::new(schema_report(sides, name, &plan))));
    }
    Ok(Planned::Compare(Box::new(Compared {
        plan: Arc::new(plan),
        codec,
        leaves: [None, None],
        elapsed_ms: 0,
        error: None,
    })))
}

/// A table whose rows cannot be compared with the baseline: a table dropped or added, or
/// digested columns dropped or retyped since.
fn schema_report(sides: &[Side], name: &TableName, plan: &TablePlan) -> TableReport {
    let mut report = report::blank_report(name, TableStatus::Differences);
    report.schema_differences = plan.schema_diffs.clone();
    for (i, side) in sides.iter().enumerate() {
        let role = [Role::Base, Role::Target][i];
        if let Some(entry) = side.entry(name) {
            report.rows.insert(role, entry.rows);
            report.roots.insert(role, entry.root.clone());
            if entry.columns != plan.columns && plan.schema_diffs.is_empty() {
                report.schema_differences.push(SchemaDiff {
                    kind: "columns_changed",
                    source: [Role::Target, Role::Base][i],
                    column: None,
                    expected: entry.columns.join(", "),
                    found: plan.columns.join(", "),
                });
            }
        }
    }
    report.key = plan.key_columns.iter().map(|c| c.name.clone()).collect();
    report
}

/// Compares every table: two baselines table by table; a baseline and a database as the
/// database's tables come out of one parallel capture, so that only the tables in flight are in
/// memory.
async fn compare_all(
    settings: &VerifySettings,
    sides: &[Side],
    compared: Vec<Compared>,
    reporter: Arc<dyn Reporter>,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> Vec<TableReport> {
    let live = sides.iter().enumerate().find_map(|(role, s)| match s {
        Side::Live(source) => Some((role, source)),
        Side::Stored(_) => None,
    });
    let Some(live) = live else {
        crate::log::phase("comparing rows");
        return compare_stored(settings, sides, compared, findings).await;
    };
    crate::log::phase("planning key ranges");
    let (captures, mut reports) =
        plan_captures(settings, sides, live, compared, &*reporter, findings).await;
    crate::log::phase("comparing rows");
    reports.extend(compare_captured(settings, sides, live, captures, reporter, findings).await);
    reports
}

/// Two baselines: table after table, from their leaf files.
async fn compare_stored(
    settings: &VerifySettings,
    sides: &[Side],
    compared: Vec<Compared>,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> Vec<TableReport> {
    let mut reports = Vec::new();
    for (i, mut c) in compared.into_iter().enumerate() {
        read_stored_leaves(sides, &mut c);
        reports.push(compare_table(settings, sides, i, c, findings).await);
    }
    reports
}

/// The tables of the live side to capture, with the baseline's leaf size.
struct Captures {
    tables: Vec<CaptureTable>,
    /// By capture index: the table's index and state, until its capture comes back.
    waiting: Vec<Option<(usize, Compared)>>,
}

/// Plans the ranges of each table to capture; a table whose ranges cannot be planned is reported
/// (as an error) at once.
async fn plan_captures(
    settings: &VerifySettings,
    sides: &[Side],
    (live_role, source): (usize, &Source),
    compared: Vec<Compared>,
    reporter: &dyn Reporter,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> (Captures, Vec<TableReport>) {
    let mut reports = Vec::new();
    let mut tables = Vec::new();
    let mut waiting = Vec::new();
    let mut planner = crate::source::sample::Planner::new(source, settings.jobs);
    let mut keys = crate::source::key_check::KeyCheck::new(source);
    let patience = crate::source::visit::Patience {
        lock_wait: settings.live.lock_wait,
        reporter,
    };
    for (i, mut c) in compared.into_iter().enumerate() {
        // The baseline's key must hold in the live side's rows too (one it does not vouch for
        // by an index is looked for in its snapshot).
        let live = c.codec[live_role];
        let cut = match keys.require(&c.plan, live, &patience).await {
            Ok(()) => planner.cut(&c.plan, &patience).await,
            Err(e) => Err(e),
        };
        match cut {
            Ok((ranges, _)) => {
                let shift = sides[1 - live_role]
                    .entry(&c.plan.name)
                    .expect("a stored side")
                    .leaf_shift;
                tables.push(CaptureTable {
                    plan: c.plan.clone(),
                    codec: c.codec[live_role],
                    ranges,
                    leaf_shift: shift,
                    rows: None,
                });
                waiting.push(Some((i, c)));
            }
            Err(e) => {
                c.error = Some(e);
                reports.push(compare_table(settings, sides, i, c, findings).await);
            }
        }
    }
    (Captures { tables, waiting }, reports)
}

/// Captures the live side's tables in parallel and compares each as its capture finishes.
async fn compare_captured(
    settings: &VerifySettings,
    sides: &[Side],
    (live_role, source): (usize, &Source),
    captures: Captures,
    reporter: Arc<dyn Reporter>,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> Vec<TableReport> {
    let Captures { tables, waiting } = captures;
    let (done, finished) = mpsc::unbounded_channel();
    let epochs = crate::baseline::epochs::Epochs::fixed(source);
    let work = CaptureWork {
        jobs: settings.jobs,
        batch_bytes: settings.batch_bytes,
        live: &settings.live,
        epochs: &epochs,
    };
    let capturing = capture(source, &tables, work, reporter, done);
    let comparing = compare_finished(settings, sides, live_role, waiting, finished, findings);
    let ((), compared) = tokio::join!(capturing, comparing);
    compared
}

/// Compares each captured table with its baseline side, in the order the captures finish.
async fn compare_finished(
    settings: &VerifySettings,
    sides: &[Side],
    live_role: usize,
    mut waiting: Vec<Option<(usize, Compared)>>,
    mut finished: mpsc::UnboundedReceiver<(usize, Captured)>,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> Vec<TableReport> {
    let mut out = Vec::new();
    while let Some((k, got)) = finished.recv().await {
        let (i, mut c) = waiting[k].take().expect("each table is captured once");
        read_stored_leaves(sides, &mut c);
        c.elapsed_ms = got.elapsed.as_millis() as u64;
        match got.error {
            Some(e) => c.error = Some(e),
            None => c.leaves[live_role] = Some(got.leaves),
        }
        out.push(compare_table(settings, sides, i, c, findings).await);
    }
    out
}

/// The leaves of a table's baseline side(s).
fn read_stored_leaves(sides: &[Side], c: &mut Compared) {
    for (role, side) in sides.iter().enumerate() {
        if let Side::Stored(b) = side {
            let entry = b.manifest.table(&c.plan.name).expect("planned");
            match read_leaves(&b.dir.join(&entry.leaves_file)) {
                Ok(leaves) => c.leaves[role] = Some(leaves),
                Err(e) => c.error = Some(e),
            }
        }
    }
}

/// Compares one table's leaves, then its rows where spans differ and rows are at hand.
async fn compare_table(
    settings: &VerifySettings,
    sides: &[Side],
    index: usize,
    c: Compared,
    findings: &mpsc::Sender<Vec<Finding>>,
) -> TableReport {
    let mut report = base_report(&c);
    let (Some(base), Some(target), None) = (&c.leaves[0], &c.leaves[1], &c.error) else {
        return failed_report(report, &c);
    };
    let totals = [total(base), total(target)];
    record_totals(&mut report, &totals, c.elapsed_ms);
    let spans = if totals[0] == totals[1] {
        Vec::new()
    } else {
        diff(base, target)
    };
    // A keyless table's spans are digest ranges: rows are not read back by key.
    let exact = !c.plan.keyless()
        && sides.iter().all(|s| match s {
            Side::Stored(b) => b.manifest.rows,
            Side::Live(_) => true,
        });
    report.spans = Some(spans_out(&c.plan, &spans, exact, settings.max_findings));
    if !spans.is_empty() && exact {
        match exact_rows(settings, sides, index, &c, &spans, findings).await {
            Ok(counts) => record_counts(&mut report, counts),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let differs = !spans.is_empty() || !report.schema_differences.is_empty();
    report.status = match (report.errors.is_empty(), differs) {
        (false, _) => TableStatus::Error,
        (true, true) => TableStatus::Differences,
        (true, false) => TableStatus::Identical,
    };
    report
}

/// A table whose leaves are not both at hand: its error, or `not compared`.
fn failed_report(mut report: TableReport, c: &Compared) -> TableReport {
    report.status = TableStatus::Error;
    let e = c
        .error
        .as_ref()
        .map_or("not compared".to_string(), Error::to_string);
    report.errors.push(e);
    report
}

/// Each side's row count and root, and the reading rate.
fn record_totals(report: &mut TableReport, totals: &[Fingerprint; 2], elapsed_ms: u64) {
    for (i, role) in [Role::Base, Role::Target].into_iter().enumerate() {
        report.rows.insert(role, totals[i].count);
        report.roots.insert(role, root_of(&totals[i]));
    }
    // The rows of the side that was read (a database); a baseline's leaves cost no reading.
    let read = totals[0].count.max(totals[1].count);
    report.rows_per_sec = (read * 1000).checked_div(elapsed_ms).unwrap_or(0);
}

/// The exact row counts: [missing, extra, divergent], each class listed when it has rows.
fn record_counts(report: &mut TableReport, counts: [u64; 3]) {
    report.missing = counts[0];
    report.extra = counts[1];
    report.divergent = counts[2];
    for (class, n) in [Class::Missing, Class::Extra, Class::Divergent]
        .iter()
        .zip(counts)
    {
        if n > 0 {
            report.classes.insert(class.as_str(), n);
        }
    }
}

fn base_report(c: &Compared) -> TableReport {
    let mut report = report::blank_report(&c.plan.name, TableStatus::Identical);
    report.key = c.plan.key_columns.iter().map(|k| k.name.clone()).collect();
    report.keyless = c.plan.keyless();
    report.columns_compared = c.plan.columns.clone();
    report.schema_differences = c.plan.schema_diffs.clone();
    report.elapsed_ms = c.elapsed_ms;
    report.ranges = RangeCounts {
        planned: 1,
        verified: usize::from(c.error.is_none()),
        resumed: 0,
    };
    report
}

fn spans_out(plan: &TablePlan, spans: &[SpanDiff<'_>], exact: bool, cap: usize) -> SpansOut {
    let kinds: Vec<_> = plan.key_columns.iter().map(|k| k.kind.clone()).collect();
    let json = |a: Option<&Anchor>| {
        a.and_then(|a| super::files::key_json(&kinds, a.payload()).ok())
            .and_then(|k| RawValue::from_string(k).ok())
    };
    SpansOut {
        count: spans.len() as u64,
        exact_keys: exact,
        listed: spans
            .iter()
            .take(cap)
            .map(|s| SpanOut {
                from: json(s.from),
                to: json(s.to),
                rows: BTreeMap::from([(Role::Base, s.a.count), (Role::Target, s.b.count)]),
            })
            .collect(),
        truncated: spans.len() > cap,
    }
}

/// Merges both sides' rows inside the differing spans; returns [missing, extra, divergent].
async fn exact_rows(
    settings: &VerifySettings,
    sides: &[Side],
    index: usize,
    c: &Compared,
    spans: &[SpanDiff<'_>],
    findings: &mpsc::Sender<Vec<Finding>>,
) -> Result<[u64; 3]> {
    let groups = groups(&c.plan, spans)?;
    let mut sessions = Vec::new();
    if let Some(Side::Live(source)) = sides.iter().find(|s| matches!(s, Side::Live(_))) {
        let n = settings.jobs.clamp(1, groups.len().max(1));
        sessions =
            try_join_all((0..n).map(|_| source.snapshot_session(settings.live.lock_wait))).await?;
    }
    let mut streams = sides.iter().enumerate().map(|(role, side)| match side {
        Side::Stored(b) => {
            let entry = b.manifest.table(&c.plan.name).expect("planned");
            stored_rows(StoredRows::new(&b.dir, &entry.row_parts), &groups)
        }
        Side::Live(_) => live_rows(
            &sessions,
            &c.plan,
            c.codec[role],
            &groups,
            settings.batch_bytes,
        ),
    });
    let (base, target) = (
        streams.next().expect("base"),
        streams.next().expect("target"),
    );
    let mut pairs = base.zip(target);
    let mut counts = [0u64; 3];
    while let Some((base, target)) = pairs.next().await {
        let found = merge_rows(index, &base?, &target?, &mut counts);
        if !found.is_empty() {
            let _ = findings.send(found).await;
        }
    }
    Ok(counts)
}

/// One side's rows of each group of spans, in group order.
type GroupRows<'a> = Pin<Box<dyn Stream<Item = Result<Vec<KeyedRow>>> + Send + 'a>>;

/// A baseline's rows, group after group, read forward on the pool.
fn stored_rows(reader: StoredRows, groups: &[Vec<KeyRange>]) -> GroupRows<'_> {
    let steps = stream::unfold((Some(Box::new(reader)), 0), move |(reader, g)| async move {
        let mut reader = reader?;
        let ranges = groups.get(g)?.clone();
        // Decoding Parquet is CPU work: the reader goes to the pool and comes back.
        let back = on_pool(move || {
            let out = ranges
                .iter()
                .map(|r| reader.take(r))
                .collect::<Result<Vec<_>>>()
                .map(|v| v.concat());
            (reader, out)
        })
        .await;
        match back {
            Ok((reader, out)) => Some((out, (Some(reader), g + 1))),
            Err(_) => Some((
                Err(Error::internal("the pool dropped a job")),
                (None, g + 1),
            )),
        }
    });
    Box::pin(steps)
}

/// A database's rows, several groups in flight at once on `sessions` (all in the snapshot),
/// delivered in group order.
fn live_rows<'a>(
    sessions: &'a [crate::source::Session],
    plan: &'a TablePlan,
    codec: usize,
    groups: &'a [Vec<KeyRange>],
    batch_bytes: usize,
) -> GroupRows<'a> {
    let fetches = stream::iter(groups.iter().enumerate())
        .map(move |(g, ranges)| {
            let client = &sessions[g % sessions.len()];
            span_rows(client, plan, codec, ranges, batch_bytes)
        })
        .buffered(sessions.len());
    Box::pin(fetches)
}

/// Differing spans as key ranges, in groups of at most `GROUP_SPANS` spans and about
/// `GROUP_ROWS` rows, in key order.
fn groups(plan: &TablePlan, spans: &[SpanDiff<'_>]) -> Result<Vec<Vec<KeyRange>>> {
    let bound = |a: Option<&Anchor>| -> Result<Option<Arc<crate::key::range::KeyBound>>> {
        a.map(|a| {
            let fields = unframe_key(a.payload())?;
            bound_of_fields(plan, &fields).map(Arc::new)
        })
        .transpose()
    };
    let mut out: Vec<Vec<KeyRange>> = Vec::new();
    let mut rows = 0;
    for span in spans {
        let n = span.a.count.max(span.b.count);
        let full = out
            .last()
            .is_none_or(|g| g.len() >= GROUP_SPANS || rows + n > GROUP_ROWS);
        if full {
            out.push(Vec::new());
            rows = 0;
        }
        rows += n;
        out.last_mut().expect("a group").push(KeyRange {
            lo: bound(span.from)?,
            hi: bound(span.to)?,
        });
    }
    Ok(out)
}

/// Two key-ordered row lists → findings (rows equal on both sides are passed over).
fn merge_rows(
    table: usize,
    base: &[KeyedRow],
    target: &[KeyedRow],
    counts: &mut [u64; 3],
) -> Vec<Finding> {
    let (mut i, mut j) = (0, 0);
    let mut found = Vec::new();
    while i < base.len() || j < target.len() {
        let order = match (base.get(i), target.get(j)) {
            (Some(b), Some(t)) => b.order_key.cmp(&t.order_key),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (b, t) = match order {
            std::cmp::Ordering::Less => (base.get(i), None),
            std::cmp::Ordering::Greater => (None, target.get(j)),
            std::cmp::Ordering::Equal => (base.get(i), target.get(j)),
        };
        i += usize::from(b.is_some());
        j += usize::from(t.is_some());
        let Some(class) = two_way(b.map(|r| &r.digest), t.map(|r| &r.digest)) else {
            continue;
        };
        counts[match class {
            Class::Missing => 0,
            Class::Extra => 1,
            _ => 2,
        }] += 1;
        let row = b.or(t).expect("a row");
        found.push(Finding {
            table,
            class,
            key: row.key.clone(),
            order_key: row.order_key.clone(),
            columns: Vec::new(),
            restore: None,
            values: None,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: u8, d: u8) -> KeyedRow {
        KeyedRow {
            order_key: vec![k],
            digest: [d; 32],
            key: format!("[{k}]"),
        }
    }

    #[test]
    fn merges_rows_into_classes() {
        let base = [row(1, 1), row(2, 2), row(4, 4)];
        let target = [row(2, 9), row(3, 3), row(4, 4)];
        let mut counts = [0; 3];
        let found = merge_rows(0, &base, &target, &mut counts);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.class.as_str(), f.key.as_str()))
            .collect();
        assert_eq!(
            got,
            [("missing", "[1]"), ("divergent", "[2]"), ("extra", "[3]")]
        );
        assert_eq!(counts, [1, 1, 1]);
    }
}
