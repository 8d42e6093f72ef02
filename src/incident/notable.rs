//! What in a status report needs a person, and the SQL they could run about it.
//!
//! Pure functions over the observations ([`classify`]): no server, no clock, so every rule is
//! tested below. The advice is SQL text to review and run by hand, with its warnings as SQL
//! comments so that it can be pasted as is; pgsalvage never runs it. Advice always names one
//! session, index or table: no "terminate everything idle".

use serde::Serialize;

use super::activity::{is_ddl, LockWait, Session};
use super::human::{age, bytes, short};
use super::indexes::InvalidIndex;
use super::migrations::{MigrationTable, Tool};
use super::replication::{Replica, Replication, Slot, StandbyState};
use super::StatusReport;
pub use crate::settings::Thresholds;
use crate::shape::quote_ident;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotableKind {
    MigrationDirty,
    MigrationFailed,
    MigrationLocked,
    LockWait,
    LongTransaction,
    InvalidIndex,
    ReplayPaused,
    StandbyLag,
    ReplicaLag,
    InactiveSlot,
}

/// One thing that needs attention.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notable {
    pub kind: NotableKind,
    /// The table, `pid N`, index, replica or slot it is about.
    pub subject: String,
    /// One line, readable on its own.
    pub summary: String,
    /// SQL for a person to review and run; warnings are SQL comments.
    pub advice: Vec<String>,
}

/// Everything notable in the report, in the order the report lists it.
pub fn classify(r: &StatusReport) -> Vec<Notable> {
    let mut out = Vec::new();
    out.extend(r.migrations.iter().flat_map(migration));
    out.extend(r.lock_waits.iter().map(lock_wait));
    // A waiter's open transaction is the lock wait's doing, already reported with it.
    let waiting = |pid: i32| r.lock_waits.iter().any(|w| w.waiter.pid == pid);
    out.extend(
        r.long_transactions
            .iter()
            .filter(|s| !waiting(s.pid))
            .map(long_transaction),
    );
    let standby = r.server.in_recovery;
    out.extend(
        r.invalid_indexes
            .iter()
            .filter_map(|i| invalid_index(i, standby)),
    );
    out.extend(replication(&r.replication, &r.thresholds));
    out
}

fn migration(m: &MigrationTable) -> Vec<Notable> {
    [dirty(m), failed(m), locked(m)]
        .into_iter()
        .flatten()
        .map(|(kind, summary, advice)| Notable {
            kind,
            subject: m.table.clone(),
            summary,
            advice,
        })
        .collect()
}

type Note = (NotableKind, String, Vec<String>);

fn dirty(m: &MigrationTable) -> Option<Note> {
    if !m.dirty {
        return None;
    }
    let v = m.current_version.as_deref().unwrap_or("?");
    Some((
        NotableKind::MigrationDirty,
        format!("{} version {v} is dirty: that migration stopped part-way", m.tool),
        vec![
            format!("-- WARNING: first finish or undo the statements of migration {v} by hand; this only clears the flag"),
            format!("-- (same as `migrate force {v}`; if you undid it, force the previous version instead)"),
            format!("UPDATE {} SET dirty = false WHERE version = {};", m.name.sql(), literal(v)),
        ],
    ))
}

fn failed(m: &MigrationTable) -> Option<Note> {
    if m.failed.is_empty() {
        return None;
    }
    let list: Vec<String> = m.failed.iter().map(failed_text).collect();
    Some((
        NotableKind::MigrationFailed,
        format!(
            "{} recorded {} failed migration(s): {}",
            m.tool,
            list.len(),
            list.join("; ")
        ),
        failed_advice(m.tool, &m.name.sql()),
    ))
}

fn locked(m: &MigrationTable) -> Option<Note> {
    let lock = m.lock.as_ref()?;
    let by = lock.locked_by.as_deref().unwrap_or("unknown");
    let since = lock.since.as_deref().unwrap_or("unknown");
    Some((
        NotableKind::MigrationLocked,
        format!("{} lock is held by {by} since {since}", m.tool),
        vec![
            "-- WARNING: only if no Liquibase run is alive (same as `liquibase release-locks`)"
                .into(),
            format!(
                "UPDATE {} SET locked = false, lockgranted = NULL, lockedby = NULL WHERE locked;",
                m.name.sql()
            ),
        ],
    ))
}

