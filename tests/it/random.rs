//! Randomized damage: random tables, random deletes, inserts and updates at ratios from 0.01 % to
//! 50 %, and the reported set must equal the true set exactly, at several `--jobs`.
//!
//! Every table has a generator column `g`; the key is a function of `g` (bigint, composite, text
//! or uuid), so the damage is chosen in Rust as sets of `g` and the expected key of each finding
//! is computed here, independently of pgsalvage's own rendering.

use std::collections::BTreeSet;
use std::sync::Arc;

use pgsalvage::progress::NullReporter;

use crate::support::*;

/// A small deterministic generator (xorshift64*), seeded per case so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug)]
pub enum KeyShape {
    Bigint,
    Composite,
    Text,
    Uuid,
}

impl KeyShape {
    fn columns(self) -> &'static str {
        match self {
            KeyShape::Bigint => "id bigint, PRIMARY KEY (id)",
            KeyShape::Composite => "ka int, kb text, PRIMARY KEY (ka, kb)",
            KeyShape::Text => "k text, PRIMARY KEY (k)",
            KeyShape::Uuid => "u uuid, PRIMARY KEY (u)",
        }
    }
    /// The key columns' values from the generator column `g`, as SQL.
    fn values(self) -> &'static str {
        match self {
            KeyShape::Bigint => "g * 2 - 40000",
            KeyShape::Composite => "g % 97, 'k' || (g / 97)",
            KeyShape::Text => "'key-' || g",
            KeyShape::Uuid => "(lpad(to_hex((g * 2654435761) % 4294967296), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid",
        }
    }
    /// The key of `g` as pgsalvage must render it.
    fn json(self, g: u64) -> String {
        match self {
            KeyShape::Bigint => format!("[{}]", g as i64 * 2 - 40000),
            KeyShape::Composite => format!("[{},\"k{}\"]", g % 97, g / 97),
            KeyShape::Text => format!("[\"key-{g}\"]"),
            KeyShape::Uuid => format!(
                "[\"{:08x}-0000-4000-8000-{g:012x}\"]",
                (g * 2654435761) % 4294967296
            ),
        }
    }
}

/// Column palette: (name, type, generator from g, an expression that surely changes the value).
const PALETTE: &[(&str, &str, &str, &str)] = &[
    ("i", "integer", "CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 31) % 1000 END", "coalesce(i, 0) + 1"),
    ("t", "text", "md5(g::text)", "coalesce(t, '') || 'x'"),
    ("n", "numeric(14,4)", "round(((g * 7919) % 100000) / 7.0, 4)", "coalesce(n, 0) + 0.0001"),
    ("f", "double precision", "g / 3.0", "coalesce(f, 0) + 1"),
    ("ts", "timestamptz", "timestamptz '2025-01-01 00:00:00+00' + g * interval '1.5 seconds'", "coalesce(ts, now()) + interval '1 microsecond'"),
    ("j", "jsonb", "CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 7)) END", "coalesce(j, '{}') || '{\"changed\": true}'"),
    ("b", "bytea", "decode(md5(g::text), 'hex')", "coalesce(b, '') || '\\x00'::bytea"),
    ("flag", "boolean", "CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END", "NOT coalesce(flag, false)"),
    ("arr", "integer[]", "ARRAY[g, g % 10, NULL]", "coalesce(arr, '{}') || 1"),
    ("d", "date", "date '2020-01-01' + (g % 2000)", "coalesce(d, '2020-01-01') + 1"),
];

const ROWS: u64 = 60_000;

pub struct Case {
    shape: KeyShape,
    columns: Vec<usize>,
    ratio: f64,
    seed: u64,
}

pub fn create_sql(case: &Case) -> String {
    let cols: Vec<String> = case
        .columns
        .iter()
        .map(|&c| format!("{} {}", PALETTE[c].0, PALETTE[c].1))
        .collect();
    let gens: Vec<&str> = case.columns.iter().map(|&c| PALETTE[c].2).collect();
    format!(
        "CREATE TABLE r (g int NOT NULL, {}, {});
         INSERT INTO r SELECT g, {}, {} FROM generate_series(1, {ROWS}) g;
         ANALYZE r;",
        cols.join(", "),
        case.shape.columns(),
        gens.join(", "),
        case.shape.values()
    )
}

