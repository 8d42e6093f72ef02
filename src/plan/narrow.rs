//! Narrow-first reads: each row as its key and a hash the server computes, instead of all of it.
//!
//! A source far away (another region, a slow link) costs its bytes on the wire. With `--narrow`
//! a table is read as `(key, row hash)`: the server hashes, per row, the columns it can put in a
//! form that is equal on two rows exactly when pgsalvage's canonical encoding of them is
//! (`hash::canonical`), and the client compares those. Only the keys whose hashes differ are then
//! read in full, to name the differing columns. A column the server cannot put in that form
//! (json, jsonb, composites, arrays of such, types pgsalvage reads as opaque bytes) is read whole
//! beside the hash, so it is compared by the canonical encoding as in a full read.
//!
//! Per kind, the server-side text ([`server_text`]):
//! - integers as `int8` text (int2, int4 and int8 compare by value);
//! - floats: `0` for both zeros, `NaN` for every NaN, else the hex of `float8send` of the value
//!   widened to float8 (exactly as the canonical encoding widens float4);
//! - numeric as the text of `trim_scale` (scale not significant: `3000.00` = `3000`);
//! - text kinds as their text, bpchar cast to text (which drops trailing spaces, as the
//!   canonical encoding does); bool as text; bytea as hex;
//! - date, time, timetz, timestamp, timestamptz, interval and uuid as the hex of their binary
//!   send function: the very bytes the canonical encoding keeps;
//! - inet and cidr as `text(c::inet)`: address and bits, without the cidr flag;
//! - arrays of integers, text, bool or uuid as their text (dimensions, bounds and elements,
//!   NULLs distinct from the string "NULL").
//!
//! The row hash is the first 16 bytes of sha256 over the columns' texts, each framed as
//! `length:text` or `~` for NULL, so no two rows' framings collide; two rows that differ get the
//! same hash with probability 2^-128.

use std::sync::Arc;

use super::TablePlan;
use crate::hash::digest::RowCodec;
use crate::shape::{quote_ident, TypeKind};

/// The name the row hash goes by among a narrow plan's columns.
pub const ROW_HASH: &str = "(row hash)";

/// SQL text of column expression `col` (of kind `kind` on its source) that is equal on two rows
/// exactly when their canonical encodings are; `None` when the server cannot give one.
pub fn server_text(kind: &TypeKind, col: &str) -> Option<String> {
    let send = |f: &str| format!("encode({f}({col}), 'hex')");
    Some(match kind {
        TypeKind::Int(_) => format!("({col})::int8::text"),
        TypeKind::Float4 | TypeKind::Float8 => format!(
            "CASE WHEN {col} = 0 THEN '0' WHEN {col} = 'NaN' THEN 'NaN' \
             ELSE encode(float8send(({col})::float8), 'hex') END"
        ),
        TypeKind::Numeric => format!("trim_scale({col})::text"),
        TypeKind::Text | TypeKind::Bpchar | TypeKind::Bool => format!("({col})::text"),
        TypeKind::Bytea => format!("encode({col}, 'hex')"),
        TypeKind::Date => send("date_send"),
        TypeKind::Time => send("time_send"),
        TypeKind::TimeTz => send("timetz_send"),
        TypeKind::Timestamp => send("timestamp_send"),
        TypeKind::TimestampTz => send("timestamptz_send"),
        TypeKind::Interval => send("interval_send"),
        TypeKind::Uuid => send("uuid_send"),
        TypeKind::Inet => format!("text(({col})::inet)"),
        TypeKind::Array(elem) => match **elem {
            TypeKind::Int(_) | TypeKind::Text | TypeKind::Bool | TypeKind::Uuid => {
                format!("({col})::text")
            }
            _ => return None,
        },
        TypeKind::Json | TypeKind::Jsonb | TypeKind::Composite(_) | TypeKind::Other => return None,
    })
}

/// The row hash of `texts` (each a column's [`server_text`]), as SQL: 16 bytes of bytea.
fn row_hash(texts: &[String]) -> String {
    let framed: Vec<String> = texts
        .iter()
        .map(|t| format!("coalesce(length({t})::text || ':' || {t}, '~')"))
        .collect();
    format!(
        "substr(sha256(convert_to(concat({}), 'UTF8')), 1, 16)",
        framed.join(", ")
    )
}

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
                .all(|codec| server_text(&codec.kinds[c], "x").is_some())
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
        let texts: Vec<String> = hashed
            .iter()
            .map(|&c| server_text(&codec.kinds[c], &name(c)).expect("hashable on every source"))
            .collect();
        let mut list: Vec<String> = (0..nkey).map(name).collect();
        list.push(row_hash(&texts));
        list.extend(whole.iter().map(|&c| name(c)));
        selects.push(list.join(", "));
        let mut kinds = codec.kinds[..nkey].to_vec();
        kinds.push(TypeKind::Bytea);
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
    fn every_kind_the_server_can_match_has_a_text_and_the_rest_travel_whole() {
        for kind in [
            TypeKind::Int(2),
            TypeKind::Float4,
            TypeKind::Numeric,
            TypeKind::Bpchar,
            TypeKind::Timestamp,
            TypeKind::Inet,
            TypeKind::Array(Box::new(TypeKind::Int(8))),
        ] {
            assert!(server_text(&kind, "c").is_some(), "{kind:?}");
        }
        for kind in [
            TypeKind::Json,
            TypeKind::Jsonb,
            TypeKind::Other,
            TypeKind::Composite(vec![TypeKind::Int(4)]),
            TypeKind::Array(Box::new(TypeKind::Float8)),
            TypeKind::Array(Box::new(TypeKind::Numeric)),
            TypeKind::Array(Box::new(TypeKind::Bpchar)),
        ] {
            assert!(server_text(&kind, "c").is_none(), "{kind:?}");
        }
    }

    #[test]
    fn the_row_hash_frames_every_column() {
        let sql = row_hash(&["a".into(), "b".into()]);
        assert!(
            sql.contains("coalesce(length(a)::text || ':' || a, '~')"),
            "{sql}"
        );
        assert!(sql.starts_with("substr(sha256("), "{sql}");
    }
}
