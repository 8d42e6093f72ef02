//! Fix-ups: what `recover` adds to `restore.sql` (and reverses in `undo.sql`) for check's
//! findings, around the row restore.
//!
//! recover runs [`inspect`](super::inspect) on its own snapshots (target, and the base as the
//! reference), reads which keys its row restore deletes or updates ([`RowRestore`]), and asks
//! [`plan`] for the steps. Where they go, and why there:
//!
//! - **Before the rows**: missing sequences, missing columns (`ADD COLUMN` with the base's type
//!   and default, nullable for now), defaults put back, a missing primary key (the row restore's
//!   `ON CONFLICT (key)` needs its index), then the missing parents, restored from the base in
//!   foreign-key order (the whole chain, `INSERT ... ON CONFLICT DO NOTHING`). The chain includes
//!   rows the row restore inserts as well, so no parent ever waits for a later step; `apply`
//!   loads those tables' row inserts through the conflict-safe path (`insert_tables`).
//! - **The row restore** compares only the columns both sides had, so a column just added gets
//!   its values by a fix-up **after the rows**: the base's `(key, column)` pairs loaded and
//!   applied with `UPDATE ... FROM` (every base row, including those just inserted). Then
//!   missing constraints (`NOT VALID` where that exists) and indexes (a unique index built after
//!   the row restore removed the duplicates it could), commented-out choices for orphans nothing
//!   can restore (delete them, or set the reference NULL when it is nullable), `VALIDATE
//!   CONSTRAINT` and `SET NOT NULL` where they will hold, and last `setval` (computed when the
//!   script runs, from the restored table's maximum and the base's `last_value`).
//!
//! "Will hold" is decided row by row: a violating row holds after the restore when the row
//! restore deletes it or updates one of the rule's columns from the base, or (an orphan) when its
//! parent is restored. A rule that will not hold is written commented out with its reason, so the
//! transaction never fails half way on a guess. undo.sql reverses the schema steps and the parent
//! rows, and puts constraints back as they were (`NOT VALID`); `setval` cannot be reversed safely
//! (sequences are not transactional, and new rows may use the values), so undo only shows it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::catalog::{ColumnDef, ConstraintDef, ConstraintKind, Schema};
use super::drift::{self, Change, Drift, Object};
use super::parents::ParentRows;
use super::scan::{self, Violation};
use super::Inspection;
use crate::classify::Action;
use crate::error::Result;
use crate::recover::order::parents_first;
use crate::shape::{quote_ident, TableName};
use crate::sink::sql::{key_match, select_list};

/// One step a fix-up adds to a script.
#[derive(Clone, Debug, PartialEq)]
pub enum FixStep {
    Comment(String),
    /// A statement that runs.
    Run(String),
    /// A statement written commented out: a choice left to a person.
    Choice(String),
    /// A temporary table shaped like `columns` of `table`, filled from the base by `queries`.
    Load {
        temp: String,
        table: TableName,
        columns: Vec<String>,
        queries: Vec<String>,
    },
    /// A temporary table filled with these rows (text values, none NULL).
    Rows {
        temp: String,
        table: TableName,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// One fix-up as plan.json lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FixupEntry {
    /// `before_rows` or `after_rows`.
    pub stage: String,
    /// `create_sequence`, `add_column`, `set_default`, `add_constraint`, `restore_parents`,
    /// `copy_column`, `create_index`, `orphans`, `validate`, `set_not_null`, `setval`, `manual`.
    pub kind: String,
    pub table: Option<String>,
    pub object: String,
    /// False when written commented out.
    pub active: bool,
    pub rows: Option<u64>,
    pub statements: Vec<String>,
    pub note: Option<String>,
}

/// The `fixups` section of plan.json.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FixupPlan {
    pub summary: Vec<String>,
    pub steps: Vec<FixupEntry>,
    /// Tables the fix-ups insert rows into before the row restore.
    pub insert_tables: Vec<String>,
    /// What undo.sql does not reverse.
    pub not_undone: Vec<String>,
}

impl FixupPlan {
    pub fn active(&self) -> usize {
        self.steps.iter().filter(|s| s.active).count()
    }
}

/// The steps, per place in the scripts, and their listing.
#[derive(Debug, Default)]
pub struct Fixups {
    pub before_rows: Vec<FixStep>,
    pub after_rows: Vec<FixStep>,
    /// At the start of undo.sql (reverses `after_rows`).
    pub undo_first: Vec<FixStep>,
    /// At the end of undo.sql (reverses `before_rows`).
    pub undo_last: Vec<FixStep>,
    pub plan: FixupPlan,
}

