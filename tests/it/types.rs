//! The type matrix: every supported type, with NULLs and extremes, compares exactly: an identical
//! copy is identical, each single-value change is found as exactly that key and column, values
//! PostgreSQL considers equal are equal, and a migration within a type family keeps values equal.

use std::collections::BTreeSet;

use crate::support::*;

pub const MATRIX: &str = include_str!("../../fixtures/types/matrix.sql");

/// One change per column, each on its own typical row (id 100 + index).
pub const CHANGES: &[(&str, &str)] = &[
    ("c_int2", "8"),
    ("c_int4", "c_int4 + 1"),
    ("c_int8", "9007199254740992"),
    ("c_num", "3000.001"),
    ("c_num_s", "12.35"),
    ("c_f4", "'1.5000001'"),
    ("c_f8", "'0.10000000000000002'"),
    ("c_text", "E'cafe\\u0301'"),
    ("c_varchar", "'abc '"),
    ("c_bpchar", "'ac'"),
    ("c_bytea", "'\\x00fe'"),
    ("c_bool", "false"),
    ("c_date", "'2024-03-01'"),
    ("c_time", "'12:00:00.000002'"),
    ("c_timetz", "'11:00:00+00'"),
    ("c_ts", "'2024-01-01 12:00:00.000002'"),
    ("c_tstz", "'2024-01-01 12:00:00.000002+00'"),
    ("c_interval", "'30 days'"),
    ("c_uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'"),
    ("c_json", "'{\"a\": 1, \"b\": 3}'"),
    ("c_jsonb", "'{\"a\": [2, 1]}'"),
    ("c_inet", "'10.0.0.1/24'"),
    ("c_cidr", "'10.0.0.0/16'"),
    ("c_enum", "'happy'"),
    ("c_domain", "6"),
    ("c_int_arr", "'{1,2,NULL}'"),
    ("c_text_arr", "'[0:1]={a,b}'"),
    ("c_num_2d", "'{1,2,3,4}'"),
    ("c_enum_arr", "'{ok,sad}'"),
    ("c_money", "12.35"),
    ("c_point", "'(1,3)'"),
    ("c_range", "'[1,11)'"),
];

/// Changes on the NULL, extreme and TOASTed rows: (id, column, new value).
const EDGE_CHANGES: &[(i32, &str, &str)] = &[
    (1, "c_int_arr", "'{}'"),
    (2, "c_text", "NULL"),
    (2, "c_bytea", "NULL"),
    (3, "c_num", "c_num - 1e-500"),
    (3, "c_int8", "9223372036854775806"),
    (4, "c_f4", "'Infinity'"),
    (4, "c_text", "E'u\\u0308nïcödé ✓ 𝄞'"),
    (300, "c_text", "overlay(c_text placing 'y' from 5000000)"),
    (
        301,
        "c_bytea",
        "overlay(c_bytea placing '\\x00' from 5000000)",
    ),
];

#[test]
fn identical_copy_is_identical() {
    let (base, target) = pair("matrix_same", MATRIX);
    let report = verify(&base, &target);
    assert_eq!(report.exit_code, 0, "{:?}", report.findings);
    let table = &report.tables[0];
    assert_eq!(table.table, "public.matrix");
    assert_eq!(table.rows.values().copied().collect::<Vec<_>>(), [67, 67]);
    assert_eq!(table.roots.values().collect::<BTreeSet<_>>().len(), 1);
}

