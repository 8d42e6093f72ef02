//! A standby without `pg_basebackup`: the primary's data dir copied file by file between
//! `pg_backup_start` and `pg_backup_stop` (`pg_start_backup`/`pg_stop_backup` before 15), the
//! way PostgreSQL documents a low-level base backup.
//!
//! `pg_basebackup` must be of the server's major or newer, and the server-only builds the
//! cross-version tests use ship none, while the system's is older than 16. The primary is on
//! this machine, so the copy is a plain file copy. A non-exclusive backup lives as long as the
//! session that started it, so one `psql` runs it all: it creates a temporary replication slot
//! (which keeps every WAL segment from then on), starts the backup, then its `\!` shell prints
//! a marker and blocks reading psql's stdin until the copy is done; it stops the backup, prints
//! the backup label (the copy's `backup_label`) and a marker again, and waits once more. The
//! copy gets no WAL: the standby (`standby.signal`, `primary_conninfo`) streams all of it from
//! the primary, from the backup's checkpoint on, and the session, with its slot, is ended only
//! once the standby is up ([`BackupSession::end`]), so a checkpoint on a busy primary cannot
//! remove a segment the standby still needs.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{check_tool, io_error, Cluster, ClusterError, Owner, SUPERUSER};

/// What the `\!` shell prints when the backup has started, and again when it has stopped.
const READY: &str = "pgsalvage-backup-step-done";
/// The shell command that prints the marker and waits for a line on psql's stdin.
const HANDSHAKE: &str = "\\! echo pgsalvage-backup-step-done; read go";

/// Files of the data dir a base backup leaves out (as `pg_basebackup` does).
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "standby.signal",
    "recovery.signal",
];

/// Directories created empty in the copy: runtime state, and the WAL, which the standby streams.
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

const BACKUP_HINT: &str = "the primary must be up, accept superuser connections and have a free replication slot (max_replication_slots)";

/// The `psql` session that ran a low-level base backup, still open: its temporary replication
/// slot keeps the primary's WAL since before the backup started.
pub(super) struct BackupSession {
    psql: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Cluster {
    /// Fills the (still missing) data dir with a low-level base backup of `primary` set up to
    /// stream from it. The returned session must live until the standby has started.
    pub(super) fn copy_backup_from(
        &self,
        primary: &Cluster,
    ) -> Result<BackupSession, ClusterError> {
        let (start, stop) = backup_functions(primary.server_version_num()?);
        let mut session = BackupSession::open(primary)?;
        let slot = slot_name();
        let begin = format!(
            "SELECT pg_create_physical_replication_slot('{slot}', true, true) \\gset\n\
             {start} \\gset\n{HANDSHAKE}\n"
        );
        let at = &primary.data;
        if let Err(error) = session.step(&begin, at) {
            return Err(session.end().err().unwrap_or(error));
        }
        copy_tree(&primary.data, &self.data, self.tools.owner, true)?;
        let label = match session.step(&format!("go\n{stop}\n{HANDSHAKE}\n"), at) {
            Ok(label) => label,
            Err(error) => return Err(session.end().err().unwrap_or(error)),
        };
        self.configure_standby(primary, &label)?;
        Ok(session)
    }

    /// Writes what turns the copy into a standby of `primary`: the WAL subdirectories, the
    /// backup label, `standby.signal` and `primary_conninfo`.
    fn configure_standby(&self, primary: &Cluster, label: &str) -> Result<(), ClusterError> {
        let owner = self.tools.owner;
        let wal = (primary.data.join("pg_wal"), self.data.join("pg_wal"));
        wal_subdirs(&wal.0, &wal.1, owner)?;
        let label = label.strip_suffix('\n').unwrap_or(label);
        create_file(&self.data.join("backup_label"), label, owner)?;
        create_file(&self.data.join("standby.signal"), "", owner)?;
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={} user={SUPERUSER}'\n",
            primary.port
        );
        super::write_file(&self.data.join("postgresql.auto.conf"), &conninfo, true)
    }
}

impl BackupSession {
    fn open(primary: &Cluster) -> Result<BackupSession, ClusterError> {
        let mut cmd = primary.psql_command("postgres");
        cmd.stdin(Stdio::piped());
        let mut psql = cmd.spawn().map_err(|error| ClusterError::Spawn {
            program: "psql".into(),
            error,
        })?;
        let stdin = psql.stdin.take();
        let stdout = BufReader::new(psql.stdout.take().expect("stdout is piped"));
        Ok(BackupSession {
            psql,
            stdin,
            stdout,
        })
    }

    /// Feeds `script` (ending in the handshake) and returns what psql printed before the
    /// marker; psql ending first means a statement failed.
    fn step(&mut self, script: &str, at: &Path) -> Result<String, ClusterError> {
        let pipe_error = |error| io_error("run a backup through psql for", at, error);
        let stdin = self.stdin.as_mut().expect("the session is open");
        stdin.write_all(script.as_bytes()).map_err(pipe_error)?;
        stdin.flush().map_err(pipe_error)?;
        let mut printed = String::new();
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).map_err(pipe_error)? == 0 {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "psql ended");
                return Err(pipe_error(eof));
            }
            if line.trim_end() == READY {
                return Ok(printed);
            }
            printed.push_str(&line);
        }
    }

    /// Ends the session, and with it the backup (if still running) and the slot.
    pub(super) fn end(mut self) -> Result<(), ClusterError> {
        self.close()
    }

    /// Closes psql's stdin (the waiting `read` gets end of file, psql its last line) and
    /// waits for it.
    fn close(&mut self) -> Result<(), ClusterError> {
        let Some(stdin) = self.stdin.take() else {
            return Ok(());
        };
        drop(stdin);
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.psql.stderr.take() {
            let _ = io::Read::read_to_end(&mut pipe, &mut stderr);
        }
        let status = self.psql.wait().map_err(|error| ClusterError::Spawn {
            program: "psql".into(),
            error,
        })?;
        let output = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr,
        };
        check_tool("psql (low-level base backup)", &output, BACKUP_HINT)
    }
}

