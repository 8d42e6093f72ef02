//! Replication as the target sees it: its replicas when it is a primary, its own replay when it is
//! a standby, and the replication slots that keep WAL for someone.
//!
//! Lags in bytes are `pg_wal_lsn_diff` against the local WAL position (the insert position on a
//! primary, the received position on a standby); lags in time are the walsender's
//! `write/flush/replay_lag` and, on a standby, the age of the last replayed commit, which only
//! means lag while there is WAL received and not replayed. The queries are chosen by server
//! version: the replay pause state exists from PostgreSQL 14 (before, only paused or not), a
//! slot's `wal_status` from 13.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationRole {
    Primary,
    Standby,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replication {
    pub role: ReplicationRole,
    pub replicas: Vec<Replica>,
    pub standby: Option<StandbyState>,
    pub slots: Vec<Slot>,
}

/// One `pg_stat_replication` row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Replica {
    pub pid: i32,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sent_lsn: Option<String>,
    pub write_lsn: Option<String>,
    pub flush_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    /// The local WAL position minus `replay_lsn`.
    pub replay_lag_bytes: Option<i64>,
    pub write_lag_secs: Option<f64>,
    pub flush_lag_secs: Option<f64>,
    pub replay_lag_secs: Option<f64>,
}

/// The target's own recovery, when it is a standby.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StandbyState {
    pub paused: bool,
    /// `paused`, `pause requested` or `not paused`.
    pub pause_state: String,
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    pub receive_replay_lag_bytes: Option<i64>,
    pub last_replay_at: Option<String>,
    pub last_replay_age_secs: Option<f64>,
    /// `pg_stat_wal_receiver.status`; none when no WAL receiver runs.
    pub wal_receiver: Option<String>,
    pub upstream: Option<String>,
}

/// One `pg_replication_slots` row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Slot {
    pub slot_name: String,
    pub slot_type: Option<String>,
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub restart_lsn: Option<String>,
    /// WAL kept for the slot: the local WAL position minus `restart_lsn`.
    pub retained_bytes: Option<i64>,
    pub wal_status: Option<String>,
}

/// The local WAL position: inserted on a primary, received (else replayed) on a standby.
const LOCAL_LSN: &str = "(CASE WHEN pg_is_in_recovery()
    THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
    ELSE pg_current_wal_lsn() END)";

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// Reads replicas, the standby state (when in recovery) and slots.
pub async fn read(client: &Client, in_recovery: bool, version_num: i32) -> Result<Replication> {
    let standby = match in_recovery {
        true => Some(standby(client, version_num).await?),
        false => None,
    };
    Ok(Replication {
        role: match in_recovery {
            true => ReplicationRole::Standby,
            false => ReplicationRole::Primary,
        },
        replicas: replicas(client).await?,
        standby,
        slots: slots(client, version_num).await?,
    })
}

async fn replicas(client: &Client) -> Result<Vec<Replica>> {
    let sql = format!(
        "SELECT pid, application_name, host(client_addr), state, sync_state,
                sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
                pg_wal_lsn_diff({LOCAL_LSN}, replay_lsn)::int8,
                extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8,
                extract(epoch FROM replay_lag)::float8
           FROM pg_stat_replication ORDER BY application_name, pid"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context(|| "reading replicas (pg_stat_replication)".into())?;
    Ok(rows
        .iter()
        .map(|r| Replica {
            pid: r.get(0),
            application_name: r.get(1),
            client_addr: r.get(2),
            state: r.get(3),
            sync_state: r.get(4),
            sent_lsn: r.get(5),
            write_lsn: r.get(6),
            flush_lsn: r.get(7),
            replay_lsn: r.get(8),
            replay_lag_bytes: r.get(9),
            write_lag_secs: r.get(10),
            flush_lag_secs: r.get(11),
            replay_lag_secs: r.get(12),
        })
        .collect())
}

async fn standby(client: &Client, version_num: i32) -> Result<StandbyState> {
    let pause_state = if version_num >= 140_000 {
        "pg_get_wal_replay_pause_state()"
    } else {
        "CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
    };
    let sql = format!(
        "SELECT {pause_state}, pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
                pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8,
                to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', {TS}),
                extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                (SELECT status FROM pg_stat_wal_receiver LIMIT 1),
                (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver LIMIT 1)"
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .context(|| "reading the standby's replay state".into())?;
    let pause_state: String = row.get(0);
    Ok(StandbyState {
        paused: pause_state != "not paused",
        pause_state,
        receive_lsn: row.get(1),
        replay_lsn: row.get(2),
        receive_replay_lag_bytes: row.get(3),
        last_replay_at: row.get(4),
        last_replay_age_secs: row.get(5),
        wal_receiver: row.get(6),
        upstream: row.get(7),
    })
}

async fn slots(client: &Client, version_num: i32) -> Result<Vec<Slot>> {
    let wal_status = if version_num >= 130_000 {
        "wal_status"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT slot_name::text, slot_type, database::text, active, active_pid,
                restart_lsn::text, pg_wal_lsn_diff({LOCAL_LSN}, restart_lsn)::int8, {wal_status}
           FROM pg_replication_slots ORDER BY slot_name"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context(|| "reading replication slots (pg_replication_slots)".into())?;
    Ok(rows
        .iter()
        .map(|r| Slot {
            slot_name: r.get(0),
            slot_type: r.get(1),
            database: r.get(2),
            active: r.get(3),
            active_pid: r.get(4),
            restart_lsn: r.get(5),
            retained_bytes: r.get(6),
            wal_status: r.get(7),
        })
        .collect())
}
