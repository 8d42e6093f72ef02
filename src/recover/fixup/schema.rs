//! The schema fix-ups: what the target lost of the base's schema, put back around the rows.
//!
//! Sequences, columns and defaults go before the row restore (a missing primary key too: the row
//! restore's `ON CONFLICT (key)` needs its index); the added columns' values, missing constraints
//! and indexes, and `SET NOT NULL` after it. Drift no DDL can put back is listed for a person.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{entry, Builder, FixStep};
use crate::check::catalog::{ConstraintDef, ConstraintKind};
use crate::check::drift::{self, Change, Drift, Object};
use crate::check::scan;
use crate::error::Result;
use crate::shape::{quote_ident, TableName};
use crate::sql::{key_match, select_list};

impl Builder<'_> {
    /// A drift item whose DDL runs as it is, before the row restore.
    fn push_ddl(&mut self, kind: &str, table: Option<&TableName>, object: &str, ddl: &[String]) {
        let mut e = entry(kind, table, object);
        e.statements = ddl.to_vec();
        self.push(false, e, ddl.iter().cloned().map(FixStep::Run).collect());
    }

    /// Sequences, columns and defaults the target lost, and a lost primary key.
    pub(super) fn schema_before(&mut self) {
        self.missing_sequences();
        self.missing_tables();
        self.missing_columns();
        self.changed_defaults();
        self.missing_primary_keys();
    }

    /// Creates the sequences the target lost; undo drops them last.
    fn missing_sequences(&mut self) {
        let seqs: Vec<Drift> = self
            .drift(Object::Sequence, Change::Missing)
            .cloned()
            .collect();
        let created = self.created_tables();
        for d in seqs {
            // An identity column's sequence comes with the table that is created.
            let identity = self.bs.sequences.get(&d.qualified).is_some_and(|s| {
                !s.users.is_empty()
                    && s.users.iter().all(|(t, c)| {
                        created.contains(t)
                            && self
                                .bs
                                .table(t)
                                .and_then(|t| t.column(c))
                                .is_some_and(|c| c.identity.is_some())
                    })
            });
            if identity {
                continue;
            }
            self.push_ddl("create_sequence", None, &d.name, &d.ddl);
            // IF EXISTS: a sequence owned by a table created here goes with the table.
            let drop = format!("DROP SEQUENCE IF EXISTS {}", d.qualified.sql());
            self.out.undo_last.push(FixStep::Run(drop));
        }
    }

    /// The tables the target lost that are created here, parents first: those the base has, but
    /// partitioned ones (their partitions are not read here: a person restores those).
    pub(super) fn created_tables(&self) -> Vec<TableName> {
        let names: Vec<TableName> = self
            .drift(Object::Table, Change::Missing)
            .filter(|d| {
                self.bs
                    .table(&d.qualified)
                    .is_some_and(|t| t.partition_key.is_none())
            })
            .map(|d| d.qualified.clone())
            .collect();
        let edges: Vec<(TableName, Vec<TableName>)> = names
            .iter()
            .map(|n| {
                let parents = self.bs.table(n).expect("filtered above").foreign_keys();
                (n.clone(), parents.map(|(_, f)| f.parent.clone()).collect())
            })
            .collect();
        let (order, _) = crate::recovery::order::parents_first(&edges);
        order.into_iter().map(|i| names[i].clone()).collect()
    }

    /// Creates the tables the target lost, before the row restore fills them: columns,
    /// defaults, the key and unique constraints, validated checks, sequence ownership and the
    /// position of identity sequences. The rest comes after the rows ([`Self::table_after`]).
    /// undo drops them, children first, after the row undo.
    fn missing_tables(&mut self) {
        for name in self.created_tables() {
            let bt = self
                .bs
                .table(&name)
                .expect("a created table is the base's")
                .clone();
            let ddl = drift::TableDdl::of(&bt);
            let mut steps = vec![ddl.create.clone()];
            steps.extend(self.sequence_ties(&bt));
            let mut e = entry("create_table", Some(&name), &name.to_string());
            e.statements = steps.clone();
            e.note = Some(
                "from the base's catalog; triggers, grants, policies and comments are not: take them from pg_dump of the base"
                    .into(),
            );
            self.push(false, e, steps.into_iter().map(FixStep::Run).collect());
            self.out
                .undo_last
                .insert(0, FixStep::Run(format!("DROP TABLE {}", name.sql())));
        }
    }

    /// The base's sequences a created table's columns use: owned by their column again, and an
    /// identity sequence (created with the table) set where the base's is.
    fn sequence_ties(&self, bt: &crate::check::catalog::TableDef) -> Vec<String> {
        let mut out = Vec::new();
        for seq in self.bs.sequences.values() {
            for (t, c) in seq.users.iter().filter(|(t, _)| *t == bt.name) {
                let Some(col) = bt.column(c) else { continue };
                let column = format!("{}.{}", t.sql(), quote_ident(c));
                if col.identity.is_some() {
                    if let Some(v) = seq.last_value {
                        out.push(format!(
                            "SELECT setval(pg_get_serial_sequence({}, {}), {v})",
                            crate::sql::literal(&t.sql()),
                            crate::sql::literal(c)
                        ));
                    }
                } else if self.ins.target.sequences.contains_key(&seq.name)
                    || self
                        .drift(Object::Sequence, Change::Missing)
                        .any(|d| d.qualified == seq.name)
                {
                    out.push(format!(
                        "ALTER SEQUENCE {} OWNED BY {column}",
                        seq.name.sql()
                    ));
                }
            }
        }
        out
    }

    /// What a created table gets once its rows are in: foreign keys (validated when every
    /// parent row will be there: the parent is created here too, or ends up all from the base),
    /// exclusion constraints, checks the base never validated, and the other indexes.
    pub(super) fn tables_after(&mut self) {
        let created = self.created_tables();
        for name in &created {
            let name = name.clone();
            let bt = self
                .bs
                .table(&name)
                .expect("a created table is the base's")
                .clone();
            let ddl = drift::TableDdl::of(&bt);
            for con in ddl.constraints {
                let statements = drift::add_constraint(&name, con);
                let mut e = entry(
                    "add_constraint",
                    Some(&name),
                    &format!("{name}.{}", con.name),
                );
                e.statements = vec![statements[0].clone()];
                self.push(true, e, vec![FixStep::Run(statements[0].clone())]);
                if con.validated && statements.len() > 1 {
                    let parent = con.foreign.as_ref().map(|f| &f.parent);
                    let holds =
                        parent.is_none_or(|p| created.contains(p) || self.rows.all_from_base(p));
                    let why = (!holds).then(|| {
                        "the parent table keeps rows the base does not have or lacks, so its rows were not checked".to_string()
                    });
                    self.validate(&name, &con.name, why);
                }
            }
            for index in ddl.indexes {
                let mut e = entry(
                    "create_index",
                    Some(&name),
                    &format!("{name}.{}", index.name),
                );
                e.statements = vec![index.definition.clone()];
                self.push(true, e, vec![FixStep::Run(index.definition.clone())]);
            }
        }
    }

    /// Adds the columns the target lost; undo drops them.
    fn missing_columns(&mut self) {
        let cols: Vec<Drift> = self
            .drift(Object::Column, Change::Missing)
            .cloned()
            .collect();
        for d in cols {
            let table = d.qualified.clone();
            self.push_ddl(
                "add_column",
                Some(&table),
                &format!("{table}.{}", d.name),
                &d.ddl,
            );
            // Undo drops columns before the sequences their defaults use.
            self.out.undo_last.insert(
                0,
                FixStep::Run(format!(
                    "ALTER TABLE {} DROP COLUMN {}",
                    table.sql(),
                    quote_ident(&d.name)
                )),
            );
        }
    }

    /// Sets the base's defaults back; undo sets the target's again.
    fn changed_defaults(&mut self) {
        let defaults: Vec<Drift> = self
            .drift(Object::Column, Change::Different)
            .filter(|d| d.aspect == Some("default"))
            .cloned()
            .collect();
        for d in defaults {
            let table = d.qualified.clone();
            self.push_ddl(
                "set_default",
                Some(&table),
                &format!("{table}.{}", d.name),
                &d.ddl,
            );
            let alter = format!(
                "ALTER TABLE {} ALTER COLUMN {}",
                table.sql(),
                quote_ident(&d.name)
            );
            let back = match &d.target {
                Some(expr) => format!("{alter} SET DEFAULT {expr}"),
                None => format!("{alter} DROP DEFAULT"),
            };
            self.out.undo_last.insert(0, FixStep::Run(back));
        }
    }

    /// Adds the primary keys the target lost before the rows: the row restore's
    /// `ON CONFLICT (key)` needs their index.
    fn missing_primary_keys(&mut self) {
        let pks: Vec<(TableName, ConstraintDef)> = self
            .missing_constraints()
            .into_iter()
            .filter(|(_, c)| c.kind == ConstraintKind::PrimaryKey)
            .collect();
        for (table, con) in pks {
            let dups = self.duplicates_left(&table, &con.name);
            self.add_constraint(false, &table, &con, dups);
        }
    }

    /// Constraints of the base missing on the target, for tables both have.
    pub(super) fn missing_constraints(&self) -> Vec<(TableName, ConstraintDef)> {
        self.drift(Object::Constraint, Change::Missing)
            .filter_map(|d| {
                let table = d.qualified.clone();
                let con = self.bs.table(&table)?.constraint(&d.name)?.clone();
                Some((table, con))
            })
            .collect()
    }

    /// Rows of a duplicate finding the row restore leaves in place beyond one per group, `None`
    /// when check found no duplicates for that rule.
    pub(super) fn duplicates_left(&self, table: &TableName, name: &str) -> Option<u64> {
        let d = self
            .ins
            .report
            .duplicates
            .iter()
            .find(|d| &d.table_name == table && d.name == name)?;
        let mut left: BTreeMap<&Vec<Option<String>>, u64> = BTreeMap::new();
        for r in &d.duplicates.all {
            if !self
                .rows
                .fixes(table, &d.duplicates.key_columns, &r.key, &d.columns)
            {
                *left.entry(&r.values).or_default() += 1;
            }
        }
        Some(left.values().map(|n| n.saturating_sub(1)).sum())
    }

    pub(super) fn add_constraint(
        &mut self,
        after: bool,
        table: &TableName,
        con: &ConstraintDef,
        dups: Option<u64>,
    ) {
        let ddl = drift::add_constraint(table, con);
        let add = ddl[0].clone();
        let mut e = entry(
            "add_constraint",
            Some(table),
            &format!("{table}.{}", con.name),
        );
        e.statements = vec![add.clone()];
        let blocked = match (con.kind, dups) {
            (ConstraintKind::Exclusion, _) => {
                Some("an exclusion constraint is checked as it is added".to_string())
            }
            (_, Some(n)) if n > 0 => {
                Some(format!("{n} duplicate rows remain after the row restore"))
            }
            _ => None,
        };
        e.active = blocked.is_none();
        e.note = blocked;
        let step = if e.active {
            FixStep::Run(add)
        } else {
            FixStep::Choice(add)
        };
        self.push(after, e, vec![step]);
        let drop = FixStep::Run(format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            table.sql(),
            quote_ident(&con.name)
        ));
        // A primary key added before the rows is dropped after the row undo, which needs it.
        if after {
            self.out.undo_first.push(drop);
        } else {
            self.out.undo_last.insert(0, drop);
        }
    }

    /// Added columns get the base's values (after the row restore, so inserted rows get them
    /// too).
    pub(super) fn columns_after(&mut self) {
        let cols: Vec<Drift> = self
            .drift(Object::Column, Change::Missing)
            .cloned()
            .collect();
        for d in cols {
            let table = d.qualified.clone();
            let (Some(bt), Some(tt)) = (self.bs.table(&table), self.ins.target.table(&table))
            else {
                continue;
            };
            let Some(col) = bt.column(&d.name) else {
                continue;
            };
            let key = bt.primary_key();
            let mut e = entry("copy_column", Some(&table), &format!("{table}.{}", d.name));
            if col.generated || col.identity.is_some() {
                continue;
            }
            if key.is_empty() || key.iter().any(|k| tt.column(k).is_none()) {
                e.active = false;
                e.note = Some("the table has no primary key on both sides to match rows by".into());
                self.push(true, e, Vec::new());
                continue;
            }
            let temp = self.temp("col");
            let columns = [key.clone(), vec![d.name.clone()]].concat();
            let query = format!("SELECT {} FROM {}", select_list(&columns), table.sql());
            let update = format!(
                "UPDATE {} AS t SET {} = s.{} FROM {} AS s WHERE {}",
                table.sql(),
                quote_ident(&d.name),
                quote_ident(&d.name),
                quote_ident(&temp),
                key_match(&key)
            );
            e.statements = vec![update.clone()];
            let load = FixStep::Load {
                temp,
                table: table.clone(),
                columns,
                queries: vec![query],
                from_target: false,
            };
            self.push(true, e, vec![load, FixStep::Run(update)]);
            if col.not_null {
                let holds = col.default.is_some() || self.rows.all_from_base(&table);
                let why = "rows only on the target would stay NULL";
                self.set_not_null(&table, &col.name, holds.then_some(()).ok_or(why), false);
            }
        }
    }

    /// Missing unique, foreign-key and check constraints (a missing primary key came before the
    /// rows), checked against the target's rows where their columns exist.
    pub(super) async fn added_constraints(&mut self, target: &Client) -> Result<()> {
        let created = self.created_tables();
        for (table, con) in self.missing_constraints() {
            if con.kind == ConstraintKind::PrimaryKey {
                continue;
            }
            let dups = self.duplicates_left(&table, &con.name);
            self.add_constraint(true, &table, &con, dups);
            if !con.kind.can_be_not_valid() {
                continue;
            }
            let parent = con.foreign.as_ref().map(|f| &f.parent);
            if parent.is_some_and(|p| created.contains(p)) {
                let why = "its parent table is created by this recovery: its rows were not checked";
                self.validate(&table, &con.name, Some(why.into()));
                continue;
            }
            let left = self.added_violations_left(target, &table, &con).await?;
            let why = match left {
                Some(0) => None,
                Some(n) => Some(format!("{n} rows would still violate it")),
                None => Some(
                    "its columns are not on the target yet, so its rows were not checked".into(),
                ),
            };
            self.validate(&table, &con.name, why);
        }
        Ok(())
    }

    pub(super) async fn added_violations_left(
        &self,
        target: &Client,
        table: &TableName,
        con: &ConstraintDef,
    ) -> Result<Option<u64>> {
        let Some(tt) = self.ins.target.table(table) else {
            return Ok(None);
        };
        if con.columns.iter().any(|c| tt.column(c).is_none()) {
            return Ok(None);
        }
        let Some(cond) = scan::violation_condition(tt, con) else {
            return Ok(None);
        };
        let key = scan::key_columns(tt, &con.columns);
        let values = if con.foreign.is_some() {
            con.columns.clone()
        } else {
            Vec::new()
        };
        let found = scan::violations(target, tt, &key, &values, &cond).await?;
        Ok(Some(self.left_after(table, con, &key, &found.rows)))
    }

    /// Indexes the target lost (not those of constraints, which come with them).
    pub(super) fn indexes(&mut self) {
        let missing: Vec<Drift> = self
            .drift(Object::Index, Change::Missing)
            .cloned()
            .collect();
        for d in missing {
            let table = d.qualified.clone();
            let Some(def) = d.ddl.first().cloned() else {
                continue;
            };
            let mut e = entry("create_index", Some(&table), &format!("{table}.{}", d.name));
            e.statements = vec![def.clone()];
            if let Some(n) = self.duplicates_left(&table, &d.name).filter(|n| *n > 0) {
                e.active = false;
                e.note = Some(format!("{n} duplicate rows remain after the row restore"));
            }
            let step = if e.active {
                FixStep::Run(def)
            } else {
                FixStep::Choice(def)
            };
            self.push(true, e, vec![step]);
            let index = TableName::new(table.schema.clone(), d.name.clone());
            self.out.undo_first.push(FixStep::Run(format!(
                "DROP INDEX IF EXISTS {}",
                index.sql()
            )));
        }
    }

    /// NOT NULL the base has and the target lost, where no NULL will remain.
    pub(super) fn not_null(&mut self) {
        let lost: Vec<Drift> = self
            .drift(Object::Column, Change::Different)
            .filter(|d| d.aspect == Some("nullability") && d.base.as_deref() == Some("not null"))
            .cloned()
            .collect();
        for d in lost {
            let table = d.qualified.clone();
            let nulls = self
                .ins
                .report
                .not_null
                .iter()
                .find(|n| n.table_name == table && n.column == d.name);
            let left = nulls.map_or(0, |n| {
                let cols = [d.name.clone()];
                n.nulls
                    .all
                    .iter()
                    .filter(|r| !self.rows.fixes(&table, &n.nulls.key_columns, &r.key, &cols))
                    .count()
            });
            let why = format!("{left} rows would still hold NULL");
            self.set_not_null(
                &table,
                &d.name,
                if left == 0 { Ok(()) } else { Err(why.as_str()) },
                true,
            );
        }
    }

    pub(super) fn set_not_null(
        &mut self,
        table: &TableName,
        column: &str,
        holds: std::result::Result<(), &str>,
        undo: bool,
    ) {
        let sql = format!(
            "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
            table.sql(),
            quote_ident(column)
        );
        let mut e = entry("set_not_null", Some(table), &format!("{table}.{column}"));
        e.statements = vec![sql.clone()];
        e.active = holds.is_ok();
        e.note = holds.err().map(str::to_string);
        let step = if e.active {
            FixStep::Run(sql)
        } else {
            FixStep::Choice(sql)
        };
        self.push(true, e, vec![step]);
        if undo {
            self.out.undo_first.insert(
                0,
                FixStep::Run(format!(
                    "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                    table.sql(),
                    quote_ident(column)
                )),
            );
        }
    }

    /// Drift no DDL here can put back: listed for a person.
    pub(super) fn manual(&mut self) {
        let created = self.created_tables();
        let items: Vec<Drift> = self
            .ins
            .report
            .drift
            .iter()
            .filter(|d| !handled(d, &created))
            .cloned()
            .collect();
        for d in items {
            let object = match &d.table {
                Some(t) => format!("{t}.{}", d.name),
                None => d.name.clone(),
            };
            let mut e = entry("manual", Some(&d.qualified), &object);
            e.active = false;
            e.note = Some(
                format!(
                    "{:?} {:?}{}: base {}, target {}",
                    d.object,
                    d.change,
                    d.aspect.map(|a| format!(" ({a})")).unwrap_or_default(),
                    d.base.as_deref().unwrap_or("none"),
                    d.target.as_deref().unwrap_or("none")
                )
                .to_lowercase(),
            );
            self.push(true, e, Vec::new());
        }
    }
}

/// Whether a fix-up above puts this drift back.
fn handled(d: &Drift, created: &[TableName]) -> bool {
    match d.change {
        Change::Missing => d.object != Object::Table || created.contains(&d.qualified),
        Change::Extra => false,
        Change::Different => {
            d.aspect == Some("default")
                || (d.aspect == Some("nullability") && d.base.as_deref() == Some("not null"))
        }
    }
}
