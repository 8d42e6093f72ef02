//! Sessions of the target's database from `pg_stat_activity` and `pg_locks`: who waits for a lock
//! and who holds it, what DDL is running, which transactions have been open too long.
//!
//! A lock wait is read as one row per (waiter, blocker) from `pg_blocking_pids`, joined to both
//! sessions and to the lock both name, then grouped by waiter here. A blocker either holds a
//! conflicting lock on the same object (`holds`) or is queued ahead of the waiter for it
//! (`waits_for`); only holders can be asked to let go, which is what [`super::notable`] advises.

use serde::Serialize;
use tokio_postgres::{Client, Row};

use crate::error::{Context, Result};

/// One `pg_stat_activity` row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub backend_type: Option<String>,
    /// `active`, `idle in transaction`, `idle in transaction (aborted)`, ...
    pub state: Option<String>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    pub xact_start: Option<String>,
    pub xact_age_secs: Option<f64>,
    pub query_start: Option<String>,
    pub query_age_secs: Option<f64>,
    pub state_age_secs: Option<f64>,
    /// The current query, or the last one when the session is idle.
    pub query: Option<String>,
}

impl Session {
    pub fn is_idle_in_transaction(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"))
    }
}

/// A session waiting for a lock, and the sessions it waits for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockWait {
    pub waiter: Session,
    pub lock_type: String,
    /// The mode waited for.
    pub mode: String,
    /// `schema.table` for relation (and page, tuple) locks in this database.
    pub relation: Option<String>,
    /// What is locked, in words: `relation public.t`, `transaction 745`, `advisory 1/42`.
    pub object: String,
    pub blockers: Vec<Blocker>,
}

/// A session in the way of a waiter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blocker {
    #[serde(flatten)]
    pub session: Session,
    /// Granted modes it holds on the object the waiter wants.
    pub holds: Vec<String>,
    /// The mode it is itself queued for on that object, when it holds nothing there.
    pub waits_for: Option<String>,
}

/// A session running (or holding the locks of) DDL.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DdlSession {
    #[serde(flatten)]
    pub session: Session,
    /// `pg_stat_progress_create_index` (or `_cluster`): command and phase.
    pub progress: Option<String>,
}

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// The `Session` columns of `pg_stat_activity` aliased `a`, in [`session_at`]'s order.
fn session_columns(a: &str) -> String {
    format!(
        "{a}.pid, {a}.usename::text, {a}.application_name, host({a}.client_addr), \
         {a}.backend_type, {a}.state, {a}.wait_event_type, {a}.wait_event, \
         to_char({a}.xact_start AT TIME ZONE 'UTC', {TS}), \
         extract(epoch FROM now() - {a}.xact_start)::float8, \
         to_char({a}.query_start AT TIME ZONE 'UTC', {TS}), \
         extract(epoch FROM now() - {a}.query_start)::float8, \
         extract(epoch FROM now() - {a}.state_change)::float8, {a}.query"
    )
}

const SESSION_WIDTH: usize = 14;

/// Reads a `Session` from the row's columns `at..at + SESSION_WIDTH`.
fn session_at(row: &Row, at: usize) -> Session {
    Session {
        pid: row.get(at),
        user: row.get(at + 1),
        application_name: row.get(at + 2),
        client_addr: row.get(at + 3),
        backend_type: row.get(at + 4),
        state: row.get(at + 5),
        wait_event_type: row.get(at + 6),
        wait_event: row.get(at + 7),
        xact_start: row.get(at + 8),
        xact_age_secs: row.get(at + 9),
        query_start: row.get(at + 10),
        query_age_secs: row.get(at + 11),
        state_age_secs: row.get(at + 12),
        query: row.get(at + 13),
    }
}

