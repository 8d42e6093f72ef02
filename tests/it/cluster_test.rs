//! Integration tests for `cluster`: they start real PostgreSQL servers.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use pgsalvage::cluster::{Cluster, ClusterError};

use crate::support::wait_until;

/// Marks the re-run of this test binary that starts a cluster and exits without `Drop`.
const CHILD_ENV: &str = "PGSALVAGE_WATCHDOG_CHILD";

/// A cluster shared by several tests, the way the project's tests keep one: its `Drop`
/// never runs, so the watchdog is what removes it after the test binary exits.
fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let started = Instant::now();
        let cluster = Cluster::start().expect("start shared cluster");
        eprintln!("cluster started in {:?}", started.elapsed());
        cluster
    })
}

fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[test]
fn start_create_db_and_query() {
    let cluster = shared();
    assert!(cluster.data_dir().join("PG_VERSION").is_file());
    assert!(cluster.bindir().join("pg_dump").is_file());
    let name = "my \"odd\" db";
    cluster.create_db(name).unwrap();
    assert_eq!(
        cluster.url(name),
        format!(
            "postgresql://postgres@127.0.0.1:{}/my%20%22odd%22%20db",
            cluster.port()
        )
    );
    let out = cluster
        .psql(
            name,
            "CREATE TABLE t (id int, name text);
             INSERT INTO t VALUES (1, 'a'), (2, 'b');
             SELECT id, name FROM t ORDER BY id;",
        )
        .unwrap();
    assert_eq!(out, "1|a\n2|b\n");
    assert_eq!(
        cluster
            .psql(name, "SELECT current_database()")
            .unwrap()
            .trim(),
        name
    );
}

#[test]
fn psql_reports_errors_with_stderr() {
    let err = shared()
        .psql(
            "postgres",
            "SELECT 1; SELECT * FROM no_such_table; SELECT 2;",
        )
        .unwrap_err();
    assert!(matches!(err, ClusterError::Psql { .. }));
    let msg = err.to_string();
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    let err = shared().psql("no_such_db", "SELECT 1").unwrap_err();
    assert!(err.to_string().contains("no_such_db"), "{err}");
}

#[test]
fn psql_handles_large_scripts_and_outputs() {
    let cluster = shared();
    cluster.create_db("large").unwrap();
    let mut sql = String::from("CREATE TABLE big (n int, pad text);\n");
    for n in 0..20_000 {
        sql.push_str(&format!("INSERT INTO big VALUES ({n}, repeat('x', 50));\n"));
    }
    sql.push_str("SELECT n, pad FROM big ORDER BY n;\n");
    let out = cluster.psql("large", &sql).unwrap();
    assert_eq!(out.lines().count(), 20_000);
    assert!(out.starts_with(&format!("0|{}\n", "x".repeat(50))));
}

#[test]
fn psql_file_runs_a_script() {
    let cluster = shared();
    let mut script = tempfile::NamedTempFile::new().unwrap();
    writeln!(script, "SELECT 40 + 2;\nSELECT 'ok';").unwrap();
    let out = cluster.psql_file("postgres", script.path()).unwrap();
    assert_eq!(out, "42\nok\n");
}

#[test]
fn two_clusters_in_parallel() {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            thread::spawn(move || {
                let cluster = Cluster::start().expect("start");
                let out = cluster.psql("postgres", &format!("SELECT {i}")).unwrap();
                assert_eq!(out.trim(), i.to_string());
                cluster
            })
        })
        .collect();
    let clusters: Vec<Cluster> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_ne!(clusters[0].port(), clusters[1].port());
    assert_ne!(clusters[0].data_dir(), clusters[1].data_dir());
}

#[test]
fn standby_replicates_from_primary() {
    let primary = Cluster::start_with(&[("wal_level", "replica"), ("max_wal_senders", "5")])
        .expect("start primary");
    let started = Instant::now();
    let standby = primary.standby().expect("start standby");
    eprintln!("standby started in {:?}", started.elapsed());
    assert_ne!(standby.port(), primary.port());
    assert_eq!(
        standby
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "t\n"
    );
    assert_eq!(
        primary
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap(),
        "f\n"
    );

    primary
        .psql(
            "postgres",
            "CREATE TABLE replicated (v text); INSERT INTO replicated VALUES ('hello');",
        )
        .unwrap();
    wait_until(
        "the row to reach the standby",
        Duration::from_secs(30),
        || {
            standby
                .psql("postgres", "SELECT v FROM replicated")
                .is_ok_and(|out| out == "hello\n")
        },
    );
}

#[test]
fn drop_stops_server_and_removes_dir() {
    let cluster = Cluster::start().expect("start");
    let port = cluster.port();
    let data = cluster.data_dir().to_path_buf();
    assert!(accepts_connections(port));
    drop(cluster);
    assert!(!accepts_connections(port), "port {port} still accepts");
    assert!(!data.exists(), "{} still exists", data.display());
    assert!(!data.parent().unwrap().exists());
}

#[test]
fn stop_is_idempotent() {
    let mut cluster = Cluster::start().expect("start");
    cluster.stop();
    cluster.stop();
    assert!(!cluster.data_dir().exists());
}

/// Child mode of `watchdog_stops_server_after_exit_without_drop`; a no-op otherwise.
#[test]
fn watchdog_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    println!("PORT={}", cluster.port());
    println!("DATA={}", cluster.data_dir().display());
    std::io::stdout().flush().unwrap();
    // Exit without Drop, as a test binary does with a cluster in a static.
    std::process::exit(0);
}

#[test]
fn watchdog_stops_server_after_exit_without_drop() {
    // `output()` also checks that nothing (watchdog, postmaster) keeps our pipes open:
    // it would hang otherwise.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "cluster_test::watchdog_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness may print "test watchdog_child ... " before our first line.
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.split_once(key).map(|(_, value)| value))
            .unwrap_or_else(|| panic!("no {key} in child output: {stdout}"))
            .to_string()
    };
    let port: u16 = field("PORT=").parse().unwrap();
    let data = PathBuf::from(field("DATA="));

    let what = format!(
        "the server on port {port} to stop and {} to go",
        data.display()
    );
    wait_until(&what, Duration::from_secs(10), || {
        !accepts_connections(port) && !Path::new(&data).exists()
    });
}
