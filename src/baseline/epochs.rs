//! The snapshots a long capture moves through (`baseline --max-snapshot-age`).
//!
//! An exported snapshot lives as long as the transaction that exported it, and that transaction
//! holds back vacuum's horizon on the whole server: a nightly baseline of hours would bloat every
//! busy table of a primary. With a maximum age, a capture exports a new snapshot once the current
//! one is that old and ends the old transaction; ranges started after that read the new one. Each
//! range reads one snapshot whole, so every range is exact as of its snapshot; the manifest lists
//! the snapshots (epochs) and, per table, which of them its ranges read, so nobody mistakes such a
//! baseline for one point in time.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::source::{export, Role, Session, SnapshotInfo, Source};

pub struct Epochs {
    max_age: Option<Duration>,
    role: Role,
    info: crate::source::ConnInfo,
    state: tokio::sync::Mutex<State>,
}

struct State {
    snapshots: Vec<SnapshotInfo>,
    since: Instant,
    /// The session keeping the newest snapshot importable (the source's own coordinator, at
    /// first, when it was handed over).
    holder: Option<Session>,
}

impl Epochs {
    /// The source's snapshot for the whole capture.
    pub fn fixed(source: &Source) -> Self {
        Epochs::start(source, None, None)
    }

    /// Starts at the source's snapshot, taking over its coordinator, and moves to a new snapshot
    /// whenever the current one is older than `max_age`.
    pub fn aging(source: &mut Source, max_age: Duration) -> Self {
        let holder = source.hand_over();
        Epochs::start(source, Some(max_age), holder)
    }

    fn start(source: &Source, max_age: Option<Duration>, holder: Option<Session>) -> Self {
        Epochs {
            max_age,
            role: source.role,
            info: source.info.clone(),
            state: tokio::sync::Mutex::new(State {
                snapshots: vec![source.snapshot.clone()],
                since: Instant::now(),
                holder,
            }),
        }
    }

    /// The snapshot a range starting now reads: its epoch and id. Exports a new one first when
    /// the current one is too old; the old one's transaction then ends (ranges that imported it
    /// keep their own snapshot copies).
    pub async fn current(&self) -> Result<(usize, String)> {
        let mut state = self.state.lock().await;
        if self.max_age.is_some_and(|max| state.since.elapsed() >= max) {
            let (holder, snapshot) = export(self.role, &self.info).await?;
            state.holder = Some(holder);
            state.snapshots.push(snapshot);
            state.since = Instant::now();
        }
        let epoch = state.snapshots.len() - 1;
        Ok((epoch, state.snapshots[epoch].snapshot_id.clone()))
    }

    /// Every snapshot used, oldest first.
    pub async fn snapshots(&self) -> Vec<SnapshotInfo> {
        self.state.lock().await.snapshots.clone()
    }
}
