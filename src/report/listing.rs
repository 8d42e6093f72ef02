//! The findings a report lists: the first `--max-findings` of the run, with the table and column
//! names to print them by. Counts never come from here (they are exact in the tallies); this is
//! only what a person reads.

use crate::classify::Finding;
use crate::plan::TableRun;

/// Table and column names, to turn indexes into text.
pub struct Layout {
    tables: Vec<(String, Vec<String>)>,
}

impl Layout {
    /// Per table: its name and compared columns.
    pub fn new(tables: Vec<(String, Vec<String>)>) -> Self {
        Layout { tables }
    }

    pub fn of(tables: &[TableRun]) -> Self {
        let tables = tables
            .iter()
            .map(|t| (t.plan.name.to_string(), t.plan.columns.clone()))
            .collect();
        Layout { tables }
    }

    pub fn table(&self, f: &Finding) -> &str {
        &self.tables[f.table].0
    }

    /// The name of compared column `c` of the finding's table.
    pub fn column(&self, f: &Finding, c: u16) -> &str {
        &self.tables[f.table].1[c as usize]
    }

    pub fn columns(&self, f: &Finding) -> Vec<&str> {
        f.columns
            .iter()
            .map(|&c| self.tables[f.table].1[c as usize].as_str())
            .collect()
    }
}

/// The findings kept for the JSON report.
pub struct Listed {
    pub layout: Layout,
    pub findings: Vec<Finding>,
    pub truncated: bool,
}
