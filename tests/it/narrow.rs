//! Narrow-first reads (`--narrow`, issue 23): keys and server-side row hashes, full rows only for
//! the keys that differ, must find exactly what a full read finds: the same keys, classes and
//! columns, on the type matrix (values PostgreSQL calls equal with other texts, every single
//! change, extremes, migrations within a type family) and on random damage.

use std::collections::BTreeSet;
use std::sync::Arc;

use pgsalvage::progress::NullReporter;
use pgsalvage::report::VerifyReport;

use crate::random::{create_sql, damage, random_case, KeyShape, Rng};
use crate::support::*;
use crate::types::{CHANGES, MATRIX};

fn run(base: &str, target: &str, narrow: bool, jobs: usize) -> VerifyReport {
    let mut s = settings(base, target);
    s.narrow = narrow;
    s.jobs = jobs;
    verify_with(&s, Arc::new(NullReporter))
}

/// The narrow run's answer is the full run's: findings, per-table counts and column counts.
fn assert_same(base: &str, target: &str) -> BTreeSet<Found> {
    let full = run(base, target, false, 2);
    let narrow = run(base, target, true, 2);
    let (f, n) = (found(&full), found(&narrow));
    let missed: Vec<_> = f.difference(&n).take(5).collect();
    let spurious: Vec<_> = n.difference(&f).take(5).collect();
    assert!(
        missed.is_empty() && spurious.is_empty(),
        "narrow missed {missed:#?}\nnarrow spurious {spurious:#?}"
    );
    assert_eq!(narrow.exit_code, full.exit_code);
    assert!(
        narrow.tables.iter().all(|t| t.narrow),
        "every table was read narrow"
    );
    assert!(!full.tables.iter().any(|t| t.narrow));
    assert_eq!(narrow.totals.classes, full.totals.classes);
    for (a, b) in full.tables.iter().zip(&narrow.tables) {
        assert_eq!(
            (a.missing, a.extra, a.divergent, &a.rows),
            (b.missing, b.extra, b.divergent, &b.rows),
            "{}",
            a.table
        );
        let cols = |t: &pgsalvage::report::TableReport| {
            t.divergent_columns
                .iter()
                .map(|c| (c.column.clone(), c.rows))
                .collect::<Vec<_>>()
        };
        assert_eq!(cols(a), cols(b), "{}", a.table);
    }
    f
}

#[test]
fn narrow_reads_find_what_full_reads_find_on_the_type_matrix() {
    let (base, target) = pair("narrow_matrix", MATRIX);
    let mut sql = String::new();
    for (i, (column, value)) in CHANGES.iter().enumerate() {
        sql.push_str(&format!(
            "UPDATE matrix SET {column} = {value} WHERE id = {};\n",
            100 + i
        ));
    }
    // Equal to PostgreSQL and to the canonical encoding, in other texts: never a difference.
    sql.push_str(
        "UPDATE matrix SET c_num = 3000.0 WHERE id = 140;
         UPDATE matrix SET c_f8 = '-0' WHERE id = 141 AND c_f8 = 0;
         UPDATE matrix SET c_jsonb = '{\"a\": [1.0, 2.00]}' WHERE id = 142;
         UPDATE matrix SET c_bpchar = 'ab      ' WHERE id = 143;
         UPDATE matrix SET c_num = 'NaN' WHERE id = 4;
         UPDATE matrix SET c_cidr = '10.0.0.0/8' WHERE id = 144;
         UPDATE matrix SET c_f4 = 'NaN', c_f8 = 'NaN' WHERE id = 3;
         UPDATE matrix SET c_text = NULL, c_bytea = NULL WHERE id = 2;
         UPDATE matrix SET c_int_arr = '{}' WHERE id = 1;",
    );
    psql(&target, &sql);
    let found = assert_same(&base, &target);
    assert!(found.len() >= CHANGES.len(), "{found:#?}");
    // Each single change is named by its own column, as a full read names it.
    for (i, (column, _)) in CHANGES.iter().enumerate() {
        let key = format!("[{}]", 100 + i);
        assert!(
            found.iter().any(|f| f.1 == key && f.3 == *column),
            "{column} on {key}: {found:#?}"
        );
    }
}

