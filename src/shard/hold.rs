//! `pgsalvage snapshot hold`: one instant of every source, kept open for a plan's shards.
//!
//! An exported snapshot lives as long as the transaction that exported it. The holder opens
//! each source of the plan, exports its snapshot, writes their ids to `snapshots.json` in the
//! plan directory (by temporary file and rename) and then only waits: until `snapshot release`
//! drops a `release` file beside it, a deadline (`--for`), SIGINT/SIGTERM, or a lost connection.
//! It checks its sessions every few seconds. When it ends it rewrites `snapshots.json` as
//! released, so a shard started later fails saying why instead of reading another instant
//! unnoticed. Shards import the ids (`Source::open_on`); the holder reads no rows and takes no
//! lock, but its open transaction holds back VACUUM on each source for as long as it lives,
//! which is why it always has a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::read_plan;
use crate::error::{Error, Result};
use crate::plan::shards::ShardPlan;
use crate::role::Role;
use crate::source::{ConnInfo, SnapshotInfo, Source};

pub const SNAPSHOTS_FILE: &str = "snapshots.json";
pub const RELEASE_FILE: &str = "release";
const FORMAT: &str = "pgsalvage.snapshots/1";
/// How often the holder looks for a release and checks its sessions.
const TICK: Duration = Duration::from_millis(250);
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// `snapshots.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeldFile {
    pub format: String,
    pub plan_hash: String,
    /// The holder: `pid@host`.
    pub holder: String,
    pub sources: BTreeMap<Role, SnapshotInfo>,
    /// Seconds since the epoch after which the holder lets go.
    pub deadline: u64,
    /// Set once the holder let go, with why.
    #[serde(default)]
    pub released: Option<String>,
}

/// Why a hold ended.
pub enum Ended {
    Released,
    Deadline,
    Interrupted,
}

/// Holds the snapshots of the plan in `plan_dir` for at most `limit`. `ready` is called once the
/// ids are written.
pub async fn hold(
    plan_dir: &Path,
    sources: &[(Role, ConnInfo)],
    limit: Duration,
    ready: &dyn Fn(&HeldFile),
) -> Result<Ended> {
    let plan = read_plan(plan_dir)?;
    let given: Vec<(Role, String)> = sources.iter().map(|(r, i)| (*r, i.to_string())).collect();
    plan.check_sources(&given, "the hold")?;
    let release = plan_dir.join(RELEASE_FILE);
    remove_if_there(&release)?;
    let opening = sources.iter().map(|(r, i)| Source::open(*r, i.clone()));
    let open = futures_util::future::try_join_all(opening).await?;
    let deadline = std::time::SystemTime::now() + limit;
    let mut file = HeldFile {
        format: FORMAT.into(),
        plan_hash: plan.plan_hash.clone(),
        holder: format!("{}@{}", std::process::id(), crate::staging::host_name()),
        sources: open.iter().map(|s| (s.role, s.snapshot.clone())).collect(),
        deadline: deadline
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        released: None,
    };
    let path = plan_dir.join(SNAPSHOTS_FILE);
    crate::report::write_json_file(&path, &file)?;
    ready(&file);
    let outcome = wait(&open, &release, Instant::now() + limit).await;
    file.released = Some(match &outcome {
        Ok(Ended::Released) => "released by pgsalvage snapshot release".into(),
        Ok(Ended::Deadline) => "the hold's deadline passed".into(),
        Ok(Ended::Interrupted) => "the holder was stopped".into(),
        Err(e) => format!("the holder failed: {e}"),
    });
    crate::report::write_json_file(&path, &file)?;
    let _ = std::fs::remove_file(&release);
    outcome
}

/// Waits for a release, the deadline or a stop, checking the sessions now and then.
async fn wait(open: &[Source], release: &Path, until: Instant) -> Result<Ended> {
    let mut checked = Instant::now();
    loop {
        if release.exists() {
            return Ok(Ended::Released);
        }
        if crate::interrupt::requested() {
            return Ok(Ended::Interrupted);
        }
        if Instant::now() >= until {
            return Ok(Ended::Deadline);
        }
        if checked.elapsed() >= CHECK_EVERY {
            for s in open {
                s.client().simple_query("SELECT 1").await.map_err(|e| {
                    Error::pg(e).context(format!(
                        "the session holding the snapshot of {} ({}) was lost, and the snapshot with it",
                        s.role, s.info
                    ))
                })?;
            }
            checked = Instant::now();
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Asks the holder of the plan in `plan_dir` to let go, and waits (up to `patience`) until it
/// has. Returns whether it did.
pub async fn release(plan_dir: &Path, patience: Duration) -> Result<bool> {
    let path = plan_dir.join(SNAPSHOTS_FILE);
    let file = read_held(&path)?.ok_or_else(|| {
        Error::usage(format!(
            "{} holds no snapshots: no hold was started for it",
            plan_dir.display()
        ))
    })?;
    if file.released.is_some() {
        return Ok(true);
    }
    let release = plan_dir.join(RELEASE_FILE);
    std::fs::write(&release, b"").map_err(|e| Error::io(release.display(), e))?;
    let until = Instant::now() + patience;
    while Instant::now() < until {
        if read_held(&path)?.is_some_and(|f| f.released.is_some()) {
            return Ok(true);
        }
        tokio::time::sleep(TICK).await;
    }
    Ok(false)
}

/// The snapshots a hold keeps for `plan`, if a hold was started for it: a hold that has let go,
/// or one made for another plan, is an error (a shard would read another instant).
pub fn held_snapshots(
    plan_dir: &Path,
    plan: &ShardPlan,
) -> Result<Option<BTreeMap<Role, SnapshotInfo>>> {
    let path = plan_dir.join(SNAPSHOTS_FILE);
    let Some(file) = read_held(&path)? else {
        return Ok(None);
    };
    if file.plan_hash != plan.plan_hash {
        return Err(
            Error::usage(format!("{} was written for another plan", path.display())).with_hint(
                "start the hold again for this plan: pgsalvage snapshot hold --plan DIR",
            ),
        );
    }
    if let Some(why) = &file.released {
        return Err(Error::usage(format!(
            "the snapshots held for this plan were let go ({why}); a shard now would read another instant"
        ))
        .with_hint("hold them again and run every shard again, or remove snapshots.json to let each shard take its own"));
    }
    Ok(Some(file.sources))
}

fn read_held(path: &PathBuf) -> Result<Option<HeldFile>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display(), e)),
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::usage(format!("{} is damaged: {e}", path.display()))
                .with_hint("stop the hold and start it again")
        }),
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path.display(), e)),
        _ => Ok(()),
    }
}