fn failed_text(f: &super::migrations::FailedMigration) -> String {
    let mut text = f.version.clone();
    if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(&format!(" ({d})"));
    }
    if let Some(at) = &f.at {
        text.push_str(&format!(" at {at}"));
    }
    text
}

fn failed_advice(tool: Tool, table: &str) -> Vec<String> {
    let undo =
        "-- WARNING: first undo (or finish) by hand what the failed migration did;".to_string();
    match tool {
        Tool::Flyway => vec![
            undo,
            "-- then remove its row so that it runs again (same as `flyway repair`):".into(),
            format!("DELETE FROM {table} WHERE NOT success;"),
        ],
        Tool::Sqlx => vec![
            undo,
            "-- then remove its row so that `sqlx migrate run` runs it again:".into(),
            format!("DELETE FROM {table} WHERE NOT success;"),
        ],
        _ => vec![
            undo,
            "-- then run the tool again; it retries failed changesets".into(),
        ],
    }
}

fn lock_wait(w: &LockWait) -> Notable {
    let waiter = &w.waiter;
    let waited = waiter.query_age_secs.map(age).unwrap_or_default();
    let blockers: Vec<String> = w.blockers.iter().map(blocker_text).collect();
    let summary = format!(
        "pid {} has waited {waited} for {} on {} ({}), blocked by {}",
        waiter.pid,
        w.mode,
        w.object,
        short(waiter.query.as_deref().unwrap_or(""), 80),
        blockers.join("; ")
    );
    let mut advice = Vec::new();
    if waiter.query.as_deref().is_some_and(is_ddl) {
        advice.push(format!(
            "-- pid {} is DDL waiting for its lock: every later query on the table queues behind it",
            waiter.pid
        ));
        advice.push(format!(
            "SELECT pg_cancel_backend({});  -- then retry the migration with SET lock_timeout = '2s'",
            waiter.pid
        ));
    }
    let holders: Vec<&Session> = w
        .blockers
        .iter()
        .filter(|b| !b.holds.is_empty())
        .map(|b| &b.session)
        .collect();
    for s in &holders {
        advice.extend(end_session(s));
    }
    if holders.is_empty() {
        advice.push("-- the sessions ahead of it are queued too: see their own lock waits".into());
    }
    Notable {
        kind: NotableKind::LockWait,
        subject: format!("pid {}", waiter.pid),
        summary,
        advice,
    }
}

fn blocker_text(b: &super::activity::Blocker) -> String {
    let what = match (b.holds.is_empty(), &b.waits_for) {
        (false, _) => format!("holds {}", b.holds.join(", ")),
        (true, Some(mode)) => format!("queued ahead for {mode}"),
        (true, None) => "in the way".to_string(),
    };
    format!(
        "pid {} ({}, {what}: {})",
        b.session.pid,
        session_state(&b.session),
        short(b.session.query.as_deref().unwrap_or(""), 80)
    )
}

/// `idle in transaction, transaction 5m03s`.
pub(crate) fn session_state(s: &Session) -> String {
    let state = s.state.as_deref().unwrap_or("unknown state");
    match s.xact_age_secs {
        Some(secs) => format!("{state}, transaction {}", age(secs)),
        None => state.to_string(),
    }
}

