//! One key range of one table, merged: digested batches of every source in, counts and findings
//! out. The sans-I/O core of a verify.
//!
//! A [`RangeMerge`] walks the sources' batches together by key ([`merge`]), classifies each key
//! (two-way, or three-way with the backup as base), adds every row to its source's checksum tree,
//! counts classes and differing columns in a [`RangeTally`], and keeps the findings (with their
//! restore records in recover runs) until the caller takes them. It asks for batches through
//! [`Step::Need`]; whoever owns the sockets (`pipeline::range_diff`) fetches them. Everything
//! here is a function of the batches, so it is tested with batches built in memory.

use crate::classify::{three_way, two_way, Class, Finding};
use crate::compare::merge::{merge, Cursor, OrderError, Present, Step};
use crate::compare::restore::{restore_key, CaptureSpec, Row};
use crate::compare::tally::RangeTally;
use crate::hash::digest::{DigestBatch, RowCodec};
use crate::key::range::KeyRange;
use crate::key::render::row_key_json;
use crate::plan::{TablePlan, TableRun};
use crate::shape::ValueError;

/// What every key of the range shares.
struct KeyContext<'a> {
    run: &'a TableRun,
    table: usize,
    capture: Option<CaptureSpec>,
    /// `--show-values`: divergent findings carry their differing columns' values.
    show_values: bool,
}

/// The merge of one range across 2 or 3 sources.
pub struct RangeMerge<'a> {
    key: KeyContext<'a>,
    range: &'a KeyRange,
    cursors: Vec<Cursor>,
    tally: RangeTally,
    found: Vec<Finding>,
}

impl<'a> RangeMerge<'a> {
    /// A merge of `range` of table number `table` (`run`) across `sources` sources; `capture`
    /// is set in recover runs, and findings then carry restore records.
    pub fn new(
        run: &'a TableRun,
        table: usize,
        range: &'a KeyRange,
        sources: usize,
        capture: Option<CaptureSpec>,
    ) -> Self {
        RangeMerge {
            key: KeyContext {
                run,
                table,
                capture,
                show_values: false,
            },
            range,
            cursors: (0..sources).map(|_| Cursor::new()).collect(),
            tally: RangeTally::new(&run.plan, sources, run.tree_bits),
            found: Vec::new(),
        }
    }

    /// Divergent findings carry the values of their differing columns on every source.
    pub fn show_values(mut self) -> Self {
        self.key.show_values = true;
        self
    }

    /// Merges as far as the batches at hand go: `Need(i)` asks for source `i`'s next batch,
    /// `Done` ends the range. A value that cannot be read stops the merge with its error.
    pub fn step(&mut self) -> Result<Step, MergeError> {
        let (key, tally, found) = (&self.key, &mut self.tally, &mut self.found);
        let step = merge(&mut self.cursors, &mut |cs, present| {
            on_key(key, cs, present, tally, found)
        })
        .map_err(MergeError::Order)?;
        match self.tally.take_error() {
            Some(err) => Err(MergeError::Value(err)),
            None => Ok(step),
        }
    }

    /// Gives source `i` its next batch, or `None` at the end of its stream.
    pub fn feed(&mut self, i: usize, batch: Option<DigestBatch>) -> Result<(), MergeError> {
        self.cursors[i]
            .feed(batch, self.range, i)
            .map_err(MergeError::Order)
    }

    /// The findings made since the last call.
    pub fn take_found(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.found)
    }

    /// The range's counts and trees, once `step` said `Done`.
    pub fn finish(self) -> RangeTally {
        self.tally
    }
}

/// Why a merge stopped.
#[derive(Debug)]
pub enum MergeError {
    /// A source broke the order contract (see [`OrderError`]).
    Order(OrderError),
    /// A value could not be read.
    Value(ValueError),
}

