//! Tables without a key, compared as multisets: every copy of every row counted, duplicates and
//! NULLs included, against counts computed independently here by `GROUP BY` on each side.

use std::collections::BTreeMap;

use serde_json::Value;

use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use pgsalvage::source::Role;

use crate::random::Rng;
use crate::support::*;

/// Per row content (as normalized JSON), how many copies `db` holds.
fn copies(db: &str, table: &str, columns: &str) -> BTreeMap<String, i64> {
    let out = psql(
        db,
        &format!(
            "SELECT json_build_array({columns})::text, count(*) FROM {table} GROUP BY {columns}"
        ),
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (row, n) = l.rsplit_once('|').expect("row|count");
            (normal(row), n.trim().parse().unwrap())
        })
        .collect()
}

fn normal(json: &str) -> String {
    serde_json::from_str::<Value>(json)
        .unwrap_or_else(|e| panic!("{json}: {e}"))
        .to_string()
}

/// Copies of each row content the report says are missing or extra (by kind).
fn reported(
    report: &pgsalvage::report::VerifyReport,
    table: &str,
) -> BTreeMap<(String, String), i64> {
    assert!(!report.findings_truncated);
    let mut out = BTreeMap::new();
    for f in report.findings.iter().filter(|f| f.table == table) {
        *out.entry((normal(f.key.get()), f.kind.to_string()))
            .or_default() += 1;
    }
    out
}

/// What the report must say: per content, the base's surplus as missing, the target's as extra.
fn expected(
    base: &BTreeMap<String, i64>,
    target: &BTreeMap<String, i64>,
) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for row in base.keys().chain(target.keys()) {
        let (b, t) = (
            base.get(row).copied().unwrap_or(0),
            target.get(row).copied().unwrap_or(0),
        );
        if b > t {
            out.insert((row.clone(), "missing".into()), b - t);
        } else if t > b {
            out.insert((row.clone(), "extra".into()), t - b);
        }
    }
    out
}

const LOG: &str = "
    CREATE TABLE log (a int, b text, c bool);
    INSERT INTO log SELECT g % 40, CASE WHEN g % 9 = 0 THEN NULL ELSE 'm' || (g % 25) END,
                           CASE WHEN g % 11 = 0 THEN NULL ELSE g % 2 = 0 END
      FROM generate_series(1, 3000) g;
    CREATE TABLE keyed (id int PRIMARY KEY, v text);
    INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 200) g;
    ANALYZE;";

