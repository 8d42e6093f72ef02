//! Invalid indexes (`pg_index.indisvalid = false`): what a failed `CREATE INDEX CONCURRENTLY` or
//! `REINDEX CONCURRENTLY` leaves behind, never used by queries yet maintained on every write.
//!
//! An index is also invalid while such a command is still running; the progress view
//! (PostgreSQL 12+) tells the two apart, so a build in progress is reported as such and not as a
//! failure. The definition comes from `pg_get_indexdef`, which reads the catalog without taking a
//! lock on the table (a size would need one, and DDL may hold it).

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Result};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InvalidIndex {
    /// `schema.index`, unquoted.
    pub index: String,
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub name: String,
    /// `schema.table`, unquoted.
    pub table: String,
    /// `pg_get_indexdef`: the `CREATE INDEX` statement that rebuilds it.
    pub definition: String,
    pub unique: bool,
    pub ready: bool,
    pub live: bool,
    /// The session still building it: `pid N: command, phase`.
    pub in_progress: Option<String>,
}

/// Every invalid index of this database.
pub async fn invalid(client: &Client, version_num: i32) -> Result<Vec<InvalidIndex>> {
    let progress = if version_num >= 120_000 {
        "(SELECT 'pid ' || p.pid || ': ' || p.command || ', ' || p.phase
            FROM pg_stat_progress_create_index p
           WHERE p.index_relid = i.indexrelid
              OR (p.relid = i.indrelid AND p.command LIKE '%CONCURRENTLY')
           LIMIT 1)"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, tn.nspname || '.' || t.relname,
                pg_get_indexdef(i.indexrelid), i.indisunique, i.indisready, i.indislive, {progress}
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_namespace tn ON tn.oid = t.relnamespace
          WHERE NOT i.indisvalid
          ORDER BY 1, 2"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context(|| "reading invalid indexes (pg_index)".into())?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(0);
            let name: String = r.get(1);
            InvalidIndex {
                index: format!("{schema}.{name}"),
                schema,
                name,
                table: r.get(2),
                definition: r.get(3),
                unique: r.get(4),
                ready: r.get(5),
                live: r.get(6),
                in_progress: r.get(7),
            }
        })
        .collect())
}
