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

/// verify through the binary with `extra` flags: its exit code, JSON report (`Null` when none
/// was written) and stderr.
fn verify_bin(
    base: &str,
    target: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (b, t) = (url(base), url(target));
    let mut args = vec!["verify", "--base", &b, "--target", &t, "-q"];
    args.extend(["--json", json.to_str().unwrap()]);
    args.extend(extra);
    let out = pgsalvage(&args);
    let report = match std::fs::read(&json) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => serde_json::Value::Null,
    };
    (out.status.code(), report, text(&out.stderr))
}

/// The JSON report's findings, as [`found`] gives the library's.
fn found_json(report: &serde_json::Value) -> BTreeSet<Found> {
    let cols = |f: &serde_json::Value| -> String {
        let cols: Vec<&str> = f["columns"]
            .as_array()
            .map(|c| c.iter().map(|c| c.as_str().unwrap()).collect())
            .unwrap_or_default();
        cols.join("|")
    };
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            finding(
                f["table"].as_str().unwrap(),
                &f["key"].to_string(),
                f["kind"].as_str().unwrap(),
                &cols(f),
            )
        })
        .collect()
}

/// The JSON report's entry for `table`.
fn table_json<'a>(report: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no {table} in the report"))
}

/// A table of `tenant` and `seq`, both allowing NULL, with no index: 120k rows, so it is cut
/// into key ranges, and two rows outside `seq > 0` that share a key holding NULL.
const EVENTS: &str = "CREATE TABLE ev (tenant int, seq int, msg text);
     INSERT INTO ev SELECT g % 7, g, 'm' || g FROM generate_series(1, 120000) g;
     INSERT INTO ev VALUES (NULL, -1, 'outside'), (NULL, -1, 'outside');
     ANALYZE ev;";

