//! `status`, the read-only incident view, on real clusters: migration tables (dirty, failed, in
//! several schemas), a lock wait with its blocker, an invalid index left by a failed
//! `CREATE UNIQUE INDEX CONCURRENTLY`, a paused standby and its primary, a migration table held by
//! DDL (status gives up on it instead of queueing), and a clean database; through the library and
//! through the binary (exit status and JSON).

use std::time::{Duration, Instant};

use pgsalvage::cluster::Cluster;
use pgsalvage::incident::{status, NotableKind, StatusReport, StatusSettings, StatusVerdict, Tool};
use pgsalvage::source::connect::connect;
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use serde_json::Value;

use crate::support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn settings(url: &str, long_after: u64) -> StatusSettings {
    let mut s = StatusSettings::new(resolve(url, &ProcessEnv).unwrap());
    s.thresholds.long_after_secs = long_after;
    s
}

fn status_of(url: &str) -> StatusReport {
    rt().block_on(status(&settings(url, 300)))
        .unwrap_or_else(|e| panic!("status failed: {e}"))
}

fn kinds(r: &StatusReport) -> Vec<NotableKind> {
    r.notable.iter().map(|n| n.kind).collect()
}

const GOLANG_MIGRATE_DIRTY: &str = "
CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO schema_migrations VALUES (42, true);";

const FLYWAY_FAILED: &str = r#"
CREATE SCHEMA ops;
CREATE TABLE ops.flyway_schema_history (
    installed_rank int PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL,
    type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum int,
    installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(),
    execution_time int NOT NULL, success boolean NOT NULL);
