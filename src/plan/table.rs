//! One table across sources: which columns are compared, which key orders the rows, what differs.
//!
//! The sources' catalogs may disagree after a failed migration: a table dropped, a column added or
//! dropped, a type changed. [`reconcile`] lines the shapes up by name and decides, before any row
//! is read: the key (the primary key of the base, or of the first source that has the table, or the
//! user's `--key`), the compared columns (present everywhere the table is, with the same
//! [`Family`](crate::shape::Family)), and the schema differences to report. A type change inside a
//! family (int4 → int8) is reported and the column still compared by value; across families the
//! column is reported and left out. A table that cannot be compared safely (no key, a key column
//! missing, NULLable or unorderable) is refused with a message naming it.

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hash::digest::RowCodec;
use crate::role::Role;
use crate::shape::{quote_ident, Column, TableName, TableShape};

/// A schema difference between the base (or first source) and another source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaDiff {
    /// `table_absent`, `column_absent`, `type_changed`, `type_incomparable`, `key_changed`.
    pub kind: &'static str,
    /// The source that differs from the reference.
    pub source: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// What the reference has, and what this source has.
    pub expected: String,
    pub found: String,
}

/// Everything the readers and the merge need to know about one table.
#[derive(Debug)]
pub struct TablePlan {
    pub name: TableName,
    /// Compared columns, key columns first.
    pub columns: Vec<String>,
    pub nkey: usize,
    /// Per source (in `roles` order): the codec, or `None` where the table does not exist.
    pub codecs: Vec<Option<Arc<RowCodec>>>,
    /// The reference shape's key columns, for typed literals and rendering keys.
    pub key_columns: Vec<Column>,
    /// Whether every source orders the key by bytes natively (then ranges can use the index).
    pub native_order: bool,
    pub schema_diffs: Vec<SchemaDiff>,
    pub est_rows: u64,
    /// Each source's shape of the table (`None` where it is absent), for the restore writers.
    pub shapes: Vec<Option<TableShape>>,
}

impl TablePlan {
    /// The ORDER BY / range expressions of the key on one source.
    pub fn key_exprs(&self) -> Vec<String> {
        let collate = |c: &Column| {
            let clause = if c.kind.collatable() && !self.native_order {
                " COLLATE \"C\""
            } else {
                ""
            };
            format!("{}{clause}", quote_ident(&c.name))
        };
        self.key_columns.iter().map(collate).collect()
    }

    /// The select list, quoted.
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Lines up one table's shapes (`None` where a source lacks it) into a plan.
pub fn reconcile(
    name: &TableName,
    roles: &[Role],
    shapes: &[Option<&TableShape>],
    key_override: Option<&[String]>,
) -> Result<TablePlan> {
    let (ref_idx, reference) = shapes
        .iter()
        .enumerate()
        .find_map(|(i, s)| s.map(|s| (i, s)))
        .ok_or_else(|| Error::usage(format!("table {name} not found on any source")))?;
    let mut diffs = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        if shape.is_none() {
            diffs.push(SchemaDiff {
                kind: "table_absent",
                source: roles[i],
                column: None,
                expected: "table".into(),
                found: "no table".into(),
            });
        }
    }
    let key = choose_key(name, reference, key_override)?;
    let present: Vec<&TableShape> = shapes.iter().flatten().copied().collect();
    check_key(name, &key, &present, reference)?;
    diffs.extend(key_diffs(name, &key, roles, shapes, ref_idx));
    let columns = compared_columns(reference, &key, roles, shapes, &mut diffs);
    let codecs = shapes
        .iter()
        .map(|s| s.map(|s| Arc::new(codec_for(s, &columns, key.len()))))
        .collect();
    let key_columns: Vec<Column> = key
        .iter()
        .map(|k| reference.column(k).expect("checked").1.clone())
        .collect();
    let native_order = present.iter().all(|s| {
        key.iter().all(|k| {
            s.column(k)
                .is_some_and(|(_, c)| !c.kind.collatable() || c.bytewise)
        })
    });
    let est_rows = present.iter().map(|s| s.est_rows).max().unwrap_or(0);
    Ok(TablePlan {
        name: name.clone(),
        columns,
        nkey: key.len(),
        codecs,
        key_columns,
        native_order,
        schema_diffs: diffs,
        est_rows,
        shapes: shapes.iter().map(|s| s.cloned()).collect(),
    })
}

fn choose_key(
    name: &TableName,
    reference: &TableShape,
    key_override: Option<&[String]>,
) -> Result<Vec<String>> {
    if let Some(cols) = key_override {
        return Ok(cols.to_vec());
    }
    if reference.key.is_empty() {
        return Err(
            Error::usage(format!("table {name} has no primary key")).with_hint(format!(
                "name a unique NOT NULL column set with --key {name}=col1,col2"
            )),
        );
    }
    Ok(reference
        .key
        .iter()
        .map(|&i| reference.columns[i].name.clone())
        .collect())
}

