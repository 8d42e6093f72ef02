//! Narrow-first reads: each row as its key and a hash the server computes, instead of all of it.
//!
//! A source far away (another region, a slow link) costs its bytes on the wire. With `--narrow`
//! a table is read as `(key, row hash)`: the server hashes, per row, the columns whose equality
//! it can judge as pgsalvage's canonical encoding does (`hash::canonical`), and the client
//! compares those. Only the keys whose hashes differ are then read in full, to name the differing
//! columns. A column the server cannot judge so (json, composites, arrays of such, types
//! pgsalvage reads as opaque bytes) is read whole beside the hash, and compared by the canonical
//! encoding as in a full read.
//!
//! The row hash is `hash_record_extended` (PostgreSQL 14 and later) over the row's hashable
//! columns, each cast to one type on every source so that sources whose columns differ within a
//! type family (int4 and int8, real and double precision, char and text) hash alike. Each field is
//! hashed by its type's hash function, which PostgreSQL keeps consistent with the type's `=`
//! (and stable across major versions, since hash partitioning depends on it); a column is hashed
//! only where that `=` is the canonical encoding's equality ([`server_value`]):
//! - integers as int8, floats as float8 (`-0` = `+0`, every NaN equal), numeric as it is (scale
//!   not significant), bool, bytea, date, time, timetz, timestamp, timestamptz, uuid, jsonb
//!   (by jsonb meaning), inet and cidr as inet (the cidr flag ignored);
//! - text kinds (text, varchar, citext, enum labels) and bpchar as text in the "C" collation
//!   (bytes compared; bpchar's trailing spaces dropped by the cast, as the canonical encoding
//!   drops them);
//! - interval as its binary form (`interval_send`): PostgreSQL's `=` says `'1 mon'` = `'30 days'`,
//!   the canonical encoding does not;
//! - arrays of those (but interval) as their dimensions and bounds (`array_dims`, which the array
//!   hash leaves out) and their elements.
//!
//! json (text), composites, arrays of other types, and types read as opaque bytes travel whole.
//! The hash is 64 bits: a row that differs goes unnoticed with probability 2^-64 (5.4e-20) per
//! differing row; where it is noticed, its full rows are compared exactly.

use std::sync::Arc;

use super::TablePlan;
use crate::hash::digest::RowCodec;
use crate::shape::{quote_ident, TypeKind};

/// The name the row hash goes by among a narrow plan's columns.
pub const ROW_HASH: &str = "(row hash)";

/// The expression of column `col` (of kind `kind` on its source) inside the row hash: one type
/// on every source, hashed by a function whose equality is the canonical encoding's; `None` when
/// the column must travel whole.
pub fn server_value(kind: &TypeKind, col: &str) -> Option<String> {
    match kind {
        TypeKind::Interval => Some(format!("interval_send({col})")),
        TypeKind::Array(elem) => {
            let cast = hashed_type(elem)?
                .map(|t| format!("::{t}[]"))
                .unwrap_or_default();
            Some(format!(
                "array_dims({col}), ({col}){cast}{}",
                collation(elem)
            ))
        }
        _ => {
            let cast = hashed_type(kind)?
                .map(|t| format!("::{t}"))
                .unwrap_or_default();
            Some(format!("({col}){cast}{}", collation(kind)))
        }
    }
}

/// The type a value of `kind` is hashed as, the same on every source of a family (`None` for its
/// own type); `None` outside when PostgreSQL's equality on it is not the canonical encoding's.
fn hashed_type(kind: &TypeKind) -> Option<Option<&'static str>> {
    Some(match kind {
        TypeKind::Int(_) => Some("int8"),
        TypeKind::Float4 | TypeKind::Float8 => Some("float8"),
        TypeKind::Numeric => Some("numeric"),
        TypeKind::Text | TypeKind::Bpchar => Some("text"),
        TypeKind::Inet => Some("inet"),
        TypeKind::Bool
        | TypeKind::Bytea
        | TypeKind::Date
        | TypeKind::Time
        | TypeKind::TimeTz
        | TypeKind::Timestamp
        | TypeKind::TimestampTz
        | TypeKind::Uuid
        | TypeKind::Jsonb => None,
        TypeKind::Interval
        | TypeKind::Json
        | TypeKind::Array(_)
        | TypeKind::Composite(_)
        | TypeKind::Other => return None,
    })
}

/// Text is hashed as bytes: in the "C" collation, whatever the column's.
fn collation(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Text | TypeKind::Bpchar => " COLLATE \"C\"",
        _ => "",
    }
}

/// The row hash of `values` (each a column's [`server_value`]), as SQL: an int8.
fn row_hash(values: &[String]) -> String {
    format!("hash_record_extended(ROW({}), 0)", values.join(", "))
}

