//! Progress as an observer: the library tells a [`Reporter`] what happens, the binary draws it.
//!
//! The pipeline calls these methods from its tasks (hence `Send + Sync`); they must return quickly
//! and never fail. The library itself draws nothing: `cli::bars` implements the trait with
//! indicatif on a terminal, and [`NullReporter`] keeps tests and `--quiet` runs silent.

use crate::shape::TableName;

/// A table's outcome as the progress display needs it.
#[derive(Clone, Debug, Default)]
pub struct TableDone {
    pub rows: u64,
    pub differences: u64,
    pub failed: bool,
}

pub trait Reporter: Send + Sync {
    /// A table's first range starts; `est_rows` is the planner's estimate.
    fn table_started(&self, _id: usize, _table: &TableName, _est_rows: u64) {}
    /// More rows of a table were compared.
    fn rows(&self, _id: usize, _rows: u64) {}
    /// A table's last range ended.
    fn table_finished(&self, _id: usize, _done: &TableDone) {}
    /// A line for the user (a table refused, a worker reconnecting).
    fn message(&self, _text: &str) {}
    /// The run waits (for a lock, or paused by a throttle) and says why; `None` when it goes on.
    fn waiting(&self, _why: Option<&str>) {}
    /// The run is over: anything drawn is cleared before the summary is printed.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NullReporter;

impl Reporter for NullReporter {}
