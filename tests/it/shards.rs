//! Sharded runs (issue 23): `plan --shards N`, N shard processes, `merge` — the merged report
//! equals a single run's exactly, for N = 1, 3 and 8; missing, repeated and foreign shards are
//! refused; a changed schema stops a shard; a held snapshot is what every shard reads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{pair, pgsalvage, psql, text, url};

/// Keyed tables of several key shapes (one large enough to be cut into many ranges), a keyless
/// table with duplicates, a table the target lost, and damage of every kind.
const SCHEMA: &str = "
CREATE TABLE big (id bigint PRIMARY KEY, a int, b text, c numeric);
INSERT INTO big SELECT g, g % 97, md5(g::text), g / 7.0 FROM generate_series(1, 120000) g;
CREATE TABLE names (name text PRIMARY KEY, v int);
INSERT INTO names SELECT 'n' || g, g FROM generate_series(1, 3000) g;
CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g / 10, g % 10, 'v' || g FROM generate_series(1, 5000) g;
CREATE TABLE bag (x int, y text);
INSERT INTO bag SELECT g % 50, 'y' || (g % 7) FROM generate_series(1, 2000) g;
CREATE TABLE gone (id int PRIMARY KEY);
INSERT INTO gone SELECT generate_series(1, 10);
ANALYZE;
";

const DAMAGE: &str = "
DELETE FROM big WHERE id % 1009 = 0;
UPDATE big SET b = NULL WHERE id % 1013 = 0;
UPDATE big SET c = c + 1 WHERE id % 2003 = 0;
INSERT INTO big VALUES (200001, 1, 'x', 1), (-5, 2, 'y', 2);
DELETE FROM names WHERE v % 101 = 0;
UPDATE names SET v = -v WHERE v % 203 = 0;
DELETE FROM pairs WHERE a % 37 = 0;
DELETE FROM bag WHERE ctid IN (SELECT ctid FROM bag WHERE x = 3 LIMIT 5);
INSERT INTO bag VALUES (99, 'new'), (99, 'new');
DROP TABLE gone;
";

fn urls(base: &str, target: &str) -> (String, String) {
    (url(base), url(target))
}

fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("a JSON report")
}

/// What a run's answer is, as a single run and a merge must agree on it: the verdict, the
/// totals, every finding, and per table its rows, classes, columns, roots and status.
fn answer(report: &Value) -> Value {
    let tables: Vec<Value> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            serde_json::json!({
                "table": t["table"], "status": t["status"], "rows": t["rows"],
                "missing": t["missing"], "extra": t["extra"], "divergent": t["divergent"],
                "classes": t["classes"], "divergent_columns": t["divergent_columns"],
                "schema_differences": t["schema_differences"], "key": t["key"],
                "keyless": t["keyless"], "roots": t["roots"], "errors": t["errors"],
            })
        })
        .collect();
    serde_json::json!({
        "verdict": report["verdict"], "exit_code": report["exit_code"],
        "totals": report["totals"], "findings": report["findings"],
        "findings_truncated": report["findings_truncated"], "tables": tables,
        "errors": report["errors"],
    })
}

fn single(base: &str, target: &str, out: &Path) -> (i32, Value) {
    let (b, t) = urls(base, target);
    let path = out.join("single.json");
    let run = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "-q",
        "--json",
        path.to_str().unwrap(),
    ]);
    let code = run.status.code().unwrap_or(-1);
    assert!(code < 2, "single run failed: {}", text(&run.stderr));
    (code, json(&path))
}

fn plan(base: &str, target: &str, shards: usize, dir: &Path) -> Output {
    let (b, t) = urls(base, target);
    let n = shards.to_string();
    pgsalvage(&[
        "plan",
        "--base",
        &b,
        "--target",
        &t,
        "--shards",
        &n,
        "--out",
        dir.to_str().unwrap(),
        "-q",
        "--jobs",
        "2",
    ])
}

/// Shard `shard` as a background process: by number, or for odd shards by
/// `--shard auto` with the index in JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job gives it.
fn spawn_shard(base: &str, target: &str, plan: &Path, out: &Path, shard: usize) -> Child {
    let (b, t) = urls(base, target);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsalvage"));
    cmd.args(["verify", "--base", &b, "--target", &t, "-q", "--jobs", "2"])
        .args([
            "--plan",
            plan.to_str().unwrap(),
            "--shard-out",
            out.to_str().unwrap(),
        ])
        .env_remove("PGSALVAGE_BASE")
        .env_remove("PGSALVAGE_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if shard % 2 == 1 {
        cmd.args(["--shard", "auto"])
            .env("JOB_COMPLETION_INDEX", shard.to_string());
    } else {
        cmd.args(["--shard", &shard.to_string()]);
    }
    cmd.spawn().expect("start a shard")
}