/// The first major version whose servers can compute the row hash.
pub const MIN_MAJOR: u32 = 14;

/// The narrow plan of `plan`: its key, then the row hash of the columns every source can hash,
/// then the columns that travel whole. `None` for a keyless table (read as a multiset, whole)
/// or one with no column the server can hash (nothing to gain).
pub fn narrow_plan(plan: &TablePlan) -> Option<TablePlan> {
    if plan.keyless() {
        return None;
    }
    let nkey = plan.nkey;
    let hashed: Vec<usize> = (nkey..plan.columns.len())
        .filter(|&c| {
            plan.codecs
                .iter()
                .flatten()
                .all(|codec| server_value(&codec.kinds[c], "x").is_some())
        })
        .collect();
    if hashed.is_empty() {
        return None;
    }
    let whole: Vec<usize> = (nkey..plan.columns.len())
        .filter(|c| !hashed.contains(c))
        .collect();
    let mut columns: Vec<String> = plan.columns[..nkey].to_vec();
    columns.push(ROW_HASH.to_string());
    columns.extend(whole.iter().map(|&c| plan.columns[c].clone()));
    let mut selects = Vec::with_capacity(plan.codecs.len());
    let mut codecs = Vec::with_capacity(plan.codecs.len());
    for (source, codec) in plan.codecs.iter().enumerate() {
        let Some(codec) = codec else {
            selects.push(String::new());
            codecs.push(None);
            continue;
        };
        let name = |c: usize| quote_ident(plan.column_on(source, &plan.columns[c]));
        let values: Vec<String> = hashed
            .iter()
            .map(|&c| server_value(&codec.kinds[c], &name(c)).expect("hashable on every source"))
            .collect();
        let mut list: Vec<String> = (0..nkey).map(name).collect();
        list.push(row_hash(&values));
        list.extend(whole.iter().map(|&c| name(c)));
        selects.push(list.join(", "));
        let mut kinds = codec.kinds[..nkey].to_vec();
        kinds.push(TypeKind::Int(8));
        kinds.extend(whole.iter().map(|&c| codec.kinds[c].clone()));
        codecs.push(Some(Arc::new(RowCodec { kinds, nkey })));
    }
    Some(TablePlan {
        name: plan.name.clone(),
        columns,
        nkey,
        codecs,
        key_columns: plan.key_columns.clone(),
        native_order: plan.native_order,
        schema_diffs: plan.schema_diffs.clone(),
        est_rows: plan.est_rows,
        est_unknown: plan.est_unknown,
        shapes: plan.shapes.clone(),
        rows: plan.rows.clone(),
        renamed: None,
        excluded_columns: plan.excluded_columns.clone(),
        key_origin: plan.key_origin.clone(),
        selects: Some(selects),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_the_server_can_match_has_a_value_and_the_rest_travel_whole() {
        for kind in [
            TypeKind::Int(2),
            TypeKind::Float4,
            TypeKind::Numeric,
            TypeKind::Bpchar,
            TypeKind::Timestamp,
            TypeKind::Inet,
            TypeKind::Jsonb,
            TypeKind::Interval,
            TypeKind::Array(Box::new(TypeKind::Int(8))),
            TypeKind::Array(Box::new(TypeKind::Numeric)),
        ] {
            assert!(server_value(&kind, "c").is_some(), "{kind:?}");
        }
        for kind in [
            TypeKind::Json,
            TypeKind::Other,
            TypeKind::Composite(vec![TypeKind::Int(4)]),
            TypeKind::Array(Box::new(TypeKind::Interval)),
            TypeKind::Array(Box::new(TypeKind::Json)),
        ] {
            assert!(server_value(&kind, "c").is_none(), "{kind:?}");
        }
        assert_eq!(
            server_value(&TypeKind::Array(Box::new(TypeKind::Int(4))), "c").unwrap(),
            "array_dims(c), (c)::int8[]"
        );
        assert_eq!(
            server_value(&TypeKind::Array(Box::new(TypeKind::Bpchar)), "c").unwrap(),
            "array_dims(c), (c)::text[] COLLATE \"C\""
        );
        assert_eq!(
            server_value(&TypeKind::Bpchar, "c").unwrap(),
            "(c)::text COLLATE \"C\""
        );
        assert_eq!(server_value(&TypeKind::Jsonb, "c").unwrap(), "(c)");
    }

    #[test]
    fn the_row_hash_hashes_the_values_as_one_record() {
        let sql = row_hash(&["a".into(), "b".into()]);
        assert_eq!(sql, "hash_record_extended(ROW(a, b), 0)");
    }
}
