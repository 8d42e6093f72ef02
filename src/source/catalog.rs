//! Reading a source's tables, columns, keys, unique indexes and types from `pg_catalog`, inside
//! its snapshot.
//!
//! The queries run on the source's coordinator session, so the catalog seen is the one of the
//! exported snapshot the rows are read from. Types are resolved here once into [`TypeKind`]s:
//! domains to their base type, enums to text, arrays and composites recursively, so the decoding
//! stages never look at an OID (OIDs of user types differ between a database and its restored
//! backup). Partitioned tables are read through their parent and their partitions are not listed
//! again, so no row is compared twice.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::error::{Context, Result};
use crate::shape::{Column, TableName, TableShape, TypeKind, UniqueIndex};

const TABLES: &str = "
SELECT c.oid, n.nspname, c.relname, c.relkind::text,
       CASE WHEN c.relkind = 'p' THEN
              (SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)::float8
                 FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
            ELSE c.reltuples::float8 END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

const COLUMNS: &str = "
SELECT a.attrelid, a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
       format_type(a.atttypid, NULL), a.attnotnull, coalesce(co.collname, ''),
       a.attgenerated <> '', a.attidentity = 'a'
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'c')
 ORDER BY a.attrelid, a.attnum";

const KEYS: &str = "
SELECT i.indrelid, a.attname
  FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
 WHERE i.indisprimary AND a.attrelid = i.indrelid AND a.attnum = k.attnum
 ORDER BY i.indrelid, k.ord";

/// Unique indexes a key can rest on: valid (not a failed or unfinished concurrent build),
/// total (no predicate) and over plain columns (no expression), by their key columns only.
/// `indnullsnotdistinct` came with 15; before it every unique index let NULLs repeat.
const UNIQUES: &str = "
SELECT i.indrelid, x.relname::text, i.indnullsnotdistinct,
       array_agg(a.attname::text ORDER BY k.ord)
  FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid,
       unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
 WHERE i.indisunique AND NOT i.indisprimary AND i.indisvalid
   AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
   AND a.attrelid = i.indrelid AND a.attnum = k.attnum
 GROUP BY i.indrelid, x.relname, i.indnullsnotdistinct";
const UNIQUES_BEFORE_15: &str = "
SELECT i.indrelid, x.relname::text, false,
       array_agg(a.attname::text ORDER BY k.ord)
  FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid,
       unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_attribute a
 WHERE i.indisunique AND NOT i.indisprimary AND i.indisvalid
   AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
   AND a.attrelid = i.indrelid AND a.attnum = k.attnum
 GROUP BY i.indrelid, x.relname";

const PARENTS: &str = "
SELECT c.conrelid, pn.nspname, p.relname
  FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
 WHERE c.contype = 'f' AND c.conrelid <> c.confrelid
 ORDER BY c.conrelid, pn.nspname, p.relname";

const TYPES: &str = "
SELECT t.oid, t.typname, t.typtype::text, t.typbasetype, t.typelem, t.typcategory::text,
       t.typlen, t.typrelid
  FROM pg_type t";

/// The database's collation and its provider: `datlocprovider` came with 15; before, every
/// database's default collation was libc's.
const DATABASE: &str = "
SELECT datcollate, datlocprovider::text FROM pg_database WHERE datname = current_database()";
const DATABASE_BEFORE_15: &str = "
SELECT datcollate, 'c' FROM pg_database WHERE datname = current_database()";

/// One row of `pg_type`, enough to resolve a kind.
struct TypeRow {
    name: String,
    typtype: String,
    base: u32,
    elem: u32,
    category: String,
    len: i16,
    relid: u32,
}

