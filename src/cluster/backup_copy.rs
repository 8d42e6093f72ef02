//! A standby without `pg_basebackup`: the primary's data dir copied file by file between
//! `pg_backup_start` and `pg_backup_stop` (`pg_start_backup`/`pg_stop_backup` before 15), the
//! way PostgreSQL documents a low-level base backup.
//!
//! `pg_basebackup` must be of the server's major or newer, and the server-only builds the
//! cross-version tests use ship none, while the system's is older than 16. The primary is on
//! this machine, so the copy is a plain file copy. A non-exclusive backup lives as long as the
//! session that started it, so one `psql` runs the whole backup: it starts it, then its `\!`
//! shell prints a marker and blocks reading psql's stdin until the copy is done; then it stops
//! the backup and prints the backup label, which becomes the copy's `backup_label`. The WAL
//! is copied after the stop, so the copy holds every record from the backup's checkpoint to its
//! end; the standby streams the rest from the primary (`standby.signal`, `primary_conninfo`).

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};

use super::{check_tool, io_error, Cluster, ClusterError, Owner, SUPERUSER};

/// What the `\!` shell prints once the backup has started.
const READY: &str = "pgsalvage-backup-started";

/// Files of the data dir a base backup leaves out (as `pg_basebackup` does).
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "standby.signal",
    "recovery.signal",
];

/// Directories created empty in the copy: runtime state, and `pg_wal`, copied after the stop.
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

impl Cluster {
    /// Fills the (still missing) data dir with a low-level base backup of `primary` set up to
    /// stream from it.
    pub(super) fn copy_backup_from(&self, primary: &Cluster) -> Result<(), ClusterError> {
        let (start, stop) = backup_functions(primary.server_version_num()?);
        let mut cmd = primary.psql_command("postgres");
        cmd.stdin(Stdio::piped());
        let mut psql = cmd.spawn().map_err(|error| ClusterError::Spawn {
            program: "psql".into(),
            error,
        })?;
        let label = self.copy_during_backup(primary, &mut psql, &start, &stop);
        // Whatever happened, psql sees its stdin closed and ends, and the backup with it.
        let output = psql
            .wait_with_output()
            .map_err(|error| ClusterError::Spawn {
                program: "psql".into(),
                error,
            })?;
        check_tool("psql (low-level base backup)", &output, BACKUP_HINT)?;
        let label = label?;
        let owner = self.tools.owner;
        copy_wal(
            &primary.data.join("pg_wal"),
            &self.data.join("pg_wal"),
            owner,
        )?;
        let label = label.strip_suffix('\n').unwrap_or(&label);
        create_file(&self.data.join("backup_label"), label, owner)?;
        create_file(&self.data.join("standby.signal"), "", owner)?;
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={} user={SUPERUSER}'\n",
            primary.port
        );
        super::write_file(&self.data.join("postgresql.auto.conf"), &conninfo, true)
    }

    /// Starts the backup in `psql`, copies the data dir, stops the backup; returns the label.
    fn copy_during_backup(
        &self,
        primary: &Cluster,
        psql: &mut Child,
        start: &str,
        stop: &str,
    ) -> Result<String, ClusterError> {
        let mut stdin = psql.stdin.take().expect("stdin is piped");
        let mut stdout = BufReader::new(psql.stdout.take().expect("stdout is piped"));
        let pipe_error = |error| io_error("talk to psql for", &primary.data, error);
        writeln!(stdin, "{start} \\gset\n\\! echo {READY}; read go").map_err(pipe_error)?;
        stdin.flush().map_err(pipe_error)?;
        wait_for_marker(&mut stdout).map_err(pipe_error)?;
        copy_tree(&primary.data, &self.data, self.tools.owner, true)?;
        writeln!(stdin, "go\n{stop}").map_err(pipe_error)?;
        drop(stdin);
        let mut label = String::new();
        stdout.read_to_string(&mut label).map_err(pipe_error)?;
        Ok(label)
    }
}

const BACKUP_HINT: &str = "the primary must be up and accept superuser connections";

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

/// Reads psql's stdout up to the marker line; psql ending first means the start failed.
fn wait_for_marker(stdout: &mut impl BufRead) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "psql ended before the backup started",
            ));
        }
        if line.trim_end() == READY {
            return Ok(());
        }
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

/// `pg_wal`'s segments and history files, and its subdirectories empty (`archive_status`).
fn copy_wal(from: &Path, to: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    let entries = fs::read_dir(from).map_err(|error| io_error("read", from, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| io_error("read", from, error))?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            make_dir_like(&source, &dest, owner)?;
        } else {
            copy_file(&source, &dest, owner)?;
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

    /// The system's cluster, copied instead of `pg_basebackup`ed, streams like a standby.
    #[test]
    fn a_copied_standby_streams_from_its_primary() {
        let primary = Cluster::start().unwrap();
        primary
            .psql("postgres", "CREATE TABLE t AS SELECT 1 AS n")
            .unwrap();
        let mut standby = Cluster::prepare(primary.tools.clone()).unwrap();
        standby.copy_backup_from(&primary).unwrap();
        standby.launch().unwrap();
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
