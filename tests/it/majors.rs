//! Every PostgreSQL major from 13 to 18 on real servers, across majors: the failed-upgrade case,
//! a backup on one major and the primary on another.
//!
//! The system's cluster (Debian's, 15 on this machine) is `support::cluster()`; the other majors'
//! servers are the builds `scripts/pg_majors.sh` fetches, named by `PGSALVAGE_PG<major>_BINDIR`,
//! which `scripts/test.sh` sets. A missing one fails its tests: nothing is skipped. Each major's
//! server starts once and is shared by its tests, as the system's is.
//!
//! For each major, against the system's: the type matrix is IDENTICAL both ways, every
//! single-value change is found, and recover + apply restore every one of them; check's damaged
//! migration is found (drift included, so no catalog text differs between majors where the
//! schema does not), recovered, applied, and then checks clean and verifies IDENTICAL; a baseline
//! of one major verifies against databases of both; a paused streaming standby of the major is
//! the replica of a three-way recovery, and `status` reads it and its primary. Then the pairs
//! 13 → 18, 14 → 17 and 16 → 15 (base on the first, target on the second) go through the matrix
//! and the recovery.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pgsalvage::cluster::Cluster;
use serde_json::Value;

use crate::support::{cluster, pgsalvage, text, wait_until};
use crate::types::{CHANGES, MATRIX};

/// The majors besides the system's, each with a server build from `scripts/pg_majors.sh`.
const MAJORS: [u32; 5] = [13, 14, 16, 17, 18];

/// The shared server of `major`: a build of that major, or the system's cluster when it is the
/// system's major.
fn server(major: u32) -> &'static Cluster {
    static SERVERS: [OnceLock<Cluster>; MAJORS.len()] = [const { OnceLock::new() }; MAJORS.len()];
    let Some(at) = MAJORS.iter().position(|m| *m == major) else {
        let system = cluster();
        assert_eq!(version_major(system), major, "the system's PostgreSQL");
        return system;
    };
    SERVERS[at].get_or_init(|| start_major(major, &[]))
}

/// A new server of `major` from its build, checked to be that major.
fn start_major(major: u32, settings: &[(&str, &str)]) -> Cluster {
    let var = format!("PGSALVAGE_PG{major}_BINDIR");
    let bindir = std::env::var_os(&var).unwrap_or_else(|| {
        panic!(
            "{var} is not set: PostgreSQL {major} is missing. scripts/test.sh fetches it \
             (source scripts/pg_majors.sh; ensure_pg_majors) and sets {var}"
        )
    });
    let server = Cluster::start_in(Path::new(&bindir), settings)
        .unwrap_or_else(|e| panic!("cannot start PostgreSQL {major} from {var}: {e}"));
    assert_eq!(version_major(&server), major, "the build {var} names");
    server
}

fn version_major(server: &Cluster) -> u32 {
    server.server_version_num().expect("server_version_num") / 10_000
}

/// One database on one of the servers.
struct Db<'a> {
    server: &'a Cluster,
    name: String,
}

impl<'a> Db<'a> {
    /// A new database named after `tag` on `server`, filled by `sql`.
    fn new(server: &'a Cluster, tag: &str, sql: &str) -> Db<'a> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        server
            .create_db(&name)
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let db = Db { server, name };
        db.psql(sql);
        db
    }

    fn psql(&self, sql: &str) -> String {
        self.server
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("psql on {}: {e}", self.name))
    }

    fn url(&self) -> String {
        self.server.url(&self.name)
    }
}

/// Runs the binary and checks its exit status is one of `want`; returns its stdout.
fn run_either(args: &[&str], want: &[i32]) -> String {
    let out = pgsalvage(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        want.iter().any(|w| out.status.code() == Some(*w)),
        "pgsalvage {} exited with {:?}, not {want:?}\n{stdout}{stderr}",
        args.join(" "),
        out.status.code(),
    );
    stdout
}

fn run(args: &[&str], want: i32) -> String {
    run_either(args, &[want])
}

/// Runs the binary with `--json -` (the report on stdout) and checks its exit status.
fn run_json(args: &[&str], want: &[i32]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--json", "-"]);
    serde_json::from_str(&run_either(&args, want)).expect("a JSON report")
}