/// How to make one session let go: cancel its statement, or end it when it sits idle in its
/// transaction (a cancel does nothing there).
fn end_session(s: &Session) -> Vec<String> {
    let who = [
        s.user.as_deref(),
        s.application_name.as_deref().filter(|a| !a.is_empty()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let check = format!(
        "-- pid {} ({who}): check whose session it is first; ending it rolls back its transaction",
        s.pid
    );
    if s.is_idle_in_transaction() {
        vec![
            check,
            format!("SELECT pg_terminate_backend({});  -- idle in transaction: a cancel would do nothing", s.pid),
        ]
    } else {
        vec![
            check,
            format!("SELECT pg_cancel_backend({});  -- cancels its current statement", s.pid),
            format!("SELECT pg_terminate_backend({});  -- if it goes on holding locks: ends the session", s.pid),
        ]
    }
}

fn long_transaction(s: &Session) -> Notable {
    Notable {
        kind: NotableKind::LongTransaction,
        subject: format!("pid {}", s.pid),
        summary: format!(
            "pid {} has had a transaction open for {} ({}): {}",
            s.pid,
            s.xact_age_secs.map(age).unwrap_or_default(),
            s.state.as_deref().unwrap_or("unknown state"),
            short(s.query.as_deref().unwrap_or(""), 80)
        ),
        advice: end_session(s),
    }
}

fn invalid_index(i: &InvalidIndex, standby: bool) -> Option<Notable> {
    if i.in_progress.is_some() {
        return None;
    }
    let index = format!("{}.{}", quote_ident(&i.schema), quote_ident(&i.name));
    let mut advice = Vec::new();
    if standby {
        advice.push("-- this server is a standby: run these on the primary".to_string());
    }
    let cause = match reindex_leftover(&i.name) {
        Some(Leftover::New) => {
            advice.push(
                "-- left by a failed REINDEX CONCURRENTLY; the original index is intact".into(),
            );
            advice.push(format!("DROP INDEX CONCURRENTLY {index};"));
            "left by a failed REINDEX CONCURRENTLY"
        }
        Some(Leftover::Old) => {
            advice.push("-- the old copy left by a REINDEX CONCURRENTLY that failed after the swap; the new index is valid".into());
            advice.push(format!("DROP INDEX CONCURRENTLY {index};"));
            "left by a failed REINDEX CONCURRENTLY"
        }
        None => {
            if i.unique {
                advice.push("-- a unique index: remove the duplicate values first, or the rebuild fails again".into());
            }
            advice.push(format!("DROP INDEX CONCURRENTLY {index};"));
            advice.push(format!("{};", concurrently(&i.definition)));
            advice.push(format!(
                "-- or in one step (PostgreSQL 12+): REINDEX INDEX CONCURRENTLY {index};"
            ));
            "a failed CREATE INDEX CONCURRENTLY?"
        }
    };
    Some(Notable {
        kind: NotableKind::InvalidIndex,
        subject: i.index.clone(),
        summary: format!(
            "index {} on {} is invalid ({cause}): unused by queries, still updated on every write",
            i.index, i.table
        ),
        advice,
    })
}

enum Leftover {
    New,
    Old,
}

/// REINDEX CONCURRENTLY names its copies `<index>_ccnew[N]` and `<index>_ccold[N]`.
fn reindex_leftover(name: &str) -> Option<Leftover> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.ends_with("_ccnew") {
        Some(Leftover::New)
    } else if stem.ends_with("_ccold") {
        Some(Leftover::Old)
    } else {
        None
    }
}

/// `CREATE [UNIQUE] INDEX name ON ...` → `CREATE [UNIQUE] INDEX CONCURRENTLY name ON ...`.
pub fn concurrently(definition: &str) -> String {
    for prefix in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = definition.strip_prefix(prefix) {
            return format!("{prefix}CONCURRENTLY {rest}");
        }
    }
    definition.to_string()
}

fn replication(r: &Replication, t: &Thresholds) -> Vec<Notable> {
    let mut out = Vec::new();
    if let Some(s) = &r.standby {
        out.extend(standby(s, t));
    }
    out.extend(r.replicas.iter().filter_map(|rep| replica(rep, t)));
    out.extend(r.slots.iter().filter_map(|s| slot(s, t)));
    out
}