/// Two `pg_locks` rows `h` and `l` name the same lockable object.
const SAME_OBJECT: &str = "h.locktype = l.locktype
    AND h.database IS NOT DISTINCT FROM l.database AND h.relation IS NOT DISTINCT FROM l.relation
    AND h.page IS NOT DISTINCT FROM l.page AND h.tuple IS NOT DISTINCT FROM l.tuple
    AND h.virtualxid IS NOT DISTINCT FROM l.virtualxid
    AND h.transactionid IS NOT DISTINCT FROM l.transactionid
    AND h.classid IS NOT DISTINCT FROM l.classid AND h.objid IS NOT DISTINCT FROM l.objid
    AND h.objsubid IS NOT DISTINCT FROM l.objsubid";

fn lock_waits_sql() -> String {
    format!(
        "SELECT {waiter}, l.locktype, l.mode, rn.nspname || '.' || r.relname,
                CASE l.locktype
                  WHEN 'transactionid' THEN 'transaction ' || l.transactionid::text
                  WHEN 'virtualxid' THEN 'virtual transaction ' || l.virtualxid
                  WHEN 'advisory' THEN 'advisory ' || l.classid::text || '/' || l.objid::text
                  WHEN 'object' THEN 'object ' || l.classid::regclass::text || ' ' || l.objid::text
                  ELSE l.locktype || ' ' || coalesce(rn.nspname || '.' || r.relname,
                                                     l.relation::text, '')
                END,
                {blocker},
                ARRAY(SELECT DISTINCT h.mode FROM pg_locks h
                       WHERE h.pid = b.pid AND h.granted AND {SAME_OBJECT} ORDER BY 1),
                (SELECT min(h.mode) FROM pg_locks h
                  WHERE h.pid = b.pid AND NOT h.granted AND {SAME_OBJECT})
           FROM pg_stat_activity w
           JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
           LEFT JOIN pg_class r ON r.oid = l.relation
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
           CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
           JOIN pg_stat_activity b ON b.pid = bp.pid
          WHERE w.datname = current_database() AND w.pid <> pg_backend_pid()
          ORDER BY w.pid, b.pid",
        waiter = session_columns("w"),
        blocker = session_columns("b"),
    )
}

/// Every session of this database waiting for a lock, with what is in its way.
pub async fn lock_waits(client: &Client) -> Result<Vec<LockWait>> {
    let rows = client
        .query(&lock_waits_sql(), &[])
        .await
        .context(|| "reading lock waits (pg_locks, pg_stat_activity)".into())?;
    let at = SESSION_WIDTH;
    let pairs = rows.iter().map(|row| {
        let wait = LockWait {
            waiter: session_at(row, 0),
            lock_type: row.get(at),
            mode: row.get(at + 1),
            relation: row.get(at + 2),
            object: row.get::<_, Option<String>>(at + 3).unwrap_or_default(),
            blockers: Vec::new(),
        };
        let blocker = Blocker {
            session: session_at(row, at + 4),
            holds: row.get(at + 4 + SESSION_WIDTH),
            waits_for: row.get(at + 5 + SESSION_WIDTH),
        };
        (wait, blocker)
    });
    Ok(group_waits(pairs))
}

/// Folds (waiter, blocker) pairs, sorted by waiter, into one wait per waiter.
pub fn group_waits(pairs: impl IntoIterator<Item = (LockWait, Blocker)>) -> Vec<LockWait> {
    let mut waits: Vec<LockWait> = Vec::new();
    for (wait, blocker) in pairs {
        match waits.last_mut() {
            Some(last) if last.waiter.pid == wait.waiter.pid => last.blockers.push(blocker),
            _ => waits.push(LockWait {
                blockers: vec![blocker],
                ..wait
            }),
        }
    }
    waits
}

/// Sessions of this database whose transaction is older than `secs`.
pub async fn long_transactions(client: &Client, secs: f64) -> Result<Vec<Session>> {
    let sql = format!(
        "SELECT {} FROM pg_stat_activity a
          WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
            AND a.xact_start < now() - make_interval(secs => $1)
          ORDER BY a.xact_start, a.pid",
        session_columns("a")
    );
    let rows = client
        .query(&sql, &[&secs])
        .await
        .context(|| "reading long transactions (pg_stat_activity)".into())?;
    Ok(rows.iter().map(|r| session_at(r, 0)).collect())
}