#[test]
fn narrow_reads_compare_within_a_type_family_by_value() {
    let (base, target) = pair(
        "narrow_family",
        "CREATE TABLE t (id integer PRIMARY KEY, a integer, b varchar(20), c real, d cidr, e char(5), f smallint[], g numeric(10,2), h jsonb);
         INSERT INTO t SELECT x, x * 1000, 'v' || x, x / 3.0, '10.0.0.0/8', 'x', ARRAY[x, -x], x / 7.0, jsonb_build_object('k', x)
           FROM generate_series(1, 500) x;
         INSERT INTO t VALUES (501, NULL, NULL, '-0', NULL, NULL, '{}', NULL, NULL);",
    );
    psql(
        &target,
        "ALTER TABLE t ALTER COLUMN id TYPE bigint, ALTER COLUMN a TYPE bigint, ALTER COLUMN b TYPE text,
           ALTER COLUMN c TYPE double precision, ALTER COLUMN d TYPE inet, ALTER COLUMN e TYPE text,
           ALTER COLUMN f TYPE bigint[], ALTER COLUMN g TYPE numeric(12,4);
         UPDATE t SET a = a + 1 WHERE id = 7;
         UPDATE t SET h = '{\"k\": 0}' WHERE id = 9;
         UPDATE t SET g = g + 0.0001 WHERE id = 11;",
    );
    // real → double precision widens exactly, numeric(10,2) → numeric(12,4) keeps values,
    // char → text drops the padding: only the three updates differ.
    assert_eq!(
        assert_same(&base, &target),
        BTreeSet::from([
            finding("public.t", "[7]", "divergent", "a"),
            finding("public.t", "[9]", "divergent", "h"),
            finding("public.t", "[11]", "divergent", "g"),
        ])
    );
}

#[test]
fn narrow_reads_equal_full_reads_and_the_truth_on_random_damage() {
    for (seed, shape, ratio) in [
        (31, KeyShape::Bigint, 0.001),
        (32, KeyShape::Composite, 0.01),
        (33, KeyShape::Text, 0.05),
        (34, KeyShape::Uuid, 0.2),
    ] {
        let case = random_case(seed, shape, ratio);
        let mut rng = Rng::new(seed);
        let (base, target) = pair("narrow_random", &create_sql(&case));
        let want = damage(&case, &target, &mut rng);
        for jobs in [1, 4] {
            let got = found(&run(&base, &target, true, jobs));
            let missed: Vec<_> = want.difference(&got).take(5).collect();
            let spurious: Vec<_> = got.difference(&want).take(5).collect();
            assert!(
                missed.is_empty() && spurious.is_empty(),
                "seed {seed} {shape:?} jobs {jobs}: missed {missed:?}, spurious {spurious:?}"
            );
        }
        assert_same(&base, &target);
    }
}

#[test]
fn narrow_auto_reads_local_sources_in_full_and_says_which_tables_were_narrow() {
    let (base, target) = pair(
        "narrow_auto",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE TABLE j (id int PRIMARY KEY, doc json); INSERT INTO j VALUES (1, '{}');",
    );
    psql(&target, "UPDATE t SET v = 'x' WHERE id = 5;");
    let (b, t) = (url(&base), url(&target));
    let table_narrow = |flags: &[&str]| -> Vec<(String, bool)> {
        let mut args = vec!["verify", "--base", &b, "--target", &t, "-q", "--json", "-"];
        args.extend(flags);
        let out = pgsalvage(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["table"].as_str().unwrap().to_string(),
                    t["narrow"] == true,
                )
            })
            .collect()
    };
    // Both sources are on this machine: auto reads them in full.
    let full = vec![
        ("public.j".to_string(), false),
        ("public.t".to_string(), false),
    ];
    assert_eq!(table_narrow(&["--narrow", "auto"]), full);
    // On: t narrow; j has nothing the server can hash (json travels whole), so it is read in full.
    let on = vec![
        ("public.j".to_string(), false),
        ("public.t".to_string(), true),
    ];
    assert_eq!(table_narrow(&["--narrow"]), on);
}
