//! The definitions a run reads: measures (each for one specification year), their value sets,
//! the building blocks and the cohort definitions, loaded and checked from the measures and
//! queries directories before anything runs.

use std::collections::BTreeSet;
use std::path::Path;

use crate::compile::blocks::{self, Block};
use crate::error::{Error, Result};
use crate::measure::valueset::ValueSets;
use crate::measure::{self, Measure};

/// Measure definitions, value sets and building blocks as read from disk.
#[derive(Debug, Clone)]
pub struct Definitions {
    pub measures: Vec<Measure>,
    pub value_sets: ValueSets,
    pub blocks: Vec<Block>,
    /// Cohort and risk-flag definitions (`<measures>/cohorts/`).
    pub cohorts: Vec<crate::cohort::model::Definition>,
}

impl Definitions {
    /// Load measures from `measures_dir` (value sets from its `valuesets/`) and building blocks
    /// from `queries_dir`.
    pub fn load(measures_dir: &Path, queries_dir: &Path) -> Result<Definitions> {
        Definitions::load_spec(measures_dir, queries_dir, measure::Spec::Newest)
    }

    /// As [`Definitions::load`], each measure for one specification year.
    pub fn load_spec(
        measures_dir: &Path,
        queries_dir: &Path,
        spec: measure::Spec,
    ) -> Result<Definitions> {
        let mut measures = measure::load_dir_spec(measures_dir, spec)?;
        let rules = crate::conformance::load_for_reporting(measures_dir, &measures)?;
        let shared = Definitions::load_shared_spec(measures_dir, queries_dir, spec)?;
        for m in &mut measures {
            m.reporting.rule_deviations = rules.deviations(&m.id, m.spec_year);
            m.reporting.illustrative_value_sets = shared
                .value_sets_read(m)
                .into_iter()
                .filter(|n| {
                    shared
                        .value_sets
                        .get(n)
                        .is_some_and(|s| !s.replaces_illustrative)
                })
                .collect();
        }
        Ok(Definitions {
            measures,
            cohorts: crate::cohort::model::load_dir(&measures_dir.join("cohorts"))?,
            ..shared
        })
    }

    /// The measure with this id, or a usage error naming the closest ids (`FUHH`: did you mean
    /// `FUH-HH`?) or every id; `dir` is where the measures were read from.
    pub fn measure(&self, id: &str, dir: &Path) -> Result<&Measure> {
        self.measures.iter().find(|m| m.id == id).ok_or_else(|| {
            let nearest: Vec<String> =
                crate::error::nearest(id, self.measures.iter().map(|m| m.id.as_str()))
                    .into_iter()
                    .map(|m| format!("`{m}`"))
                    .collect();
            let known: Vec<&str> = self.measures.iter().map(|m| m.id.as_str()).collect();
            Error::Usage(if nearest.is_empty() {
                format!(
                    "no measure `{id}` in {}; it has {}",
                    dir.display(),
                    known.join(", ")
                )
            } else {
                format!(
                    "no measure `{id}` in {}: did you mean {}?",
                    dir.display(),
                    nearest.join(" or ")
                )
            })
        })
    }

    /// The value sets a measure reads: named in its filters, or by a building block it reads
    /// (directly or through another block), in name order.
    pub fn value_sets_read(&self, m: &Measure) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = m
            .filter_texts()
            .into_iter()
            .flat_map(blocks::value_sets_named)
            .collect();
        let mut todo: Vec<String> = m.blocks().into_iter().map(str::to_string).collect();
        let mut seen = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(b) = self.blocks.iter().find(|b| b.name == name) {
                out.extend(b.value_sets.iter().cloned());
                todo.extend(b.reads.iter().cloned());
            }
        }
        out
    }

    /// Value sets and building blocks only, without the measures.
    pub fn load_shared(measures_dir: &Path, queries_dir: &Path) -> Result<Definitions> {
        Definitions::load_shared_spec(measures_dir, queries_dir, measure::Spec::Newest)
    }

    /// As [`Definitions::load_shared`], the value sets of one specification year.
    pub fn load_shared_spec(
        measures_dir: &Path,
        queries_dir: &Path,
        spec: measure::Spec,
    ) -> Result<Definitions> {
        let vs_dir = measures_dir.join("valuesets");
        let value_sets = if vs_dir.is_dir() {
            ValueSets::load_dir_spec(&vs_dir, spec)?
        } else {
            ValueSets::default()
        };
        Ok(Definitions {
            measures: Vec::new(),
            cohorts: Vec::new(),
            blocks: blocks::load_dir(queries_dir, &value_sets)?,
            value_sets,
        })
    }
}