/// Sessions of this database running DDL, or idle in the transaction of one; `version_num`
/// decides whether the progress views exist (PostgreSQL 12+).
pub async fn running_ddl(client: &Client, version_num: i32) -> Result<Vec<DdlSession>> {
    let progress = if version_num >= 120_000 {
        "coalesce(
           (SELECT p.command || ': ' || p.phase FROM pg_stat_progress_create_index p WHERE p.pid = a.pid),
           (SELECT p.command || ': ' || p.phase FROM pg_stat_progress_cluster p WHERE p.pid = a.pid))"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT {}, {progress} FROM pg_stat_activity a
          WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
            AND a.state IS DISTINCT FROM 'idle' AND a.xact_start IS NOT NULL
          ORDER BY a.xact_start, a.pid",
        session_columns("a")
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context(|| "reading running DDL (pg_stat_activity)".into())?;
    Ok(rows
        .iter()
        .map(|r| DdlSession {
            session: session_at(r, 0),
            progress: r.get(SESSION_WIDTH),
        })
        .filter(|d| d.progress.is_some() || d.session.query.as_deref().is_some_and(is_ddl))
        .collect())
}

/// Whether a statement changes the schema or takes table locks the way migrations do: the
/// first keyword after leading comments, and `VACUUM` only when `FULL`.
pub fn is_ddl(query: &str) -> bool {
    let words: Vec<String> = strip_leading_comments(query)
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some(
            "ALTER" | "CREATE" | "DROP" | "TRUNCATE" | "REINDEX" | "CLUSTER" | "LOCK" | "REFRESH"
            | "COMMENT",
        ) => true,
        Some("VACUUM") => words.get(1).is_some_and(|w| w == "FULL"),
        _ => false,
    }
}

/// Skips whitespace, `-- line` and `/* block */` comments (ORMs prefix queries with them).
fn strip_leading_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_is_recognized_after_comments_and_in_any_case() {
        for q in [
            "ALTER TABLE t ADD COLUMN x int",
            "  create unique index concurrently i on t (x)",
            "/* rails:migration */ DROP INDEX i",
            "-- migrate\nLOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            "vacuum full t",
            "REINDEX INDEX CONCURRENTLY i",
            "TRUNCATE t",
        ] {
            assert!(is_ddl(q), "{q}");
        }
        for q in [
            "SELECT * FROM t",
            "vacuum t",
            "UPDATE t SET x = 1",
            "/* ALTER */ SELECT 1",
            "",
            "-- only a comment",
        ] {
            assert!(!is_ddl(q), "{q}");
        }
    }

    fn wait(pid: i32) -> LockWait {
        LockWait {
            waiter: Session {
                pid,
                ..Session::default()
            },
            lock_type: "relation".into(),
            mode: "AccessShareLock".into(),
            relation: Some("public.t".into()),
            object: "relation public.t".into(),
            blockers: Vec::new(),
        }
    }

    fn blocker(pid: i32) -> Blocker {
        Blocker {
            session: Session {
                pid,
                ..Session::default()
            },
            holds: vec!["AccessExclusiveLock".into()],
            waits_for: None,
        }
    }

    #[test]
    fn pairs_group_by_waiter() {
        let grouped = group_waits([
            (wait(10), blocker(1)),
            (wait(10), blocker(2)),
            (wait(11), blocker(1)),
        ]);
        let shape: Vec<(i32, Vec<i32>)> = grouped
            .iter()
            .map(|w| {
                (
                    w.waiter.pid,
                    w.blockers.iter().map(|b| b.session.pid).collect(),
                )
            })
            .collect();
        assert_eq!(shape, vec![(10, vec![1, 2]), (11, vec![1])]);
    }

    #[test]
    fn idle_in_transaction_includes_aborted() {
        let mut s = Session::default();
        assert!(!s.is_idle_in_transaction());
        s.state = Some("idle in transaction (aborted)".into());
        assert!(s.is_idle_in_transaction());
        s.state = Some("active".into());
        assert!(!s.is_idle_in_transaction());
    }
}
