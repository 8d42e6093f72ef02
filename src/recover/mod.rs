//! `recover`: the comparison, then the batches that put the lost and damaged rows back.
//!
//! It runs the verify pipeline in capture mode, which records for every differing key its action
//! (insert the base row, update from it, delete the extra row, or keep it under `--no-delete`),
//! the key as typed literals and the target row's digest before and after. With the sources still
//! on their snapshots, it reads just those rows again by key and writes, into a fresh directory:
//! `plan.json` (what will happen and why), `restore.sql` (one transaction, tables in foreign-key
//! order, bulk `COPY` into temporary tables), `undo.sql` (the target's current version of
//! everything the restore changes), `keys/` (the per-key records `apply` guards with) and, on
//! request, `parquet/`. Everything is written into a temporary directory beside `--out` and
//! renamed into place at the end, so a failed run leaves nothing that looks like a recovery.
//! An incomplete comparison writes nothing.
//!
//! On the same snapshots it also runs `check` against the base and writes its fix-ups around the
//! row restore (schema put back before the rows, missing parents restored, constraints validated
//! and sequences set after them; see [`fixup`]), listed in plan.json's `fixups`.

pub mod fetch;
pub mod fixup;
pub mod parquet_out;

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use tokio_postgres::Client;

use crate::classify::{Action, ConflictPolicy};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::plan::TableRun;
use crate::pool::OffRuntime;
use crate::progress::Reporter;
use crate::recovery::keys::key_file;
use crate::recovery::keys::{for_each_record, KeyChunks};
use crate::recovery::plan::{self, RecoverPlan, TableRestore, TargetBinding, PLAN_FILE};
use crate::recovery::script::Script;
use crate::report::{Verdict, VerifyReport};
use crate::role::Role;
pub use crate::settings::RecoverSettings;
use crate::settings::VerifySettings;
use crate::shape::TableName;
use crate::sql::temp_name;
use crate::staging::StagedDir;
use fetch::{copy_keys, copy_places};
use fixup::{copy_line, FixStep, Fixups, RowRestore, TableActions};

/// What a recover run produced.
pub struct RecoverOutcome {
    pub report: VerifyReport,
    pub plan: RecoverPlan,
}

/// Runs the comparison and writes the recovery directory.
pub async fn recover(
    settings: &RecoverSettings,
    reporter: Arc<dyn Reporter>,
) -> Result<RecoverOutcome> {
    let staging = StagedDir::create(&settings.out, "recover", settings.force)?;
    let mut verify = settings.verify.clone();
    let keys = staging.path().join("keys");
    verify.restore.get_or_insert_with(Default::default).keys_dir = keys.clone();
    let run = pipeline::run(&verify, reporter).await?;
    write_recovery(&verify, settings.parquet, staging, run).await
}

/// Writes the recovery of a finished comparison into `staging` and publishes it: the comparison
/// left its per-key records in `staging/keys` (a single run's collector, or a merge of shards
/// joining theirs), and its sources are still on the comparison's snapshots.
pub async fn write_recovery(
    verify: &VerifySettings,
    parquet: bool,
    staging: StagedDir,
    run: pipeline::Run,
) -> Result<RecoverOutcome> {
    let keys = staging.path().join("keys");
    refuse_unsafe(&run.report, verify)?;
    let tables = plan::restores(&run.tables, &keys)?;
    let mut plan = RecoverPlan::new(&run.report, &run.tables, tables);
    // The rows are read back in one snapshot transaction per source, opened only now: the
    // comparison held no lock between its ranges.
    let opening = run
        .sources
        .iter()
        .map(|s| s.snapshot_session(verify.live.lock_wait));
    let sessions = futures_util::future::try_join_all(opening).await?;
    let sides = Sides::of(&sessions);
    // Orphans and violations name their rows by the key the comparison used (`--key` included).
    let found = crate::check::inspect_keyed(
        sides.target,
        Some(sides.reference),
        &verify.filter,
        &verify.keys,
        1000,
    )
    .await?;
    let actions = row_actions(&run.tables, &keys, &found.report)?;
    let orphans = verify
        .restore
        .as_ref()
        .map(|r| r.orphans)
        .unwrap_or_default();
    let fixups = fixup::plan(sides.target, &found, &actions, orphans).await?;
    plan.fixups = fixups.plan.clone();
    let out = Written {
        dir: staging.path(),
        keys: &keys,
        runs: &run.tables,
        plan: &plan,
        fixups: &fixups,
        sides: &sides,
    };
    out.scripts().await?;
    if parquet {
        out.parquet().await?;
    }
    plan.target = TargetBinding::of(sides.target).await?;
    plan.target.snapshot_lsn = run
        .report
        .sources
        .get(&Role::Target)
        .map(|s| s.wal_lsn.clone())
        .unwrap_or_default();
    // Sealed last: plan.json lists every other file's size and blake3 (hashing is file work).
    let plan = crate::pool::blocking(move || {
        plan.seal(staging.path())?;
        plan.write(&staging.path().join(PLAN_FILE))?;
        staging.publish()?;
        Ok(plan)
    })
    .await?;
    Ok(RecoverOutcome {
        report: run.report,
        plan,
    })
}

