//! Fix-ups: what `recover` adds to `restore.sql` (and reverses in `undo.sql`) for check's
//! findings, around the row restore.
//!
//! recover runs [`inspect`](crate::check::inspect) on its own snapshots (target, and the base as the
//! reference), reads which keys its row restore deletes or updates ([`RowRestore`]), and asks
//! [`plan`] for the steps. Where they go, and why there:
//!
//! - **Before the rows**: missing sequences, missing columns (`ADD COLUMN` with the base's type
//!   and default, nullable for now), defaults put back, a missing primary key (the row restore's
//!   `ON CONFLICT (key)` needs its index), then the missing parents, restored from the base in
//!   foreign-key order (the whole chain, `INSERT ... ON CONFLICT DO NOTHING`). The chain includes
//!   rows the row restore inserts as well, so no parent ever waits for a later step; `apply`
//!   loads those tables' row inserts through the conflict-safe path (`insert_tables`).
//! - **The row restore** compares only the columns both sides had, so a column just added gets
//!   its values by a fix-up **after the rows**: the base's `(key, column)` pairs loaded and
//!   applied with `UPDATE ... FROM` (every base row, including those just inserted). Then
//!   missing constraints (`NOT VALID` where that exists) and indexes (a unique index built after
//!   the row restore removed the duplicates it could), commented-out choices for orphans nothing
//!   can restore (delete them, or set the reference NULL when it is nullable; `--orphans`
//!   makes either run, on the listed rows that are still orphans when it runs), `VALIDATE
//!   CONSTRAINT` and `SET NOT NULL` where they will hold, and last `setval` (computed when the
//!   script runs, from the restored table's maximum and the base's `last_value`).
//!
//! "Will hold" is decided row by row: a violating row holds after the restore when the row
//! restore deletes it or updates one of the rule's columns from the base, or (an orphan) when its
//! parent is restored. A rule that will not hold is written commented out with its reason, so the
//! transaction never fails half way on a guess. undo.sql reverses the schema steps and the parent
//! rows, and puts constraints back as they were (`NOT VALID`); `setval` cannot be reversed safely
//! (sequences are not transactional, and new rows may use the values), so undo only shows it.

mod rows;
mod schema;

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use crate::check::catalog::Schema;
use crate::check::drift::{Change, Drift, Object};
use crate::check::Inspection;
use crate::classify::Action;
use crate::error::Result;
pub use crate::recovery::fixups::{FixupEntry, FixupPlan};
pub use crate::settings::OrphanPolicy;
use crate::shape::TableName;

/// One step a fix-up adds to a script.
#[derive(Clone, Debug, PartialEq)]
pub enum FixStep {
    Comment(String),
    /// A statement that runs.
    Run(String),
    /// A statement written commented out: a choice left to a person.
    Choice(String),
    /// A temporary table shaped like `columns` of `table`, filled by `queries` from the base,
    /// or `from_target` (rows as the target had them at diff time, for undo.sql).
    Load {
        temp: String,
        table: TableName,
        columns: Vec<String>,
        queries: Vec<String>,
        from_target: bool,
    },
    /// A temporary table filled with these rows (text values, none NULL).
    Rows {
        temp: String,
        table: TableName,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// The steps, per place in the scripts, and their listing.
#[derive(Debug, Default)]
pub struct Fixups {
    pub before_rows: Vec<FixStep>,
    pub after_rows: Vec<FixStep>,
    /// At the start of undo.sql (reverses `after_rows`).
    pub undo_first: Vec<FixStep>,
    /// At the end of undo.sql (reverses `before_rows`).
    pub undo_last: Vec<FixStep>,
    pub plan: FixupPlan,
}

/// What the row restore does to one table's differing keys.
#[derive(Debug, Default)]
pub struct TableActions {
    pub key: Vec<String>,
    /// By key text: the action and the differing columns.
    pub rows: HashMap<Vec<String>, (Action, Vec<String>)>,
    pub keeps: u64,
}

/// What the row restore does, for the tables it compared.
#[derive(Debug, Default)]
pub struct RowRestore {
    pub tables: BTreeMap<TableName, TableActions>,
}

impl RowRestore {
    /// Whether the row restore deletes the row, or updates one of `columns` of it from the base.
    fn fixes(
        &self,
        table: &TableName,
        key_columns: &[String],
        key: &[Option<String>],
        columns: &[String],
    ) -> bool {
        let Some(t) = self.tables.get(table).filter(|t| t.key == key_columns) else {
            return false;
        };
        let Some(key) = key.iter().cloned().collect::<Option<Vec<String>>>() else {
            return false;
        };
        match t.rows.get(&key) {
            Some((Action::Delete, _)) => true,
            Some((Action::Update, cols)) => cols.iter().any(|c| columns.contains(c)),
            _ => false,
        }
    }

    /// Whether every row of the table ends up with a base counterpart (none kept).
    fn all_from_base(&self, table: &TableName) -> bool {
        self.tables.get(table).is_some_and(|t| t.keeps == 0)
    }
}

/// Builds the fix-ups; reads the target only to check the constraints the base adds.
pub async fn plan(
    target: &Client,
    ins: &Inspection,
    rows: &RowRestore,
    orphans: OrphanPolicy,
) -> Result<Fixups> {
    let Some(bs) = &ins.base else {
        return Ok(Fixups::default());
    };
    let mut b = Builder {
        ins,
        bs,
        rows,
        orphans,
        out: Fixups::default(),
        temps: 0,
        undo_resets: Vec::new(),
    };
    b.schema_before();
    b.parents();
    b.columns_after();
    b.tables_after();
    b.added_constraints(target).await?;
    b.indexes();
    b.orphan_choices();
    b.validations();
    b.not_null();
    b.sequences();
    b.manual();
    b.out.plan.summary = summary(&b.out.plan);
    Ok(b.out)
}

struct Builder<'a> {
    ins: &'a Inspection,
    bs: &'a Schema,
    rows: &'a RowRestore,
    orphans: OrphanPolicy,
    out: Fixups,
    temps: usize,
    /// Unvalidated foreign keys on the target that undo.sql must drop while it takes restored
    /// parents out again (their orphans reference those keys), and add back `NOT VALID`.
    undo_resets: Vec<(TableName, crate::check::catalog::ConstraintDef)>,
}

/// A fix-up's listing; `push` sets its stage.
fn entry(kind: &str, table: Option<&TableName>, object: &str) -> FixupEntry {
    FixupEntry {
        stage: String::new(),
        kind: kind.into(),
        table: table.map(|t| t.to_string()),
        object: object.into(),
        active: true,
        rows: None,
        statements: Vec::new(),
        note: None,
    }
}

impl Builder<'_> {
    fn temp(&mut self, what: &str) -> String {
        self.temps += 1;
        format!("pgsalvage_fix{}_{what}", self.temps)
    }

