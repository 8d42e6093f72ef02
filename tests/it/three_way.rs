//! Three-way recovery: the backup as base (restored from `pg_dump -Fc`), a real streaming standby
//! paused before the damage as the replica, the damaged primary as target. Every key lands in its
//! class; the restore makes the target equal to the replica except for what the table says to
//! keep. And random three-way scenarios against an in-memory oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pgsalvage::apply::{apply, ApplySettings};
use pgsalvage::classify::ConflictPolicy;
use pgsalvage::cluster::Cluster;
use pgsalvage::progress::NullReporter;
use pgsalvage::recover::{recover, RecoverSettings};
use pgsalvage::settings::{RestoreSpec, VerifySettings};
use pgsalvage::source::conninfo::{resolve, ProcessEnv};
use pgsalvage::source::Role;

use crate::random::Rng;
use crate::support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn three(base: &str, replica: &str, target: &str) -> VerifySettings {
    let conn = |u: &str| resolve(u, &ProcessEnv).unwrap();
    let mut s = VerifySettings::new(vec![
        (Role::Base, conn(base)),
        (Role::Replica, conn(replica)),
        (Role::Target, conn(target)),
    ]);
    s.max_findings = usize::MAX;
    s
}

/// (key, class) of every finding.
fn classes(report: &pgsalvage::report::VerifyReport) -> BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .map(|f| (f.key.get().to_string(), f.kind.to_string()))
        .collect()
}

#[test]
fn all_ten_classes_with_a_paused_standby_and_a_restored_dump() {
    let primary = Cluster::start_with(&[("wal_level", "replica")]).expect("primary cluster");
    primary.create_db("app").unwrap();
    primary
        .psql("app", "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;")
        .unwrap();
    // T0: the backup, restored from a custom-format dump into another cluster.
    let dump = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(primary.bindir().join("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(dump.path())
        .arg(primary.url("app"))
        .status()
        .unwrap();
    assert!(status.success(), "pg_dump");
    let base = fresh_db("backup");
    let status = Command::new(primary.bindir().join("pg_restore"))
        .args(["--no-owner", "-d", &url(&base)])
        .arg(dump.path())
        .status()
        .unwrap();
    assert!(status.success(), "pg_restore");
    // T0 → T1: legitimate writes, seen by the standby.
    primary
        .psql(
            "app",
            "UPDATE t SET v = 'legit' WHERE id IN (10, 11, 12, 13);
             INSERT INTO t VALUES (201, 'new'), (202, 'new'), (203, 'new');
             DELETE FROM t WHERE id IN (20, 21, 22);",
        )
        .unwrap();
    let standby = primary.standby().expect("standby");
    wait_until("the standby to catch up", Duration::from_secs(30), || {
        standby
            .psql("app", "SELECT count(*) FROM t WHERE id = 203")
            .map(|c| c.trim() == "1")
            .unwrap_or(false)
    });
    standby
        .psql("postgres", "SELECT pg_wal_replay_pause()")
        .unwrap();
    wait_until("replay to pause", Duration::from_secs(30), || {
        standby
            .psql("postgres", "SELECT pg_get_wal_replay_pause_state()")
            .map(|s| s.trim() == "paused")
            .unwrap_or(false)
    });
    // T1 → T2: the damage, which the paused standby does not see.
    primary
        .psql(
            "app",
            "DELETE FROM t WHERE id = 1;                         -- lost
             UPDATE t SET v = 'oops' WHERE id = 2;               -- damaged
             UPDATE t SET v = 'v10' WHERE id = 10;               -- legit change reverted
             DELETE FROM t WHERE id = 11;                        -- lost after change
             UPDATE t SET v = 'third' WHERE id = 12;             -- conflict
             DELETE FROM t WHERE id = 201;                       -- lost new row
             UPDATE t SET v = 'oops' WHERE id = 202;             -- damaged new row
             INSERT INTO t VALUES (20, 'v20');                   -- deleted, resurrected
             INSERT INTO t VALUES (21, 'other');                 -- conflict (deleted on replica)
             INSERT INTO t VALUES (300, 'after');                -- new on target",
        )
        .unwrap();
    let target = primary.url("app");
    let replica = standby.url("app");
    let s = three(&url(&base), &replica, &target);
    let report = rt()
        .block_on(pgsalvage::verify(&s, Arc::new(NullReporter)))
        .unwrap();
    assert!(report.sources[&Role::Replica].in_recovery);
    let want: BTreeSet<(String, String)> = [
        ("[1]", "lost"),
        ("[2]", "damaged"),
        ("[10]", "legit_change_reverted"),
        ("[11]", "lost_after_change"),
        ("[12]", "conflict"),
        ("[13]", "changed_since_backup"),
        ("[201]", "lost_new_row"),
        ("[202]", "damaged_new_row"),
        ("[203]", "new_since_backup"),
        ("[20]", "deleted_resurrected"),
        ("[21]", "conflict"),
        ("[22]", "deleted_since_backup"),
        ("[300]", "new_on_target"),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), c.to_string()))
    .collect();
    assert_eq!(classes(&report), want);
    let t = &report.tables[0];
    assert_eq!(t.classes["conflict"], 2);
    assert_eq!(t.classes["lost"], 1);
    assert_eq!(report.exit_code, 1);

    // The restore: keep-target on conflicts; the target then equals the replica except for the
    // conflicts and the new row on the target, which the table says to keep.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut verify = three(&url(&base), &replica, &target);
    verify.restore = Some(RestoreSpec {
        on_conflict: ConflictPolicy::KeepTarget,
        ..RestoreSpec::default()
    });
    let outcome = rt()
        .block_on(recover(
            &RecoverSettings {
                verify,
                out: out.clone(),
                parquet: false,
                force: false,
            },
            Arc::new(NullReporter),
        ))
        .unwrap();
    assert_eq!(
        (
            outcome.plan.totals.insert,
            outcome.plan.totals.update,
            outcome.plan.totals.delete
        ),
        (3, 3, 1)
    );
    let applied = rt()
        .block_on(apply(&ApplySettings {
            dir: out,
            target: resolve(&target, &ProcessEnv).unwrap(),
            dry_run: false,
            skip_changed: false,
            lock_wait: std::time::Duration::from_secs(60),
        }))
        .unwrap();
    assert!(
        applied.committed && applied.reverify_mismatches.is_empty(),
        "{applied:?}"
    );
    let conn = |u: &str| resolve(u, &ProcessEnv).unwrap();
    let mut two = VerifySettings::new(vec![
        (Role::Base, conn(&replica)),
        (Role::Target, conn(&target)),
    ]);
    two.max_findings = usize::MAX;
    let after = rt()
        .block_on(pgsalvage::verify(&two, Arc::new(NullReporter)))
        .unwrap();
    assert_eq!(
        found(&after),
        [
            finding("public.t", "[12]", "divergent", "v"),
            finding("public.t", "[21]", "extra", ""),
            finding("public.t", "[300]", "extra", ""),
        ]
        .into()
    );
}

