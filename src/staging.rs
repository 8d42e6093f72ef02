//! Nothing half-written: every file and directory pgsalvage produces is written under a hidden
//! temporary name beside its destination and renamed into place once complete, so a crash or an
//! interrupt never leaves something that looks finished.
//!
//! A staging directory is named `.pgsalvage-<kind>-<pid>-<random>`: the pid lets the next run
//! into the same parent directory remove the staging directories of runs that died (killed, or
//! the machine rebooted) without touching those of a run still going. The live ones are also
//! registered here, so an interrupt handler can remove them before the process exits
//! ([`remove_live`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Staging directories of this process not yet published or dropped.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A file beside `path`, renamed over it by `persist` once written.
pub fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = parent_of(path);
    tempfile::Builder::new()
        .prefix(".pgsalvage-")
        .tempfile_in(dir)
        .map_err(|e| {
            Error::io(format!("creating a file in {}", dir.display()), e)
                .with_hint("check that the directory exists and is writable")
        })
}

/// A directory being written, published at `out` when complete.
pub struct StagedDir {
    dir: Option<tempfile::TempDir>,
    out: PathBuf,
    force: bool,
}

impl StagedDir {
    /// A new staging directory for `out`, after refusing an existing `out` (unless `force`) and
    /// removing the stale staging directories of dead runs beside it.
    pub fn create(out: &Path, kind: &str, force: bool) -> Result<StagedDir> {
        if out.exists() && !force {
            return Err(Error::usage(format!("{} already exists", out.display()))
                .with_hint("choose a new --out directory, or add --force to replace it"));
        }
        let parent = parent_of(out);
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        remove_stale(parent);
        let dir = tempfile::Builder::new()
            .prefix(&format!(
                ".pgsalvage-{kind}-{}-h{}-",
                std::process::id(),
                host_tag()
            ))
            .tempdir_in(parent)
            .map_err(|e| Error::io(format!("creating a directory in {}", parent.display()), e))?;
        LIVE.lock()
            .expect("staging lock")
            .push(dir.path().to_path_buf());
        Ok(StagedDir {
            dir: Some(dir),
            out: out.to_path_buf(),
            force,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("not yet published").path()
    }

    /// Makes the directory durable and renames it to `out`; an old `out` (with `force`) is moved
    /// aside first and removed only once the new one is in place.
    pub fn publish(mut self) -> Result<()> {
        let staged = self.dir.take().expect("published once").keep();
        forget(&staged);
        sync_dir(&staged)?;
        let old = (self.force && self.out.exists()).then(|| staged.with_extension("old"));
        if let Some(aside) = &old {
            std::fs::rename(&self.out, aside).map_err(|e| Error::io(self.out.display(), e))?;
        }
        if let Err(e) = std::fs::rename(&staged, &self.out) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(Error::io(self.out.display(), e));
        }
        if let Some(aside) = old {
            let _ = std::fs::remove_dir_all(aside);
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            forget(dir.path());
        }
    }
}

/// Removes this process's unpublished staging directories: what an interrupt handler calls
/// before exiting, since destructors do not run then. Returns how many it removed.
pub fn remove_live() -> usize {
    remove_live_where(|_| true)
}

fn remove_live_where(wanted: impl Fn(&Path) -> bool) -> usize {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (gone, kept): (Vec<PathBuf>, Vec<PathBuf>) = live.drain(..).partition(|d| wanted(d));
    *live = kept;
    drop(live);
    gone.iter()
        .filter(|d| std::fs::remove_dir_all(d).is_ok())
        .count()
}

fn forget(path: &Path) {
    LIVE.lock().expect("staging lock").retain(|p| p != path);
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a directory's entries durable before it is renamed into place.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir.display(), e))
}

/// Removes `.pgsalvage-<kind>-<pid>-h<host>-*` directories in `parent` whose process on this
/// host is gone. Directories of other hosts are left alone: on a volume shared by many machines
/// (the shards of a sharded run), a pid says nothing about another machine's processes.
/// Best effort: a directory that cannot be removed is left for the next run.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let here = host_tag();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, host)) = name.to_str().and_then(stale_owner) else {
            continue;
        };
        if host.is_some_and(|h| h != here) {
            continue;
        }
        if !process_alive(pid) && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid and host tag in a staging directory's name (`.pgsalvage-recover-1234-h0a1b2c3d-AbCd12`;
