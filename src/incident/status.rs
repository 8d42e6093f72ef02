//! `status`: one read-only session on the target, every section read in turn, then judged.
//!
//! The session is made read-only before anything is read (`default_transaction_read_only`), and
//! gets a short `lock_timeout`: the migration tables are the only user tables read, and if DDL
//! holds them, status must report that, not queue behind it (a waiting `SELECT` would itself
//! block every later query on the table). Each statement runs in its own transaction, so a
//! section that fails (permissions, that timeout) is recorded and the others are still read; the
//! report is then incomplete and the exit status 2.

use std::time::Instant;

use tokio_postgres::Client;

use super::{
    activity, indexes, migrations, notable::Thresholds, replication, Replication, ReplicationRole,
    SectionError, ServerInfo, StatusReport, StatusVerdict, FORMAT,
};
use crate::error::{Context, Result};
pub use crate::settings::StatusSettings;
use crate::source::{connect::connect, ConnInfo};

const SERVER: &str = "
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
       current_database()::text, pg_backend_pid(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text";

/// Reads the target and judges what it saw. Only a failure to connect (or to read the server's
/// identity) is an error; anything else lands in the report's `errors`.
pub async fn status(settings: &StatusSettings) -> Result<StatusReport> {
    let started = Instant::now();
    crate::log::phase("reading the server's state");
    let info = &settings.target;
    let client = open_read_only(settings).await?;
    let server = server_info(&client, info).await?;
    let mut report = empty_report(server, settings.thresholds.clone());
    read_sections(&client, &mut report).await;
    report.judge();
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Connects and makes the session read-only, with the timeouts status runs under.
pub async fn open_read_only(settings: &StatusSettings) -> Result<crate::source::Session> {
    let info = &settings.target;
    let client = connect(info)
        .await
        .map_err(|e| e.context("opening the target"))?;
    let setup = format!(
        "SET default_transaction_read_only = on; SET lock_timeout = {}; \
         SET statement_timeout = '60s'",
        settings.lock_timeout.as_millis().max(1)
    );
    client
        .batch_execute(&setup)
        .await
        .context(|| format!("making the session on {info} read-only"))?;
    Ok(client)
}

async fn server_info(client: &Client, info: &ConnInfo) -> Result<ServerInfo> {
    let row = client
        .query_one(SERVER, &[])
        .await
        .context(|| format!("reading the server's identity on {info}"))?;
    Ok(ServerInfo {
        connection: info.to_string(),
        server_version: row.get(0),
        server_version_num: row.get(1),
        in_recovery: row.get(2),
        time: row.get(3),
        database: row.get(4),
        backend_pid: row.get(5),
        wal_lsn: row.get(6),
    })
}

fn empty_report(server: ServerInfo, thresholds: Thresholds) -> StatusReport {
    let role = match server.in_recovery {
        true => ReplicationRole::Standby,
        false => ReplicationRole::Primary,
    };
    StatusReport {
        format: FORMAT,
        verdict: StatusVerdict::Clean,
        exit_code: 0,
        server,
        thresholds,
        migrations: Vec::new(),
        lock_waits: Vec::new(),
        running_ddl: Vec::new(),
        long_transactions: Vec::new(),
        replication: Replication {
            role,
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

/// Reads each section into the report; a failed section becomes an error entry.
async fn read_sections(client: &Client, r: &mut StatusReport) {
    let version = r.server.server_version_num;
    let recovery = r.server.in_recovery;
    let long = r.thresholds.long_after_secs as f64;
    let errors = &mut r.errors;
    // Sessions first: they change fastest, and they explain a migration table that cannot be read.
    keep(
        errors,
        "lock_waits",
        activity::lock_waits(client).await,
        &mut r.lock_waits,
    );
    let ddl = activity::running_ddl(client, version).await;
    keep(errors, "running_ddl", ddl, &mut r.running_ddl);
    let txns = activity::long_transactions(client, long).await;
    keep(errors, "long_transactions", txns, &mut r.long_transactions);
    let repl = replication::read(client, recovery, version).await;
    keep(errors, "replication", repl, &mut r.replication);
    let idx = indexes::invalid(client, version).await;
    keep(errors, "invalid_indexes", idx, &mut r.invalid_indexes);
    keep(
        errors,
        "migrations",
        migrations::read_all(client).await,
        &mut r.migrations,
    );
    for table in &r.migrations {
        if let Some(message) = &table.error {
            errors.push(SectionError {
                section: "migrations",
                message: message.clone(),
                hint: message.contains("lock timeout").then(|| {
                    "a session holds a lock on the table (running DDL?): see the lock waits \
                     and running DDL above"
                        .to_string()
                }),
            });
        }
    }
}

fn keep<T>(errors: &mut Vec<SectionError>, section: &'static str, read: Result<T>, into: &mut T) {
    match read {
        Ok(value) => *into = value,
        Err(e) => errors.push(SectionError::new(section, &e)),
    }
}
