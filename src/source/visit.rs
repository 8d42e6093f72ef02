//! Short transactions on a source's snapshot: how a run reads a live primary without blocking it.
//!
//! The coordinator session exports the snapshot and then reads only the catalogs, so it holds no
//! lock on a user table. Every read of a table happens in a *visit*: a transaction on a worker
//! session that imports the snapshot, takes the table's ACCESS SHARE lock, streams one key range
//! and commits. A migration's DDL that arrives meanwhile waits for one range's read at most, and so
//! does the application query queued behind that DDL.
//!
//! Worker sessions ask for their lock with a short `lock_timeout`, so a visit never queues in front
//! of a waiting DDL (where it would hold up every query behind both); a visit that cannot get its
//! lock rolls back, names who holds or wants the table, and tries again later with backoff, up to
//! `--lock-wait` in all. Once locked, a visit checks that the table's files are still those of the
//! snapshot: TRUNCATE and the rewriting commands (ALTER ... TYPE, VACUUM FULL, CLUSTER) give a
//! relation a new relfilenode, and the old snapshot would then read the new, possibly empty, files.
//! Such a range is an error (unverified), never a false "identical" or "all rows missing".

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::Session;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::shape::TableName;

/// How long one lock request may wait before it gives up and is retried: short enough that a
/// visit queued behind a DDL is gone before the application notices, long enough that a lock held
/// for a moment by an ordinary statement is simply waited for.
pub const LOCK_TRY: Duration = Duration::from_millis(1000);

/// What worker sessions set, once, after connecting.
pub fn session_setup() -> String {
    format!(
        "SET lock_timeout = {}; SET application_name = 'pgsalvage'",
        LOCK_TRY.as_millis()
    )
}

/// The statement that opens a transaction on an exported snapshot.
pub fn begin_on(snapshot_id: &str) -> String {
    format!(
        "{}; SET TRANSACTION SNAPSHOT {}",
        super::BEGIN,
        postgres_protocol::escape::escape_literal(snapshot_id)
    )
}

/// `WITH RECURSIVE tree(relid)`: `table` as named now and, through pg_inherits, its partitions
/// and children (pg_partition_tree would itself wait for their locks).
fn inheritance_tree(table: &TableName) -> String {
    format!(
        "WITH RECURSIVE tree(relid) AS (SELECT {}::oid \
           UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid)",
        crate::sql::regclass(table)
    )
}

/// Why a visit could not start.
#[derive(Debug)]
enum Refused {
    /// The lock did not come within [`LOCK_TRY`]; who holds or wants the table, as a phrase.
    Busy(String),
    Failed(Error),
}

/// Opens a visit of `table` on `session`: a snapshot transaction holding the table's lock, whose
/// files are the snapshot's.
async fn enter(session: &Client, snapshot_id: &str, table: &TableName) -> Result<(), Refused> {
    let name = table.sql();
    // The tree walks the snapshot's pg_inherits from the table as named now; each relation is
    // compared as the snapshot's pg_class saw it with pg_relation_filenode, which reads the
    // current catalog. A table dropped and made again under the same name is not in the
    // snapshot's pg_class at all, which counts as rewritten too.
    let sql = format!(
        "{}; LOCK TABLE {name} IN ACCESS SHARE MODE; {}",
        begin_on(snapshot_id),
        files_changed(table)
    );
    crate::log!(2, "sql: {sql}");
    let result = session.simple_query(&sql).await;
    let messages = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = session.batch_execute("ROLLBACK").await;
            if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                return Err(Refused::Busy(
                    blockers(session, table, READ_CONFLICTS).await,
                ));
            }
            return Err(Refused::Failed(Error::pg(e)));
        }
    };
    if rewritten(&messages) {
        let _ = session.batch_execute("ROLLBACK").await;
        return Err(Refused::Failed(
            Error::source(format!(
                "{table} was rewritten after the snapshot was taken (TRUNCATE, ALTER TABLE ... TYPE, \
                 VACUUM FULL or CLUSTER): its rows as of the snapshot can no longer be read"
            ))
            .with_hint("run again: the new run takes a snapshot after the rewrite"),
        ));
    }
    Ok(())
}

