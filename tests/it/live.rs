//! A live primary is never blocked (issue 18): a migration's DDL issued during a long run waits
//! for one range at most, and so does the application query queued behind it; a table rewritten
//! under the snapshot is caught; a lock held by someone else is waited for, said, and bounded; the
//! throttle pauses on a file and on load.
//!
//! Runs are made long on purpose with `--max-rate`, so that "one range" is far shorter than "the
//! whole run" and the bounds below tell the two apart.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::{pair, pgsalvage, psql, text, url};

/// 1e6 rows of about 60 bytes in binary COPY: five ranges of 12 MB; at 10 MB/s a run lasts about
/// 6 s and a range about 1.2 s.
const BIG: &str = "CREATE TABLE big (id int PRIMARY KEY, v text);
     INSERT INTO big SELECT g, repeat('x', 40) || g FROM generate_series(1, 1000000) g;
     ANALYZE big;";

fn spawn_pgsalvage(args: Vec<String>) -> JoinHandle<(std::process::Output, Duration)> {
    thread::spawn(move || {
        let started = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pgsalvage(&args);
        (out, started.elapsed())
    })
}

/// Runs `sql` on `db` in the background; returns how long it took.
fn timed(db: &str, sql: &str) -> JoinHandle<Duration> {
    let (db, sql) = (db.to_string(), sql.to_string());
    thread::spawn(move || {
        let started = Instant::now();
        psql(&db, &sql);
        started.elapsed()
    })
}

fn slow_verify(base: &str, target: &str) -> Vec<String> {
    [
        "verify",
        "--base",
        &url(base),
        "--target",
        &url(target),
        "--jobs",
        "1",
        "--max-rate",
        "10MB",
        "--no-progress",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_ddl_during_a_long_verify_waits_for_one_range_at_most() {
    let (base, target) = pair("ddlv", BIG);
    let run = spawn_pgsalvage(slow_verify(&base, &target));
    thread::sleep(Duration::from_millis(1500));
    let ddl = timed(&target, "ALTER TABLE big ADD COLUMN z int");
    thread::sleep(Duration::from_millis(200));
    let app = timed(&target, "SELECT count(*) FROM big WHERE id < 10");
    let (ddl, app) = (ddl.join().unwrap(), app.join().unwrap());
    let (out, total) = run.join().unwrap();
    // A column added after the snapshot changes no row of it: the run stays exact.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        total > Duration::from_secs(5),
        "the run was not long: {total:?}"
    );
    assert!(ddl < total / 3, "the DDL waited {ddl:?} of a {total:?} run");
    assert!(app < total / 3, "the query behind the DDL waited {app:?}");
}

#[test]
fn a_ddl_during_a_long_baseline_waits_for_one_range_at_most() {
    let (_, target) = pair("ddlb", BIG);
    let out_dir = std::env::temp_dir().join(format!("pgsalvage-ddlb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let args = [
        "baseline",
        "--source",
        &url(&target),
        "--out",
        out_dir.to_str().unwrap(),
        "--jobs",
        "1",
        "--max-rate",
        "10MB",
        "--no-progress",
    ];
    let run = spawn_pgsalvage(args.map(String::from).to_vec());
    thread::sleep(Duration::from_millis(1500));
    let ddl = timed(&target, "ALTER TABLE big ADD COLUMN z int");
    let ddl = ddl.join().unwrap();
    let (out, total) = run.join().unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        total > Duration::from_secs(3),
        "the run was not long: {total:?}"
    );
    assert!(ddl < total / 3, "the DDL waited {ddl:?} of a {total:?} run");
}

#[test]
fn a_truncate_committed_mid_run_is_caught_never_reported_as_missing_rows() {
    let (base, target) = pair("trunc", BIG);
    let run = spawn_pgsalvage(slow_verify(&base, &target));
    thread::sleep(Duration::from_millis(1500));
    timed(&target, "TRUNCATE big").join().unwrap();
    let (out, _) = run.join().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("public.big was rewritten after the snapshot was taken"),
        "{stderr}"
    );
    assert!(stdout.contains("INCOMPLETE"), "{stdout}");
    assert!(
        stdout.contains("(0 missing, 0 extra, 0 divergent rows in what was compared)"),
        "a rewritten table read as rows missing: {stdout}"
    );
}

