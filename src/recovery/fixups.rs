//! The `fixups` section of plan.json: what recover's fix-ups do around the row restore (schema
//! steps, parent rows, constraints, sequences), as apply reads and lists them. The steps
//! themselves are computed by `recover::fixup`.

use serde::{Deserialize, Serialize};

/// One fix-up as plan.json lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FixupEntry {
    /// `before_rows` or `after_rows`.
    pub stage: String,
    /// `create_sequence`, `add_column`, `set_default`, `add_constraint`, `restore_parents`,
    /// `copy_column`, `create_index`, `orphans`, `validate`, `set_not_null`, `setval`, `manual`.
    pub kind: String,
    pub table: Option<String>,
    pub object: String,
    /// False when written commented out.
    pub active: bool,
    pub rows: Option<u64>,
    pub statements: Vec<String>,
    pub note: Option<String>,
}

/// The `fixups` section of plan.json.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FixupPlan {
    pub summary: Vec<String>,
    pub steps: Vec<FixupEntry>,
    /// Tables the fix-ups insert rows into before the row restore.
    pub insert_tables: Vec<String>,
    /// What undo.sql does not reverse.
    pub not_undone: Vec<String>,
}

impl FixupPlan {
    pub fn active(&self) -> usize {
        self.steps.iter().filter(|s| s.active).count()
    }
}
