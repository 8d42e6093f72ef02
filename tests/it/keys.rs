//! Key shapes: integer extremes, composite keys of mixed types, uuid, numeric, timestamps, text in
//! byte order and under a non-C collation, keys outside the sampled span, empty sides, tables
//! without a key. Tables are large enough to be cut into several ranges.

use std::collections::BTreeSet;
use std::sync::Arc;

use pgsalvage::progress::NullReporter;
use pgsalvage::report::TableStatus;

use crate::support::*;

fn verify_jobs(base: &str, target: &str, jobs: usize) -> pgsalvage::report::VerifyReport {
    let mut s = settings(base, target);
    s.jobs = jobs;
    verify_with(&s, Arc::new(NullReporter))
}

#[test]
fn bigint_keys_with_extremes_and_keys_outside_the_sample() {
    let (base, target) = pair(
        "bigint",
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT g * 7 - 500000, md5(g::text) FROM generate_series(1, 150000) g;
         INSERT INTO t VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
         ANALYZE t;",
    );
    psql(
        &target,
        "DELETE FROM t WHERE id IN (-9223372036854775808, -499993, 549993);
         INSERT INTO t VALUES (-9223372036854775807, 'new min'), (9223372036854775806, 'new max'),
                              (-1000000000000, 'below'), (1000000000000, 'above'), (-499999, 'between');
         UPDATE t SET v = 'changed' WHERE id IN (9223372036854775807, 0, 3);",
    );
    let report = verify_jobs(&base, &target, 3);
    assert!(
        report.tables[0].ranges.planned > 3,
        "the table should be cut into ranges"
    );
    let want: BTreeSet<Found> = [
        ("[-9223372036854775808]", "missing", ""),
        ("[-499993]", "missing", ""),
        ("[549993]", "missing", ""),
        ("[-9223372036854775807]", "extra", ""),
        ("[9223372036854775806]", "extra", ""),
        ("[-1000000000000]", "extra", ""),
        ("[1000000000000]", "extra", ""),
        ("[-499999]", "extra", ""),
        ("[9223372036854775807]", "divergent", "v"),
        ("[3]", "divergent", "v"),
    ]
    .iter()
    .map(|(k, kind, c)| finding("public.t", k, kind, c))
    .collect();
    // id 0 is not a key of the table (keys are 7g - 500000): its update touches nothing.
    assert_eq!(found(&report), want);
}

