//! recover and apply, end to end on real clusters: restore.sql and undo.sql round trips over
//! random damage and the type matrix, apply with its guard, foreign-key order, hostile names
//! and values, --columns and --no-delete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgsalvage::apply::{apply, ApplySettings};
use pgsalvage::progress::NullReporter;
use pgsalvage::recover::{recover, RecoverOutcome, RecoverSettings};
use pgsalvage::settings::{RestoreSpec, VerifySettings};
use pgsalvage::source::conninfo::{resolve, ProcessEnv};

use crate::random::{damage, random_case, KeyShape, Rng};
use crate::support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn recover_into(base: &str, target: &str, out: &Path, spec: RestoreSpec) -> RecoverOutcome {
    let mut verify = settings(base, target);
    verify.restore = Some(spec);
    recover_with(verify, out, false)
}

/// Recovers with the given comparison settings (`restore` set) into `out`.
fn recover_with(verify: VerifySettings, out: &Path, parquet: bool) -> RecoverOutcome {
    let s = RecoverSettings {
        verify,
        out: out.to_path_buf(),
        parquet,
        force: false,
    };
    rt().block_on(recover(&s, Arc::new(NullReporter)))
        .unwrap_or_else(|e| panic!("recover: {e}"))
}

fn apply_dir(
    target: &str,
    dir: &Path,
    dry_run: bool,
    skip_changed: bool,
) -> pgsalvage::apply::ApplyReport {
    let s = ApplySettings {
        dir: dir.to_path_buf(),
        target: resolve(&url(target), &ProcessEnv).unwrap(),
        dry_run,
        skip_changed,
        lock_wait: std::time::Duration::from_secs(60),
    };
    rt().block_on(apply(&s))
        .unwrap_or_else(|e| panic!("apply: {e}"))
}

fn run_script(db: &str, path: PathBuf) {
    cluster()
        .psql_file(db, &path)
        .unwrap_or_else(|e| panic!("psql -f {}: {e}", path.display()));
}

