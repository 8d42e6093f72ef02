//! Checksum baselines on real clusters: take, compare against a database and another baseline,
//! schema changes, corruption, an independent Parquet reader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{fresh_db, pgsalvage, psql, text, url};

const SCHEMA: &str = "
CREATE TABLE items (id bigint PRIMARY KEY, label text, price numeric(12,2), tags text[]);
INSERT INTO items SELECT g, 'item ' || g, g * 1.25, ARRAY['t' || (g % 7)] FROM generate_series(1, 20000) g;
CREATE TABLE pairs (a int, b text, note text, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g % 300, 'k' || g, 'n' || g FROM generate_series(1, 3000) g;
ANALYZE;";

/// Deletes, updates and inserts on `items`; returns the truth: key → kind.
const DAMAGE: &str = "
DELETE FROM items WHERE id % 97 = 3;
UPDATE items SET price = price + 1 WHERE id % 101 = 5;
UPDATE items SET label = NULL WHERE id % 211 = 7;
INSERT INTO items SELECT g, 'new ' || g, 1, NULL FROM generate_series(30000, 30040) g;";

fn truth() -> Vec<(i64, &'static str)> {
    let mut t = Vec::new();
    for id in 1..=20000i64 {
        if id % 97 == 3 {
            t.push((id, "missing"));
        } else if id % 101 == 5 || id % 211 == 7 {
            t.push((id, "divergent"));
        }
    }
    t.extend((30000..=30040).map(|id| (id, "extra")));
    t
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pgsalvage-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn take(db: &str, out: &Path, extra: &[&str]) {
    let source = url(db);
    let mut args = vec![
        "baseline",
        "--source",
        &source,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("-q");
    let run = pgsalvage(&args);
    assert_eq!(
        run.status.code(),
        Some(0),
        "baseline failed: {}",
        text(&run.stderr)
    );
}

/// Runs verify with a JSON report; returns (exit code, report, stderr).
fn verify(base: &str, target: &str, dir: &Path) -> (i32, Value, String) {
    verify_with_args(base, target, dir, &[])
}

fn verify_with_args(base: &str, target: &str, dir: &Path, extra: &[&str]) -> (i32, Value, String) {
    let json = dir.join(format!("report-{}.json", rand_suffix()));
    let json = json.to_str().unwrap();
    let mut args = vec!["verify", "--base", base, "--target", target, "--json", json];
    args.extend_from_slice(&["--max-findings", "1000000", "-q"]);
    args.extend_from_slice(extra);
    let run = pgsalvage(&args);
    let code = run.status.code().unwrap_or(-1);
    let report = std::fs::read(json)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    (code, report, text(&run.stderr))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {report:#}"))
}

fn findings(report: &Value) -> BTreeSet<(i64, String)> {
    assert_eq!(report["findings_truncated"], false);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["table"] == "public.items")
        .map(|f| {
            (
                f["key"][0].as_i64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn truth_set() -> BTreeSet<(i64, String)> {
    truth()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}

/// Every changed key of `items` lies in a listed span; no span is without a change.
fn assert_spans_cover(report: &Value) {
    let spans = &table(report, "public.items")["spans"];
    assert_eq!(spans["truncated"], false);
    let listed = spans["listed"].as_array().unwrap();
    assert!(!listed.is_empty());
    let inside = |k: i64, s: &Value| {
        s["from"]
            .as_array()
            .is_none_or(|f| f[0].as_i64().unwrap() <= k)
            && s["to"]
                .as_array()
                .is_none_or(|t| k < t[0].as_i64().unwrap())
    };
    let changed: Vec<i64> = truth().iter().map(|(k, _)| *k).collect();
    for k in &changed {
        assert!(
            listed.iter().any(|s| inside(*k, s)),
            "changed key {k} in no span"
        );
    }
    for s in listed {
        assert!(
            changed.iter().any(|k| inside(*k, s)),
            "span {s} holds no change"
        );
    }
}

#[test]
fn baselines_against_databases_and_each_other() {
    let db = fresh_db("bl");
    psql(&db, SCHEMA);
    let dir = scratch("bl");
    let (plain, rows) = (dir.join("plain"), dir.join("rows"));
    take(&db, &plain, &[]);
    take(&db, &rows, &["--rows", "--jobs", "3"]);
    let live = url(&db);
    for b in [&plain, &rows] {
        let (code, report, err) = verify(b.to_str().unwrap(), &live, &dir);
        assert_eq!(
            code,
            0,
            "unchanged database vs {}: {err}\n{report:#}",
            b.display()
        );
        assert_eq!(table(&report, "public.items")["rows"]["base"], 20000);
    }
    psql(&db, DAMAGE);

    // Database against a baseline without rows: spans, counts, no keys.
    let (code, report, err) = verify(plain.to_str().unwrap(), &live, &dir);
    assert_eq!(code, 1, "{err}");
    assert_eq!(table(&report, "public.items")["spans"]["exact_keys"], false);
    assert_eq!(
        table(&report, "public.items")["rows"]["target"],
        20000 - 207 + 41
    );
    assert_eq!(table(&report, "public.pairs")["status"], "identical");
    assert_spans_cover(&report);

    // Against a --rows baseline: the exact keys, from either side.
    let (code, report, err) = verify(rows.to_str().unwrap(), &live, &dir);
    assert_eq!(code, 1, "{err}");
    assert_eq!(findings(&report), truth_set());
    assert_spans_cover(&report);
    let (code, report, _) = verify(&live, rows.to_str().unwrap(), &dir);
    assert_eq!(code, 1);
    let flipped: BTreeSet<(i64, String)> = truth_set()
        .into_iter()
        .map(|(k, kind)| match kind.as_str() {
            "missing" => (k, "extra".into()),
            "extra" => (k, "missing".into()),
            _ => (k, kind),
        })
        .collect();
    assert_eq!(findings(&report), flipped);

    // Baseline against baseline: exact with rows on both sides, spans without.
    let (after_rows, after_plain) = (dir.join("after-rows"), dir.join("after-plain"));
    take(&db, &after_rows, &["--rows"]);
    take(&db, &after_plain, &[]);
    let (code, report, err) = verify(rows.to_str().unwrap(), after_rows.to_str().unwrap(), &dir);
    assert_eq!(code, 1, "{err}");
    assert_eq!(findings(&report), truth_set());
    let (code, report, _) = verify(plain.to_str().unwrap(), after_plain.to_str().unwrap(), &dir);
    assert_eq!(code, 1);
    assert_spans_cover(&report);
    let (code, _, err) = verify(
        after_rows.to_str().unwrap(),
        after_plain.to_str().unwrap(),
        &dir,
    );
    assert_eq!(code, 0, "two baselines of one state: {err}");

    // A schema change since the baseline: an added column still compares the old columns; a
    // dropped one is reported as a schema change and the rows are not compared.
    psql(&db, "ALTER TABLE pairs ADD COLUMN extra int DEFAULT 1");
    let (code, report, _) = verify(after_rows.to_str().unwrap(), &live, &dir);
    assert_eq!(code, 1);
    let pairs = table(&report, "public.pairs");
    assert!(
        !pairs["schema_differences"].as_array().unwrap().is_empty(),
        "{pairs:#}"
    );
    assert_eq!(pairs["spans"]["count"], 0, "{pairs:#}");
    assert_eq!(table(&report, "public.items")["status"], "identical");
    psql(&db, "ALTER TABLE pairs DROP COLUMN note");
    let (code, report, _) = verify(after_rows.to_str().unwrap(), &live, &dir);
    assert_eq!(code, 1);
    let pairs = table(&report, "public.pairs");
    assert_eq!(pairs["status"], "differences");
    let diffs = pairs["schema_differences"].to_string();
    assert!(diffs.contains("note"), "{diffs}");
    let changed = dir.join("changed");
    take(&db, &changed, &["--rows"]);
    let (code, report, _) = verify(
        after_rows.to_str().unwrap(),
        changed.to_str().unwrap(),
        &dir,
    );
    assert_eq!(code, 1);
    assert!(table(&report, "public.pairs")["schema_differences"]
        .to_string()
        .contains("note"));
    assert_eq!(table(&report, "public.items")["status"], "identical");

    // A table dropped since the baseline, and one created since, are schema differences.
    psql(
        &db,
        "DROP TABLE pairs; CREATE TABLE fresh (id int PRIMARY KEY); INSERT INTO fresh VALUES (1)",
    );
    let (code, report, err) = verify(after_rows.to_str().unwrap(), &live, &dir);
    assert_eq!(code, 1, "{err}");
    for (name, absent_on) in [("public.pairs", "target"), ("public.fresh", "base")] {
        let t = table(&report, name);
        assert_eq!(t["status"], "differences", "{t:#}");
        let diffs = t["schema_differences"].as_array().unwrap();
        assert!(
            diffs
                .iter()
                .any(|d| d["kind"] == "table_absent" && d["source"] == absent_on),
            "{t:#}"
        );
    }
    assert_eq!(table(&report, "public.pairs")["rows"]["base"], 3000);
    assert_eq!(table(&report, "public.items")["status"], "identical");
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn first_parquet(dir: &Path, sub: &str) -> PathBuf {
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                return p;
            }
        }
    }
    panic!("no parquet file under {}", dir.display());
}

/// Damages a copy of `good` with `damage` and expects verify and inspect to refuse it with a
/// message containing `says`.
fn refused(
    good: &Path,
    dir: &Path,
    name: &str,
    damage: impl FnOnce(&Path),
    says: &str,
    live: &str,
) {
    let bad = dir.join(name);
    copy_dir(good, &bad);
    damage(&bad);
    let (code, report, err) = verify(bad.to_str().unwrap(), live, dir);
    assert_eq!(code, 2, "{name}: {err}");
    assert_eq!(report, Value::Null, "{name}: a report was written");
    assert!(err.contains(says), "{name}: expected \"{says}\" in: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    let inspect = pgsalvage(&["baseline", "inspect", bad.to_str().unwrap()]);
    assert_eq!(
        inspect.status.code(),
        Some(2),
        "{name}: inspect accepted it"
    );
    assert!(text(&inspect.stderr).contains(says));
}

#[test]
fn damaged_or_foreign_baselines_are_refused() {
    let db = fresh_db("blc");
    psql(&db, SCHEMA);
    let dir = scratch("blc");
    let good = dir.join("good");
    take(&db, &good, &["--rows"]);
    let live = url(&db);
    let inspect = pgsalvage(&["baseline", "inspect", good.to_str().unwrap()]);
    assert_eq!(inspect.status.code(), Some(0), "{}", text(&inspect.stderr));
    let shown = text(&inspect.stdout);
    assert!(
        shown.contains("public.items") && shown.contains("20000"),
        "{shown}"
    );

    refused(
        &good,
        &dir,
        "flipped-leaf",
        |b| flip(&first_parquet(b, "leaves")),
        "does not match its digest",
        &live,
    );
    refused(
        &good,
        &dir,
        "flipped-row",
        |b| flip(&first_parquet(b, "rows")),
        "does not match its digest",
        &live,
    );
    refused(
        &good,
        &dir,
        "truncated",
        |b| truncate(&first_parquet(b, "rows")),
        "bytes",
        &live,
    );
    refused(
        &good,
        &dir,
        "missing-file",
        |b| std::fs::remove_file(first_parquet(b, "leaves")).unwrap(),
        "is missing",
        &live,
    );
    refused(
        &good,
        &dir,
        "edited-manifest",
        |b| edit_manifest(b, "\"rows\": 20000", "\"rows\": 20001"),
        "checksum",
        &live,
    );
    refused(
        &good,
        &dir,
        "newer",
        |b| edit_manifest(b, "pgsalvage.baseline/2", "pgsalvage.baseline/3"),
        "newer",
        &live,
    );
    refused(
        &good,
        &dir,
        "foreign",
        |b| edit_manifest(b, "pgsalvage.baseline/2", "other.tool/1"),
        "not a pgsalvage baseline",
        &live,
    );
    refused(
        &good,
        &dir,
        "no-manifest",
        |b| std::fs::remove_file(b.join("manifest.json")).unwrap(),
        "not a pgsalvage baseline",
        &live,
    );
    let (code, _, err) = verify(dir.join("nowhere/").to_str().unwrap(), &live, &dir);
    assert_eq!(code, 2);
    assert!(err.contains("not found"), "{err}");

    // Writes are atomic: an existing directory is not overwritten, a failed baseline leaves
    // nothing behind.
    let again = pgsalvage(&[
        "baseline",
        "--source",
        &live,
        "--out",
        good.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already exists"));
    psql(&db, "CREATE TABLE nokey (v int)");
    let failed = dir.join("failed");
    let run = pgsalvage(&[
        "baseline",
        "--source",
        &live,
        "--out",
        failed.to_str().unwrap(),
        "-q",
    ]);
    // A table without a key is no reason to fail: it is taken as the multiset of its rows.
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(failed.join("manifest.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pgsalvage"))
        .collect();
    assert!(leftovers.is_empty(), "staging directories left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() - 100]).unwrap();
}

fn edit_manifest(dir: &Path, from: &str, to: &str) {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "manifest has no {from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// pyarrow, an independent reader, opens every file and finds what the manifest says.
#[test]
fn baseline_files_open_in_pyarrow() {
    let db = fresh_db("blp");
    psql(&db, SCHEMA);
    let dir = scratch("blp");
    let out = dir.join("b");
    take(&db, &out, &["--rows", "--jobs", "2"]);
    let script = r#"
import json, sys, glob, os
import pyarrow.parquet as pq
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
for t in m["tables"]:
    leaves = pq.read_table(os.path.join(d, t["leaves_file"]))
    assert leaves.num_rows == t["leaf_count"], (leaves.num_rows, t["leaf_count"])
    assert sum(leaves.column("rows").to_pylist()) == t["rows"]
    assert leaves.column("anchor_key").to_pylist()[0] is None
    keys = []
    for part in t["row_parts"]:
        rows = pq.read_table(os.path.join(d, part["file"]))
        assert rows.num_rows == part["rows"]
        keys += [json.loads(k) for k in rows.column("key").to_pylist()]
        assert all(len(x) == 32 for x in rows.column("digest").to_pylist())
    assert len(keys) == t["rows"] and keys == sorted(keys), t["table"]
    print(t["table"]["name"], len(keys))
"#;
    // The interpreter scripts/test.sh sets up with pyarrow (scripts/setup.sh's
    // ensure_python_readers); never the first python3 on the PATH, which may lack it.
    let python = std::env::var("PGSALVAGE_PYTHON").unwrap_or_else(|_| {
        panic!("PGSALVAGE_PYTHON is not set: run the tests with scripts/test.sh, which installs pyarrow and sets it")
    });
    let run = std::process::Command::new(&python)
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(
        run.status.success(),
        "pyarrow check failed: {}",
        text(&run.stderr)
    );
    let printed = text(&run.stdout);
    assert!(
        printed.contains("items 20000") && printed.contains("pairs 3000"),
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Terminates a database's pgsalvage sessions when the first table starts.
struct KillSessions {
    db: String,
    done: std::sync::atomic::AtomicBool,
}

impl pgsalvage::progress::Reporter for KillSessions {
    fn table_started(&self, _id: usize, _table: &pgsalvage::shape::TableName, _est: u64) {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            psql(
                "postgres",
                &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'pgsalvage'", self.db),
            );
        }
    }
}

fn killer(db: &str) -> std::sync::Arc<KillSessions> {
    std::sync::Arc::new(KillSessions {
        db: db.to_string(),
        done: Default::default(),
    })
}

#[test]
fn a_connection_lost_while_taking_or_comparing_is_never_clean() {
    use pgsalvage::settings::{BaselineSettings, VerifySettings};
    use pgsalvage::source::conninfo::{resolve, ProcessEnv};
    use pgsalvage::source::Role;
    let db = fresh_db("bll");
    psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 120000) g; ANALYZE t;",
    );
    let dir = scratch("bll");
    let out = dir.join("b");
    let settings = BaselineSettings {
        source: resolve(&url(&db), &ProcessEnv).unwrap(),
        out: out.clone(),
        rows: true,
        force: false,
        filter: Default::default(),
        keys: Default::default(),
        jobs: 2,
        batch_bytes: 64 * 1024,
        live: Default::default(),
        max_snapshot_age: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(pgsalvage::baseline::take::take(&settings, killer(&db)))
        .expect_err("a baseline whose connection was lost must fail");
    assert!(err.to_string().contains("public.t"), "{err}");
    assert!(!out.exists(), "a failed baseline left {}", out.display());
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(entries.is_empty(), "staging left behind: {entries:?}");

    rt.block_on(pgsalvage::baseline::take::take(
        &settings,
        std::sync::Arc::new(pgsalvage::progress::NullReporter),
    ))
    .unwrap();
    let mut compare = VerifySettings::new(vec![(Role::Target, settings.source.clone())]);
    compare.baselines = vec![(Role::Base, out.clone())];
    let report = crate::support::verify_with(&compare, killer(&db));
    assert_eq!(report.exit_code, 2, "{:?}", report.tables[0].errors);
    assert_eq!(
        report.tables[0].status,
        pgsalvage::report::TableStatus::Error
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random damage at several rates, truth computed by SQL from a copy of the table kept beside
/// it: the spans cover every changed key, and a `--rows` baseline names exactly the changed keys.
#[test]
fn random_damage_against_baselines_matches_sql_truth() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1000;
    for (i, rate) in [0.0001, 0.01, 0.3].into_iter().enumerate() {
        let db = fresh_db("blr");
        psql(
            &db,
            "CREATE TABLE t (id bigint PRIMARY KEY, a text, b numeric, c jsonb, d timestamptz);
             INSERT INTO t SELECT g, md5(g::text), g / 7.0, jsonb_build_object('g', g),
                    timestamptz '2026-01-01' + g * interval '1 minute'
               FROM generate_series(1, 60000) g;
             ANALYZE t;
             CREATE SCHEMA keep; CREATE TABLE keep.t AS TABLE t;",
        );
        let dir = scratch(&format!("blr{i}"));
        let (plain, rows) = (dir.join("plain"), dir.join("rows"));
        take(&db, &plain, &["--tables", "public.t"]);
        take(&db, &rows, &["--tables", "public.t", "--rows"]);
        let s = (seed + i as u64) as f64 / 1000.0;
        psql(
            &db,
            &format!(
                "SELECT setseed({s});
                 DELETE FROM t WHERE random() < {rate};
                 UPDATE t SET a = CASE WHEN random() < 0.5 THEN NULL ELSE a || 'x' END WHERE random() < {rate};
                 UPDATE t SET d = d + interval '1 microsecond' WHERE random() < {rate};
                 INSERT INTO t SELECT 100000 + g, 'new', g, NULL, NULL FROM generate_series(1, 30000) g WHERE random() < {rate};"
            ),
        );
        let truth_sql = "SELECT coalesce(o.id, n.id) || ' ' || CASE WHEN n.id IS NULL THEN 'missing' WHEN o.id IS NULL THEN 'extra' ELSE 'divergent' END
               FROM keep.t o FULL JOIN public.t n ON o.id = n.id
              WHERE o IS DISTINCT FROM n AND (o.id IS NULL OR n.id IS NULL OR (o.a, o.b, o.c, o.d) IS DISTINCT FROM (n.a, n.b, n.c, n.d))";
        let truth: BTreeSet<(i64, String)> = psql(&db, truth_sql)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (k, kind) = l.trim().split_once(' ').unwrap();
                (k.parse().unwrap(), kind.to_string())
            })
            .collect();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(rows.join("manifest.json")).unwrap()).unwrap();
        let parts = manifest["tables"][0]["row_parts"].as_array().unwrap().len();
        assert!(
            parts > 1,
            "rows stored in {parts} part(s): the reader's part switching is untested"
        );
        let live = url(&db);
        let only_t = ["--tables", "public.t"];
        let (code, report, err) = verify_with_args(rows.to_str().unwrap(), &live, &dir, &only_t);
        assert_eq!(code, if truth.is_empty() { 0 } else { 1 }, "{err}");
        let got: BTreeSet<(i64, String)> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["table"] == "public.t")
            .map(|f| {
                (
                    f["key"][0].as_i64().unwrap(),
                    f["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, truth, "seed {s}, rate {rate}");
        let (_, report, _) = verify_with_args(plain.to_str().unwrap(), &live, &dir, &only_t);
        let spans = table(&report, "public.t")["spans"]["listed"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(table(&report, "public.t")["spans"]["truncated"], false);
        let inside = |k: i64, s: &Value| {
            s["from"]
                .as_array()
                .is_none_or(|f| f[0].as_i64().unwrap() <= k)
                && s["to"]
                    .as_array()
                    .is_none_or(|t| k < t[0].as_i64().unwrap())
        };
        for (k, _) in &truth {
            assert!(
                spans.iter().any(|s| inside(*k, s)),
                "seed {s}: key {k} in no span"
            );
        }
        for span in &spans {
            assert!(
                truth.iter().any(|(k, _)| inside(*k, span)),
                "seed {s}: span {span} has no change"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Keys of every orderable kind, text under C and under an ICU collation, through a `--rows`
/// baseline: the exact keys come back, and the spans cover them.
#[test]
fn keys_of_every_kind_through_a_rows_baseline() {
    let odd = "SELECT k FROM (VALUES ('a'), ('B'), ('é'), ('e'), ('Z'), ('_x'), ('a b'), ('ab'), (''), ('Ω'), ('😀')) v(k)";
    let db = fresh_db("blk");
    psql(
        &db,
        &format!(
            "CREATE TABLE c (k text PRIMARY KEY, v int);
             INSERT INTO c SELECT 'key-' || g, g FROM generate_series(1, 60000) g;
             INSERT INTO c SELECT k, 0 FROM ({odd}) s;
             CREATE TABLE icu (k text COLLATE \"und-x-icu\" PRIMARY KEY, v int);
             INSERT INTO icu SELECT k, 0 FROM c;
             CREATE TABLE m (region int, code text, day date, n numeric, PRIMARY KEY (region, code, day));
             INSERT INTO m SELECT g % 7, 'c' || g, date '2026-01-01' + g % 30, g / 3.0 FROM generate_series(1, 5000) g;
             CREATE TABLE u (id uuid PRIMARY KEY, at timestamptz);
             INSERT INTO u SELECT md5(g::text)::uuid, timestamptz '2026-01-01' + g * interval '1 s' FROM generate_series(1, 5000) g;
             CREATE TABLE n (id numeric PRIMARY KEY);
             INSERT INTO n VALUES (-1e30), (-1.5), (0), (0.001), (2), (1e30), (123456789012345678901234567890.5);
             ANALYZE;"
        ),
    );
    let dir = scratch("blk");
    let (rows, plain) = (dir.join("rows"), dir.join("plain"));
    take(&db, &rows, &["--rows", "--jobs", "3"]);
    take(&db, &plain, &[]);
    psql(
        &db,
        "UPDATE c SET v = 1 WHERE k IN ('B', 'é', '');
         DELETE FROM c WHERE k IN ('key-5000', 'Ω');
         UPDATE icu SET v = 1 WHERE k IN ('B', 'é', '');
         DELETE FROM icu WHERE k IN ('key-5000', 'Ω');
         INSERT INTO icu VALUES ('café-3', 1);
         DELETE FROM m WHERE region = 3 AND code = 'c10';
         UPDATE m SET n = n + 1 WHERE code = 'c11';
         UPDATE u SET at = at + interval '1 microsecond' WHERE id = md5('7')::uuid;
         DELETE FROM n WHERE id = 123456789012345678901234567890.5;
         INSERT INTO n VALUES (-0.0001);",
    );
    let (code, report, err) = verify(rows.to_str().unwrap(), &url(&db), &dir);
    assert_eq!(code, 1, "{err}");
    let got: BTreeSet<(String, String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let table = f["table"].as_str().unwrap().to_string();
            (
                table,
                f["key"].to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = BTreeSet::new();
    // Keys compare as parsed JSON here (this test's parser reads numbers as floats); the exact
    // digits of the big numeric are checked in the report's text below.
    let mut add = |t: &str, k: &str, kind: &str| {
        let k = serde_json::from_str::<Value>(k).unwrap().to_string();
        want.insert((t.to_string(), k, kind.to_string()));
    };
    for t in ["public.c", "public.icu"] {
        for k in ["B", "é", ""] {
            add(t, &format!("[\"{k}\"]"), "divergent");
        }
        for k in ["key-5000", "Ω"] {
            add(t, &format!("[\"{k}\"]"), "missing");
        }
    }
    add("public.icu", "[\"café-3\"]", "extra");
    add("public.m", "[3,\"c10\",\"2026-01-11\"]", "missing");
    add("public.m", "[4,\"c11\",\"2026-01-12\"]", "divergent");
    let uuid7 = psql(&db, "SELECT md5('7')::uuid");
    add("public.u", &format!("[\"{}\"]", uuid7.trim()), "divergent");
    add("public.n", "[123456789012345678901234567890.5]", "missing");
    add("public.n", "[-0.0001]", "extra");
    assert_eq!(got, want);
    let json = dir.join("exact.json");
    let run = pgsalvage(&[
        "verify",
        "--base",
        rows.to_str().unwrap(),
        "--target",
        &url(&db),
        "-q",
        "--tables",
        "public.n",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let raw = std::fs::read_to_string(&json).unwrap();
    assert!(raw.contains("[123456789012345678901234567890.5]"), "{raw}");
    let (code, report, _) = verify(plain.to_str().unwrap(), &url(&db), &dir);
    assert_eq!(code, 1);
    for t in ["public.c", "public.icu", "public.m", "public.u", "public.n"] {
        assert!(
            table(&report, t)["spans"]["count"].as_u64().unwrap() > 0,
            "{t}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
