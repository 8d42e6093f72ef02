//! The binary: exit codes 0/1/2, `--help`, outputs (JSON, CSV, quiet), and one clear line for
//! each kind of bad input; plus a connection lost in the middle of a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pgsalvage::progress::Reporter;
use pgsalvage::shape::TableName;

use crate::support::*;

fn shop() -> (String, String) {
    pair(
        "cli",
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text);
         INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 100) g;
         CREATE TABLE \"Odd, \"\"Name\"\"\" (k text PRIMARY KEY, v int);
         INSERT INTO \"Odd, \"\"Name\"\"\" VALUES ('a,b', 1), ('say \"hi\"', 2);",
    )
}

#[test]
fn help_describes_the_command() {
    let out = pgsalvage(&["verify", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--base",
        "--target",
        "--tables",
        "--jobs",
        "--json",
        "--findings",
        "--max-findings",
        "Exit status",
        "PGPASSWORD",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn exit_codes_say_identical_differences_or_error() {
    let (base, target) = shop();
    let same = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--quiet",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert_eq!(
        text(&same.stdout).trim(),
        "verdict: IDENTICAL (2 tables compared, no differences)"
    );

    psql(&target, "DELETE FROM customers WHERE id = 5; UPDATE \"Odd, \"\"Name\"\"\" SET v = 3 WHERE k = 'a,b'");
    let differs = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--no-progress",
    ]);
    assert_eq!(differs.status.code(), Some(1));
    let stdout = text(&differs.stdout);
    assert!(
        stdout.contains(
            "verdict: DIFFERENCES in 2 of 2 tables (1 missing, 0 extra, 1 divergent rows)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("divergent columns: v (1)"), "{stdout}");

    let missing = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--tables",
        "public.nope",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        first_line(&missing.stderr),
        "error: table public.nope not found on base or target"
    );
}

#[test]
fn json_report_and_findings_csv() {
    let (base, target) = shop();
    psql(
        &target,
        "DELETE FROM customers WHERE id = 5; INSERT INTO customers VALUES (101, 'x');
                   UPDATE \"Odd, \"\"Name\"\"\" SET v = 3 WHERE k = 'a,b'",
    );
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = (
        dir.path().join("report.json"),
        dir.path().join("findings.csv"),
    );
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--findings",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "pgsalvage.verify/2");
    assert_eq!(report["verdict"], "differences");
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["totals"]["missing"], 1);
    assert_eq!(report["sources"]["base"]["in_recovery"], false);
    assert!(report["sources"]["target"]["wal_lsn"]
        .as_str()
        .unwrap()
        .contains('/'));
    let customers = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.customers")
        .unwrap();
    assert_eq!(customers["rows"]["base"], 100);
    assert_eq!(customers["rows"]["target"], 100);
    assert_eq!(customers["roots"]["base"].as_str().unwrap().len(), 64);
    let mut lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[1..].sort();
    assert_eq!(
        lines,
        [
            "table,key,kind,columns",
            "\"public.Odd, \"\"Name\"\"\",\"[\"\"a,b\"\"]\",divergent,v",
            "public.customers,[101],extra,",
            "public.customers,[5],missing,",
        ]
    );
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".pgsalvage")));
}