/// `verify --base base --target target`, its JSON report.
fn verify(base: &Db, target: &Db, want: i32) -> Value {
    let (b, t) = (base.url(), target.url());
    let report = run_json(&["verify", "--base", &b, "--target", &t, "-q"], &[want]);
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    report
}

/// (table, key, kind, columns) of every finding of a verify report.
fn findings(report: &Value) -> BTreeSet<(String, String, String, String)> {
    let as_text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let columns: Vec<String> = f["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(as_text)
                .collect();
            (
                as_text(&f["table"]),
                f["key"].to_string(),
                as_text(&f["kind"]),
                columns.join("|"),
            )
        })
        .collect()
}

/// The matrix, loaded the same way on both: IDENTICAL both ways; then every single-value change
/// made on the target is found as exactly its key and column, and recover + apply restore them
/// all to IDENTICAL.
fn type_matrix(base_server: &Cluster, target_server: &Cluster) {
    let base = Db::new(base_server, "matrix_base", MATRIX);
    let target = Db::new(target_server, "matrix_target", MATRIX);
    let report = verify(&base, &target, 0);
    assert_eq!(report["totals"]["tables"], 1, "{report:#}");
    assert_eq!(report["tables"][0]["table"], "public.matrix", "{report:#}");
    let version = |db: &Db| format!("{}.", version_major(db.server));
    for (role, db) in [("base", &base), ("target", &target)] {
        let seen = report["sources"][role]["server_version"].as_str().unwrap();
        assert!(seen.starts_with(&version(db)), "{role} runs {seen}");
    }
    verify(&target, &base, 0);
    // Narrow reads hash on the servers: the hash functions must agree across majors (13, which
    // cannot compute the row hash, reads full rows and says so).
    let (b, t) = (base.url(), target.url());
    let narrow = |want: i32| {
        run_json(
            &["verify", "--base", &b, "--target", &t, "-q", "--narrow"],
            &[want],
        )
    };
    assert_eq!(findings(&narrow(0)), BTreeSet::new());

    let mut want = BTreeSet::new();
    for (i, (column, value)) in CHANGES.iter().enumerate() {
        let id = 100 + i;
        target.psql(&format!(
            "UPDATE matrix SET {column} = {value} WHERE id = {id}"
        ));
        let key = format!("[{id}]");
        want.insert((
            "public.matrix".into(),
            key,
            "divergent".into(),
            column.to_string(),
        ));
    }
    let got = findings(&verify(&base, &target, 1));
    let missed: Vec<_> = want.difference(&got).collect();
    let spurious: Vec<_> = got.difference(&want).collect();
    assert!(
        missed.is_empty() && spurious.is_empty(),
        "missed {missed:#?}\nspurious {spurious:#?}"
    );
    assert_eq!(
        findings(&narrow(1)),
        got,
        "--narrow finds what a full read finds"
    );

    // Every changed value restored from the base's major into the target's.
    let (b, t) = (base.url(), target.url());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recovery");
    let out = out.to_str().unwrap();
    run(
        &["recover", "--base", &b, "--target", &t, "--out", out, "-q"],
        1,
    );
    run(&["apply", out, "--target", &t, "--no-progress"], 0);
    verify(&base, &target, 0);
}

/// check's damaged migration (tests/it/check.rs): check finds it, with exactly the schema drift
/// the damage made; recover and apply repair it; then check is clean and verify IDENTICAL.
fn check_recover_apply(base_server: &Cluster, target_server: &Cluster) {
    let base = Db::new(base_server, "fix_base", crate::check::BASE);
    let target = Db::new(target_server, "fix_target", crate::check::BASE);
    target.psql(crate::check::DAMAGE);
    let (b, t) = (base.url(), target.url());
    let report = run_json(&["check", "--base", &b, "--target", &t, "-q"], &[1]);
    let drift: Vec<String> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {}",
                d["object"], d["change"], d["name"], d["aspect"]
            )
        })
        .collect();
    assert_eq!(
        drift,
        [
            r#""column" "different" "status" "nullability""#,
            r#""column" "different" "status" "default""#,
            r#""column" "missing" "legacy" null"#,
            r#""index" "missing" "items_code_key" null"#,
        ],
        "{report:#}"
    );
    assert_eq!(report["totals"]["not_validated"], 4, "{report:#}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recovery");
    let out = out.to_str().unwrap();
    let recover = ["recover", "--base", &b, "--target", &t, "--out", out];
    run(&[&recover[..], &["--delete-extra", "-q"]].concat(), 1);
    run(&["apply", out, "--target", &t, "--no-progress"], 0);
    run(&["check", "--base", &b, "--target", &t, "-q"], 0);
    verify(&base, &target, 0);
    assert_eq!(
        target.psql("SELECT last_value FROM items_id_seq").trim(),
        "40"
    );
}

