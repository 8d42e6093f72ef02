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
//!
//! Rows to insert under a key that a unique index covers are not read ahead: the first attempt
//! copies them straight in and lets the index refuse a key that appeared since the diff. Any
//! refusal (that one, or a changed row elsewhere) rolls the attempt back, and a second attempt
//! guards every key, so what a refused apply lists is the same either way. COPY data is streamed
//! from `restore.sql` when it runs, so memory does not grow with the recovery.

mod copies;
pub mod guard;
mod scan;
mod written;

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use serde::Serialize;
use tokio_postgres::Client;

use crate::classify::Action;
use crate::error::{Context, Error, Result};
use crate::hash::digest::RowCodec;
use crate::pool::on_pool;
use crate::progress::Reporter;
use crate::recovery::keys::for_each_record;
use crate::recovery::keys::key_file;
use crate::recovery::plan::{RecoverPlan, TableRestore, TargetBinding, APPLIED_FILE, APPLIED_TMP};
use crate::recovery::script::{parse_script, Step};
pub use crate::settings::ApplySettings;
use crate::shape::TableName;
use crate::source::visit::{self, Patience};
use crate::source::{catalog, connect};
use crate::sql::key_filter;
use guard::{check_table, Expect, Mismatch};

/// The version of apply's JSON report.
pub const FORMAT: &str = "pgsalvage.apply/1";

/// What an apply did: the text it prints, its exit status, and its `--json` report.
///
/// # JSON schema `pgsalvage.apply/1`
/// ```text
/// { "format": "pgsalvage.apply/1", "dry_run": false, "committed": true,
///   "conflicts": [ <mismatch> ],                 // changed since recover: skipped or refused
///   "statements": [ { "statement": "INSERT INTO …", "rows": 3, "writes_rows": true,
///                     "not_run": true } ],       // not_run only when true (a dry run's setval)
///   "reverify_mismatches": [ <mismatch> ], "reverified_keys": 12,
///   "index_guarded": [ "public.orders" ], "scanned": [ "public.items" ],
///   "exit_code": 0 | 1 | 2,
///   "tool": { … }, "command_line": [ … ], "timings": { … } }   // see report::provenance
///
/// <mismatch> = { "table": "public.orders", "key": [42], "expected": "<hex>" | null,
///                "found": "<hex>" | null }       // null: no row
/// ```
/// The phases of `timings` are `checking the recovery and connecting`, then per attempt (one
/// whose direct copy met a new key is followed by a second, see the module doc) `locking
/// tables`, `guarding rows`, `running restore.sql`, `re-verifying`, and `committing` or `rolling
/// back`; an apply the guard refuses ends after `guarding rows`.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    /// [`FORMAT`].
    pub format: &'static str,
    pub dry_run: bool,
    pub committed: bool,
    /// Rows changed since the diff (skipped with --skip-changed, else the reason for aborting).
    pub conflicts: Vec<Mismatch>,
    /// Each data-changing statement with the rows it affected.
    pub statements: Vec<StatementCount>,
    /// After a commit: keys whose row is not what the plan expects.
    pub reverify_mismatches: Vec<Mismatch>,
    pub reverified_keys: u64,
    /// Tables whose rows to insert were guarded by their unique key index rather than read
    /// ahead (see `Attempt::index_guarded`).
    pub index_guarded: Vec<String>,
    /// Tables whose inserts and updates were proven by one scan of the rows the transaction
    /// wrote rather than a read per key (see `written`). A table whose scan did not match the
    /// plan is not listed: its keys were read one by one.
    pub scanned: Vec<String>,
    pub exit_code: i32,
}

#[derive(Debug, Serialize)]
pub struct StatementCount {
    pub statement: String,
    /// Rows the statement wrote (0 for a statement that writes no rows, see `writes_rows`).
    pub rows: u64,
    /// Whether it is an INSERT, UPDATE, DELETE or COPY, whose `rows` mean rows written; a
    /// fix-up (ALTER TABLE, setval) is listed with `writes_rows` false.
    pub writes_rows: bool,
    /// Left out of a dry run (setval: sequences do not roll back).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_run: bool,
}