/// An independent model of the classification table, on row values.
fn oracle(b: Option<&String>, r: Option<&String>, t: Option<&String>) -> Option<&'static str> {
    Some(match (b, r, t) {
        (Some(b), Some(r), Some(t)) if b == r && r == t => return None,
        (Some(b), Some(r), t) if b == r => {
            if t.is_none() {
                "lost"
            } else {
                "damaged"
            }
        }
        (Some(_), Some(r), Some(t)) if r == t => "changed_since_backup",
        (Some(b), Some(_), Some(t)) if b == t => "legit_change_reverted",
        (Some(_), Some(_), None) => "lost_after_change",
        (Some(_), Some(_), Some(_)) => "conflict",
        (None, Some(r), Some(t)) if r == t => "new_since_backup",
        (None, Some(_), None) => "lost_new_row",
        (None, Some(_), Some(_)) => "damaged_new_row",
        (Some(_), None, None) => "deleted_since_backup",
        (Some(b), None, Some(t)) if b == t => "deleted_resurrected",
        (Some(_), None, Some(_)) => "conflict",
        (None, None, Some(_)) => "new_on_target",
        (None, None, None) => return None,
    })
}

/// Random writes on a model and the same writes as SQL.
fn mutate(rows: &mut BTreeMap<i64, String>, rng: &mut Rng, n: usize, tag: &str) -> String {
    let mut sql = String::new();
    for i in 0..n {
        let key = rng.below(1200) as i64;
        match (rows.contains_key(&key), rng.below(3)) {
            (true, 0) => {
                rows.remove(&key);
                sql.push_str(&format!("DELETE FROM t WHERE id = {key};\n"));
            }
            (true, _) => {
                // Sometimes back to an earlier-looking value, so reverts happen too.
                let v = if rng.below(4) == 0 {
                    format!("v{key}")
                } else {
                    format!("{tag}{i}")
                };
                sql.push_str(&format!("UPDATE t SET v = '{v}' WHERE id = {key};\n"));
                rows.insert(key, v);
            }
            (false, _) => {
                let v = if rng.below(3) == 0 {
                    format!("v{key}")
                } else {
                    format!("{tag}{i}")
                };
                sql.push_str(&format!("INSERT INTO t VALUES ({key}, '{v}');\n"));
                rows.insert(key, v);
            }
        }
    }
    sql
}

