//! The data side of `check`: the rows that break a rule, found by the server in one query each.
//!
//! Every rule becomes a `WHERE` condition over the table (alias `c`): a foreign key an anti-join
//! against its parent (`MATCH SIMPLE`: a row with a NULL in the key references nothing and is
//! fine; `MATCH FULL`: a partly NULL key is itself a violation), a CHECK constraint `NOT (expr)`
//! (a NULL result passes, as PostgreSQL decides), a NOT NULL rule `col IS NULL`, a unique rule
//! membership in a group of equal non-NULL values seen more than once. Each violating row comes
//! back as its key (the `--key` columns, else the primary key, else the rule's columns) and the
//! rule's column values, all as the server's text, so nothing passes through a client-side
//! type. The rows are held in memory: the fix-ups need all of them, the report lists the first
//! `max_keys`.
//!
//! Values cross between the two databases as typed literals (`'<text>'::<type>`), chunked like
//! recover's fetches, which reads back exactly the same value in every type.

use std::collections::BTreeSet;

use serde_json::value::RawValue;
use tokio_postgres::Client;

use super::catalog::{ConstraintDef, ConstraintKind, ForeignKey, JsonForm, TableDef};
use crate::error::{Context, Result};
use crate::key::render::push_json_string;
use crate::shape::{quote_ident, TableName};
use crate::sql::key_filter;

/// Tuples per query when values cross from one database to the other.
const TUPLES_PER_QUERY: usize = 500;

/// A tuple of values as the server prints them; `None` is NULL.
pub type Tuple = Vec<Option<String>>;

/// One row that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: Tuple,
    /// The rule's columns (a foreign key's columns, a unique key's columns), else empty.
    pub values: Tuple,
}

/// The rows of one table that break one rule.
#[derive(Clone, Debug, Default)]
pub struct Violations {
    pub key_columns: Vec<String>,
    pub rows: Vec<Violation>,
}

/// The columns that name a row of `table` in reports: its `--key`, else its primary key, else
/// `fallback` (the rule's columns, which name the values at fault, not the row).
pub fn key_columns(table: &TableDef, fallback: &[String]) -> Vec<String> {
    if let Some(key) = &table.row_key {
        return key.clone();
    }
    let pk = table.primary_key();
    if pk.is_empty() {
        fallback.to_vec()
    } else {
        pk
    }
}

fn qualified(alias: &str, cols: &[String]) -> Vec<String> {
    cols.iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect()
}

fn as_text(exprs: &[String]) -> String {
    exprs
        .iter()
        .map(|e| format!("{e}::text"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition a child row (alias `c`) of a foreign key must meet to be an orphan.
pub fn orphan_condition(fk: &ForeignKey, columns: &[String]) -> String {
    let child = qualified("c", columns);
    let parent = qualified("p", &fk.parent_columns);
    let all_set = child
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let matches = parent
        .iter()
        .zip(&child)
        .map(|(p, c)| format!("{p} = {c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let missing = format!(
        "{all_set} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {matches})",
        fk.parent.sql()
    );
    if fk.match_full && child.len() > 1 {
        format!(
            "({missing}) OR num_nulls({}) NOT IN (0, {})",
            child.join(", "),
            child.len()
        )
    } else {
        missing
    }
}

/// The condition a row (alias `c`) meets when it breaks `con`, for the kinds checked by rows.
pub fn violation_condition(table: &TableDef, con: &ConstraintDef) -> Option<String> {
    match con.kind {
        ConstraintKind::ForeignKey => Some(orphan_condition(con.foreign.as_ref()?, &con.columns)),
        ConstraintKind::Check => Some(format!("NOT ({})", con.check.as_ref()?)),
        ConstraintKind::NotNull => Some(null_condition(con.columns.first()?)),
        ConstraintKind::PrimaryKey | ConstraintKind::Unique => {
            Some(duplicate_condition(&table.name, &con.columns))
        }
        ConstraintKind::Exclusion => None,
    }
}

pub fn null_condition(column: &str) -> String {
    format!("c.{} IS NULL", quote_ident(column))
}

/// Rows whose (non-NULL) values in `cols` appear more than once.
pub fn duplicate_condition(table: &TableName, cols: &[String]) -> String {
    let list = cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
    let not_null = list
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let lhs = qualified("c", cols);
    format!(
        "({}) IN (SELECT {} FROM {} WHERE {not_null} GROUP BY {} HAVING count(*) > 1)",
        lhs.join(", "),
        list.join(", "),
        table.sql(),
        list.join(", ")
    )
}

/// The rows of `table` meeting `condition`, each with its key and `values` columns, by key.
pub async fn violations(
    client: &Client,
    table: &TableDef,
    key: &[String],
    values: &[String],
    condition: &str,
) -> Result<Violations> {
    let key_exprs = qualified("c", key);
    let mut select = key_exprs.clone();
    select.extend(qualified("c", values));
    let order = if key_exprs.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", key_exprs.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {} AS c WHERE {condition}{order}",
        as_text(&select),
        table.name.sql()
    );
    let rows = client
        .query(sql.as_str(), &[])
        .await
        .context(|| format!("checking rows of {}", table.name))?;
    let rows = rows
        .iter()
        .map(|r| {
            let all: Tuple = (0..select.len()).map(|i| r.get(i)).collect();
            Violation {
                key: all[..key.len()].to_vec(),
                values: all[key.len()..].to_vec(),
            }
        })
        .collect();
    Ok(Violations {
        key_columns: key.to_vec(),
        rows,
    })
}

/// `max(column)` of a table, as a bigint; `None` for an empty table.
pub async fn column_max(client: &Client, table: &TableName, column: &str) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT max({})::bigint FROM {}",
        quote_ident(column),
        table.sql()
    );
    let row = client
        .query_one(sql.as_str(), &[])
        .await
        .context(|| format!("reading the largest {column} of {table}"))?;
    Ok(row.get(0))
}

/// `'<text>'::<type>` for each value of a tuple (no NULLs: callers leave those out).
fn literals(tuple: &[String], types: &[&str]) -> Vec<String> {
    tuple
        .iter()
        .zip(types)
        .map(|(v, t)| format!("{}::{t}", postgres_protocol::escape::escape_literal(v)))
        .collect()
}

/// The column types of `cols` in `table`, as SQL; `None` when a column is missing.
pub fn column_types<'a>(table: &'a TableDef, cols: &[String]) -> Option<Vec<&'a str>> {
    cols.iter()
        .map(|c| table.column(c).map(|c| c.type_sql.as_str()))
        .collect()
}

