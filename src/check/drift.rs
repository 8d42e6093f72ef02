//! Schema drift: the base's schema against the target's, object by object, and the DDL that puts
//! the base's version back.
//!
//! A pure function of two [`Schema`]s (no server), so every rule is unit-tested. Objects are
//! matched by name: tables and sequences by qualified name, columns, constraints and indexes by
//! name within their table. Definitions are compared as the server prints them
//! (`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`), which is stable
//! between a database and a restored copy of it. Whether a constraint is validated is not drift:
//! `check` reports that on its own, with the rows that violate it.
//!
//! The DDL is given for what can be put back without guessing: missing tables (columns with their
//! types, defaults, generation, identity and collations; constraints; indexes; see [`TableDdl`]),
//! missing columns, defaults, nullability, missing constraints (`NOT VALID` then `VALIDATE` where
//! that exists), missing indexes and missing sequences. A changed type or a changed definition has
//! no DDL here: those need a person (pg_dump of the base has the definitions). Neither has what
//! the catalog read here does not hold: a table's triggers, grants, policies, comments, storage
//! options and partitions.

use serde::Serialize;

use super::catalog::{
    ColumnDef, ConstraintDef, ConstraintKind, IndexDef, Schema, SequenceDef, TableDef,
};
use crate::shape::{quote_ident, TableName};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    Table,
    Column,
    Constraint,
    Index,
    Sequence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// On the base, not on the target.
    Missing,
    /// On the target, not on the base.
    Extra,
    /// On both, not the same.
    Different,
}

/// One difference between the base's schema and the target's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    pub object: Object,
    pub change: Change,
    /// The table of a column, constraint or index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub name: String,
    /// For `different`: `type`, `nullability`, `default` or `definition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect: Option<&'static str>,
    pub base: Option<String>,
    pub target: Option<String>,
    /// Statements that put the base's version back, in order; empty when that needs a person.
    pub ddl: Vec<String>,
    /// The table of a column, constraint or index; the table or sequence itself otherwise.
    #[serde(skip)]
    pub qualified: TableName,
}

/// Every difference, tables in name order, each table's objects after it.
pub fn diff(base: &Schema, target: &Schema) -> Vec<Drift> {
    let mut out = Vec::new();
    for (name, b) in &base.tables {
        match target.table(name) {
            None => out.push(Drift {
                ddl: TableDdl::of(b).statements(),
                ..table_drift(name, Change::Missing)
            }),
            Some(t) => out.extend(table_diff(b, t)),
        }
    }
    for name in target.tables.keys().filter(|n| base.table(n).is_none()) {
        out.push(table_drift(name, Change::Extra));
    }
    out.extend(sequence_diff(base, target));
    out
}

fn table_drift(name: &TableName, change: Change) -> Drift {
    Drift {
        object: Object::Table,
        change,
        table: None,
        name: name.to_string(),
        aspect: None,
        base: (change == Change::Missing).then(|| "table".into()),
        target: (change == Change::Extra).then(|| "table".into()),
        ddl: Vec::new(),
        qualified: name.clone(),
    }
}

fn table_diff(base: &TableDef, target: &TableDef) -> Vec<Drift> {
    let mut out = Vec::new();
    out.extend(column_diff(base, target));
    out.extend(constraint_diff(base, target));
    out.extend(index_diff(base, target));
    out
}

fn item(object: Object, change: Change, table: &TableName, name: &str) -> Drift {
    Drift {
        object,
        change,
        table: Some(table.to_string()),
        name: name.to_string(),
        aspect: None,
        base: None,
        target: None,
        ddl: Vec::new(),
        qualified: table.clone(),
    }
}

fn different(
    object: Object,
    table: &TableName,
    name: &str,
    aspect: &'static str,
    (base, target): (Option<String>, Option<String>),
    ddl: Vec<String>,
) -> Drift {
    Drift {
        aspect: Some(aspect),
        base,
        target,
        ddl,
        ..item(object, Change::Different, table, name)
    }
}