/// Applies a recovery directory to the target, silently.
pub async fn apply(settings: &ApplySettings) -> Result<ApplyReport> {
    apply_reporting(settings, &crate::progress::NullReporter).await
}

/// Applies a recovery directory to the target, saying through `reporter` what it waits for.
pub async fn apply_reporting(
    settings: &ApplySettings,
    reporter: &dyn Reporter,
) -> Result<ApplyReport> {
    crate::log::phase("checking the recovery and connecting");
    let plan = RecoverPlan::read(&settings.dir)?;
    refuse_applied(&settings.dir)?;
    // The seal is checked before anything else is read from the directory (hashing on the pool).
    let (dir, sealed) = (settings.dir.clone(), plan.clone());
    crate::pool::blocking(move || sealed.check_sealed(&dir)).await?;
    // The script is split into its steps on the pool while the target is connected to.
    let script_path = settings.dir.join(SCRIPT);
    let steps = on_pool(move || {
        let script =
            std::fs::File::open(&script_path).map_err(|e| Error::io(script_path.display(), e))?;
        parse_script(std::io::BufReader::with_capacity(1 << 20, script))
    });
    let client = connect::connect(&settings.target)
        .await
        .map_err(|e| e.context("opening target"))?;
    let here = TargetBinding::of(&client).await?;
    if let Some(why) = plan.target.differs_from(&here) {
        return Err(Error::usage(format!("{why}: nothing was applied"))
            .with_hint("apply a recovery to the database recover compared; for another database, run recover against it"));
    }
    let codecs = codecs(&client, &plan).await?;
    let steps = steps
        .await
        .map_err(|_| Error::internal("the pool dropped a job"))??;
    let run = Attempt {
        client: &client,
        reporter,
        settings,
        plan: &plan,
        codecs: &codecs,
        steps: &steps,
    };
    match run.once(!settings.skip_changed).await? {
        Some(report) => Ok(report),
        // A row changed since the diff: start over guarding every key, which lists them all.
        None => Ok(run.once(false).await?.expect("no table is index-guarded")),
    }
}

/// One apply transaction over the recovery.
struct Attempt<'a> {
    client: &'a Client,
    reporter: &'a dyn Reporter,
    settings: &'a ApplySettings,
    plan: &'a RecoverPlan,
    /// `None` for a table the recovery creates, until it is created.
    codecs: &'a [Option<Arc<RowCodec>>],
    steps: &'a [Step],
}