/// Classifies one key and records it.
fn on_key(
    key: &KeyContext<'_>,
    cursors: &[Cursor],
    present: &Present,
    tally: &mut RangeTally,
    found: &mut Vec<Finding>,
) {
    let mut digests = [None; 3];
    // Every source holding this key holds the same key: hash it into a leaf once.
    let mut leaf = None;
    for (i, cursor) in cursors.iter().enumerate() {
        if let (Some(_), Some((batch, row))) = (present[i], cursor.current()) {
            let leaf = *leaf.get_or_insert_with(|| tally.leaf_of(batch.key(row)));
            tally.add_row(i, leaf, &batch.digests[row]);
            digests[i] = Some(&batch.digests[row]);
        }
    }
    let class = match cursors.len() {
        3 => three_way(digests[0], digests[1], digests[2]),
        _ => two_way(digests[0], digests[1]),
    };
    let Some(class) = class else { return };
    if cursors.len() == 3 {
        tally.add_need(class, digests[1].is_some(), digests[2].is_some());
    }
    match finding(key, class, cursors, present) {
        Ok(f) => {
            tally.add_finding(&f);
            found.push(f);
        }
        Err(e) => tally.set_error(e),
    }
}

/// The finding of a differing key, with its restore record in recover runs.
fn finding(
    key: &KeyContext<'_>,
    class: Class,
    cursors: &[Cursor],
    present: &Present,
) -> Result<Finding, ValueError> {
    let run = key.run;
    let plan = &run.plan;
    let rows: Vec<Row<'_>> = (0..cursors.len())
        .map(|i| present[i].and(cursors[i].current()))
        .collect();
    let last = rows.len() - 1;
    // Columns are named against the row a restore would write: the replica's in a three-way run.
    let reference = if rows.len() == 3 && rows[1].is_some() {
        1
    } else {
        0
    };
    let columns = match (rows[reference], rows[last]) {
        (Some(a), Some(b)) => differing_columns(plan, reference, a, b)?,
        _ => Vec::new(),
    };
    let holder = rows
        .iter()
        .position(Option::is_some)
        .expect("a key has a holder");
    let (batch, r) = rows[holder].expect("present");
    let key_text = key_json(
        plan.codecs[holder].as_ref().expect("holder has the table"),
        batch,
        r,
    )?;
    // A target row the `--changed-after` predicate marks as written after the replica is never
    // overwritten: its key is kept, whatever its class.
    let written_after = run.changed_after.is_some()
        && rows[last].is_some_and(|(b, i)| b.rows.field(i, plan.columns.len()) == Some(&[1][..]));
    let restore = match key.capture {
        Some(mut spec) => {
            spec.keep_all |= written_after;
            Some(Box::new(restore_key(
                plan,
                run.restore_mask.as_deref(),
                class,
                spec,
                &rows,
            )?))
        }
        None => None,
    };
    let values = match key.show_values && !columns.is_empty() {
        true => Some(Box::new(shown_values(plan, &columns, &rows)?)),
        false => None,
    };
    Ok(Finding {
        table: key.table,
        class,
        key: key_text,
        order_key: batch.key(r).to_vec(),
        columns,
        restore,
        values,
    })
}

/// How much of a value is shown; the rest is elided with its length.
const SHOWN_CHARS: usize = 80;

/// The differing columns' values on every source, as PostgreSQL prints them (elided past
/// [`SHOWN_CHARS`]): `None` for a source without the row, `Some(None)` for NULL.
fn shown_values(
    plan: &TablePlan,
    columns: &[u16],
    rows: &[Row<'_>],
) -> Result<crate::classify::ShownValues, ValueError> {
    let mut out = Vec::with_capacity(columns.len());
    for &c in columns {
        let mut per_source = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let Some((batch, r)) = row else {
                per_source.push(None);
                continue;
            };
            let codec = plan.codecs[i]
                .as_ref()
                .expect("a row's source has the table");
            let value = match batch.rows.field(*r, c as usize) {
                None => None,
                Some(raw) => Some(elided(&codec.kinds[c as usize], raw)?),
            };
            per_source.push(Some(value));
        }
        out.push((c, per_source));
    }
    Ok(out)
}

