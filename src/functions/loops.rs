//! Replacement loops: claims whose `replaces_claim_id` links lead back to themselves (A replaces
//! B while B replaces A, or a loop of any length). Every claim of a loop is named by another, so
//! without a rule every version would be superseded and the event would vanish. Two aggregates
//! over the links (`claim_id` naming `named_id`) find them; `queries/superseded_claims.sql` and
//! the data-quality check `claims.replacement_loop` call them over the few links that can close
//! a loop, so the graph held is small.
//!
//! - `hhq_loop_claims(claim_id, named_id)`: every claim on a loop, as a list.
//! - `hhq_loop_standing(claim_id, named_id)`: of each loop that no claim outside it replaces,
//!   the version that stands: the greatest claim id (claim ids are issued in order, so it is
//!   the version adjudicated last; the extract has no adjudication date). A loop that a claim
//!   outside it replaces is superseded whole, as any claim that claim names.
//!
//! Loops are the strongly connected components of two or more claims (Tarjan's algorithm, with
//! an explicit stack: a loop may be long). Links of a claim to itself are passed over.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// Which claims of the loops an aggregate returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Claims,
    Standing,
}

/// One of the loop aggregates.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Loops {
    kind: Kind,
    signature: Signature,
}

fn list_of_strings() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl AggregateUDFImpl for Loops {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Claims => "hhq_loop_claims",
            Kind::Standing => "hhq_loop_standing",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            ) || matches!(t, DataType::Dictionary(_, v) if **v == DataType::Utf8)
        };
        if args.len() != 2 || !args.iter().all(text) {
            return plan_err!(
                "{}(claim_id, named_id) takes two strings, got {args:?}",
                self.name()
            );
        }
        Ok(vec![DataType::Utf8, DataType::Utf8])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(list_of_strings())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(["claim_ids", "named_ids"]
            .iter()
            .map(|n| {
                Arc::new(Field::new(
                    format_state_name(args.name, n),
                    list_of_strings(),
                    true,
                ))
            })
            .collect())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Links {
            kind: self.kind,
            links: Vec::new(),
            bytes: 0,
        }))
    }
}

/// The links seen so far.
#[derive(Debug)]
struct Links {
    kind: Kind,
    links: Vec<(String, String)>,
    bytes: usize,
}

impl Links {
    fn add(&mut self, claims: &ArrayRef, named: &ArrayRef) -> Result<()> {
        let claims = datafusion::arrow::compute::cast(claims, &DataType::Utf8)?;
        let named = datafusion::arrow::compute::cast(named, &DataType::Utf8)?;
        let (claims, named) = (claims.as_string::<i32>(), named.as_string::<i32>());
        for i in 0..claims.len() {
            if claims.is_valid(i) && named.is_valid(i) && claims.value(i) != named.value(i) {
                self.bytes += claims.value(i).len() + named.value(i).len();
                self.links
                    .push((claims.value(i).to_string(), named.value(i).to_string()));
            }
        }
        Ok(())
    }
}

fn list(values: impl IntoIterator<Item = String>) -> ScalarValue {
    let values: ArrayRef = Arc::new(values.into_iter().map(Some).collect::<StringArray>());
    ScalarValue::List(Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        datafusion::arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )))
}

