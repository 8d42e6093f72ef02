//! A source is one PostgreSQL database read from one consistent snapshot.
//!
//! [`Source::open`] connects the coordinator session, starts a `REPEATABLE READ READ ONLY`
//! transaction and exports its snapshot; every worker session then imports that snapshot
//! ([`Source::worker`]), which is how `pg_dump -j` reads one consistent state with many
//! connections. The coordinator keeps its transaction open until the run ends, because an exported
//! snapshot lives only as long as the transaction that exported it. Nothing here writes: the
//! transactions are read-only, which also makes hot standbys valid sources.

pub mod catalog;
pub mod connect;
pub mod conninfo;
pub mod key_check;
pub mod sample;
pub mod socket;
pub mod tapped_copy;
pub mod throttle;
pub mod visit;

use serde::Serialize;
use tokio_postgres::Client;

pub use crate::role::Role;
pub use connect::Session;
pub use conninfo::ConnInfo;

use crate::error::{Context, Result};

/// What the report records about the state a source was read in.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SnapshotInfo {
    /// `user@host:port/db`, never the password.
    pub connection: String,
    pub server_version: String,
    /// The WAL position of the snapshot: the insert position on a primary, the replay position
    /// on a standby.
    pub wal_lsn: String,
    pub in_recovery: bool,
    /// The server's clock when the snapshot was taken, UTC.
    pub taken_at: String,
    pub snapshot_id: String,
}

/// An open source: the coordinator session holding the exported snapshot.
pub struct Source {
    pub role: Role,
    pub info: ConnInfo,
    pub snapshot: SnapshotInfo,
    /// Holds the snapshot's transaction open; `None` once handed over.
    coordinator: Option<Session>,
    /// `--max-rate`: the budget every worker session of this source is charged against.
    rate: Option<std::sync::Arc<throttle::RateLimit>>,
}

pub(crate) const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const SNAPSHOT: &str = "
SELECT pg_export_snapshot(), current_setting('server_version'), pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// Connects a coordinator session for `role` and exports a snapshot from it; the snapshot can be
/// imported for as long as the session lives.
pub async fn export(role: Role, info: &ConnInfo) -> Result<(Session, SnapshotInfo)> {
    let at = || format!("opening {role} ({info})");
    let coordinator = connect::connect(info).await.map_err(|e| e.context(at()))?;
    coordinator.batch_execute(BEGIN).await.context(at)?;
    let row = coordinator.query_one(SNAPSHOT, &[]).await.context(at)?;
    crate::log!(1, "{role}: exported snapshot {}", row.get::<_, String>(0));
    let snapshot = SnapshotInfo {
        connection: info.to_string(),
        snapshot_id: row.get(0),
        server_version: row.get(1),
        in_recovery: row.get(2),
        wal_lsn: row.get::<_, Option<String>>(3).unwrap_or_default(),
        taken_at: row.get(4),
    };
    Ok((coordinator, snapshot))
}

impl Source {
    /// Connects the coordinator and exports its snapshot.
    pub async fn open(role: Role, info: ConnInfo) -> Result<Source> {
        let (coordinator, snapshot) = export(role, &info).await?;
        Ok(Source {
            role,
            info,
            snapshot,
            coordinator: Some(coordinator),
            rate: None,
        })
    }

    /// Connects the coordinator inside a snapshot another process exported and holds
    /// (`pgsalvage snapshot hold`): every session of this source then reads that snapshot. The
    /// import fails, naming the source, when the holder has let it go.
    pub async fn open_on(role: Role, info: ConnInfo, held: SnapshotInfo) -> Result<Source> {
        let at = || {
            format!(
                "importing the held snapshot {} of {role} ({info})",
                held.snapshot_id
            )
        };
        let coordinator = connect::connect(&info).await.map_err(|e| e.context(at()))?;
        let begin = visit::begin_on(&held.snapshot_id);
        coordinator.batch_execute(&begin).await.context(at)?;
        crate::log!(1, "{role}: imported held snapshot {}", held.snapshot_id);
        Ok(Source {
            role,
            info,
            snapshot: held,
            coordinator: Some(coordinator),
            rate: None,
        })
    }

    /// Hands the coordinator session, and with it the life of the snapshot, to the caller (a
    /// capture that moves to newer snapshots ends it when it does). [`Source::client`] must not
    /// be called afterwards.
    pub fn hand_over(&mut self) -> Option<Session> {
        self.coordinator.take()
    }

    /// The coordinator session, inside the snapshot (for catalog reads).
    pub fn client(&self) -> &Client {
        self.coordinator
            .as_ref()
            .expect("the coordinator was not handed over")
    }

    /// Limits the COPY bytes read from this source per second, across its workers.
    pub fn limit_rate(&mut self, bytes_per_sec: Option<u64>) {
        self.rate = bytes_per_sec.map(|b| std::sync::Arc::new(throttle::RateLimit::new(b)));
    }

    /// A new worker session, outside any transaction: its reads are [`visit`]s of the snapshot.
    pub async fn worker(&self) -> Result<Session> {
        let at = || format!("opening a worker session on {} ({})", self.role, self.info);
        let mut client = connect::connect(&self.info)
            .await
            .map_err(|e| e.context(at()))?;
        client.set_rate(self.rate.clone());
        client
            .batch_execute(&visit::session_setup())
            .await
            .context(at)?;
        Ok(client)
    }

    /// A new session inside a transaction on the snapshot, for reads that are not one table's
    /// range (a recovery's fetches, a baseline comparison's differing spans): its locks last until
    /// the session ends, and a lock it waits for longer than `lock_wait` fails the read, naming
    /// the table, instead of hanging.
    pub async fn snapshot_session(&self, lock_wait: std::time::Duration) -> Result<Session> {
        let session = self.worker().await?;
        let at = || format!("importing the snapshot of {} ({})", self.role, self.info);
        let begin = format!(
            "SET lock_timeout = {}; {}",
            lock_wait.as_millis().max(1),
            visit::begin_on(&self.snapshot.snapshot_id)
        );
        session.batch_execute(&begin).await.context(at)?;
        Ok(session)
    }

    /// This source as one stop of a visit on `session`.
    pub fn stop<'a>(&'a self, session: &'a Session) -> visit::Stop<'a> {
        visit::Stop {
            role: self.role.to_string(),
            session,
            snapshot_id: &self.snapshot.snapshot_id,
        }
    }
}
