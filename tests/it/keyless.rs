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
    }
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

#[test]
fn recover_refuses_a_keyless_table_it_cannot_restore_and_restores_the_rest() {
    let (base, target) = pair("keyless_recover", LOG);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out = out.to_str().unwrap();
    let (b, t) = (url(&base), url(&target));
    let recover = ["recover", "--base", &b, "--target", &t, "--out", out, "-q"];
    // Keyless tables identical, a keyed row lost: the recovery is written and applies.
    psql(&target, "DELETE FROM keyed WHERE id = 5");
    let got = pgsalvage(&recover);
    assert_eq!(got.status.code(), Some(1), "{}", text(&got.stderr));
    let got = pgsalvage(&["apply", out, "--target", &t, "-q"]);
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    // A keyless copy lost: refused, naming the table and its counts, nothing written.
    psql(
        &target,
        "DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE a = 3 LIMIT 1)",
    );
    let again = dir.path().join("r2");
    let again = again.to_str().unwrap();
    let got = pgsalvage(&[
        "recover", "--base", &b, "--target", &t, "--out", again, "-q",
    ]);
    let stderr = text(&got.stderr);
    assert_eq!(got.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("keyless tables differ")
            && stderr.contains("public.log (1 missing, 0 extra copies)"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(again).exists());
}
