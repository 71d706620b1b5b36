//! The run plan: what a run computes, in what order, and what is held where until which reader.
//! It is pure: built from what an engine reports of its data (the member ids, the extracts'
//! rows, the names its session holds), the memory limit, the backend and the compiled measures,
//! without running a query. Every choice of memory policy is made here, and the executor
//! ([`crate::execute`]) carries the plan out on an engine.
//!
//! A plan is
//! - the blocks kept for the run: those marked `hhq: keep`, computed once over every member
//!   before the passes (some are right only over every member: a replacement claim may be filed
//!   under another member id than the claim it supersedes), in waves;
//! - the passes: ranges of member ids, each computing its members only, so that memory follows
//!   the pass, not the state;
//! - per pass, the building blocks the measures read, in waves (a wave's blocks read none of
//!   each other, and are computed side by side), each kept while it fits the blocks' budget;
//! - per pass, the measures, side by side as many at once as the plan says, each in stages: the
//!   steps read more than once held as tables, until the measure's detail is done, or, when
//!   other measures of the pass compute the same step, until the last of them has read it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::compile::blocks::Block;
use crate::compile::{CompiledMeasure, Stage};

/// Members a run computes at once, when neither `--members-per-pass` nor a memory limit says
/// otherwise.
pub const MEMBERS_PER_PASS: usize = 100_000;

/// The pool memory a pass is given per row of its members' extracts under a memory limit
/// (with its blocks, sorts' double reservations and merges): see docs/memory.md.
pub const BYTES_PER_ROW: usize = 512;

/// The fewest members per pass a memory limit makes: below it the passes' fixed costs (every
/// pass reads the extracts' row groups and plans every measure) dominate.
pub const MIN_MEMBERS_PER_PASS: usize = 1_000;

/// Member ids from `from` (inclusive) to `to` (exclusive), an open end unbounded: the members
/// one pass computes. The default is every member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl MemberRange {
    /// The range holding one member id and no other (`hhq explain`).
    pub fn only(id: &str) -> MemberRange {
        MemberRange {
            from: Some(id.to_string()),
            to: Some(format!("{id}\u{0}")),
        }
    }

    /// Whether `id` is in the range.
    pub fn contains(&self, id: &str) -> bool {
        self.from.as_deref().is_none_or(|f| id >= f) && self.to.as_deref().is_none_or(|t| id < t)
    }

    /// Whether the range holds every member.
    pub fn is_everyone(&self) -> bool {
        *self == MemberRange::default()
    }

    /// The SQL condition on `member_id`; `None` for every member.
    pub fn filter(&self) -> Option<String> {
        let bounds: Vec<String> = [
            self.from
                .as_deref()
                .map(|f| format!("member_id >= {}", crate::compile::sql::string(f))),
            self.to
                .as_deref()
                .map(|t| format!("member_id < {}", crate::compile::sql::string(t))),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!bounds.is_empty()).then(|| bounds.join(" AND "))
    }
}

impl fmt::Display for MemberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.from, &self.to) {
            (None, None) => write!(f, "every member"),
            (None, Some(to)) => write!(f, "members before {to}"),
            (Some(from), None) => write!(f, "members from {from}"),
            (Some(from), Some(to)) => write!(f, "members from {from}, before {to}"),
        }
    }
}

/// A size for people: `64M`, `2G`, as `--memory-limit` takes it.
pub fn format_size(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    for (unit, suffix) in UNITS {
        if bytes >= unit {
            return match bytes % unit {
                0 => format!("{}{suffix}", bytes / unit),
                _ => format!("{:.1}{suffix}", bytes as f64 / unit as f64),
            };
        }
    }
    format!("{bytes}B")
}