/// Refuses to write a restore from an incomplete comparison, or with conflicts under
/// `--on-conflict fail`.
fn refuse_unsafe(report: &VerifyReport, verify: &VerifySettings) -> Result<()> {
    if report.verdict == Verdict::Incomplete {
        // The report is the record of what failed: write it where --json asked, and say the
        // errors here, since nothing has printed them yet.
        if let Some(path) = &verify.json {
            report.write_json(path)?;
        }
        let errors: Vec<&str> = report.errors.iter().map(|e| e.message.as_str()).collect();
        let why = match errors.is_empty() {
            true => "see the report's errors".to_string(),
            false => errors.join("; "),
        };
        return Err(Error::source(format!(
            "the comparison was incomplete, so no restore was written: {why}"
        ))
        .with_hint("fix these errors and run recover again"));
    }
    let conflicts = report.totals.classes.get("conflict").copied().unwrap_or(0);
    let policy = verify
        .restore
        .as_ref()
        .map(|r| r.on_conflict)
        .unwrap_or_default();
    if conflicts > 0 && policy == ConflictPolicy::Fail {
        return Err(Error::usage(format!(
            "{conflicts} keys are in conflict, so no restore was written (--on-conflict fail)"
        ))
        .with_hint(
            "review them in the report, then choose --on-conflict keep-target or take-replica",
        ));
    }
    Ok(())
}

/// The sessions a recovery reads rows from, all on the comparison's snapshots.
struct Sides<'a> {
    /// Where restored rows come from: the replica in a three-way run, else the base.
    source: &'a Client,
    source_index: usize,
    target: &'a Client,
    /// The reference schema of the fix-ups: the base, also in a three-way run.
    reference: &'a Client,
}

impl<'a> Sides<'a> {
    /// The sides among `sessions`, one per source in the comparison's order.
    fn of(sessions: &'a [crate::source::Session]) -> Self {
        let source_index = if sessions.len() == 3 { 1 } else { 0 };
        Sides {
            source: &sessions[source_index],
            source_index,
            target: &sessions[sessions.len() - 1],
            reference: &sessions[0],
        }
    }
}

/// What goes into the staging directory, and from where.
struct Written<'a> {
    dir: &'a Path,
    keys: &'a Path,
    runs: &'a [TableRun],
    plan: &'a RecoverPlan,
    fixups: &'a Fixups,
    sides: &'a Sides<'a>,
}

