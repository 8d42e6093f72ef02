//! Throwaway local PostgreSQL clusters for the pgsalvage demo and integration tests.
//!
//! A [`Cluster`] is a real PostgreSQL server: `initdb` into a fresh temp dir, started with
//! `pg_ctl` on a free loopback port, with durability switched off (it is thrown away anyway)
//! and trust authentication for local and replication connections, so that `psql`,
//! `pg_dump` and `pg_basebackup` can reach it without passwords. The server binaries are
//! found through `pg_config --bindir` (Debian keeps `initdb` and `pg_ctl` off `PATH`), or
//! `PGSALVAGE_PG_BINDIR`; [`Cluster::start_in`] takes them from a given directory instead, so
//! the cross-version tests run servers of other majors. SQL goes through `psql` subprocesses, so
//! no client library is needed; a bindir without client tools (a server-only build) borrows them
//! from `PATH` (psql talks to servers of other majors), and a standby of such a build is copied
//! without `pg_basebackup`, whose major must match the server's (see `backup_copy`).
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root. CI and the dev machines do run
//! as root, so there these tools are run as the `postgres` OS user through
//! `runuser -u postgres --`, and the temp dir is handed over to that user. As a normal
//! user they run directly.
//!
//! Teardown normally happens in `Drop`. But tests keep a shared cluster in a
//! `static OnceLock<Cluster>`, whose `Drop` never runs, and a test run can also be killed.
//! So every cluster gets a small detached watchdog process (`sh`) that polls our pid and,
//! once we are gone, stops the server (`-m immediate`) and removes the temp dir: no
//! `postgres` outlives `cargo test`.

use std::ffi::{CString, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod backup_copy;

/// Overrides where the server binaries (`initdb`, `pg_ctl`, ...) are looked for.
pub const BINDIR_ENV: &str = "PGSALVAGE_PG_BINDIR";
/// The database role created by `initdb -U`, and the OS user the server runs as under root.
const SUPERUSER: &str = "postgres";
/// How long a server may take from `pg_ctl start` to accepting connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a start is retried when the free port we picked got taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How many server log lines an error message quotes.
const LOG_TAIL_LINES: usize = 8;

/// Settings every throwaway cluster gets. Durability is off because the data is disposable
/// and fsyncs would dominate test time; `port` and `unix_socket_directories` are passed on
/// the command line instead, because they differ between a primary and its standby, which
/// shares this file through `pg_basebackup`.
const BASE_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    ("log_min_messages", "warning"),
];

/// Trust for everything local, replication included, so that `standby()` works.
/// Written explicitly rather than relying on initdb's template.
const PG_HBA: &str = "\
# written by pgsalvage: throwaway cluster, trust everything local
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    all          all   ::1/128       trust
host    replication  all   127.0.0.1/32  trust
host    replication  all   ::1/128       trust
";

/// Polls the parent pid every 0.5 s; once it is gone (and the cluster was not already torn
/// down, which removes `$base`), stops the server and removes the temp dir. Arguments:
/// parent pid, base dir, then the `pg_ctl` command (possibly behind `runuser`).
const WATCHDOG_SCRIPT: &str = r#"
parent=$1; base=$2; shift 2
while kill -0 "$parent" 2>/dev/null && [ -d "$base" ]; do sleep 0.5; done
[ -d "$base" ] || exit 0
pidfile="$base/data/postmaster.pid"
if [ -f "$pidfile" ]; then
    pid=$(head -n 1 "$pidfile")
    "$@" stop -D "$base/data" -m immediate -w -t 10 || kill -KILL "$pid"
fi
rm -rf "$base"
"#;