#[test]
fn a_nullable_key_holding_no_null_and_no_duplicate_in_the_rows_compared_finds_an_exact_diff() {
    let (base, target) = pair("nullkey", EVENTS);
    psql(
        &target,
        "UPDATE ev SET msg = 'x' WHERE seq = 50000; DELETE FROM ev WHERE seq = 70000;
         INSERT INTO ev VALUES (3, 200000, 'new');",
    );
    // The check reads the rows the comparison reads: --where leaves the NULL rows out.
    let key = [
        "--key",
        "public.ev=tenant,seq",
        "--where",
        "public.ev:seq > 0",
    ];
    let (code, report, err) = verify_bin(&base, &target, &[&key[..], &["--jobs", "3"]].concat());
    assert_eq!(code, Some(1), "{err}");
    let ev = table_json(&report, "public.ev");
    assert_eq!(ev["key"], serde_json::json!(["tenant", "seq"]));
    assert_eq!(ev["keyless"], false);
    assert!(ev["ranges"]["planned"].as_u64().unwrap() > 1, "{ev}");
    assert_eq!(
        found_json(&report),
        BTreeSet::from([
            finding("public.ev", "[6,50000]", "divergent", "msg"),
            finding("public.ev", "[0,70000]", "missing", ""),
            finding("public.ev", "[3,200000]", "extra", ""),
        ])
    );
    // Without --where the two rows holding NULL are compared too, and refuse the key (a ranged
    // read would pass over them: no range bound selects a NULL).
    let (code, _, err) = verify_bin(&base, &target, &["--key", "public.ev=tenant,seq"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: key (tenant, seq) of public.ev does not hold on base: 2 rows hold NULL in tenant or seq\n"),
        "{err}"
    );
}

#[test]
fn a_key_holding_null_is_refused_naming_table_source_and_columns() {
    let (base, target) = pair(
        "nullkey_refused",
        "CREATE TABLE ev (tenant int, seq int, msg text);
         INSERT INTO ev SELECT g % 7, g, 'm' FROM generate_series(1, 1000) g;",
    );
    psql(&target, "INSERT INTO ev VALUES (NULL, 5, 'n');");
    let (code, report, err) = verify_bin(&base, &target, &["--key", "public.ev=tenant,seq"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(report, serde_json::Value::Null, "no comparison ran");
    let mut lines = err.lines();
    assert_eq!(
        lines.next().unwrap(),
        "error: key (tenant, seq) of public.ev does not hold on target: 1 row holds NULL in tenant or seq"
    );
    let hint = lines.next().unwrap();
    assert!(
        hint.contains("choose other columns with --key public.ev=col1,col2")
            && hint.ends_with("leave --key out to compare public.ev as a keyless multiset"),
        "{err}"
    );
    assert_eq!(lines.next(), None, "{err}");
}

#[test]
fn a_key_two_rows_share_is_refused_with_one_of_them() {
    let (base, target) = pair(
        "dupkey",
        "CREATE TABLE d (a int NOT NULL, b text NOT NULL, v int);
         INSERT INTO d SELECT g, 'b' || g, g FROM generate_series(1, 1000) g;",
    );
    let key = ["--key", "public.d=a,b"];
    let (code, _, err) = verify_bin(&base, &target, &key);
    assert_eq!(code, Some(0), "{err}");
    psql(&target, "INSERT INTO d VALUES (4, 'b4', 0);");
    let (code, _, err) = verify_bin(&base, &target, &key);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "error: key (a, b) of public.d does not hold on target: 2 rows share the key (4,b4)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: a key must be NOT NULL and unique"),
        "{err}"
    );
}

/// `m` has no primary key but a unique index with NULLS NOT DISTINCT over columns that allow
/// NULL; `u` a unique index over a NOT NULL column.
const UNIQUE_TABLES: &str =
    "CREATE TABLE m (a int, b text, v int, UNIQUE NULLS NOT DISTINCT (a, b));
     INSERT INTO m SELECT g, 'b' || g, g FROM generate_series(1, 1000) g;
     CREATE TABLE u (code text NOT NULL, v int);
     CREATE UNIQUE INDEX u_code ON u (code);
     INSERT INTO u SELECT 'c' || g, g FROM generate_series(1, 100) g;";

#[test]
fn a_unique_index_with_nulls_not_distinct_keys_a_table_without_a_primary_key() {
    let (base, target) = pair("nndkey", UNIQUE_TABLES);
    psql(
        &target,
        "UPDATE m SET v = -1 WHERE a = 5; DELETE FROM m WHERE a = 6; UPDATE u SET v = 0 WHERE code = 'c7';",
    );
    let (code, report, err) = verify_bin(&base, &target, &["-vv"]);
    assert_eq!(code, Some(1), "{err}");
    let m = table_json(&report, "public.m");
    assert_eq!(
        (&m["key"], &m["keyless"]),
        (&serde_json::json!(["a", "b"]), &false.into())
    );
    assert_eq!(
        m["key_note"],
        "key (a, b) from unique index m_a_b_key (NULLS NOT DISTINCT): the table has no primary key"
    );
    let u = table_json(&report, "public.u");
    assert_eq!(
        (&u["key"], &u["keyless"]),
        (&serde_json::json!(["code"]), &false.into())
    );
    assert_eq!(
        found_json(&report),
        BTreeSet::from([
            finding("public.m", r#"[5,"b5"]"#, "divergent", "v"),
            finding("public.m", r#"[6,"b6"]"#, "missing", ""),
            finding("public.u", r#"["c7"]"#, "divergent", "v"),
        ])
    );
    // m's columns allow NULL: they are looked at, on each side; the indexes rule duplicates out,
    // and u's NOT NULL column needs no look at all.
    let looks: Vec<&str> = err.lines().filter(|l| l.contains("IS NULL)")).collect();
    assert_eq!(looks.len(), 2, "{err}");
    assert!(
        looks.iter().all(|l| l.ends_with(
            r#"sql: SELECT (SELECT count(*) FROM "public"."m" WHERE ("a" IS NULL OR "b" IS NULL)), NULL::text, NULL::int8"#
        )),
        "{looks:?}"
    );
    assert!(!err.contains("HAVING"), "{err}");
    // Recovered and applied by that key, the two compare identical.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let (b, t, out) = (url(&base), url(&target), out.to_str().unwrap().to_string());
    let rec = pgsalvage(&["recover", "--base", &b, "--target", &t, "--out", &out, "-q"]);
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let applied = pgsalvage(&["apply", &out, "--target", &t, "-q"]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let (code, _, err) = verify_bin(&base, &target, &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_nulls_not_distinct_index_holding_null_leaves_its_table_keyless_with_a_note() {
    let (base, target) = pair(
        "nndnull",
        &format!("{UNIQUE_TABLES} INSERT INTO m VALUES (NULL, NULL, 0), (NULL, 'x', 0);"),
    );
    psql(
        &target,
        "UPDATE m SET v = -1 WHERE a = 5; UPDATE m SET v = 9 WHERE a IS NULL AND b IS NULL;",
    );
    let lib = verify(&base, &target);
    let m = lib.tables.iter().find(|t| t.table == "public.m").unwrap();
    assert!(m.keyless && m.key.is_empty(), "{m:?}");
    assert_eq!(
        m.key_note.as_deref(),
        Some(
            "compared as a multiset: key (a, b) of unique index m_a_b_key (NULLS NOT DISTINCT) \
             does not hold on base: 2 rows hold NULL in a or b, and a key cannot address NULL"
        )
    );
    assert_eq!(lib.exit_code, 1);
    // Compared exactly, copy by copy, the rows holding NULL included.
    assert_eq!(
        found(&lib),
        BTreeSet::from([
            finding("public.m", r#"[5,"b5",5]"#, "missing", ""),
            finding("public.m", r#"[5,"b5",-1]"#, "extra", ""),
            finding("public.m", "[null,null,0]", "missing", ""),
            finding("public.m", "[null,null,9]", "extra", ""),
        ])
    );
    // The human summary says why under the table.
    let (b, t) = (url(&base), url(&target));
    let out = pgsalvage(&["verify", "--base", &b, "--target", &t, "--no-progress"]);
    let summary = text(&out.stdout);
    assert!(
        summary.contains("public.m (keyless)")
            && summary
                .contains("    note: compared as a multiset: key (a, b) of unique index m_a_b_key"),
        "{summary}"
    );
}

#[test]
fn baselines_check_a_named_key_when_taken_and_against_the_live_side() {
    let (base, target) = pair(
        "nullkey_baseline",
        "CREATE TABLE ev (tenant int, seq int, msg text);
         INSERT INTO ev SELECT g % 7, g, 'm' FROM generate_series(1, 1000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("b");
    let saved = saved.to_str().unwrap();
    let key = ["--key", "public.ev=tenant,seq"];
    let take = |db: &str, out: &str| {
        let source = url(db);
        let args = [
            &["baseline", "--source", &source, "--out", out, "-q"][..],
            &key,
        ]
        .concat();
        pgsalvage(&args)
    };
    let out = take(&base, saved);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The baseline's key is looked for in the live side's snapshot.
    psql(&target, "INSERT INTO ev VALUES (1, 1, 'again');");
    let json = dir.path().join("r.json");
    let t = url(&target);
    let args = ["verify", "--base", saved, "--target", &t, "-q", "--json"];
    let out = pgsalvage(&[&args[..], &[json.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        table_json(&report, "public.ev")["errors"],
        serde_json::json!([
            "key (tenant, seq) of public.ev does not hold on target: 2 rows share the key (1,1)"
        ])
    );
    // And in the snapshot a baseline is taken of.
    psql(&target, "INSERT INTO ev VALUES (NULL, 2, 'n');");
    let other = dir.path().join("t");
    let out = take(&target, other.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "error: key (tenant, seq) of public.ev does not hold on base: 1 row holds NULL in tenant or seq\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// A key of NULLable columns no index covers: recover writes, and apply restores, by it.
#[test]
fn a_nullable_named_key_recovers_and_applies() {
    let (base, target) = pair(
        "nullkey_recover",
        "CREATE TABLE ev (tenant int, seq int, msg text);
         INSERT INTO ev SELECT g % 7, g, 'm' FROM generate_series(1, 1000) g;",
    );
    psql(
        &target,
        "UPDATE ev SET msg = 'x' WHERE seq = 5; DELETE FROM ev WHERE seq = 6;",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let (b, t, out) = (url(&base), url(&target), out.to_str().unwrap().to_string());
    let rec = pgsalvage(&[
        "recover",
        "--base",
        &b,
        "--target",
        &t,
        "--out",
        &out,
        "-q",
        "--key",
        "public.ev=tenant,seq",
    ]);
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let applied = pgsalvage(&["apply", &out, "--target", &t, "-q"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let (code, _, err) = verify_bin(&base, &target, &["--key", "public.ev=tenant,seq"]);
    assert_eq!(code, Some(0), "{err}");
}

/// A plain unique index over a column that allows NULL keys a table without a primary key once
/// each snapshot shows no NULL in it; a NULL there leaves the table keyless, with a note.
#[test]
fn a_plain_unique_index_over_a_nullable_column_keys_its_table_while_it_holds_no_null() {
    let tables = "CREATE TABLE p (a int, v text, UNIQUE (a));
                  INSERT INTO p SELECT g, 'v' || g FROM generate_series(1, 500) g;";
    let (base, target) = pair("plainkey", tables);
    psql(
        &target,
        "UPDATE p SET v = 'x' WHERE a = 9; DELETE FROM p WHERE a = 10;",
    );
    let lib = verify(&base, &target);
    let p = lib.tables.iter().find(|t| t.table == "public.p").unwrap();
    assert!(!p.keyless, "{p:?}");
    assert_eq!(p.key, ["a"]);
    assert_eq!(
        p.key_note.as_deref(),
        Some("key (a) from unique index p_a_key: the table has no primary key")
    );
    assert_eq!(
        found(&lib),
        BTreeSet::from([
            finding("public.p", "[9]", "divergent", "v"),
            finding("public.p", "[10]", "missing", ""),
        ])
    );

    let (base, target) = pair(
        "plainnull",
        &format!("{tables} INSERT INTO p VALUES (NULL, 'n'), (NULL, 'n');"),
    );
    psql(
        &target,
        "DELETE FROM p WHERE ctid = (SELECT ctid FROM p WHERE a IS NULL LIMIT 1);",
    );
    let lib = verify(&base, &target);
    let p = lib.tables.iter().find(|t| t.table == "public.p").unwrap();
    assert!(p.keyless && p.key.is_empty(), "{p:?}");
    assert_eq!(
        p.key_note.as_deref(),
        Some(
            "compared as a multiset: key (a) of unique index p_a_key does not hold on base: \
             2 rows hold NULL in a, and a key cannot address NULL"
        )
    );
    assert_eq!(
        found(&lib),
        BTreeSet::from([finding("public.p", r#"[null,"n"]"#, "missing", "")])
    );
}