    fn drift(&self, object: Object, change: Change) -> impl Iterator<Item = &Drift> {
        self.ins
            .report
            .drift
            .iter()
            .filter(move |d| d.object == object && d.change == change)
    }

    /// Records a step: into the script (run or commented) and into plan.json.
    fn push(&mut self, after: bool, mut e: FixupEntry, mut steps: Vec<FixStep>) {
        e.stage = if after { "after_rows" } else { "before_rows" }.into();
        // Scripts hold one statement per line (apply reads them so); a definition with a line
        // break in it (a default's literal) is left to a person.
        for step in &mut steps {
            if let FixStep::Run(sql) = step {
                if sql.contains('\n') {
                    *step = FixStep::Choice(std::mem::take(sql));
                    e.active = false;
                    e.note = Some("the statement spans lines: run it by hand".into());
                }
            }
        }
        let script = if after {
            &mut self.out.after_rows
        } else {
            &mut self.out.before_rows
        };
        let mut comment = format!("fix-up: {} {}", e.kind.replace('_', " "), e.object);
        if let Some(note) = &e.note {
            comment.push_str(&format!(" ({note})"));
        }
        script.push(FixStep::Comment(comment));
        script.extend(steps);
        self.out.plan.steps.push(e);
    }
}

fn summary(plan: &FixupPlan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| {
            let mut line = format!(
                "fix-up {}: {} {}",
                s.stage.replace('_', " "),
                s.kind.replace('_', " "),
                s.object
            );
            if let Some(n) = s.rows {
                line.push_str(&format!(", {n} rows"));
            }
            if !s.active {
                line.push_str(" (commented out");
                if let Some(note) = &s.note {
                    line.push_str(&format!(": {note}"));
                }
                line.push(')');
            }
            line
        })
        .collect()
}

/// A row of text values as a line of text COPY data.
pub fn copy_line(values: &[String]) -> String {
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        for c in v.chars() {
            match c {
                '\\' => line.push_str("\\\\"),
                '\t' => line.push_str("\\t"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                c => line.push(c),
            }
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_escape_like_the_server() {
        assert_eq!(
            copy_line(&["a\tb".into(), "c\\d\ne".into()]),
            "a\\tb\tc\\\\d\\ne\n"
        );
    }

    #[test]
    fn only_deletes_and_updates_of_the_rule_columns_fix_a_row() {
        let t = TableName::new("public", "items");
        let mut actions = TableActions {
            key: vec!["id".into()],
            ..Default::default()
        };
        actions
            .rows
            .insert(vec!["3".into()], (Action::Update, vec!["qty".into()]));
        actions
            .rows
            .insert(vec!["4".into()], (Action::Update, vec!["note".into()]));
        actions
            .rows
            .insert(vec!["5".into()], (Action::Delete, vec![]));
        let rows = RowRestore {
            tables: BTreeMap::from([(t.clone(), actions)]),
        };
        let key = |k: &str| vec![Some(k.to_string())];
        let qty = ["qty".to_string()];
        let id = ["id".to_string()];
        assert!(rows.fixes(&t, &id, &key("3"), &qty));
        assert!(!rows.fixes(&t, &id, &key("4"), &qty));
        assert!(rows.fixes(&t, &id, &key("5"), &qty));
        assert!(!rows.fixes(&t, &id, &key("6"), &qty));
        assert!(
            !rows.fixes(&t, &["code".to_string()], &key("3"), &qty),
            "another key matches nothing"
        );
    }
}