impl Attempt<'_> {
    /// Locks, guards, restores and re-verifies in one transaction. The keys to insert into the
    /// tables of `keyed` are not read ahead: their rows are copied straight in, and the unique
    /// index on their key is the guard. `None` when such a copy met an existing key, or another
    /// row changed (the refusal must list every one): the transaction is rolled back and the
    /// caller starts over, guarding every key.
    ///
    /// With `by_index`, the tables whose unique indexes can guard their inserts are found after
    /// the lock, which also keeps those indexes from being dropped until the commit.
    async fn once(&self, by_index: bool) -> Result<Option<ApplyReport>> {
        let (client, settings, plan) = (self.client, self.settings, self.plan);
        let keyed = self.begin(by_index).await?;
        let mut report = self.guarded_report(&keyed).await?;
        if settings.skip_changed {
            refuse_skipping_copies(client, &report.conflicts).await?;
        }
        if !report.conflicts.is_empty() && !settings.skip_changed {
            if keyed.is_empty() && self.restored_already().await? {
                rollback(client).await?;
                return Err(already_applied(
                    &settings.dir,
                    "every row it restores already holds its restored value",
                ));
            }
            rollback(client).await?;
            if !keyed.is_empty() {
                // The refusal lists every changed row: start over with the inserts guarded too.
                return Ok(None);
            }
            report.exit_code = 2;
            return Ok(Some(report));
        }
        let steps: Vec<&Step> = self.steps.iter().collect();
        let (conflicts, dir) = (&report.conflicts, &settings.dir);
        let run = StepRun {
            conflicts,
            keyed: &keyed,
            dir,
            dry_run: settings.dry_run,
        };
        let Some(counts) = run_steps(client, plan, &steps, run).await? else {
            rollback(client).await?;
            return Ok(None);
        };
        report.statements.extend(counts);
        // Verify inside the transaction: a restore that did not produce exactly the planned rows
        // is rolled back instead of committed; a dry run shows the same check.
        let codecs = created_codecs(client, plan, self.codecs).await?;
        reverify(client, plan, &codecs, dir, &mut report).await?;
        self.end(report).await.map(Some)
    }

    /// Opens the transaction and locks the plan's tables; with `by_index`, finds the tables whose
    /// inserts their unique index guards (after the lock, which keeps those indexes in place).
    async fn begin(&self, by_index: bool) -> Result<HashSet<usize>> {
        crate::log::phase("locking tables");
        self.client
            .batch_execute("BEGIN")
            .await
            .context(|| "starting the apply transaction".into())?;
        let patience = Patience {
            lock_wait: self.settings.lock_wait,
            reporter: self.reporter,
        };
        lock_tables(self.client, self.plan, &patience).await?;
        match by_index {
            true => self.index_guarded().await,
            false => Ok(HashSet::new()),
        }
    }

    /// A report that starts with the guard's conflicts.
    async fn guarded_report(&self, keyed: &HashSet<usize>) -> Result<ApplyReport> {
        let index_guarded = self
            .plan
            .tables
            .iter()
            .filter(|t| keyed.contains(&t.index))
            .map(|t| t.table.clone())
            .collect();
        crate::log::phase("guarding rows");
        Ok(ApplyReport {
            format: FORMAT,
            dry_run: self.settings.dry_run,
            committed: false,
            conflicts: self.guard(keyed).await?,
            statements: Vec::new(),
            reverify_mismatches: Vec::new(),
            reverified_keys: 0,
            index_guarded,
            scanned: Vec::new(),
            exit_code: 0,
        })
    }

    /// Commits a restore that re-verified; rolls back a dry run or one that did not.
    async fn end(&self, mut report: ApplyReport) -> Result<ApplyReport> {
        let dry_run = self.settings.dry_run;
        if dry_run || !report.reverify_mismatches.is_empty() {
            crate::log::phase("rolling back");
            rollback(self.client).await?;
            if !dry_run {
                report.exit_code = 2;
            }
            return Ok(report);
        }
        crate::log::phase("committing");
        self.client
            .batch_execute("COMMIT")
            .await
            .context(|| "committing the restore".into())?;
        report.committed = true;
        mark_applied(&self.settings.dir, &self.plan.target)?;
        Ok(report)
    }

    /// Whether every key the plan touches already holds the row the restore would leave: the
    /// plan was applied (from a copy of the directory, or before its marker was removed).
    async fn restored_already(&self) -> Result<bool> {
        for (t, codec) in self.plan.tables.iter().zip(self.codecs) {
            let Some(codec) = codec.as_ref().filter(|_| t.planned(TOUCHED) > 0) else {
                continue;
            };
            let file = key_file(&self.settings.dir.join("keys"), t.index);
            let skip = Default::default();
            let off = check_rows(
                self.client,
                t,
                codec.clone(),
                &file,
                Expect::After,
                TOUCHED,
                skip,
            );
            if !off.await?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The guard ahead of the restore: every touched key, but the inserts of `keyed` tables.
    async fn guard(&self, keyed: &HashSet<usize>) -> Result<Vec<Mismatch>> {
        let mut all = Vec::new();
        for (t, codec) in self.plan.tables.iter().zip(self.codecs) {
            // A table created by the recovery has no row to guard.
            let Some(codec) = codec else { continue };
            let actions: &[Action] = if keyed.contains(&t.index) {
                &[Action::Update, Action::Delete]
            } else {
                TOUCHED
            };
            if t.planned(actions) == 0 {
                continue;
            }
            let file = key_file(&self.settings.dir.join("keys"), t.index);
            all.extend(
                check_rows(
                    self.client,
                    t,
                    codec.clone(),
                    &file,
                    Expect::Before,
                    actions,
                    Default::default(),
                )
                .await?,
            );
        }
        Ok(all)
    }

    /// The tables whose inserts their own unique index guards: rows copied straight in (see
    /// [`direct_insert`]) under a key that a valid, immediate, total unique index covers (its
    /// columns among the key's), so a row that appeared since the diff fails the copy instead of
    /// being overwritten. Reading those keys ahead (a probe per key) is then pure cost.
    async fn index_guarded(&self) -> Result<HashSet<usize>> {
        let direct: HashSet<usize> = self
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Copy { statement, .. } => direct_insert(self.plan, statement)
                    .and_then(|_| temp_table_of(self.plan, statement))
                    .map(|t| t.index),
                Step::Statement(_) => None,
            })
            .collect();
        let mut keyed = HashSet::new();
        for t in self
            .plan
            .tables
            .iter()
            .filter(|t| direct.contains(&t.index) && !t.create)
        {
            let name = TableName::new(&t.schema, &t.name);
            let row = self
                .client
                .query_one(UNIQUE_UNDER_KEY, &[&name.schema, &t.key, &name.name])
                .await
                .context(|| format!("reading the unique indexes of {name}"))?;
            if row.get::<_, bool>(0) {
                keyed.insert(t.index);
            }
        }
        Ok(keyed)
    }
}