/// restore.sql makes the target identical; undo.sql brings back exactly the original differences.
fn round_trip(base: &str, target: &str) {
    let before = found(&verify(base, target));
    assert!(!before.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recovery");
    let outcome = recover_into(base, target, &out, RestoreSpec::default());
    assert_eq!(outcome.report.exit_code, 1);
    run_script(target, out.join("restore.sql"));
    let after = verify(base, target);
    assert_eq!(found(&after), BTreeSet::new(), "restore left differences");
    assert_eq!(after.exit_code, 0);
    run_script(target, out.join("undo.sql"));
    assert_eq!(
        found(&verify(base, target)),
        before,
        "undo did not bring back the original state"
    );
}

#[test]
fn restore_and_undo_round_trip_over_random_damage() {
    for (seed, shape, ratio) in [
        (21, KeyShape::Bigint, 0.0001),
        (22, KeyShape::Composite, 0.01),
        (23, KeyShape::Uuid, 0.5),
        (24, KeyShape::Text, 0.1),
    ] {
        let case = random_case(seed, shape, ratio);
        let (base, target) = pair("rt_random", &crate::random::create_sql(&case));
        damage(&case, &target, &mut Rng::new(seed));
        round_trip(&base, &target);
    }
}

#[test]
fn restore_and_undo_round_trip_over_every_type() {
    let (base, target) = pair("rt_matrix", crate::types::MATRIX);
    let mut sql = String::from("DELETE FROM matrix WHERE id IN (1, 2, 3, 300);\n");
    for (i, (column, value)) in crate::types::CHANGES.iter().enumerate() {
        sql.push_str(&format!(
            "UPDATE matrix SET {column} = {value} WHERE id = {};\n",
            100 + i
        ));
    }
    sql.push_str("INSERT INTO matrix SELECT id + 1000, c_int2, c_int4, c_int8, c_num, c_num_s, c_f4, c_f8, c_text, c_varchar, c_bpchar, c_bytea, c_bool, c_date, c_time, c_timetz, c_ts, c_tstz, c_interval, c_uuid, c_json, c_jsonb, c_inet, c_cidr, c_enum, c_domain, c_int_arr, c_text_arr, c_num_2d, c_enum_arr, c_money, c_point, c_range FROM matrix WHERE id IN (4, 100, 301);\n");
    psql(&target, &sql);
    round_trip(&base, &target);
}

#[test]
fn apply_restores_guards_and_reverifies() {
    let case = random_case(31, KeyShape::Bigint, 0.01);
    let (base, target) = pair("apply", &crate::random::create_sql(&case));
    damage(&case, &target, &mut Rng::new(31));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let outcome = recover_into(&base, &target, &out, RestoreSpec::default());
    let planned =
        outcome.plan.totals.insert + outcome.plan.totals.update + outcome.plan.totals.delete;

    let dry = apply_dir(&target, &out, true, false);
    assert!(!dry.committed && dry.conflicts.is_empty());
    assert_eq!(dry.statements.iter().map(|s| s.rows).sum::<u64>(), planned);
    assert!(
        !found(&verify(&base, &target)).is_empty(),
        "a dry run changes nothing"
    );

    let applied = apply_dir(&target, &out, false, false);
    assert!(applied.committed, "{applied:?}");
    assert_eq!(applied.exit_code, 0, "{:?}", applied.reverify_mismatches);
    assert_eq!(applied.reverified_keys, planned);
    assert_eq!(verify(&base, &target).exit_code, 0);
}

#[test]
fn apply_refuses_rows_changed_since_the_diff() {
    let (base, target) = pair(
        "guard",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;",
    );
    psql(&target, "DELETE FROM t WHERE id IN (1, 2); UPDATE t SET v = 'bad' WHERE id IN (3, 4); INSERT INTO t VALUES (101, 'x'), (102, 'y');");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    recover_into(&base, &target, &out, RestoreSpec::default());
    // Legitimate writes after the diff, on rows the restore would touch.
    psql(&target, "UPDATE t SET v = 'newer' WHERE id = 3; INSERT INTO t VALUES (1, 'reborn'); DELETE FROM t WHERE id = 101;");

    let refused = apply_dir(&target, &out, false, false);
    assert_eq!(refused.exit_code, 2);
    assert!(!refused.committed);
    let keys: BTreeSet<String> = refused
        .conflicts
        .iter()
        .map(|c| c.key.get().to_string())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["[1]".to_string(), "[3]".to_string(), "[101]".to_string()])
    );
    assert_eq!(
        psql(&target, "SELECT v FROM t WHERE id = 4").trim(),
        "bad",
        "nothing was applied"
    );

    let skipped = apply_dir(&target, &out, false, true);
    assert!(skipped.committed);
    assert_eq!(skipped.conflicts.len(), 3);
    assert!(
        skipped.reverify_mismatches.is_empty(),
        "{:?}",
        skipped.reverify_mismatches
    );
    assert_eq!(
        psql(
            &target,
            "SELECT id, v FROM t WHERE id IN (1, 2, 3, 4, 101, 102) ORDER BY id"
        )
        .trim(),
        "1|reborn\n2|v2\n3|newer\n4|v4"
    );
}