/// Counts the relations of `table`'s tree whose files are no longer the snapshot's.
fn files_changed(table: &TableName) -> String {
    format!(
        "{} SELECT count(*) FILTER (WHERE p.oid IS NULL OR (p.relkind IN ('r', 'm') \
                AND p.relfilenode IS DISTINCT FROM pg_relation_filenode(p.oid))) \
           FROM tree LEFT JOIN pg_class p ON p.oid = tree.relid",
        inheritance_tree(table)
    )
}

/// In a snapshot transaction already open on `session`: takes `table`'s `ACCESS SHARE` lock (kept
/// to the transaction's end, as any read's) and fails if its files are no longer the snapshot's.
/// What a read by physical place (`ctid`) needs: after a rewrite a place can hold another row.
pub async fn hold_snapshot_files(session: &Client, table: &TableName) -> Result<()> {
    let sql = format!(
        "LOCK TABLE {} IN ACCESS SHARE MODE; {}",
        table.sql(),
        files_changed(table)
    );
    crate::log!(2, "sql: {sql}");
    let messages = session.simple_query(&sql).await.map_err(Error::pg)?;
    if rewritten(&messages) {
        return Err(Error::source(format!(
            "{table} was rewritten after the comparison's snapshot was taken (TRUNCATE, ALTER \
             TABLE ... TYPE, VACUUM FULL or CLUSTER): its rows cannot be found by their place"
        ))
        .with_hint("run recover again: the new run takes a snapshot after the rewrite"));
    }
    Ok(())
}

fn rewritten(messages: &[SimpleQueryMessage]) -> bool {
    messages.iter().any(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).is_some_and(|n| n != "0"),
        _ => false,
    })
}

/// Ends a visit.
pub async fn leave(session: &Client) -> Result<()> {
    session.batch_execute("COMMIT").await.map_err(Error::pg)
}

/// Who holds or waits for a lock in `modes` (those that conflict with the one asked for) on
/// `table` or its partitions, as a phrase: "pid 4242 holds AccessExclusiveLock (active: ALTER
/// TABLE ...)". Read after the failed request is rolled back, so the pids are current (inside a
/// transaction pg_stat_activity is read once, so its query texts may then be older). Inheritance
/// is walked through pg_inherits, since pg_partition_tree would itself wait for the partitions'
/// locks.
pub async fn blockers(session: &Client, table: &TableName, modes: &[&str]) -> String {
    let modes: Vec<String> = modes
        .iter()
        .map(|m| postgres_protocol::escape::escape_literal(m))
        .collect();
    let sql = format!(
        "{} SELECT l.pid::text || CASE WHEN l.granted THEN ' holds ' ELSE ' waits for ' END \
                || l.mode || ' (' || coalesce(a.state, '?') || ': ' \
                || left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80) || ')' \
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
          WHERE l.locktype = 'relation' AND l.mode IN ({}) \
            AND l.relation IN (SELECT relid FROM tree) AND l.pid <> pg_backend_pid() \
          ORDER BY l.granted DESC, l.pid",
        inheritance_tree(table),
        modes.join(", ")
    );
    let rows = match session.simple_query(&sql).await {
        Ok(m) => m,
        Err(e) => return format!("its holder could not be read: {}", Error::pg(e)),
    };
    let who: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    match who.is_empty() {
        true => "a lock that was released before it could be named".into(),
        false => format!("pid {}", who.join("; pid ")),
    }
}

/// The lock modes that keep a reader (ACCESS SHARE) out.
pub const READ_CONFLICTS: &[&str] = &["AccessExclusiveLock"];

/// How long a run waits for locks, and where it says that it waits.
#[derive(Clone)]
pub struct Patience<'a> {
    pub lock_wait: Duration,
    pub reporter: &'a dyn Reporter,
}