/// Checks the rows of one table's records with one of `actions` against `expect`: keyed rows
/// by key ([`check_table`]), a keyless table's by its count of each touched row ([`copies`]).
async fn check_rows(
    client: &Client,
    t: &TableRestore,
    codec: Arc<RowCodec>,
    file: &Path,
    expect: Expect,
    actions: &[Action],
    skip: guard::Skipped,
) -> Result<Vec<Mismatch>> {
    match t.keyless {
        true => copies::check_copies(client, t, codec, file, expect).await,
        false => check_table(client, t, codec, file, expect, actions, skip).await,
    }
}

/// `--skip-changed` leaves a changed key out of the restore; a keyless row is one of its equal
/// copies, and leaving some out would restore a count nobody planned. So a keyless table that
/// changed since recover stops the apply instead.
async fn refuse_skipping_copies(client: &Client, conflicts: &[Mismatch]) -> Result<()> {
    let keyless = |m: &&Mismatch| m.expected_copies.is_some();
    let Some(m) = conflicts.iter().find(keyless) else {
        return Ok(());
    };
    rollback(client).await?;
    let tables: std::collections::BTreeSet<&str> = conflicts
        .iter()
        .filter(keyless)
        .map(|m| m.table.as_str())
        .collect();
    Err(Error::usage(format!(
        "keyless table {} changed since recover ({}): --skip-changed cannot leave out copies of a row; nothing was applied",
        tables.into_iter().collect::<Vec<_>>().join(", "),
        m.named()
    ))
    .with_hint("run recover again to plan from the table as it is now"))
}

/// Whether a unique index that no transaction can bypass lies wholly inside a column set.
const UNIQUE_UNDER_KEY: &str = "SELECT EXISTS (
    SELECT 1 FROM pg_index i
     WHERE i.indrelid = format('%I.%I', $1::text, $3::text)::regclass AND i.indisunique AND i.indisvalid AND i.indimmediate
       AND i.indpred IS NULL AND i.indexprs IS NULL
       AND NOT EXISTS (
         SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE k.n <= i.indnkeyatts AND a.attname <> ALL ($2::text[])))";

async fn rollback(client: &Client) -> Result<()> {
    client
        .batch_execute("ROLLBACK")
        .await
        .context(|| "rolling back".into())
}