fn column_diff(base: &TableDef, target: &TableDef) -> Vec<Drift> {
    let table = &base.name;
    let mut out = Vec::new();
    for b in &base.columns {
        let Some(t) = target.column(&b.name) else {
            out.push(Drift {
                base: Some(column_text(b)),
                ddl: vec![add_column(table, b)],
                ..item(Object::Column, Change::Missing, table, &b.name)
            });
            continue;
        };
        out.extend(column_changes(table, b, t));
    }
    for t in target
        .columns
        .iter()
        .filter(|c| base.column(&c.name).is_none())
    {
        out.push(Drift {
            target: Some(column_text(t)),
            ..item(Object::Column, Change::Extra, table, &t.name)
        });
    }
    out
}

/// How a column both sides have differs: its type, its nullability, then its default or
/// generation.
fn column_changes(table: &TableName, b: &ColumnDef, t: &ColumnDef) -> Vec<Drift> {
    let col = quote_ident(&b.name);
    let alter = format!("ALTER TABLE {} ALTER COLUMN {col}", table.sql());
    let mut out = Vec::new();
    if b.type_sql != t.type_sql {
        let pair = (Some(b.type_sql.clone()), Some(t.type_sql.clone()));
        out.push(different(
            Object::Column,
            table,
            &b.name,
            "type",
            pair,
            Vec::new(),
        ));
    }
    if b.not_null != t.not_null {
        out.push(nullability_change(table, b, t, &alter));
    }
    out.extend(default_change(table, b, t, &alter));
    out
}

/// `SET NOT NULL` or `DROP NOT NULL`, to the base's nullability.
fn nullability_change(table: &TableName, b: &ColumnDef, t: &ColumnDef, alter: &str) -> Drift {
    let text = |n: bool| Some(if n { "not null" } else { "null" }.to_string());
    let ddl = if b.not_null {
        "SET NOT NULL"
    } else {
        "DROP NOT NULL"
    };
    let pair = (text(b.not_null), text(t.not_null));
    let ddl = vec![format!("{alter} {ddl}")];
    different(Object::Column, table, &b.name, "nullability", pair, ddl)
}

/// A changed default, with the DDL that puts the base's back; a change of generation (the
/// expression of a generated column, or whether it is generated at all) has none: that needs a
/// person.
fn default_change(table: &TableName, b: &ColumnDef, t: &ColumnDef, alter: &str) -> Option<Drift> {
    if b.default != t.default && !b.generated && !t.generated {
        let ddl = match &b.default {
            Some(expr) => format!("{alter} SET DEFAULT {expr}"),
            None => format!("{alter} DROP DEFAULT"),
        };
        let pair = (b.default.clone(), t.default.clone());
        Some(different(
            Object::Column,
            table,
            &b.name,
            "default",
            pair,
            vec![ddl],
        ))
    } else if b.default != t.default || b.generated != t.generated {
        let pair = (b.default.clone(), t.default.clone());
        Some(different(
            Object::Column,
            table,
            &b.name,
            "generation",
            pair,
            Vec::new(),
        ))
    } else {
        None
    }
}

/// `type [NOT NULL] [DEFAULT expr]`, for reports.
fn column_text(c: &ColumnDef) -> String {
    let mut text = c.type_sql.clone();
    if c.not_null {
        text.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        let word = if c.generated {
            "GENERATED ALWAYS AS"
        } else {
            "DEFAULT"
        };
        text.push_str(&format!(" {word} {d}"));
    }
    text
}

/// `ALTER TABLE t ADD COLUMN c type [DEFAULT expr | GENERATED ...]`, always nullable: the values
/// come from the base after it is added, and `NOT NULL` is set once they are in.
pub fn add_column(table: &TableName, c: &ColumnDef) -> String {
    format!("ALTER TABLE {} ADD COLUMN {}", table.sql(), column_sql(c))
}

