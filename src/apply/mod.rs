//! `apply`: the only command that writes, and it writes carefully.
//!
//! In one transaction on the target: lock every table of the plan against writers (`SHARE ROW
//! EXCLUSIVE`, readers go on), check that every row the recovery touches is still exactly as it
//! was at diff time ([`guard`]), then run `restore.sql`'s statements and COPY blocks. A row that
//! changed since the diff is a conflict: the default aborts before anything is written;
//! `--skip-changed` removes those keys from the loaded batches and lists them. `--dry-run` does
//! all of it and rolls back. Before committing, the touched keys are read again and compared with
//! the digests the plan expects; a restore that did not produce exactly the planned rows is rolled
//! back, so what is committed is verified, not assumed. restore.sql's fix-up steps (check's
//! schema repairs, parent restores, validations, `setval`) run in the same transaction, in order;
//! the guard and the re-verify cover the row restore's keys, not the fix-ups' rows. A dry run
//! leaves out `setval`, which a rollback would not undo.

pub mod guard;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Error, Result};
use crate::hash::digest::RowCodec;
use crate::pipeline::findings::{key_file, KeyRecord};
use crate::recover::fetch::{for_each_record, key_filter};
use crate::recover::plan::{RecoverPlan, TableRestore};
use crate::shape::TableName;
use crate::sink::sql::{parse_script, Step};
use crate::source::{catalog, connect, ConnInfo};
use guard::{check_table, Expect, Mismatch};

/// One `apply` run.
#[derive(Clone, Debug)]
pub struct ApplySettings {
    pub dir: PathBuf,
    pub target: ConnInfo,
    pub dry_run: bool,
    pub skip_changed: bool,
}

/// What an apply did.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub committed: bool,
    /// Rows changed since the diff (skipped with --skip-changed, else the reason for aborting).
    pub conflicts: Vec<Mismatch>,
    /// Each data-changing statement with the rows it affected.
    pub statements: Vec<StatementCount>,
    /// After a commit: keys whose row is not what the plan expects.
    pub reverify_mismatches: Vec<Mismatch>,
    pub reverified_keys: u64,
    pub exit_code: i32,
}

#[derive(Debug, Serialize)]
pub struct StatementCount {
    pub statement: String,
    pub rows: u64,
}

/// Applies a recovery directory to the target.
pub async fn apply(settings: &ApplySettings) -> Result<ApplyReport> {
    let plan = RecoverPlan::read(&settings.dir)?;
    let script_path = settings.dir.join("restore.sql");
    let script = std::fs::read(&script_path).map_err(|e| Error::io(script_path.display(), e))?;
    let steps = parse_script(&script)?;
    let client = connect::connect(&settings.target)
        .await
        .map_err(|e| e.context("opening target"))?;
    let codecs = codecs(&client, &plan).await?;
    client
        .batch_execute("BEGIN")
        .await
        .context(|| "starting the apply transaction".into())?;
    lock_tables(&client, &plan).await?;
    let conflicts = guard_all(
        &client,
        &plan,
        &codecs,
        &settings.dir,
        Expect::Before,
        &|_| false,
    )
    .await?;
    let mut report = ApplyReport {
        dry_run: settings.dry_run,
        committed: false,
        conflicts,
        statements: Vec::new(),
        reverify_mismatches: Vec::new(),
        reverified_keys: 0,
        exit_code: 0,
    };
    if !report.conflicts.is_empty() && !settings.skip_changed {
        client
            .batch_execute("ROLLBACK")
            .await
            .context(|| "rolling back".into())?;
        report.exit_code = 2;
        return Ok(report);
    }
    let steps = without_setval(steps, settings.dry_run, &mut report.statements);
    let counts = run_steps(&client, &plan, &steps, &report.conflicts, &settings.dir).await?;
    report.statements.extend(counts);
    // Verify inside the transaction: a restore that did not produce exactly the planned rows is
    // rolled back instead of committed; a dry run shows the same check.
    reverify(&client, &plan, &codecs, &settings.dir, &mut report).await?;
    if settings.dry_run || !report.reverify_mismatches.is_empty() {
        client
            .batch_execute("ROLLBACK")
            .await
            .context(|| "rolling back".into())?;
        if !settings.dry_run {
            report.exit_code = 2;
        }
        return Ok(report);
    }
    client
        .batch_execute("COMMIT")
        .await
        .context(|| "committing the restore".into())?;
    report.committed = true;
    Ok(report)
}