/// The digest codec of every plan table, from the target's catalog as it is now: a column that
/// disappeared since the diff stops the apply. A table the recovery creates must not exist yet;
/// its codec is `None` until it does ([`created_codecs`]).
async fn codecs(client: &Client, plan: &RecoverPlan) -> Result<Vec<Option<Arc<RowCodec>>>> {
    let shapes = catalog::read_tables(client)
        .await
        .map_err(|e| e.context("reading the target's catalog"))?;
    plan.tables
        .iter()
        .map(|t| {
            let name = TableName::new(&t.schema, &t.name);
            let shape = shapes.iter().find(|s| s.name == name);
            match (shape, t.create) {
                (None, true) => Ok(None),
                (Some(_), true) => Err(Error::usage(format!(
                    "table {name} exists on the target now, but this recovery creates it: nothing was applied"
                ))
                .with_hint("run recover again against the target as it is now")),
                (None, false) => Err(Error::usage(format!(
                    "table {name} of the plan no longer exists on the target"
                ))),
                (Some(shape), false) => codec_of(t, shape).map(Some),
            }
        })
        .collect()
}

/// Within the transaction, after the script ran: every codec, those of the tables it created
/// read from the catalog as it now is.
async fn created_codecs(
    client: &Client,
    plan: &RecoverPlan,
    codecs: &[Option<Arc<RowCodec>>],
) -> Result<Vec<Arc<RowCodec>>> {
    if codecs.iter().all(Option::is_some) {
        return Ok(codecs.iter().flatten().cloned().collect());
    }
    let shapes = catalog::read_tables(client)
        .await
        .map_err(|e| e.context("reading the tables the recovery created"))?;
    plan.tables
        .iter()
        .zip(codecs)
        .map(|(t, codec)| match codec {
            Some(codec) => Ok(codec.clone()),
            None => {
                let name = TableName::new(&t.schema, &t.name);
                let shape = shapes.iter().find(|s| s.name == name).ok_or_else(|| {
                    Error::usage(format!("the recovery did not create table {name}")).with_hint(
                        "its CREATE TABLE is a fix-up of restore.sql: see plan.json's fixups",
                    )
                })?;
                codec_of(t, shape)
            }
        })
        .collect()
}

/// The digest codec of one plan table on the target's shape of it.
fn codec_of(t: &TableRestore, shape: &crate::shape::TableShape) -> Result<Arc<RowCodec>> {
    let name = TableName::new(&t.schema, &t.name);
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
}

/// What `apply` leaves in the directory once it committed: when, and where.
#[derive(Serialize, serde::Deserialize)]
struct Applied {
    committed_at: String,
    database: String,
    database_oid: u32,
}

/// Refuses a directory whose plan was committed already (its marker says when).
fn refuse_applied(dir: &Path) -> Result<()> {
    let path = dir.join(APPLIED_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(());
    };
    let when = serde_json::from_slice::<Applied>(&text)
        .map(|a| {
            format!(
                "it was committed to database {} at {}",
                a.database, a.committed_at
            )
        })
        .unwrap_or_else(|_| format!("{} says so", path.display()));
    Err(already_applied(dir, &when))
}

fn already_applied(dir: &Path, why: &str) -> Error {
    Error::usage(format!(
        "recovery {} was already applied: {why}; nothing to do",
        dir.display()
    ))
    .with_hint(
        "run pgsalvage verify to see the database as it is now; undo.sql reverses the restore",
    )
}

/// Leaves the marker of a committed plan, written to a temporary name and renamed.
fn mark_applied(dir: &Path, target: &TargetBinding) -> Result<()> {
    let applied = Applied {
        committed_at: crate::recovery::plan::now_utc(),
        database: target.database.clone(),
        database_oid: target.database_oid,
    };
    let path = dir.join(APPLIED_FILE);
    let tmp = dir.join(APPLIED_TMP);
    let json = serde_json::to_vec_pretty(&applied).expect("a marker serializes");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            Error::io(
                format!("writing {} (the restore was committed)", path.display()),
                e,
            )
        })
}