#[test]
fn apply_finds_a_key_reinserted_since_the_diff_through_the_unique_index() {
    let (base, target) = pair(
        "guard_index",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE TABLE u (a int NOT NULL, v text);
         INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 100) g;",
    );
    psql(
        &target,
        "DELETE FROM t WHERE id IN (1, 2); DELETE FROM u WHERE a IN (1, 2);",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut verify = keyed_settings(&base, &target);
    verify.restore = Some(RestoreSpec::default());
    recover_with(verify, &out, false);

    // Only inserts are planned, and one of their keys is written again before the apply: on t the
    // primary key refuses the copy, on u (no unique index) the guard reads it ahead.
    psql(
        &target,
        "INSERT INTO t VALUES (1, 'reborn'); INSERT INTO u VALUES (2, 'reborn');",
    );
    let refused = apply_dir(&target, &out, false, false);
    assert_eq!(refused.exit_code, 2, "{refused:?}");
    assert!(!refused.committed);
    let keys: BTreeSet<(String, String)> = refused
        .conflicts
        .iter()
        .map(|c| (c.table.clone(), c.key.get().to_string()))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            ("public.t".to_string(), "[1]".to_string()),
            ("public.u".to_string(), "[2]".to_string())
        ])
    );
    assert_eq!(
        psql(&target, "SELECT count(*) FROM t").trim(),
        "99",
        "nothing applied"
    );

    // Without the reinserted rows the unique index of t is its guard, and u is read ahead.
    psql(
        &target,
        "DELETE FROM t WHERE id = 1; DELETE FROM u WHERE a = 2;",
    );
    let applied = apply_dir(&target, &out, false, false);
    assert!(applied.committed, "{applied:?}");
    assert_eq!(applied.index_guarded, ["public.t"]);
    assert_eq!(applied.reverified_keys, 4);
    assert!(applied.reverify_mismatches.is_empty());
    assert!(verify_keyed(&base, &target).is_empty());

    // Only the index-guarded table collides: the copy fails, the apply starts over and lists it.
    // (The directory is used again on purpose: its marker of the committed apply goes first.)
    std::fs::remove_file(out.join("applied.json")).unwrap();
    psql(
        &target,
        "DELETE FROM t WHERE id IN (1, 2); DELETE FROM u WHERE a IN (1, 2);",
    );
    psql(&target, "INSERT INTO t VALUES (2, 'reborn');");
    let refused = apply_dir(&target, &out, false, false);
    assert_eq!(refused.exit_code, 2);
    assert_eq!(refused.conflicts.len(), 1);
    assert_eq!(refused.conflicts[0].key.get(), "[2]");
    assert_eq!(
        psql(&target, "SELECT count(*) FROM u").trim(),
        "98",
        "nothing applied"
    );
}