/// Runs every shard of the plan at once, as N processes; each must exit 0.
fn run_shards(base: &str, target: &str, plan: &Path, out: &Path, shards: usize) {
    let children: Vec<Child> = (0..shards)
        .map(|i| spawn_shard(base, target, plan, out, i))
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let done = child.wait_with_output().expect("a shard ends");
        assert_eq!(
            done.status.code(),
            Some(0),
            "shard {i}: {}{}",
            text(&done.stdout),
            text(&done.stderr)
        );
    }
}

fn shard_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("shard directories")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("shard-")
        })
        .collect();
    dirs.sort();
    dirs
}

fn merge(dirs: &[PathBuf], json_out: &Path) -> Output {
    let mut args = vec![
        "merge".to_string(),
        "-q".into(),
        "--json".into(),
        json_out.to_str().unwrap().into(),
    ];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pgsalvage(&args)
}

#[test]
fn n_shards_merged_equal_a_single_run_exactly_for_1_3_and_8_shards() {
    let (base, target) = pair("shards", SCHEMA);
    psql(&target, DAMAGE);
    let work = tempfile::tempdir().unwrap();
    let (code, expected) = single(&base, &target, work.path());
    assert_eq!(code, 1);
    assert!(
        expected["totals"]["missing"].as_u64().unwrap() > 100,
        "{expected}"
    );
    for shards in [1, 3, 8] {
        let plan_dir = work.path().join(format!("plan{shards}"));
        let planned = plan(&base, &target, shards, &plan_dir);
        assert_eq!(planned.status.code(), Some(0), "{}", text(&planned.stderr));
        let plan_file = json(&plan_dir.join("plan.json"));
        let big = plan_file["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"]["name"] == "big")
            .expect("big is planned");
        assert!(
            big["ranges"].as_array().unwrap().len() >= shards,
            "big is cut for {shards} shards: {big}"
        );
        let out = work.path().join(format!("shards{shards}"));
        run_shards(&base, &target, &plan_dir, &out, shards);
        let dirs = shard_dirs(&out);
        assert_eq!(dirs.len(), shards);
        let merged_path = work.path().join(format!("merged{shards}.json"));
        let merged = merge(&dirs, &merged_path);
        assert_eq!(
            merged.status.code(),
            Some(code),
            "merge of {shards}: {}",
            text(&merged.stderr)
        );
        let got = json(&merged_path);
        assert_eq!(
            answer(&got),
            answer(&expected),
            "the merge of {shards} shards differs from the single run"
        );
    }
    // A capped listing lists the same findings: the first ones in key order, in both.
    let (b, t) = urls(&base, &target);
    let capped = work.path().join("capped.json");
    let c = capped.to_str().unwrap();
    let one = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "-q",
        "--max-findings",
        "40",
        "--json",
        c,
    ]);
    assert_eq!(one.status.code(), Some(1));
    let single_capped = json(&capped);
    let mut args = vec!["merge", "-q", "--max-findings", "40", "--json", c];
    let dirs = shard_dirs(&work.path().join("shards8"));
    let dirs: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    args.extend(dirs);
    assert_eq!(pgsalvage(&args).status.code(), Some(1));
    let merged_capped = json(&capped);
    assert_eq!(single_capped["findings_truncated"], true);
    assert_eq!(merged_capped["findings"], single_capped["findings"]);
}

#[test]
fn merge_refuses_missing_repeated_and_foreign_shards() {
    let (base, target) = pair("shards_refuse", SCHEMA);
    psql(&target, "DELETE FROM big WHERE id % 5000 = 0;");
    let work = tempfile::tempdir().unwrap();
    let (plan3, plan2) = (work.path().join("p3"), work.path().join("p2"));
    assert_eq!(plan(&base, &target, 3, &plan3).status.code(), Some(0));
    assert_eq!(plan(&base, &target, 2, &plan2).status.code(), Some(0));
    let (out3, out2) = (work.path().join("s3"), work.path().join("s2"));
    run_shards(&base, &target, &plan3, &out3, 3);
    run_shards(&base, &target, &plan2, &out2, 2);
    let three = shard_dirs(&out3);
    let two = shard_dirs(&out2);
    let sink = work.path().join("m.json");

    let missing = merge(&three[..2], &sink);
    assert_eq!(missing.status.code(), Some(2));
    let err = text(&missing.stderr);
    assert!(err.contains("shard 2 of 3 missing"), "{err}");
    assert!(!sink.exists(), "a refused merge writes no report");

    let repeated = merge(
        &[three[0].clone(), three[0].clone(), three[1].clone()],
        &sink,
    );
    assert_eq!(repeated.status.code(), Some(2));
    assert!(
        text(&repeated.stderr).contains("given twice"),
        "{}",
        text(&repeated.stderr)
    );

    let foreign = merge(&[three[0].clone(), three[1].clone(), two[1].clone()], &sink);
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        text(&foreign.stderr).contains("another plan"),
        "{}",
        text(&foreign.stderr)
    );

    // A shard directory whose range file is gone is not whole.
    let ranges = three[1].join("checkpoint").join("ranges");
    let first = std::fs::read_dir(&ranges)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let cut = merge(&three, &sink);
    assert_eq!(cut.status.code(), Some(2));
    assert!(
        text(&cut.stderr).contains("not a whole shard directory"),
        "{}",
        text(&cut.stderr)
    );

    // Every shard once: the merge answers.
    let whole = merge(&two, &sink);
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole.stderr));
}

