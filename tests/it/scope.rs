//! Narrowing a run (issue 20): `--exclude-tables` / `--exclude-schema`, `--where`,
//! `--exclude-columns`, `--map-column`, and verify against a baseline of some tables. Each test
//! shows the option changing the outcome, through the binary.

use serde_json::Value;

use crate::support::*;

/// verify through the binary with `extra` flags; its exit code and JSON report.
fn verify_json(base: &str, target: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let (b, t) = (url(base), url(target));
    let mut args = vec!["verify", "--base", &b, "--target", &t, "-q"];
    args.extend(["--json", json.to_str().unwrap()]);
    args.extend(extra);
    let out = pgsalvage(&args);
    let report = match std::fs::read(&json) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => Value::Null,
    };
    (out.status.code(), report, text(&out.stderr))
}

/// The report's findings as `(table, key, kind, columns)`.
fn findings(report: &Value) -> Vec<(String, String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let cols: Vec<&str> = f["columns"]
                .as_array()
                .map(|c| c.iter().map(|c| c.as_str().unwrap()).collect())
                .unwrap_or_default();
            (
                f["table"].as_str().unwrap().to_string(),
                f["key"].to_string(),
                f["kind"].as_str().unwrap().to_string(),
                cols.join("|"),
            )
        })
        .collect()
}