INSERT INTO ops.flyway_schema_history VALUES
    (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app', '2026-01-01 10:00:00', 5, true),
    (2, '2', 'add users', 'SQL', 'V2__add_users.sql', 2, 'app', '2026-01-02 10:00:00', 5, true),
    (3, '3', 'add orders', 'SQL', 'V3__add_orders.sql', 3, 'app', '2026-01-03 10:00:00', 5, false);
CREATE SCHEMA "Legacy App";
CREATE TABLE "Legacy App".schema_migrations (version varchar NOT NULL PRIMARY KEY);
INSERT INTO "Legacy App".schema_migrations VALUES ('20240101000000'), ('20240202000000');
CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('ae1027a6acf');
"#;

#[test]
fn dirty_golang_migrate_and_failed_flyway_are_reported_in_any_schema() {
    let db = fresh_db("status_migrations");
    psql(&db, GOLANG_MIGRATE_DIRTY);
    psql(&db, FLYWAY_FAILED);
    let r = status_of(&url(&db));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let found: Vec<(Tool, &str, Option<&str>, bool)> = r
        .migrations
        .iter()
        .map(|m| {
            (
                m.tool,
                m.table.as_str(),
                m.current_version.as_deref(),
                m.dirty,
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                Tool::Rails,
                "Legacy App.schema_migrations",
                Some("20240202000000"),
                false
            ),
            (Tool::Flyway, "ops.flyway_schema_history", Some("2"), false),
            (
                Tool::Alembic,
                "public.alembic_version",
                Some("ae1027a6acf"),
                false
            ),
            (
                Tool::GolangMigrate,
                "public.schema_migrations",
                Some("42"),
                true
            ),
        ]
    );
    let flyway = &r.migrations[1];
    assert_eq!(flyway.rows, 3);
    assert_eq!(
        flyway.applied_at.as_deref(),
        Some("2026-01-02T10:00:00.000000")
    );
    assert_eq!(flyway.failed.len(), 1);
    assert_eq!(flyway.failed[0].version, "3");
    assert_eq!(flyway.failed[0].description.as_deref(), Some("add orders"));
    assert_eq!(
        flyway.failed[0].at.as_deref(),
        Some("2026-01-03T10:00:00.000000")
    );
    assert_eq!(
        kinds(&r),
        vec![NotableKind::MigrationFailed, NotableKind::MigrationDirty]
    );
    let dirty = &r.notable[1];
    assert_eq!(dirty.subject, "public.schema_migrations");
    assert!(
        dirty.advice[0].starts_with("-- WARNING"),
        "{:?}",
        dirty.advice
    );
    assert_eq!(
        dirty.advice.last().unwrap(),
        "UPDATE \"public\".\"schema_migrations\" SET dirty = false WHERE version = '42';"
    );
    assert!(r.notable[0]
        .advice
        .contains(&"DELETE FROM \"ops\".\"flyway_schema_history\" WHERE NOT success;".to_string()));
    assert_eq!((r.verdict, r.exit_code), (StatusVerdict::Notable, 1));
}

#[test]
fn the_binary_reports_a_dirty_migration_with_exit_1_and_json_and_changes_nothing() {
    let db = fresh_db("status_cli");
    psql(&db, GOLANG_MIGRATE_DIRTY);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("status.json");
    let out = pgsalvage(&[
        "status",
        "--target",
        &url(&db),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("golang-migrate  public.schema_migrations  version 42  DIRTY"),
        "{stdout}"
    );
    assert!(
        stdout.contains("UPDATE \"public\".\"schema_migrations\" SET dirty = false"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("status: NOTABLE, 1 thing(s)"),
        "{stdout}"
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["format"], "pgsalvage.status/2");
    assert_eq!(v["verdict"], "notable");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["server"]["database"], db.as_str());
    assert_eq!(v["server"]["in_recovery"], false);
    let m = &v["migrations"][0];
    assert_eq!(m["tool"], "golang-migrate");
    assert_eq!(m["table"], "public.schema_migrations");
    assert_eq!(m["current_version"], "42");
    assert_eq!(m["dirty"], true);
    assert_eq!(v["notable"][0]["kind"], "migration_dirty");
    // Read-only: the flag is still set.
    assert_eq!(
        psql(&db, "SELECT version, dirty FROM schema_migrations"),
        "42|t\n"
    );
    // Nothing else was left in the directory (the JSON was written through a rename).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_lock_wait_names_waiter_and_blocker_and_the_blocker_is_a_long_transaction() {
    let db = fresh_db("status_locks");
    psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let info = resolve(&url(&db), &ProcessEnv).unwrap();
    rt().block_on(async {
        let holder = connect(&info).await.unwrap();
        let holder_pid: i32 = holder
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        holder.batch_execute("BEGIN").await.unwrap();
        holder
            .batch_execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let waiter = connect(&info).await.unwrap();
        let waiter_pid: i32 = waiter
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let waiting = tokio::spawn(async move {
            let row = waiter.query_one("SELECT count(*) FROM t", &[]).await?;
            Ok::<i64, tokio_postgres::Error>(row.get(0))
        });
        let s = settings(&url(&db), 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        let r = loop {
            let r = status(&s).await.unwrap();
            let holder_is_long = r.long_transactions.iter().any(|t| t.pid == holder_pid);
            // Each list is read at its own instant: the lock wait's view of the holder may be a
            // moment younger than the long-transaction list's.
            let blocker_aged = r.lock_waits.iter().flat_map(|w| &w.blockers).any(|b| {
                b.session.pid == holder_pid && b.session.xact_age_secs.is_some_and(|a| a >= 1.0)
            });
            if !r.lock_waits.is_empty() && holder_is_long && blocker_aged {
                break r;
            }
            assert!(Instant::now() < deadline, "no lock wait seen: {r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(r.lock_waits.len(), 1, "{:?}", r.lock_waits);
        let w = &r.lock_waits[0];
        assert_eq!(w.waiter.pid, waiter_pid);
        assert_eq!(w.waiter.query.as_deref(), Some("SELECT count(*) FROM t"));
        assert_eq!(w.waiter.state.as_deref(), Some("active"));
        assert_eq!(
            (w.lock_type.as_str(), w.mode.as_str(), w.relation.as_deref()),
            ("relation", "AccessShareLock", Some("public.t"))
        );
        assert_eq!(w.blockers.len(), 1);
        let b = &w.blockers[0];
        assert_eq!(b.session.pid, holder_pid);
        assert_eq!(
            b.session.query.as_deref(),
            Some("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        );
        assert_eq!(b.session.state.as_deref(), Some("idle in transaction"));
        assert_eq!(b.holds, vec!["AccessExclusiveLock".to_string()]);
        assert!(b.session.xact_age_secs.unwrap() >= 1.0, "{b:?}");
        assert!(b.session.xact_start.as_deref().unwrap().ends_with('Z'));
        // The blocker is also a long transaction (idle in transaction) and running DDL-like LOCK.
        let long = r
            .long_transactions
            .iter()
            .find(|t| t.pid == holder_pid)
            .unwrap();
        assert_eq!(long.state.as_deref(), Some("idle in transaction"));
        assert!(r.running_ddl.iter().any(|d| d.session.pid == holder_pid));
        assert!(r
            .long_transactions
            .iter()
            .all(|t| t.pid != r.server.backend_pid));
        // What to do: end the holder (idle in transaction, so terminate, not cancel).
        let wait_note = r
            .notable
            .iter()
            .find(|n| n.kind == NotableKind::LockWait)
            .unwrap();
        assert_eq!(wait_note.subject, format!("pid {waiter_pid}"));
        assert!(
            wait_note
                .summary
                .contains(&format!("blocked by pid {holder_pid}")),
            "{}",
            wait_note.summary
        );
        let terminate = format!("SELECT pg_terminate_backend({holder_pid});");
        assert!(
            wait_note.advice.iter().any(|l| l.starts_with(&terminate)),
            "{:?}",
            wait_note.advice
        );
        // The waiter's own open transaction is part of the wait, not a second finding.
        assert_eq!(
            kinds(&r),
            vec![NotableKind::LockWait, NotableKind::LongTransaction]
        );
        assert_eq!(r.notable[1].subject, format!("pid {holder_pid}"));
        let text = pgsalvage::incident::human::summary(&r);
        let waiting_line = format!("  pid {waiter_pid} waiting ");
        let blocked_line =
            format!("    blocked by pid {holder_pid} (idle in transaction, transaction ");
        assert!(text.contains(&waiting_line), "{text}");
        assert!(text.contains(&blocked_line), "{text}");
        assert!(
            text.contains("holds AccessExclusiveLock): LOCK TABLE t IN ACCESS EXCLUSIVE MODE\n"),
            "{text}"
        );
        assert_eq!(r.exit_code, 1);
        // status changed nothing: the holder still holds, the waiter still waits; once the holder
        // lets go, the waiter gets its answer.
        assert!(!waiting.is_finished());
        holder.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 1);
        let after = status(&s).await.unwrap();
        assert!(after.lock_waits.is_empty(), "{:?}", after.lock_waits);
    });
}

#[test]
fn a_failed_unique_index_build_leaves_an_invalid_index_that_is_reported() {
    let db = fresh_db("status_index");
    psql(
        &db,
        "CREATE TABLE u (id int PRIMARY KEY, v int); INSERT INTO u VALUES (1, 7), (2, 7), (3, 8);
         CREATE INDEX u_id_v ON u (id, v);",
    );
    let err = cluster()
        .psql(&db, "CREATE UNIQUE INDEX CONCURRENTLY u_v_key ON u (v)")
        .unwrap_err();
    assert!(
        err.to_string().contains("could not create unique index"),
        "{err}"
    );
    let r = status_of(&url(&db));
    assert_eq!(r.invalid_indexes.len(), 1, "{:?}", r.invalid_indexes);
    let i = &r.invalid_indexes[0];
    assert_eq!(i.index, "public.u_v_key");
    assert_eq!(i.table, "public.u");
    assert_eq!(
        i.definition,
        "CREATE UNIQUE INDEX u_v_key ON public.u USING btree (v)"
    );
    assert!(i.unique && i.in_progress.is_none());
    assert_eq!(kinds(&r), vec![NotableKind::InvalidIndex]);
    let advice = &r.notable[0].advice;
    for line in [
        "DROP INDEX CONCURRENTLY \"public\".\"u_v_key\";",
        "CREATE UNIQUE INDEX CONCURRENTLY u_v_key ON public.u USING btree (v);",
    ] {
        assert!(advice.contains(&line.to_string()), "{advice:?}");
    }
    assert!(
        advice.iter().any(|l| l.contains("duplicate values")),
        "{advice:?}"
    );
    assert_eq!(r.exit_code, 1);
}

#[test]
fn a_paused_standby_reports_its_pause_and_the_primary_its_replica_and_lag() {
    let primary = Cluster::start_with(&[("wal_level", "replica")]).expect("primary cluster");
    primary.create_db("app").unwrap();
    primary
        .psql(
            "app",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        )
        .unwrap();
    let standby = primary.standby().expect("standby");
    wait_until("the standby to catch up", Duration::from_secs(30), || {
        standby
            .psql("app", "SELECT count(*) FROM t")
            .is_ok_and(|c| c.trim() == "1")
    });
    standby
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .unwrap();
    wait_until("replay to pause", Duration::from_secs(30), || {
        standby
            .psql("postgres", "SELECT pg_get_wal_replay_pause_state()")
            .is_ok_and(|s| s.trim() == "paused")
    });
    primary
        .psql(
            "app",
            "INSERT INTO t SELECT g FROM generate_series(2, 10000) g;",
        )
        .unwrap();
    let written = primary.psql("app", "SELECT pg_current_wal_lsn()").unwrap();
    let written = written.trim();
    wait_until(
        "the standby to receive the writes",
        Duration::from_secs(30),
        || {
            primary
                .psql(
                    "postgres",
                    &format!("SELECT flush_lsn >= '{written}' FROM pg_stat_replication"),
                )
                .is_ok_and(|s| s.trim() == "t")
        },
    );
    let replayed = standby
        .psql("postgres", "SELECT pg_last_wal_replay_lsn()")
        .unwrap();

    let on_standby = status_of(&standby.url("app"));
    assert!(on_standby.server.in_recovery);
    assert!(on_standby.errors.is_empty(), "{:?}", on_standby.errors);
    let s = on_standby
        .replication
        .standby
        .as_ref()
        .expect("standby state");
    assert!(s.paused);
    assert_eq!(s.pause_state, "paused");
    assert_eq!(s.replay_lsn.as_deref(), Some(replayed.trim()));
    assert!(s.receive_replay_lag_bytes.unwrap() > 0, "{s:?}");
    assert_eq!(s.wal_receiver.as_deref(), Some("streaming"));
    assert_eq!(kinds(&on_standby), vec![NotableKind::ReplayPaused]);
    assert_eq!(
        on_standby.notable[0].advice.last().unwrap(),
        "SELECT pg_wal_replay_resume();"
    );
    assert_eq!(on_standby.exit_code, 1);

    let mut s = settings(&primary.url("app"), 300);
    s.thresholds.lag_bytes = 1;
    let on_primary = rt().block_on(status(&s)).unwrap();
    assert!(!on_primary.server.in_recovery);
    assert!(on_primary.replication.standby.is_none());
    assert_eq!(on_primary.replication.replicas.len(), 1);
    let rep = &on_primary.replication.replicas[0];
    assert_eq!(rep.state.as_deref(), Some("streaming"));
    assert_eq!(rep.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(rep.application_name.as_deref(), Some("walreceiver"));
    for lsn in [
        &rep.sent_lsn,
        &rep.write_lsn,
        &rep.flush_lsn,
        &rep.replay_lsn,
    ] {
        assert!(lsn.as_deref().is_some_and(|l| l.contains('/')), "{rep:?}");
    }
    assert!(rep.replay_lag_bytes.unwrap() > 0, "{rep:?}");
    assert_eq!(kinds(&on_primary), vec![NotableKind::ReplicaLag]);
}

#[test]
fn a_migration_table_held_by_ddl_is_given_up_after_the_lock_timeout() {
    let db = fresh_db("status_held");
    psql(&db, GOLANG_MIGRATE_DIRTY);
    let info = resolve(&url(&db), &ProcessEnv).unwrap();
    rt().block_on(async {
        let holder = connect(&info).await.unwrap();
        holder.batch_execute("BEGIN").await.unwrap();
        holder
            .batch_execute("ALTER TABLE schema_migrations ADD COLUMN note text")
            .await
            .unwrap();
        let started = Instant::now();
        let r = status(&settings(&url(&db), 300)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((r.verdict, r.exit_code), (StatusVerdict::Incomplete, 2));
        let m = &r.migrations[0];
        assert_eq!(m.tool, Tool::GolangMigrate);
        assert!(
            m.error.as_deref().unwrap().contains("lock timeout"),
            "{m:?}"
        );
        assert_eq!(r.errors[0].section, "migrations");
        assert!(r.errors[0].hint.as_deref().unwrap().contains("running DDL"));
        let ddl = &r.running_ddl[0];
        assert_eq!(
            ddl.session.query.as_deref(),
            Some("ALTER TABLE schema_migrations ADD COLUMN note text")
        );
        holder.batch_execute("ROLLBACK").await.unwrap();
    });
}

#[test]
fn a_clean_database_exits_0_with_nothing_notable() {
    let own = Cluster::start().expect("cluster");
    own.create_db("app").unwrap();
    own.psql(
        "app",
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (7, false);
         CREATE TABLE orders (id int PRIMARY KEY, ref text);
         CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON orders (ref);",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let out = pgsalvage(&[
        "status",
        "--target",
        &own.url("app"),
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "status: CLEAN, nothing notable\n");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["verdict"], "clean");
    assert_eq!(v["notable"], Value::Array(vec![]));
    assert_eq!(v["errors"], Value::Array(vec![]));
    assert_eq!(v["migrations"][0]["current_version"], "7");
    assert_eq!(v["migrations"][0]["dirty"], false);
    assert_eq!(v["invalid_indexes"], Value::Array(vec![]));
    assert_eq!(v["replication"]["role"], "primary");
}

#[test]
fn an_unreachable_target_is_one_error_line_and_exit_2() {
    let out = pgsalvage(&[
        "status",
        "--target",
        "postgresql://postgres@127.0.0.1:1/app?connect_timeout=2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: opening the target: cannot connect to postgres@127.0.0.1:1/app"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

const OTHER_TOOLS: &str = r#"
CREATE TABLE databasechangelog (
    id varchar(255) NOT NULL, author varchar(255) NOT NULL, filename varchar(255) NOT NULL,
    dateexecuted timestamp NOT NULL, orderexecuted int NOT NULL, exectype varchar(10) NOT NULL,
    md5sum varchar(35), description varchar(255), comments varchar(255), tag varchar(255),
    liquibase varchar(20), contexts varchar(255), labels varchar(255), deployment_id varchar(10));
INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype) VALUES
    ('1', 'alice', 'db/changelog.xml', '2026-01-01 10:00', 1, 'EXECUTED'),
    ('2', 'bob', 'db/changelog.xml', '2026-01-02 10:00', 2, 'EXECUTED');
CREATE TABLE databasechangeloglock (
    id int PRIMARY KEY, locked boolean NOT NULL, lockgranted timestamp, lockedby varchar(255));
INSERT INTO databasechangeloglock VALUES (1, true, '2026-01-02 10:05', 'deploy-7 (10.0.0.7)');
CREATE TABLE django_migrations (
    id bigserial PRIMARY KEY, app varchar(255) NOT NULL, name varchar(255) NOT NULL,
    applied timestamptz NOT NULL);
INSERT INTO django_migrations (app, name, applied) VALUES
    ('auth', '0001_initial', '2026-01-01 10:00+00'), ('shop', '0002_orders', '2026-01-02 10:00+00');
CREATE TABLE _sqlx_migrations (
    version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    checksum bytea NOT NULL, execution_time bigint NOT NULL);
INSERT INTO _sqlx_migrations VALUES
    (1, 'init', '2026-01-01 10:00+00', true, '\x00', 1),
    (2, 'orders', '2026-01-02 10:00+00', false, '\x00', 1);
CREATE TABLE __diesel_schema_migrations (
    version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO __diesel_schema_migrations VALUES
    ('20240101000000', '2026-01-01 10:00'), ('20240202000000', '2026-01-02 10:00');
"#;

#[test]
fn liquibase_django_sqlx_and_diesel_tables_are_read() {
    let db = fresh_db("status_tools");
    psql(&db, OTHER_TOOLS);
    let r = status_of(&url(&db));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let found: Vec<(Tool, &str, Option<&str>, Option<&str>)> = r
        .migrations
        .iter()
        .map(|m| {
            (
                m.tool,
                m.table.as_str(),
                m.current_version.as_deref(),
                m.applied_at.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                Tool::Diesel,
                "public.__diesel_schema_migrations",
                Some("20240202000000"),
                Some("2026-01-02T10:00:00.000000")
            ),
            (
                Tool::Sqlx,
                "public._sqlx_migrations",
                Some("1"),
                Some("2026-01-01T10:00:00.000000Z")
            ),
            (
                Tool::Liquibase,
                "public.databasechangelog",
                Some("2 (bob, db/changelog.xml)"),
                Some("2026-01-02T10:00:00.000000")
            ),
            (Tool::Liquibase, "public.databasechangeloglock", None, None),
            (
                Tool::Django,
                "public.django_migrations",
                Some("shop.0002_orders"),
                Some("2026-01-02T10:00:00.000000Z")
            ),
        ]
    );
    let sqlx = &r.migrations[1];
    assert_eq!(sqlx.failed.len(), 1);
    assert_eq!(
        (
            sqlx.failed[0].version.as_str(),
            sqlx.failed[0].description.as_deref()
        ),
        ("2", Some("orders"))
    );
    let lock = r.migrations[3].lock.as_ref().expect("the lock is held");
    assert_eq!(lock.locked_by.as_deref(), Some("deploy-7 (10.0.0.7)"));
    assert_eq!(lock.since.as_deref(), Some("2026-01-02T10:05:00.000000"));
    assert_eq!(
        kinds(&r),
        vec![NotableKind::MigrationFailed, NotableKind::MigrationLocked]
    );
    assert_eq!(
        r.notable[1].advice.last().unwrap(),
        "UPDATE \"public\".\"databasechangeloglock\" SET locked = false, lockgranted = NULL, \
         lockedby = NULL WHERE locked;"
    );
}

#[test]
fn the_status_session_cannot_write() {
    let db = fresh_db("status_ro");
    let s = settings(&url(&db), 300);
    rt().block_on(async {
        let client = pgsalvage::incident::status::open_read_only(&s)
            .await
            .unwrap();
        let err = client
            .batch_execute("CREATE TABLE written_by_status (x int)")
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
        );
    });
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'written_by_status'"
        ),
        "0\n"
    );
}

#[test]
fn help_describes_status() {
    let out = pgsalvage(&["status", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--target",
        "--long-after",
        "--lag-after",
        "--lag-bytes",
        "--json",
        "pgsalvage.status/2",
        "Exit status",
        "PGPASSWORD",
        "read-only",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