#[test]
fn a_shard_refuses_a_schema_changed_since_the_plan_and_a_bad_index() {
    let (base, target) = pair("shards_drift", SCHEMA);
    let work = tempfile::tempdir().unwrap();
    let plan_dir = work.path().join("plan");
    assert_eq!(plan(&base, &target, 2, &plan_dir).status.code(), Some(0));
    let (b, t) = urls(&base, &target);
    let out = work.path().join("out");
    // Shard `shard` of the plan with `extra` flags must be refused (exit 2) saying `why`.
    let refused = |shard: &str, extra: &[&str], why: &str| {
        let (p, o) = (plan_dir.to_str().unwrap(), out.to_str().unwrap());
        let mut args = vec!["verify", "--base", &b, "--target", &t, "--plan", p];
        args.extend(["--shard", shard, "--shard-out", o]);
        args.extend(extra);
        let run = pgsalvage(&args);
        let err = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{err}");
        assert!(err.contains(why), "{err}");
    };
    refused("2", &[], "the plan has 2 shards");
    refused("auto", &[], "JOB_COMPLETION_INDEX");
    refused("0", &["--tables", "public.big"], "not the plan's");
    psql(&target, "ALTER TABLE names ADD COLUMN w int;");
    refused(
        "0",
        &[],
        "the schema of public.names on target changed since the shard plan",
    );
    assert!(
        !out.join("shard-000").exists(),
        "a refused shard writes nothing"
    );
}

/// The holder's line on standard output, once the ids are written.
fn start_hold(base: &str, target: &str, plan: &Path) -> Child {
    let (b, t) = urls(base, target);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
        .args([
            "snapshot",
            "hold",
            "--plan",
            plan.to_str().unwrap(),
            "--for",
            "5m",
        ])
        .args(["--base", &b, "--target", &t])
        .env_remove("PGSALVAGE_BASE")
        .env_remove("PGSALVAGE_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the holder");
    let snapshots = plan.join("snapshots.json");
    crate::support::wait_until("the held snapshots", Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the holder ended: {status}");
        }
        snapshots.exists()
    });
    child
}

#[test]
fn shards_read_the_held_snapshot_not_later_writes() {
    let (base, target) = pair("shards_hold", SCHEMA);
    psql(&target, DAMAGE);
    let work = tempfile::tempdir().unwrap();
    let (code, expected) = single(&base, &target, work.path());
    let plan_dir = work.path().join("plan");
    assert_eq!(plan(&base, &target, 3, &plan_dir).status.code(), Some(0));
    let holder = start_hold(&base, &target, &plan_dir);
    // Written after the hold: no shard may see it.
    psql(
        &target,
        "DELETE FROM big WHERE id < 5000; UPDATE names SET v = 0;",
    );
    let out = work.path().join("out");
    run_shards(&base, &target, &plan_dir, &out, 3);
    let merged_path = work.path().join("merged.json");
    let merged = merge(&shard_dirs(&out), &merged_path);
    assert_eq!(merged.status.code(), Some(code), "{}", text(&merged.stderr));
    assert_eq!(answer(&json(&merged_path)), answer(&expected));
    let shard0 = json(&out.join("shard-000").join("shard.json"));
    assert_eq!(shard0["held"], true);

    let released = pgsalvage(&["snapshot", "release", "--plan", plan_dir.to_str().unwrap()]);
    assert_eq!(
        released.status.code(),
        Some(0),
        "{}",
        text(&released.stderr)
    );
    let ended = holder.wait_with_output().unwrap();
    assert_eq!(ended.status.code(), Some(0), "{}", text(&ended.stderr));
    assert!(
        text(&ended.stdout).contains("released"),
        "{}",
        text(&ended.stdout)
    );
    // A shard started after the release would read another instant: refused.
    let late = spawn_shard(&base, &target, &plan_dir, &work.path().join("late"), 0)
        .wait_with_output()
        .unwrap();
    assert_eq!(late.status.code(), Some(2));
    assert!(
        text(&late.stderr).contains("let go"),
        "{}",
        text(&late.stderr)
    );
}

