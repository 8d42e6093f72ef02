//! The migration tables of the usual tools, found in any schema, and what they say: the current
//! version, failed or dirty versions, a stuck lock.
//!
//! A table is recognized by its name and its columns ([`recognize`], pure): `schema_migrations`
//! with a boolean `dirty` is golang-migrate's, without it Rails' (dbmate's looks the same);
//! `flyway_schema_history`, `databasechangelog` and `databasechangeloglock` (Liquibase),
//! `alembic_version`, `django_migrations`, `_sqlx_migrations` and `__diesel_schema_migrations`
//! need their tool's key columns. Each recognized table is then read with one query of its own;
//! one that cannot be read (permissions, a lock held by running DDL) keeps its error and the
//! others are still read.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Error, Result};
use crate::shape::TableName;

/// The tools whose tables are recognized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Tool {
    #[serde(rename = "rails")]
    Rails,
    #[serde(rename = "golang-migrate")]
    GolangMigrate,
    #[serde(rename = "flyway")]
    Flyway,
    #[serde(rename = "liquibase")]
    Liquibase,
    #[serde(rename = "alembic")]
    Alembic,
    #[serde(rename = "django")]
    Django,
    #[serde(rename = "sqlx")]
    Sqlx,
    #[serde(rename = "diesel")]
    Diesel,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).expect("a unit variant serializes");
        f.write_str(name.as_str().unwrap_or_default())
    }
}

/// Which table of which tool: Liquibase has two, read differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rails,
    GolangMigrate,
    Flyway,
    LiquibaseLog,
    LiquibaseLock,
    Alembic,
    Django,
    Sqlx,
    Diesel,
}

impl Kind {
    pub fn tool(self) -> Tool {
        match self {
            Kind::Rails => Tool::Rails,
            Kind::GolangMigrate => Tool::GolangMigrate,
            Kind::Flyway => Tool::Flyway,
            Kind::LiquibaseLog | Kind::LiquibaseLock => Tool::Liquibase,
            Kind::Alembic => Tool::Alembic,
            Kind::Django => Tool::Django,
            Kind::Sqlx => Tool::Sqlx,
            Kind::Diesel => Tool::Diesel,
        }
    }
}

