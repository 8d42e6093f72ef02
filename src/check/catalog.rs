//! What `check` knows about one database's schema: tables, columns, constraints, indexes and
//! sequences, read from `pg_catalog` inside the check's snapshot.
//!
//! This is a different view from `source::catalog`, which resolves types for decoding rows:
//! here every object keeps the server's own text for it (`format_type`, `pg_get_expr`,
//! `pg_get_constraintdef`, `pg_get_indexdef`), because that text is what the drift diff compares
//! across databases (OIDs differ between a database and its restored backup) and what the fix-up
//! DDL replays. Partitions are left out as verify leaves them out: their constraints and indexes
//! are clones of the partitioned table's.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{Context, Result};
use crate::shape::TableName;

const TABLES: &str = "
SELECT c.oid, n.nspname::text, c.relname::text,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

const COLUMNS: &str = "
SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text, a.attidentity::text,
       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END,
       CASE WHEN a.attcollation <> t.typcollation
            THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum";

const CONSTRAINTS: &str = "
SELECT c.conrelid, c.conname::text, c.contype::text, pg_get_constraintdef(c.oid), c.convalidated,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       fn.nspname::text, f.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
       c.confmatchtype::text,
       CASE WHEN c.contype = 'c' THEN pg_get_expr(c.conbin, c.conrelid) END
  FROM pg_constraint c
  LEFT JOIN pg_class f ON f.oid = c.confrelid
  LEFT JOIN pg_namespace fn ON fn.oid = f.relnamespace
 WHERE c.conrelid <> 0 AND c.conparentid = 0 AND c.contype IN ('p', 'u', 'f', 'c', 'x', 'n')
 ORDER BY c.conrelid, c.conname";

const INDEXES: &str = "
SELECT i.indrelid, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisvalid,
       con.conname::text,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
              WHERE k.o <= i.indnkeyatts ORDER BY k.o),
       i.indexprs IS NULL AND i.indpred IS NULL
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                              AND con.contype IN ('p', 'u', 'x')
 ORDER BY i.indrelid, ic.relname";

const SEQUENCES: &str = "
SELECT schemaname::text, sequencename::text, format_type(data_type, NULL), start_value,
       increment_by, min_value, max_value, cycle, last_value,
       has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT, USAGE')
  FROM pg_sequences
 ORDER BY 1, 2";

/// Columns fed by a sequence: owned by it (`OWNED BY`, identity) or defaulting to its `nextval`.
const SEQUENCE_USERS: &str = "
WITH uses AS (
  SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att
    FROM pg_depend d
   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
     AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
  UNION
  SELECT d.refobjid, ad.adrelid, ad.adnum
    FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
   WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass)
SELECT sn.nspname::text, s.relname::text, tn.nspname::text, t.relname::text, a.attname::text
  FROM uses u
  JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_class t ON t.oid = u.rel AND t.relkind IN ('r', 'p')
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
 ORDER BY 1, 2, 3, 4, 5";

/// How a value's text form becomes JSON in a report, as verify renders keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonForm {
    /// Integers, numerics and floats: the digits as a JSON number (when finite).
    Number,
    Bool,
    /// json and jsonb: the text is JSON already.
    Json,
    /// Everything else: a JSON string of the text.
    Text,
}