/// Locks the plan's tables, parents first. Each try asks for every lock with a short
/// `lock_timeout` inside a savepoint: when one does not come, all are released (so apply never
/// sits in the lock queue holding some tables, nor in front of a waiting DDL), the holder is
/// named, and the try is made again after a backoff, up to `--lock-wait`.
async fn lock_tables(client: &Client, plan: &RecoverPlan, patience: &Patience<'_>) -> Result<()> {
    let at = || "locking the plan's tables".to_string();
    let mut waits = patience.start();
    loop {
        let setup = format!(
            "SAVEPOINT pgsalvage_locks; SET LOCAL lock_timeout = {}",
            visit::LOCK_TRY.as_millis()
        );
        client.batch_execute(&setup).await.context(at)?;
        let Some(busy) = lock_each(client, plan).await? else {
            client
                .batch_execute("RELEASE SAVEPOINT pgsalvage_locks; SET LOCAL lock_timeout = 0")
                .await
                .context(at)?;
            waits.over();
            return Ok(());
        };
        client
            .batch_execute("ROLLBACK TO SAVEPOINT pgsalvage_locks")
            .await
            .context(at)?;
        let who = visit::blockers(client, &busy, WRITE_CONFLICTS).await;
        if let Err(e) = waits.again(&format!("waiting to lock {busy}"), &who).await {
            return Err(e.context(format!("locking {busy}")).with_hint(
                "nothing was changed; run apply again once that session is done, or raise --lock-wait",
            ));
        }
    }
}

/// The lock modes that keep apply's SHARE ROW EXCLUSIVE out: every writer's and DDL's.
const WRITE_CONFLICTS: &[&str] = &[
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// One try at every lock: the table whose lock did not come in time, if one did not.
async fn lock_each(client: &Client, plan: &RecoverPlan) -> Result<Option<TableName>> {
    // A table the recovery creates is the transaction's own.
    for t in plan.parents_first().into_iter().filter(|t| !t.create) {
        let name = TableName::new(&t.schema, &t.name);
        let sql = format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", name.sql());
        match client.batch_execute(&sql).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                return Ok(Some(name))
            }
            Err(e) => return Err(Error::pg(e).context(format!("locking {name}"))),
        }
    }
    Ok(None)
}

/// Runs the script's steps; with conflicts to skip, their keys leave each loaded batch first.
///
/// Without conflicts, rows to insert are copied straight into their table instead of through the
/// temporary table and `INSERT ... ON CONFLICT`: the guard has just proven, under the table lock,
/// that none of those keys exists, so the conflict clause cannot fire and the second pass over the
/// rows is pure cost.
///
/// `None` when a direct copy met a key that exists (only possible for the `keyed` tables, whose
/// inserts were not guarded ahead): the transaction is then aborted, for the caller to roll back.
async fn run_steps(
    client: &Client,
    plan: &RecoverPlan,
    steps: &[&Step],
    run: StepRun<'_>,
) -> Result<Option<Vec<StatementCount>>> {
    crate::log::phase("running restore.sql");
    let mut runner = Runner {
        client,
        plan,
        conflicts: run.conflicts,
        keyed: run.keyed,
        dir: run.dir,
        dry_run: run.dry_run,
        counts: Vec::new(),
        copied_directly: None,
    };
    for &step in steps {
        let went_on = match step {
            Step::Statement(sql) => runner.statement(sql).await.map(|()| true)?,
            Step::Copy { statement, data } => runner.copy(statement, data).await?,
        };
        if !went_on {
            return Ok(None);
        }
    }
    Ok(Some(runner.counts))
}

/// How the steps run: the guard's conflicts to leave out, the tables whose unique index guards
/// their inserts, where the script is, and whether it is a dry run.
struct StepRun<'a> {
    conflicts: &'a [Mismatch],
    keyed: &'a HashSet<usize>,
    dir: &'a Path,
    dry_run: bool,
}