/// What one migration table says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationTable {
    pub tool: Tool,
    /// `schema.table`, unquoted.
    pub table: String,
    /// The same, for SQL.
    #[serde(skip)]
    pub name: TableName,
    /// Rows in the table.
    pub rows: i64,
    pub current_version: Option<String>,
    pub applied_at: Option<String>,
    /// golang-migrate: the last migration stopped part-way.
    pub dirty: bool,
    pub failed: Vec<FailedMigration>,
    /// Liquibase's lock row, when it is held.
    pub lock: Option<MigrationLock>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedMigration {
    pub version: String,
    pub description: Option<String>,
    pub at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationLock {
    pub locked_by: Option<String>,
    pub since: Option<String>,
}

/// The table names worth a look; their columns decide.
const NAMES: &[&str] = &[
    "schema_migrations",
    "flyway_schema_history",
    "databasechangelog",
    "databasechangeloglock",
    "alembic_version",
    "django_migrations",
    "_sqlx_migrations",
    "__diesel_schema_migrations",
];

/// Recognizes a table by its name and its `(column, type)` list.
pub fn recognize(name: &str, columns: &[(String, String)]) -> Option<Kind> {
    let has = |c: &str| columns.iter().any(|(n, _)| n == c);
    let has_all = |cs: &[&str]| cs.iter().all(|c| has(c));
    let boolean = |c: &str| columns.iter().any(|(n, t)| n == c && t == "boolean");
    let kind = match name {
        "schema_migrations" if has("version") && boolean("dirty") => Kind::GolangMigrate,
        "schema_migrations" if has("version") && !has("dirty") => Kind::Rails,
        "flyway_schema_history" if has_all(&["installed_rank", "version", "success"]) => {
            Kind::Flyway
        }
        "databasechangelog" if has_all(&["id", "author", "filename", "orderexecuted"]) => {
            Kind::LiquibaseLog
        }
        "databasechangeloglock" if has_all(&["id", "locked"]) => Kind::LiquibaseLock,
        "alembic_version" if has("version_num") => Kind::Alembic,
        "django_migrations" if has_all(&["app", "name", "applied"]) => Kind::Django,
        "_sqlx_migrations" if has_all(&["version", "success"]) => Kind::Sqlx,
        "__diesel_schema_migrations" if has("version") => Kind::Diesel,
        _ => return None,
    };
    Some(kind)
}

const CANDIDATES: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p') AND c.relname::text = ANY($1)
 ORDER BY 1, 2, a.attnum";

/// Finds the recognized tables of this database, in schema and name order.
pub async fn find(client: &Client) -> Result<Vec<(TableName, Kind)>> {
    let rows = client
        .query(CANDIDATES, &[&NAMES])
        .await
        .context(|| "looking for migration tables (pg_class)".into())?;
    let mut tables: BTreeMap<TableName, Vec<(String, String)>> = BTreeMap::new();
    for row in &rows {
        let name = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
        tables
            .entry(name)
            .or_default()
            .push((row.get(2), row.get(3)));
    }
    Ok(tables
        .into_iter()
        .filter_map(|(name, cols)| recognize(&name.name, &cols).map(|k| (name, k)))
        .collect())
}

/// For `timestamptz` columns (the session runs in UTC).
const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";
/// For `timestamp` columns, which hold the writer's local time with no zone: shown as stored.
const NAIVE: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'";

/// Reads one recognized table; a failure is kept in the result, not returned.
pub async fn read(client: &Client, name: &TableName, kind: Kind) -> MigrationTable {
    let mut table = MigrationTable {
        tool: kind.tool(),
        table: name.to_string(),
        name: name.clone(),
        rows: 0,
        current_version: None,
        applied_at: None,
        dirty: false,
        failed: Vec::new(),
        lock: None,
        error: None,
    };
    if let Err(e) = fill(client, name, kind, &mut table).await {
        table.error = Some(e.to_string());
    }
    table
}

async fn fill(client: &Client, name: &TableName, kind: Kind, t: &mut MigrationTable) -> Result<()> {
    let at = || format!("reading {} table {name}", kind.tool());
    let summary = client
        .query_one(&summary_sql(&name.sql(), kind), &[])
        .await
        .context(at)?;
    t.rows = summary.get(0);
    t.current_version = summary.get(1);
    t.applied_at = summary.get(2);
    t.dirty = summary.get::<_, Option<bool>>(3).unwrap_or(false);
    if let Some(sql) = failed_sql(&name.sql(), kind) {
        let rows = client.query(&sql, &[]).await.context(at)?;
        t.failed = rows
            .iter()
            .map(|r| FailedMigration {
                version: r.get::<_, Option<String>>(0).unwrap_or_default(),
                description: r.get(1),
                at: r.get(2),
            })
            .collect();
    }
    if kind == Kind::LiquibaseLock {
        let sql = format!(
            "SELECT lockedby::text, to_char(lockgranted, {NAIVE}) FROM {} WHERE locked ORDER BY id LIMIT 1",
            name.sql()
        );
        let row = client.query_opt(&sql, &[]).await.context(at)?;
        t.lock = row.map(|r| MigrationLock {
            locked_by: r.get(0),
            since: r.get(1),
        });
    }
    Ok(())
}

/// One row: row count, current version, when it was applied, dirty.
fn summary_sql(table: &str, kind: Kind) -> String {
    let latest = |version: &str, at: &str, order: &str, filter: &str| {
        format!(
            "SELECT (SELECT count(*) FROM {table}),
                    (SELECT {version} FROM {table} {filter} ORDER BY {order} DESC LIMIT 1),
                    (SELECT {at} FROM {table} {filter} ORDER BY {order} DESC LIMIT 1),
                    NULL::bool"
        )
    };
    let no_time = "NULL::text";
    match kind {
        Kind::GolangMigrate => {
            format!("SELECT count(*), max(version)::text, NULL::text, bool_or(dirty) FROM {table}")
        }
        Kind::Rails => latest("version::text", no_time, "version", ""),
        Kind::Diesel => latest(
            "version::text",
            &format!("to_char(run_on, {NAIVE})"),
            "version",
            "",
        ),
        Kind::Flyway => latest(
            "version::text",
            &format!("to_char(installed_on, {NAIVE})"),
            "installed_rank",
            "WHERE success AND version IS NOT NULL",
        ),
        Kind::LiquibaseLog => latest(
            "id::text || ' (' || author::text || ', ' || filename::text || ')'",
            &format!("to_char(dateexecuted, {NAIVE})"),
            "orderexecuted",
            "WHERE exectype IS DISTINCT FROM 'FAILED'",
        ),
        Kind::LiquibaseLock => {
            format!("SELECT count(*), NULL::text, NULL::text, NULL::bool FROM {table}")
        }
        Kind::Alembic => format!(
            "SELECT count(*), string_agg(version_num::text, ',' ORDER BY version_num), NULL::text,
                    NULL::bool FROM {table}"
        ),
        Kind::Django => latest(
            "app::text || '.' || name::text",
            &format!("to_char(applied AT TIME ZONE 'UTC', {TS})"),
            "applied DESC, id",
            "",
        ),
        Kind::Sqlx => latest(
            "version::text",
            &format!("to_char(installed_on AT TIME ZONE 'UTC', {TS})"),
            "version",
            "WHERE success",
        ),
    }
}

/// The failed versions, for the tools that record failures: (version, description, at).
fn failed_sql(table: &str, kind: Kind) -> Option<String> {
    Some(match kind {
        Kind::Flyway => format!(
            "SELECT version::text, description::text, to_char(installed_on, {NAIVE})
               FROM {table} WHERE NOT success ORDER BY installed_rank"
        ),
        Kind::Sqlx => format!(
            "SELECT version::text, description::text,
                    to_char(installed_on AT TIME ZONE 'UTC', {TS})
               FROM {table} WHERE NOT success ORDER BY version"
        ),
        Kind::LiquibaseLog => format!(
            "SELECT id::text || ' (' || author::text || ', ' || filename::text || ')',
                    description::text, to_char(dateexecuted, {NAIVE})
               FROM {table} WHERE exectype = 'FAILED' ORDER BY orderexecuted"
        ),
        _ => return None,
    })
}

/// Reads every recognized table; only the search for them can fail as a whole.
pub async fn read_all(client: &Client) -> Result<Vec<MigrationTable>, Error> {
    let mut out = Vec::new();
    for (name, kind) in find(client).await? {
        out.push(read(client, &name, kind).await);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &[(&str, &str)]) -> Vec<(String, String)> {
        spec.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn schema_migrations_is_golang_migrate_with_a_boolean_dirty_else_rails() {
        let golang = cols(&[("version", "bigint"), ("dirty", "boolean")]);
        let rails = cols(&[("version", "character varying")]);
        let odd = cols(&[("version", "bigint"), ("dirty", "integer")]);
        assert_eq!(
            recognize("schema_migrations", &golang),
            Some(Kind::GolangMigrate)
        );
        assert_eq!(recognize("schema_migrations", &rails), Some(Kind::Rails));
        assert_eq!(recognize("schema_migrations", &odd), None);
        assert_eq!(
            recognize("schema_migrations", &cols(&[("v", "text")])),
            None
        );
    }

    #[test]
    fn other_tools_need_their_key_columns() {
        let flyway = cols(&[
            ("installed_rank", "integer"),
            ("version", "character varying(50)"),
            ("success", "boolean"),
        ]);
        assert_eq!(
            recognize("flyway_schema_history", &flyway),
            Some(Kind::Flyway)
        );
        assert_eq!(recognize("flyway_schema_history", &flyway[..2]), None);
        let lock = cols(&[("id", "integer"), ("locked", "boolean")]);
        assert_eq!(
            recognize("databasechangeloglock", &lock),
            Some(Kind::LiquibaseLock)
        );
        assert_eq!(
            recognize("alembic_version", &cols(&[("version_num", "text")])),
            Some(Kind::Alembic)
        );
        let django = cols(&[
            ("id", "int"),
            ("app", "t"),
            ("name", "t"),
            ("applied", "ts"),
        ]);
        assert_eq!(recognize("django_migrations", &django), Some(Kind::Django));
        let sqlx = cols(&[("version", "bigint"), ("success", "boolean")]);
        assert_eq!(recognize("_sqlx_migrations", &sqlx), Some(Kind::Sqlx));
        assert_eq!(
            recognize("__diesel_schema_migrations", &cols(&[("version", "v")])),
            Some(Kind::Diesel)
        );
        assert_eq!(recognize("orders", &sqlx), None);
    }

    #[test]
    fn tools_display_as_their_json_names() {
        assert_eq!(Tool::GolangMigrate.to_string(), "golang-migrate");
        assert_eq!(Kind::LiquibaseLock.tool().to_string(), "liquibase");
    }

    #[test]
    fn table_names_are_quoted_in_the_queries() {
        let name = TableName::new("my schema", "schema_migrations");
        let sql = summary_sql(&name.sql(), Kind::GolangMigrate);
        assert!(
            sql.contains("FROM \"my schema\".\"schema_migrations\""),
            "{sql}"
        );
    }
}
