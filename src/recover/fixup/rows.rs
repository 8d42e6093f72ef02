//! The row fix-ups: missing parents restored from the base, choices for orphans nothing
//! restores, `VALIDATE CONSTRAINT` where the rows will obey, and `setval` last.

use super::{entry, Builder, FixStep, OrphanPolicy};
use crate::check::catalog::{ColumnDef, ConstraintDef, TableDef};
use crate::check::drift::{self, Change, Object};
use crate::check::parents::ParentRows;
use crate::check::scan::{self, Violation};
use crate::recovery::order::parents_first;
use crate::shape::{quote_ident, TableName};
use crate::sql::{key_match, select_list};

impl Builder<'_> {
    /// The missing parents, whole chain, parents first, from the base.
    pub(super) fn parents(&mut self) {
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
        // Any table's unvalidated key into a restored parent may hold orphans that undo's
        // deletes would trip over (the filter does not say which tables those are).
        for child in self.ins.target.tables.values() {
            for (con, fk) in child.foreign_keys() {
                if !con.validated && names.contains(&fk.parent) {
                    self.undo_resets.push((child.name.clone(), con.clone()));
                }
            }
        }
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
    pub(super) fn restore_parents(&mut self, p: &ParentRows) -> Option<Vec<FixStep>> {
        let bt = self.bs.table(&p.table)?;
        let tt = self.ins.target.table(&p.table)?;
        let cols = self.parent_columns(p, bt, tt);
        let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
        let queries = parent_queries(bt, p, &names)?;
        let temp = self.temp("par");
        let insert = parent_insert(p, &cols, &names, &temp);
        let mut e = entry("restore_parents", Some(&p.table), &p.table.to_string());
        e.rows = Some(p.restore.len() as u64);
        e.statements = vec![insert.clone()];
        let load = FixStep::Load {
            temp,
            table: p.table.clone(),
            columns: names,
            queries,
            from_target: false,
        };
        self.push(false, e, vec![load, FixStep::Run(insert)]);
        self.out.plan.insert_tables.push(p.table.to_string());
        Some(self.parents_undo(p))
    }

    /// The columns a parent restore writes: the base's that the target has or a fix-up adds, as
    /// the target defines them, generated ones left to the server.
    fn parent_columns(&self, p: &ParentRows, bt: &TableDef, tt: &TableDef) -> Vec<ColumnDef> {
        let added: Vec<&ColumnDef> = self
            .drift(Object::Column, Change::Missing)
            .filter(|d| d.qualified == p.table)
            .filter_map(|d| bt.column(&d.name))
            .collect();
        let exists =
            |c: &&ColumnDef| tt.column(&c.name).is_some() || added.iter().any(|a| a.name == c.name);
        let target_col = |c: &ColumnDef| tt.column(&c.name).unwrap_or(c).clone();
        bt.columns
            .iter()
            .filter(exists)
            .map(target_col)
            .filter(|c| !c.generated)
            .collect()
    }

    /// The undo of a parent restore: delete the restored keys again.
    fn parents_undo(&mut self, p: &ParentRows) -> Vec<FixStep> {
        let untemp = self.temp("unpar");
        let delete = format!(
            "DELETE FROM {} AS t USING {} AS s WHERE {}",
            p.table.sql(),
            quote_ident(&untemp),
            key_match(&p.columns)
        );
        vec![
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
        ]
    }

    /// How many violating rows nothing in the recovery fixes.
    pub(super) fn left_after(
        &self,
        table: &TableName,
        con: &ConstraintDef,
        key: &[String],
        rows: &[Violation],
    ) -> u64 {
        let settled = |o: &&crate::check::report::OrphanFinding| {
            o.table_name == *table && o.constraint == con.name
        };
        let nullable = con.columns.iter().all(|c| {
            self.ins
                .target
                .table(table)
                .and_then(|t| t.column(c))
                .is_some_and(|c| !c.not_null)
        });
        let policy_settles = match self.orphans {
            OrphanPolicy::Delete => true,
            OrphanPolicy::SetNull => nullable,
            OrphanPolicy::Keep => false,
        };
        // `--orphans delete|set-null` settles the orphans of this key that nothing restores
        // (those with a NULL in their name are left for a person, see `orphan_choices`).
        if policy_settles
            && con.foreign.is_some()
            && self.ins.report.orphans.iter().any(|o| settled(&o))
        {
            let unnamed = self
                .unfixed(table, con, key, rows)
                .iter()
                .filter(|v| v.key.iter().any(Option::is_none))
                .count();
            return unnamed as u64;
        }
        self.unfixed(table, con, key, rows).len() as u64
    }

    /// The violating rows nothing in the row restore or the parent restores fixes.
    fn unfixed<'v>(
        &self,
        table: &TableName,
        con: &ConstraintDef,
        key: &[String],
        rows: &'v [Violation],
    ) -> Vec<&'v Violation> {
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
            .collect()
    }

    /// Orphans nothing restores: with `--orphans keep`, both choices written commented out;
    /// with `delete` or `set-null`, that choice runs on the listed rows that are still orphans
    /// when it runs, and undo puts them back as the target had them at diff time.
    pub(super) fn orphan_choices(&mut self) {
        for o in &self.ins.report.orphans {
            let Some(tt) = self.ins.target.table(&o.table_name) else {
                continue;
            };
            let Some(con) = tt.constraint(&o.constraint) else {
                continue;
            };
            let key = &o.orphans.key_columns;
            let left: Vec<&Violation> = self.unfixed(&tt.name, con, key, &o.orphans.all);
            if left.is_empty() {
                continue;
            }
            let Some(cond) = scan::violation_condition(tt, con) else {
                continue;
            };
            let nullable = con
                .columns
                .iter()
                .all(|c| tt.column(c).is_some_and(|c| !c.not_null));
            let delete = format!("DELETE FROM {} AS c WHERE {cond}", tt.name.sql());
            let set_null = format!(
                "UPDATE {} AS c SET {} WHERE {cond}",
                tt.name.sql(),
                null_list(&con.columns)
            );
            let mut e = entry(
                "orphans",
                Some(&tt.name),
                &format!("{}.{}", tt.name, con.name),
            );
            e.rows = Some(left.len() as u64);
            let chosen = match self.orphans {
                OrphanPolicy::Delete => Some(true),
                OrphanPolicy::SetNull if nullable => Some(false),
                OrphanPolicy::SetNull | OrphanPolicy::Keep => None,
            };
            let keys: Option<Vec<Vec<String>>> = left
                .iter()
                .map(|v| v.key.iter().cloned().collect::<Option<Vec<String>>>())
                .collect();
            match (chosen, keys) {
                (Some(delete), Some(keys)) => {
                    let note = if delete {
                        "deleted"
                    } else {
                        "reference set NULL"
                    };
                    e.note = Some(format!(
                        "{} rows reference {} rows that exist nowhere: {note} (--orphans)",
                        left.len(),
                        o.parent
                    ));
                    let steps = self.settle_orphans(tt, con, key, &cond, keys, delete);
                    e.statements = steps
                        .iter()
                        .filter_map(|s| match s {
                            FixStep::Run(sql) => Some(sql.clone()),
                            _ => None,
                        })
                        .collect();
                    self.push(true, e, steps);
                }
                (_, keys) => {
                    let mut choices = vec![delete];
                    if nullable {
                        choices.push(set_null);
                    }
                    e.active = false;
                    e.note = Some(match (self.orphans, keys) {
                        (_, None) => format!(
                            "{} rows reference {} rows that exist nowhere, and some have no key to name them by: choose one by hand",
                            left.len(),
                            o.parent
                        ),
                        (OrphanPolicy::SetNull, _) => format!(
                            "{} rows reference {} rows that exist nowhere; its columns are NOT NULL: use --orphans delete, or choose by hand",
                            left.len(),
                            o.parent
                        ),
                        _ => format!(
                            "{} rows reference {} rows that exist nowhere: recover again with --orphans delete or --orphans set-null",
                            left.len(),
                            o.parent
                        ),
                    });
                    e.statements = choices.clone();
                    let steps = choices.into_iter().map(FixStep::Choice).collect();
                    self.push(true, e, steps);
                }
            }
        }
    }

    /// The steps that delete the orphans named by `keys` (or set their reference NULL), where
    /// they are still orphans; undo first puts them back from the target as it was.
    fn settle_orphans(
        &mut self,
        table: &TableDef,
        con: &ConstraintDef,
        key: &[String],
        cond: &str,
        keys: Vec<Vec<String>>,
        delete: bool,
    ) -> Vec<FixStep> {
        let name = &table.name;
        let temp = self.temp("orph");
        let by_key = key
            .iter()
            .map(|k| format!("c.{0} = s.{0}", quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let run = if delete {
            format!(
                "DELETE FROM {} AS c USING {} AS s WHERE {by_key} AND {cond}",
                name.sql(),
                quote_ident(&temp)
            )
        } else {
            format!(
                "UPDATE {} AS c SET {} FROM {} AS s WHERE {by_key} AND {cond}",
                name.sql(),
                null_list(&con.columns),
                quote_ident(&temp)
            )
        };
        let tuples = keys.iter().cloned().collect();
        // What undo puts back: the whole rows, or the reference's values.
        let columns: Vec<String> = if delete {
            table
                .columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.clone())
                .collect()
        } else {
            [key.to_vec(), con.columns.clone()].concat()
        };
        if let Some(queries) = scan::tuple_filters(table, key, &tuples) {
            let back = self.temp("unorph");
            let queries = queries
                .into_iter()
                .map(|f| {
                    format!(
                        "SELECT {} FROM {} WHERE {f}",
                        select_list(&columns),
                        name.sql()
                    )
                })
                .collect();
            let undo = if delete {
                let overriding = if table.columns.iter().any(|c| c.identity == Some('a')) {
                    " OVERRIDING SYSTEM VALUE"
                } else {
                    ""
                };
                format!(
                    "INSERT INTO {} ({}){overriding} SELECT {} FROM {}",
                    name.sql(),
                    select_list(&columns),
                    select_list(&columns),
                    quote_ident(&back)
                )
            } else {
                let set = con
                    .columns
                    .iter()
                    .map(|c| format!("{0} = s.{0}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "UPDATE {} AS t SET {set} FROM {} AS s WHERE {}",
                    name.sql(),
                    quote_ident(&back),
                    key_match(key)
                )
            };
            self.out.undo_first.extend([
                FixStep::Comment(format!(
                    "undo: the {} orphans of {name}.{} as they were",
                    keys.len(),
                    con.name
                )),
                FixStep::Load {
                    temp: back,
                    table: name.clone(),
                    columns,
                    queries,
                    from_target: true,
                },
                FixStep::Run(undo),
            ]);
        }
        vec![
            FixStep::Rows {
                temp,
                table: name.clone(),
                columns: key.to_vec(),
                rows: keys,
            },
            FixStep::Run(run),
        ]
    }

    /// `VALIDATE CONSTRAINT` for the target's unvalidated constraints, where they will hold.
    pub(super) fn validations(&mut self) {
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
        for item in orphaned
            .into_iter()
            .chain(std::mem::take(&mut self.undo_resets))
        {
            if !reset.contains(&item) {
                reset.push(item);
            }
        }
        self.undo_reset(reset);
    }

    pub(super) fn validate(&mut self, table: &TableName, name: &str, why: Option<String>) {
        let sql = drift::validate(table, name);
        let mut e = entry("validate", Some(table), &format!("{table}.{name}"));
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
    pub(super) fn undo_reset(&mut self, constraints: Vec<(TableName, ConstraintDef)>) {
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

    /// `setval` last, from what the table holds when the script runs.
    pub(super) fn sequences(&mut self) {
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
                crate::sql::regclass(&name),
                parts.join(", ")
            );
            let mut e = entry("setval", None, &s.sequence);
            e.statements = vec![sql.clone()];
            e.note = Some(format!("at least {}", s.setval));
            self.push(true, e, vec![FixStep::Run(sql)]);
            let back = match s.last_value {
                Some(v) => format!("SELECT setval({}, {v})", crate::sql::regclass(&name)),
                None => format!(
                    "SELECT setval({}, {}, false)",
                    crate::sql::regclass(&name),
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
}

/// The queries that read the parent rows to restore from the base, a batch of keys each.
fn parent_queries(bt: &TableDef, p: &ParentRows, names: &[String]) -> Option<Vec<String>> {
    let queries = scan::tuple_filters(bt, &p.columns, &p.restore)?
        .into_iter()
        .map(|f| {
            format!(
                "SELECT {} FROM {} WHERE {f}",
                select_list(names),
                p.table.sql()
            )
        })
        .collect();
    Some(queries)
}

/// The insert from the loaded temporary table; rows already there are left alone.
fn parent_insert(p: &ParentRows, cols: &[ColumnDef], names: &[String], temp: &str) -> String {
    let overriding = if cols.iter().any(|c| c.identity == Some('a')) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    format!(
        "INSERT INTO {} ({}){overriding} SELECT {} FROM {} ON CONFLICT DO NOTHING",
        p.table.sql(),
        select_list(names),
        select_list(names),
        quote_ident(temp)
    )
}

/// `a = NULL, b = NULL`.
fn null_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{} = NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}