impl Drop for BackupSession {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A slot name no other copy of this process uses at the same time.
fn slot_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pgsalvage_copy_{}_{n}", std::process::id())
}

/// The statements that start and stop a non-exclusive backup, and return its label.
fn backup_functions(server_version_num: u32) -> (String, String) {
    let label = "'pgsalvage standby'";
    if server_version_num >= 150_000 {
        (
            format!("SELECT pg_backup_start({label}, true)"),
            "SELECT labelfile FROM pg_backup_stop(false);".into(),
        )
    } else {
        (
            format!("SELECT pg_start_backup({label}, true, false)"),
            "SELECT labelfile FROM pg_stop_backup(false, false);".into(),
        )
    }
}

/// Copies the directory tree `from` into the new directory `to`, keeping modes and, under
/// root, handing everything to the server's user. At the top (`top`), the files and the
/// contents of the directories a base backup leaves out are skipped. Files that vanish while
/// the server runs (temp files, recycled WAL) are skipped too.
fn copy_tree(from: &Path, to: &Path, owner: Option<Owner>, top: bool) -> Result<(), ClusterError> {
    make_dir_like(from, to, owner)?;
    let entries = fs::read_dir(from).map_err(|error| io_error("read", from, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| io_error("read", from, error))?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error("stat", &source, error)),
        };
        if kind.is_dir() {
            if top && EMPTY_DIRS.contains(&name.as_str()) {
                make_dir_like(&source, &dest, owner)?;
            } else if !name.starts_with("pgsql_tmp") {
                copy_tree(&source, &dest, owner, false)?;
            }
        } else if !skipped_file(&name, top) {
            copy_file(&source, &dest, owner)?;
        }
    }
    Ok(())
}

/// Files a base backup leaves out: the server's runtime files at the top, relation caches
/// anywhere.
fn skipped_file(name: &str, top: bool) -> bool {
    (top && SKIP_FILES.contains(&name)) || name.starts_with("pg_internal.init")
}

/// `pg_wal`'s subdirectories (`archive_status`, `summaries`), empty.
fn wal_subdirs(from: &Path, to: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    let entries = fs::read_dir(from).map_err(|error| io_error("read", from, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| io_error("read", from, error))?;
        if entry.path().is_dir() {
            make_dir_like(&entry.path(), &to.join(entry.file_name()), owner)?;
        }
    }
    Ok(())
}

fn make_dir_like(from: &Path, to: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    let mode = fs::metadata(from)
        .map_err(|error| io_error("stat", from, error))?
        .permissions()
        .mode();
    match fs::create_dir(to) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(io_error("create", to, error)),
    }
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|error| io_error("chmod", to, error))?;
    hand_over(to, owner)
}

/// Copies one file (contents and mode); a file gone meanwhile is skipped.
fn copy_file(from: &Path, to: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    match fs::copy(from, to) {
        Ok(_) => hand_over(to, owner),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("copy", from, error)),
    }
}

/// A new file of the data dir, owned by the server's user.
fn create_file(path: &Path, text: &str, owner: Option<Owner>) -> Result<(), ClusterError> {
    fs::write(path, text).map_err(|error| io_error("write", path, error))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|error| io_error("chmod", path, error))?;
    hand_over(path, owner)
}

fn hand_over(path: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    match owner {
        Some(owner) => std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .map_err(|error| io_error("chown", path, error)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_functions_follow_the_rename_in_15() {
        assert!(backup_functions(140_023).0.contains("pg_start_backup("));
        assert!(backup_functions(140_023)
            .1
            .contains("pg_stop_backup(false, false)"));
        assert!(backup_functions(150_000).0.contains("pg_backup_start("));
        assert!(backup_functions(180_004)
            .1
            .contains("pg_backup_stop(false)"));
    }

    /// The system's cluster, copied instead of `pg_basebackup`ed, streams like a standby, even
    /// when the primary switched WAL segments and checkpointed between the copy and the start
    /// (the backup's slot keeps the segments the standby streams from).
    #[test]
    fn a_copied_standby_streams_from_its_primary() {
        let primary = Cluster::start().unwrap();
        primary
            .psql("postgres", "CREATE TABLE t AS SELECT 1 AS n")
            .unwrap();
        let mut standby = Cluster::prepare(primary.tools.clone()).unwrap();
        let session = standby.copy_backup_from(&primary).unwrap();
        let busy = "CREATE TABLE w AS SELECT 1; SELECT pg_switch_wal(); CHECKPOINT; DROP TABLE w; \
                    SELECT pg_switch_wal(); CHECKPOINT; CREATE TABLE w AS SELECT 1; \
                    SELECT pg_switch_wal(); CHECKPOINT; DROP TABLE w";
        primary.psql("postgres", busy).unwrap();
        standby.launch().unwrap();
        session.end().unwrap();
        assert_eq!(
            standby
                .psql("postgres", "SELECT pg_is_in_recovery(), count(*) FROM t")
                .unwrap(),
            "t|1\n"
        );
        primary
            .psql("postgres", "INSERT INTO t VALUES (2)")
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while standby.psql("postgres", "SELECT count(*) FROM t").unwrap() != "2\n" {
            assert!(
                std::time::Instant::now() < deadline,
                "the standby never caught up"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