#[test]
fn composite_keys_of_mixed_types() {
    let (base, target) = pair(
        "composite",
        "CREATE TABLE t (region int, code text, day date, qty numeric, PRIMARY KEY (region, code, day));
         INSERT INTO t SELECT g % 50, 'c' || (g % 997), date '2024-01-01' + (g / 50000), g
           FROM generate_series(1, 120000) g ON CONFLICT DO NOTHING;
         ANALYZE t;",
    );
    psql(
        &target,
        "DELETE FROM t WHERE region = 3 AND code = 'c3' AND day = '2024-01-01';
         UPDATE t SET qty = -1 WHERE region = 49 AND code = 'c996';
         INSERT INTO t VALUES (-1, '', '1999-12-31', 0), (99, 'zzz', '2100-01-01', 0);",
    );
    let report = verify_jobs(&base, &target, 4);
    let got = found(&report);
    assert!(
        got.contains(&finding(
            "public.t",
            "[3,\"c3\",\"2024-01-01\"]",
            "missing",
            ""
        )),
        "{got:?}"
    );
    assert!(got.contains(&finding(
        "public.t",
        "[-1,\"\",\"1999-12-31\"]",
        "extra",
        ""
    )));
    assert!(got.contains(&finding(
        "public.t",
        "[99,\"zzz\",\"2100-01-01\"]",
        "extra",
        ""
    )));
    let expected_divergent: u64 = psql(
        &base,
        "SELECT count(*) FROM t WHERE region = 49 AND code = 'c996'",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(report.tables[0].divergent, expected_divergent);
    assert_eq!(report.tables[0].missing, 1);
    assert_eq!(report.tables[0].extra, 2);
}

#[test]
fn uuid_numeric_and_timestamp_keys() {
    let (base, target) = pair(
        "uuidkeys",
        "CREATE TABLE u (id uuid PRIMARY KEY, n int);
         INSERT INTO u SELECT md5(g::text)::uuid, g FROM generate_series(1, 80000) g;
         CREATE TABLE n (id numeric PRIMARY KEY, n int);
         INSERT INTO n SELECT (g - 40000) / 7.0, g FROM generate_series(1, 80000) g;
         INSERT INTO n VALUES (123456789012345678901234567890.123456789, 0), ('NaN', 0), ('Infinity', 0), ('-Infinity', 0);
         CREATE TABLE ts (at timestamptz PRIMARY KEY, n int);
         INSERT INTO ts SELECT timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second 7 microseconds', g
           FROM generate_series(1, 80000) g;
         INSERT INTO ts VALUES ('infinity', 0), ('-infinity', 0);
         ANALYZE;",
    );
    psql(
        &target,
        "UPDATE u SET n = -n WHERE id = md5('77')::uuid;
         DELETE FROM n WHERE id IN ('NaN', 123456789012345678901234567890.123456789, 0);
         INSERT INTO n VALUES (0.0000000000000000000001, 1);
         UPDATE ts SET n = -1 WHERE at = 'infinity';
         DELETE FROM ts WHERE at = timestamptz '2020-01-01 00:00:00+00' + 5 * interval '1 second 7 microseconds';",
    );
    let report = verify_jobs(&base, &target, 2);
    let uuid77 = psql(&base, "SELECT md5('77')::uuid").trim().to_string();
    let want: BTreeSet<Found> = [
        finding("public.u", &format!("[\"{uuid77}\"]"), "divergent", "n"),
        finding("public.n", "[\"NaN\"]", "missing", ""),
        finding(
            "public.n",
            "[123456789012345678901234567890.123456789]",
            "missing",
            "",
        ),
        finding("public.n", "[0.00000000000000000000]", "missing", ""),
        finding("public.n", "[0.0000000000000000000001]", "extra", ""),
        finding("public.ts", "[\"infinity\"]", "divergent", "n"),
        finding(
            "public.ts",
            "[\"2020-01-01 00:00:05.000035+00\"]",
            "missing",
            "",
        ),
    ]
    .into();
    assert_eq!(found(&report), want);
}

#[test]
fn text_keys_in_byte_order_and_under_an_icu_collation() {
    let keys = "SELECT k FROM (VALUES ('a'), ('B'), ('é'), ('e'), ('Z'), ('_x'), ('a b'), ('ab'), ('abc'), (''), ('Ω'), ('😀'), ('z')) v(k)";
    let (base, target) = pair(
        "textkeys",
        &format!(
            "CREATE TABLE c (k text PRIMARY KEY, v int);
             INSERT INTO c SELECT 'key-' || g, g FROM generate_series(1, 90000) g;
             INSERT INTO c SELECT k, 0 FROM ({keys}) s;
             CREATE TABLE icu (k text COLLATE \"und-x-icu\" PRIMARY KEY, v int);
             INSERT INTO icu SELECT 'key-' || g, g FROM generate_series(1, 90000) g;
             INSERT INTO icu SELECT k, 0 FROM ({keys}) s;
             ANALYZE;"
        ),
    );
    psql(
        &target,
        "UPDATE c SET v = 1 WHERE k IN ('B', 'é', '');
         DELETE FROM c WHERE k IN ('key-5000', 'Ω');
         UPDATE icu SET v = 1 WHERE k IN ('B', 'é', '');
         DELETE FROM icu WHERE k IN ('key-5000', 'Ω');
         INSERT INTO icu VALUES ('café-3', 1);",
    );
    let report = verify_jobs(&base, &target, 3);
    let mut want = BTreeSet::new();
    for table in ["public.c", "public.icu"] {
        for k in ["B", "é", ""] {
            want.insert(finding(table, &format!("[\"{k}\"]"), "divergent", "v"));
        }
        for k in ["key-5000", "Ω"] {
            want.insert(finding(table, &format!("[\"{k}\"]"), "missing", ""));
        }
    }
    want.insert(finding("public.icu", "[\"café-3\"]", "extra", ""));
    assert_eq!(found(&report), want);
    let c = report
        .tables
        .iter()
        .find(|t| t.table == "public.c")
        .unwrap();
    assert!(
        c.ranges.planned > 1,
        "a C-collated text key is cut into ranges"
    );
}

#[test]
fn empty_tables_one_empty_side_and_an_absent_table() {
    let (base, target) = pair(
        "empties",
        "CREATE TABLE empty (id int PRIMARY KEY);
         CREATE TABLE emptied (id int PRIMARY KEY, v text);
         INSERT INTO emptied SELECT g, 'v' FROM generate_series(1, 5) g;
         CREATE TABLE filled (id int PRIMARY KEY);
         CREATE TABLE dropped (id int PRIMARY KEY);
         INSERT INTO dropped VALUES (1), (2);",
    );
    psql(
        &target,
        "TRUNCATE emptied; INSERT INTO filled VALUES (10), (11); DROP TABLE dropped;",
    );
    let report = verify(&base, &target);
    let got = found(&report);
    let mut want: BTreeSet<Found> = (1..=5)
        .map(|i| finding("public.emptied", &format!("[{i}]"), "missing", ""))
        .collect();
    want.insert(finding("public.filled", "[10]", "extra", ""));
    want.insert(finding("public.filled", "[11]", "extra", ""));
    want.insert(finding("public.dropped", "[1]", "missing", ""));
    want.insert(finding("public.dropped", "[2]", "missing", ""));
    assert_eq!(got, want);
    let status = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .status
    };
    assert_eq!(status("public.empty"), TableStatus::Identical);
    assert_eq!(status("public.dropped"), TableStatus::Differences);
    let dropped = report
        .tables
        .iter()
        .find(|t| t.table == "public.dropped")
        .unwrap();
    assert_eq!(dropped.schema_differences[0].kind, "table_absent");
    assert_eq!(report.exit_code, 1);
}

#[test]
fn a_table_without_a_key_is_a_multiset_unless_a_key_is_named() {
    let (base, target) = pair(
        "nokey",
        "CREATE TABLE logs (tenant int NOT NULL, seq int NOT NULL, msg text);
         INSERT INTO logs SELECT g % 3, g, 'm' FROM generate_series(1, 30) g;
         CREATE TABLE ok (id int PRIMARY KEY);
         INSERT INTO ok VALUES (1);",
    );
    psql(&target, "UPDATE logs SET msg = 'x' WHERE seq = 4");
    // Keyless: the changed row is one copy missing and one extra.
    let report = verify(&base, &target);
    assert_eq!(report.exit_code, 1);
    assert_eq!(
        found(&report),
        BTreeSet::from([
            finding("public.logs", r#"[1,4,"m"]"#, "missing", ""),
            finding("public.logs", r#"[1,4,"x"]"#, "extra", ""),
        ])
    );
    let ok = report
        .tables
        .iter()
        .find(|t| t.table == "public.ok")
        .unwrap();
    assert_eq!(ok.status, TableStatus::Identical);

    let mut s = settings(&base, &target);
    s.keys.insert(
        pgsalvage::shape::TableName::new("public", "logs"),
        vec!["tenant".into(), "seq".into()],
    );
    let report = verify_with(&s, Arc::new(NullReporter));
    assert_eq!(
        found(&report),
        BTreeSet::from([finding("public.logs", "[1,4]", "divergent", "msg")])
    );
    assert_eq!(report.exit_code, 1);
}