impl Written<'_> {
    /// restore.sql and undo.sql.
    async fn scripts(&self) -> Result<()> {
        for direction in [Direction::Restore, Direction::Undo] {
            let path = self.dir.join(direction.file());
            let header = self.plan.header(direction.name(), direction.about());
            let sections = sections(self.plan, direction, self.sides);
            write_script(
                &path,
                &header,
                self,
                sections,
                direction.fixups(self.fixups),
            )
            .await?;
        }
        Ok(())
    }

    /// parquet/: the rows to restore of every table, as Parquet.
    async fn parquet(&self) -> Result<()> {
        let pq = self.dir.join("parquet");
        std::fs::create_dir_all(&pq).map_err(|e| Error::io(pq.display(), e))?;
        let source = (self.sides.source, self.sides.source_index);
        for t in &self.plan.tables {
            let run = &self.runs[t.index];
            parquet_out::write_table(source, self.sides.target, run, t, self.keys, &pq).await?;
        }
        Ok(())
    }
}

/// A script file, written a MiB at a time off the async workers (see [`OffRuntime`]).
type ScriptFile = Script<BufWriter<OffRuntime<std::fs::File>>>;

fn create(path: &Path) -> Result<ScriptFile> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
    Ok(Script::new(BufWriter::with_capacity(
        1 << 20,
        OffRuntime(file),
    )))
}

fn close(script: ScriptFile, path: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = script.into_inner();
    out.flush().map_err(|e| Error::io(path.display(), e))?;
    let file = &out.get_ref().0;
    crate::pool::off_runtime(|| file.sync_all()).map_err(|e| Error::io(path.display(), e))
}

/// What the row restore does to the differing keys: every table's count of kept rows, and the
/// per-key actions of the tables where check found rows that break a rule.
fn row_actions(
    runs: &[TableRun],
    keys: &Path,
    report: &crate::check::report::CheckReport,
) -> Result<RowRestore> {
    let mut wanted: std::collections::BTreeSet<&crate::shape::TableName> =
        report.orphans.iter().map(|o| &o.table_name).collect();
    wanted.extend(report.not_validated.iter().map(|f| &f.table_name));
    wanted.extend(report.not_null.iter().map(|f| &f.table_name));
    wanted.extend(report.duplicates.iter().map(|f| &f.table_name));
    let lost = |d: &&crate::check::drift::Drift| {
        d.object == crate::check::drift::Object::Constraint
            && d.change == crate::check::drift::Change::Missing
    };
    wanted.extend(report.drift.iter().filter(lost).map(|d| &d.qualified));
    let mut out = RowRestore::default();
    for (index, run) in runs.iter().enumerate() {
        let keep_rows = wanted.contains(&run.plan.name);
        let mut t = TableActions {
            key: run.plan.columns[..run.plan.nkey].to_vec(),
            ..TableActions::default()
        };
        for_each_record(&key_file(keys, index), |r| {
            t.keeps += u64::from(r.action == Action::Keep);
            // A keyless row has no key for a fix-up to name it by.
            if keep_rows && !run.plan.keyless() {
                t.rows.insert(r.key_text, (r.action, r.columns));
            }
            Ok(())
        })?;
        out.tables.insert(run.plan.name.clone(), t);
    }
    Ok(out)
}

/// Which script is written: restore.sql puts the restore source's rows onto the target; undo.sql
/// is its exact reverse, the target's rows as they were at diff time. The two are mirror images,
/// so one description serves both.
#[derive(Clone, Copy)]
enum Direction {
    Restore,
    Undo,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Restore => "restore",
            Direction::Undo => "undo",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Direction::Restore => "restore.sql",
            Direction::Undo => "undo.sql",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Direction::Restore => "puts the lost and damaged rows back on the target",
            Direction::Undo => "reverts restore.sql: the target's rows as they were at diff time",
        }
    }

    /// The fix-up steps before and after the row sections.
    fn fixups(self, f: &Fixups) -> (&[FixStep], &[FixStep]) {
        match self {
            Direction::Restore => (&f.before_rows, &f.after_rows),
            Direction::Undo => (&f.undo_first, &f.undo_last),
        }
    }
}

/// What one section of a script does to its table after loading the rows.
enum Dml {
    /// Insert (or overwrite) the loaded rows.
    Insert { overriding: bool },
    /// Set these columns from the loaded rows.
    Update(Vec<String>),
    /// Delete the loaded keys.
    Delete,
}

