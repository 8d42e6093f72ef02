//! One table across sources: which columns are compared, which key orders the rows, what differs.
//!
//! The sources' catalogs may disagree after a failed migration: a table dropped, a column added or
//! dropped, a type changed. [`reconcile`] lines the shapes up by name and decides, before any row
//! is read: the key (see [`super::key`]: the user's `--key`, or the primary key of the base, or of
//! the first source that has the table, or one of its unique indexes), the compared columns
//! (present everywhere the table is, with the same [`Family`](crate::shape::Family)), and the
//! schema differences to report. A type change inside a family (int4 → int8) is reported and the
//! column still compared by value; across families the column is reported and left out. A table
//! whose key cannot be used (a key column missing, unorderable, or a primary key column NULLable
//! on some source) is refused with a message naming it; a unique index's key that cannot be used
//! leaves its table keyless instead, saying why.

use std::sync::Arc;

use serde::Serialize;

use super::key::{self, KeyOrigin};
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
    /// Some source never analyzed the table: size it before cutting ranges.
    pub est_unknown: bool,
    /// Each source's shape of the table (`None` where it is absent), for the restore writers.
    pub shapes: Vec<Option<TableShape>>,
    /// `--where`: the predicate every read of the table applies on every source.
    pub rows: Option<String>,
    /// `--map-column`: the source whose columns go by their old names, and per compared
    /// (new) name the old one (see `plan::narrowed`).
    pub renamed: Option<(usize, std::collections::BTreeMap<String, String>)>,
    /// `--exclude-columns`: columns left out of the comparison (and of the schema differences).
    pub excluded_columns: Vec<String>,
    /// Where the key comes from: what must be checked of it in the snapshots before it is used
    /// (see `source::key_check`), and what the report says of it.
    pub key_origin: KeyOrigin,
    /// A narrow plan's select list per source (`plan::narrow`), in place of the columns.
    pub selects: Option<Vec<String>>,
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

    /// A table without a key: compared as a multiset of rows (`compare::multiset`).
    pub fn keyless(&self) -> bool {
        self.nkey == 0
    }

    /// The select list of source `source`, quoted: the compared columns by that source's own
    /// names (`--map-column` renames them on one source).
    pub fn select_list_on(&self, source: usize) -> String {
        if let Some(selects) = &self.selects {
            return selects[source].clone();
        }
        self.columns
            .iter()
            .map(|c| quote_ident(self.column_on(source, c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The name compared column `column` has on source `source`.
    pub fn column_on<'a>(&'a self, source: usize, column: &'a str) -> &'a str {
        match &self.renamed {
            Some((i, names)) if *i == source => names.get(column).map_or(column, String::as_str),
            _ => column,
        }
    }

    /// ` WHERE …` of a read of this table: the `--where` predicate and `cond`, whichever there
    /// are (nothing without either).
    pub fn where_clause(&self, cond: Option<&str>) -> String {
        match (self.rows.as_deref(), cond) {
            (Some(rows), Some(c)) => format!(" WHERE ({rows}) AND ({c})"),
            (Some(rows), None) => format!(" WHERE ({rows})"),
            (None, Some(c)) => format!(" WHERE {c}"),
            (None, None) => String::new(),
        }
    }

    /// The key columns' names.
    pub fn key(&self) -> &[String] {
        &self.columns[..self.nkey]
    }

    /// This plan compared without a key, because its key (a unique index's) is not one in the
    /// rows read (`why`, for the report): the same columns and narrowing, as a multiset.
    pub fn without_key(self, roles: &[Role], why: String) -> Result<TablePlan> {
        let shapes: Vec<Option<&TableShape>> = self.shapes.iter().map(Option::as_ref).collect();
        let origin = KeyOrigin::Keyless { why: Some(why) };
        let mut plan = build(&self.name, roles, &shapes, Vec::new(), origin)?;
        plan.rows = self.rows;
        plan.renamed = self.renamed;
        plan.excluded_columns = self.excluded_columns;
        plan.est_rows = self.est_rows;
        Ok(plan)
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
    let reference = shapes
        .iter()
        .find_map(|s| *s)
        .ok_or_else(|| Error::usage(format!("table {name} not found on any source")))?;
    let (key, origin) = key::choose(reference, key_override);
    match build(name, roles, shapes, key, origin.clone()) {
        // A key the user did not ask for that cannot be used: the table is still compared, as
        // a multiset, as it would be without that index.
        Err(e) if matches!(origin, KeyOrigin::Index { .. }) => {
            let why = format!(
                "compared as a multiset: its {} cannot key it: {e}",
                origin.index_phrase().unwrap_or_default()
            );
            build(
                name,
                roles,
                shapes,
                Vec::new(),
                KeyOrigin::Keyless { why: Some(why) },
            )
        }
        planned => planned,
    }
}

/// [`reconcile`] with the key decided.
fn build(
    name: &TableName,
    roles: &[Role],
    shapes: &[Option<&TableShape>],
    key: Vec<String>,
    origin: KeyOrigin,
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
    let present: Vec<&TableShape> = shapes.iter().flatten().copied().collect();
    check_key(name, &key, &present, reference, &origin)?;
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
        est_unknown: present.iter().any(|s| s.never_analyzed),
        shapes: shapes.iter().map(|s| s.cloned()).collect(),
        rows: None,
        renamed: None,
        excluded_columns: Vec::new(),
        key_origin: origin,
        selects: None,
    })
}

/// Every key column must exist on every source that has the table, share one family, and be
/// orderable on the client. A primary key's columns must be NOT NULL everywhere, as they are
/// where it is declared; other keys' NULLs are looked for in the snapshots (`source::key_check`).
fn check_key(
    name: &TableName,
    key: &[String],
    present: &[&TableShape],
    reference: &TableShape,
    origin: &KeyOrigin,
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
            if !col.not_null && *origin == KeyOrigin::Primary {
                return Err(
                    Error::usage(format!("key column {k} of table {name} allows NULL"))
                        .with_hint(format!("the primary key does not hold on every source; name the key with --key {name}=col1,col2 (checked for NULLs and duplicates in each snapshot)")),
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
    // Each side's primary key against the reference side's, not against the key in use: a
    // `--key` on tables whose primary keys agree (or that have none) is no schema difference.
    let _ = key;
    let wanted = shapes[ref_idx].map(names).unwrap_or_default();
    let pk = |cols: &str| match cols.is_empty() {
        true => "no primary key".to_string(),
        false => format!("primary key ({cols})"),
    };
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
            expected: pk(&wanted),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::TypeKind;

    fn col(name: &str, type_name: &str, kind: TypeKind, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            family: kind.family(type_name),
            kind,
            not_null,
            bytewise: false,
            generated: false,
            identity_always: false,
        }
    }

    fn int4(name: &str) -> Column {
        col(name, "integer", TypeKind::Int(4), true)
    }

    fn int8(name: &str) -> Column {
        col(name, "bigint", TypeKind::Int(8), true)
    }

    fn text(name: &str) -> Column {
        col(name, "text", TypeKind::Text, false)
    }

    fn nullable(mut c: Column) -> Column {
        c.not_null = false;
        c
    }

    fn name() -> TableName {
        TableName::new("public", "t")
    }

    /// `public.t` with these columns and primary key (by column name).
    fn shape(columns: Vec<Column>, key: &[&str]) -> TableShape {
        let key = key
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .position(|c| c.name == *k)
                    .expect("key column")
            })
            .collect();
        TableShape {
            name: name(),
            columns,
            key,
            est_rows: 100,
            never_analyzed: false,
            parents: Vec::new(),
            unique: Vec::new(),
        }
    }

    const TWO: [Role; 2] = [Role::Base, Role::Target];
    const THREE: [Role; 3] = [Role::Base, Role::Replica, Role::Target];

    fn plan(shapes: &[Option<&TableShape>], key: Option<&[&str]>) -> Result<TablePlan> {
        let roles = if shapes.len() == 3 {
            &THREE[..]
        } else {
            &TWO[..]
        };
        let key: Option<Vec<String>> = key.map(|k| k.iter().map(|s| s.to_string()).collect());
        reconcile(&name(), roles, shapes, key.as_deref())
    }

    /// A difference as a tuple: (kind, source, column, expected, found).
    fn diff(
        kind: &str,
        source: Role,
        column: Option<&str>,
        expected: &str,
        found: &str,
    ) -> (String, Role, Option<String>, String, String) {
        (
            kind.into(),
            source,
            column.map(str::to_string),
            expected.into(),
            found.into(),
        )
    }

    fn diffs(plan: &TablePlan) -> Vec<(String, Role, Option<String>, String, String)> {
        plan.schema_diffs
            .iter()
            .map(|d| {
                (
                    d.kind.to_string(),
                    d.source,
                    d.column.clone(),
                    d.expected.clone(),
                    d.found.clone(),
                )
            })
            .collect()
    }

    fn kinds(plan: &TablePlan, source: usize) -> Option<(Vec<TypeKind>, usize)> {
        plan.codecs[source]
            .as_ref()
            .map(|c| (c.kinds.clone(), c.nkey))
    }

    #[test]
    fn the_key_is_the_base_primary_key_and_comes_first() {
        // The key column is not the first column; it is compared first all the same.
        let base = shape(vec![text("v"), int4("id"), int4("w")], &["id"]);
        let p = plan(&[Some(&base), Some(&base)], None).unwrap();
        assert_eq!(p.columns, ["id", "v", "w"]);
        assert_eq!(p.nkey, 1);
        assert_eq!(p.key_columns, [int4("id")]);
        assert_eq!(p.select_list(), r#""id", "v", "w""#);
        assert!(p.schema_diffs.is_empty(), "{:?}", p.schema_diffs);
        let want = (vec![TypeKind::Int(4), TypeKind::Text, TypeKind::Int(4)], 1);
        assert_eq!(kinds(&p, 0), Some(want.clone()));
        assert_eq!(kinds(&p, 1), Some(want));

        // Another primary key on the target: the base's is used, the change reported.
        let target = shape(vec![text("v"), int4("id"), int4("w")], &["w", "id"]);
        let p = plan(&[Some(&base), Some(&target)], None).unwrap();
        assert_eq!(p.columns, ["id", "v", "w"]);
        assert_eq!(p.nkey, 1);
        assert_eq!(
            diffs(&p),
            [diff(
                "key_changed",
                Role::Target,
                None,
                "primary key (id)",
                "primary key (w, id)"
            )]
        );
        let no_key = shape(vec![text("v"), int4("id"), int4("w")], &[]);
        let p = plan(&[Some(&base), Some(&no_key)], None).unwrap();
        assert_eq!(
            diffs(&p),
            [diff(
                "key_changed",
                Role::Target,
                None,
                "primary key (id)",
                "no primary key"
            )]
        );
    }

    #[test]
    fn a_composite_key_keeps_its_order() {
        let s = shape(vec![text("v"), int4("a"), int8("b")], &["b", "a"]);
        let p = plan(&[Some(&s), Some(&s)], None).unwrap();
        assert_eq!(p.columns, ["b", "a", "v"]);
        assert_eq!(p.nkey, 2);
        assert_eq!(
            kinds(&p, 0),
            Some((vec![TypeKind::Int(8), TypeKind::Int(4), TypeKind::Text], 2))
        );
        assert_eq!(p.key_exprs(), [r#""b""#, r#""a""#]);
    }

    #[test]
    fn key_override_replaces_the_primary_key() {
        let no_key = shape(vec![int4("tenant"), int4("seq"), text("msg")], &[]);
        // Without one, the table is keyless: every column compared, as a multiset.
        let keyless = plan(&[Some(&no_key), Some(&no_key)], None).unwrap();
        assert!(keyless.keyless());
        assert_eq!(keyless.columns, ["tenant", "seq", "msg"]);
        let p = plan(&[Some(&no_key), Some(&no_key)], Some(&["seq", "tenant"])).unwrap();
        assert_eq!(p.columns, ["seq", "tenant", "msg"]);
        assert_eq!(p.nkey, 2);
        assert_eq!(p.key_columns, [int4("seq"), int4("tenant")]);
        // An override wins over a primary key too.
        let keyed = shape(vec![int4("id"), int4("code"), text("v")], &["id"]);
        let p = plan(&[Some(&keyed), Some(&keyed)], Some(&["code"])).unwrap();
        assert_eq!(p.columns, ["code", "id", "v"]);
        assert_eq!(p.key_columns, [int4("code")]);
    }

    /// Both sides have the same primary key (or the same lack of one); `--key` names another
    /// column set. The sources' schemas do not differ, so no schema difference should be
    /// reported (a difference makes the table's status "differences" even when every row
    /// matches). `key_diffs` once compared each source's primary key with the *chosen* key, so
    /// the target alone got a spurious `key_changed` and an identical table exited 1.
    #[test]
    fn key_override_on_equal_schemas_reports_no_difference() {
        let no_key = shape(vec![int4("tenant"), int4("seq"), text("msg")], &[]);
        let p = plan(&[Some(&no_key), Some(&no_key)], Some(&["tenant", "seq"])).unwrap();
        assert_eq!(diffs(&p), []);
        let keyed = shape(vec![int4("id"), int4("code"), text("v")], &["id"]);
        let p = plan(&[Some(&keyed), Some(&keyed)], Some(&["code"])).unwrap();
        assert_eq!(diffs(&p), []);
    }

    #[test]
    fn columns_absent_on_one_side_are_reported_and_left_out() {
        let base = shape(vec![int4("id"), text("v"), text("gone")], &["id"]);
        let target = shape(vec![int4("id"), text("added"), text("v")], &["id"]);
        let p = plan(&[Some(&base), Some(&target)], None).unwrap();
        assert_eq!(p.columns, ["id", "v"]);
        assert_eq!(
            diffs(&p),
            [
                diff(
                    "column_absent",
                    Role::Target,
                    Some("gone"),
                    "text",
                    "no column"
                ),
                diff(
                    "column_extra",
                    Role::Target,
                    Some("added"),
                    "no column",
                    "text"
                ),
            ]
        );
        // The target's codec reads its own columns by name, in the compared order.
        assert_eq!(
            kinds(&p, 1),
            Some((vec![TypeKind::Int(4), TypeKind::Text], 1))
        );
        // Three sources: a column only the replica lacks is left out too.
        let replica = shape(vec![int4("id"), text("gone")], &["id"]);
        let p = plan(&[Some(&base), Some(&replica), Some(&base)], None).unwrap();
        assert_eq!(p.columns, ["id", "gone"]);
        assert_eq!(
            diffs(&p),
            [diff(
                "column_absent",
                Role::Replica,
                Some("v"),
                "text",
                "no column"
            )]
        );
    }

    #[test]
    fn type_changes_compare_within_a_family_only() {
        // (the target's n, compared?, kind of difference, the target's kind of n)
        let cases = [
            (int8("n"), true, "type_changed", TypeKind::Int(8)),
            (
                col("n", "smallint", TypeKind::Int(2), true),
                true,
                "type_changed",
                TypeKind::Int(2),
            ),
            (
                col("n", "numeric", TypeKind::Numeric, true),
                false,
                "type_incomparable",
                TypeKind::Numeric,
            ),
            (text("n"), false, "type_incomparable", TypeKind::Text),
        ];
        let base = shape(vec![int4("id"), int4("n"), text("v")], &["id"]);
        for (n, compared, kind, target_kind) in cases {
            let found = n.type_name.clone();
            let target = shape(vec![int4("id"), n, text("v")], &["id"]);
            let p = plan(&[Some(&base), Some(&target)], None).unwrap();
            assert_eq!(
                diffs(&p),
                [diff(kind, Role::Target, Some("n"), "integer", &found)],
                "integer -> {found}"
            );
            if compared {
                assert_eq!(p.columns, ["id", "n", "v"], "integer -> {found}");
                let want = |k| Some((vec![TypeKind::Int(4), k, TypeKind::Text], 1));
                assert_eq!(kinds(&p, 0), want(TypeKind::Int(4)));
                assert_eq!(kinds(&p, 1), want(target_kind));
            } else {
                assert_eq!(p.columns, ["id", "v"], "integer -> {found}");
            }
        }
        // varchar(10) -> text stays in the text family.
        let base = shape(
            vec![
                int4("id"),
                col("s", "character varying(10)", TypeKind::Text, false),
            ],
            &["id"],
        );
        let target = shape(vec![int4("id"), text("s")], &["id"]);
        let p = plan(&[Some(&base), Some(&target)], None).unwrap();
        assert_eq!(p.columns, ["id", "s"]);
        assert_eq!(p.schema_diffs[0].kind, "type_changed");
    }

    #[test]
    fn a_key_column_may_widen() {
        let base = shape(vec![int4("id"), text("v")], &["id"]);
        let target = shape(vec![int8("id"), text("v")], &["id"]);
        let p = plan(&[Some(&base), Some(&target)], None).unwrap();
        assert_eq!(p.columns, ["id", "v"]);
        assert_eq!(p.key_columns, [int4("id")]);
        assert_eq!(
            diffs(&p),
            [diff(
                "type_changed",
                Role::Target,
                Some("id"),
                "integer",
                "bigint"
            )]
        );
        assert_eq!(kinds(&p, 1).unwrap().0[0], TypeKind::Int(8));
    }

    #[test]
    fn a_table_absent_on_one_side_is_reported() {
        let base = shape(vec![int4("id"), text("v")], &["id"]);
        let p = plan(&[Some(&base), None], None).unwrap();
        assert_eq!(p.columns, ["id", "v"]);
        assert!(p.codecs[0].is_some() && p.codecs[1].is_none());
        assert_eq!(p.shapes, [Some(base.clone()), None]);
        assert_eq!(
            diffs(&p),
            [diff(
                "table_absent",
                Role::Target,
                None,
                "table",
                "no table"
            )]
        );
        // Absent on the base: the target's shape and primary key are the reference.
        let target = shape(vec![text("v"), int8("k")], &["k"]);
        let p = plan(&[None, Some(&target)], None).unwrap();
        assert_eq!(p.columns, ["k", "v"]);
        assert_eq!(p.key_columns, [int8("k")]);
        assert_eq!(
            diffs(&p),
            [diff("table_absent", Role::Base, None, "table", "no table")]
        );
        // Absent on the replica of a three-way run.
        let p = plan(&[Some(&base), None, Some(&base)], None).unwrap();
        assert_eq!(
            diffs(&p),
            [diff(
                "table_absent",
                Role::Replica,
                None,
                "table",
                "no table"
            )]
        );
        assert_eq!(
            p.codecs.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, true]
        );
    }

    #[test]
    fn unsafe_keys_are_refused_naming_the_table() {
        let good = shape(vec![int4("id"), text("v")], &["id"]);
        let nullable_id = shape(vec![nullable(int4("id")), text("v")], &[]);
        let no_id = shape(vec![int4("other"), text("v")], &["other"]);
        let text_id = shape(
            vec![col("id", "text", TypeKind::Text, true), text("v")],
            &["id"],
        );
        let json_id = shape(vec![col("id", "jsonb", TypeKind::Jsonb, true)], &["id"]);
        // (what, the shapes, --key, the error)
        type Case<'a> = (
            &'a str,
            Vec<Option<&'a TableShape>>,
            Option<&'a [&'a str]>,
            &'a str,
        );
        let cases: [Case; 6] = [
            (
                "the key column is NULLable on the target",
                vec![Some(&good), Some(&nullable_id)],
                None,
                "key column id of table public.t allows NULL",
            ),
            (
                "the key column is missing on the target",
                vec![Some(&good), Some(&no_id)],
                None,
                "key column id of table public.t is missing on one source",
            ),
            (
                "--key names no column",
                vec![Some(&good), Some(&good)],
                Some(&["nope"]),
                "key column nope of table public.t does not exist",
            ),
            (
                "the key column changed family",
                vec![Some(&good), Some(&text_id)],
                None,
                "key column id of table public.t changed type from integer to text",
            ),
            (
                "the key column cannot be ordered",
                vec![Some(&json_id), Some(&json_id)],
                None,
                "key column id of table public.t has type jsonb, which pgsalvage cannot order",
            ),
            (
                "the table is nowhere",
                vec![None, None],
                None,
                "table public.t not found on any source",
            ),
        ];
        for (what, shapes, key, message) in cases {
            match plan(&shapes, key) {
                Ok(p) => panic!("{what}: planned {:?}", p.columns),
                Err(e) => assert_eq!(e.to_string(), message, "{what}"),
            }
        }
    }

    #[test]
    fn a_named_key_may_allow_null_and_is_then_checked_in_the_snapshots() {
        let good = shape(vec![int4("id"), text("v")], &["id"]);
        let p = plan(&[Some(&good), Some(&good)], Some(&["v"])).unwrap();
        assert_eq!(
            (p.key(), &p.key_origin),
            (&["v".to_string()][..], &KeyOrigin::Named)
        );
        let p = plan(&[Some(&good), Some(&good)], None).unwrap();
        assert_eq!(p.key_origin, KeyOrigin::Primary);
    }

    #[test]
    fn a_unique_index_that_cannot_key_the_table_leaves_it_keyless() {
        let index = crate::shape::UniqueIndex {
            name: "t_a_key".into(),
            columns: vec!["a".into()],
            nulls_not_distinct: true,
        };
        let mut base = shape(vec![nullable(int4("a")), text("v")], &[]);
        base.unique = vec![index];
        let p = plan(&[Some(&base), Some(&base)], None).unwrap();
        assert_eq!(p.key(), ["a"]);
        assert!(matches!(
            p.key_origin,
            KeyOrigin::Index {
                nulls_not_distinct: true,
                ..
            }
        ));
        // The target dropped the index's column: keyless, saying why, the column left out.
        let target = shape(vec![text("v")], &[]);
        let p = plan(&[Some(&base), Some(&target)], None).unwrap();
        assert!(p.keyless());
        assert_eq!(p.columns, ["v"]);
        assert_eq!(
            p.key_origin.note(p.key()).unwrap(),
            "compared as a multiset: its unique index t_a_key (NULLS NOT DISTINCT) cannot key it: \
             key column a of table public.t is missing on one source"
        );
        // Made keyless after a check: the plan a keyless reconcile makes, with the note.
        let keyed = plan(&[Some(&base), Some(&base)], None).unwrap();
        let bare = plan(&[Some(&base), Some(&base)], Some(&[])).unwrap();
        let p = keyed.without_key(&TWO, "why".into()).unwrap();
        assert_eq!((p.nkey, &p.columns), (0, &bare.columns));
        assert_eq!(p.codecs.len(), bare.codecs.len());
        for (a, b) in p.codecs.iter().zip(&bare.codecs) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!((&a.kinds, a.nkey), (&b.kinds, b.nkey));
        }
        assert_eq!(p.key_origin.note(p.key()).as_deref(), Some("why"));
    }

    #[test]
    fn text_keys_sort_in_c_unless_every_side_already_does() {
        let code = |bytewise| {
            let mut c = col("code", "text", TypeKind::Text, true);
            c.bytewise = bytewise;
            shape(vec![c, text("v")], &["code"])
        };
        let (c, other) = (code(true), code(false));
        let p = plan(&[Some(&c), Some(&c)], None).unwrap();
        assert!(p.native_order);
        assert_eq!(p.key_exprs(), [r#""code""#]);
        let p = plan(&[Some(&c), Some(&other)], None).unwrap();
        assert!(!p.native_order);
        assert_eq!(p.key_exprs(), [r#""code" COLLATE "C""#]);
    }

    #[test]
    fn the_row_estimate_is_the_largest() {
        let mut small = shape(vec![int4("id")], &["id"]);
        let mut large = small.clone();
        small.est_rows = 10;
        large.est_rows = 5000;
        let p = plan(&[Some(&small), None, Some(&large)], None).unwrap();
        assert_eq!(p.est_rows, 5000);
    }
}