fn standby(s: &StandbyState, t: &Thresholds) -> Option<Notable> {
    let behind = s.receive_replay_lag_bytes.unwrap_or(0);
    let at = s.replay_lsn.as_deref().unwrap_or("?");
    if s.paused {
        return Some(Notable {
            kind: NotableKind::ReplayPaused,
            subject: "this standby".into(),
            summary: format!(
                "WAL replay {} at {at} ({} received and not replayed)",
                s.pause_state,
                bytes(behind)
            ),
            advice: vec![
                "-- WARNING: only if nobody paused it on purpose: a paused standby may be the pre-damage copy".into(),
                "-- to recover from (pgsalvage --replica); once resumed, it replays the damage too".into(),
                "SELECT pg_wal_replay_resume();".into(),
            ],
        });
    }
    let old = s.last_replay_age_secs.unwrap_or(0.0) > t.lag_after_secs as f64;
    if behind as u64 > t.lag_bytes || (behind > 0 && old) {
        return Some(Notable {
            kind: NotableKind::StandbyLag,
            subject: "this standby".into(),
            summary: format!(
                "replay is {} behind what was received (last replayed commit {} ago)",
                bytes(behind),
                s.last_replay_age_secs
                    .map(age)
                    .unwrap_or_else(|| "?".into())
            ),
            advice: Vec::new(),
        });
    }
    None
}

fn replica(r: &Replica, t: &Thresholds) -> Option<Notable> {
    let lag = r.replay_lag_bytes.unwrap_or(0);
    let secs = r.replay_lag_secs.unwrap_or(0.0);
    if (lag as u64) <= t.lag_bytes && secs <= t.lag_after_secs as f64 {
        return None;
    }
    let name = r.application_name.as_deref().unwrap_or("?");
    let addr = r.client_addr.as_deref().unwrap_or("local");
    Some(Notable {
        kind: NotableKind::ReplicaLag,
        subject: format!("replica {name} ({addr})"),
        summary: format!(
            "replica {name} ({addr}) replays {} behind, replay lag {}",
            bytes(lag),
            age(secs)
        ),
        advice: vec![
            "-- on the replica, see whether replay was paused: SELECT pg_get_wal_replay_pause_state();".into(),
        ],
    })
}

fn slot(s: &Slot, t: &Thresholds) -> Option<Notable> {
    let kept = s.retained_bytes.unwrap_or(0);
    if s.active || kept as u64 <= t.lag_bytes {
        return None;
    }
    Some(Notable {
        kind: NotableKind::InactiveSlot,
        subject: format!("slot {}", s.slot_name),
        summary: format!(
            "inactive replication slot {} keeps {} of WAL",
            s.slot_name,
            bytes(kept)
        ),
        advice: vec![
            "-- WARNING: only if its consumer is gone for good; a dropped slot cannot be resumed"
                .into(),
            format!(
                "SELECT pg_drop_replication_slot({});",
                literal(&s.slot_name)
            ),
        ],
    })
}