/// Errors from starting, using or cloning a throwaway cluster. Each message is one
/// lowercase line that ends with a hint.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("postgresql server binaries are missing ({0}); hint: apt-get install postgresql, or set PGSALVAGE_PG_BINDIR to the directory holding initdb and pg_ctl")]
    BinariesMissing(String),
    #[error("running as root, but os user `postgres` does not exist (initdb and postgres refuse to run as root, so they are run as that user); hint: apt-get install postgresql creates it, or run as a normal user")]
    NoPostgresUser,
    #[error("could not run {program}: {error}; hint: check that it is installed and executable")]
    Spawn { program: String, error: io::Error },
    #[error("could not {action} {path}: {error}; hint: check free space and permissions of the temp dir (TMPDIR)")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("invalid postgresql.conf setting name {0:?}; hint: use plain names such as wal_level or max_wal_senders")]
    InvalidSetting(String),
    #[error("{tool} failed: {detail}; hint: {hint}")]
    Tool {
        tool: &'static str,
        detail: String,
        hint: &'static str,
    },
    #[error("postgresql server did not start on port {port}: {detail}; server log: {log}; hint: look for leftover postgres processes or a full disk")]
    Start {
        port: u16,
        detail: String,
        log: String,
    },
    #[error("postgresql server on port {port} not ready after {secs} s: {detail}; server log: {log}; hint: the machine may be overloaded, retry with fewer parallel tests")]
    NotReady {
        port: u16,
        secs: u64,
        detail: String,
        log: String,
    },
    #[error("psql failed on database {db:?}: {stderr}; hint: the script stops at its first error (ON_ERROR_STOP=1)")]
    Psql { db: String, stderr: String },
}

/// A running throwaway PostgreSQL cluster; stopped and deleted on [`Cluster::stop`] or drop.
#[derive(Debug)]
pub struct Cluster {
    /// The temp dir holding `data/`, the server log and the Unix socket; `None` once removed.
    base: Option<TempDir>,
    base_path: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// 0 until the server has been started.
    port: u16,
    tools: Tools,
    watchdog: Option<Child>,
}

