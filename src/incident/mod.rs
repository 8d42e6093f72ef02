//! The incident view: what a database looks like in the first five minutes after a migration went
//! wrong, read without changing anything.
//!
//! This sits beside the comparison flow, not in it: `status` opens one read-only session on the
//! target (`default_transaction_read_only`, short lock and statement timeouts, so a session
//! stuck behind DDL never becomes one more waiter) and reads catalogs and statistics views into a
//! typed [`StatusReport`]:
//!
//! ```text
//!  target ─► status (one read-only session) ─► observations ─► notable (pure) ─► report ─► human / JSON / exit status
//!            migrations.rs  activity.rs          (typed)        notable.rs                  human.rs
//!            replication.rs indexes.rs
//! ```
//!
//! Reading (the SQL, in the per-topic files) is kept apart from judging ([`notable`]): what counts
//! as notable, and the SQL a person could run about it, are pure functions over the observations,
//! tested without a server. pgsalvage never runs that SQL; it prints it.
//!
//! Sessions, lock waits and long transactions are those of the target's database
//! (`pg_stat_activity.datname = current_database()`); replication and slots are the cluster's.
//!
//! # JSON schema `pgsalvage.status/2`
//! ```text
//! {
//!   "format": "pgsalvage.status/2",
//!   "verdict": "clean" | "notable" | "incomplete",
//!   "exit_code": 0 | 1 | 2,
//!   "server": { "connection": "user@host:port/db", "database": "app", "server_version": "15.8",
//!               "server_version_num": 150008, "in_recovery": false, "time": "…Z",
//!               "wal_lsn": "0/3000060", "backend_pid": 4242 },
//!   "thresholds": { "long_after_secs": 300, "lag_after_secs": 60, "lag_bytes": 16777216 },
//!   "migrations": [ {
//!       "tool": "rails" | "golang-migrate" | "flyway" | "liquibase" | "alembic" | "django"
//!               | "sqlx" | "diesel",
//!       "table": "public.schema_migrations",
//!       "rows": 12,
//!       "current_version": "42" | null,      // the latest applied version (alembic: heads, comma-separated)
//!       "applied_at": "…" | null,            // when it was applied, where the table records it:
//!                                            // UTC with "Z" for timestamptz columns (Django, sqlx),
//!                                            // as stored, without zone, for timestamp ones
//!       "dirty": false,                      // golang-migrate's dirty flag
//!       "failed": [ { "version": "3", "description": "add orders" | null, "at": "…" | null } ],
//!                                            // flyway/sqlx success = false, liquibase FAILED
//!       "lock": { "locked_by": "host (10.0.0.1)" | null, "since": "…" | null } | null,
//!                                            // liquibase's databasechangeloglock when locked
//!       "error": "…" | null                  // the table was found but could not be read
//!   } ],
//!   "lock_waits": [ {
//!       "waiter": <session>,
//!       "lock_type": "relation" | "transactionid" | "advisory" | …,
//!       "mode": "AccessShareLock",           // the mode waited for
//!       "relation": "public.orders" | null,
//!       "object": "relation public.orders" | "transaction 745" | …,
//!       "blockers": [ <session> + { "holds": ["AccessExclusiveLock"], "waits_for": "…" | null } ]
//!   } ],
//!   "running_ddl": [ <session> + { "progress": "CREATE INDEX CONCURRENTLY: building index" | null } ],
//!   "long_transactions": [ <session> ],      // transaction open longer than long_after_secs
//!   "replication": {
//!       "role": "primary" | "standby",
//!       "replicas": [ { "pid": 77, "application_name": "walreceiver", "client_addr": "127.0.0.1" | null,
//!                       "state": "streaming", "sync_state": "async",
//!                       "sent_lsn": "0/3000060", "write_lsn": …, "flush_lsn": …, "replay_lsn": …,
//!                       "replay_lag_bytes": 96,             // local WAL position − replay_lsn
//!                       "write_lag_secs": 0.001, "flush_lag_secs": …, "replay_lag_secs": … } ],
//!       "standby": { "paused": true, "pause_state": "paused" | "pause requested" | "not paused",
//!                    "receive_lsn": "0/3000060" | null, "replay_lsn": "0/3000000" | null,
//!                    "receive_replay_lag_bytes": 96 | null,
//!                    "last_replay_at": "…Z" | null, "last_replay_age_secs": 12.5 | null,
//!                    "wal_receiver": "streaming" | null, "upstream": "host:port" | null } | null,
//!       "slots": [ { "slot_name": "s", "slot_type": "physical" | "logical", "database": null,
//!                    "active": false, "active_pid": null, "restart_lsn": "0/1000000" | null,
//!                    "retained_bytes": 123456 | null, "wal_status": "reserved" | null } ]
//!   },
//!   "invalid_indexes": [ { "index": "public.orders_ref_idx", "table": "public.orders",
//!       "definition": "CREATE UNIQUE INDEX orders_ref_idx ON public.orders USING btree (ref)",
//!       "unique": true, "ready": true, "live": true,
//!       "in_progress": "pid 4243: CREATE INDEX CONCURRENTLY, building index" | null } ],
//!   "notable": [ { "kind": "migration_dirty" | "migration_failed" | "migration_locked"
//!                  | "lock_wait" | "long_transaction" | "invalid_index" | "replay_paused"
//!                  | "standby_lag" | "replica_lag" | "inactive_slot",
//!                  "subject": "public.schema_migrations", "summary": "…",
//!                  "advice": [ "-- a warning, as an SQL comment", "UPDATE …;" ] } ],
//!   "errors": [ { "section": "migrations" | "lock_waits" | …, "message": "…", "hint": "…" | null } ],
//!   "elapsed_ms": 35
//! }
//! ```
//! `<session>` is a `pg_stat_activity` row: `{ "pid", "user", "application_name", "client_addr",
//! "backend_type", "state", "wait_event_type", "wait_event", "xact_start", "xact_age_secs",
//! "query_start", "query_age_secs", "state_age_secs", "query" }` (times UTC, ages in seconds,
//! any of them null when the server does not show it). `advice` is SQL for a person to review
//! and run, never run by pgsalvage. Exit status: 0 clean, 1 something notable, 2 a section could
//! not be read (or no connection).
//!
//! Version 2 adds, at the top level, `tool` (name, version, commit, build date), `command_line`
//! (passwords elided) and `timings` (start, phases, total): see `report::provenance`.

