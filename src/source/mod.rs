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
pub mod sample;
pub mod socket;
pub mod tapped_copy;

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
    coordinator: Session,
}

const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const SNAPSHOT: &str = "
SELECT pg_export_snapshot(), current_setting('server_version'), pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

impl Source {
    /// Connects the coordinator and exports its snapshot.
    pub async fn open(role: Role, info: ConnInfo) -> Result<Source> {
        let at = || format!("opening {role} ({info})");
        let coordinator = connect::connect(&info).await.map_err(|e| e.context(at()))?;
        coordinator.batch_execute(BEGIN).await.context(at)?;
        let row = coordinator.query_one(SNAPSHOT, &[]).await.context(at)?;
        let snapshot = SnapshotInfo {
            connection: info.to_string(),
            snapshot_id: row.get(0),
            server_version: row.get(1),
            in_recovery: row.get(2),
            wal_lsn: row.get::<_, Option<String>>(3).unwrap_or_default(),
            taken_at: row.get(4),
        };
        Ok(Source {
            role,
            info,
            snapshot,
            coordinator,
        })
    }

    /// The coordinator session, inside the snapshot (for catalog reads and key sampling).
    pub fn client(&self) -> &Client {
        &self.coordinator
    }

    /// A new session that sees exactly the coordinator's snapshot.
    pub async fn worker(&self) -> Result<Session> {
        let at = || format!("opening a worker session on {} ({})", self.role, self.info);
        let client = connect::connect(&self.info)
            .await
            .map_err(|e| e.context(at()))?;
        let import = format!(
            "{BEGIN}; SET TRANSACTION SNAPSHOT {}",
            postgres_protocol::escape::escape_literal(&self.snapshot.snapshot_id)
        );
        client.batch_execute(&import).await.context(at)?;
        Ok(client)
    }
}