impl Accumulator for Links {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (claims, named) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..claims.len() {
            if claims.is_valid(row) && named.is_valid(row) {
                self.add(&claims.value(row), &named.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            list(self.links.iter().map(|(c, _)| c.clone())),
            list(self.links.iter().map(|(_, n)| n.clone())),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let found = find(&self.links);
        Ok(list(match self.kind {
            Kind::Claims => found.claims,
            Kind::Standing => found.standing,
        }))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.links.capacity() * std::mem::size_of::<(String, String)>()
            + self.bytes
    }
}

/// What [`find`] found, each list sorted.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    /// Every claim on a loop.
    pub claims: Vec<String>,
    /// Of each loop no claim outside it names, its greatest claim id.
    pub standing: Vec<String>,
}

/// The loops of the links (`claim_id` naming `named_id`); links of a claim to itself are passed
/// over.
pub fn find(links: &[(String, String)]) -> Found {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (c, n) in links {
        for id in [c, n] {
            let next = ids.len();
            ids.entry(id).or_insert(next);
        }
    }
    let mut names = vec![""; ids.len()];
    for (id, &i) in &ids {
        names[i] = id;
    }
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for (c, n) in links.iter().filter(|(c, n)| c != n) {
        next[ids[c.as_str()]].push(ids[n.as_str()]);
    }
    let component = components(&next);
    let mut size = vec![0usize; ids.len()];
    for &c in &component {
        size[c] += 1;
    }
    // A loop is named from outside when a link into it starts in another component.
    let mut named_from_outside = vec![false; ids.len()];
    for (from, to) in next.iter().enumerate() {
        for &t in to {
            if component[from] != component[t] {
                named_from_outside[component[t]] = true;
            }
        }
    }
    let mut claims = Vec::new();
    let mut greatest: BTreeMap<usize, &str> = BTreeMap::new();
    for (i, &c) in component.iter().enumerate() {
        if size[c] < 2 {
            continue;
        }
        claims.push(names[i].to_string());
        if !named_from_outside[c] {
            let g = greatest.entry(c).or_insert(names[i]);
            *g = (*g).max(names[i]);
        }
    }
    claims.sort();
    let mut standing: Vec<String> = greatest.into_values().map(str::to_string).collect();
    standing.sort();
    Found { claims, standing }
}

/// The strongly connected component of each node (Tarjan), with an explicit stack.
fn components(next: &[Vec<usize>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = next.len();
    let (mut index, mut low) = (vec![UNSEEN; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![UNSEEN; n];
    let (mut counter, mut components) = (0, 0);
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, next link of it to follow)
        let mut calls = vec![(root, 0)];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = calls.last_mut() {
            let (v, i) = *top;
            if let Some(&w) = next[v].get(i) {
                top.1 += 1;
                if index[w] == UNSEEN {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                calls.pop();
                if let Some(&(u, _)) = calls.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component[w] = components;
                        if w == v {
                            break;
                        }
                    }
                    components += 1;
                }
            }
        }
    }
    component
}

/// Register the loop aggregates with a session.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    for kind in [Kind::Claims, Kind::Standing] {
        ctx.register_udaf(AggregateUDF::from(Loops {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn loops_of_any_length_are_found_and_one_version_of_each_stands() {
        let found = find(&links(&[
            // A chain: no loop.
            ("C2", "C1"),
            ("C3", "C2"),
            // A loop of two, and one of three.
            ("L1", "L2"),
            ("L2", "L1"),
            ("M1", "M2"),
            ("M2", "M3"),
            ("M3", "M1"),
            // A claim naming itself is no loop.
            ("S1", "S1"),
            // A loop a claim outside it replaces: superseded whole, T9 is final.
            ("T1", "T2"),
            ("T2", "T1"),
            ("T9", "T1"),
        ]));
        assert_eq!(
            found,
            Found {
                claims: strings(&["L1", "L2", "M1", "M2", "M3", "T1", "T2"]),
                standing: strings(&["L2", "M3"]),
            }
        );
    }

    #[test]
    fn a_long_loop_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut l: Vec<(String, String)> = (0..n)
            .map(|i| (format!("C{i:06}"), format!("C{:06}", i + 1)))
            .collect();
        l.push((format!("C{n:06}"), "C000000".into()));
        let found = find(&l);
        assert_eq!(found.claims.len(), n + 1);
        assert_eq!(found.standing, vec![format!("C{n:06}")]);
    }

    #[tokio::test]
    async fn the_aggregates_in_sql() {
        let ctx = datafusion::prelude::SessionContext::new();
        register(&ctx);
        let sql = "SELECT array_to_string(hhq_loop_claims(a, b), ',') AS c, \
             array_to_string(hhq_loop_standing(a, b), ',') AS s FROM (VALUES ('A', 'B'), \
             ('B', 'A'), ('X', 'Y'), (NULL, 'A')) t(a, b)";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let (_, rows) = crate::results::text_rows(&batches).unwrap();
        assert_eq!(
            rows,
            vec![vec![Some("A,B".to_string()), Some("B".to_string())]]
        );
        // No links: empty lists.
        let batches = ctx
            .sql("SELECT cardinality(hhq_loop_standing(a, b)) FROM (VALUES ('A', 'B')) t(a, b) WHERE false")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let (_, rows) = crate::results::text_rows(&batches).unwrap();
        assert_eq!(rows, vec![vec![Some("0".to_string())]]);
    }
}