/// A baseline (with row digests) of the major's database verifies IDENTICAL against it and
/// against the same data on the system's; after damage, the changed keys are found exactly.
fn baseline(major: u32) {
    const DATA: &str = "
        CREATE TABLE items (id bigint PRIMARY KEY, label text, price numeric(12,2), tags text[]);
        INSERT INTO items SELECT g, 'item ' || g, g * 1.25, ARRAY['t' || (g % 7)]
          FROM generate_series(1, 5000) g;
        ANALYZE;";
    let on_major = Db::new(server(major), "baseline", DATA);
    let on_system = Db::new(cluster(), "baseline_sys", DATA);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("b");
    let saved = saved.to_str().unwrap();
    let source = on_major.url();
    run(
        &[
            "baseline", "--source", &source, "--out", saved, "--rows", "-q",
        ],
        0,
    );
    let inspect = run(&["baseline", "inspect", saved], 0);
    assert!(
        inspect.contains(&format!("PostgreSQL {major}.")),
        "{inspect}"
    );
    for db in [&on_major, &on_system] {
        let t = db.url();
        run(&["verify", "--base", saved, "--target", &t, "-q"], 0);
    }
    on_system.psql("DELETE FROM items WHERE id = 7; UPDATE items SET label = 'x' WHERE id = 9");
    let t = on_system.url();
    let report = run_json(&["verify", "--base", saved, "--target", &t, "-q"], &[1]);
    assert_eq!(
        findings(&report),
        BTreeSet::from([
            (
                "public.items".into(),
                "[7]".into(),
                "missing".into(),
                String::new()
            ),
            // A baseline keeps a digest per row, not per column.
            (
                "public.items".into(),
                "[9]".into(),
                "divergent".into(),
                String::new()
            ),
        ]),
        "{report:#}"
    );
}

/// A table without a primary key is keyed by its unique index over NOT NULL columns on every
/// major (the catalog query that lists unique indexes differs before 15, which added
/// `NULLS NOT DISTINCT`), the base on the system's server and the target on `major`.
fn unique_index_key(major: u32) {
    const DATA: &str = "
        CREATE TABLE u (a int NOT NULL, b int, v text, UNIQUE (a));
        INSERT INTO u SELECT g, g, 'v' || g FROM generate_series(1, 1000) g;";
    let base = Db::new(cluster(), "unique_base", DATA);
    let target = Db::new(server(major), "unique_target", DATA);
    target.psql("UPDATE u SET v = 'x' WHERE a = 3; DELETE FROM u WHERE a = 4;");
    let report = verify(&base, &target, 1);
    assert_eq!(
        report["tables"][0]["key"],
        serde_json::json!(["a"]),
        "{report:#}"
    );
    let want = [("[3]", "divergent", "v"), ("[4]", "missing", "")];
    let want = want.map(|(k, kind, c)| ("public.u".into(), k.into(), kind.into(), c.into()));
    assert_eq!(findings(&report), BTreeSet::from(want), "{report:#}");
}