#[test]
fn random_damage_to_a_keyless_table_is_found_copy_by_copy() {
    for seed in 1..=3u64 {
        let (base, target) = pair("keyless", LOG);
        if seed == 3 {
            // Another physical order on the target: copies meet far apart in the streams.
            psql(
                &target,
                "CREATE TABLE tmp AS SELECT * FROM log ORDER BY random();
                 TRUNCATE log; INSERT INTO log SELECT * FROM tmp; DROP TABLE tmp",
            );
        }
        let mut rng = Rng::new(seed);
        let ratio = [1, 20, 300][seed as usize - 1];
        for _ in 0..ratio {
            let a = rng.below(45);
            let b = match rng.below(5) {
                0 => "NULL".to_string(),
                _ => format!("'m{}'", rng.below(27)),
            };
            match rng.below(3) {
                // One copy of some row with this `a` goes (duplicates lose one copy).
                0 => psql(&target, &format!(
                    "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = {a} LIMIT 1)"
                )),
                // A copy of an existing row, or a row no side has.
                1 => psql(&target, &format!("INSERT INTO log SELECT * FROM log WHERE a = {a} LIMIT 1;
                     INSERT INTO log VALUES ({a}, {b}, NULL)")),
                _ => psql(&target, &format!(
                    "UPDATE log SET b = {b} WHERE ctid = (SELECT ctid FROM log WHERE a = {a} LIMIT 1)"
                )),
            };
        }
        let report = verify(&base, &target);
        let cols = "a, b, c";
        let want = expected(&copies(&base, "log", cols), &copies(&target, "log", cols));
        assert!(!want.is_empty(), "seed {seed}: the damage changed nothing");
        assert_eq!(reported(&report, "public.log"), want, "seed {seed}");
        let t = report
            .tables
            .iter()
            .find(|t| t.table == "public.log")
            .unwrap();
        assert!(t.keyless);
        let count = |kind: &str| {
            want.iter()
                .filter(|((_, k), _)| k == kind)
                .map(|(_, n)| *n as u64)
                .sum::<u64>()
        };
        assert_eq!(
            (t.missing, t.extra, t.divergent),
            (count("missing"), count("extra"), 0)
        );
        let keyed = report
            .tables
            .iter()
            .find(|t| t.table == "public.keyed")
            .unwrap();
        assert!(!keyed.keyless);
        assert_eq!(keyed.missing + keyed.extra + keyed.divergent, 0);
        // A window too small for the copies waiting (every copy goes to disk, or some): the same
        // findings, the keys of those let go of read again by their place in the stream.
        for window in [0, 2048] {
            let mut s = settings(&base, &target);
            s.keyless_window = window;
            let small = verify_with(&s, std::sync::Arc::new(pgsalvage::progress::NullReporter));
            assert_eq!(
                findings_of(&small, "public.log"),
                findings_of(&report, "public.log"),
                "seed {seed}, window {window}"
            );
            assert_eq!(
                reported(&small, "public.log"),
                want,
                "seed {seed}, window {window}"
            );
        }
    }
}

/// A table's findings as (key, kind), in the report's order.
fn findings_of(report: &pgsalvage::report::VerifyReport, table: &str) -> Vec<(String, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.table == table)
        .map(|f| (normal(f.key.get()), f.kind.to_string()))
        .collect()
}

#[test]
fn keyless_tables_equal_as_multisets_are_identical_whatever_their_physical_order() {
    let (base, target) = pair("keyless_same", LOG);
    // Same rows, another order and other ctids: rewrite the target's table.
    psql(
        &target,
        "CREATE TABLE tmp AS SELECT * FROM log ORDER BY random();
                   TRUNCATE log; INSERT INTO log SELECT * FROM tmp; DROP TABLE tmp",
    );
    let report = verify(&base, &target);
    let t = report
        .tables
        .iter()
        .find(|t| t.table == "public.log")
        .unwrap();
    assert_eq!(
        (t.missing, t.extra, t.divergent),
        (0, 0, 0),
        "{:?}",
        report.findings
    );
    assert_eq!(t.rows.values().collect::<Vec<_>>(), [&3000, &3000]);
    assert_eq!(
        t.roots
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    // One duplicate fewer is one missing copy, named by its values.
    psql(
        &target,
        "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = 5 AND b = 'm5' LIMIT 1)",
    );
    let report = verify(&base, &target);
    let want = expected(
        &copies(&base, "log", "a, b, c"),
        &copies(&target, "log", "a, b, c"),
    );
    assert_eq!(want.len(), 1);
    assert_eq!(reported(&report, "public.log"), want);
}

#[test]
fn a_baseline_holds_a_keyless_table_as_its_multiset() {
    let (base, target) = pair("keyless_baseline", LOG);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("b");
    let saved = saved.to_str().unwrap();
    let run = |args: &[&str], want: i32| {
        let out = pgsalvage(args);
        assert_eq!(
            out.status.code(),
            Some(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    run(
        &[
            "baseline",
            "--source",
            &url(&base),
            "--out",
            saved,
            "--rows",
            "-q",
        ],
        0,
    );
    // The same multiset in another physical order: identical.
    psql(
        &target,
        "CREATE TABLE tmp AS SELECT * FROM log ORDER BY random();
                   TRUNCATE log; INSERT INTO log SELECT * FROM tmp; DROP TABLE tmp",
    );
    let json = dir.path().join("r.json");
    let json = json.to_str().unwrap();
    run(
        &[
            "verify",
            "--base",
            saved,
            "--target",
            &url(&target),
            "-q",
            "--json",
            json,
        ],
        0,
    );
    // One duplicate copy fewer: the table differs, in one span of digests.
    psql(
        &target,
        "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = 7 LIMIT 1)",
    );
    run(
        &[
            "verify",
            "--base",
            saved,
            "--target",
            &url(&target),
            "-q",
            "--json",
            json,
        ],
        1,
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let log = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.log")
        .unwrap();
    assert_eq!(log["keyless"], true, "{log:#}");
    assert_eq!(log["status"], "differences", "{log:#}");
    assert_eq!(log["rows"]["base"], 3000, "{log:#}");
    assert_eq!(log["rows"]["target"], 2999, "{log:#}");
    assert_eq!(log["spans"]["count"], 1, "{log:#}");
    let keyed = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.keyed")
        .unwrap();
    assert_eq!(keyed["status"], "identical", "{keyed:#}");
}

#[test]
fn three_way_classes_count_copies() {
    let base = fresh_db("keyless3_base");
    psql(
        &base,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('a'), ('a'), ('b'), ('c');",
    );
    let replica = format!("{base}_replica");
    let target = format!("{base}_target");
    for db in [&replica, &target] {
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{db}\" TEMPLATE \"{base}\""),
        );
    }
    // Since the backup: a third 'a' and a 'd' were written legitimately (replica and target).
    for db in [&replica, &target] {
        psql(db, "INSERT INTO t VALUES ('a'), ('d')");
    }
    // The damage, on the target only: two copies of 'a' and the 'b' lost, an 'e' appeared.
    psql(
        &target,
        "DELETE FROM t WHERE ctid IN (SELECT ctid FROM t WHERE v = 'a' LIMIT 2);
                   DELETE FROM t WHERE v = 'b'; INSERT INTO t VALUES ('e')",
    );
    let mut s = settings(&base, &target);
    let replica_info = resolve(&url(&replica), &ProcessEnv).unwrap();
    s.sources.insert(1, (Role::Replica, replica_info));
    let report = verify_with(&s, std::sync::Arc::new(pgsalvage::progress::NullReporter));
    let t = report
        .tables
        .iter()
        .find(|t| t.table == "public.t")
        .unwrap();
    assert!(t.keyless);
    // 'a': base 2, replica 3, target 1: copy 1 lost, copy 2 a lost new row; 'b' lost;
    // 'd' new since the backup; 'e' new on the target.
    let classes: Vec<(&str, u64)> = t.classes.iter().map(|(c, n)| (*c, *n)).collect();
    assert_eq!(
        classes,
        [
            ("lost", 2),
            ("lost_new_row", 1),
            ("new_on_target", 1),
            ("new_since_backup", 1)
        ],
        "{:?}",
        report.findings
    );
    // As for keyed rows, a row new on the target only is no damage by default (kept).
    assert_eq!((t.missing, t.extra, t.divergent), (3, 0, 0));
}

/// Keyless tables of awkward types, with duplicates and NULLs: floats whose text forms are
/// easy to confuse (-0, NaN, 0.1), json (no equality operator), numerics of different scale.
const ODD: &str = "
    CREATE TABLE odd (f float8, j json, n numeric, arr int[], t text);
    INSERT INTO odd SELECT (ARRAY[0::float8, '-0', 'NaN', 0.1, 1e300, NULL])[1 + g % 6],
                           (ARRAY['{\"a\": 1}', '{\"a\":1}', '[]', NULL])[1 + g % 4]::json,
                           (ARRAY[1.0, 1.00, 1, NULL])[1 + g % 4]::numeric,
                           CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY[g % 3, NULL] END,
                           'r' || (g % 7)
      FROM generate_series(1, 600) g;";

/// Random damage to both keyless tables of `target`: lost copies, added copies of existing
/// rows, new rows, and values changed in place.
fn damage_copies(target: &str, rng: &mut Rng, times: u64) {
    for _ in 0..times {
        let (a, m) = (rng.below(45), rng.below(7));
        let sql = match rng.below(5) {
            0 => format!("DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = {a} LIMIT 1)"),
            1 => format!("INSERT INTO log SELECT * FROM log WHERE a = {a} LIMIT 2; INSERT INTO log VALUES ({a}, NULL, NULL)"),
            2 => format!("UPDATE log SET c = NOT c WHERE ctid = (SELECT ctid FROM log WHERE a = {a} LIMIT 1)"),
            3 => format!("DELETE FROM odd WHERE ctid IN (SELECT ctid FROM odd WHERE t = 'r{m}' LIMIT 3)"),
            _ => format!("INSERT INTO odd SELECT * FROM odd WHERE t = 'r{m}' LIMIT 1; UPDATE odd SET f = '-0' WHERE ctid = (SELECT ctid FROM odd WHERE t = 'r{m}' AND f = 0 LIMIT 1)"),
        };
        psql(target, &sql);
    }
}

const LOG_COLS: &str = "a, b, c";
/// As the comparison's equality has it: float `-0` = `0` (`f + 0` is `0` for both), numeric
/// scale not significant, json by its jsonb meaning (`{"a":1}` = `{"a": 1}`).
const ODD_COLS: &str = "(f + 0)::text, j::jsonb::text, trim_scale(n)::text, arr::text, t";

fn all_copies(db: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    (copies(db, "log", LOG_COLS), copies(db, "odd", ODD_COLS))
}

type Counts = BTreeMap<String, i64>;

/// The contents whose counts differ: (row, left, right).
fn count_diff(left: &(Counts, Counts), right: &(Counts, Counts)) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for (l, r) in [(&left.0, &right.0), (&left.1, &right.1)] {
        for row in l
            .keys()
            .chain(r.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (a, b) = (
                l.get(row).copied().unwrap_or(0),
                r.get(row).copied().unwrap_or(0),
            );
            if a != b {
                out.push((row.clone(), a, b));
            }
        }
    }
    out
}

#[test]
fn keyless_copies_recover_apply_and_undo_exactly_over_random_damage() {
    for seed in 1..=3u64 {
        let (base, target) = pair(&format!("keyless_rt{seed}"), &format!("{LOG}{ODD}"));
        damage_copies(
            &target,
            &mut Rng::new(seed),
            [3, 30, 200][seed as usize - 1],
        );
        let damaged = all_copies(&target);
        assert_ne!(damaged, all_copies(&base), "seed {seed}: no damage");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let out_s = out.to_str().unwrap();
        let (b, t) = (url(&base), url(&target));
        let extra = ["--delete-extra", "--format", "sql,parquet"];
        let got = recover_bin(&base, &target, out_s, &extra);
        assert_eq!(got.status.code(), Some(1), "{}", text(&got.stderr));
        let plan: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
        let tables = plan["tables"].as_array().unwrap();
        assert!(tables.iter().all(|t| t["keyless"] == true), "{tables:?}");
        assert!(out.join("parquet").read_dir().unwrap().count() >= 1);
        let got = pgsalvage(&["apply", out_s, "--target", &t]);
        let said = text(&got.stdout);
        assert_eq!(
            got.status.code(),
            Some(0),
            "seed {seed}: {said}{}",
            text(&got.stderr)
        );
        assert!(said.contains("committed"), "{said}");
        // The target holds exactly the base's copies again, by an independent count and by
        // verify.
        let off = count_diff(&all_copies(&target), &all_copies(&base));
        assert!(off.is_empty(), "seed {seed}: (row, target, base) {off:?}");
        let got = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
        assert_eq!(
            got.status.code(),
            Some(0),
            "seed {seed}: {}",
            text(&got.stdout)
        );
        // undo.sql puts every copy back as the damage left it.
        cluster().psql_file(&target, &out.join("undo.sql")).unwrap();
        let off = count_diff(&all_copies(&target), &damaged);
        assert!(
            off.is_empty(),
            "seed {seed}: undo: (row, target, damaged) {off:?}"
        );
    }
}

#[test]
fn apply_guards_keyless_copies_by_their_count_and_keeps_target_only_copies_by_default() {
    let (base, target) = pair("keyless_guard", LOG);
    psql(
        &target,
        "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = 3 LIMIT 1);
         INSERT INTO log VALUES (99, 'new', true), (99, 'new', true)",
    );
    let dir = tempfile::tempdir().unwrap();
    let (b, t) = (url(&base), url(&target));
    let out = dir.path().join("r");
    let out = out.to_str().unwrap();
    let got = pgsalvage(&["recover", "--base", &b, "--target", &t, "--out", out, "-q"]);
    assert_eq!(got.status.code(), Some(1), "{}", text(&got.stderr));
    // Another copy of the row to restore went meanwhile: the plan's count no longer holds
    // (one more copy of it appearing instead would make the plan "already applied").
    let lost = psql(
        &base,
        "SELECT a, quote_nullable(b), quote_nullable(c) FROM log WHERE a = 3 LIMIT 1",
    );
    let v: Vec<&str> = lost.trim().split('|').collect();
    let vals = format!("({}, {}, {})", v[0], v[1], v[2]);
    let row_of = |db: &str| copies(db, "log", LOG_COLS);
    let before = row_of(&base);
    psql(&target, &format!("DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE ROW(a, b, c) IS NOT DISTINCT FROM ROW{vals} LIMIT 1)"));
    for skip in [false, true] {
        let mut args = vec!["apply", out, "--target", &t];
        if skip {
            args.push("--skip-changed");
        }
        let got = pgsalvage(&args);
        let said = format!("{}{}", text(&got.stdout), text(&got.stderr));
        assert_eq!(got.status.code(), Some(2), "{said}");
        assert!(said.contains("copies expected"), "{said}");
    }
    // Back as at diff time: the plan applies; the target-only copies stay (no --delete-extra).
    psql(&target, &format!("INSERT INTO log VALUES {vals}"));
    let got = pgsalvage(&["apply", out, "--target", &t, "-q"]);
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    let mut want = before;
    *want.entry(normal("[99,\"new\",true]")).or_default() += 2;
    assert_eq!(row_of(&target), want);
}

/// A keyless row is read back by its place in the comparison's snapshot; after a rewrite that
/// place can hold another row, so the read refuses a table whose files changed since the snapshot.
#[test]
fn reading_by_place_refuses_a_table_rewritten_since_the_snapshot() {
    let db = fresh_db("klrw");
    psql(
        &db,
        "CREATE TABLE log (a int, b text);
         INSERT INTO log SELECT g % 7, 'r' || g FROM generate_series(1, 200) g;
         CREATE TABLE other (a int)",
    );
    let info = resolve(&url(&db), &ProcessEnv).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let source = pgsalvage::source::Source::open(Role::Base, info)
            .await
            .unwrap();
        let name = |t: &str| pgsalvage::shape::TableName::new("public", t);
        psql(&db, "DELETE FROM log WHERE a = 3; VACUUM FULL log");
        let session = source
            .snapshot_session(std::time::Duration::from_secs(5))
            .await
            .unwrap();
        pgsalvage::source::visit::hold_snapshot_files(&session, &name("other"))
            .await
            .expect("an untouched table is read by place");
        let err = pgsalvage::source::visit::hold_snapshot_files(&session, &name("log"))
            .await
            .expect_err("a rewritten table must not be read by place");
        let said = err.to_string();
        assert!(
            said.contains("public.log") && said.contains("rewritten"),
            "{said}"
        );
    });
}