impl JsonForm {
    fn of_type(oid: u32) -> JsonForm {
        match oid {
            20 | 21 | 23 | 700 | 701 | 1700 => JsonForm::Number,
            16 => JsonForm::Bool,
            114 | 3802 => JsonForm::Json,
            _ => JsonForm::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// `format_type` with the modifier: `character varying(20)`, `numeric(10,2)`.
    pub type_sql: String,
    pub not_null: bool,
    /// The default expression (or the generation expression of a generated column).
    pub default: Option<String>,
    pub generated: bool,
    /// `a` (always) or `d` (by default) for identity columns.
    pub identity: Option<char>,
    pub json: JsonForm,
    /// The column's collation (`schema.name`, quoted) where it is not its type's default.
    pub collation: Option<String>,
}

/// A constraint's kind, as `pg_constraint.contype` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey,
    Check,
    Exclusion,
    NotNull,
}

impl ConstraintKind {
    fn of(contype: &str) -> Option<ConstraintKind> {
        Some(match contype {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            "c" => ConstraintKind::Check,
            "x" => ConstraintKind::Exclusion,
            "n" => ConstraintKind::NotNull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::Unique => "unique",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
            ConstraintKind::Exclusion => "exclusion",
            ConstraintKind::NotNull => "not null",
        }
    }

    /// Whether `ADD CONSTRAINT ... NOT VALID` exists for this kind.
    pub fn can_be_not_valid(self) -> bool {
        matches!(self, ConstraintKind::ForeignKey | ConstraintKind::Check)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKey {
    pub parent: TableName,
    pub parent_columns: Vec<String>,
    /// `MATCH FULL`; otherwise `MATCH SIMPLE` (a row with any NULL in the key references nothing).
    pub match_full: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintDef {
    pub name: String,
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef` without the ` NOT VALID` it appends to unvalidated constraints, so
    /// the same constraint reads the same whether validated or not.
    pub definition: String,
    pub validated: bool,
    pub columns: Vec<String>,
    pub foreign: Option<ForeignKey>,
    /// A CHECK constraint's expression.
    pub check: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    /// `pg_get_indexdef`: a complete `CREATE [UNIQUE] INDEX` statement.
    pub definition: String,
    pub unique: bool,
    pub valid: bool,
    /// The constraint that owns the index (primary key, unique, exclusion), if any.
    pub constraint: Option<String>,
    /// The key columns, when the index is on plain columns without a predicate.
    pub columns: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub name: TableName,
    pub columns: Vec<ColumnDef>,
    pub constraints: Vec<ConstraintDef>,
    pub indexes: Vec<IndexDef>,
    /// A partitioned table's `PARTITION BY` clause (`pg_get_partkeydef`).
    pub partition_key: Option<String>,
    /// `--key`: the columns that name this table's rows in findings, in place of its primary
    /// key. Not in the catalog: `check::inspect` sets it from the command line.
    pub row_key: Option<Vec<String>>,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn constraint(&self, name: &str) -> Option<&ConstraintDef> {
        self.constraints.iter().find(|c| c.name == name)
    }

    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The primary key's columns, empty without one.
    pub fn primary_key(&self) -> Vec<String> {
        self.constraints
            .iter()
            .find(|c| c.kind == ConstraintKind::PrimaryKey)
            .map(|c| c.columns.clone())
            .unwrap_or_default()
    }

    pub fn foreign_keys(&self) -> impl Iterator<Item = (&ConstraintDef, &ForeignKey)> {
        self.constraints
            .iter()
            .filter_map(|c| c.foreign.as_ref().map(|f| (c, f)))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SequenceDef {
    pub name: TableName,
    pub type_sql: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// `None` before the first `nextval` (or without the privilege to read it).
    pub last_value: Option<i64>,
    /// Whether this session may read it (else `last_value` says nothing).
    pub readable: bool,
    /// The columns it feeds (table, column).
    pub users: Vec<(TableName, String)>,
}

impl SequenceDef {
    /// The value the next `nextval` returns.
    pub fn next_value(&self) -> i64 {
        match self.last_value {
            Some(v) => v.saturating_add(self.increment),
            None => self.start,
        }
    }
}

/// One database's schema, as `check` compares and repairs it.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub tables: BTreeMap<TableName, TableDef>,
    pub sequences: BTreeMap<TableName, SequenceDef>,
}

impl Schema {
    pub fn table(&self, name: &TableName) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// Keeps only the tables `keep` accepts, and the sequences that feed them or feed nothing.
    pub fn retain(&mut self, keep: impl Fn(&TableName) -> bool) {
        self.tables.retain(|n, _| keep(n));
        self.sequences
            .retain(|_, s| s.users.is_empty() || s.users.iter().any(|(t, _)| keep(t)));
    }
}

/// Reads the schema on `client`, inside whatever transaction it is in.
pub async fn read_schema(client: &Client) -> Result<Schema> {
    let rows = client
        .query(TABLES, &[])
        .await
        .context(|| "listing tables".into())?;
    let mut by_oid: BTreeMap<u32, TableDef> = rows
        .iter()
        .map(|r| {
            let name = TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
            let def = TableDef {
                name,
                columns: Vec::new(),
                constraints: Vec::new(),
                indexes: Vec::new(),
                partition_key: r.get(3),
                row_key: None,
            };
            (r.get::<_, u32>(0), def)
        })
        .collect();
    read_columns(client, &mut by_oid).await?;
    read_constraints(client, &mut by_oid).await?;
    read_indexes(client, &mut by_oid).await?;
    let tables = by_oid.into_values().map(|t| (t.name.clone(), t)).collect();
    let sequences = read_sequences(client).await?;
    Ok(Schema { tables, sequences })
}

async fn read_columns(client: &Client, tables: &mut BTreeMap<u32, TableDef>) -> Result<()> {
    let rows = client
        .query(COLUMNS, &[])
        .await
        .context(|| "reading columns".into())?;
    for r in rows {
        let Some(t) = tables.get_mut(&r.get::<_, u32>(0)) else {
            continue;
        };
        let generated: String = r.get(5);
        let identity: String = r.get(6);
        t.columns.push(ColumnDef {
            name: r.get(1),
            type_sql: r.get(2),
            not_null: r.get(3),
            default: r.get(4),
            generated: !generated.is_empty(),
            identity: identity.chars().next(),
            json: JsonForm::of_type(r.get(7)),
            collation: r.get(8),
        });
    }
    Ok(())
}

async fn read_constraints(client: &Client, tables: &mut BTreeMap<u32, TableDef>) -> Result<()> {
    let rows = client
        .query(CONSTRAINTS, &[])
        .await
        .context(|| "reading constraints".into())?;
    for r in rows {
        let (Some(t), Some(kind)) = (
            tables.get_mut(&r.get::<_, u32>(0)),
            ConstraintKind::of(r.get(2)),
        ) else {
            continue;
        };
        let definition: String = r.get(3);
        let foreign = (kind == ConstraintKind::ForeignKey).then(|| ForeignKey {
            parent: TableName::new(r.get::<_, String>(6), r.get::<_, String>(7)),
            parent_columns: r.get(8),
            match_full: r.get::<_, String>(9) == "f",
        });
        t.constraints.push(ConstraintDef {
            name: r.get(1),
            kind,
            definition: strip_not_valid(&definition).to_string(),
            validated: r.get(4),
            columns: r.get(5),
            foreign,
            check: r.get(10),
        });
    }
    Ok(())
}

async fn read_indexes(client: &Client, tables: &mut BTreeMap<u32, TableDef>) -> Result<()> {
    let rows = client
        .query(INDEXES, &[])
        .await
        .context(|| "reading indexes".into())?;
    for r in rows {
        let Some(t) = tables.get_mut(&r.get::<_, u32>(0)) else {
            continue;
        };
        let plain: bool = r.get(7);
        t.indexes.push(IndexDef {
            name: r.get(1),
            definition: r.get(2),
            unique: r.get(3),
            valid: r.get(4),
            constraint: r.get(5),
            columns: plain.then(|| r.get(6)),
        });
    }
    Ok(())
}

async fn read_sequences(client: &Client) -> Result<BTreeMap<TableName, SequenceDef>> {
    let rows = client
        .query(SEQUENCES, &[])
        .await
        .context(|| "reading sequences".into())?;
    let mut seqs: BTreeMap<TableName, SequenceDef> = rows
        .iter()
        .map(|r| {
            let name = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
            let def = SequenceDef {
                name: name.clone(),
                type_sql: r.get(2),
                start: r.get(3),
                increment: r.get(4),
                min: r.get(5),
                max: r.get(6),
                cycle: r.get(7),
                last_value: r.get(8),
                readable: r.get(9),
                users: Vec::new(),
            };
            (name, def)
        })
        .collect();
    let users = client
        .query(SEQUENCE_USERS, &[])
        .await
        .context(|| "reading which columns use sequences".into())?;
    for r in users {
        let seq = TableName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        if let Some(s) = seqs.get_mut(&seq) {
            let table = TableName::new(r.get::<_, String>(2), r.get::<_, String>(3));
            s.users.push((table, r.get(4)));
        }
    }
    Ok(seqs)
}

/// `pg_get_constraintdef` appends ` NOT VALID` to constraints not validated.
pub fn strip_not_valid(def: &str) -> &str {
    def.strip_suffix(" NOT VALID").unwrap_or(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_valid_is_not_part_of_a_definition() {
        assert_eq!(
            strip_not_valid("FOREIGN KEY (a) REFERENCES p(id) NOT VALID"),
            "FOREIGN KEY (a) REFERENCES p(id)"
        );
        assert_eq!(strip_not_valid("CHECK ((x > 0))"), "CHECK ((x > 0))");
    }

    #[test]
    fn next_value_follows_last_value() {
        let mut s = SequenceDef {
            name: TableName::new("public", "s"),
            type_sql: "bigint".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cycle: false,
            last_value: None,
            readable: true,
            users: Vec::new(),
        };
        assert_eq!(s.next_value(), 1);
        s.last_value = Some(41);
        assert_eq!(s.next_value(), 42);
    }
}
