//! The engine's use of the run cache ([`crate::cache`]): the keys of what it computes over its
//! data (a building block, a measure's detail, each over one range of members) and the reading
//! and keeping of them. A key holds the engine's base (the build, the extracts' bytes, the
//! audience, the optional inputs), what the thing is made of (a block's SQL, the value sets it
//! names, the keys of the blocks it reads; a measure's compiled plan, every value set and every
//! block) and the members of the pass.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::cache::{Cache, Content, Hasher, Key};
use crate::compile::CompiledMeasure;
use crate::compile::blocks::Block;
use crate::error::Result;
use crate::extract::OpenedExtract;
use crate::measure::valueset::ValueSets;
use crate::plan::MemberRange;
use crate::privacy::Audience;

const BLOCK: &str = "block";
const DETAIL: &str = "detail";

/// A cache attached to an engine, with the keys it has made.
pub(super) struct Attached {
    pub(super) cache: Arc<Cache>,
    base: Key,
    /// Each value set's codes, hashed.
    value_sets: BTreeMap<String, Key>,
    /// All of them together.
    all_value_sets: Key,
    made: Mutex<BTreeMap<(String, String), Key>>,
}

/// A measure's detail of one pass, found in the cache.
pub struct CachedDetail {
    pub batches: Vec<RecordBatch>,
    pub planned: SchemaRef,
}

impl Attached {
    /// The base of an engine over `extracts` for `audience`, with the risk weights given.
    pub(super) fn new(
        cache: Arc<Cache>,
        extracts: &[OpenedExtract],
        audience: &Audience,
        risk_weights: Option<&Path>,
        value_sets: &ValueSets,
    ) -> Result<Attached> {
        let mut h = Hasher::new("engine").part("audience", format!("{audience:?}"));
        for e in extracts {
            h = h.part("extract", e.name);
            for f in &e.files {
                h = h.part("file", crate::digest::file_sha256(f)?);
            }
        }
        h = h.part(
            "risk weights",
            match risk_weights {
                Some(p) => crate::digest::file_sha256(p)?,
                None => String::new(),
            },
        );
        let sets: BTreeMap<String, Key> = value_sets
            .names()
            .filter_map(|n| value_sets.get(n))
            .map(|v| {
                let key = Hasher::new("value set")
                    .part("name", &v.name)
                    .part("system", &v.code_system)
                    .part("codes", v.codes.join("\n"))
                    .part("prefixes", v.prefixes.join("\n"))
                    .key();
                (v.name.clone(), key)
            })
            .collect();
        let all = sets
            .iter()
            .fold(Hasher::new("value sets"), |h, (n, k)| h.part(n, k.as_str()))
            .key();
        Ok(Attached {
            cache,
            base: h.key(),
            value_sets: sets,
            all_value_sets: all,
            made: Mutex::new(BTreeMap::new()),
        })
    }

    /// The key of block `name` over the members of `range`: its SQL, its value sets' codes and
    /// the keys of the blocks it reads (a block kept for the run, over every member).
    pub(super) fn block_key(&self, blocks: &[Block], name: &str, range: &MemberRange) -> Key {
        let at = (name.to_string(), format!("{range:?}"));
        if let Some(k) = self.made.lock().expect("not poisoned").get(&at) {
            return k.clone();
        }
        let mut h = Hasher::new(BLOCK)
            .part("base", self.base.as_str())
            .part("name", name)
            .part("members", &at.1);
        if let Some(block) = blocks.iter().find(|b| b.name == name) {
            h = h.part("sql", &block.sql);
            for v in &block.value_sets {
                let codes = self.value_sets.get(v).map_or("", |k| k.as_str());
                h = h.part("value set", codes);
            }
            for read in &block.reads {
                let over = match blocks.iter().any(|b| &b.name == read && b.keep) {
                    true => MemberRange::default(),
                    false => range.clone(),
                };
                h = h.part("reads", self.block_key(blocks, read, &over).as_str());
            }
        }
        let key = h.key();
        self.made
            .lock()
            .expect("not poisoned")
            .insert(at, key.clone());
        key
    }

    /// The key of a measure's detail over the members of `range`: its compiled plan and SQL,
    /// every value set and every block.
    pub(super) fn detail_key(
        &self,
        blocks: &[Block],
        compiled: &CompiledMeasure,
        range: &MemberRange,
    ) -> Key {
        let mut h = Hasher::new(DETAIL)
            .part("base", self.base.as_str())
            .part("measure", format!("{compiled:?}"))
            .part("value sets", self.all_value_sets.as_str())
            .part("members", format!("{range:?}"));
        for b in blocks {
            let over = match b.keep {
                true => MemberRange::default(),
                false => range.clone(),
            };
            h = h.part("block", self.block_key(blocks, &b.name, &over).as_str());
        }
        h.key()
    }

    pub(super) fn block(&self, key: &Key) -> Option<(SchemaRef, Vec<RecordBatch>)> {
        self.cache.read(BLOCK, key, |e| e.batches("rows.arrow"))
    }

    pub(super) fn keep_block(&self, key: &Key, batches: &[RecordBatch]) {
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            return;
        };
        self.cache.put(
            BLOCK,
            key,
            vec![("rows.arrow", Content::Batches(schema, batches.to_vec()))],
        );
    }

    pub(super) fn detail(&self, key: &Key) -> Option<CachedDetail> {
        self.cache.read(DETAIL, key, |e| {
            let (planned, _) = e.batches("planned.arrow")?;
            let (_, batches) = e.batches("detail.arrow")?;
            Some(CachedDetail { batches, planned })
        })
    }

    pub(super) fn keep_detail(&self, key: &Key, batches: &[RecordBatch], planned: &SchemaRef) {
        let schema = batches
            .first()
            .map_or_else(|| planned.clone(), RecordBatch::schema);
        self.cache.put(
            DETAIL,
            key,
            vec![
                (
                    "planned.arrow",
                    Content::Batches(planned.clone(), Vec::new()),
                ),
                ("detail.arrow", Content::Batches(schema, batches.to_vec())),
            ],
        );
    }

    /// A key for what a command makes of this engine's data beyond it (a run's outputs of a
    /// measure): the engine's base and `parts`.
    pub(super) fn key_over(&self, kind: &str, parts: &[(&str, String)]) -> Key {
        parts
            .iter()
            .fold(
                Hasher::new(kind).part("base", self.base.as_str()),
                |h, (label, value)| h.part(label, value),
            )
            .key()
    }
}
