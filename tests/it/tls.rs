//! TLS as libpq users expect it: `sslmode=require` encrypts, `verify-ca` checks the chain against
//! `sslrootcert`, `verify-full` also the host name, and a server without TLS is refused when TLS
//! is required. The server gets a self-signed certificate made with the openssl command.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use pgsalvage::cluster::Cluster;

use crate::support::*;

/// A cluster serving TLS with a fresh self-signed certificate for CN=localhost; returns the
/// certificate's path (the root to trust).
fn tls_cluster(dir: &std::path::Path) -> (Cluster, std::path::PathBuf) {
    let cluster = Cluster::start().expect("cluster");
    let (crt, key) = (
        cluster.data_dir().join("server.crt"),
        cluster.data_dir().join("server.key"),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The server runs as the postgres OS user when the tests run as root.
    if unsafe { libc::geteuid() } == 0 {
        for f in [&crt, &key] {
            assert!(Command::new("chown")
                .arg("postgres")
                .arg(f)
                .status()
                .unwrap()
                .success());
        }
    }
    let root = dir.join("root.crt");
    std::fs::copy(&crt, &root).unwrap();
    cluster
        .psql("postgres", "ALTER SYSTEM SET ssl = on")
        .unwrap();
    cluster.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    wait_until(
        "the server to turn TLS on",
        std::time::Duration::from_secs(10),
        || {
            cluster
                .psql("postgres", "SHOW ssl")
                .is_ok_and(|v| v.trim() == "on")
        },
    );
    cluster
        .psql(
            "postgres",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
    (cluster, root)
}

#[test]
fn sslmodes_behave_like_libpq() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, root) = tls_cluster(dir.path());
    let port = cluster.port();
    let root = root.to_str().unwrap();
    let with = |host: &str, mode: &str| {
        format!("postgresql://postgres@{host}:{port}/postgres?sslmode={mode}&sslrootcert={root}")
    };
    let run = |url: &str| pgsalvage(&["verify", "--base", url, "--target", url, "-q"]);

    for (host, mode) in [
        ("127.0.0.1", "require"),
        ("127.0.0.1", "verify-ca"),
        ("localhost", "verify-full"),
    ] {
        let out = run(&with(host, mode));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode} on {host}: {}",
            text(&out.stderr)
        );
    }
    // The certificate names localhost, not 127.0.0.1.
    // Failures put the bad source on the base side only, so the error names it deterministically.
    let plain_target = url("postgres");
    let fail = |u: &str| pgsalvage(&["verify", "--base", u, "--target", &plain_target, "-q"]);
    let wrong_name = fail(&with("127.0.0.1", "verify-full"));
    assert_eq!(wrong_name.status.code(), Some(2));
    assert!(
        text(&wrong_name.stderr).contains("hint: check sslmode and sslrootcert"),
        "{}",
        text(&wrong_name.stderr)
    );
    assert!(
        text(&wrong_name.stderr).starts_with("error: opening base"),
        "{}",
        text(&wrong_name.stderr)
    );
    // A server without TLS is refused when TLS is required.
    let plain = format!("{}?sslmode=require", url("postgres"));
    let refused = fail(&plain);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("error: opening base"),
        "{}",
        text(&refused.stderr)
    );
    // A missing root certificate is a clear error, not a silent downgrade.
    let missing = fail(&format!("postgresql://postgres@localhost:{port}/postgres?sslmode=verify-ca&sslrootcert=/nonexistent/root.crt"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("reading sslrootcert /nonexistent/root.crt"),
        "{}",
        text(&missing.stderr)
    );
}
