//! Shared helpers: one throwaway cluster per test binary, fresh databases per test, and ways to
//! run verify (through the library or the binary) and read its findings.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pgsalvage::cluster::Cluster;
use pgsalvage::progress::{NullReporter, Reporter};
use pgsalvage::report::VerifyReport;
use pgsalvage::settings::VerifySettings;
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use pgsalvage::source::Role;

/// The cluster all tests of this binary share; the watchdog removes it after the run. A test
/// that cannot get one fails here, loudly.
pub fn cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        Cluster::start().unwrap_or_else(|e| panic!("cannot start a PostgreSQL cluster: {e}"))
    })
}

/// A new empty database with a unique name.
pub fn fresh_db(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    cluster()
        .create_db(&name)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    name
}

/// A base database built by `sql`, and a target copied from it by `CREATE DATABASE ... TEMPLATE`.
pub fn pair(tag: &str, sql: &str) -> (String, String) {
    let base = fresh_db(&format!("{tag}_base"));
    psql(&base, sql);
    let target = format!("{base}_target");
    psql(
        "postgres",
        &format!("CREATE DATABASE \"{target}\" TEMPLATE \"{base}\""),
    );
    (base, target)
}

pub fn psql(db: &str, sql: &str) -> String {
    cluster()
        .psql(db, sql)
        .unwrap_or_else(|e| panic!("psql on {db}: {e}"))
}

pub fn url(db: &str) -> String {
    cluster().url(db)
}

/// Settings for comparing two databases of the shared cluster, listing every finding.
pub fn settings(base: &str, target: &str) -> VerifySettings {
    let base = resolve(&url(base), &ProcessEnv).expect("base url");
    let target = resolve(&url(target), &ProcessEnv).expect("target url");
    let mut s = VerifySettings::new(vec![(Role::Base, base), (Role::Target, target)]);
    s.max_findings = usize::MAX;
    s
}

pub fn verify_with(settings: &VerifySettings, reporter: Arc<dyn Reporter>) -> VerifyReport {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pgsalvage::verify(settings, reporter))
        .unwrap_or_else(|e| panic!("verify failed: {e}"))
}

pub fn verify(base: &str, target: &str) -> VerifyReport {
    verify_with(&settings(base, target), Arc::new(NullReporter))
}

/// A finding as a comparable tuple: (table, key JSON, kind, columns joined by `|`).
pub type Found = (String, String, String, String);

pub fn found(report: &VerifyReport) -> BTreeSet<Found> {
    assert!(!report.findings_truncated, "findings were truncated");
    report
        .findings
        .iter()
        .map(|f| {
            (
                f.table.clone(),
                f.key.get().to_string(),
                f.kind.to_string(),
                f.columns.join("|"),
            )
        })
        .collect()
}

pub fn finding(table: &str, key: &str, kind: &str, columns: &str) -> Found {
    (
        table.to_string(),
        key.to_string(),
        kind.to_string(),
        columns.to_string(),
    )
}

/// Runs the pgsalvage binary.
pub fn pgsalvage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgsalvage"))
        .args(args)
        .env_remove("PGSALVAGE_BASE")
        .env_remove("PGSALVAGE_TARGET")
        .output()
        .expect("run pgsalvage")
}

/// `pgsalvage recover -q` of two databases of the shared cluster into `out`, with `extra` flags.
pub fn recover_bin(base: &str, target: &str, out: &str, extra: &[&str]) -> Output {
    let (b, t) = (url(base), url(target));
    let mut args = vec!["recover", "--base", &b, "--target", &t, "--out", out, "-q"];
    args.extend(extra);
    pgsalvage(&args)
}

/// Calls `f` every 100 ms until it returns `Some`, and returns that value. Once `timeout` has
/// passed, `f` gets one last call; if that too returns `None`, the test fails naming `what`
/// ("timed out after 30s waiting for the standby to catch up").
pub fn poll_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = Instant::now() >= deadline;
        if let Some(value) = f() {
            return value;
        }
        assert!(!last, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`poll_until`] for a condition: waits until `done` holds.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    poll_until(what, timeout, || done().then_some(()))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn poll_until_returns_the_first_value() {
    let mut calls = 0;
    let got = poll_until("the third call", Duration::from_secs(10), || {
        calls += 1;
        (calls == 3).then_some(calls * 10)
    });
    assert_eq!((got, calls), (30, 3));
}

#[test]
#[should_panic(expected = "waiting for a value that never comes")]
fn poll_until_gives_up_after_a_last_try() {
    let started = Instant::now();
    let mut calls = 0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_until(
            "a value that never comes",
            Duration::from_millis(250),
            || {
                calls += 1;
                None::<()>
            },
        )
    }));
    // Polled every 100 ms for 250 ms, then once more past the deadline.
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!((3..=5).contains(&calls), "{calls} calls");
    std::panic::resume_unwind(outcome.unwrap_err());
}