/// `name type [COLLATE c] [DEFAULT expr | GENERATED ...]`, without nullability.
fn column_sql(c: &ColumnDef) -> String {
    let mut sql = format!("{} {}", quote_ident(&c.name), c.type_sql);
    if let Some(collation) = &c.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    match (&c.default, c.generated, c.identity) {
        (Some(expr), true, _) => sql.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED")),
        (_, _, Some('a')) => sql.push_str(" GENERATED ALWAYS AS IDENTITY"),
        (_, _, Some(_)) => sql.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        (Some(expr), false, None) => sql.push_str(&format!(" DEFAULT {expr}")),
        (None, _, None) => {}
    }
    sql
}

/// The statements that add `c` to `table` as the base has it: `NOT VALID` then `VALIDATE` for
/// foreign keys and checks, so the long check runs without blocking writes.
pub fn add_constraint(table: &TableName, c: &ConstraintDef) -> Vec<String> {
    let add = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {}",
        table.sql(),
        quote_ident(&c.name),
        c.definition
    );
    if c.kind.can_be_not_valid() {
        vec![format!("{add} NOT VALID"), validate(table, &c.name)]
    } else {
        vec![add]
    }
}

/// How to create a table the target lost, as the base has it, in the order a restore needs:
/// the table with its columns and the constraints its rows are loaded under (primary key, unique,
/// validated checks), then, once its rows are in, what would refuse or slow them (foreign keys,
/// which may point at tables created or filled later; exclusion constraints and checks the base
/// never validated; the other indexes).
pub struct TableDdl<'a> {
    pub table: &'a TableDef,
    /// `CREATE TABLE ...`.
    pub create: String,
    /// Constraints added after the rows.
    pub constraints: Vec<&'a ConstraintDef>,
    /// Indexes created after the rows (not those of constraints, which come with them).
    pub indexes: Vec<&'a IndexDef>,
}