/// names without a host tag, from older versions, are this host's).
fn stale_owner(name: &str) -> Option<(u32, Option<&str>)> {
    let rest = name.strip_prefix(".pgsalvage-")?;
    let mut parts = rest.splitn(3, '-');
    let (_kind, pid, random) = (parts.next()?, parts.next()?, parts.next()?);
    let host = random
        .strip_prefix('h')
        .and_then(|r| r.split_once('-'))
        .map(|(tag, _)| tag)
        .filter(|tag| tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()));
    Some((pid.parse().ok()?, host))
}

/// Eight hex digits naming this machine (its host name, hashed), for staging names.
fn host_tag() -> String {
    blake3::hash(host_name().as_bytes()).to_hex()[..8].to_string()
}

/// This machine's host name (a pod's name on Kubernetes), `localhost` when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the pid exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pid_and_host_of_a_staging_name_and_nothing_else() {
        assert_eq!(
            stale_owner(".pgsalvage-recover-1234-Ab12Cd"),
            Some((1234, None))
        );
        assert_eq!(
            stale_owner(".pgsalvage-shard-1-h0a1b2c3d-Ab12Cd"),
            Some((1, Some("0a1b2c3d")))
        );
        assert_eq!(stale_owner(".pgsalvage-baseline-77-x"), Some((77, None)));
        assert_eq!(stale_owner(".pgsalvage-recover-abc-x"), None);
        assert_eq!(stale_owner(".pgsalvage-tmpXYZ"), None);
        assert_eq!(stale_owner("recovery"), None);
    }

    #[test]
    fn another_hosts_staging_dirs_stay_whatever_their_pid() {
        let parent = tempfile::tempdir().unwrap();
        let elsewhere = parent
            .path()
            .join(".pgsalvage-shard-99999999-hffffffff-abc");
        std::fs::create_dir(&elsewhere).unwrap();
        let here = parent
            .path()
            .join(format!(".pgsalvage-shard-99999999-h{}-abc", host_tag()));
        std::fs::create_dir(&here).unwrap();
        let staged = StagedDir::create(&parent.path().join("out"), "shard", false).unwrap();
        assert!(
            elsewhere.exists(),
            "another machine's live shard was removed"
        );
        assert!(!here.exists(), "this host's dead run's directory stays");
        drop(staged);
    }

    #[test]
    fn stale_dirs_of_dead_runs_go_and_live_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        // A pid that cannot be running: above the kernel's pid_max (at most 2^22).
        let dead = parent.path().join(".pgsalvage-recover-99999999-abc");
        let mine = parent
            .path()
            .join(format!(".pgsalvage-recover-{}-abc", std::process::id()));
        let other = parent.path().join("keep-me");
        for d in [&dead, &mine, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("f"), b"x").unwrap();
        }
        let out = parent.path().join("out");
        let staged = StagedDir::create(&out, "recover", false).unwrap();
        assert!(!dead.exists(), "a dead run's staging directory stays");
        assert!(mine.exists() && other.exists());
        std::fs::write(staged.path().join("plan.json"), b"{}").unwrap();
        staged.publish().unwrap();
        assert!(out.join("plan.json").exists());
        assert!(StagedDir::create(&out, "recover", false).is_err());
    }

    #[test]
    fn unpublished_dirs_are_removed_by_drop_and_by_remove_live() {
        let parent = tempfile::tempdir().unwrap();
        let a = StagedDir::create(&parent.path().join("a"), "baseline", false).unwrap();
        let a_path = a.path().to_path_buf();
        drop(a);
        assert!(!a_path.exists());
        let b = StagedDir::create(&parent.path().join("b"), "baseline", false).unwrap();
        let b_path = b.path().to_path_buf();
        assert_eq!(remove_live_where(|d| d.starts_with(parent.path())), 1);
        assert!(!b_path.exists());
        std::mem::forget(b);
    }

    #[test]
    fn force_replaces_an_old_directory_only_once_the_new_one_is_in_place() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("old"), b"x").unwrap();
        let staged = StagedDir::create(&out, "recover", true).unwrap();
        std::fs::write(staged.path().join("new"), b"y").unwrap();
        staged.publish().unwrap();
        assert!(out.join("new").exists() && !out.join("old").exists());
        let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only out remains");
    }
}