impl Cluster {
    /// `initdb` + start a new cluster on a free loopback port.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::start_with(&[])
    }

    /// Same as [`Cluster::start`], with extra `postgresql.conf` settings (they come after
    /// the defaults, so they may also override them).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Cluster, ClusterError> {
        Cluster::start_tools(Tools::get()?, settings)
    }

    /// Same as [`Cluster::start_with`], with the server binaries (`initdb`, `pg_ctl`,
    /// `postgres`) from `bindir`: a server of another major than the system's.
    pub fn start_in(bindir: &Path, settings: &[(&str, &str)]) -> Result<Cluster, ClusterError> {
        Cluster::start_tools(Tools::at(bindir)?, settings)
    }

    fn start_tools(tools: Tools, settings: &[(&str, &str)]) -> Result<Cluster, ClusterError> {
        let conf = conf_lines(BASE_SETTINGS.iter().chain(settings))?;
        // From here on, any error drops `cluster`, which cleans up whatever exists.
        let mut cluster = Cluster::prepare(tools)?;
        cluster.initdb()?;
        write_file(&cluster.data.join("pg_hba.conf"), PG_HBA, false)?;
        write_file(&cluster.data.join("postgresql.conf"), &conf, true)?;
        cluster.launch()?;
        Ok(cluster)
    }

    /// Creates a streaming standby of this cluster with `pg_basebackup -R` (or, when the
    /// bindir has none, a copy between backup start and stop) and starts it on a new port. It
    /// inherits this cluster's `postgresql.conf`.
    pub fn standby(&self) -> Result<Cluster, ClusterError> {
        let mut standby = Cluster::prepare(self.tools.clone())?;
        if self.tools.bindir.join("pg_basebackup").is_file() {
            standby.basebackup_from(self.port)?;
            standby.launch()?;
        } else {
            // The backup's session keeps the primary's WAL until the standby streams it.
            let backup = standby.copy_backup_from(self)?;
            standby.launch()?;
            backup.end()?;
        }
        Ok(standby)
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://postgres@127.0.0.1:PORT/DB`, with `db` percent-encoded.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// Runs `sql` through `psql -X -q -v ON_ERROR_STOP=1 -At` against `db` and returns its
    /// stdout unchanged (one row per line, `|`-separated). The script is fed on stdin, so it
    /// may be large; a failure returns an error carrying psql's stderr.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let mut cmd = self.psql_command(db);
        cmd.stdin(Stdio::piped());
        let output = output_with_stdin(cmd, "psql", sql.as_bytes())?;
        psql_result(db, output)
    }

    /// Runs a psql script file (`psql -f PATH`), like [`Cluster::psql`].
    pub fn psql_file(&self, db: &str, path: &Path) -> Result<String, ClusterError> {
        let mut cmd = self.psql_command(db);
        cmd.arg("-f").arg(path).stdin(Stdio::null());
        let output = run(cmd, "psql")?;
        psql_result(db, output)
    }

    /// `CREATE DATABASE` with the name quoted, so any name works.
    pub fn create_db(&self, name: &str) -> Result<(), ClusterError> {
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        self.psql("postgres", &sql).map(drop)
    }

    /// Where the server binaries are, and `pg_dump`, `pg_basebackup`, ... of the server's own
    /// version when the build has them (see [`Cluster::client_program`]).
    pub fn bindir(&self) -> &Path {
        &self.tools.bindir
    }

    /// A client tool (`psql`, `pg_dump`, ...): the server's own version from its bindir, else
    /// the one on `PATH`.
    pub fn client_program(&self, tool: &str) -> PathBuf {
        self.tools.client_program(tool)
    }

    /// The server's `server_version_num` (e.g. 130023 for 13.23).
    pub fn server_version_num(&self) -> Result<u32, ClusterError> {
        let text = self.psql("postgres", "SHOW server_version_num")?;
        text.trim().parse().map_err(|_| ClusterError::Psql {
            db: "postgres".into(),
            stderr: format!("unexpected server_version_num {:?}", text.trim()),
        })
    }

    /// The cluster's data directory (gone after [`Cluster::stop`]).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server (`pg_ctl stop -m fast`, falling back to immediate and then to
    /// SIGKILL) and removes the temp dir. Idempotent; also done on drop.
    pub fn stop(&mut self) {
        if self.base.is_none() {
            return;
        }
        // The watchdog first, so it cannot race us; it is in its own process group, so
        // this also takes its `sleep` child.
        if let Some(mut watchdog) = self.watchdog.take() {
            let pgid = watchdog.id() as libc::pid_t;
            // SAFETY: kill(2) has no memory-safety preconditions; the group is our own child's.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = watchdog.wait();
        }
        self.shutdown_server();
        if let Some(base) = self.base.take() {
            let _ = base.close();
        }
    }

    /// Creates the temp dir (owned by the server's OS user) and the watchdog that removes
    /// it if this process dies before [`Cluster::stop`] runs.
    fn prepare(tools: Tools) -> Result<Cluster, ClusterError> {
        let base = make_base_dir(tools.owner.as_ref())?;
        let base_path = base.path().to_path_buf();
        let mut cluster = Cluster {
            data: base_path.join("data"),
            log: base_path.join("postgres.log"),
            base_path,
            base: Some(base),
            port: 0,
            tools,
            watchdog: None,
        };
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        Ok(cluster)
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let mut cmd = self.tools.server_command("initdb", &self.base_path);
        cmd.arg("-D").arg(&self.data);
        cmd.args([
            "-U",
            SUPERUSER,
            "--locale=C",
            "-E",
            "UTF8",
            "--auth=trust",
            "-N",
        ]);
        let output = run(cmd, "initdb")?;
        check_tool(
            "initdb",
            &output,
            "check free space in the temp dir (TMPDIR)",
        )
    }

    /// Fills the (still missing) data dir with a base backup of the primary on
    /// `primary_port`; `-R` writes `standby.signal` and `primary_conninfo`.
    fn basebackup_from(&self, primary_port: u16) -> Result<(), ClusterError> {
        let mut cmd = self.tools.server_command("pg_basebackup", &self.base_path);
        cmd.arg("-D").arg(&self.data);
        cmd.args(["-R", "-X", "stream", "-c", "fast", "-N", "-w"]);
        cmd.args(["-h", "127.0.0.1", "-U", SUPERUSER, "-p"]);
        cmd.arg(primary_port.to_string())
            .env("PGCONNECT_TIMEOUT", "10");
        let output = run(cmd, "pg_basebackup")?;
        check_tool(
            "pg_basebackup",
            &output,
            "the primary needs wal_level=replica and free max_wal_senders",
        )
    }

    /// Starts the server on a free port, retrying with another port if ours got taken in
    /// the window between probing it and the server binding it.
    fn launch(&mut self) -> Result<(), ClusterError> {
        self.launch_on(free_port)
    }

    /// `launch` with the port source as a parameter, so the retry can be tested.
    fn launch_on(
        &mut self,
        mut pick_port: impl FnMut() -> Result<u16, ClusterError>,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut attempt = 1;
        loop {
            self.port = pick_port()?;
            let log_offset = file_len(&self.log);
            match self.pg_ctl_start() {
                Ok(()) => break,
                Err(detail) => {
                    let log = log_tail(&self.log, log_offset);
                    if attempt < PORT_ATTEMPTS && port_taken(&log) {
                        attempt += 1;
                        continue;
                    }
                    return Err(ClusterError::Start {
                        port: self.port,
                        detail,
                        log: one_line(&log),
                    });
                }
            }
        }
        self.wait_ready(deadline)
    }

    /// `pg_ctl start -w`: returns once the postmaster reports ready, or its stderr.
    fn pg_ctl_start(&self) -> Result<(), String> {
        // pg_ctl hands `-o` to /bin/sh, hence the shell quoting of the socket dir.
        let options = format!(
            "-p {} -k {}",
            self.port,
            shell_quote(&self.base_path.to_string_lossy())
        );
        let mut cmd = self.tools.server_command("pg_ctl", &self.base_path);
        cmd.args(["start", "-w", "-s", "-t"]);
        cmd.arg(READY_TIMEOUT.as_secs().to_string());
        cmd.arg("-D").arg(&self.data).arg("-l").arg(&self.log);
        cmd.arg("-o").arg(options);
        match run(cmd, "pg_ctl") {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => Err(one_line(&format!(
                "pg_ctl start exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Polls `pg_isready` until the server accepts connections; `pg_ctl -w` has normally
    /// seen that already, this double-checks it over TCP, the way clients will connect.
    fn wait_ready(&self, deadline: Instant) -> Result<(), ClusterError> {
        let program = self.tools.client_program("pg_isready");
        let port = self.port.to_string();
        let mut detail = String::from("pg_isready never answered");
        while Instant::now() < deadline {
            let mut cmd = Command::new(&program);
            cmd.args(["-q", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"]);
            cmd.args(["-t", "2", "-p", &port]);
            match run(cmd, "pg_isready") {
                Ok(output) if output.status.success() => return Ok(()),
                Ok(output) => detail = format!("pg_isready exited with {}", output.status),
                Err(e) => detail = e.to_string(),
            }
            thread::sleep(Duration::from_millis(100));
        }
        Err(ClusterError::NotReady {
            port: self.port,
            secs: READY_TIMEOUT.as_secs(),
            detail,
            log: one_line(&log_tail(&self.log, 0)),
        })
    }

    /// Stops the server if one is running in our data dir: fast, then immediate, then SIGKILL.
    fn shutdown_server(&self) {
        let pidfile = self.data.join("postmaster.pid");
        if !pidfile.exists() {
            return;
        }
        for mode in ["fast", "immediate"] {
            let mut cmd = self.tools.server_command("pg_ctl", &self.base_path);
            cmd.args(["stop", "-s", "-w", "-t", "20", "-m", mode]);
            cmd.arg("-D").arg(&self.data);
            if matches!(run(cmd, "pg_ctl"), Ok(o) if o.status.success()) {
                return;
            }
        }
        if let Some(pid) = read_postmaster_pid(&pidfile) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our postmaster's.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Spawns the detached `sh` watchdog (see the module doc). Its stdio goes to /dev/null
    /// so that it does not hold `cargo test`'s output pipes open after we exit, and it gets
    /// its own process group so that a Ctrl-C aimed at the test run does not kill it.
    fn spawn_watchdog(&self) -> Result<Child, ClusterError> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG_SCRIPT, "pgsalvage-watchdog"]);
        cmd.arg(std::process::id().to_string()).arg(&self.base_path);
        if self.tools.owner.is_some() {
            cmd.args(["runuser", "-u", SUPERUSER, "--"]);
        }
        cmd.arg(self.tools.bindir.join("pg_ctl"));
        cmd.current_dir("/").process_group(0);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().map_err(|error| ClusterError::Spawn {
            program: "sh (cluster watchdog)".into(),
            error,
        })
    }

    fn psql_command(&self, db: &str) -> Command {
        let mut cmd = Command::new(self.tools.client_program("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d"]);
        cmd.arg(self.url(db));
        // PGOPTIONS and friends from the caller's environment would change the session.
        cmd.env("PGCONNECT_TIMEOUT", "10");
        for var in ["PGOPTIONS", "PGSERVICE", "PGSERVICEFILE", "PSQLRC"] {
            cmd.env_remove(var);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the binaries are and whom the server tools run as; detected once per process.
#[derive(Debug, Clone)]
struct Tools {
    bindir: PathBuf,
    /// `Some` when we are root: server tools then run as this (`postgres`) user.
    owner: Option<Owner>,
}

/// Why `Tools::detect` failed.
#[derive(Debug)]
enum Missing {
    Binaries(String),
    User,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Tools {
    fn get() -> Result<Tools, ClusterError> {
        // Cached as a cloneable result: parallel test threads all start clusters.
        static TOOLS: OnceLock<Result<Tools, Missing>> = OnceLock::new();
        match TOOLS.get_or_init(Tools::detect) {
            Ok(tools) => Ok(tools.clone()),
            Err(Missing::User) => Err(ClusterError::NoPostgresUser),
            Err(Missing::Binaries(why)) => Err(ClusterError::BinariesMissing(why.clone())),
        }
    }

    /// The binaries of `bindir`, run as the same user as [`Tools::get`]'s.
    fn at(bindir: &Path) -> Result<Tools, ClusterError> {
        if !has_server_binaries(bindir) {
            let why = format!("{} has no initdb and pg_ctl", bindir.display());
            return Err(ClusterError::BinariesMissing(why));
        }
        let owner = server_owner().map_err(|_| ClusterError::NoPostgresUser)?;
        Ok(Tools {
            bindir: bindir.to_path_buf(),
            owner,
        })
    }

    fn detect() -> Result<Tools, Missing> {
        let bindir = find_bindir(std::env::var_os(BINDIR_ENV)).map_err(Missing::Binaries)?;
        Ok(Tools {
            bindir,
            owner: server_owner()?,
        })
    }

    /// A command for a tool that must not run as root (`initdb`, `pg_ctl`,
    /// `pg_basebackup` writing a data dir), run in `cwd`: tools of the server complain when
    /// their user cannot access the current directory.
    fn server_command(&self, tool: &str, cwd: &Path) -> Command {
        let program = self.bindir.join(tool);
        let mut cmd = match self.owner {
            Some(_) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", SUPERUSER, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir(cwd)
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        cmd
    }

    /// Client tools come from the server's bindir first (same version), then `PATH`.
    fn client_program(&self, tool: &str) -> PathBuf {
        let path = self.bindir.join(tool);
        if path.is_file() {
            path
        } else {
            PathBuf::from(tool)
        }
    }
}

/// Whom the server tools run as: `Some(postgres)` when we are root, as they refuse root.
fn server_owner() -> Result<Option<Owner>, Missing> {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        lookup_user(SUPERUSER).map(Some).ok_or(Missing::User)
    } else {
        Ok(None)
    }
}

/// `PGSALVAGE_PG_BINDIR`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`; it must hold `initdb` and `pg_ctl`.
fn find_bindir(env_override: Option<OsString>) -> Result<PathBuf, String> {
    if let Some(dir) = env_override {
        let dir = PathBuf::from(dir);
        return has_server_binaries(&dir)
            .then_some(dir.clone())
            .ok_or_else(|| format!("{BINDIR_ENV}={} has no initdb and pg_ctl", dir.display()));
    }
    pg_config_bindir()
        .into_iter()
        .chain(debian_bindirs())
        .find(|dir| has_server_binaries(dir))
        .ok_or_else(|| "no initdb and pg_ctl next to pg_config or in /usr/lib/postgresql".into())
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

/// Debian's layout, newest major version first, for when `pg_config` is not installed.
fn debian_bindirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn lookup_user(name: &str) -> Option<Owner> {
    let name = CString::new(name).ok()?;
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the duration of the call, buf.len() is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(Owner {
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}

/// A fresh temp dir for one cluster. Under root it is handed to the `postgres` user; its
/// 0700 mode is then right for that user (and root bypasses it), but every ancestor must
/// be traversable by it, which `/tmp` is and a TMPDIR under `/root` is not.
fn make_base_dir(owner: Option<&Owner>) -> Result<TempDir, ClusterError> {
    let mut root = std::env::temp_dir();
    if owner.is_some() && !traversable_by_all(&root) {
        root = PathBuf::from("/tmp");
    }
    // A short prefix: the Unix socket path must stay under ~107 bytes.
    let base = tempfile::Builder::new()
        .prefix("pgsalvage-")
        .tempdir_in(&root)
        .map_err(|error| io_error("create a temp dir in", &root, error))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(base.path(), Some(owner.uid), Some(owner.gid))
            .map_err(|error| io_error("chown", base.path(), error))?;
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o700))
            .map_err(|error| io_error("chmod", base.path(), error))?;
    }
    Ok(base)
}

fn traversable_by_all(dir: &Path) -> bool {
    dir.ancestors()
        .all(|a| fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Asks the kernel for a free loopback port. The listener is dropped before the server
/// binds, so another process may grab the port in between: `launch` retries then.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|error| io_error("bind a probe socket on", Path::new("127.0.0.1:0"), error))?;
    let port = listener
        .local_addr()
        .map_err(|error| io_error("read the address of", Path::new("127.0.0.1:0"), error))?
        .port();
    Ok(port)
}

fn port_taken(log: &str) -> bool {
    [
        "could not bind",
        "Address already in use",
        "could not create any TCP/IP sockets",
    ]
    .iter()
    .any(|needle| log.contains(needle))
}

/// `name = 'value'` lines for postgresql.conf; names are checked because they are not
/// quoted, values are quoted because any value may be written as a string.
fn conf_lines<'a>(
    settings: impl Iterator<Item = &'a (&'a str, &'a str)>,
) -> Result<String, ClusterError> {
    let mut conf = String::from("\n# added by pgsalvage\n");
    for (name, value) in settings {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            return Err(ClusterError::InvalidSetting(name.to_string()));
        }
        let value = value.replace('\\', "\\\\").replace('\'', "''");
        conf.push_str(&format!("{name} = '{value}'\n"));
    }
    Ok(conf)
}

/// Writes (or appends to) a file in the data dir. Appending and truncating keep the owner
/// and mode initdb gave the file, which matters when we are root and the server is not.
fn write_file(path: &Path, text: &str, append: bool) -> Result<(), ClusterError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| io_error("write", path, error))
}

fn io_error(action: &'static str, path: &Path, error: io::Error) -> ClusterError {
    ClusterError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

fn run(mut cmd: Command, program: &str) -> Result<Output, ClusterError> {
    cmd.output().map_err(|error| ClusterError::Spawn {
        program: program.to_string(),
        error,
    })
}

/// Like `run`, feeding `input` on stdin from a second thread: psql may fill its stdout
/// pipe before it has read all of a large script, and writing from this thread would
/// then deadlock.
fn output_with_stdin(
    mut cmd: Command,
    program: &str,
    input: &[u8],
) -> Result<Output, ClusterError> {
    let spawn_error = |error| ClusterError::Spawn {
        program: program.to_string(),
        error,
    };
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    thread::scope(|scope| {
        // A write error means psql exited early (e.g. it could not connect); its stderr
        // says why, so the error here is ignored.
        scope.spawn(move || {
            let _ = stdin.write_all(input);
        });
        child.wait_with_output().map_err(spawn_error)
    })
}

fn psql_result(db: &str, output: Output) -> Result<String, ClusterError> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut stderr = one_line(&String::from_utf8_lossy(&output.stderr));
    if stderr.is_empty() {
        stderr = format!("psql exited with {}", output.status);
    }
    Err(ClusterError::Psql {
        db: db.to_string(),
        stderr,
    })
}

fn check_tool(tool: &'static str, output: &Output, hint: &'static str) -> Result<(), ClusterError> {
    if output.status.success() {
        return Ok(());
    }
    let detail = one_line(&format!(
        "exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ));
    Err(ClusterError::Tool { tool, detail, hint })
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The last lines the server logged after byte `offset` (earlier attempts are skipped).
fn log_tail(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Error messages are one line: multi-line tool output is joined with " | ".
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn read_postmaster_pid(pidfile: &Path) -> Option<libc::pid_t> {
    let text = fs::read_to_string(pidfile).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for the URL path.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(percent_encode("my db/é"), "my%20db%2F%C3%A9");
    }

    #[test]
    fn conf_lines_quote_values_and_reject_bad_names() {
        let conf = conf_lines([("wal_level", "it's")].iter()).unwrap();
        assert!(conf.contains("wal_level = 'it''s'\n"));
        let err = conf_lines([("x = 1\ny", "2")].iter()).unwrap_err();
        assert!(matches!(err, ClusterError::InvalidSetting(_)));
    }

    #[test]
    fn bindir_override_must_hold_server_binaries() {
        let why = find_bindir(Some("/nonexistent".into())).unwrap_err();
        assert!(why.contains("/nonexistent"), "{why}");
        let msg = ClusterError::BinariesMissing(why).to_string();
        assert!(
            msg.starts_with("postgresql server binaries are missing"),
            "{msg}"
        );
        assert!(msg.contains("hint: apt-get install postgresql"), "{msg}");
    }

    /// The server fails to bind a port someone else holds; the start must move on to
    /// another port instead of failing.
    #[test]
    fn start_retries_when_the_port_is_taken() {
        let squatter = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let mut cluster = Cluster::prepare(Tools::get().unwrap()).unwrap();
        cluster.initdb().unwrap();
        let conf = conf_lines(BASE_SETTINGS.iter()).unwrap();
        write_file(&cluster.data.join("postgresql.conf"), &conf, true).unwrap();
        let free = free_port().unwrap();
        let mut ports = [taken, free].into_iter();
        cluster
            .launch_on(|| Ok(ports.next().expect("more than one retry")))
            .unwrap();
        assert_eq!(cluster.port(), free);
        assert_ne!(cluster.port(), taken);
        assert_eq!(cluster.psql("postgres", "SELECT 1").unwrap(), "1\n");
        assert!(fs::read_to_string(&cluster.log)
            .unwrap()
            .contains("could not bind"));
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            one_line("ERROR:  boom\n\nLINE 1: x\n"),
            "ERROR:  boom | LINE 1: x"
        );
        let err = ClusterError::BinariesMissing("none".into()).to_string();
        assert!(err.contains("apt-get install postgresql") && !err.contains('\n'));
    }
}