/// A session holding `table` ACCESS EXCLUSIVE for `secs` seconds; returns once it holds it.
fn hold_lock(db: &str, table: &str, secs: u32) -> JoinHandle<Duration> {
    let holder = timed(
        db,
        &format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({secs}); COMMIT;"
        ),
    );
    let probe = format!(
        "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass AND mode = 'AccessExclusiveLock' AND granted"
    );
    crate::support::wait_until("the lock to be held", Duration::from_secs(10), || {
        psql(db, &probe).trim() == "1"
    });
    holder
}

const SMALL: &str = "CREATE TABLE t (id int PRIMARY KEY, v text);
     INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g; ANALYZE t;";

#[test]
fn a_lock_held_past_lock_wait_leaves_the_table_unverified_naming_the_holder() {
    let (base, target) = pair("lockw", SMALL);
    let holder = hold_lock(&target, "t", 8);
    let started = Instant::now();
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--lock-wait",
        "2s",
        "--no-progress",
    ]);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(7), "gave up after {took:?}");
    assert!(
        stderr.contains("waiting for a lock on public.t on target"),
        "the wait was not said while it lasted: {stderr}"
    );
    assert!(
        stderr.contains("reading public.t from target, range (-inf, +inf): no lock within 2 s (--lock-wait): pid "),
        "{stderr}"
    );
    assert!(
        stderr.contains("holds AccessExclusiveLock (active: BEGIN; LOCK TABLE t")
            || stderr.contains("holds AccessExclusiveLock (active: SELECT pg_sleep(8)"),
        "the holder is not named: {stderr}"
    );
    holder.join().unwrap();
}

#[test]
fn a_lock_released_within_lock_wait_is_waited_for_and_the_run_goes_on() {
    let (base, target) = pair("lockok", SMALL);
    psql(&target, "UPDATE t SET v = 'changed' WHERE id = 7");
    let holder = hold_lock(&target, "t", 3);
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--no-progress",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        text(&out.stdout).contains("1 divergent"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("waiting for a lock on public.t on target"),
        "{stderr}"
    );
    assert!(stderr.contains("stopped waiting"), "{stderr}");
    holder.join().unwrap();
}

#[test]
fn a_pause_file_holds_the_run_until_it_is_removed() {
    let (base, target) = pair("pausef", SMALL);
    let file = std::env::temp_dir().join(format!("pgsalvage-pause-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let (base, target) = (url(&base), url(&target));
    let mut args = vec!["verify", "--base", &base, "--target", &target];
    args.extend(["--no-progress", "--pause-file", file.to_str().unwrap()]);
    let run = spawn_pgsalvage(args.iter().map(|s| s.to_string()).collect());
    thread::sleep(Duration::from_millis(2500));
    assert!(
        !run.is_finished(),
        "the run did not pause for {}",
        file.display()
    );
    std::fs::remove_file(&file).unwrap();
    let (out, took) = run.join().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(took > Duration::from_millis(2500), "{took:?}");
    assert!(
        stderr.contains(&format!("paused: {} exists (--pause-file)", file.display())),
        "{stderr}"
    );
}

#[test]
fn max_active_pauses_while_the_application_is_busy() {
    let (base, target) = pair("maxact", SMALL);
    let busy: Vec<_> = (0..2)
        .map(|_| timed(&target, "SELECT pg_sleep(3)"))
        .collect();
    crate::support::wait_until("two busy sessions", Duration::from_secs(10), || {
        let n = psql(
            &target,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)' AND state = 'active'",
        );
        n.trim() == "2"
    });
    let started = Instant::now();
    let out = pgsalvage(&[
        "verify",
        "--base",
        &url(&base),
        "--target",
        &url(&target),
        "--max-active",
        "1",
        "--no-progress",
    ]);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sessions active on target (--max-active 1)"),
        "{stderr}"
    );
    assert!(
        took > Duration::from_millis(1500),
        "did not pause: {took:?}"
    );
    for b in busy {
        b.join().unwrap();
    }
}