/// A backup on the system's server, a primary of `major` and its streaming standby paused
/// before the damage: the three-way classes, a recovery that keeps what the target wrote
/// legitimately, and `status` on the paused standby and on the primary.
fn three_way_with_a_paused_standby(major: u32) {
    const START: &str = "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
        INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;";
    let base = Db::new(cluster(), "backup", START);
    let primary = server(major);
    let app = Db::new(primary, "app", START);
    app.psql(
        "UPDATE t SET v = 'legit' WHERE id IN (10, 11, 12);
         INSERT INTO t VALUES (201, 'new'), (202, 'new');
         DELETE FROM t WHERE id IN (20, 21);",
    );
    let standby = primary.standby().expect("a standby");
    let on_standby = |sql: &str| standby.psql(&app.name, sql).unwrap_or_default();
    wait_until("the standby to catch up", Duration::from_secs(30), || {
        on_standby("SELECT count(*) FROM t WHERE id = 202").trim() == "1"
    });
    on_standby("SELECT pg_wal_replay_pause()");
    wait_until("replay to pause", Duration::from_secs(30), || {
        on_standby("SELECT pg_is_wal_replay_paused()").trim() == "t"
    });
    app.psql(
        "DELETE FROM t WHERE id = 1;                   -- lost
         UPDATE t SET v = 'oops' WHERE id = 2;         -- damaged
         UPDATE t SET v = 'v10' WHERE id = 10;         -- legit change reverted
         DELETE FROM t WHERE id = 11;                  -- lost after change
         UPDATE t SET v = 'third' WHERE id = 12;       -- conflict
         DELETE FROM t WHERE id = 201;                 -- lost new row
         INSERT INTO t VALUES (20, 'v20');             -- deleted, resurrected
         INSERT INTO t VALUES (300, 'after');          -- new on target",
    );
    let (b, r, t) = (base.url(), standby.url(&app.name), app.url());
    let sources = ["--base", &b, "--replica", &r, "--target", &t];
    let report = run_json(&[&["verify"], &sources[..], &["-q"]].concat(), &[1]);
    assert_eq!(report["sources"]["replica"]["in_recovery"], true);
    let classes: BTreeSet<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].to_string(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("[1]", "lost"),
        ("[2]", "damaged"),
        ("[10]", "legit_change_reverted"),
        ("[11]", "lost_after_change"),
        ("[12]", "conflict"),
        ("[201]", "lost_new_row"),
        ("[202]", "new_since_backup"),
        ("[20]", "deleted_resurrected"),
        ("[21]", "deleted_since_backup"),
        ("[300]", "new_on_target"),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), c.to_string()))
    .collect();
    assert_eq!(classes, want, "{report:#}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out = out.to_str().unwrap();
    let recover = [
        &["recover"],
        &sources[..],
        &["--out", out, "--on-conflict", "keep-target", "-q"],
    ];
    run(&recover.concat(), 1);
    run(&["apply", out, "--target", &t, "--no-progress"], 0);
    // The target is the replica's again but for the conflict it keeps and its new row.
    let replica = Db {
        server: &standby,
        name: app.name.clone(),
    };
    let after = findings(&verify(&replica, &app, 1));
    let kept = |key: &str, kind: &str, columns: &str| {
        (
            "public.t".to_string(),
            key.to_string(),
            kind.to_string(),
            columns.to_string(),
        )
    };
    assert_eq!(
        after,
        BTreeSet::from([kept("[12]", "divergent", "v"), kept("[300]", "extra", "")])
    );

    let status = run_json(&["status", "--target", &r, "-q"], &[1]);
    assert_eq!(status["server"]["in_recovery"], true, "{status:#}");
    assert_eq!(
        status["replication"]["standby"]["paused"], true,
        "{status:#}"
    );
    assert_eq!(status["errors"], serde_json::json!([]), "{status:#}");
    let status = run_json(&["status", "--target", &t, "-q"], &[0, 1]);
    let replicas = status["replication"]["replicas"].as_array().unwrap();
    assert!(!replicas.is_empty(), "{status:#}");
    assert_eq!(status["errors"], serde_json::json!([]), "{status:#}");
}

/// The tests of one major against the system's.
macro_rules! against_the_system {
    ($($module:ident: $major:literal),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn type_matrix_identical_and_every_change_found() {
                type_matrix(cluster(), server($major));
            }

            #[test]
            fn check_recover_apply_round_trip() {
                check_recover_apply(cluster(), server($major));
            }

            #[test]
            fn a_unique_index_keys_a_table_without_a_primary_key() {
                unique_index_key($major);
            }

            #[test]
            fn baseline_of_it_verifies_against_both() {
                baseline($major);
            }

            #[test]
            fn three_way_with_its_paused_standby_and_status() {
                three_way_with_a_paused_standby($major);
            }
        }
    )*};
}

against_the_system!(pg13: 13, pg14: 14, pg16: 16, pg17: 17, pg18: 18);

/// Base on the first major, target on the second.
macro_rules! pairs {
    ($($name:ident: $base:literal => $target:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            type_matrix(server($base), server($target));
            check_recover_apply(server($base), server($target));
        }
    )*};
}

pairs!(pair_13_to_18: 13 => 18, pair_14_to_17: 14 => 17, pair_16_to_15: 16 => 15);