/// One table section of a script: which keys, read from which source, into which statement.
struct Section<'a> {
    table: &'a TableRestore,
    comment: String,
    temp: &'static str,
    from: &'a Client,
    action: Action,
    columns: Vec<String>,
    dml: Dml,
}

/// A script's sections: rows put in and updated parents first, rows taken out children first.
fn sections<'a>(plan: &'a RecoverPlan, dir: Direction, sides: &Sides<'a>) -> Vec<Section<'a>> {
    let mut out = Vec::new();
    for t in plan.parents_first() {
        out.extend(put_in(t, dir, sides));
        out.extend(update(t, dir, sides));
    }
    for t in plan.children_first() {
        out.extend(take_out(t, dir, sides));
    }
    out
}

/// Restore inserts the rows missing on the target (from the source); undo re-inserts the rows
/// restore deletes (from the target).
fn put_in<'a>(t: &'a TableRestore, dir: Direction, sides: &Sides<'a>) -> Option<Section<'a>> {
    let (count, comment, temp, from, action, columns, overriding) = match dir {
        Direction::Restore => (
            t.insert,
            format!(
                "{}: insert {} rows missing on the target",
                t.table, t.insert
            ),
            "ins",
            sides.source,
            Action::Insert,
            &t.insert_columns,
            t.overriding,
        ),
        Direction::Undo => (
            t.delete,
            format!(
                "{}: re-insert {} rows restore.sql deletes",
                t.table, t.delete
            ),
            "undel",
            sides.target,
            Action::Delete,
            &t.target_columns,
            t.target_overriding,
        ),
    };
    (count > 0).then(|| Section {
        table: t,
        comment,
        temp,
        from,
        action,
        columns: columns.clone(),
        dml: Dml::Insert { overriding },
    })
}

/// Restore sets the divergent rows' columns from the source; undo puts the target's back.
fn update<'a>(t: &'a TableRestore, dir: Direction, sides: &Sides<'a>) -> Option<Section<'a>> {
    if t.update == 0 || t.update_columns.is_empty() {
        return None;
    }
    let (comment, temp, from) = match dir {
        Direction::Restore => (
            format!(
                "{}: update {} divergent rows ({})",
                t.table,
                t.update,
                t.update_columns.join(", ")
            ),
            "upd",
            sides.source,
        ),
        Direction::Undo => (
            format!(
                "{}: put back {} rows restore.sql updates",
                t.table, t.update
            ),
            "unupd",
            sides.target,
        ),
    };
    Some(Section {
        table: t,
        comment,
        temp,
        from,
        action: Action::Update,
        columns: [t.key.clone(), t.update_columns.clone()].concat(),
        dml: Dml::Update(t.update_columns.clone()),
    })
}

/// Restore deletes the rows extra on the target; undo deletes the rows restore inserts.
fn take_out<'a>(t: &'a TableRestore, dir: Direction, sides: &Sides<'a>) -> Option<Section<'a>> {
    let (count, comment, temp, from, action) = match dir {
        Direction::Restore => (
            t.delete,
            format!("{}: delete {} rows extra on the target", t.table, t.delete),
            "del",
            sides.target,
            Action::Delete,
        ),
        Direction::Undo => (
            t.insert,
            format!("{}: delete {} rows restore.sql inserts", t.table, t.insert),
            "unins",
            sides.source,
            Action::Insert,
        ),
    };
    // A keyless row is named by all its values: its section loads them to delete by.
    let columns = match t.keyless {
        true => t.columns.clone(),
        false => t.key.clone(),
    };
    (count > 0).then_some(Section {
        table: t,
        comment,
        temp,
        from,
        action,
        columns,
        dml: Dml::Delete,
    })
}