/// Starts the binary with `args`, without waiting.
fn start(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pgsalvage")
}

fn interrupt(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn an_interrupted_verify_stops_and_reports_what_it_compared_as_incomplete() {
    let (base, target) = pair("intv", BIG);
    let dir = std::env::temp_dir().join(format!("pgsalvage-intv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let args = slow_verify(&base, &target);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--json", json.to_str().unwrap()]);
    let started = Instant::now();
    let child = start(&args);
    thread::sleep(Duration::from_millis(2000));
    interrupt(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_millis(4500), "stopped after {took:?}");
    assert!(
        stderr.contains("interrupted (SIGINT): stopping after the key ranges being read"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"], "incomplete", "{report}");
    let errors = report["tables"][0]["errors"].to_string();
    assert!(errors.contains("ranges were not verified"), "{errors}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupted_baseline_leaves_no_directory_behind() {
    let (_, target) = pair("intb", BIG);
    let dir = std::env::temp_dir().join(format!("pgsalvage-intb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_dir = dir.join("nightly");
    let child = start(&[
        "baseline",
        "--source",
        &url(&target),
        "--out",
        out_dir.to_str().unwrap(),
        "--rows",
        "--jobs",
        "1",
        "--max-rate",
        "10MB",
        "--no-progress",
    ]);
    thread::sleep(Duration::from_millis(2000));
    interrupt(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn json_file(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The findings of a JSON report as a sorted list, for comparing runs.
fn findings_of(report: &serde_json::Value) -> Vec<String> {
    let mut found: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.to_string())
        .collect();
    found.sort();
    found
}

#[test]
fn a_killed_verify_resumes_from_its_checkpoint_and_reports_as_one_run_would() {
    let (base, target) = pair("ckpt", BIG);
    psql(
        &target,
        "DELETE FROM big WHERE id % 9973 = 0; UPDATE big SET v = 'changed' WHERE id % 7919 = 0;
         INSERT INTO big VALUES (2000001, 'new');",
    );
    let dir = std::env::temp_dir().join(format!("pgsalvage-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (whole, first, resumed) = (
        dir.join("whole.json"),
        dir.join("first.json"),
        dir.join("resumed.json"),
    );
    let checkpoint = dir.join("ckpt");
    let (b, t) = (url(&base), url(&target));
    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--no-progress",
        "--json",
        whole.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    let args = slow_verify(&base, &target);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend([
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
        first.to_str().unwrap(),
    ]);
    let mut child = start(&args);
    let ranges = checkpoint.join("ranges");
    let saved = || {
        std::fs::read_dir(&ranges).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
        })
    };
    crate::support::wait_until("a range in the checkpoint", Duration::from_secs(20), || {
        saved() >= 1
    });
    interrupt(&child, "-KILL");
    child.wait().unwrap();
    let done_before = saved();
    assert!(!first.exists(), "a killed run wrote its report");

    // Another comparison is refused the checkpoint.
    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--no-progress",
        "--key",
        "public.big=id,v",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("was made for another comparison"),
        "{}",
        text(&out.stderr)
    );

    let out = pgsalvage(&[
        "verify",
        "--base",
        &b,
        "--target",
        &t,
        "--no-progress",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
        resumed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (a, r) = (json_file(&whole), json_file(&resumed));
    let planned = r["tables"][0]["ranges"]["planned"].as_u64().unwrap() as usize;
    assert!(
        done_before < planned,
        "the kill came after every range: {done_before} of {planned}"
    );
    assert_eq!(
        r["resumed"]["ranges"].as_u64(),
        Some(done_before as u64),
        "{}",
        r["resumed"]
    );
    assert_eq!(
        r["tables"][0]["ranges"]["resumed"].as_u64(),
        Some(done_before as u64)
    );
    assert_eq!(r["resumed"]["earlier_runs"].as_array().unwrap().len(), 1);
    for field in [
        "rows",
        "missing",
        "extra",
        "divergent",
        "classes",
        "divergent_columns",
        "roots",
        "status",
    ] {
        assert_eq!(
            a["tables"][0][field], r["tables"][0][field],
            "{field} differs"
        );
    }
    assert_eq!(a["totals"], r["totals"]);
    assert_eq!(a["verdict"], r["verdict"]);
    assert_eq!(findings_of(&a), findings_of(&r));
    // Four workers finish five ranges in any order; the listing is in key order all the same.
    let keys: Vec<i64> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"][0].as_i64().unwrap())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "findings out of key order: {keys:?}"
    );
    assert_eq!(findings_of(&a).len(), 100 + 126 + 1, "the damage made");
    assert!(!checkpoint.exists(), "a complete run keeps its checkpoint");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A damaged table `t` (5 rows deleted), its recovery directory, and an application transaction
/// writing to `t` for `secs` seconds that already holds its lock.
struct Behind {
    target: String,
    dir: tempfile::TempDir,
    out_dir: std::path::PathBuf,
    writer: JoinHandle<Duration>,
}

fn recovery_behind_a_writer(tag: &str, secs: u32) -> Behind {
    let (base, target) = pair(tag, SMALL);
    psql(&target, "DELETE FROM t WHERE id <= 5");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("rec");
    let (b, t) = (url(&base), url(&target));
    let out_str = out_dir.to_str().unwrap();
    let out = pgsalvage(&[
        "recover", "--base", &b, "--target", &t, "--out", out_str, "-q",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let writer = timed(
        &target,
        &format!("BEGIN; UPDATE t SET v = v WHERE id = 900; SELECT pg_sleep({secs}); COMMIT;"),
    );
    let held = "SELECT count(*) FROM pg_locks WHERE relation = 't'::regclass \
                AND mode = 'RowExclusiveLock' AND granted";
    crate::support::wait_until(
        "the writer to hold its lock",
        Duration::from_secs(10),
        || psql(&target, held).trim() == "1",
    );
    Behind {
        target,
        dir,
        out_dir,
        writer,
    }
}

#[test]
fn apply_waits_for_a_writer_within_lock_wait_and_gives_up_naming_it_changing_nothing() {
    let Behind {
        target,
        dir: _dir,
        out_dir,
        writer,
    } = recovery_behind_a_writer("applock", 8);
    let t = url(&target);
    let started = Instant::now();
    let out = pgsalvage(&[
        "apply",
        out_dir.to_str().unwrap(),
        "--target",
        &t,
        "--lock-wait",
        "2s",
        "--no-progress",
    ]);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(6), "gave up after {took:?}");
    assert!(stderr.contains("waiting to lock public.t"), "{stderr}");
    assert!(
        stderr.contains("locking public.t: no lock within 2 s (--lock-wait): pid "),
        "{stderr}"
    );
    assert!(
        stderr.contains("holds RowExclusiveLock (active: SELECT pg_sleep(8)"),
        "the writer is not named: {stderr}"
    );
    assert_eq!(
        psql(&target, "SELECT count(*) FROM t").trim(),
        "995",
        "apply changed rows"
    );
    writer.join().unwrap();
    // Once the writer is gone, the same plan applies.
    let out = pgsalvage(&[
        "apply",
        out_dir.to_str().unwrap(),
        "--target",
        &t,
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(psql(&target, "SELECT count(*) FROM t").trim(), "1000");
}

#[test]
fn a_long_baseline_moves_to_new_snapshots_with_max_snapshot_age_and_records_them() {
    let (_, target) = pair("epochs", BIG);
    let dir = std::env::temp_dir().join(format!("pgsalvage-epochs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_dir = dir.join("nightly");
    let t = url(&target);
    let args = [
        "baseline",
        "--source",
        &t,
        "--out",
        out_dir.to_str().unwrap(),
        "--rows",
        "--jobs",
        "1",
        "--max-rate",
        "10MB",
        "--max-snapshot-age",
        "1s",
        "--no-progress",
    ];
    let run = spawn_pgsalvage(args.map(String::from).to_vec());
    thread::sleep(Duration::from_millis(2500));
    // Written after the first snapshot, into the last key range: a later snapshot sees it.
    psql(&target, "INSERT INTO big VALUES (1000001, 'late')");
    let (out, _) = run.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let manifest = json_file(&out_dir.join("manifest.json"));
    let epochs = manifest["epochs"].as_array().expect("epochs recorded");
    assert!(
        epochs.len() >= 3,
        "{} snapshots for a 6 s run",
        epochs.len()
    );
    let mut ids: Vec<&str> = epochs
        .iter()
        .map(|e| e["snapshot_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), epochs.len(), "snapshots repeat: {ids:?}");
    assert_eq!(manifest["source"], epochs[0]);
    let table = &manifest["tables"][0];
    assert!(
        table["epochs"].as_array().unwrap().len() >= 3,
        "{}",
        table["epochs"]
    );
    assert_eq!(
        table["rows"].as_u64(),
        Some(1_000_001),
        "the late row is in the last snapshot"
    );
    // The baseline is exact against the database as it is now.
    let out = pgsalvage(&[
        "verify",
        "--base",
        out_dir.to_str().unwrap(),
        "--target",
        &t,
        "--no-progress",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn max_lag_pauses_while_a_replica_of_the_source_lags() {
    use pgsalvage::cluster::Cluster;
    let primary = Cluster::start().expect("a primary");
    primary.create_db("app").unwrap();
    primary.psql("app", SMALL).unwrap();
    primary.psql("app", "CREATE TABLE w (n int)").unwrap();
    let standby = primary.standby().expect("a standby");
    crate::support::wait_until("the standby to catch up", Duration::from_secs(30), || {
        standby
            .psql("app", "SELECT count(*) FROM t")
            .is_ok_and(|c| c.trim() == "1000")
    });
    standby
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .unwrap();
    // The application keeps writing; the paused standby falls behind.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), primary.url("app"));
        let psql = primary.bindir().join("psql");
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new(&psql)
                    .args([url.as_str(), "-qc", "INSERT INTO w VALUES (1)"])
                    .output();
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let lag =
        "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) > 2 FROM pg_stat_replication";
    crate::support::wait_until("the standby to lag", Duration::from_secs(30), || {
        primary.psql("app", lag).is_ok_and(|l| l.trim() == "t")
    });
    let app = primary.url("app");
    let run = spawn_pgsalvage(
        [
            "verify",
            "--base",
            &app,
            "--target",
            &app,
            "--tables",
            "public.t",
            "--max-lag",
            "1s",
            "--no-progress",
        ]
        .map(String::from)
        .to_vec(),
    );
    thread::sleep(Duration::from_millis(3000));
    assert!(
        !run.is_finished(),
        "the run did not pause for the lagging standby"
    );
    standby
        .psql("postgres", "SELECT pg_wal_replay_resume()")
        .unwrap();
    let (out, took) = run.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(took > Duration::from_secs(3), "{took:?}");
    assert!(
        stderr.contains("paused: a replica of base lags"),
        "{stderr}"
    );
    assert!(stderr.contains("(--max-lag 1 s)"), "{stderr}");
}

#[test]
fn an_interrupted_apply_quits_at_once_and_changes_nothing() {
    // A writer holds the table: apply waits for its lock, and is interrupted while it waits.
    let Behind {
        target,
        dir: _dir,
        out_dir,
        writer,
    } = recovery_behind_a_writer("intapply", 6);
    let t = url(&target);
    let child = start(&[
        "apply",
        out_dir.to_str().unwrap(),
        "--target",
        &t,
        "--no-progress",
    ]);
    thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    interrupt(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(
            "interrupted (SIGINT): quitting; an apply transaction not yet committed is rolled back"
        ),
        "{stderr}"
    );
    assert!(!out_dir.join("applied.json").exists());
    writer.join().unwrap();
    assert_eq!(
        psql(&target, "SELECT count(*) FROM t").trim(),
        "995",
        "apply changed rows"
    );
}