/// What the row restore does to one table's differing keys.
#[derive(Debug, Default)]
pub struct TableActions {
    pub key: Vec<String>,
    /// By key text: the action and the differing columns.
    pub rows: HashMap<Vec<String>, (Action, Vec<String>)>,
    pub keeps: u64,
}

/// What the row restore does, for the tables it compared.
#[derive(Debug, Default)]
pub struct RowRestore {
    pub tables: BTreeMap<TableName, TableActions>,
}

impl RowRestore {
    /// Whether the row restore deletes the row, or updates one of `columns` of it from the base.
    fn fixes(
        &self,
        table: &TableName,
        key_columns: &[String],
        key: &[Option<String>],
        columns: &[String],
    ) -> bool {
        let Some(t) = self.tables.get(table).filter(|t| t.key == key_columns) else {
            return false;
        };
        let Some(key) = key.iter().cloned().collect::<Option<Vec<String>>>() else {
            return false;
        };
        match t.rows.get(&key) {
            Some((Action::Delete, _)) => true,
            Some((Action::Update, cols)) => cols.iter().any(|c| columns.contains(c)),
            _ => false,
        }
    }

    /// Whether every row of the table ends up with a base counterpart (none kept).
    fn all_from_base(&self, table: &TableName) -> bool {
        self.tables.get(table).is_some_and(|t| t.keeps == 0)
    }
}

/// Builds the fix-ups; reads the target only to check the constraints the base adds.
pub async fn plan(target: &Client, ins: &Inspection, rows: &RowRestore) -> Result<Fixups> {
    let Some(bs) = &ins.base else {
        return Ok(Fixups::default());
    };
    let mut b = Builder {
        ins,
        bs,
        rows,
        out: Fixups::default(),
        temps: 0,
    };
    b.schema_before();
    b.parents();
    b.columns_after();
    b.added_constraints(target).await?;
    b.indexes();
    b.orphan_choices();
    b.validations();
    b.not_null();
    b.sequences();
    b.manual();
    b.out.plan.summary = summary(&b.out.plan);
    Ok(b.out)
}

struct Builder<'a> {
    ins: &'a Inspection,
    bs: &'a Schema,
    rows: &'a RowRestore,
    out: Fixups,
    temps: usize,
}

fn entry(stage: &str, kind: &str, table: Option<&TableName>, object: &str) -> FixupEntry {
    FixupEntry {
        stage: stage.into(),
        kind: kind.into(),
        table: table.map(|t| t.to_string()),
        object: object.into(),
        active: true,
        rows: None,
        statements: Vec::new(),
        note: None,
    }
}