/// All user tables of one source with their shapes.
pub async fn read_tables(client: &Client) -> Result<Vec<TableShape>> {
    let version = server_version_num(client).await?;
    let types = read_types(client).await?;
    let bytewise_default = database_is_bytewise(client, version).await?;
    let columns = read_columns(client).await?;
    let keys = read_keys(client).await?;
    let mut uniques = read_uniques(client, version).await?;
    let mut parents = read_parents(client).await?;
    let resolver = Resolver {
        types: &types,
        columns: &columns,
    };
    let rows = client
        .query(TABLES, &[])
        .await
        .context(|| "listing tables".into())?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let oid: u32 = row.get(0);
        let name = TableName::new(row.get::<_, String>(1), row.get::<_, String>(2));
        let est: f64 = row.get(4);
        let cols = columns.get(&oid).map(Vec::as_slice).unwrap_or(&[]);
        let columns: Vec<Column> = cols
            .iter()
            .map(|c| resolver.column(c, bytewise_default))
            .collect();
        let key = key_indexes(&columns, keys.get(&oid));
        let parents = parents.remove(&oid).unwrap_or_default();
        let mut unique = uniques.remove(&oid).unwrap_or_default();
        // By name, so every source lists a table's indexes alike (OIDs differ between them).
        unique.sort_by(|a, b| a.name.cmp(&b.name));
        tables.push(TableShape {
            name,
            columns,
            key,
            est_rows: est.max(0.0) as u64,
            never_analyzed: est < 0.0,
            parents,
            unique,
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

fn key_indexes(columns: &[Column], key: Option<&Vec<String>>) -> Vec<usize> {
    let names = key.map(Vec::as_slice).unwrap_or(&[]);
    names
        .iter()
        .filter_map(|n| columns.iter().position(|c| &c.name == n))
        .collect()
}

/// A column as the catalog lists it, before its type is resolved.
struct RawColumn {
    name: String,
    type_oid: u32,
    type_name: String,
    base_name: String,
    not_null: bool,
    collation: String,
    generated: bool,
    identity_always: bool,
}

async fn read_columns(client: &Client) -> Result<HashMap<u32, Vec<RawColumn>>> {
    let rows = client
        .query(COLUMNS, &[])
        .await
        .context(|| "reading columns".into())?;
    let mut map: HashMap<u32, Vec<RawColumn>> = HashMap::new();
    for row in rows {
        map.entry(row.get(0)).or_default().push(RawColumn {
            name: row.get(1),
            type_oid: row.get(2),
            type_name: row.get(3),
            base_name: row.get(4),
            not_null: row.get(5),
            collation: row.get(6),
            generated: row.get(7),
            identity_always: row.get(8),
        });
    }
    Ok(map)
}

async fn read_keys(client: &Client) -> Result<HashMap<u32, Vec<String>>> {
    let rows = client
        .query(KEYS, &[])
        .await
        .context(|| "reading primary keys".into())?;
    let mut map: HashMap<u32, Vec<String>> = HashMap::new();
    for row in rows {
        map.entry(row.get(0)).or_default().push(row.get(1));
    }
    Ok(map)
}

async fn read_uniques(client: &Client, version: i32) -> Result<HashMap<u32, Vec<UniqueIndex>>> {
    let sql = match version >= 150_000 {
        true => UNIQUES,
        false => UNIQUES_BEFORE_15,
    };
    let rows = client
        .query(sql, &[])
        .await
        .context(|| "reading unique indexes".into())?;
    let mut map: HashMap<u32, Vec<UniqueIndex>> = HashMap::new();
    for row in rows {
        map.entry(row.get(0)).or_default().push(UniqueIndex {
            name: row.get(1),
            nulls_not_distinct: row.get(2),
            columns: row.get(3),
        });
    }
    Ok(map)
}

async fn read_parents(client: &Client) -> Result<HashMap<u32, Vec<TableName>>> {
    let rows = client
        .query(PARENTS, &[])
        .await
        .context(|| "reading foreign keys".into())?;
    let mut map: HashMap<u32, Vec<TableName>> = HashMap::new();
    for row in rows {
        let parent = TableName::new(row.get::<_, String>(1), row.get::<_, String>(2));
        let list = map.entry(row.get(0)).or_default();
        if !list.contains(&parent) {
            list.push(parent);
        }
    }
    Ok(map)
}

async fn read_types(client: &Client) -> Result<HashMap<u32, TypeRow>> {
    let rows = client
        .query(TYPES, &[])
        .await
        .context(|| "reading types".into())?;
    let entry = |row: tokio_postgres::Row| {
        let t = TypeRow {
            name: row.get(1),
            typtype: row.get(2),
            base: row.get(3),
            elem: row.get(4),
            category: row.get(5),
            len: row.get(6),
            relid: row.get(7),
        };
        (row.get::<_, u32>(0), t)
    };
    Ok(rows.into_iter().map(entry).collect())
}

/// Whether the database's default collation orders by bytes, as PostgreSQL decides it
/// (`lc_collate_is_c`): libc's C and POSIX, and the builtin provider of 17+ (its C, C.UTF-8
/// and PG_UNICODE_FAST sort by code point, which is UTF-8's byte order); libc's C.UTF-8 and
/// ICU locales do not.
async fn database_is_bytewise(client: &Client, version: i32) -> Result<bool> {
    let sql = if version >= 150_000 {
        DATABASE
    } else {
        DATABASE_BEFORE_15
    };
    let row = client
        .query_one(sql, &[])
        .await
        .context(|| "reading the database".into())?;
    let collate: String = row.get(0);
    let provider: String = row.get(1);
    Ok(provider == "b" || (provider == "c" && matches!(collate.as_str(), "C" | "POSIX")))
}

/// The server's `server_version_num` (130023 for 13.23): catalog queries follow it, as
/// columns and functions come and go between majors.
pub async fn server_version_num(client: &Client) -> Result<i32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .context(|| "reading the server version".into())?;
    Ok(row.get(0))
}

struct Resolver<'a> {
    types: &'a HashMap<u32, TypeRow>,
    columns: &'a HashMap<u32, Vec<RawColumn>>,
}

impl Resolver<'_> {
    fn column(&self, raw: &RawColumn, bytewise_default: bool) -> Column {
        let kind = self.kind(raw.type_oid, 0);
        let bytewise = kind.collatable()
            && match raw.collation.as_str() {
                "C" | "POSIX" => true,
                "default" => bytewise_default,
                _ => false,
            };
        Column {
            name: raw.name.clone(),
            family: kind.family(&raw.base_name),
            type_name: raw.type_name.clone(),
            kind,
            not_null: raw.not_null,
            bytewise,
            generated: raw.generated,
            identity_always: raw.identity_always,
        }
    }

    /// Resolves a type OID to the kind its binary form has; `depth` guards against cycles.
    fn kind(&self, oid: u32, depth: u32) -> TypeKind {
        if let Some(kind) = builtin_kind(oid) {
            return kind;
        }
        let Some(t) = self.types.get(&oid).filter(|_| depth < 32) else {
            return TypeKind::Other;
        };
        match t.typtype.as_str() {
            "d" => self.kind(t.base, depth + 1),
            "e" => TypeKind::Text,
            "c" => TypeKind::Composite(self.fields(t.relid, depth)),
            "b" if t.category == "A" && t.elem != 0 && t.len == -1 => {
                TypeKind::Array(Box::new(self.kind(t.elem, depth + 1)))
            }
            "b" if t.name == "citext" => TypeKind::Text,
            _ => TypeKind::Other,
        }
    }

    fn fields(&self, relid: u32, depth: u32) -> Vec<TypeKind> {
        let cols = self.columns.get(&relid).map(Vec::as_slice).unwrap_or(&[]);
        cols.iter()
            .map(|c| self.kind(c.type_oid, depth + 1))
            .collect()
    }
}