/// Writes a script: the header, one transaction, the fix-ups that go first, each section's rows
/// loaded and applied, the fix-ups that go last.
async fn write_script(
    path: &Path,
    header: &str,
    out: &Written<'_>,
    sections: Vec<Section<'_>>,
    (first, last): (&[FixStep], &[FixStep]),
) -> Result<()> {
    let (runs, keys) = (out.runs, out.keys);
    let mut s = create(path)?;
    s.comment(header)?;
    s.begin()?;
    write_fixups(&mut s, first, out.sides).await?;
    for sec in sections {
        let t = sec.table;
        let table = runs[t.index].plan.name.sql();
        let temp = temp_name(t.index, sec.temp);
        s.comment(&sec.comment)?;
        let chunks = KeyChunks::open(&key_file(keys, t.index), &[sec.action])?;
        // The restore source's names of renamed columns (--map-column) select its rows.
        let names = match std::ptr::eq(sec.from, out.sides.source) {
            true => t.source_columns(&sec.columns),
            false => sec.columns.clone(),
        };
        load(&mut s, sec.from, t, &temp, (&sec.columns, &names), chunks).await?;
        let scope = t.rows.as_deref();
        match sec.dml {
            Dml::Insert { overriding } if t.keyless => {
                s.insert_copies(&table, &temp, &sec.columns, overriding)?
            }
            Dml::Insert { overriding } => {
                s.insert_from(&table, &temp, &sec.columns, &t.key, overriding, scope)?
            }
            Dml::Update(set) => s.update_from(&table, &temp, &set, &t.key, scope)?,
            Dml::Delete if t.keyless => s.delete_copies(&table, &temp, &sec.columns, scope)?,
            Dml::Delete => s.delete_using(&table, &temp, &t.key, scope)?,
        }
    }
    write_fixups(&mut s, last, out.sides).await?;
    s.commit()?;
    close(s, path)
}

/// Fix-up steps; rows they load come from the reference (the base), or the target.
async fn write_fixups(s: &mut ScriptFile, steps: &[FixStep], sides: &Sides<'_>) -> Result<()> {
    for step in steps {
        match step {
            FixStep::Comment(text) => s.comment(text)?,
            FixStep::Run(sql) => s.statement(sql)?,
            FixStep::Choice(sql) => s.comment(&format!("{sql};"))?,
            FixStep::Load {
                temp,
                table,
                columns,
                queries,
                from_target,
            } => {
                s.temp_table(temp, &table.sql(), columns)?;
                s.copy_begin(temp, columns)?;
                let (reference, side) = match from_target {
                    true => (sides.target, "target"),
                    false => (sides.reference, "base"),
                };
                for q in queries {
                    let at = || format!("reading the {side}'s rows of {table} for a fix-up");
                    let mut sink = |piece: Option<bytes::Bytes>| match piece {
                        Some(bytes) => s.copy_data(&bytes),
                        None => Ok(()),
                    };
                    fetch::copy_out(reference, &format!("COPY ({q}) TO STDOUT"), at, &mut sink)
                        .await?;
                }
                s.copy_end()?;
            }
            FixStep::Rows {
                temp,
                table,
                columns,
                rows,
            } => {
                s.temp_table(temp, &table.sql(), columns)?;
                s.copy_begin(temp, columns)?;
                for row in rows {
                    s.copy_data(copy_line(row).as_bytes())?;
                }
                s.copy_end()?;
            }
        }
    }
    Ok(())
}

/// A temporary table filled with the given rows of `source`, read by key.
async fn load(
    s: &mut ScriptFile,
    source: &Client,
    table: &TableRestore,
    temp: &str,
    (cols, names): (&[String], &[String]),
    keys: KeyChunks,
) -> Result<()> {
    let table_sql = TableName::new(&table.schema, &table.name).sql();
    s.temp_table(temp, &table_sql, cols)?;
    s.copy_begin(temp, cols)?;
    let sink = |piece: Option<bytes::Bytes>| match piece {
        Some(bytes) => s.copy_data(&bytes),
        None => Ok(()),
    };
    match table.keyless {
        true => copy_places(source, table, names, keys, sink).await?,
        false => copy_keys(source, table, names, keys, false, sink).await?,
    }
    s.copy_end()
}