#[test]
fn random_three_way_scenarios_match_the_oracle() {
    for seed in [41u64, 42, 43] {
        let mut rng = Rng::new(seed);
        let base_rows: BTreeMap<i64, String> = (0..1000).map(|k| (k, format!("v{k}"))).collect();
        let (base, replica) = pair("tw", "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(0, 999) g;");
        let mut replica_rows = base_rows.clone();
        psql(&replica, &mutate(&mut replica_rows, &mut rng, 150, "legit"));
        let target = format!("{replica}_t");
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{target}\" TEMPLATE \"{replica}\""),
        );
        let mut target_rows = replica_rows.clone();
        psql(&target, &mutate(&mut target_rows, &mut rng, 150, "damage"));
        let keys: BTreeSet<i64> = base_rows
            .keys()
            .chain(replica_rows.keys())
            .chain(target_rows.keys())
            .copied()
            .collect();
        let want: BTreeSet<(String, String)> = keys
            .iter()
            .filter_map(|k| {
                oracle(base_rows.get(k), replica_rows.get(k), target_rows.get(k))
                    .map(|c| (format!("[{k}]"), c.to_string()))
            })
            .collect();
        // Narrow-first reads (issue 23) classify from their row hashes alike.
        for (jobs, narrow) in [(1, false), (3, false), (2, true)] {
            let mut s = three(&url(&base), &url(&replica), &url(&target));
            s.jobs = jobs;
            s.narrow = narrow;
            let report = rt()
                .block_on(pgsalvage::verify(&s, Arc::new(NullReporter)))
                .unwrap();
            assert_eq!(
                classes(&report),
                want,
                "seed {seed} jobs {jobs} narrow {narrow}"
            );
        }
    }
}

#[test]
fn rows_written_after_the_replica_are_never_overwritten() {
    let (base, replica) = pair(
        "after",
        "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
         INSERT INTO t SELECT g, 'v' || g, '2025-01-01' FROM generate_series(1, 50) g;",
    );
    let target = format!("{replica}_t");
    psql(
        "postgres",
        &format!("CREATE DATABASE \"{target}\" TEMPLATE \"{replica}\""),
    );
    psql(
        &target,
        "UPDATE t SET v = 'broken' WHERE id = 1;
         UPDATE t SET v = 'written after', updated_at = '2026-11-24 04:00+00' WHERE id = 2;
         DELETE FROM t WHERE id = 3;",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut verify = three(&url(&base), &url(&replica), &url(&target));
    verify.restore = Some(RestoreSpec {
        changed_after: [(
            pgsalvage::shape::TableName::new("public", "t"),
            "updated_at > '2026-11-24 03:00+00'".to_string(),
        )]
        .into(),
        ..RestoreSpec::default()
    });
    let outcome = rt()
        .block_on(recover(
            &RecoverSettings {
                verify,
                out: out.clone(),
                parquet: false,
                force: false,
            },
            Arc::new(NullReporter),
        ))
        .unwrap();
    // Both changed rows are "damaged" by class; only the one not written after the replica is restored.
    assert_eq!(outcome.report.tables[0].classes["damaged"], 2);
    assert_eq!(
        (
            outcome.plan.totals.insert,
            outcome.plan.totals.update,
            outcome.plan.totals.keep
        ),
        (1, 1, 1)
    );
    let applied = rt()
        .block_on(apply(&ApplySettings {
            dir: out,
            target: resolve(&url(&target), &ProcessEnv).unwrap(),
            dry_run: false,
            skip_changed: false,
            lock_wait: std::time::Duration::from_secs(60),
        }))
        .unwrap();
    assert!(applied.committed && applied.reverify_mismatches.is_empty());
    assert_eq!(
        psql(&target, "SELECT id, v FROM t WHERE id <= 3 ORDER BY id").trim(),
        "1|v1\n2|written after\n3|v3"
    );
}

#[test]
fn three_way_reports_count_rows_the_target_needs_as_well_as_classes() {
    let (base, replica) = crate::support::pair(
        "needs",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    );
    // After the backup, legitimately: a row deleted, a row changed, a row added.
    psql(&replica, "DELETE FROM t WHERE id = 10; UPDATE t SET v = 'legit' WHERE id = 20; INSERT INTO t VALUES (100, 'new')");
    let target = format!("{replica}_target");
    psql(
        "postgres",
        &format!("CREATE DATABASE \"{target}\" TEMPLATE \"{replica}\""),
    );
    // The damage: two rows lost, one damaged, the deleted one back; and a legitimate new row.
    psql(
        &target,
        "DELETE FROM t WHERE id IN (1, 2); UPDATE t SET v = 'broken' WHERE id = 3;
         INSERT INTO t VALUES (10, 'v10'), (200, 'new on target');",
    );
    let report = rt()
        .block_on(pgsalvage::verify(
            &three(&url(&base), &url(&replica), &url(&target)),
            std::sync::Arc::new(pgsalvage::progress::NullReporter),
        ))
        .unwrap();
    let t = &report.tables[0];
    assert_eq!(
        (t.missing, t.extra, t.divergent),
        (2, 1, 1),
        "{:?}",
        t.classes
    );
    assert_eq!(
        (
            report.totals.missing,
            report.totals.extra,
            report.totals.divergent
        ),
        (2, 1, 1)
    );
    let summary = pgsalvage::report::human::summary(&report);
    assert!(
        summary.contains("(2 missing, 1 extra, 1 divergent rows)"),
        "{summary}"
    );
}
