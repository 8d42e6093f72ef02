//! Consistency: results describe each source's snapshot, not a mix, even when the target is
//! written to while verify runs; and a hot standby is a valid source.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgsalvage::progress::Reporter;
use pgsalvage::shape::TableName;

use crate::support::*;

/// Writes to the target as soon as the first table starts, i.e. after every snapshot was taken.
struct WriteDuringRun {
    target: String,
    done: AtomicBool,
}

impl Reporter for WriteDuringRun {
    fn table_started(&self, _id: usize, _table: &TableName, _est_rows: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            psql(
                &self.target,
                "DELETE FROM t WHERE id % 3 = 0;
                 UPDATE t SET v = 'during' WHERE id % 3 = 1;
                 INSERT INTO t SELECT g, 'new' FROM generate_series(1000001, 1010000) g;",
            );
        }
    }
}

#[test]
fn writes_during_verify_do_not_leak_into_the_result() {
    let (base, target) = pair(
        "during",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
         ANALYZE t;",
    );
    let reporter = Arc::new(WriteDuringRun {
        target: target.clone(),
        done: AtomicBool::new(false),
    });
    let mut s = settings(&base, &target);
    s.jobs = 4;
    let report = verify_with(&s, reporter.clone());
    assert!(reporter.done.load(Ordering::SeqCst), "the writes ran");
    assert_eq!(report.exit_code, 0, "{:?}", report.totals);
    assert_eq!(
        report.tables[0].rows.values().copied().collect::<Vec<_>>(),
        [200000, 200000]
    );
    let after = verify(&base, &target);
    assert_eq!(after.totals.missing, 66666);
    assert_eq!(after.totals.divergent, 66667);
    assert_eq!(after.totals.extra, 10000);
}

#[test]
fn a_hot_standby_is_a_valid_source() {
    let (base, target) = pair(
        "standby",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
         ANALYZE t;",
    );
    psql(
        &target,
        "DELETE FROM t WHERE id = 500; UPDATE t SET v = 'x' WHERE id = 600;",
    );
    let standby = cluster().standby().expect("start a standby");
    wait_until("the standby to catch up", Duration::from_secs(30), || {
        standby
            .psql(&target, "SELECT count(*) FROM t")
            .is_ok_and(|c| c.trim() == "99999")
    });
    let mut s = settings(&base, &target);
    s.sources[1].1 = pgsalvage::source::conninfo::resolve(
        &standby.url(&target),
        &pgsalvage::source::conninfo::ProcessEnv,
    )
    .unwrap();
    let report = verify_with(&s, Arc::new(pgsalvage::progress::NullReporter));
    assert!(report.sources[&pgsalvage::source::Role::Target].in_recovery);
    assert_eq!(
        found(&report),
        [
            finding("public.t", "[500]", "missing", ""),
            finding("public.t", "[600]", "divergent", "v")
        ]
        .into()
    );
    // A baseline taken off the standby's back matches the primary, and records the standby.
    let dir = std::env::temp_dir().join(format!("pgsalvage-standby-bl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let taken = pgsalvage(&[
        "baseline",
        "--source",
        &standby.url(&target),
        "--out",
        out,
        "--rows",
        "-q",
    ]);
    assert_eq!(taken.status.code(), Some(0), "{}", text(&taken.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"]["in_recovery"], true);
    let same = pgsalvage(&["verify", "--base", out, "--target", &url(&target), "-q"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    let against_base = pgsalvage(&["verify", "--base", out, "--target", &url(&base), "-q"]);
    assert_eq!(
        against_base.status.code(),
        Some(1),
        "{}",
        text(&against_base.stdout)
    );
    let verdict = text(&against_base.stdout);
    assert!(
        verdict.contains("0 missing, 1 extra, 1 divergent rows"),
        "{verdict}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