/// One source of a visit of several: its name in messages, its session and snapshot.
pub struct Stop<'a> {
    pub role: String,
    pub session: &'a Session,
    pub snapshot_id: &'a str,
}

/// Enters a visit of `table` on every source in `stops`, together: when one is busy, the visits
/// already entered are left (their locks released) and all are tried again after a backoff, until
/// `patience.lock_wait` has passed; then the error names the blocker. `what` ends the errors'
/// "reading <table> from <source>" clause (", range [1, 9)").
pub async fn enter_all(
    stops: &[Stop<'_>],
    table: &TableName,
    what: &str,
    patience: &Patience<'_>,
) -> Result<()> {
    let mut waits = patience.start();
    loop {
        let (role, busy) = match enter_each(stops, table, what).await {
            Ok(()) => {
                waits.over();
                return Ok(());
            }
            Err(Refusal::Failed(e)) => return Err(e),
            Err(Refusal::Busy(who)) => who,
        };
        let doing = format!("waiting for a lock on {table} on {role}");
        if let Err(e) = waits.again(&doing, &busy).await {
            return Err(e
                .context(format!("reading {table} from {role}{what}"))
                .with_hint("the table is left unverified; run again once that session is done, or raise --lock-wait"));
        }
    }
}

/// A run of tries for locks: backs off between them and says, while it lasts, what it waits for.
pub struct Waits<'a> {
    patience: &'a Patience<'a>,
    started: Instant,
    pause: Duration,
}

impl<'a> Patience<'a> {
    /// Starts counting the wait.
    pub fn start(&'a self) -> Waits<'a> {
        Waits {
            patience: self,
            started: Instant::now(),
            pause: Duration::from_millis(250),
        }
    }
}

impl Waits<'_> {
    /// After a try that met `who` in the way: says so and waits before the next (250 ms,
    /// doubling up to 4 s); an error once `--lock-wait` is spent or the run is interrupted.
    pub async fn again(&mut self, doing: &str, who: &str) -> Result<()> {
        let (waited, limit) = (self.started.elapsed(), self.patience.lock_wait);
        if crate::interrupt::requested() {
            self.over();
            return Err(crate::interrupt::error());
        }
        if waited >= limit {
            self.over();
            return Err(Error::source(format!(
                "no lock within {} s (--lock-wait): {who}",
                limit.as_secs()
            )));
        }
        let said = format!(
            "{doing} ({} s of --lock-wait {} s): {who}",
            waited.as_secs(),
            limit.as_secs()
        );
        self.patience.reporter.waiting(Some(&said));
        tokio::time::sleep(self.pause.min(limit.saturating_sub(waited))).await;
        self.pause = (self.pause * 2).min(Duration::from_secs(4));
        Ok(())
    }

    /// The wait is over (whichever way): the progress line stops saying it.
    pub fn over(&self) {
        if self.started.elapsed() > LOCK_TRY {
            self.patience.reporter.waiting(None);
        }
    }
}

async fn enter_each(stops: &[Stop<'_>], table: &TableName, what: &str) -> Result<(), Refusal> {
    for (i, stop) in stops.iter().enumerate() {
        if let Err(refused) = enter(stop.session, stop.snapshot_id, table).await {
            for entered in &stops[..i] {
                let _ = entered.session.batch_execute("ROLLBACK").await;
            }
            return Err(match refused {
                Refused::Busy(who) => Refusal::Busy((stop.role.clone(), who)),
                Refused::Failed(e) => {
                    Refusal::Failed(e.context(format!("reading {table} from {}{what}", stop.role)))
                }
            });
        }
    }
    Ok(())
}

/// Why a visit of several sources could not start: the busy one's role and blocker.
enum Refusal {
    Busy((String, String)),
    Failed(Error),
}

/// Leaves the visits of every source in `stops`.
pub async fn leave_all(stops: &[Stop<'_>]) -> Result<()> {
    for stop in stops {
        leave(stop.session).await?;
    }
    Ok(())
}