/// The digest codec of every plan table, from the target's catalog as it is now: a column that
/// disappeared since the diff stops the apply.
async fn codecs(client: &Client, plan: &RecoverPlan) -> Result<Vec<Arc<RowCodec>>> {
    let shapes = catalog::read_tables(client)
        .await
        .map_err(|e| e.context("reading the target's catalog"))?;
    plan.tables
        .iter()
        .map(|t| {
            let name = TableName::new(&t.schema, &t.name);
            let shape = shapes.iter().find(|s| s.name == name).ok_or_else(|| {
                Error::usage(format!(
                    "table {name} of the plan no longer exists on the target"
                ))
            })?;
            let kinds = t
                .columns
                .iter()
                .map(|c| shape.column(c).map(|(_, col)| col.kind.clone()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::usage(format!(
                        "table {name} changed since recover: a compared column is gone"
                    ))
                    .with_hint("run recover again")
                })?;
            Ok(Arc::new(RowCodec {
                kinds,
                nkey: t.key.len(),
            }))
        })
        .collect()
}

async fn lock_tables(client: &Client, plan: &RecoverPlan) -> Result<()> {
    for t in plan.parents_first() {
        let name = TableName::new(&t.schema, &t.name);
        client
            .batch_execute(&format!(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                name.sql()
            ))
            .await
            .context(|| format!("locking {name}"))?;
    }
    Ok(())
}

async fn guard_all(
    client: &Client,
    plan: &RecoverPlan,
    codecs: &[Arc<RowCodec>],
    dir: &Path,
    expect: Expect,
    skip: &dyn Fn(&KeyRecord) -> bool,
) -> Result<Vec<Mismatch>> {
    let mut all = Vec::new();
    for (t, codec) in plan.tables.iter().zip(codecs) {
        let file = key_file(&dir.join("keys"), t.index);
        all.extend(check_table(client, t, codec.clone(), &file, expect, skip).await?);
    }
    Ok(all)
}

/// Runs the script's steps; with conflicts to skip, their keys leave each loaded batch first.
///
/// Without conflicts, rows to insert are copied straight into their table instead of through the
/// temporary table and `INSERT ... ON CONFLICT`: the guard has just proven, under the table lock,
/// that none of those keys exists, so the conflict clause cannot fire and the second pass over the
/// rows is pure cost.
async fn run_steps(
    client: &Client,
    plan: &RecoverPlan,
    steps: &[Step],
    conflicts: &[Mismatch],
    dir: &Path,
) -> Result<Vec<StatementCount>> {
    let mut counts = Vec::new();
    let mut copied_directly: Option<String> = None;
    for step in steps {
        match step {
            Step::Statement(sql) if matches!(sql.as_str(), "BEGIN" | "COMMIT") => {}
            Step::Statement(sql)
                if copied_directly.as_ref().is_some_and(|temp| {
                    sql.starts_with("INSERT ") && sql.contains(temp.as_str())
                }) =>
            {
                copied_directly = None;
            }
            Step::Statement(sql) => {
                let rows = client
                    .execute(sql.as_str(), &[])
                    .await
                    .context(|| format!("running: {}", short(sql)))?;
                if is_dml(sql) {
                    counts.push(StatementCount {
                        statement: short(sql),
                        rows,
                    });
                }
            }
            Step::Copy { statement, data } => {
                match direct_insert(plan, statement).filter(|_| conflicts.is_empty()) {
                    Some((temp, direct)) => {
                        let rows = copy_in(client, &direct, data).await?;
                        counts.push(StatementCount {
                            statement: short(&direct),
                            rows,
                        });
                        copied_directly = Some(format!("FROM {temp} ON CONFLICT"));
                    }
                    None => {
                        copy_in(client, statement, data).await?;
                        drop_conflicts(client, plan, statement, conflicts, dir).await?;
                    }
                }
            }
        }
    }
    Ok(counts)
}

/// A dry run leaves out `setval` (sequences are not transactional: a rollback would not undo
/// it) and lists what it left out.
fn without_setval(steps: Vec<Step>, dry_run: bool, listed: &mut Vec<StatementCount>) -> Vec<Step> {
    if !dry_run {
        return steps;
    }
    let (skipped, kept): (Vec<Step>, Vec<Step>) = steps
        .into_iter()
        .partition(|s| matches!(s, Step::Statement(sql) if sql.starts_with("SELECT setval(")));
    for step in skipped {
        if let Step::Statement(sql) = step {
            listed.push(StatementCount {
                statement: format!("not run in a dry run: {}", short(&sql)),
                rows: 0,
            });
        }
    }
    kept
}