#[test]
fn max_findings_caps_the_listing_but_not_the_counts() {
    let (base, target) = shop();
    psql(&target, "DELETE FROM customers WHERE id <= 50");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "-q",
        "--max-findings",
        "7",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 7);
    assert_eq!(report["findings_truncated"], true);
    assert_eq!(report["totals"]["missing"], 50);
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let (base, _) = shop();
    let good = url(&base);
    let closed = format!("postgresql://postgres:sekret@127.0.0.1:{}/x", closed_port());
    let nokey = url(&pair(
        "clinokey",
        "CREATE TABLE bare (a int); INSERT INTO bare VALUES (1);",
    )
    .0);
    let no_db = url("no_such_db");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--base", "postgresql://h:notaport/db", "--target", &good],
            "error: --base: invalid port \"notaport\"",
            "hint: a port is a number",
        ),
        (
            vec!["--base", &good, "--target", "host=h sslmode=maybe"],
            "error: --target: invalid sslmode \"maybe\"",
            "hint: use disable",
        ),
        (
            vec!["--base", &good, "--target", "dbname='open"],
            "error: --target: invalid connection string",
            "hint: expected a URI",
        ),
        (
            vec!["--base", &closed, "--target", &good],
            "error: opening base (postgres@127.0.0.1:",
            "hint: check that the server is running",
        ),
        (
            vec!["--base", &good, "--target", &no_db],
            "error: opening target (postgres@127.0.0.1:",
            "hint: check the user, password",
        ),
        (
            vec!["--base", &good, "--target", &good, "--key", "nonsense"],
            "error: invalid --key \"nonsense\"",
            "hint: write --key",
        ),
        (
            vec![
                "--base",
                &nokey,
                "--target",
                &nokey,
                "--key",
                "public.bare=nosuch",
            ],
            "error: key column nosuch of table public.bare does not exist",
            "error",
        ),
    ];
    for (args, first, hint) in cases {
        let mut full = vec!["verify", "--quiet"];
        full.extend(args);
        let out = pgsalvage(&full);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{full:?}: {stderr}");
        assert!(stderr.starts_with(first), "{full:?}:\n{stderr}");
        assert!(stderr.contains(hint), "{full:?}:\n{stderr}");
        assert!(
            !stderr.contains("sekret") && !text(&out.stdout).contains("sekret"),
            "password leaked: {stderr}"
        );
    }
}

fn first_line(bytes: &[u8]) -> String {
    text(bytes).lines().next().unwrap_or_default().to_string()
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Terminates the target's sessions once the first table starts: every unit after that fails.
struct KillTarget {
    target: String,
    done: AtomicBool,
}

impl Reporter for KillTarget {
    fn table_started(&self, _id: usize, _table: &TableName, _est_rows: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            psql(
                "postgres",
                &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'pgsalvage'", self.target),
            );
        }
    }
}

#[test]
fn a_connection_lost_mid_run_is_never_reported_clean() {
    let (base, target) = pair(
        "lost",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' FROM generate_series(1, 120000) g;
         ANALYZE t;",
    );
    let reporter = Arc::new(KillTarget {
        target: target.clone(),
        done: AtomicBool::new(false),
    });
    let report = verify_with(&settings(&base, &target), reporter);
    assert_eq!(report.exit_code, 2);
    assert_eq!(report.verdict, pgsalvage::report::Verdict::Incomplete);
    let t = &report.tables[0];
    assert_eq!(t.status, pgsalvage::report::TableStatus::Error);
    assert!(t.ranges.verified < t.ranges.planned);
    assert!(
        t.errors
            .iter()
            .any(|e| e.starts_with("reading public.t from target, range ")),
        "{:?}",
        t.errors
    );
}

#[test]
fn recover_then_apply_through_the_binary() {
    let (base, target) = shop();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recovery");
    let out_s = out.to_str().unwrap();
    let same = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        out_s,
        "-q",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert!(
        text(&same.stdout).contains("insert 0, update 0, delete 0, keep 0"),
        "{}",
        text(&same.stdout)
    );

    psql(
        &target,
        "DELETE FROM customers WHERE id = 5; UPDATE customers SET name = NULL WHERE id = 6",
    );
    let exists = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        out_s,
        "-q",
    ]);
    assert_eq!(exists.status.code(), Some(2));
    assert!(
        text(&exists.stderr).starts_with(&format!("error: {out_s} already exists")),
        "{}",
        text(&exists.stderr)
    );
    assert!(text(&exists.stderr).contains("hint: choose a new --out directory, or add --force"));

    let rec = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        out_s,
        "-q",
        "--force",
    ]);
    assert_eq!(rec.status.code(), Some(1), "{}", text(&rec.stderr));
    let stdout = text(&rec.stdout);
    assert!(
        stdout.contains("public.customers: insert 1 (missing 1), update 1 (divergent 1; columns differing: name 1)"),
        "{stdout}"
    );
    for file in ["plan.json", "restore.sql", "undo.sql", "keys"] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let leftovers = dir
        .path()
        .read_dir()
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".pgsalvage")
        })
        .count();
    assert_eq!(leftovers, 0, "staging directories left behind");

    let dry = pgsalvage(&["apply", out_s, "--target", &url(&target), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("rolled back, nothing changed"),
        "{}",
        text(&dry.stdout)
    );
    let applied = pgsalvage(&["apply", out_s, "--target", &url(&target)]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert!(
        text(&applied.stdout).contains("re-verified 2 keys: 0 not as planned"),
        "{}",
        text(&applied.stdout)
    );
    let after = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "-q",
    ]);
    assert_eq!(after.status.code(), Some(0));

    let not_a_recovery = pgsalvage(&[
        "apply",
        dir.path().to_str().unwrap(),
        "--target",
        &url(&target),
    ]);
    assert_eq!(not_a_recovery.status.code(), Some(2));
    assert!(
        text(&not_a_recovery.stderr).contains("plan.json"),
        "{}",
        text(&not_a_recovery.stderr)
    );
}