/// The state of a run through the script's steps.
struct Runner<'a> {
    /// A dry run leaves `setval` out (sequences are not transactional: a rollback would not undo
    /// it) and lists it, in its place, as not run.
    dry_run: bool,
    client: &'a Client,
    plan: &'a RecoverPlan,
    conflicts: &'a [Mismatch],
    keyed: &'a HashSet<usize>,
    dir: &'a Path,
    counts: Vec<StatementCount>,
    /// After a direct copy: the `INSERT ... FROM <temp> ON CONFLICT` it made redundant.
    copied_directly: Option<String>,
}

impl Runner<'_> {
    /// Runs one statement, but the script's own BEGIN/COMMIT and an insert a direct copy did.
    async fn statement(&mut self, sql: &str) -> Result<()> {
        if matches!(sql, "BEGIN" | "COMMIT") {
            return Ok(());
        }
        let done = self.copied_directly.as_ref();
        if done.is_some_and(|temp| sql.starts_with("INSERT ") && sql.contains(temp.as_str())) {
            self.copied_directly = None;
            return Ok(());
        }
        let internal = sql.starts_with("CREATE TEMP TABLE ") || sql.starts_with("SET ");
        if self.dry_run && sql.starts_with("SELECT setval(") {
            self.counts.push(StatementCount {
                statement: short(sql),
                rows: 0,
                writes_rows: false,
                not_run: true,
            });
            return Ok(());
        }
        let rows = self
            .client
            .execute(sql, &[])
            .await
            .context(|| format!("running: {}", short(sql)))?;
        // Every step is listed but the script's own plumbing (its temporary tables).
        if !internal {
            self.counts.push(StatementCount {
                statement: short(sql),
                rows: if is_dml(sql) { rows } else { 0 },
                writes_rows: is_dml(sql),
                not_run: false,
            });
        }
        Ok(())
    }

    /// Loads one COPY: straight into the table when nothing conflicts and the plan allows it,
    /// else into its temporary table with the conflicting keys dropped. `false` when a direct
    /// copy met a key that appeared since the diff (the caller starts over, guarding every key).
    async fn copy(&mut self, statement: &str, data: &Range<u64>) -> Result<bool> {
        let direct = direct_insert(self.plan, statement).filter(|_| self.conflicts.is_empty());
        let Some((temp, direct)) = direct else {
            copy_in(self.client, statement, self.dir, data).await?;
            drop_conflicts(self.client, self.plan, statement, self.conflicts, self.dir).await?;
            return Ok(true);
        };
        let rows = match copy_in_raw(self.client, &direct, self.dir, data).await {
            Ok(rows) => rows,
            Err(CopyFailure::Pg(e)) if !self.keyed.is_empty() && is_unique_violation(&e) => {
                return Ok(false)
            }
            Err(e) => {
                return Err(e
                    .into_error()
                    .context(format!("loading: {}", short(&direct))))
            }
        };
        self.counts.push(StatementCount {
            statement: short(&direct),
            rows,
            writes_rows: true,
            not_run: false,
        });
        self.copied_directly = Some(format!("FROM {temp} ON CONFLICT"));
        Ok(true)
    }
}

fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// For `COPY "pgsalvage_<t>_ins" (cols) FROM STDIN`: the temporary table's quoted name and the
/// same COPY into the real table.
fn direct_insert(plan: &RecoverPlan, statement: &str) -> Option<(String, String)> {
    let temp = statement.split_whitespace().nth(1)?;
    if !temp.trim_matches('"').ends_with("_ins") {
        return None;
    }
    let table = temp_table_of(plan, statement)?;
    // A keyless table's copies go through their temporary table (an insert without a key has
    // no conflict clause for a direct copy to make redundant).
    if table.keyless {
        return None;
    }
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

/// The script `apply` runs, in the recovery directory.
const SCRIPT: &str = "restore.sql";

/// Runs one `COPY ... FROM STDIN` with its data, the `data` bytes of the recovery's script;
/// returns the rows loaded.
async fn copy_in(client: &Client, statement: &str, dir: &Path, data: &Range<u64>) -> Result<u64> {
    copy_in_raw(client, statement, dir, data)
        .await
        .map_err(|e| {
            e.into_error()
                .context(format!("loading: {}", short(statement)))
        })
}

/// Why a COPY into the target failed.
enum CopyFailure {
    /// The server refused it (its SQLSTATE tells a collision from anything else).
    Pg(tokio_postgres::Error),
    /// The script could not be read.
    Io(std::io::Error),
}

impl CopyFailure {
    fn into_error(self) -> Error {
        match self {
            CopyFailure::Pg(e) => Error::pg(e),
            CopyFailure::Io(e) => Error::io(SCRIPT, e),
        }
    }
}

/// [`copy_in`] with the failure as it came. The data is streamed from the script a MiB at a
/// time, so a recovery of any size is never held in memory.
async fn copy_in_raw(
    client: &Client,
    statement: &str,
    dir: &Path,
    data: &Range<u64>,
) -> std::result::Result<u64, CopyFailure> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(dir.join(SCRIPT))
        .await
        .map_err(CopyFailure::Io)?;
    file.seek(std::io::SeekFrom::Start(data.start))
        .await
        .map_err(CopyFailure::Io)?;
    let mut left = data.end - data.start;
    let sink = client.copy_in(statement).await.map_err(CopyFailure::Pg)?;
    let mut sink = std::pin::pin!(sink);
    while left > 0 {
        let mut piece = vec![0; left.min(1 << 20) as usize];
        file.read_exact(&mut piece).await.map_err(CopyFailure::Io)?;
        left -= piece.len() as u64;
        sink.send(Bytes::from(piece))
            .await
            .map_err(CopyFailure::Pg)?;
    }
    sink.as_mut().finish().await.map_err(CopyFailure::Pg)
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

/// The actions that change a row; kept keys are listed, never touched.
const TOUCHED: &[Action] = &[Action::Insert, Action::Update, Action::Delete];

/// The actions whose rows the restore writes (and [`written`] can scan for).
const WRITTEN: &[Action] = &[Action::Insert, Action::Update];

/// Before the commit: every touched key must now hold what the plan expects (conflicts skipped
/// keep what they had). A table whose restore writes enough of its pages is proven by one scan of
/// the rows the transaction wrote ([`written`]); the others, and a table whose scan does not
/// match, are read back key by key, which names the keys.
async fn reverify(
    client: &Client,
    plan: &RecoverPlan,
    codecs: &[Arc<RowCodec>],
    dir: &Path,
    report: &mut ApplyReport,
) -> Result<()> {
    crate::log::phase("re-verifying");
    let mut touched = 0u64;
    let mut skipped = 0u64;
    let mut xid = None;
    for (t, codec) in plan.tables.iter().zip(codecs) {
        let file = key_file(&dir.join("keys"), t.index);
        let skip: HashSet<String> = report
            .conflicts
            .iter()
            .filter(|m| m.table == t.table)
            .map(|m| m.key.get().to_string())
            .collect();
        skipped += skip.len() as u64;
        let skip = Arc::new(skip);
        let mut actions = TOUCHED;
        let writes = t.planned(WRITTEN).saturating_sub(skip.len() as u64);
        if writes > 0
            && !t.keyless
            && !written::fixups_write(&plan.fixups, t)
            && written::scan_pays(client, t, writes).await?
        {
            if xid.is_none() {
                xid = Some(written::own_xid(client).await?);
            }
            let xid = xid.as_deref().expect("read above");
            if written::written_as_planned(client, t, codec.clone(), &file, skip.clone(), xid)
                .await?
            {
                // The inserts and updates are proven; deleted keys left no row to scan for.
                actions = &[Action::Delete];
                report.scanned.push(t.table.clone());
            }
        }
        if t.planned(actions) > 0 {
            let expect = Expect::After;
            let found = check_rows(client, t, codec.clone(), &file, expect, actions, skip).await?;
            report.reverify_mismatches.extend(found);
        }
        touched += t.insert + t.update + t.delete;
    }
    report.reverified_keys = touched - skipped;
    report.exit_code =
        i32::from(!report.reverify_mismatches.is_empty() || !report.conflicts.is_empty());
    Ok(())
}