impl<'a> TableDdl<'a> {
    pub fn of(table: &'a TableDef) -> TableDdl<'a> {
        let inline = |c: &&ConstraintDef| match c.kind {
            ConstraintKind::PrimaryKey | ConstraintKind::Unique => true,
            ConstraintKind::Check => c.validated,
            _ => false,
        };
        let mut parts: Vec<String> = table
            .columns
            .iter()
            .map(|c| match c.not_null {
                true => format!("{} NOT NULL", column_sql(c)),
                false => column_sql(c),
            })
            .collect();
        parts.extend(
            table
                .constraints
                .iter()
                .filter(compared)
                .filter(inline)
                .map(|c| format!("CONSTRAINT {} {}", quote_ident(&c.name), c.definition)),
        );
        let mut create = format!("CREATE TABLE {} ({})", table.name.sql(), parts.join(", "));
        if let Some(key) = &table.partition_key {
            create.push_str(&format!(" PARTITION BY {key}"));
        }
        TableDdl {
            table,
            create,
            constraints: table
                .constraints
                .iter()
                .filter(compared)
                .filter(|c| !inline(c))
                .collect(),
            indexes: table.indexes.iter().filter(free_standing).collect(),
        }
    }

    /// Every statement in order (foreign keys and checks the base validated are added `NOT
    /// VALID`, then validated).
    pub fn statements(&self) -> Vec<String> {
        let mut out = vec![self.create.clone()];
        for c in &self.constraints {
            let mut ddl = add_constraint(&self.table.name, c);
            if !c.validated {
                ddl.truncate(1);
            }
            out.extend(ddl);
        }
        out.extend(self.indexes.iter().map(|i| i.definition.clone()));
        out
    }
}

pub fn validate(table: &TableName, constraint: &str) -> String {
    format!(
        "ALTER TABLE {} VALIDATE CONSTRAINT {}",
        table.sql(),
        quote_ident(constraint)
    )
}

/// Constraints compared here: not the NOT NULL constraints PostgreSQL 18 lists in
/// `pg_constraint` (nullability is compared on the column).
fn compared(c: &&ConstraintDef) -> bool {
    c.kind != ConstraintKind::NotNull
}

fn constraint_diff(base: &TableDef, target: &TableDef) -> Vec<Drift> {
    let table = &base.name;
    let mut out = Vec::new();
    for b in base.constraints.iter().filter(compared) {
        match target.constraint(&b.name) {
            None => out.push(Drift {
                base: Some(b.definition.clone()),
                ddl: add_constraint(table, b),
                ..item(Object::Constraint, Change::Missing, table, &b.name)
            }),
            Some(t) if t.definition != b.definition => {
                let pair = (Some(b.definition.clone()), Some(t.definition.clone()));
                out.push(different(
                    Object::Constraint,
                    table,
                    &b.name,
                    "definition",
                    pair,
                    Vec::new(),
                ));
            }
            Some(_) => {}
        }
    }
    for t in target.constraints.iter().filter(compared) {
        if base.constraint(&t.name).is_none() {
            out.push(Drift {
                target: Some(t.definition.clone()),
                ..item(Object::Constraint, Change::Extra, table, &t.name)
            });
        }
    }
    out
}

/// Indexes owned by a constraint come and go with it, so only the others are compared.
fn free_standing(i: &&IndexDef) -> bool {
    i.constraint.is_none()
}

fn index_diff(base: &TableDef, target: &TableDef) -> Vec<Drift> {
    let table = &base.name;
    let mut out = Vec::new();
    for b in base.indexes.iter().filter(free_standing) {
        match target.index(&b.name) {
            None => out.push(Drift {
                base: Some(b.definition.clone()),
                ddl: vec![b.definition.clone()],
                ..item(Object::Index, Change::Missing, table, &b.name)
            }),
            Some(t) if t.definition != b.definition => {
                let pair = (Some(b.definition.clone()), Some(t.definition.clone()));
                out.push(different(
                    Object::Index,
                    table,
                    &b.name,
                    "definition",
                    pair,
                    Vec::new(),
                ));
            }
            Some(_) => {}
        }
    }
    for t in target.indexes.iter().filter(free_standing) {
        if base.index(&t.name).is_none_or(|b| b.constraint.is_some()) {
            out.push(Drift {
                target: Some(t.definition.clone()),
                ..item(Object::Index, Change::Extra, table, &t.name)
            });
        }
    }
    out
}

fn sequence_text(s: &SequenceDef) -> String {
    format!(
        "{} increment {} min {} max {} start {}{}",
        s.type_sql,
        s.increment,
        s.min,
        s.max,
        s.start,
        if s.cycle { " cycle" } else { "" }
    )
}

/// `CREATE SEQUENCE` as the base has it, and its position.
pub fn create_sequence(s: &SequenceDef) -> Vec<String> {
    let mut ddl = vec![format!(
        "CREATE SEQUENCE {} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {}{}",
        s.name.sql(),
        s.type_sql,
        s.increment,
        s.min,
        s.max,
        s.start,
        if s.cycle { " CYCLE" } else { " NO CYCLE" }
    )];
    if let Some(v) = s.last_value {
        ddl.push(format!(
            "SELECT setval({}, {v})",
            crate::sql::regclass(&s.name)
        ));
    }
    ddl
}

fn sequence_diff(base: &Schema, target: &Schema) -> Vec<Drift> {
    let seq = |name: &TableName, change| Drift {
        object: Object::Sequence,
        change,
        table: None,
        name: name.to_string(),
        aspect: None,
        base: None,
        target: None,
        ddl: Vec::new(),
        qualified: name.clone(),
    };
    let mut out = Vec::new();
    for (name, b) in &base.sequences {
        match target.sequences.get(name) {
            None => out.push(Drift {
                base: Some(sequence_text(b)),
                ddl: create_sequence(b),
                ..seq(name, Change::Missing)
            }),
            Some(t) if sequence_text(t) != sequence_text(b) => out.push(Drift {
                aspect: Some("definition"),
                base: Some(sequence_text(b)),
                target: Some(sequence_text(t)),
                ..seq(name, Change::Different)
            }),
            Some(_) => {}
        }
    }
    for (name, t) in &target.sequences {
        if !base.sequences.contains_key(name) {
            out.push(Drift {
                target: Some(sequence_text(t)),
                ..seq(name, Change::Extra)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::catalog::{ForeignKey, JsonForm};
    use super::*;

    fn col(name: &str, ty: &str, not_null: bool, default: Option<&str>) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            type_sql: ty.into(),
            not_null,
            default: default.map(str::to_string),
            generated: false,
            identity: None,
            json: JsonForm::Text,
            collation: None,
        }
    }

    fn items() -> TableDef {
        TableDef {
            name: TableName::new("public", "items"),
            columns: vec![
                col(
                    "id",
                    "integer",
                    true,
                    Some("nextval('items_id_seq'::regclass)"),
                ),
                col("status", "text", true, Some("'new'::text")),
                col("legacy", "character varying(20)", false, None),
            ],
            constraints: vec![
                ConstraintDef {
                    name: "items_pkey".into(),
                    kind: ConstraintKind::PrimaryKey,
                    definition: "PRIMARY KEY (id)".into(),
                    validated: true,
                    columns: vec!["id".into()],
                    foreign: None,
                    check: None,
                },
                ConstraintDef {
                    name: "items_owner_fk".into(),
                    kind: ConstraintKind::ForeignKey,
                    definition: "FOREIGN KEY (owner) REFERENCES owners(id)".into(),
                    validated: true,
                    columns: vec!["owner".into()],
                    foreign: Some(ForeignKey {
                        parent: TableName::new("public", "owners"),
                        parent_columns: vec!["id".into()],
                        match_full: false,
                    }),
                    check: None,
                },
            ],
            indexes: vec![
                IndexDef {
                    name: "items_pkey".into(),
                    definition: "CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)"
                        .into(),
                    unique: true,
                    valid: true,
                    constraint: Some("items_pkey".into()),
                    columns: Some(vec!["id".into()]),
                },
                IndexDef {
                    name: "items_status_idx".into(),
                    definition:
                        "CREATE INDEX items_status_idx ON public.items USING btree (status)".into(),
                    unique: false,
                    valid: true,
                    constraint: None,
                    columns: Some(vec!["status".into()]),
                },
            ],
            partition_key: None,
            row_key: None,
        }
    }

    fn schema(tables: Vec<TableDef>) -> Schema {
        Schema {
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            sequences: Default::default(),
        }
    }

    #[test]
    fn equal_schemas_have_no_drift() {
        assert_eq!(diff(&schema(vec![items()]), &schema(vec![items()])), vec![]);
    }

    #[test]
    fn a_validated_and_an_unvalidated_constraint_are_not_drift() {
        let mut target = items();
        target.constraints[1].validated = false;
        assert_eq!(diff(&schema(vec![items()]), &schema(vec![target])), vec![]);
    }

    #[test]
    fn a_dropped_column_comes_back_with_its_type_and_default() {
        let mut base = items();
        base.columns[2].default = Some("'x'::character varying".into());
        let mut target = base.clone();
        target.columns.remove(2);
        let d = diff(&schema(vec![base]), &schema(vec![target]));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].object, d[0].change),
            (Object::Column, Change::Missing)
        );
        assert_eq!(d[0].name, "legacy");
        assert_eq!(
            d[0].ddl,
            vec!["ALTER TABLE \"public\".\"items\" ADD COLUMN \"legacy\" character varying(20) DEFAULT 'x'::character varying"]
        );
    }