/// A size as `--memory-limit` takes it: a number with an optional unit, `K`, `M`, `G` or `T`
/// (powers of 1024, an optional trailing `B` or `iB`, any case); a bare number is bytes.
pub fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let unit_start = upper
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(upper.len());
    let (number, unit) = upper.split_at(unit_start);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("`{t}` is not a size: use e.g. 512M or 2G")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{t}` is not a size: use e.g. 512M or 2G"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= usize::MAX as f64 {
        return Err(format!("`{t}` is not a usable size: use e.g. 512M or 2G"));
    }
    Ok(bytes as usize)
}

/// What the planner is told of the data and the engine.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The members extract's member ids, distinct and in order.
    pub members: &'a [String],
    /// Rows of every extract together.
    pub rows: u64,
    /// The memory pool's limit, if any.
    pub memory_limit: Option<usize>,
    /// Queries run on a cluster: blocks and held steps are written to its scratch space.
    pub cluster: bool,
    /// The building blocks, in dependency order.
    pub blocks: &'a [Block],
    /// The names the session's tables have (extracts, blocks, inputs): a step of one of these
    /// names is not held, and stays a CTE.
    pub names: &'a BTreeSet<String>,
}

/// Where held rows (blocks, steps) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// In this process's memory, counted in the pool.
    Memory,
    /// Parquet files on a cluster's scratch space, which every node reads.
    Scratch,
}

/// How long the blocks a plan computes are kept, and within what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLife {
    /// For the run, over every member, whatever their size (the blocks marked `hhq: keep`).
    Run,
    /// For one pass, while they fit the budget; a block beyond it stays a view.
    Pass { budget: Option<usize> },
}

/// How long a measure's step is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Until the measure's detail is done.
    Own,
    /// Until every one of these measures of the pass (the one computing it first among them)
    /// has read it: they compute the same rows.
    Shared { readers: Vec<String> },
}

/// One measure as each pass computes it.
#[derive(Debug, Clone)]
pub struct MeasureStages {
    pub id: String,
    /// Its stages: each held step, then the detail reading them by name.
    pub stages: Vec<Stage>,
    /// For each stage but the detail, how long it is held.
    pub holds: Vec<Hold>,
}

/// One pass: the members it computes (the blocks and measures of every pass are the plan's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub members: MemberRange,
}

/// A run's plan (see the module's documentation).
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Queries run side by side: measures of a pass, blocks of a wave.
    pub queries_at_once: usize,
    /// Where blocks and held steps are kept.
    pub store: Store,
    /// The most memory the blocks a pass computes may hold together; one beyond it stays a
    /// view, computed again by each query reading it. `None`: no bound.
    pub block_budget: Option<usize>,
    /// The blocks kept for the run, computed over every member first, in waves.
    pub for_run: Vec<Vec<String>>,
    /// The passes, in member-id order: together every possible member id, unless the plan is
    /// narrowed to some ([`RunPlan::only`]).
    pub passes: Vec<Pass>,
    /// The blocks each pass computes, in waves.
    pub pass_blocks: Vec<Vec<String>>,
    /// The measures each pass computes, in the order given.
    pub measures: Vec<MeasureStages>,
}

/// Members per pass when none is asked for, of `members` holding `rows` rows: [`MEMBERS_PER_PASS`],
/// and under a memory limit no more than the limit holds at [`BYTES_PER_ROW`] for each of their
/// rows (in the proportion the data has): a pass whose sorts and joins fit in the pool runs
/// without spilling, and one far larger spills more than DataFusion's merges can hold. Never
/// fewer than [`MIN_MEMBERS_PER_PASS`].
pub fn pass_size(members: usize, rows: u64, memory_limit: Option<usize>) -> usize {
    let Some(limit) = memory_limit else {
        return MEMBERS_PER_PASS;
    };
    let rows_per_member = (rows as f64 / members.max(1) as f64).max(1.0);
    let fits = (limit as f64 / (rows_per_member * BYTES_PER_ROW as f64)) as usize;
    fits.clamp(MIN_MEMBERS_PER_PASS, MEMBERS_PER_PASS)
}

/// Member ranges of about `per_pass` members each of `ids` (distinct, in order), together
/// covering every possible id: one range when they fit in one pass. Ranges of ids, not a hash,
/// so passes read only their members' row groups when the extracts are sorted by member, and
/// each pass's detail follows the last in id order.
pub fn member_ranges(ids: &[String], per_pass: usize) -> Vec<MemberRange> {
    let passes = ids.len().div_ceil(per_pass.max(1)).max(1);
    let size = ids.len().div_ceil(passes).max(1);
    let bounds: Vec<String> = (1..passes).map(|p| ids[p * size].clone()).collect();
    (0..passes)
        .map(|p| MemberRange {
            from: p.checked_sub(1).map(|q| bounds[q].clone()),
            to: bounds.get(p).cloned(),
        })
        .collect()
}

/// Queries side by side: two, or one under a memory limit (the limit bounds one query's
/// operators, not two at once).
pub fn queries_at_once(memory_limit: Option<usize>) -> usize {
    match memory_limit {
        Some(_) => 1,
        None => 2,
    }
}

/// These blocks (names of `blocks`, which are in dependency order) in waves: each wave's blocks
/// read none of those still to compute, directly or through other blocks; at least the first
/// pending one per wave.
pub fn waves(blocks: &[Block], names: &BTreeSet<&str>) -> Vec<Vec<String>> {
    let reads = |block: &Block, name: &str| reads_block(blocks, block, name);
    let mut pending: Vec<&Block> = blocks
        .iter()
        .filter(|b| names.contains(b.name.as_str()))
        .collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let mut wave: Vec<&Block> = pending
            .iter()
            .copied()
            .filter(|b| !pending.iter().any(|p| reads(b, &p.name)))
            .collect();
        if wave.is_empty() {
            wave.push(pending[0]);
        }
        pending.retain(|p| !wave.iter().any(|b| b.name == p.name));
        out.push(wave.into_iter().map(|b| b.name.clone()).collect());
    }
    out
}

/// Whether `block` reads the block `name`, directly or through the blocks it reads.
fn reads_block(blocks: &[Block], block: &Block, name: &str) -> bool {
    block.reads.iter().any(|r| {
        r == name
            || blocks
                .iter()
                .find(|b| &b.name == r)
                .is_some_and(|b| reads_block(blocks, b, name))
    })
}

/// The blocks marked `hhq: keep` (but `except`, a block being profiled), in waves: what every
/// plan computes first, over every member, and keeps for the run.
pub fn keep_waves(blocks: &[Block], except: Option<&str>) -> Vec<Vec<String>> {
    let keep: BTreeSet<&str> = blocks
        .iter()
        .filter(|b| b.keep && Some(b.name.as_str()) != except)
        .map(|b| b.name.as_str())
        .collect();
    waves(blocks, &keep)
}

/// How a detail is held between a run's passes and its summaries: in memory when one pass
/// computes every member (a report's), else spooled to disk pass by pass.
pub fn details_in_memory(plan: &RunPlan) -> bool {
    plan.passes.len() == 1
}

impl RunPlan {
    /// The plan of a run computing `measures` (their detail, pass by pass) and the blocks
    /// `needed` (those the measures read; see [`crate::measure::Measure::blocks_given`]), in
    /// passes of `members_per_pass` members or as the memory limit makes them
    /// ([`pass_size`]). On a cluster one pass computes every member: a cluster holds no block
    /// in memory between queries, and a pass would read the blocks kept for the run as its
    /// own members' rows.
    pub fn new(
        facts: &Facts,
        measures: &[&CompiledMeasure],
        needed: &BTreeSet<&str>,
        members_per_pass: Option<usize>,
    ) -> RunPlan {
        let passes = match facts.cluster {
            true => vec![MemberRange::default()],
            false => {
                let per_pass = members_per_pass.unwrap_or_else(|| {
                    pass_size(facts.members.len(), facts.rows, facts.memory_limit)
                });
                member_ranges(facts.members, per_pass)
            }
        };
        let per_pass: BTreeSet<&str> = needed
            .iter()
            .copied()
            .filter(|n| !facts.blocks.iter().any(|b| b.keep && b.name == *n))
            .collect();
        RunPlan {
            queries_at_once: queries_at_once(facts.memory_limit),
            store: match facts.cluster {
                true => Store::Scratch,
                false => Store::Memory,
            },
            // The rest of the limit is for the queries: sorts and aggregations over little
            // memory spill much.
            block_budget: facts.memory_limit.map(|limit| limit / 4),
            for_run: keep_waves(facts.blocks, None),
            passes: passes.into_iter().map(|members| Pass { members }).collect(),
            pass_blocks: waves(facts.blocks, &per_pass),
            measures: measure_stages_all(measures, facts),
        }
    }

    /// The plan computing only these members, in one pass (`hhq explain`, or one pass of a
    /// run profiled).
    pub fn only(mut self, members: MemberRange) -> RunPlan {
        self.passes = vec![Pass { members }];
        self
    }

    /// The plan without the measures `reused` (their outputs read from the run cache).
    pub fn without(mut self, reused: &BTreeSet<&str>) -> RunPlan {
        self.measures.retain(|m| !reused.contains(m.id.as_str()));
        self
    }

    /// The keys of the steps more than one measure of a pass computes, and how many measures
    /// read each.
    pub fn shared_steps(&self) -> BTreeMap<String, usize> {
        self.shared_steps_among(&self.measures.iter().map(|m| m.id.as_str()).collect())
    }

    /// [`RunPlan::shared_steps`] when only the measures `computed` are computed (the others'
    /// details read from the run cache): how many of them read each.
    pub fn shared_steps_among(&self, computed: &BTreeSet<&str>) -> BTreeMap<String, usize> {
        let mut uses = BTreeMap::new();
        for m in self
            .measures
            .iter()
            .filter(|m| computed.contains(m.id.as_str()))
        {
            for (stage, hold) in m.stages.iter().zip(&m.holds) {
                if let Hold::Shared { readers } = hold {
                    let n = readers
                        .iter()
                        .filter(|r| computed.contains(r.as_str()))
                        .count();
                    uses.insert(stage.key.clone(), n);
                }
            }
        }
        uses
    }
}

/// A measure's stages: under a memory limit no step is held (steps stay CTEs: slower,
/// bounded), nor one whose name a table of the session has.
fn stages(
    compiled: &CompiledMeasure,
    memory_limit: Option<usize>,
    names: &BTreeSet<String>,
) -> Vec<Stage> {
    compiled.staged(|name| memory_limit.is_none() && !names.contains(name))
}

/// A measure's plan when it is computed alone: its steps held until its detail.
pub fn measure_stages(
    compiled: &CompiledMeasure,
    memory_limit: Option<usize>,
    names: &BTreeSet<String>,
) -> MeasureStages {
    let stages = stages(compiled, memory_limit, names);
    MeasureStages {
        id: compiled.id.clone(),
        holds: vec![Hold::Own; stages.len().saturating_sub(1)],
        stages,
    }
}

/// Each measure's stages ([`stages`]); a step two measures compute alike (the same key) is
/// shared by them.
fn measure_stages_all(measures: &[&CompiledMeasure], facts: &Facts) -> Vec<MeasureStages> {
    let staged: Vec<(String, Vec<Stage>)> = measures
        .iter()
        .map(|c| (c.id.clone(), stages(c, facts.memory_limit, facts.names)))
        .collect();
    let mut readers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, stages) in &staged {
        for stage in stages.iter().filter(|s| s.name != "detail") {
            readers.entry(&stage.key).or_default().push(id.clone());
        }
    }
    staged
        .iter()
        .map(|(id, stages)| {
            let holds = stages
                .iter()
                .filter(|s| s.name != "detail")
                .map(|s| match &readers[s.key.as_str()] {
                    r if r.len() > 1 => Hold::Shared { readers: r.clone() },
                    _ => Hold::Own,
                })
                .collect();
            MeasureStages {
                id: id.clone(),
                stages: stages.clone(),
                holds,
            }
        })
        .collect()
}

/// The plan as people read it (its snapshot tests, a failed assertion): no SQL, only what is
/// computed when and held until when.
impl fmt::Display for RunPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match self.store {
            Store::Memory => "in memory",
            Store::Scratch => "on the cluster's scratch space",
        };
        writeln!(f, "queries side by side: {}", self.queries_at_once)?;
        match self.block_budget {
            Some(b) => writeln!(
                f,
                "blocks and held steps: {store}; a pass's blocks within {}",
                format_size(b)
            )?,
            None => writeln!(f, "blocks and held steps: {store}")?,
        }
        writeln!(f, "kept for the run, over every member:")?;
        write_waves(f, &self.for_run)?;
        writeln!(f, "passes: {}", self.passes.len())?;
        for (k, pass) in self.passes.iter().enumerate() {
            writeln!(f, "  {}. {}", k + 1, pass.members)?;
        }
        writeln!(f, "each pass, blocks:")?;
        write_waves(f, &self.pass_blocks)?;
        writeln!(f, "each pass, measures:")?;
        for m in &self.measures {
            writeln!(f, "  {}", m.id)?;
            for (stage, hold) in m.stages.iter().zip(&m.holds) {
                match hold {
                    Hold::Own => writeln!(f, "    {}: held until its detail", stage.name)?,
                    Hold::Shared { readers } => writeln!(
                        f,
                        "    {}: held until {} have read it",
                        stage.name,
                        readers.join(", ")
                    )?,
                }
            }
            writeln!(f, "    detail")?;
        }
        Ok(())
    }
}

fn write_waves(f: &mut fmt::Formatter<'_>, waves: &[Vec<String>]) -> fmt::Result {
    if waves.is_empty() {
        return writeln!(f, "  (none)");
    }
    for (k, wave) in waves.iter().enumerate() {
        writeln!(f, "  wave {}: {}", k + 1, wave.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("M{i:05}")).collect()
    }

    #[test]
    fn ranges_cover_every_id_in_order_and_split_evenly() {
        let members = ids(1500);
        assert_eq!(member_ranges(&members, 1500), vec![MemberRange::default()]);
        assert_eq!(member_ranges(&[], 10), vec![MemberRange::default()]);
        let ranges = member_ranges(&members, 350);
        assert_eq!(ranges.len(), 5);
        assert_eq!(ranges[0].from, None);
        assert_eq!(ranges[4].to, None);
        for w in ranges.windows(2) {
            assert!(w[0].to.is_some() && w[0].to == w[1].from, "{ranges:?}");
        }
        for r in &ranges {
            assert_eq!(members.iter().filter(|id| r.contains(id)).count(), 300);
        }
    }

    #[test]
    fn a_limit_sets_the_pass_from_the_rows_per_member() {
        assert_eq!(pass_size(10, 1_000_000, None), MEMBERS_PER_PASS);
        // Ten members of 1,000 rows each.
        let per_member = 1_000 * BYTES_PER_ROW;
        for (limit, expected) in [
            (per_member * 2_500, 2_500),
            (per_member * 2_500 + per_member / 2, 2_500),
            (per_member * 10, MIN_MEMBERS_PER_PASS),
            (per_member * 1_000_000, MEMBERS_PER_PASS),
        ] {
            assert_eq!(pass_size(10, 10_000, Some(limit)), expected, "{limit}");
        }
    }

    #[test]
    fn waves_put_a_block_after_the_blocks_it_reads() {
        let block = |name: &str, reads: &[&str]| Block {
            name: name.into(),
            path: Default::default(),
            doc: String::new(),
            sql: String::new(),
            keep: false,
            reads: reads.iter().map(|r| r.to_string()).collect(),
            value_sets: Vec::new(),
        };
        let blocks = [
            block("a", &[]),
            block("b", &[]),
            block("v", &["a"]),
            block("c", &["v"]),
            block("d", &["b"]),
        ];
        // `c` reads `a` through the view `v`, which is not computed.
        let wanted = BTreeSet::from(["a", "b", "c", "d"]);
        assert_eq!(
            waves(&blocks, &wanted),
            vec![
                vec!["a".to_string(), "b".into()],
                vec!["c".into(), "d".into()]
            ]
        );
        assert!(waves(&blocks, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_range_filters_and_prints() {
        let r = MemberRange {
            from: Some("M1".into()),
            to: Some("M'2".into()),
        };
        assert_eq!(
            r.filter().unwrap(),
            "member_id >= 'M1' AND member_id < 'M''2'"
        );
        assert_eq!(MemberRange::default().filter(), None);
        assert_eq!(r.to_string(), "members from M1, before M'2");
        assert!(MemberRange::only("M1").contains("M1"));
        assert!(!MemberRange::only("M1").contains("M10"));
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("64 MB"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "M", "12X", "-5M", "0", "1e3M", "5M5"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("size"), "{bad}: {e}");
        }
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(3 << 29), "1.5G");
        assert_eq!(format_size(767_624), "749.6K");
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(1000), "1000B");
    }
}