#[test]
fn reverify_scans_dense_restores_and_rolls_back_rows_not_as_planned() {
    // `dense` has its restore on every page (180 rows written to about 2 pages): its inserts and
    // updates are re-verified by one scan of the rows the apply wrote. `sparse` (5 rows over
    // about 100 pages) is read back key by key, and so is `parted`, whose size is its
    // partitions' (the partitioned table itself has none).
    let (base, target) = pair(
        "reverify_scan",
        "CREATE TABLE dense (id int PRIMARY KEY, v text, n int);
         INSERT INTO dense SELECT g, 'd' || g, g FROM generate_series(1, 200) g;
         CREATE TABLE sparse (id int PRIMARY KEY, v text, n int);
         INSERT INTO sparse SELECT g, 's' || g, g FROM generate_series(1, 20000) g;
         CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10001);
         CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10001) TO (20001);
         INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 20000) g;",
    );
    psql(
        &target,
        "DELETE FROM dense WHERE id % 5 <> 0; UPDATE dense SET n = -n WHERE id % 10 = 0;
         DELETE FROM sparse WHERE id IN (7, 70, 700); UPDATE sparse SET n = -n WHERE id IN (8, 80);
         DELETE FROM dense WHERE id = 195; INSERT INTO dense VALUES (500, 'extra', 0);
         DELETE FROM parted WHERE id IN (5, 15000);",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    recover_into(&base, &target, &out, RestoreSpec::default());

    // A restore.sql that writes one inserted row and one updated row of `dense`, and one inserted
    // row of `sparse`, other than planned: each path names its key and nothing is committed.
    let script_path = out.join("restore.sql");
    let script = std::fs::read_to_string(&script_path).unwrap();
    let mut tampered = script.clone();
    for (planned, written) in [
        ("\n1\td1\t1\n", "\n1\tdX\t1\n"),
        ("\n10\td10\t10\n", "\n10\td10\t11\n"),
        ("\n7\ts7\t7\n", "\n7\tsX\t7\n"),
    ] {
        assert!(tampered.contains(planned), "{planned:?} in restore.sql");
        tampered = tampered.replacen(planned, written, 1);
    }
    std::fs::write(&script_path, &tampered).unwrap();
    // The seal refuses the edited script; sealed anew (as only a test does), the re-verify
    // behind the restore is what catches the rows.
    reseal(&out);
    let refused = apply_dir(&target, &out, false, false);
    assert_eq!(refused.exit_code, 2, "{refused:?}");
    assert!(!refused.committed);
    assert!(
        refused.scanned.is_empty(),
        "the scan of dense did not match"
    );
    let keys: BTreeSet<(String, String)> = refused
        .reverify_mismatches
        .iter()
        .map(|m| (m.table.clone(), m.key.get().to_string()))
        .collect();
    let expected = [
        ("public.dense", "[1]"),
        ("public.dense", "[10]"),
        ("public.sparse", "[7]"),
    ];
    assert_eq!(
        keys,
        expected
            .iter()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM dense").trim(), "40");

    // As written, the scan proves `dense` (its delete is read back by key) and the rest probes.
    std::fs::write(&script_path, &script).unwrap();
    reseal(&out);
    let applied = apply_dir(&target, &out, false, false);
    assert!(applied.committed, "{applied:?}");
    assert_eq!(applied.scanned, ["public.dense"]);
    assert!(applied.reverify_mismatches.is_empty());
    assert_eq!(applied.reverified_keys, 160 + 20 + 1 + 3 + 2 + 1 + 2);
    assert!(verify_keyed(&base, &target).is_empty());
}

/// Comparison settings with `--key public.u=a` (a table without a primary key).
fn keyed_settings(base: &str, target: &str) -> VerifySettings {
    let mut s = settings(base, target);
    s.keys.insert(
        pgsalvage::shape::TableName::new("public", "u"),
        vec!["a".to_string()],
    );
    s
}

/// The findings of a verify with `--key public.u=a`.
fn verify_keyed(base: &str, target: &str) -> BTreeSet<Found> {
    found(&verify_with(
        &keyed_settings(base, target),
        Arc::new(NullReporter),
    ))
}

#[test]
fn foreign_key_order_without_deferring_constraints() {
    let schema = "CREATE TABLE regions (id int PRIMARY KEY, name text);
         CREATE TABLE customers (id int PRIMARY KEY, region_id int NOT NULL REFERENCES regions, name text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, total numeric);
         INSERT INTO regions SELECT g, 'r' || g FROM generate_series(1, 5) g;
         INSERT INTO customers SELECT g, 1 + g % 5, 'c' || g FROM generate_series(1, 50) g;
         INSERT INTO orders SELECT g, 1 + g % 50, g FROM generate_series(1, 500) g;";
    let (base, target) = pair("fk", schema);
    psql(
        &target,
        "DELETE FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE region_id = 2);
         DELETE FROM customers WHERE region_id = 2;
         DELETE FROM regions WHERE id = 2;
         INSERT INTO regions VALUES (9, 'new');
         INSERT INTO customers VALUES (99, 9, 'new');
         INSERT INTO orders VALUES (999, 99, 1);
         UPDATE orders SET customer_id = 99 WHERE id = 7;",
    );
    round_trip(&base, &target);
}

#[test]
fn hostile_identifiers_and_values_apply_exactly() {
    let (base, target) = pair(
        "hostile",
        r#"CREATE TYPE "my ""mood""" AS ENUM ('it''s', 'a"b', 'tab	x', 'ünï');
           CREATE TABLE "Order ""Lines"", ünï" ("select" int, "key with space" text, "from" "my ""mood""", "val\ue" text, b bytea,
               PRIMARY KEY ("select", "key with space"));
           INSERT INTO "Order ""Lines"", ünï" VALUES
             (1, 'a''b', 'it''s', E'line1\nline2', '\x00'),
             (2, E'back\\slash', 'a"b', E'\\.\n\\.', '\x5c2e0a'),
             (3, 'tab	in', 'tab	x', E'\r\n;--', ''),
             (4, '\.', 'ünï', NULL, NULL),
             (5, ''';DROP TABLE x;--', 'it''s', 'Robert''); DROP TABLE students;--', '\xdeadbeef');"#,
    );
    psql(
        &target,
        r#"DELETE FROM "Order ""Lines"", ünï" WHERE "select" IN (1, 2, 4);
           UPDATE "Order ""Lines"", ünï" SET "val\ue" = 'x', "from" = 'ünï' WHERE "select" = 3;
           INSERT INTO "Order ""Lines"", ünï" VALUES (6, E'\\.', 'a"b', E'\\.', '\x2e');"#,
    );
    round_trip(&base, &target);
}

#[test]
fn columns_and_no_delete_limit_the_restore() {
    let (base, target) = pair(
        "partial",
        "CREATE TABLE t (id int PRIMARY KEY, status text, total int, note text);
         INSERT INTO t SELECT g, 's', g, 'n' FROM generate_series(1, 20) g;",
    );
    psql(
        &target,
        "UPDATE t SET status = NULL, note = 'legit' WHERE id <= 5;
         INSERT INTO t VALUES (21, 'new', 0, 'legit new');",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let spec = RestoreSpec {
        columns: [(
            pgsalvage::shape::TableName::new("public", "t"),
            vec!["status".to_string()],
        )]
        .into(),
        no_delete: true,
        ..RestoreSpec::default()
    };
    let outcome = recover_into(&base, &target, &out, spec);
    assert_eq!(
        (
            outcome.plan.totals.update,
            outcome.plan.totals.delete,
            outcome.plan.totals.keep
        ),
        (5, 0, 1)
    );
    let applied = apply_dir(&target, &out, false, false);
    assert_eq!(applied.exit_code, 0, "{:?}", applied.reverify_mismatches);
    assert_eq!(
        psql(
            &target,
            "SELECT count(*) FROM t WHERE status = 's' AND note = 'legit'"
        )
        .trim(),
        "5"
    );
    assert_eq!(
        psql(&target, "SELECT note FROM t WHERE id = 21").trim(),
        "legit new"
    );
}

#[test]
fn parquet_batches_hold_the_base_rows_exactly() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let (base, target) = pair(
        "pq",
        "CREATE TABLE t (id bigint PRIMARY KEY, n numeric(12,2), s text, ts timestamptz, u uuid, b bytea, f float8);
         INSERT INTO t SELECT g, g * 1.25, 'row ' || g || E' \\u00e9\\t\"', timestamptz '2024-02-29 12:00:00.123456+00' + g * interval '1 day',
                md5(g::text)::uuid, decode(md5(g::text), 'hex'), g / 3.0 FROM generate_series(1, 200) g;
         INSERT INTO t VALUES (1000, NULL, NULL, NULL, NULL, NULL, 'NaN'), (1001, -9999999999.99, '', '-infinity', '00000000-0000-0000-0000-000000000000', '', '-0');",
    );
    psql(&target, "DELETE FROM t WHERE id % 10 = 0 OR id >= 1000; UPDATE t SET s = 'damaged' WHERE id % 10 = 5; INSERT INTO t (id) VALUES (5000);");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut verify = settings(&base, &target);
    verify.restore = Some(RestoreSpec::default());
    recover_with(verify, &out, true);

    let file = std::fs::File::open(out.join("parquet/0000_public.t.parquet"))
        .expect("the table's Parquet file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let named: Vec<(String, Option<String>)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| kv.key.starts_with("pgsalvage."))
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert_eq!(
        named,
        [
            ("pgsalvage.schema".to_string(), Some("public".to_string())),
            ("pgsalvage.table".to_string(), Some("t".to_string()))
        ]
    );
    let reader = builder.build().unwrap();
    let mut got = BTreeSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let (id, n, s, ts) = (col("id"), col("n"), col("s"), col("ts"));
        let (u, b, f, action, class) = (
            col("u"),
            col("b"),
            col("f"),
            col("__action"),
            col("__class"),
        );
        for i in 0..batch.num_rows() {
            let opt = |a: &arrow_array::ArrayRef, render: &dyn Fn(usize) -> String| {
                if a.is_null(i) {
                    "NULL".to_string()
                } else {
                    render(i)
                }
            };
            got.insert(vec![
                id.as_primitive::<Int64Type>().value(i).to_string(),
                opt(&n, &|i| {
                    n.as_primitive::<Decimal128Type>().value(i).to_string()
                }),
                opt(&s, &|i| s.as_string::<i32>().value(i).to_string()),
                opt(&ts, &|i| {
                    ts.as_primitive::<TimestampMicrosecondType>()
                        .value(i)
                        .to_string()
                }),
                opt(&u, &|i| {
                    u.as_fixed_size_binary()
                        .value(i)
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect()
                }),
                opt(&b, &|i| {
                    b.as_binary::<i32>()
                        .value(i)
                        .iter()
                        .map(|x| format!("{x:02x}"))
                        .collect()
                }),
                opt(&f, &|i| {
                    format!(
                        "{:016x}",
                        f.as_primitive::<Float64Type>().value(i).to_bits()
                    )
                }),
                action.as_string::<i32>().value(i).to_string(),
                class.as_string::<i32>().value(i).to_string(),
            ]);
        }
    }
    // The same rows computed by PostgreSQL from the base: decimals as unscaled integers, timestamps
    // as microseconds since 1970 (-infinity as Arrow's minimum + 1, the sentinel DuckDB reads),
    // floats as their bits.
    let want_sql = "SELECT id, coalesce((n * 100)::bigint::text, 'NULL'), coalesce(s, 'NULL'),
            coalesce(CASE WHEN ts = '-infinity' THEN (-9223372036854775807)::text ELSE ((extract(epoch FROM ts) * 1000000)::bigint)::text END, 'NULL'),
            coalesce(replace(u::text, '-', ''), 'NULL'), coalesce(encode(b, 'hex'), 'NULL'), encode(float8send(f), 'hex'),
            CASE WHEN id % 10 = 5 THEN 'update' ELSE 'insert' END, CASE WHEN id % 10 = 5 THEN 'divergent' ELSE 'missing' END
       FROM t WHERE id % 10 IN (0, 5) OR id >= 1000";
    let mut want: BTreeSet<Vec<String>> = psql(&base, &format!("COPY ({want_sql}) TO STDOUT"))
        .lines()
        .map(|l| l.split('\t').map(|v| v.replace("\\t", "\t")).collect())
        .collect();
    want.insert(
        [
            "5000", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "delete", "extra",
        ]
        .map(String::from)
        .to_vec(),
    );
    assert_eq!(got, want);
}

#[test]
fn identity_and_generated_columns_round_trip() {
    let (base, target) = pair(
        "gen",
        "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, price numeric NOT NULL,
                         qty int NOT NULL, total numeric GENERATED ALWAYS AS (price * qty) STORED);
         INSERT INTO t (price, qty) SELECT g * 1.5, g FROM generate_series(1, 100) g;",
    );
    psql(&target, "DELETE FROM t WHERE id IN (3, 4); UPDATE t SET qty = 0 WHERE id = 7; INSERT INTO t (price, qty) VALUES (1, 1);");
    round_trip(&base, &target);
}

/// Seals a recovery directory's files into its plan again, as recover does: only for tests
/// that edit a script on purpose to reach the checks behind the seal.
pub fn reseal(dir: &Path) {
    let path = dir.join("plan.json");
    let mut plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let files = pgsalvage::seal::seal_dir(dir, &["plan.json", "applied.json", ".applied.json.tmp"])
        .unwrap();
    plan["files"] = serde_json::to_value(files).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
}