pub mod activity;
pub mod human;
pub mod indexes;
pub mod migrations;
pub mod notable;
pub mod replication;
pub mod status;

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

pub use activity::{Blocker, DdlSession, LockWait, Session};
pub use indexes::InvalidIndex;
pub use migrations::{FailedMigration, MigrationLock, MigrationTable, Tool};
pub use notable::{Notable, NotableKind, Thresholds};
pub use replication::{Replica, Replication, ReplicationRole, Slot, StandbyState};
pub use status::{status, StatusSettings};

pub const FORMAT: &str = "pgsalvage.status/2";

/// The answer in one word; decides the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusVerdict {
    Clean,
    Notable,
    Incomplete,
}

impl StatusVerdict {
    /// 0 clean, 1 something notable, 2 something could not be read.
    pub fn exit_code(self) -> i32 {
        match self {
            StatusVerdict::Clean => 0,
            StatusVerdict::Notable => 1,
            StatusVerdict::Incomplete => 2,
        }
    }
}

/// Who answered and when.
#[derive(Clone, Debug, Serialize)]
pub struct ServerInfo {
    /// `user@host:port/db`, never the password.
    pub connection: String,
    pub database: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub in_recovery: bool,
    /// The server's clock, UTC.
    pub time: String,
    /// The insert position on a primary, the replay position on a standby.
    pub wal_lsn: Option<String>,
    /// Our own session, left out of every list.
    pub backend_pid: i32,
}

/// A part of the report that could not be read; the rest still is.
#[derive(Clone, Debug, Serialize)]
pub struct SectionError {
    pub section: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl SectionError {
    pub fn new(section: &'static str, err: &Error) -> Self {
        SectionError {
            section,
            message: err.to_string(),
            hint: err.hint().map(str::to_string),
        }
    }
}

/// Everything `status` saw, what of it is notable, and the exit status.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub format: &'static str,
    pub verdict: StatusVerdict,
    pub exit_code: i32,
    pub server: ServerInfo,
    pub thresholds: Thresholds,
    pub migrations: Vec<MigrationTable>,
    pub lock_waits: Vec<LockWait>,
    pub running_ddl: Vec<DdlSession>,
    pub long_transactions: Vec<Session>,
    pub replication: Replication,
    pub invalid_indexes: Vec<InvalidIndex>,
    pub notable: Vec<Notable>,
    pub errors: Vec<SectionError>,
    pub elapsed_ms: u64,
}