/// The files of a recovery that say what it does, with the lines that name when and from which
/// snapshot it was made (header comments) left out.
fn recovery_body(dir: &Path) -> Vec<(String, String)> {
    let mut files = vec!["restore.sql".to_string(), "undo.sql".to_string()];
    let mut keys: Vec<String> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| format!("keys/{}", e.unwrap().file_name().to_str().unwrap()))
        .collect();
    keys.sort();
    files.extend(keys);
    files
        .into_iter()
        .map(|f| {
            let body = std::fs::read_to_string(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            let kept: Vec<&str> = body.lines().filter(|l| !l.starts_with("--")).collect();
            (f, kept.join("\n"))
        })
        .collect()
}

/// Runs every recover shard of the plan in `plan_dir` at once into `out`; each must exit 0.
fn run_recover_shards(b: &str, t: &str, plan_dir: &Path, out: &Path, shards: usize) {
    let children: Vec<Child> = (0..shards)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
                .args([
                    "recover",
                    "--base",
                    b,
                    "--target",
                    t,
                    "--delete-extra",
                    "-q",
                ])
                .args([
                    "--plan",
                    plan_dir.to_str().unwrap(),
                    "--shard",
                    &i.to_string(),
                ])
                .args(["--shard-out", out.to_str().unwrap()])
                .env_remove("PGSALVAGE_BASE")
                .env_remove("PGSALVAGE_TARGET")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let done = c.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    }
}