/// `WHERE` filters selecting the rows of `table` whose `cols` hold one of `tuples`, a chunk of
/// tuples each (typed literals, so they go through the key index).
pub fn tuple_filters(
    table: &TableDef,
    cols: &[String],
    tuples: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let types = column_types(table, cols)?;
    let all: Vec<Vec<String>> = tuples.iter().map(|t| literals(t, &types)).collect();
    Some(
        all.chunks(TUPLES_PER_QUERY)
            .map(|chunk| key_filter(cols, chunk))
            .collect(),
    )
}

/// For the rows of `table` whose `cols` hold one of `tuples`: their `cols` and `select` values.
/// A tuple with no row returns nothing.
pub async fn rows_by(
    client: &Client,
    table: &TableDef,
    cols: &[String],
    tuples: &BTreeSet<Vec<String>>,
    select: &[String],
) -> Result<Vec<(Vec<String>, Tuple)>> {
    let Some(filters) = tuple_filters(table, cols, tuples) else {
        return Ok(Vec::new());
    };
    let mut exprs: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
    exprs.extend(select.iter().map(|c| quote_ident(c)));
    let mut out = Vec::new();
    for filter in filters {
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter}",
            as_text(&exprs),
            table.name.sql()
        );
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .context(|| format!("looking up rows of {} by key", table.name))?;
        for r in rows {
            let found: Vec<String> = (0..cols.len()).map(|i| r.get(i)).collect();
            let values: Tuple = (cols.len()..exprs.len()).map(|i| r.get(i)).collect();
            out.push((found, values));
        }
    }
    Ok(out)
}

/// A tuple as a JSON array of exact values, as verify writes keys: integers, numerics and finite
/// floats as JSON numbers digit for digit, booleans as `true`/`false`, json as itself, everything
/// else as a string of the server's text.
pub fn tuple_json(tuple: &[Option<String>], forms: &[JsonForm]) -> Box<RawValue> {
    let mut out = String::from("[");
    for (i, value) in tuple.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let form = forms.get(i).copied().unwrap_or(JsonForm::Text);
        match (value, form) {
            (None, _) => out.push_str("null"),
            (Some(v), JsonForm::Number) if is_json_number(v) => out.push_str(v),
            (Some(v), JsonForm::Bool) => out.push_str(if v == "t" { "true" } else { "false" }),
            (Some(v), JsonForm::Json) => out.push_str(v),
            (Some(v), _) => push_json_string(&mut out, v),
        }
    }
    out.push(']');
    RawValue::from_string(out).expect("tuples render as valid JSON")
}

/// Whether a number's text is also a JSON number (not NaN or Infinity).
fn is_json_number(text: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(text).is_ok()
}

/// How each of `cols` of `table` renders in JSON.
pub fn forms(table: &TableDef, cols: &[String]) -> Vec<JsonForm> {
    cols.iter()
        .map(|c| table.column(c).map_or(JsonForm::Text, |c| c.json))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_like_verify() {
        let t = |v: &str| Some(v.to_string());
        let forms = [
            JsonForm::Number,
            JsonForm::Text,
            JsonForm::Bool,
            JsonForm::Number,
            JsonForm::Number,
        ];
        let json = tuple_json(
            &[t("9007199254740993"), t("a\"b"), t("t"), t("NaN"), None],
            &forms,
        );
        assert_eq!(json.get(), r#"[9007199254740993,"a\"b",true,"NaN",null]"#);
        assert_eq!(
            tuple_json(&[t("3000.00")], &[JsonForm::Number]).get(),
            "[3000.00]"
        );
    }

    #[test]
    fn orphans_respect_match_simple_and_full() {
        let fk = ForeignKey {
            parent: TableName::new("public", "p"),
            parent_columns: vec!["a".into(), "b".into()],
            match_full: false,
        };
        let cols = vec!["pa".to_string(), "pb".to_string()];
        assert_eq!(
            orphan_condition(&fk, &cols),
            "c.\"pa\" IS NOT NULL AND c.\"pb\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \"public\".\"p\" AS p WHERE p.\"a\" = c.\"pa\" AND p.\"b\" = c.\"pb\")"
        );
        let full = ForeignKey {
            match_full: true,
            ..fk
        };
        assert!(orphan_condition(&full, &cols)
            .ends_with("OR num_nulls(c.\"pa\", c.\"pb\") NOT IN (0, 2)"));
    }

    #[test]
    fn duplicates_ignore_nulls() {
        assert_eq!(
            duplicate_condition(&TableName::new("public", "t"), &["code".to_string()]),
            "(c.\"code\") IN (SELECT \"code\" FROM \"public\".\"t\" WHERE \"code\" IS NOT NULL GROUP BY \"code\" HAVING count(*) > 1)"
        );
    }
}