/// Applies random damage to the target and returns the findings it must produce.
pub fn damage(case: &Case, target: &str, rng: &mut Rng) -> BTreeSet<Found> {
    let touched = ((ROWS as f64 * case.ratio).round() as u64).max(3);
    let mut picked = BTreeSet::new();
    while (picked.len() as u64) < touched * 2 / 3 {
        picked.insert(1 + rng.below(ROWS));
    }
    let picked: Vec<u64> = picked.into_iter().collect();
    // Alternate so deletes and updates both spread over the whole key space.
    let deleted: Vec<u64> = picked.iter().step_by(2).copied().collect();
    let updated: Vec<u64> = picked.iter().skip(1).step_by(2).copied().collect();
    let inserted: Vec<u64> = (0..touched - picked.len() as u64)
        .map(|i| ROWS + 1 + i * 3 + rng.below(3))
        .collect();
    let mut want = BTreeSet::new();
    let mut sql = format!("DELETE FROM r WHERE g = ANY('{{{}}}');\n", join(&deleted));
    want.extend(
        deleted
            .iter()
            .map(|&g| finding("public.r", &case.shape.json(g), "missing", "")),
    );
    let mut by_column: Vec<Vec<u64>> = vec![Vec::new(); case.columns.len()];
    for &g in &updated {
        by_column[rng.below(case.columns.len() as u64) as usize].push(g);
    }
    for (i, gs) in by_column
        .iter()
        .enumerate()
        .filter(|(_, gs)| !gs.is_empty())
    {
        let (name, _, _, change) = PALETTE[case.columns[i]];
        sql.push_str(&format!(
            "UPDATE r SET {name} = {change} WHERE g = ANY('{{{}}}');\n",
            join(gs)
        ));
        want.extend(
            gs.iter()
                .map(|&g| finding("public.r", &case.shape.json(g), "divergent", name)),
        );
    }
    let gens: Vec<&str> = case.columns.iter().map(|&c| PALETTE[c].2).collect();
    sql.push_str(&format!(
        "INSERT INTO r SELECT g, {}, {} FROM unnest('{{{}}}'::int[]) g;",
        gens.join(", "),
        case.shape.values(),
        join(&inserted)
    ));
    want.extend(
        inserted
            .iter()
            .map(|&g| finding("public.r", &case.shape.json(g), "extra", "")),
    );
    psql(target, &sql);
    want
}

fn join(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn run_case(case: Case) {
    let mut rng = Rng::new(case.seed);
    let (base, target) = pair("random", &create_sql(&case));
    let want = damage(&case, &target, &mut rng);
    for jobs in [1, 3, 8] {
        let mut s = settings(&base, &target);
        s.jobs = jobs;
        s.batch_bytes = 16 * 1024 + rng.below(256 * 1024) as usize;
        let report = verify_with(&s, Arc::new(NullReporter));
        let got = found(&report);
        let missed: Vec<_> = want.difference(&got).take(5).collect();
        let spurious: Vec<_> = got.difference(&want).take(5).collect();
        assert!(
            missed.is_empty() && spurious.is_empty(),
            "seed {} shape {:?} ratio {} jobs {jobs}: {} missed (e.g. {missed:?}), {} spurious (e.g. {spurious:?})",
            case.seed,
            case.shape,
            case.ratio,
            want.difference(&got).count(),
            got.difference(&want).count()
        );
        assert_eq!(report.exit_code, 1);
        let t = &report.tables[0];
        assert_eq!(t.missing + t.extra + t.divergent, want.len() as u64);
    }
}

pub fn random_case(seed: u64, shape: KeyShape, ratio: f64) -> Case {
    let mut rng = Rng::new(seed);
    let mut columns: Vec<usize> = (0..PALETTE.len()).filter(|_| rng.below(2) == 0).collect();
    if columns.is_empty() {
        columns.push(rng.below(PALETTE.len() as u64) as usize);
    }
    Case {
        shape,
        columns,
        ratio,
        seed,
    }
}

#[test]
fn random_damage_at_one_in_ten_thousand() {
    run_case(random_case(11, KeyShape::Bigint, 0.0001));
}

#[test]
fn random_damage_at_one_in_a_thousand() {
    run_case(random_case(12, KeyShape::Composite, 0.001));
}

#[test]
fn random_damage_at_one_percent() {
    run_case(random_case(13, KeyShape::Text, 0.01));
}

#[test]
fn random_damage_at_ten_percent() {
    run_case(random_case(14, KeyShape::Uuid, 0.1));
}

#[test]
fn random_damage_at_half_the_rows() {
    run_case(random_case(15, KeyShape::Bigint, 0.5));
}