/// A base and a target with a table `secret` that the role `reader` may not read, and a table
/// `open` it may; URLs as `reader` come from [`as_reader`].
fn reader_pair(tag: &str) -> (String, String) {
    let (base, target) = pair(
        tag,
        "CREATE TABLE secret (id int PRIMARY KEY); INSERT INTO secret VALUES (1);
         CREATE TABLE open (id int PRIMARY KEY); INSERT INTO open VALUES (1);",
    );
    for db in [&base, &target] {
        // Two tests may create the role at once: the loser sees a unique violation.
        psql(
            db,
            "DO $$ BEGIN CREATE ROLE reader LOGIN;
                  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
                  GRANT SELECT ON open TO reader;",
        );
    }
    (base, target)
}

fn as_reader(db: &str) -> String {
    url(db).replace("postgres@", "reader@")
}

#[test]
fn permission_denied_fails_that_table_with_its_name() {
    let (base, target) = reader_pair("perm");
    let out = pgsalvage(&[
        "verify",
        "--base",
        &as_reader(&base),
        "--target",
        &as_reader(&target),
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: reading public.secret from base, range (-inf, +inf): error: permission denied for table secret"), "{stderr}");
    assert!(
        text(&out.stdout).contains("verdict: INCOMPLETE: 1 of 2 tables not fully verified"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 19: a password in a connection variable never shows in `--help`.
#[test]
fn help_never_prints_connection_secrets() {
    let secret = "s3cr3t-in-env";
    for cmd in ["verify", "recover", "apply", "check", "status", "baseline"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
            .args([cmd, "--help"])
            .env("PGSALVAGE_TARGET", format!("postgresql://u:{secret}@h/db"))
            .env("PGSALVAGE_BASE", format!("postgresql://u:{secret}@h/db"))
            .env("PGSALVAGE_REPLICA", format!("postgresql://u:{secret}@h/db"))
            .env("PGSALVAGE_SOURCE", format!("postgresql://u:{secret}@h/db"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd} --help failed");
        let help = text(&out.stdout);
        assert!(
            !help.contains(secret),
            "{cmd} --help prints the secret:\n{help}"
        );
        assert!(
            help.contains("PGSALVAGE_"),
            "{cmd} --help names no variable:\n{help}"
        );
    }
}

/// Shared flag groups: every command that reports takes -q, --no-progress and --json, and
/// --jobs 0 is refused by the parser, naming the flag.
#[test]
fn output_flags_are_the_same_everywhere() {
    for cmd in ["verify", "recover", "apply", "check", "status", "baseline"] {
        let out = pgsalvage(&[cmd, "--help"]);
        let help = text(&out.stdout);
        for flag in ["--quiet", "--no-progress", "--json"] {
            assert!(help.contains(flag), "{cmd} --help lacks {flag}:\n{help}");
        }
    }
    for cmd in [
        &["verify", "--base", "x", "--target", "y"][..],
        &["baseline", "--source", "x", "--out", "/tmp/x"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--jobs", "0"]);
        let out = pgsalvage(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("--jobs") && err.contains("at least 1"),
            "{err}"
        );
    }
}

/// Issue 18: a run that compares no table is an error (exit 2) naming the filter, never clean;
/// for verify, recover, baseline and check alike, and a baseline writes nothing.
#[test]
fn zero_tables_is_never_clean() {
    let (base, target) = shop();
    let (b, t) = (url(&base), url(&target));
    let out_dir = tempfile::tempdir().unwrap();
    let rec = out_dir.path().join("rec");
    let bl = out_dir.path().join("bl");
    let runs: Vec<Vec<&str>> = vec![
        vec!["verify", "--base", &b, "--target", &t, "--schema", "nosuch"],
        vec![
            "recover",
            "--base",
            &b,
            "--target",
            &t,
            "--schema",
            "nosuch",
            "--out",
            rec.to_str().unwrap(),
        ],
        vec![
            "baseline",
            "--source",
            &b,
            "--schema",
            "nosuch",
            "--out",
            bl.to_str().unwrap(),
        ],
        vec!["check", "--target", &t, "--schema", "nosuch"],
    ];
    for args in runs {
        let out = pgsalvage(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no table to compare: --schema nosuch matched no table"),
            "{args:?}: {err}"
        );
        assert!(!text(&out.stdout).contains("IDENTICAL"), "{args:?}");
    }
    assert!(!rec.exists() && !bl.exists(), "nothing is left at --out");
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "staging directories left: {left:?}");
}

/// Issue 18: output paths are checked before connecting (an unreachable target proves it), and
/// `--json -` writes the report to standard output with the summary on standard error.
#[test]
fn outputs_are_checked_before_work_and_dash_is_stdout() {
    let dead = format!(
        "postgresql://127.0.0.1:{}/x?connect_timeout=2",
        closed_port()
    );
    for (flag, file) in [
        ("--json", "/nonexistent-dir/r.json"),
        ("--findings", "/nonexistent-dir/f.csv"),
    ] {
        let out = pgsalvage(&["verify", "--base", &dead, "--target", &dead, flag, file]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with(&format!("error: {flag} {file}")), "{err}");
    }
    let (base, target) = shop();
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["verdict"], "identical");
    assert!(text(&out.stderr).contains("verdict: IDENTICAL"));
    assert!(!std::path::Path::new("-").exists(), "no file named -");
}

/// Issue 18: a server that accepts TCP and never answers is given up on within connect_timeout
/// (the whole connection, as libpq means it), with one line naming the source.
#[test]
fn a_silent_server_is_given_up_on_within_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without a byte in reply.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4).flatten() {
            held.push(conn);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let silent = format!("postgresql://u@127.0.0.1:{port}/x?connect_timeout=2&sslmode=disable");
    let started = std::time::Instant::now();
    let out = pgsalvage(&["verify", "--base", &silent, "--target", &silent, "-q"]);
    let took = started.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(
        err.contains("no answer within 2 s (connect_timeout)"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
}

/// Issue 19: recover on an incomplete comparison says why where it stops, writes its --json
/// report all the same, and leaves no recovery behind.
#[test]
fn an_incomplete_recover_says_why_and_still_writes_its_report() {
    let (base, target) = reader_pair("permrec");
    let dir = tempfile::tempdir().unwrap();
    let (out_dir, json) = (dir.path().join("rec"), dir.path().join("r.json"));
    let out = pgsalvage(&[
        "recover",
        "--base",
        &as_reader(&base),
        "--target",
        &as_reader(&target),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "-q",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        last.starts_with("error: the comparison was incomplete, so no restore was written: ")
            && last.contains("permission denied for table secret"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("--json written")).unwrap();
    assert_eq!(report["verdict"], "incomplete");
    assert!(!out_dir.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only r.json is left"
    );
}

/// `--json -` keeps standard output pure JSON for recover and apply too: their summaries and
/// step listings go to standard error.
#[test]
fn recover_and_apply_write_json_to_stdout_with_dash() {
    let (base, target) = shop();
    psql(&target, "DELETE FROM customers WHERE id IN (3, 4)");
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let out = pgsalvage(&[
        "recover",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--out",
        rec.to_str().unwrap(),
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["totals"]["missing"], 2);
    assert!(
        text(&out.stderr).contains("recovery written to"),
        "{}",
        text(&out.stderr)
    );
    let out = pgsalvage(&[
        "apply",
        rec.to_str().unwrap(),
        "--target",
        &url(&target),
        "--dry-run",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let applied: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(applied["dry_run"], true);
    assert!(
        text(&out.stderr).contains("dry run: re-verified"),
        "{}",
        text(&out.stderr)
    );
}