/// The built-in types whose OIDs are fixed in every PostgreSQL.
fn builtin_kind(oid: u32) -> Option<TypeKind> {
    Some(match oid {
        16 => TypeKind::Bool,
        21 => TypeKind::Int(2),
        23 => TypeKind::Int(4),
        20 => TypeKind::Int(8),
        700 => TypeKind::Float4,
        701 => TypeKind::Float8,
        1700 => TypeKind::Numeric,
        25 | 1043 | 19 => TypeKind::Text,
        1042 => TypeKind::Bpchar,
        17 => TypeKind::Bytea,
        1082 => TypeKind::Date,
        1083 => TypeKind::Time,
        1266 => TypeKind::TimeTz,
        1114 => TypeKind::Timestamp,
        1184 => TypeKind::TimestampTz,
        1186 => TypeKind::Interval,
        2950 => TypeKind::Uuid,
        114 => TypeKind::Json,
        3802 => TypeKind::Jsonb,
        869 | 650 => TypeKind::Inet,
        _ => return None,
    })
}
/// Checks every `--where` predicate of `plans` on every source that has its table, before a row
/// is read: a predicate that does not hold as SQL there (a typo, a column one side lacks) is one
/// error naming the table and the source. The check plans the read (`EXPLAIN`, nothing runs)
/// inside a savepoint on the source's snapshot session: rolling it back releases the table's
/// lock at once and keeps the snapshot's transaction usable after an error.
pub async fn check_predicates(
    sources: &[super::Source],
    plans: &[crate::plan::TablePlan],
) -> Result<()> {
    for plan in plans {
        let Some(predicate) = &plan.rows else {
            continue;
        };
        for (i, source) in sources.iter().enumerate() {
            if plan.codecs.get(i).is_none_or(Option::is_none) {
                continue;
            }
            check_predicate(source.client(), &plan.name, predicate)
                .await
                .map_err(|why| {
                    crate::error::Error::usage(format!(
                        "--where of {} fails on {}: {why}",
                        plan.name, source.role
                    ))
                    .with_hint("the predicate is applied as written on every source; check it with psql on that source")
                })?;
        }
    }
    Ok(())
}

async fn check_predicate(
    client: &Client,
    table: &TableName,
    predicate: &str,
) -> std::result::Result<(), String> {
    let explain = format!("EXPLAIN SELECT 1 FROM {} WHERE ({predicate})", table.sql());
    let run = async {
        client
            .batch_execute("SAVEPOINT pgsalvage_where; SET LOCAL lock_timeout = '10s'")
            .await?;
        let planned = client.batch_execute(&explain).await;
        client
            .batch_execute(
                "ROLLBACK TO SAVEPOINT pgsalvage_where; RELEASE SAVEPOINT pgsalvage_where",
            )
            .await?;
        planned
    };
    run.await.map_err(|e| match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    })
}