fn tables(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn f(table: &str, key: &str, kind: &str, cols: &str) -> (String, String, String, String) {
    (table.into(), key.into(), kind.into(), cols.into())
}

#[test]
fn excluded_tables_and_schemas_are_left_out() {
    let (base, target) = pair(
        "excl",
        "CREATE TABLE orders (id int PRIMARY KEY, v text);
         CREATE TABLE audit_log (id int PRIMARY KEY, v text);
         CREATE TABLE audit_old (id int PRIMARY KEY, v text);
         CREATE SCHEMA scratch; CREATE TABLE scratch.tmp (id int PRIMARY KEY);
         CREATE SCHEMA \"Stage.1\"; CREATE TABLE \"Stage.1\".\"Big\" (id int PRIMARY KEY);
         INSERT INTO orders SELECT g, 'o' FROM generate_series(1, 100) g;
         INSERT INTO audit_log SELECT g, 'a' FROM generate_series(1, 100) g;
         INSERT INTO scratch.tmp SELECT generate_series(1, 10);",
    );
    psql(
        &target,
        "DELETE FROM audit_log WHERE id = 7; INSERT INTO audit_old VALUES (1, 'x');
         DELETE FROM scratch.tmp; INSERT INTO \"Stage.1\".\"Big\" VALUES (1);",
    );
    let (code, report, err) = verify_json(&base, &target, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["totals"]["tables"], 5);

    let narrowed = [
        "--exclude-tables",
        "audit_*",
        "--exclude-schema",
        "scratch",
        "--exclude-schema",
        "\"Stage.1\"",
        "--exclude-tables",
        "nothing_matches_*",
    ];
    let (code, report, err) = verify_json(&base, &target, &narrowed);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(tables(&report), ["public.orders"]);
    assert_eq!(
        report["scope"]["exclude_tables"],
        serde_json::json!(["audit_*", "nothing_matches_*"])
    );
    assert_eq!(
        report["scope"]["exclude_schemas"],
        serde_json::json!(["scratch", "\"Stage.1\""])
    );

    // Patterns read like pg_dump's: unquoted letters fold, so "Stage.1" unquoted is a
    // schema.table pattern, refused for --exclude-schema; the bare table pattern is in public.
    let (code, _, err) = verify_json(&base, &target, &["--exclude-schema", "Stage.1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid --exclude-schema"), "{err}");
    let (code, report, _) = verify_json(&base, &target, &["--exclude-tables", "tmp"]);
    assert_eq!(code, Some(1));
    assert!(tables(&report).contains(&"scratch.tmp".to_string()));

    // A --tables table that an exclusion removes is a contradiction.
    let (code, _, err) = verify_json(
        &base,
        &target,
        &[
            "--tables",
            "public.orders,public.audit_log",
            "--exclude-tables",
            "audit_*",
        ],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err.lines().next().unwrap(),
        "error: --tables names public.audit_log, which --exclude-tables audit_* excludes"
    );

    // check and baseline take select tables the same way.
    let check = pgsalvage(&[
        "check",
        "--target",
        &url(&target),
        "--base",
        &url(&base),
        "-q",
        "--exclude-schema",
        "scratch",
        "--exclude-schema",
        "\"Stage.1\"",
        "--exclude-tables",
        "audit_*",
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    let dir = tempfile::tempdir().unwrap();
    let bl = dir.path().join("bl");
    let take = pgsalvage(&[
        "baseline",
        "--source",
        &url(&base),
        "--out",
        bl.to_str().unwrap(),
        "-q",
        "--exclude-tables",
        "audit_*",
        "--exclude-schema",
        "scratch",
    ]);
    assert_eq!(take.status.code(), Some(0), "{}", text(&take.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bl.join("manifest.json")).unwrap()).unwrap();
    let held: Vec<&str> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["Big", "orders"]);
}

#[test]
fn where_narrows_every_read_and_recovers_only_inside_it() {
    let (base, target) = pair(
        "where",
        "CREATE TABLE t (id int PRIMARY KEY, region text NOT NULL, v text);
         INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g
           FROM generate_series(1, 120000) g;
         ANALYZE t;",
    );
    // Damage outside the predicate only: region 'us' (odd ids).
    psql(
        &target,
        "DELETE FROM t WHERE id = 3; UPDATE t SET v = 'bad' WHERE id = 5;",
    );
    let eu = ["--where", "public.t:region = 'eu'"];
    let (code, report, err) = verify_json(&base, &target, &eu);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["tables"][0]["rows"]["base"], 60000);
    assert_eq!(report["scope"]["rows"]["public.t"], "region = 'eu'");
    // And inside it: exactly that key.
    psql(&target, "UPDATE t SET v = 'bad' WHERE id = 40000;");
    let (code, report, err) = verify_json(&base, &target, &[&eu[..], &["--jobs", "3"]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        report["tables"][0]["ranges"]["planned"].as_u64().unwrap() > 1,
        "the sampled cut should hold more than one range"
    );
    assert_eq!(
        findings(&report),
        [f("public.t", "[40000]", "divergent", "v")]
    );

    // A predicate that does not hold on a source: one line naming table and source.
    psql(&target, "ALTER TABLE t RENAME COLUMN region TO area;");
    let (code, _, err) = verify_json(&base, &target, &eu);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(
            "error: --where of public.t fails on target: column \"region\" does not exist"
        ),
        "{err}"
    );
    psql(&target, "ALTER TABLE t RENAME COLUMN area TO region;");

    // recover + apply restore inside the predicate only, and plan.json records it.
    psql(&target, "DELETE FROM t WHERE id = 40002;");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let out_s = out.to_str().unwrap();
    let (b, t) = (url(&base), url(&target));
    let rec = pgsalvage(&[
        "recover",
        "--base",
        &b,
        "--target",
        &t,
        "--out",
        out_s,
        "-q",
        "--delete-extra",
        "--where",
        "public.t:region = 'eu'",
    ]);
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let plan: Value =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["tables"][0]["rows"], "region = 'eu'");
    assert_eq!(plan["scope"]["rows"]["public.t"], "region = 'eu'");
    assert_eq!(plan["tables"][0]["insert"], 1);
    assert_eq!(plan["tables"][0]["update"], 1);
    let applied = pgsalvage(&["apply", out_s, "--target", &t]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let (code, _, err) = verify_json(&base, &target, &eu);
    assert_eq!(code, Some(0), "{err}");
    // The damage outside it is untouched.
    assert_eq!(
        psql(&target, "SELECT count(*) FROM t WHERE id = 3").trim(),
        "0"
    );
    assert_eq!(psql(&target, "SELECT v FROM t WHERE id = 5").trim(), "bad");

    // A baseline taken with the predicate holds just those rows.
    let bl = dir.path().join("bl");
    let take = pgsalvage(&[
        "baseline",
        "--source",
        &b,
        "--out",
        bl.to_str().unwrap(),
        "-q",
        "--rows",
        "--where",
        "public.t:region = 'eu'",
    ]);
    assert_eq!(take.status.code(), Some(0), "{}", text(&take.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bl.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tables"][0]["rows"], 60000);
    let vs = pgsalvage(&[
        "verify",
        "--base",
        bl.to_str().unwrap(),
        "--target",
        &t,
        "-q",
        "--where",
        "public.t:region = 'eu'",
    ]);
    assert_eq!(
        vs.status.code(),
        Some(0),
        "{}{}",
        text(&vs.stdout),
        text(&vs.stderr)
    );
}

#[test]
fn excluded_columns_are_not_compared() {
    let (base, target) = pair(
        "xcol",
        "CREATE TABLE t (id int PRIMARY KEY, v text, touched timestamptz, note text);
         INSERT INTO t SELECT g, 'v', now(), 'n' FROM generate_series(1, 100) g;",
    );
    psql(
        &target,
        "UPDATE t SET touched = now() + interval '1 day', note = 'changed' WHERE id < 50;
                   ALTER TABLE t ALTER COLUMN note TYPE int USING 1;",
    );
    let (code, report, err) = verify_json(&base, &target, &[]);
    assert_eq!(code, Some(1), "{err}");
    let (code, report2, err) = verify_json(
        &base,
        &target,
        &["--exclude-columns", "public.t:touched,note"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        report2["tables"][0]["columns_compared"],
        serde_json::json!(["id", "v"])
    );
    assert_eq!(
        report2["tables"][0]["schema_differences"],
        serde_json::json!([])
    );
    assert_eq!(
        report2["scope"]["exclude_columns"]["public.t"],
        serde_json::json!(["touched", "note"])
    );
    assert!(findings(&report).len() == 49);
    // A change in a compared column is still found.
    psql(&target, "UPDATE t SET v = 'x' WHERE id = 9;");
    let (code, report, _) = verify_json(
        &base,
        &target,
        &["--exclude-columns", "public.t:touched,note"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(findings(&report), [f("public.t", "[9]", "divergent", "v")]);
    // The key cannot be left out.
    let (code, _, err) = verify_json(&base, &target, &["--exclude-columns", "public.t:id"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--exclude-columns: id is a key column of public.t"),
        "{err}"
    );
}

#[test]
fn a_mapped_column_compares_by_value_and_restores_under_the_new_name() {
    let (base, target) = pair(
        "map",
        "CREATE TABLE t (id int PRIMARY KEY, email text, v int);
         INSERT INTO t SELECT g, 'u' || g || '@x', g FROM generate_series(1, 200) g;",
    );
    psql(
        &target,
        "ALTER TABLE t RENAME COLUMN email TO contact_email;",
    );
    let (code, report, err) = verify_json(&base, &target, &[]);
    assert_eq!(code, Some(1), "{err}");
    let kinds: Vec<&str> = report["tables"][0]["schema_differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["column_absent", "column_extra"],
        "gone + new without the map"
    );

    let map = ["--map-column", "public.t:email=contact_email"];
    let (code, report, err) = verify_json(&base, &target, &map);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["verdict"], "identical");
    assert_eq!(
        report["tables"][0]["columns_compared"],
        serde_json::json!(["id", "contact_email", "v"])
    );
    assert_eq!(
        report["scope"]["map_columns"]["public.t"]["email"],
        "contact_email"
    );

    psql(
        &target,
        "UPDATE t SET contact_email = 'wrong' WHERE id = 17; DELETE FROM t WHERE id = 18;",
    );
    let (code, report, _) = verify_json(&base, &target, &map);
    assert_eq!(code, Some(1));
    assert_eq!(
        findings(&report),
        [
            f("public.t", "[17]", "divergent", "contact_email"),
            f("public.t", "[18]", "missing", "")
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let (b, t) = (url(&base), url(&target));
    let rec = pgsalvage(&[
        "recover",
        "--base",
        &b,
        "--target",
        &t,
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--map-column",
        "public.t:email=contact_email",
    ]);
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let applied = pgsalvage(&["apply", out.to_str().unwrap(), "--target", &t]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert_eq!(
        psql(&target, "SELECT contact_email FROM t WHERE id = 17").trim(),
        "u17@x"
    );
    assert_eq!(
        psql(&target, "SELECT contact_email || v FROM t WHERE id = 18").trim(),
        "u18@x18"
    );
    let (code, report, err) = verify_json(&base, &target, &map);
    assert_eq!(code, Some(0), "{err} {report}");

    // The map must name a column the base has, and no key.
    let (code, _, err) = verify_json(&base, &target, &["--map-column", "public.t:nope=other"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("the base has no column nope"), "{err}");
}

#[test]
fn verify_against_a_baseline_of_some_tables_compares_those() {
    let db = fresh_db("partial");
    psql(
        &db,
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY);
         INSERT INTO a SELECT g, 'x' FROM generate_series(1, 50) g; INSERT INTO b VALUES (1);",
    );
    let dir = tempfile::tempdir().unwrap();
    let bl = dir.path().join("bl");
    let bl_s = bl.to_str().unwrap();
    let take = pgsalvage(&[
        "baseline",
        "--source",
        &url(&db),
        "--out",
        bl_s,
        "--tables",
        "public.a",
        "-q",
    ]);
    assert_eq!(take.status.code(), Some(0), "{}", text(&take.stderr));
    let json = dir.path().join("r.json");
    let target = url(&db);
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", "--base", bl_s, "--target", &target, "-q"];
        args.extend(["--json", json.to_str().unwrap()]);
        args.extend(extra);
        let out = pgsalvage(&args);
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (out.status.code(), report)
    };
    let (code, report) = run(&[]);
    assert_eq!(code, Some(0));
    assert_eq!(tables(&report), ["public.a"]);
    assert_eq!(
        report["scope"]["outside_baseline"],
        serde_json::json!(["public.b"])
    );
    let (code, report) = run(&["--all-tables"]);
    assert_ne!(code, Some(0));
    assert_eq!(tables(&report), ["public.a", "public.b"]);
    psql(&db, "UPDATE a SET v = 'y' WHERE id = 4");
    let (code, _) = run(&[]);
    assert_eq!(code, Some(1));
}

#[test]
fn where_and_map_column_narrow_a_table_without_a_key() {
    let (base, target) = pair(
        "wherekl",
        "CREATE TABLE k (v int, note text); INSERT INTO k SELECT g, 'n' FROM generate_series(1, 10) g;",
    );
    psql(
        &target,
        "DELETE FROM k WHERE v = 9; ALTER TABLE k RENAME COLUMN note TO remark;",
    );
    let map = ["--map-column", "public.k:note=remark"];
    // Outside the predicate: identical; inside it: exactly that copy.
    let (code, _, err) = verify_json(
        &base,
        &target,
        &[&map[..], &["--where", "public.k:v < 5"]].concat(),
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, report, err) = verify_json(
        &base,
        &target,
        &[&map[..], &["--where", "public.k:v > 5"]].concat(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        report["findings"][0]["key"],
        serde_json::json!([9, "n"]),
        "{report:#}"
    );
    assert_eq!(report["tables"][0]["missing"], 1, "{report:#}");
}

/// The whole-database acceptance run of issue 20: keyed tables with a foreign key, a keyless log
/// with duplicates and NULLs, an empty keyless table, a column renamed by the migration (on a
/// keyed and on the keyless table) and a schema left out. verify, recover, apply, verify exit
/// 1, 1, 0, 0; the left-out schema keeps its damage and is not even read.
#[test]
fn a_whole_database_with_keyless_tables_renames_and_an_excluded_schema_recovers_exactly() {
    let (base, target) = pair(
        "accept20",
        "CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers,
                              amount numeric(12,2), status text);
         CREATE TABLE events (kind text, ref int, note text);
         CREATE TABLE history (tid int, delta int, mtime timestamp);
         CREATE SCHEMA audit;
         CREATE TABLE audit.trail (id int PRIMARY KEY, what text);
         INSERT INTO customers SELECT g, 'c' || g, 'c' || g || '@example.com'
           FROM generate_series(1, 300) g;
         INSERT INTO orders SELECT g, 1 + g % 300, (g * 1.25)::numeric(12,2), 'open'
           FROM generate_series(1, 2000) g;
         -- three copies of each row, a NULL in every fifth, a lone NULL-only row twice
         INSERT INTO events SELECT 'k' || (g % 4), g % 50,
                CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || (g % 50) END
           FROM generate_series(1, 150) g, generate_series(1, 3);
         INSERT INTO events VALUES (NULL, NULL, NULL), (NULL, NULL, NULL);
         INSERT INTO audit.trail SELECT g, 'w' || g FROM generate_series(1, 50) g;",
    );
    // The failed migration, rolled back halfway: renames kept, rows lost and changed, one copy of
    // some duplicates gone, a copy added, the NULL-only row once, the audit schema damaged too.
    psql(
        &target,
        "ALTER TABLE customers RENAME COLUMN email TO contact_email;
         ALTER TABLE events RENAME COLUMN note TO detail;
         DELETE FROM orders WHERE id % 97 = 0;
         DELETE FROM orders WHERE customer_id IN (7, 8);
         DELETE FROM customers WHERE id IN (7, 8);
         UPDATE orders SET status = NULL WHERE id % 89 = 0;
         UPDATE customers SET contact_email = NULL WHERE id % 41 = 0;
         DELETE FROM events WHERE ctid IN (SELECT min(ctid) FROM events
           WHERE ref % 7 = 0 GROUP BY kind, ref, detail);
         DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events WHERE kind IS NULL);
         INSERT INTO events VALUES ('k1', 1, 'n1'), ('zz', NULL, NULL);
         DELETE FROM audit.trail WHERE id > 40;",
    );
    let scope = [
        "--exclude-schema",
        "audit",
        "--map-column",
        "public.customers:email=contact_email",
        "--map-column",
        "public.events:note=detail",
    ];
    let (code, report, err) = verify_json(&base, &target, &scope);
    assert_eq!(code, Some(1), "{err}");
    let listed = tables(&report);
    assert!(
        !listed.iter().any(|t| t.starts_with("audit.")),
        "{listed:?}"
    );
    let by_name = |name: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} not in {report:#}"))
            .clone()
    };
    let events = by_name("public.events");
    assert_eq!(events["keyless"], true, "{events:#}");
    // Copies: one of each (kind, ref, note) group with ref % 7 = 0, one NULL-only row missing;
    // two copies extra. Counted here by SQL, not taken from the tool.
    let lost: i64 = psql(
        &base,
        "SELECT count(DISTINCT (kind, ref, note)) + 1 FROM events WHERE ref % 7 = 0",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(events["missing"], lost, "{events:#}");
    assert_eq!(events["extra"], 2, "{events:#}");
    assert_eq!(by_name("public.history")["keyless"], true);
    assert_eq!(by_name("public.history")["status"], "identical");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let out_s = out.to_str().unwrap();
    let t = url(&target);
    let rec = recover_bin(
        &base,
        &target,
        out_s,
        &[&["--delete-extra"][..], &scope].concat(),
    );
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let applied = pgsalvage(&["apply", out_s, "--target", &t, "-q"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let (code, report, err) = verify_json(&base, &target, &scope);
    assert_eq!(code, Some(0), "{err} {report:#}");
    assert_eq!(report["verdict"], "identical");
    // Restored under the target's names; the excluded schema untouched, and found damaged the
    // moment it is compared.
    assert_eq!(
        psql(&target, "SELECT contact_email FROM customers WHERE id = 41").trim(),
        "c41@example.com"
    );
    assert_eq!(
        psql(&target, "SELECT count(*) FROM audit.trail").trim(),
        "40"
    );
    let (code, report, _) = verify_json(&base, &target, &scope[2..]);
    assert_eq!(code, Some(1));
    let audit = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "audit.trail")
        .expect("audit.trail compared without --exclude-schema")
        .clone();
    assert_eq!(audit["missing"], 10, "{audit:#}");
}