fn elided(kind: &crate::shape::TypeKind, raw: &[u8]) -> Result<String, ValueError> {
    let mut text = String::new();
    crate::key::render::render_text(kind, raw, &mut text)?;
    if text.chars().count() <= SHOWN_CHARS {
        return Ok(text);
    }
    let kept: String = text.chars().take(SHOWN_CHARS).collect();
    Ok(format!("{kept}… ({} bytes)", text.len()))
}

/// The compared columns whose canonical values differ between two rows.
pub fn differing_columns(
    plan: &TablePlan,
    reference: usize,
    a: (&DigestBatch, usize),
    b: (&DigestBatch, usize),
) -> Result<Vec<u16>, ValueError> {
    let (ca, cb) = (
        plan.codecs[reference].as_ref().expect("reference"),
        plan.codecs[plan.codecs.len() - 1].as_ref().expect("target"),
    );
    let mut cols = Vec::new();
    for col in 0..plan.columns.len() {
        if ca.canonical_field(&a.0.rows, a.1, col)? != cb.canonical_field(&b.0.rows, b.1, col)? {
            cols.push(col as u16);
        }
    }
    Ok(cols)
}

/// The key of a row as a JSON array of exact values.
fn key_json(codec: &RowCodec, batch: &DigestBatch, row: usize) -> Result<String, ValueError> {
    row_key_json(&codec.kinds[..codec.nkey], &batch.rows, row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::classify::{Action, ConflictPolicy};
    use crate::hash::digest::{digest_batch, Digest};
    use crate::key::encode::encode_key_part;
    use crate::plan::reconcile;
    use crate::role::Role;
    use crate::rows::batch::tests::copy_stream;
    use crate::rows::batch::CopyDecoder;
    use crate::shape::{Column, TableName, TableShape, TypeKind};
    use crate::tree::ChecksumTree;

    const TREE_BITS: u8 = 4;

    fn column(name: &str, type_name: &str, kind: TypeKind, not_null: bool) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            family: kind.family(type_name),
            kind,
            not_null,
            bytewise: false,
            generated: false,
            identity_always: false,
        }
    }

    /// `t (id <id_type> PRIMARY KEY, v text)`.
    fn shape(id_type: &str, id_kind: TypeKind) -> TableShape {
        TableShape {
            name: TableName::new("public", "t"),
            columns: vec![
                column("id", id_type, id_kind, true),
                column("v", "text", TypeKind::Text, false),
            ],
            key: vec![0],
            est_rows: 10,
            never_analyzed: false,
            parents: Vec::new(),
            unique: Vec::new(),
        }
    }

    /// A run of `t` with the same shape on every source, over the whole key space.
    fn table_run(roles: &[Role]) -> TableRun {
        let s = shape("integer", TypeKind::Int(4));
        run_of(roles, &vec![&s; roles.len()])
    }

    fn run_of(roles: &[Role], shapes: &[&TableShape]) -> TableRun {
        let shapes: Vec<Option<&TableShape>> = shapes.iter().map(|s| Some(*s)).collect();
        let plan = reconcile(&TableName::new("public", "t"), roles, &shapes, None).unwrap();
        TableRun {
            plan,
            ranges: vec![KeyRange::all()],
            tree_bits: TREE_BITS,
            restore_mask: None,
            changed_after: None,
            narrow: None,
        }
    }

    /// The binary COPY field of an id of the given byte width.
    fn id_field(id: i64, width: usize) -> Vec<u8> {
        id.to_be_bytes()[8 - width..].to_vec()
    }

    /// A batch of `(id, v)` rows as source `source` of `run` sends them (its id width), with the
    /// `--changed-after` flag appended when `flags` is given.
    fn batch(
        run: &TableRun,
        source: usize,
        rows: &[(i64, Option<&str>)],
        flags: Option<&[bool]>,
    ) -> DigestBatch {
        let codec = run.plan.codecs[source].as_ref().unwrap();
        let width = match codec.kinds[0] {
            TypeKind::Int(w) => usize::from(w),
            ref k => panic!("id of kind {k:?}"),
        };
        let rows: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .enumerate()
            .map(|(i, (id, v))| {
                let mut row = vec![Some(id_field(*id, width)), v.map(|v| v.as_bytes().to_vec())];
                if let Some(flags) = flags {
                    row.push(Some(vec![u8::from(flags[i])]));
                }
                row
            })
            .collect();
        let mut decoder = CopyDecoder::new(2 + usize::from(flags.is_some()));
        decoder.push(&copy_stream(&rows)).unwrap();
        digest_batch(codec, decoder.finish().unwrap().unwrap()).unwrap()
    }

    /// Rows keyed by id; `None` values are NULLs.
    type Rows = BTreeMap<i64, Option<&'static str>>;

    fn rows(list: &[(i64, Option<&'static str>)]) -> Rows {
        list.iter().copied().collect()
    }

    /// Runs a merge of `sources` (each cut into batches of `per_batch` rows), taking the
    /// findings after every step; returns them with the tally.
    fn merge_all(
        run: &TableRun,
        sources: &[Rows],
        per_batch: usize,
        capture: Option<CaptureSpec>,
    ) -> (Vec<Finding>, RangeTally) {
        let range = KeyRange::all();
        let mut feeds: Vec<std::vec::IntoIter<DigestBatch>> = sources
            .iter()
            .enumerate()
            .map(|(i, rows)| {
                let list: Vec<(i64, Option<&str>)> = rows.iter().map(|(k, v)| (*k, *v)).collect();
                list.chunks(per_batch)
                    .map(|c| batch(run, i, c, None))
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect();
        let mut m = RangeMerge::new(run, 7, &range, sources.len(), capture);
        let mut found = Vec::new();
        loop {
            let step = m.step().unwrap();
            found.extend(m.take_found());
            assert!(m.take_found().is_empty(), "findings taken twice");
            match step {
                Step::Need(i) => m.feed(i, feeds[i].next()).unwrap(),
                Step::Done => break,
            }
        }
        (found, m.finish())
    }

    /// (key, class, differing columns) of each finding.
    fn summary(found: &[Finding]) -> Vec<(String, Class, Vec<u16>)> {
        found
            .iter()
            .map(|f| (f.key.clone(), f.class, f.columns.clone()))
            .collect()
    }

    fn f(key: i64, class: Class, columns: &[u16]) -> (String, Class, Vec<u16>) {
        (format!("[{key}]"), class, columns.to_vec())
    }

    /// The digest of one `(id int4, v text)` row, digested alone.
    fn digest_of(run: &TableRun, source: usize, id: i64, v: Option<&str>) -> Digest {
        batch(run, source, &[(id, v)], None).digests[0]
    }

    fn order_key(id: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_part(&TypeKind::Int(8), &id.to_be_bytes(), &mut out).unwrap();
        out
    }

    /// The checksum tree of some rows, built row by row.
    fn tree_of(run: &TableRun, source: usize, rows: &Rows) -> ChecksumTree {
        let mut tree = ChecksumTree::new(TREE_BITS);
        for (id, v) in rows {
            tree.add(&order_key(*id), &digest_of(run, source, *id, *v));
        }
        tree
    }

    #[test]
    fn two_way_finds_missing_extra_and_divergent_rows() {
        let run = table_run(&[Role::Base, Role::Target]);
        let base = rows(&[
            (1, Some("a")),
            (2, Some("b")),
            (3, Some("c")),
            (4, None),
            (5, Some("e")),
            (-8, Some("neg")),
        ]);
        let target = rows(&[
            (2, Some("b")),
            (3, Some("x")),
            (4, Some("d")),
            (5, Some("e")),
            (6, Some("f")),
            (-8, Some("neg")),
        ]);
        for per_batch in [1, 2, 100] {
            let (found, tally) = merge_all(&run, &[base.clone(), target.clone()], per_batch, None);
            assert_eq!(
                summary(&found),
                [
                    f(1, Class::Missing, &[]),
                    f(3, Class::Divergent, &[1]),
                    f(4, Class::Divergent, &[1]),
                    f(6, Class::Extra, &[]),
                ],
                "batches of {per_batch}"
            );
            assert!(found.iter().all(|f| f.table == 7 && f.restore.is_none()));
            assert_eq!(tally.rows, [6, 6]);
            assert_eq!(
                tally.classes.nonzero().collect::<Vec<_>>(),
                [
                    (Class::Missing, 1),
                    (Class::Extra, 1),
                    (Class::Divergent, 2)
                ]
            );
            assert_eq!(tally.classes.actionable(), 4);
            // Only `v` differs in the divergent rows; the key column never does.
            assert_eq!(tally.columns, [0, 2]);
            assert_eq!(tally.trees[0], tree_of(&run, 0, &base));
            assert_eq!(tally.trees[1], tree_of(&run, 1, &target));
        }
    }

    #[test]
    fn identical_sources_find_nothing() {
        let run = table_run(&[Role::Base, Role::Target]);
        let same = rows(&[(1, Some("a")), (2, None), (3, Some(""))]);
        let (found, tally) = merge_all(&run, &[same.clone(), same.clone()], 2, None);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(tally.rows, [3, 3]);
        assert_eq!(tally.classes.total(), 0);
        assert_eq!(tally.trees[0], tally.trees[1]);
        assert_eq!(tally.trees[0].count(), 3);
        // NULL and the empty string are different values.
        let other = rows(&[(1, Some("a")), (2, Some("")), (3, None)]);
        let (found, _) = merge_all(&run, &[same, other], 2, None);
        assert_eq!(
            summary(&found),
            [f(2, Class::Divergent, &[1]), f(3, Class::Divergent, &[1])]
        );
    }

    #[test]
    fn int4_to_int8_compares_by_value() {
        let (int4, int8) = (
            shape("integer", TypeKind::Int(4)),
            shape("bigint", TypeKind::Int(8)),
        );
        let run = run_of(&[Role::Base, Role::Target], &[&int4, &int8]);
        let base = rows(&[(1, Some("a")), (2, Some("b")), (-3, Some("c"))]);
        let target = rows(&[
            (1, Some("a")),
            (2, Some("B")),
            (-3, Some("c")),
            (1 << 40, None),
        ]);
        let (found, tally) = merge_all(&run, &[base, target], 10, None);
        assert_eq!(
            summary(&found),
            [f(2, Class::Divergent, &[1]), f(1 << 40, Class::Extra, &[])]
        );
        assert_eq!(tally.rows, [3, 4]);
    }

    /// (key, base, replica, target, class, differing columns)
    type ThreeWayCase = (i64, Value, Value, Value, Option<Class>, &'static [u16]);
    type Value = Option<&'static str>;

    #[test]
    fn three_way_classifies_with_the_backup_as_base() {
        let run = table_run(&[Role::Base, Role::Replica, Role::Target]);
        let a = Some("a");
        let (r, n, x) = (Some("r"), Some("n"), Some("x"));
        // (key, base, replica, target, class, differing columns)
        let cases: &[ThreeWayCase] = &[
            (1, a, a, a, None, &[]),
            (2, a, a, None, Some(Class::Lost), &[]),
            (3, a, a, x, Some(Class::Damaged), &[1]),
            (4, a, r, r, Some(Class::ChangedSinceBackup), &[]),
            (5, a, r, a, Some(Class::LegitChangeReverted), &[1]),
            (6, a, r, None, Some(Class::LostAfterChange), &[]),
            (7, a, r, x, Some(Class::Conflict), &[1]),
            (8, None, n, n, Some(Class::NewSinceBackup), &[]),
            (9, None, n, None, Some(Class::LostNewRow), &[]),
            (10, None, n, x, Some(Class::DamagedNewRow), &[1]),
            (11, a, None, None, Some(Class::DeletedSinceBackup), &[]),
            // Without a replica row, the columns are the base's against the target's.
            (12, a, None, a, Some(Class::DeletedResurrected), &[]),
            (13, a, None, x, Some(Class::Conflict), &[1]),
            (14, None, None, x, Some(Class::NewOnTarget), &[]),
        ];
        let mut sources = vec![Rows::new(), Rows::new(), Rows::new()];
        for &(key, b, rep, t, _, _) in cases {
            for (i, value) in [b, rep, t].into_iter().enumerate() {
                // A source holds the key when it has a value (none of these rows hold NULLs).
                if value.is_some() {
                    sources[i].insert(key, value);
                }
            }
        }
        let (found, tally) = merge_all(&run, &sources, 3, None);
        let want: Vec<_> = cases
            .iter()
            .filter_map(|&(key, _, _, _, class, cols)| class.map(|c| f(key, c, cols)))
            .collect();
        assert_eq!(summary(&found), want);
        assert_eq!(tally.rows, [10, 10, 10]);
        assert_eq!(tally.classes.get(Class::Conflict), 2);
        assert_eq!(tally.classes.total(), 13);
        // Legitimate: changed and new since the backup, deleted since, new on the target.
        assert_eq!(tally.classes.actionable(), 9);
        assert_eq!(tally.columns, [0, 5]);
        for (i, rows) in sources.iter().enumerate() {
            assert_eq!(tally.trees[i], tree_of(&run, i, rows), "source {i}");
        }
        // The same rows with base and target swapped read differently: the base is source 0.
        sources.swap(0, 2);
        let (found, _) = merge_all(&run, &sources, 3, None);
        let class_of = |k: i64| {
            found
                .iter()
                .find(|f| f.key == format!("[{k}]"))
                .map(|f| f.class)
        };
        assert_eq!(class_of(14), Some(Class::DeletedSinceBackup));
        assert_eq!(class_of(11), Some(Class::NewOnTarget));
    }

    #[test]
    fn recover_runs_attach_restore_records() {
        let run = table_run(&[Role::Base, Role::Target]);
        let base = rows(&[(1, Some("a")), (3, Some("c")), (4, Some("d"))]);
        let target = rows(&[(2, Some("b")), (3, Some("x")), (4, Some("d"))]);
        let spec = CaptureSpec {
            source: 0,
            ..CaptureSpec::default()
        };
        let (found, _) = merge_all(&run, &[base.clone(), target.clone()], 2, Some(spec));
        let restore: Vec<(String, Action, Option<Digest>, Option<Digest>)> = found
            .iter()
            .map(|f| {
                let r = f.restore.as_ref().expect("a restore record");
                (f.key.clone(), r.action, r.before, r.after)
            })
            .collect();
        let (b, t) = (
            |k| digest_of(&run, 0, k, base[&k]),
            |k| digest_of(&run, 1, k, target[&k]),
        );
        assert_eq!(
            restore,
            [
                ("[1]".into(), Action::Insert, None, Some(b(1))),
                ("[2]".into(), Action::Delete, Some(t(2)), None),
                ("[3]".into(), Action::Update, Some(t(3)), Some(b(3))),
            ]
        );
        let r = found[2].restore.as_ref().unwrap();
        assert_eq!(r.literals, ["'3'::integer"]);
        assert_eq!(r.texts, ["3"]);
        assert_eq!(r.order_key, order_key(3));

        // --no-delete keeps the extra row as it is.
        let spec = CaptureSpec {
            no_delete: true,
            ..spec
        };
        let (found, _) = merge_all(&run, &[base.clone(), target.clone()], 2, Some(spec));
        let extra = found[1].restore.as_ref().unwrap();
        assert_eq!(
            (extra.action, extra.before, extra.after),
            (Action::Keep, Some(t(2)), Some(t(2)))
        );
    }

    /// A target row the `--changed-after` predicate flags is kept whatever its class; the flag
    /// itself is not part of the compared row.
    #[test]
    fn changed_after_keeps_the_flagged_target_rows() {
        let mut run = table_run(&[Role::Base, Role::Target]);
        run.changed_after = Some("updated_at > '2026-01-01'".into());
        let range = KeyRange::all();
        let spec = CaptureSpec {
            source: 0,
            on_conflict: ConflictPolicy::KeepTarget,
            ..CaptureSpec::default()
        };
        let mut m = RangeMerge::new(&run, 0, &range, 2, Some(spec));
        let base = batch(
            &run,
            0,
            &[
                (1, Some("a")),
                (2, Some("b")),
                (3, Some("c")),
                (6, Some("f")),
            ],
            None,
        );
        let target = batch(
            &run,
            1,
            &[
                (1, Some("a")),
                (2, Some("x")),
                (3, Some("y")),
                (4, Some("n")),
                (5, Some("m")),
            ],
            Some(&[true, true, false, true, false]),
        );
        let mut feeds = [Some(base), Some(target)];
        let found = loop {
            match m.step().unwrap() {
                Step::Need(i) => m.feed(i, feeds[i].take()).unwrap(),
                Step::Done => break m.take_found(),
            }
        };
        let actions: Vec<(String, Class, Action)> = found
            .iter()
            .map(|f| (f.key.clone(), f.class, f.restore.as_ref().unwrap().action))
            .collect();
        assert_eq!(
            actions,
            [
                // Key 1 is identical though only the target's row carries the flag.
                ("[2]".into(), Class::Divergent, Action::Keep),
                ("[3]".into(), Class::Divergent, Action::Update),
                ("[4]".into(), Class::Extra, Action::Keep),
                ("[5]".into(), Class::Extra, Action::Delete),
                ("[6]".into(), Class::Missing, Action::Insert),
            ]
        );
        assert_eq!(m.finish().rows, [4, 5]);
    }

    #[test]
    fn order_errors_stop_the_merge() {
        let run = table_run(&[Role::Base, Role::Target]);
        let range = KeyRange::all();
        let mut m = RangeMerge::new(&run, 0, &range, 2, None);
        assert_eq!(m.step().unwrap(), Step::Need(0));
        m.feed(
            0,
            Some(batch(&run, 0, &[(1, Some("a")), (2, Some("b"))], None)),
        )
        .unwrap();
        assert_eq!(m.step().unwrap(), Step::Need(1));
        m.feed(1, Some(batch(&run, 1, &[(2, Some("b"))], None)))
            .unwrap();
        // Keys 1 and 2 are passed; both batches ran out.
        assert_eq!(m.step().unwrap(), Step::Need(0));
        assert_eq!(summary(&m.take_found()), [f(1, Class::Missing, &[])]);
        m.feed(0, None).unwrap();
        assert_eq!(m.step().unwrap(), Step::Need(1));
        match m.feed(1, Some(batch(&run, 1, &[(2, Some("b"))], None))) {
            Err(MergeError::Order(OrderError::OutOfOrder { source: 1 })) => {}
            other => panic!("a repeated key was accepted: {other:?}"),
        }
        // A key outside the range the merge was asked for.
        let lo = crate::key::range::KeyBound {
            literals: vec!["'10'::integer".into()],
            order_key: order_key(10),
            display: "10".into(),
        };
        let range = KeyRange {
            lo: Some(std::sync::Arc::new(lo)),
            hi: None,
        };
        let mut m = RangeMerge::new(&run, 0, &range, 2, None);
        match m.feed(0, Some(batch(&run, 0, &[(9, Some("a"))], None))) {
            Err(MergeError::Order(OrderError::OutsideRange { source: 0 })) => {}
            other => panic!("a key below the range was accepted: {other:?}"),
        }
    }
}