#[test]
fn recover_shards_merge_into_the_recovery_a_single_run_writes_and_it_restores_exactly() {
    let (base, target) = pair("shards_recover", SCHEMA);
    psql(&target, DAMAGE);
    psql(&target, "CREATE TABLE gone (id int PRIMARY KEY);");
    let work = tempfile::tempdir().unwrap();
    let single_dir = work.path().join("single");
    let single = crate::support::recover_bin(
        &base,
        &target,
        single_dir.to_str().unwrap(),
        &["--delete-extra"],
    );
    assert_eq!(single.status.code(), Some(1), "{}", text(&single.stderr));
    let body = recovery_body(&single_dir);
    assert!(
        body.iter().filter(|(f, _)| f.starts_with("keys/")).count() >= 4,
        "{body:?}"
    );
    assert!(body[0].1.lines().count() > 200, "restore.sql restores rows");
    let single_plan = json(&single_dir.join("plan.json"));
    let (b, t) = urls(&base, &target);
    let mut last = PathBuf::new();
    for shards in [1, 3, 8] {
        let plan_dir = work.path().join(format!("plan{shards}"));
        assert_eq!(
            plan(&base, &target, shards, &plan_dir).status.code(),
            Some(0)
        );
        let holder = start_hold(&base, &target, &plan_dir);
        let out = work.path().join(format!("shards{shards}"));
        run_recover_shards(&b, &t, &plan_dir, &out, shards);
        let dirs = shard_dirs(&out);
        // Their merge without --out is refused: recover shards make a recovery.
        let no_out = merge(&dirs, &work.path().join("x.json"));
        assert_eq!(no_out.status.code(), Some(2));
        assert!(
            text(&no_out.stderr).contains("--out"),
            "{}",
            text(&no_out.stderr)
        );
        let merged_dir = work.path().join(format!("merged{shards}"));
        let mut args = vec!["merge", "-q", "--out", merged_dir.to_str().unwrap()];
        args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
        let merged = pgsalvage(&args);
        assert_eq!(merged.status.code(), Some(1), "{}", text(&merged.stderr));
        assert_eq!(recovery_body(&merged_dir), body, "{shards} shards");
        let merged_plan = json(&merged_dir.join("plan.json"));
        assert_eq!(merged_plan["totals"], single_plan["totals"]);
        assert_eq!(merged_plan["tables"], single_plan["tables"]);
        let released = pgsalvage(&["snapshot", "release", "--plan", plan_dir.to_str().unwrap()]);
        assert_eq!(released.status.code(), Some(0));
        holder.wait_with_output().unwrap();
        last = merged_dir;
    }
    // The merged recovery, applied, leaves nothing to restore.
    let applied = pgsalvage(&["apply", last.to_str().unwrap(), "--target", &t, "-q"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    let after = pgsalvage(&["verify", "--base", &b, "--target", &t, "-q"]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
}

#[test]
fn a_hold_lets_go_at_its_deadline_and_says_so() {
    let (base, target) = pair("shards_deadline", "CREATE TABLE t (id int PRIMARY KEY);");
    let work = tempfile::tempdir().unwrap();
    let plan_dir = work.path().join("plan");
    assert_eq!(plan(&base, &target, 2, &plan_dir).status.code(), Some(0));
    let (b, t) = urls(&base, &target);
    let p = plan_dir.to_str().unwrap();
    let started = std::time::Instant::now();
    let held = pgsalvage(&[
        "snapshot", "hold", "--plan", p, "--for", "2s", "--base", &b, "--target", &t,
    ]);
    assert_eq!(held.status.code(), Some(0), "{}", text(&held.stderr));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        text(&held.stdout).contains("--for passed"),
        "{}",
        text(&held.stdout)
    );
    let file = json(&plan_dir.join("snapshots.json"));
    assert_eq!(file["released"], "the hold's deadline passed");
    // A hold for other sources than the plan's is refused.
    let other = pgsalvage(&[
        "snapshot", "hold", "--plan", p, "--for", "2s", "--base", &t, "--target", &b,
    ]);
    assert_eq!(other.status.code(), Some(2));
    assert!(
        text(&other.stderr).contains("the plan compares"),
        "{}",
        text(&other.stderr)
    );
}

/// (table, rows, root, leaf count) of every table of a baseline's manifest.
fn baseline_tables(dir: &Path) -> Vec<Value> {
    let manifest = json(&dir.join("manifest.json"));
    manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| serde_json::json!([t["table"], t["rows"], t["root"], t["leaf_count"]]))
        .collect()
}

#[test]
fn baseline_shards_merge_into_the_baseline_one_run_takes() {
    let db = crate::support::fresh_db("shards_baseline");
    psql(&db, SCHEMA);
    let u = url(&db);
    let work = tempfile::tempdir().unwrap();
    let single = work.path().join("single");
    let s = single.to_str().unwrap();
    let one = pgsalvage(&["baseline", "--source", &u, "--out", s, "--rows", "-q"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    let plan_dir = work.path().join("plan");
    let p = plan_dir.to_str().unwrap();
    let planned = pgsalvage(&["plan", "--source", &u, "--shards", "3", "--out", p, "-q"]);
    assert_eq!(planned.status.code(), Some(0), "{}", text(&planned.stderr));
    let holder = {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
            .args([
                "snapshot", "hold", "--plan", p, "--source", &u, "--for", "5m",
            ])
            .env_remove("PGSALVAGE_BASE")
            .env_remove("PGSALVAGE_TARGET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        crate::support::wait_until("the held snapshot", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the holder ended: {status}");
            }
            plan_dir.join("snapshots.json").exists()
        });
        child
    };
    // Written after the hold: the shards do not see it, as the single baseline did not.
    psql(&db, "DELETE FROM big WHERE id < 100;");
    let out = work.path().join("shards");
    let o = out.to_str().unwrap();
    let children: Vec<Child> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
                .args(["baseline", "--source", &u, "--rows", "-q", "--plan", p])
                .args(["--shard", &i.to_string(), "--shard-out", o])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let done = c.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    }
    let merged = work.path().join("merged");
    let m = merged.to_str().unwrap();
    let dirs = shard_dirs(&out);
    let mut args = vec!["merge", "-q", "--out", m];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    let joined = pgsalvage(&args);
    assert_eq!(joined.status.code(), Some(0), "{}", text(&joined.stderr));
    assert_eq!(
        pgsalvage(&["snapshot", "release", "--plan", p])
            .status
            .code(),
        Some(0)
    );
    holder.wait_with_output().unwrap();
    assert_eq!(baseline_tables(&merged), baseline_tables(&single));
    assert!(baseline_tables(&single).len() >= 4);
    // Either baseline against the database now: the same findings (the 99 rows deleted since).
    let against = |b: &str| {
        let path = work.path().join("against.json");
        let run = pgsalvage(&[
            "verify",
            "--base",
            b,
            "--target",
            &u,
            "-q",
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
        let report = json(&path);
        (report["findings"].clone(), report["totals"].clone())
    };
    let (found, totals) = against(m);
    assert_eq!((found.clone(), totals.clone()), against(s));
    assert_eq!(totals["missing"], 99, "{totals}");
}