/// Every key column must exist on every source that has the table, be NOT NULL (a primary key
/// column is), share one family, and be orderable on the client.
fn check_key(
    name: &TableName,
    key: &[String],
    present: &[&TableShape],
    reference: &TableShape,
) -> Result<()> {
    for k in key {
        let (_, ref_col) = reference.column(k).ok_or_else(|| {
            Error::usage(format!("key column {k} of table {name} does not exist"))
        })?;
        for shape in present {
            let col = shape.column(k).map(|(_, c)| c).ok_or_else(|| {
                Error::usage(format!(
                    "key column {k} of table {name} is missing on one source"
                ))
                .with_hint(format!("compare with another key: --key {name}=col1,col2"))
            })?;
            if col.family != ref_col.family {
                return Err(Error::usage(format!(
                    "key column {k} of table {name} changed type from {} to {}",
                    ref_col.type_name, col.type_name
                )));
            }
            if !col.not_null {
                return Err(
                    Error::usage(format!("key column {k} of table {name} allows NULL"))
                        .with_hint("a --key must name NOT NULL columns that are unique together"),
                );
            }
        }
        if !ref_col.kind.orderable() {
            return Err(Error::usage(format!(
                "key column {k} of table {name} has type {}, which pgsalvage cannot order",
                ref_col.type_name
            ))
            .with_hint(format!(
                "choose another unique key with --key {name}=col1,col2"
            )));
        }
    }
    Ok(())
}

fn key_diffs(
    name: &TableName,
    key: &[String],
    roles: &[Role],
    shapes: &[Option<&TableShape>],
    ref_idx: usize,
) -> Vec<SchemaDiff> {
    let _ = name;
    let names = |s: &TableShape| {
        s.key
            .iter()
            .map(|&i| s.columns[i].name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = key.join(", ");
    shapes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ref_idx)
        .filter_map(|(i, s)| s.map(|s| (i, names(s))))
        .filter(|(_, found)| *found != wanted)
        .map(|(i, found)| SchemaDiff {
            kind: "key_changed",
            source: roles[i],
            column: None,
            expected: format!("primary key ({wanted})"),
            found: if found.is_empty() {
                "no primary key".into()
            } else {
                format!("primary key ({found})")
            },
        })
        .collect()
}

/// Key columns first, then the reference's other columns that every source has in the same
/// family; records a difference for each column that is missing, extra or changed.
fn compared_columns(
    reference: &TableShape,
    key: &[String],
    roles: &[Role],
    shapes: &[Option<&TableShape>],
    diffs: &mut Vec<SchemaDiff>,
) -> Vec<String> {
    let mut columns: Vec<String> = key.to_vec();
    for col in &reference.columns {
        let mut comparable = true;
        for (i, shape) in shapes.iter().enumerate() {
            let Some(shape) = shape else { continue };
            match shape.column(&col.name) {
                None => {
                    comparable = false;
                    diffs.push(column_diff(
                        "column_absent",
                        roles[i],
                        col,
                        "no column".into(),
                    ));
                }
                Some((_, other)) if other.type_name != col.type_name => {
                    let kind = if other.family == col.family {
                        "type_changed"
                    } else {
                        "type_incomparable"
                    };
                    comparable &= other.family == col.family;
                    diffs.push(column_diff(kind, roles[i], col, other.type_name.clone()));
                }
                Some(_) => {}
            }
        }
        if comparable && !key.contains(&col.name) {
            columns.push(col.name.clone());
        }
    }
    diffs.extend(extra_columns(reference, roles, shapes));
    columns
}

fn column_diff(kind: &'static str, source: Role, col: &Column, found: String) -> SchemaDiff {
    SchemaDiff {
        kind,
        source,
        column: Some(col.name.clone()),
        expected: col.type_name.clone(),
        found,
    }
}

/// Columns a source has that the reference lacks.
fn extra_columns(
    reference: &TableShape,
    roles: &[Role],
    shapes: &[Option<&TableShape>],
) -> Vec<SchemaDiff> {
    let mut diffs = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        for col in shape.iter().flat_map(|s| &s.columns) {
            if reference.column(&col.name).is_none() {
                diffs.push(SchemaDiff {
                    kind: "column_extra",
                    source: roles[i],
                    column: Some(col.name.clone()),
                    expected: "no column".into(),
                    found: col.type_name.clone(),
                });
            }
        }
    }
    diffs
}

fn codec_for(shape: &TableShape, columns: &[String], nkey: usize) -> RowCodec {
    let kinds = columns
        .iter()
        .map(|c| {
            shape
                .column(c)
                .expect("compared columns exist")
                .1
                .kind
                .clone()
        })
        .collect();
    RowCodec { kinds, nkey }
}