fn literal(text: &str) -> String {
    postgres_protocol::escape::escape_literal(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::activity::Blocker;
    use crate::incident::migrations::FailedMigration;
    use crate::shape::TableName;

    fn table(tool: Tool, schema: &str, name: &str) -> MigrationTable {
        MigrationTable {
            tool,
            table: format!("{schema}.{name}"),
            name: TableName::new(schema, name),
            rows: 1,
            current_version: Some("42".into()),
            applied_at: None,
            dirty: false,
            failed: Vec::new(),
            lock: None,
            error: None,
        }
    }

    #[test]
    fn a_clean_migration_table_is_not_notable() {
        assert!(migration(&table(Tool::Rails, "public", "schema_migrations")).is_empty());
    }

    #[test]
    fn a_dirty_version_advises_clearing_the_flag_with_a_warning() {
        let mut m = table(Tool::GolangMigrate, "app", "schema_migrations");
        m.dirty = true;
        let notes = migration(&m);
        assert_eq!(notes.len(), 1);
        let n = &notes[0];
        assert_eq!(n.kind, NotableKind::MigrationDirty);
        assert!(n.summary.contains("version 42 is dirty"), "{}", n.summary);
        assert!(n.advice[0].starts_with("-- WARNING"));
        assert_eq!(
            n.advice.last().unwrap(),
            "UPDATE \"app\".\"schema_migrations\" SET dirty = false WHERE version = '42';"
        );
    }

    #[test]
    fn failed_flyway_rows_are_listed_and_repair_is_advised() {
        let mut m = table(Tool::Flyway, "public", "flyway_schema_history");
        m.failed.push(FailedMigration {
            version: "3".into(),
            description: Some("add orders".into()),
            at: Some("2026-01-01T00:00:00".into()),
        });
        let n = &migration(&m)[0];
        assert_eq!(n.kind, NotableKind::MigrationFailed);
        assert!(
            n.summary.contains("3 (add orders) at 2026-01-01T00:00:00"),
            "{}",
            n.summary
        );
        assert!(n.advice.contains(
            &"DELETE FROM \"public\".\"flyway_schema_history\" WHERE NOT success;".into()
        ));
    }

    fn session(pid: i32, state: &str, query: &str) -> Session {
        Session {
            pid,
            state: Some(state.into()),
            query: Some(query.into()),
            xact_age_secs: Some(75.0),
            query_age_secs: Some(3.0),
            user: Some("app".into()),
            ..Session::default()
        }
    }

    fn wait_on(waiter: Session, blockers: Vec<Blocker>) -> LockWait {
        LockWait {
            waiter,
            lock_type: "relation".into(),
            mode: "AccessShareLock".into(),
            relation: Some("public.t".into()),
            object: "relation public.t".into(),
            blockers,
        }
    }

    #[test]
    fn a_holder_idle_in_transaction_is_terminated_not_cancelled() {
        let w = wait_on(
            session(20, "active", "SELECT * FROM t"),
            vec![Blocker {
                session: session(10, "idle in transaction", "LOCK TABLE t"),
                holds: vec!["AccessExclusiveLock".into()],
                waits_for: None,
            }],
        );
        let n = lock_wait(&w);
        assert_eq!(n.subject, "pid 20");
        assert!(n.summary.contains("pid 10 (idle in transaction, transaction 1m15s, holds AccessExclusiveLock: LOCK TABLE t)"), "{}", n.summary);
        let sql: Vec<&String> = n.advice.iter().filter(|l| !l.starts_with("--")).collect();
        assert_eq!(sql.len(), 1);
        assert!(sql[0].starts_with("SELECT pg_terminate_backend(10);"));
    }

    #[test]
    fn waiting_ddl_is_cancelled_and_active_holders_cancelled_first() {
        let w = wait_on(
            session(20, "active", "ALTER TABLE t ADD x int"),
            vec![Blocker {
                session: session(10, "active", "SELECT pg_sleep(100) FROM t"),
                holds: vec!["AccessShareLock".into()],
                waits_for: None,
            }],
        );
        let sql: Vec<String> = lock_wait(&w)
            .advice
            .into_iter()
            .filter(|l| !l.starts_with("--"))
            .collect();
        assert!(
            sql[0].starts_with("SELECT pg_cancel_backend(20);"),
            "{sql:?}"
        );
        assert!(
            sql[1].starts_with("SELECT pg_cancel_backend(10);"),
            "{sql:?}"
        );
        assert!(
            sql[2].starts_with("SELECT pg_terminate_backend(10);"),
            "{sql:?}"
        );
    }

    #[test]
    fn queued_blockers_get_no_advice_to_end_them() {
        let w = wait_on(
            session(30, "active", "SELECT 1 FROM t"),
            vec![Blocker {
                session: session(20, "active", "ALTER TABLE t ADD x int"),
                holds: Vec::new(),
                waits_for: Some("AccessExclusiveLock".into()),
            }],
        );
        let n = lock_wait(&w);
        assert!(n.summary.contains("queued ahead for AccessExclusiveLock"));
        assert!(
            n.advice.iter().all(|l| l.starts_with("--")),
            "{:?}",
            n.advice
        );
    }

    fn index(name: &str, unique: bool) -> InvalidIndex {
        InvalidIndex {
            index: format!("public.{name}"),
            schema: "public".into(),
            name: name.into(),
            table: "public.u".into(),
            definition: format!("CREATE UNIQUE INDEX {name} ON public.u USING btree (v)"),
            unique,
            ready: true,
            live: true,
            in_progress: None,
        }
    }

    #[test]
    fn an_invalid_index_is_rebuilt_concurrently() {
        let n = invalid_index(&index("u_v", true), false).unwrap();
        assert!(n
            .advice
            .contains(&"DROP INDEX CONCURRENTLY \"public\".\"u_v\";".into()));
        assert!(n
            .advice
            .contains(&"CREATE UNIQUE INDEX CONCURRENTLY u_v ON public.u USING btree (v);".into()));
        assert!(n.advice.iter().any(|l| l.contains("duplicate values")));
        let mut building = index("u_v", true);
        building.in_progress = Some("pid 7: CREATE INDEX CONCURRENTLY, building index".into());
        assert!(invalid_index(&building, false).is_none());
        let on_standby = invalid_index(&index("u_v", false), true).unwrap();
        assert!(on_standby.advice[0].contains("run these on the primary"));
    }

    #[test]
    fn reindex_leftovers_are_only_dropped() {
        for name in ["u_v_ccnew", "u_v_ccnew1", "u_v_ccold"] {
            let n = invalid_index(&index(name, false), false).unwrap();
            let sql: Vec<&String> = n.advice.iter().filter(|l| !l.starts_with("--")).collect();
            assert_eq!(
                sql,
                vec![&format!("DROP INDEX CONCURRENTLY \"public\".\"{name}\";")]
            );
        }
    }

    #[test]
    fn concurrently_goes_after_index() {
        assert_eq!(
            concurrently("CREATE INDEX i ON public.t USING btree (x)"),
            "CREATE INDEX CONCURRENTLY i ON public.t USING btree (x)"
        );
        assert_eq!(concurrently("something else"), "something else");
    }

    #[test]
    fn a_paused_standby_is_notable_and_resume_is_advised_with_a_warning() {
        let t = Thresholds::default();
        let paused = StandbyState {
            paused: true,
            pause_state: "paused".into(),
            replay_lsn: Some("0/3000000".into()),
            receive_replay_lag_bytes: Some(4096),
            ..StandbyState::default()
        };
        let n = standby(&paused, &t).unwrap();
        assert_eq!(n.kind, NotableKind::ReplayPaused);
        assert!(
            n.summary.contains("paused at 0/3000000 (4.0 KiB"),
            "{}",
            n.summary
        );
        assert_eq!(n.advice.last().unwrap(), "SELECT pg_wal_replay_resume();");
        assert!(n.advice[0].starts_with("-- WARNING"));
        // Idle primary: the last commit is old but nothing waits to be replayed.
        let idle = StandbyState {
            pause_state: "not paused".into(),
            last_replay_age_secs: Some(3600.0),
            receive_replay_lag_bytes: Some(0),
            ..StandbyState::default()
        };
        assert!(standby(&idle, &t).is_none());
        let behind = StandbyState {
            receive_replay_lag_bytes: Some(10),
            ..idle
        };
        assert_eq!(standby(&behind, &t).unwrap().kind, NotableKind::StandbyLag);
    }

    #[test]
    fn replicas_and_slots_are_notable_past_the_thresholds() {
        let t = Thresholds::default();
        let mut r = Replica {
            replay_lag_bytes: Some(100),
            replay_lag_secs: Some(0.5),
            ..Replica::default()
        };
        assert!(replica(&r, &t).is_none());
        r.replay_lag_bytes = Some(t.lag_bytes as i64 + 1);
        assert_eq!(replica(&r, &t).unwrap().kind, NotableKind::ReplicaLag);
        r.replay_lag_bytes = Some(0);
        r.replay_lag_secs = Some(61.0);
        assert!(replica(&r, &t).is_some());
        let mut s = Slot {
            slot_name: "old'one".into(),
            retained_bytes: Some(t.lag_bytes as i64 * 2),
            ..Slot::default()
        };
        let n = slot(&s, &t).unwrap();
        assert_eq!(
            n.advice.last().unwrap(),
            "SELECT pg_drop_replication_slot('old''one');"
        );
        s.active = true;
        assert!(slot(&s, &t).is_none());
    }
}