impl Builder<'_> {
    fn temp(&mut self, what: &str) -> String {
        self.temps += 1;
        format!("pgsalvage_fix{}_{what}", self.temps)
    }

    fn drift(&self, object: Object, change: Change) -> impl Iterator<Item = &Drift> {
        self.ins
            .report
            .drift
            .iter()
            .filter(move |d| d.object == object && d.change == change)
    }

    fn table_of(d: &Drift) -> Option<TableName> {
        Some(d.qualified.clone())
    }

    /// Records a step: into the script (run or commented) and into plan.json.
    fn push(&mut self, after: bool, mut e: FixupEntry, mut steps: Vec<FixStep>) {
        e.stage = if after { "after_rows" } else { "before_rows" }.into();
        // Scripts hold one statement per line (apply reads them so); a definition with a line
        // break in it (a default's literal) is left to a person.
        for step in &mut steps {
            if let FixStep::Run(sql) = step {
                if sql.contains('\n') {
                    *step = FixStep::Choice(std::mem::take(sql));
                    e.active = false;
                    e.note = Some("the statement spans lines: run it by hand".into());
                }
            }
        }
        let script = if after {
            &mut self.out.after_rows
        } else {
            &mut self.out.before_rows
        };
        let mut comment = format!("fix-up: {} {}", e.kind.replace('_', " "), e.object);
        if let Some(note) = &e.note {
            comment.push_str(&format!(" ({note})"));
        }
        script.push(FixStep::Comment(comment));
        script.extend(steps);
        self.out.plan.steps.push(e);
    }

    /// Sequences, columns and defaults the target lost, and a lost primary key.
    fn schema_before(&mut self) {
        let seqs: Vec<Drift> = self
            .drift(Object::Sequence, Change::Missing)
            .cloned()
            .collect();
        for d in seqs {
            let mut e = entry("", "create_sequence", None, &d.name);
            e.statements = d.ddl.clone();
            let steps = d.ddl.iter().cloned().map(FixStep::Run).collect();
            self.push(false, e, steps);
            let drop = format!("DROP SEQUENCE {}", d.qualified.sql());
            self.out.undo_last.push(FixStep::Run(drop));
        }
        let cols: Vec<Drift> = self
            .drift(Object::Column, Change::Missing)
            .cloned()
            .collect();
        for d in cols {
            let Some(table) = Self::table_of(&d) else {
                continue;
            };
            let mut e = entry(
                "",
                "add_column",
                Some(&table),
                &format!("{table}.{}", d.name),
            );
            e.statements = d.ddl.clone();
            self.push(false, e, d.ddl.iter().cloned().map(FixStep::Run).collect());
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
        let defaults: Vec<Drift> = self
            .drift(Object::Column, Change::Different)
            .filter(|d| d.aspect == Some("default"))
            .cloned()
            .collect();
        for d in defaults {
            let Some(table) = Self::table_of(&d) else {
                continue;
            };
            let mut e = entry(
                "",
                "set_default",
                Some(&table),
                &format!("{table}.{}", d.name),
            );
            e.statements = d.ddl.clone();
            self.push(false, e, d.ddl.iter().cloned().map(FixStep::Run).collect());
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
    fn missing_constraints(&self) -> Vec<(TableName, ConstraintDef)> {
        self.drift(Object::Constraint, Change::Missing)
            .filter_map(|d| {
                let table = Self::table_of(d)?;
                let con = self.bs.table(&table)?.constraint(&d.name)?.clone();
                Some((table, con))
            })
            .collect()
    }

    /// Rows of a duplicate finding the row restore leaves in place beyond one per group, `None`
    /// when check found no duplicates for that rule.
    fn duplicates_left(&self, table: &TableName, name: &str) -> Option<u64> {
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

    fn add_constraint(
        &mut self,
        after: bool,
        table: &TableName,
        con: &ConstraintDef,
        dups: Option<u64>,
    ) {
        let ddl = drift::add_constraint(table, con);
        let add = ddl[0].clone();
        let mut e = entry(
            "",
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
        self.out.undo_first.push(FixStep::Run(format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            table.sql(),
            quote_ident(&con.name)
        )));
    }

    /// The missing parents, whole chain, parents first, from the base.
    fn parents(&mut self) {
        let restorable: Vec<&ParentRows> = self
            .ins
            .parents
            .iter()
            .filter(|p| !p.restore.is_empty())
            .collect();
        let mut names: Vec<TableName> = restorable.iter().map(|p| p.table.clone()).collect();
        names.sort();
        names.dedup();
        let edges: Vec<(TableName, Vec<TableName>)> = names
            .iter()
            .map(|n| {
                let parents = self
                    .bs
                    .table(n)
                    .map(|t| t.foreign_keys().map(|(_, f)| f.parent.clone()).collect());
                (n.clone(), parents.unwrap_or_default())
            })
            .collect();
        let (order, _) = parents_first(&edges);
        let mut undo = Vec::new();
        for i in order {
            for p in restorable.iter().filter(|p| p.table == names[i]) {
                undo.extend(self.restore_parents(p));
            }
        }
        // Children first when undoing.
        undo.reverse();
        self.out.undo_last.splice(0..0, undo.into_iter().flatten());
    }

    /// One parent table's restore; returns its undo steps.
    fn restore_parents(&mut self, p: &ParentRows) -> Option<Vec<FixStep>> {
        let bt = self.bs.table(&p.table)?;
        let tt = self.ins.target.table(&p.table)?;
        let added: Vec<&ColumnDef> = self
            .drift(Object::Column, Change::Missing)
            .filter(|d| d.qualified == p.table)
            .filter_map(|d| bt.column(&d.name))
            .collect();
        let exists =
            |c: &&ColumnDef| tt.column(&c.name).is_some() || added.iter().any(|a| a.name == c.name);
        let target_col = |c: &ColumnDef| tt.column(&c.name).unwrap_or(c).clone();
        let cols: Vec<ColumnDef> = bt
            .columns
            .iter()
            .filter(exists)
            .map(target_col)
            .filter(|c| !c.generated)
            .collect();
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let overriding = if cols.iter().any(|c| c.identity == Some('a')) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let queries: Vec<String> = scan::tuple_filters(bt, &p.columns, &p.restore)?
            .into_iter()
            .map(|f| {
                format!(
                    "SELECT {} FROM {} WHERE {f}",
                    select_list(&names),
                    p.table.sql()
                )
            })
            .collect();
        let temp = self.temp("par");
        let insert = format!(
            "INSERT INTO {} ({}){overriding} SELECT {} FROM {} ON CONFLICT DO NOTHING",
            p.table.sql(),
            select_list(&names),
            select_list(&names),
            quote_ident(&temp)
        );
        let mut e = entry("", "restore_parents", Some(&p.table), &p.table.to_string());
        e.rows = Some(p.restore.len() as u64);
        e.statements = vec![insert.clone()];
        let load = FixStep::Load {
            temp,
            table: p.table.clone(),
            columns: names,
            queries,
        };
        self.push(false, e, vec![load, FixStep::Run(insert)]);
        self.out.plan.insert_tables.push(p.table.to_string());
        let untemp = self.temp("unpar");
        let delete = format!(
            "DELETE FROM {} AS t USING {} AS s WHERE {}",
            p.table.sql(),
            quote_ident(&untemp),
            key_match(&p.columns)
        );
        Some(vec![
            FixStep::Comment(format!(
                "undo: delete the {} parent rows restored into {}",
                p.restore.len(),
                p.table
            )),
            FixStep::Rows {
                temp: untemp,
                table: p.table.clone(),
                columns: p.columns.clone(),
                rows: p.restore.iter().cloned().collect(),
            },
            FixStep::Run(delete),
        ])
    }

    /// Added columns get the base's values (after the row restore, so inserted rows get them
    /// too).
    fn columns_after(&mut self) {
        let cols: Vec<Drift> = self
            .drift(Object::Column, Change::Missing)
            .cloned()
            .collect();
        for d in cols {
            let Some(table) = Self::table_of(&d) else {
                continue;
            };
            let (Some(bt), Some(tt)) = (self.bs.table(&table), self.ins.target.table(&table))
            else {
                continue;
            };
            let Some(col) = bt.column(&d.name) else {
                continue;
            };
            let key = bt.primary_key();
            let mut e = entry(
                "",
                "copy_column",
                Some(&table),
                &format!("{table}.{}", d.name),
            );
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
    async fn added_constraints(&mut self, target: &Client) -> Result<()> {
        for (table, con) in self.missing_constraints() {
            if con.kind == ConstraintKind::PrimaryKey {
                continue;
            }
            let dups = self.duplicates_left(&table, &con.name);
            self.add_constraint(true, &table, &con, dups);
            if !con.kind.can_be_not_valid() {
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

    async fn added_violations_left(
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

    /// Violating rows that nothing in the recovery fixes.
    fn left_after(
        &self,
        table: &TableName,
        con: &ConstraintDef,
        key: &[String],
        rows: &[Violation],
    ) -> u64 {
        let restored = |v: &Violation| {
            let Some(fk) = &con.foreign else { return false };
            let Some(tuple) = v.values.iter().cloned().collect::<Option<Vec<String>>>() else {
                return false;
            };
            self.ins.parents.iter().any(|p| {
                p.table == fk.parent && p.columns == fk.parent_columns && p.restore.contains(&tuple)
            })
        };
        rows.iter()
            .filter(|v| !restored(v) && !self.rows.fixes(table, key, &v.key, &con.columns))
            .count() as u64
    }

    /// Indexes the target lost (not those of constraints, which come with them).
    fn indexes(&mut self) {
        let missing: Vec<Drift> = self
            .drift(Object::Index, Change::Missing)
            .cloned()
            .collect();
        for d in missing {
            let Some(table) = Self::table_of(&d) else {
                continue;
            };
            let Some(def) = d.ddl.first().cloned() else {
                continue;
            };
            let mut e = entry(
                "",
                "create_index",
                Some(&table),
                &format!("{table}.{}", d.name),
            );
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

    /// Orphans nothing restores: the choices, commented out.
    fn orphan_choices(&mut self) {
        for o in &self.ins.report.orphans {
            let Some(tt) = self.ins.target.table(&o.table_name) else {
                continue;
            };
            let Some(con) = tt.constraint(&o.constraint) else {
                continue;
            };
            let left = self.left_after(&tt.name, con, &o.orphans.key_columns, &o.orphans.all);
            if left == 0 {
                continue;
            }
            let Some(cond) = scan::violation_condition(tt, con) else {
                continue;
            };
            let mut choices = vec![format!("DELETE FROM {} AS c WHERE {cond}", tt.name.sql())];
            let nullable = con
                .columns
                .iter()
                .all(|c| tt.column(c).is_some_and(|c| !c.not_null));
            if nullable {
                let set: Vec<String> = con
                    .columns
                    .iter()
                    .map(|c| format!("{} = NULL", quote_ident(c)))
                    .collect();
                choices.push(format!(
                    "UPDATE {} AS c SET {} WHERE {cond}",
                    tt.name.sql(),
                    set.join(", ")
                ));
            }
            let mut e = entry(
                "",
                "orphans",
                Some(&tt.name),
                &format!("{}.{}", tt.name, con.name),
            );
            e.active = false;
            e.rows = Some(left);
            e.note = Some(format!(
                "{left} rows reference {} rows that exist nowhere: choose one",
                o.parent
            ));
            e.statements = choices.clone();
            let steps = choices.into_iter().map(FixStep::Choice).collect();
            self.push(true, e, steps);
        }
    }

    /// `VALIDATE CONSTRAINT` for the target's unvalidated constraints, where they will hold.
    fn validations(&mut self) {
        let mut todo = Vec::new();
        for f in &self.ins.report.not_validated {
            let table = f.table_name.clone();
            let Some(con) = self
                .ins
                .target
                .table(&table)
                .and_then(|t| t.constraint(&f.constraint))
            else {
                continue;
            };
            let why = match &f.violations {
                None => Some("its rows cannot be checked".to_string()),
                Some(v) => match self.left_after(&table, con, &v.key_columns, &v.all) {
                    0 => None,
                    n => Some(format!("{n} rows would still violate it")),
                },
            };
            todo.push((table, con.clone(), why));
        }
        let orphaned: Vec<(TableName, ConstraintDef)> = self
            .ins
            .report
            .orphans
            .iter()
            .filter(|o| o.restorable_parents.unwrap_or(0) > 0)
            .filter_map(|o| {
                let table = o.table_name.clone();
                let con = self
                    .ins
                    .target
                    .table(&table)?
                    .constraint(&o.constraint)?
                    .clone();
                Some((table, con))
            })
            .collect();
        let mut reset: Vec<(TableName, ConstraintDef)> = Vec::new();
        for (table, con, why) in todo {
            if why.is_none() {
                reset.push((table.clone(), con.clone()));
            }
            self.validate(&table, &con.name, why);
        }
        for item in orphaned {
            if !reset.contains(&item) {
                reset.push(item);
            }
        }
        self.undo_reset(reset);
    }

    fn validate(&mut self, table: &TableName, name: &str, why: Option<String>) {
        let sql = drift::validate(table, name);
        let mut e = entry("", "validate", Some(table), &format!("{table}.{name}"));
        e.statements = vec![sql.clone()];
        e.active = why.is_none();
        e.note = why;
        let step = if e.active {
            FixStep::Run(sql)
        } else {
            FixStep::Choice(sql)
        };
        self.push(true, e, vec![step]);
    }

    /// undo.sql drops these constraints first (so the rows it puts back, orphans included, fit)
    /// and adds them back last, as they were.
    fn undo_reset(&mut self, constraints: Vec<(TableName, ConstraintDef)>) {
        for (table, con) in constraints {
            self.out.undo_first.insert(
                0,
                FixStep::Run(format!(
                    "ALTER TABLE {} DROP CONSTRAINT {}",
                    table.sql(),
                    quote_ident(&con.name)
                )),
            );
            let mut add = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                table.sql(),
                quote_ident(&con.name),
                con.definition
            );
            if !con.validated {
                add.push_str(" NOT VALID");
            }
            self.out.undo_last.push(FixStep::Run(add));
        }
    }

    /// NOT NULL the base has and the target lost, where no NULL will remain.
    fn not_null(&mut self) {
        let lost: Vec<Drift> = self
            .drift(Object::Column, Change::Different)
            .filter(|d| d.aspect == Some("nullability") && d.base.as_deref() == Some("not null"))
            .cloned()
            .collect();
        for d in lost {
            let Some(table) = Self::table_of(&d) else {
                continue;
            };
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

    fn set_not_null(
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
        let mut e = entry(
            "",
            "set_not_null",
            Some(table),
            &format!("{table}.{column}"),
        );
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

    /// `setval` last, from what the table holds when the script runs.
    fn sequences(&mut self) {
        for s in &self.ins.report.sequences {
            let name = s.name.clone();
            let Some(seq) = self.ins.target.sequences.get(&name) else {
                continue;
            };
            let mut parts: Vec<String> = seq
                .users
                .iter()
                .filter(|(t, _)| self.ins.target.table(t).is_some())
                .map(|(t, c)| format!("(SELECT max({})::bigint FROM {})", quote_ident(c), t.sql()))
                .collect();
            parts.extend(s.base_last_value.map(|v| v.to_string()));
            parts.push(format!("(SELECT last_value FROM {})", name.sql()));
            let sql = format!(
                "SELECT setval({}, greatest({}))",
                drift::regclass(&name),
                parts.join(", ")
            );
            let mut e = entry("", "setval", None, &s.sequence);
            e.statements = vec![sql.clone()];
            e.note = Some(format!("at least {}", s.setval));
            self.push(true, e, vec![FixStep::Run(sql)]);
            let back = match s.last_value {
                Some(v) => format!("SELECT setval({}, {v})", drift::regclass(&name)),
                None => format!(
                    "SELECT setval({}, {}, false)",
                    drift::regclass(&name),
                    seq.start
                ),
            };
            self.out.undo_first.insert(0, FixStep::Choice(back));
            self.out.undo_first.insert(
                0,
                FixStep::Comment(format!(
                    "not undone: setval of {} (values may be in use since); to force it back:",
                    s.sequence
                )),
            );
            self.out
                .plan
                .not_undone
                .push(format!("setval of {}", s.sequence));
        }
    }

    /// Drift no DDL here can put back: listed for a person.
    fn manual(&mut self) {
        let items: Vec<Drift> = self
            .ins
            .report
            .drift
            .iter()
            .filter(|d| !handled(d))
            .cloned()
            .collect();
        for d in items {
            let object = match &d.table {
                Some(t) => format!("{t}.{}", d.name),
                None => d.name.clone(),
            };
            let mut e = entry("", "manual", Self::table_of(&d).as_ref(), &object);
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
fn handled(d: &Drift) -> bool {
    match d.change {
        Change::Missing => d.object != Object::Table,
        Change::Extra => false,
        Change::Different => {
            d.aspect == Some("default")
                || (d.aspect == Some("nullability") && d.base.as_deref() == Some("not null"))
        }
    }
}

fn summary(plan: &FixupPlan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| {
            let mut line = format!(
                "fix-up {}: {} {}",
                s.stage.replace('_', " "),
                s.kind.replace('_', " "),
                s.object
            );
            if let Some(n) = s.rows {
                line.push_str(&format!(", {n} rows"));
            }
            if !s.active {
                line.push_str(" (commented out");
                if let Some(note) = &s.note {
                    line.push_str(&format!(": {note}"));
                }
                line.push(')');
            }
            line
        })
        .collect()
}

/// A row of text values as a line of text COPY data.
pub fn copy_line(values: &[String]) -> String {
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        for c in v.chars() {
            match c {
                '\\' => line.push_str("\\\\"),
                '\t' => line.push_str("\\t"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                c => line.push(c),
            }
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_escape_like_the_server() {
        assert_eq!(
            copy_line(&["a\tb".into(), "c\\d\ne".into()]),
            "a\\tb\tc\\\\d\\ne\n"
        );
    }

    #[test]
    fn only_deletes_and_updates_of_the_rule_columns_fix_a_row() {
        let t = TableName::new("public", "items");
        let mut actions = TableActions {
            key: vec!["id".into()],
            ..Default::default()
        };
        actions
            .rows
            .insert(vec!["3".into()], (Action::Update, vec!["qty".into()]));
        actions
            .rows
            .insert(vec!["4".into()], (Action::Update, vec!["note".into()]));
        actions
            .rows
            .insert(vec!["5".into()], (Action::Delete, vec![]));
        let rows = RowRestore {
            tables: BTreeMap::from([(t.clone(), actions)]),
        };
        let key = |k: &str| vec![Some(k.to_string())];
        let qty = ["qty".to_string()];
        let id = ["id".to_string()];
        assert!(rows.fixes(&t, &id, &key("3"), &qty));
        assert!(!rows.fixes(&t, &id, &key("4"), &qty));
        assert!(rows.fixes(&t, &id, &key("5"), &qty));
        assert!(!rows.fixes(&t, &id, &key("6"), &qty));
        assert!(
            !rows.fixes(&t, &["code".to_string()], &key("3"), &qty),
            "another key matches nothing"
        );
    }
}