    #[test]
    fn changed_default_nullability_and_type_are_told_apart() {
        let mut target = items();
        target.columns[1].default = Some("'pending'::text".into());
        target.columns[1].not_null = false;
        target.columns[2].type_sql = "text".into();
        let d = diff(&schema(vec![items()]), &schema(vec![target]));
        let aspects: Vec<_> = d
            .iter()
            .map(|d| (d.name.as_str(), d.aspect.unwrap()))
            .collect();
        assert_eq!(
            aspects,
            [
                ("status", "nullability"),
                ("status", "default"),
                ("legacy", "type")
            ]
        );
        assert_eq!(
            d[0].ddl,
            ["ALTER TABLE \"public\".\"items\" ALTER COLUMN \"status\" SET NOT NULL"]
        );
        assert_eq!(
            d[1].ddl,
            ["ALTER TABLE \"public\".\"items\" ALTER COLUMN \"status\" SET DEFAULT 'new'::text"]
        );
        assert_eq!(d[1].target.as_deref(), Some("'pending'::text"));
        assert!(d[2].ddl.is_empty(), "a type change needs a person");
    }

    #[test]
    fn missing_constraints_and_indexes_come_back_not_valid_then_validated() {
        let mut target = items();
        target.constraints.remove(1);
        target.indexes.remove(1);
        let d = diff(&schema(vec![items()]), &schema(vec![target]));
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].ddl,
            [
                "ALTER TABLE \"public\".\"items\" ADD CONSTRAINT \"items_owner_fk\" FOREIGN KEY (owner) REFERENCES owners(id) NOT VALID",
                "ALTER TABLE \"public\".\"items\" VALIDATE CONSTRAINT \"items_owner_fk\""
            ]
        );
        assert_eq!((d[1].object, d[1].change), (Object::Index, Change::Missing));
        assert_eq!(
            d[1].ddl,
            ["CREATE INDEX items_status_idx ON public.items USING btree (status)"]
        );
    }

    #[test]
    fn a_missing_primary_key_is_one_constraint_not_also_an_index() {
        let mut target = items();
        target.constraints.remove(0);
        target.indexes.remove(0);
        let d = diff(&schema(vec![items()]), &schema(vec![target]));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].object, Object::Constraint);
        assert_eq!(
            d[0].ddl,
            ["ALTER TABLE \"public\".\"items\" ADD CONSTRAINT \"items_pkey\" PRIMARY KEY (id)"]
        );
    }

    #[test]
    fn a_missing_table_is_created_with_its_rows_constraints_first_and_the_rest_after() {
        let mut t = items();
        t.columns[2].collation = Some("pg_catalog.\"C\"".into());
        let d = diff(&schema(vec![t]), &schema(vec![]));
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].object, d[0].change), (Object::Table, Change::Missing));
        assert_eq!(
            d[0].ddl,
            [
                "CREATE TABLE \"public\".\"items\" (\"id\" integer DEFAULT nextval('items_id_seq'::regclass) NOT NULL, \"status\" text DEFAULT 'new'::text NOT NULL, \"legacy\" character varying(20) COLLATE pg_catalog.\"C\", CONSTRAINT \"items_pkey\" PRIMARY KEY (id))",
                "ALTER TABLE \"public\".\"items\" ADD CONSTRAINT \"items_owner_fk\" FOREIGN KEY (owner) REFERENCES owners(id) NOT VALID",
                "ALTER TABLE \"public\".\"items\" VALIDATE CONSTRAINT \"items_owner_fk\"",
                "CREATE INDEX items_status_idx ON public.items USING btree (status)",
            ]
        );
    }

    #[test]
    fn extra_and_missing_tables_and_sequences() {
        let other = TableDef {
            name: TableName::new("public", "other"),
            ..items()
        };
        let mut base = schema(vec![items()]);
        let seq = SequenceDef {
            name: TableName::new("public", "items_id_seq"),
            type_sql: "integer".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: 2147483647,
            cycle: false,
            last_value: Some(40),
            readable: true,
            users: Vec::new(),
        };
        base.sequences.insert(seq.name.clone(), seq);
        let target = schema(vec![other]);
        let d = diff(&base, &target);
        let kinds: Vec<_> = d
            .iter()
            .map(|d| (d.object, d.change, d.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (Object::Table, Change::Missing, "public.items"),
                (Object::Table, Change::Extra, "public.other"),
                (Object::Sequence, Change::Missing, "public.items_id_seq"),
            ]
        );
        assert_eq!(
            d[2].ddl,
            [
                "CREATE SEQUENCE \"public\".\"items_id_seq\" AS integer INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 NO CYCLE",
                "SELECT setval('\"public\".\"items_id_seq\"'::regclass, 40)"
            ]
        );
    }
}