impl StatusReport {
    /// Judges the observations: fills `notable`, the verdict and the exit status.
    pub fn judge(&mut self) {
        self.notable = notable::classify(self);
        self.verdict = if !self.errors.is_empty() {
            StatusVerdict::Incomplete
        } else if !self.notable.is_empty() {
            StatusVerdict::Notable
        } else {
            StatusVerdict::Clean
        };
        self.exit_code = self.verdict.exit_code();
    }

    /// Writes the report as JSON to a temporary file beside `path`, then renames it into place.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::report::write_report_file(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::TableName;

    fn empty() -> StatusReport {
        StatusReport {
            format: FORMAT,
            verdict: StatusVerdict::Clean,
            exit_code: 0,
            server: ServerInfo {
                connection: "postgres@h:5432/app".into(),
                database: "app".into(),
                server_version: "15.8".into(),
                server_version_num: 150_008,
                in_recovery: false,
                time: "2026-11-24T03:00:00.000000Z".into(),
                wal_lsn: Some("0/3000060".into()),
                backend_pid: 1,
            },
            thresholds: Thresholds::default(),
            migrations: Vec::new(),
            lock_waits: Vec::new(),
            running_ddl: Vec::new(),
            long_transactions: Vec::new(),
            replication: Replication {
                role: ReplicationRole::Primary,
                replicas: Vec::new(),
                standby: None,
                slots: Vec::new(),
            },
            invalid_indexes: Vec::new(),
            notable: Vec::new(),
            errors: Vec::new(),
            elapsed_ms: 0,
        }
    }

    fn dirty_table() -> MigrationTable {
        MigrationTable {
            tool: Tool::GolangMigrate,
            table: "public.schema_migrations".into(),
            name: TableName::new("public", "schema_migrations"),
            rows: 1,
            current_version: Some("42".into()),
            applied_at: None,
            dirty: true,
            failed: Vec::new(),
            lock: None,
            error: None,
        }
    }

    #[test]
    fn nothing_seen_is_clean_and_says_so() {
        let mut r = empty();
        r.judge();
        assert_eq!((r.verdict, r.exit_code), (StatusVerdict::Clean, 0));
        let text = human::summary(&r);
        assert!(text.starts_with("postgres@h:5432/app: PostgreSQL 15.8, primary, WAL 0/3000060"));
        assert!(text.contains("migrations: no migration table recognized\n"));
        assert!(text.contains("lock waits: none\n"));
        assert_eq!(text.lines().last(), Some("status: CLEAN, nothing notable"));
    }

    #[test]
    fn something_notable_is_exit_1_and_an_unread_section_exit_2() {
        let mut r = empty();
        r.migrations.push(dirty_table());
        r.judge();
        assert_eq!((r.verdict, r.exit_code), (StatusVerdict::Notable, 1));
        let text = human::summary(&r);
        assert!(text.contains("  golang-migrate  public.schema_migrations  version 42  DIRTY\n"));
        assert!(text.contains("needs attention: 1\n"));
        r.errors.push(SectionError::new(
            "replication",
            &Error::source("permission denied"),
        ));
        r.judge();
        assert_eq!((r.verdict, r.exit_code), (StatusVerdict::Incomplete, 2));
        assert_eq!(r.notable.len(), 1, "notable things are still listed");
    }

    #[test]
    fn a_lock_waiter_is_not_also_a_long_transaction_finding() {
        let mut r = empty();
        let waiter = Session {
            pid: 20,
            state: Some("active".into()),
            xact_age_secs: Some(900.0),
            ..Session::default()
        };
        r.long_transactions.push(waiter.clone());
        r.lock_waits.push(LockWait {
            waiter,
            lock_type: "relation".into(),
            mode: "AccessShareLock".into(),
            relation: Some("public.t".into()),
            object: "relation public.t".into(),
            blockers: Vec::new(),
        });
        r.judge();
        let kinds: Vec<NotableKind> = r.notable.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NotableKind::LockWait]);
    }
}