/// For `COPY "pgsalvage_<t>_ins" (cols) FROM STDIN`: the temporary table's quoted name and the
/// same COPY into the real table.
fn direct_insert(plan: &RecoverPlan, statement: &str) -> Option<(String, String)> {
    let temp = statement.split_whitespace().nth(1)?;
    if !temp.trim_matches('"').ends_with("_ins") {
        return None;
    }
    let table = temp_table_of(plan, statement)?;
    // Fix-ups may have restored some of these rows already (missing parents): then the conflict
    // clause is needed after all.
    if plan.fixups.insert_tables.contains(&table.table) {
        return None;
    }
    let table_sql = TableName::new(&table.schema, &table.name).sql();
    Some((temp.to_string(), statement.replacen(temp, &table_sql, 1)))
}

fn is_dml(sql: &str) -> bool {
    ["INSERT ", "UPDATE ", "DELETE "]
        .iter()
        .any(|p| sql.starts_with(p))
}

fn short(sql: &str) -> String {
    let s: String = sql.chars().take(120).collect();
    if s.len() < sql.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// Runs one `COPY ... FROM STDIN` with its data; returns the rows loaded.
async fn copy_in(client: &Client, statement: &str, data: &[u8]) -> Result<u64> {
    let sink = client
        .copy_in(statement)
        .await
        .context(|| format!("running: {}", short(statement)))?;
    let mut sink = std::pin::pin!(sink);
    for piece in data.chunks(1 << 20) {
        sink.send(Bytes::copy_from_slice(piece))
            .await
            .context(|| format!("loading: {}", short(statement)))?;
    }
    sink.as_mut()
        .finish()
        .await
        .context(|| format!("loading: {}", short(statement)))
}

/// Removes conflicting keys from a just-loaded temporary table (`pgsalvage_<table>_<what>`).
async fn drop_conflicts(
    client: &Client,
    plan: &RecoverPlan,
    statement: &str,
    conflicts: &[Mismatch],
    dir: &Path,
) -> Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let Some(table) = temp_table_of(plan, statement) else {
        return Ok(());
    };
    let temp = statement
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let conflicted: std::collections::HashSet<String> = conflicts
        .iter()
        .filter(|m| m.table == table.table)
        .map(|m| m.key.get().to_string())
        .collect();
    let mut literals = Vec::new();
    for_each_record(&key_file(&dir.join("keys"), table.index), |r| {
        if conflicted.contains(r.key_json.get()) {
            literals.push(r.key);
        }
        Ok(())
    })?;
    for chunk in literals.chunks(500) {
        let sql = format!("DELETE FROM {temp} WHERE {}", key_filter(&table.key, chunk));
        client
            .execute(sql.as_str(), &[])
            .await
            .context(|| format!("skipping conflicts in {}", table.table))?;
    }
    Ok(())
}

/// The plan table a `COPY "pgsalvage_<index>_<what>" ...` statement loads.
fn temp_table_of<'a>(plan: &'a RecoverPlan, statement: &str) -> Option<&'a TableRestore> {
    let temp = statement.split_whitespace().nth(1)?.trim_matches('"');
    let index: usize = temp
        .strip_prefix("pgsalvage_")?
        .split('_')
        .next()?
        .parse()
        .ok()?;
    plan.tables.iter().find(|t| t.index == index)
}

/// After the commit: every touched key must now hold what the plan expects (conflicts skipped
/// keep what they had).
async fn reverify(
    client: &Client,
    plan: &RecoverPlan,
    codecs: &[Arc<RowCodec>],
    dir: &Path,
    report: &mut ApplyReport,
) -> Result<()> {
    let conflicted: std::collections::HashSet<(String, String)> = report
        .conflicts
        .iter()
        .map(|m| (m.table.clone(), m.key.get().to_string()))
        .collect();
    let mut touched = 0u64;
    for (t, codec) in plan.tables.iter().zip(codecs) {
        let file = key_file(&dir.join("keys"), t.index);
        let skip =
            |r: &KeyRecord| conflicted.contains(&(t.table.clone(), r.key_json.get().to_string()));
        report
            .reverify_mismatches
            .extend(check_table(client, t, codec.clone(), &file, Expect::After, &skip).await?);
        touched += t.insert + t.update + t.delete;
    }
    report.reverified_keys = touched - conflicted.len() as u64;
    report.exit_code =
        i32::from(!report.reverify_mismatches.is_empty() || !report.conflicts.is_empty());
    Ok(())
}