#[test]
fn every_single_value_change_is_found_exactly() {
    let (base, target) = pair("matrix_changes", MATRIX);
    let mut want = BTreeSet::new();
    for (i, (column, value)) in CHANGES.iter().enumerate() {
        let id = 100 + i;
        psql(
            &target,
            &format!("UPDATE matrix SET {column} = {value} WHERE id = {id}"),
        );
        want.insert(finding(
            "public.matrix",
            &format!("[{id}]"),
            "divergent",
            column,
        ));
    }
    for (id, column, value) in EDGE_CHANGES {
        psql(
            &target,
            &format!("UPDATE matrix SET {column} = {value} WHERE id = {id}"),
        );
    }
    for (id, columns) in [
        (1, "c_int_arr"),
        (2, "c_text|c_bytea"),
        (3, "c_int8|c_num"),
        (4, "c_f4|c_text"),
        (300, "c_text"),
        (301, "c_bytea"),
    ] {
        want.insert(finding(
            "public.matrix",
            &format!("[{id}]"),
            "divergent",
            columns,
        ));
    }
    let report = verify(&base, &target);
    let got = found(&report);
    let missed: Vec<_> = want.difference(&got).collect();
    let spurious: Vec<_> = got.difference(&want).collect();
    assert!(
        missed.is_empty() && spurious.is_empty(),
        "missed {missed:#?}\nspurious {spurious:#?}"
    );
    assert_eq!(report.exit_code, 1);
    assert_eq!(report.tables[0].divergent, want.len() as u64);
}

#[test]
fn values_postgres_calls_equal_compare_equal() {
    let (base, target) = pair("matrix_equal", MATRIX);
    psql(
        &target,
        "UPDATE matrix SET c_num = 3000.0 WHERE id = 100;
         UPDATE matrix SET c_num = 3000 WHERE id = 101;
         UPDATE matrix SET c_f8 = '0' WHERE id = 4;
         UPDATE matrix SET c_jsonb = '{\"a\": [1.0, 2.00]}' WHERE id = 102;
         UPDATE matrix SET c_json = '{\"a\":1,\"b\":2}' WHERE id = 103;
         UPDATE matrix SET c_bpchar = 'ab      ' WHERE id = 104;
         UPDATE matrix SET c_num = 'NaN' WHERE id = 4;",
    );
    let report = verify(&base, &target);
    assert_eq!(found(&report), BTreeSet::new());
    assert_eq!(report.exit_code, 0);
}

#[test]
fn migration_within_a_family_keeps_values_equal() {
    let (base, target) = pair(
        "family",
        "CREATE TABLE t (id integer PRIMARY KEY, a integer, b varchar(20), c json, d cidr, e char(5), f smallint[]);
         INSERT INTO t SELECT g, g * 1000, 'v' || g, json_build_object('k', g, 'a', 'b'), '10.0.0.0/8', 'x', ARRAY[g, -g]
           FROM generate_series(1, 500) g;
         INSERT INTO t VALUES (501, NULL, NULL, '{\"z\": 1,   \"a\": 1.50, \"z\": 2}', NULL, NULL, '{}');",
    );
    psql(
        &target,
        "ALTER TABLE t ALTER COLUMN id TYPE bigint, ALTER COLUMN a TYPE bigint, ALTER COLUMN b TYPE text,
           ALTER COLUMN c TYPE jsonb, ALTER COLUMN d TYPE inet, ALTER COLUMN e TYPE text, ALTER COLUMN f TYPE bigint[];
         UPDATE t SET a = a + 1 WHERE id = 7;",
    );
    let report = verify(&base, &target);
    assert_eq!(
        found(&report),
        BTreeSet::from([finding("public.t", "[7]", "divergent", "a")])
    );
    let kinds: Vec<_> = report.tables[0]
        .schema_differences
        .iter()
        .map(|d| (d.kind, d.column.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert!(kinds.iter().all(|(k, _)| *k == "type_changed"), "{kinds:?}");
    assert_eq!(report.exit_code, 1);
}

#[test]
fn incomparable_type_change_is_a_schema_difference() {
    let (base, target) = pair(
        "incomparable",
        "CREATE TABLE t (id integer PRIMARY KEY, a integer, b text);
         INSERT INTO t SELECT g, g, 'x' FROM generate_series(1, 10) g;",
    );
    psql(&target, "ALTER TABLE t ALTER COLUMN a TYPE text; ALTER TABLE t ADD COLUMN c int; UPDATE t SET b = 'y' WHERE id = 3");
    let report = verify(&base, &target);
    let table = &report.tables[0];
    assert_eq!(table.columns_compared, ["id", "b"]);
    let kinds: Vec<_> = table.schema_differences.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, ["type_incomparable", "column_extra"]);
    assert_eq!(
        found(&report),
        BTreeSet::from([finding("public.t", "[3]", "divergent", "b")])
    );
}
