//! Large value sets as a hash lookup. A licensed value-set file can hold hundreds of thousands of
//! codes; as an `IN` list of literals DataFusion takes minutes to plan and run such a predicate
//! (every optimiser pass walks every literal, in every query that uses the block). A set of more
//! than [`IN_LIST_MAX`] codes is therefore written `hhq_value_set_contains(column, 'name')`, which
//! looks each value up in a hash set held by the session. Smaller sets stay plain `IN` lists, which
//! any SQL engine runs.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, ListArray, StringArrayType};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

pub use crate::measure::valueset::{IN_LIST_MAX, LOOKUP_FUNCTION};
use crate::measure::valueset::{ValueSet, ValueSets};

/// One set's codes, and its prefixes by length in characters.
#[derive(Debug)]
struct Lookup {
    codes: HashSet<String>,
    prefixes: BTreeMap<usize, HashSet<String>>,
    /// The range every code of the set falls in (`ValueSet::bounds`): most values are outside
    /// it, and two comparisons spare them the hashing.
    lo: Option<String>,
    hi: Option<String>,
}

impl Lookup {
    fn new(set: &ValueSet) -> Lookup {
        let mut prefixes: BTreeMap<usize, HashSet<String>> = BTreeMap::new();
        for p in &set.prefixes {
            prefixes
                .entry(p.chars().count())
                .or_default()
                .insert(p.clone());
        }
        let (lo, hi) = set.bounds().map_or((None, None), |(lo, hi)| (Some(lo), hi));
        Lookup {
            codes: set.codes.iter().cloned().collect(),
            prefixes,
            lo,
            hi,
        }
    }

    /// As the `IN` list form: the value is a code, or `left(value, n)` is a prefix of length n.
    fn contains(&self, value: &str) -> bool {
        let Some(lo) = self.lo.as_deref() else {
            return false;
        };
        if value < lo || self.hi.as_deref().is_some_and(|hi| value >= hi) {
            return false;
        }
        self.codes.contains(value)
            || self.prefixes.iter().any(|(n, set)| {
                let left = value
                    .char_indices()
                    .nth(*n)
                    .map_or(value, |(i, _)| &value[..i]);
                set.contains(left)
            })
    }
}

/// `hhq_value_set_contains(column, 'name')`: whether the column's value is in the value set; null
/// for a null value, as `IN` gives. Given a list column (`any_in_value_set`), whether any of
/// its elements is: a claim line's secondary diagnoses tested in place, not listed one row
/// each first.
#[derive(Debug)]
pub struct ValueSetContains {
    signature: Signature,
    sets: Arc<BTreeMap<String, Lookup>>,
}

impl PartialEq for ValueSetContains {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sets, &other.sets)
    }
}

impl Eq for ValueSetContains {}

impl Hash for ValueSetContains {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sets.keys().for_each(|k| k.hash(state));
    }
}

impl ScalarUDFImpl for ValueSetContains {
    fn name(&self) -> &str {
        LOOKUP_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            ) || matches!(t, DataType::Dictionary(_, v) if v.is_string())
        };
        let list_of_text = |t: &DataType| match t {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                text(f.data_type())
            }
            _ => false,
        };
        match args {
            [a, b] if (text(a) || list_of_text(a)) && text(b) => Ok(DataType::Boolean),
            _ => plan_err!(
                "{LOOKUP_FUNCTION}(text or list-of-text column, 'value set name') got {args:?}"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match &args.args[1] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(n))
                | ScalarValue::Utf8View(Some(n))
                | ScalarValue::LargeUtf8(Some(n)),
            ) => n.clone(),
            other => {
                return exec_err!(
                    "{LOOKUP_FUNCTION}: the value set is named by a literal, got {other:?}"
                );
            }
        };
        let Some(set) = self.sets.get(&name) else {
            return exec_err!("{LOOKUP_FUNCTION}: no value set `{name}`");
        };
        let column = args.args[0].to_array(args.number_rows)?;
        let found: BooleanArray = match column.data_type() {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                // The elements as they are (views, as DataFusion reads Parquet strings): a cast
                // would copy every string of every list.
                let lists = match column.data_type() {
                    DataType::List(_) => column.clone(),
                    _ => cast(&column, &DataType::new_list(f.data_type().clone(), true))?,
                };
                let lists = lists.as_list::<i32>();
                let values = lists.values();
                match values.data_type() {
                    DataType::Utf8View => any_in(lists, values.as_string_view(), set),
                    DataType::Utf8 => any_in(lists, values.as_string::<i32>(), set),
                    DataType::LargeUtf8 => any_in(lists, values.as_string::<i64>(), set),
                    other => return exec_err!("{LOOKUP_FUNCTION}: a list of {other}, not text"),
                }
            }
            _ => {
                let values = cast(&column, &DataType::Utf8)?;
                values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|v| set.contains(v)))
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(found)))
    }
}

/// For each list, whether any of its elements (`codes`, the lists' values) is in `set`; null
/// for a null list.
fn any_in<'a, S: StringArrayType<'a>>(lists: &ListArray, codes: S, set: &Lookup) -> BooleanArray {
    let offsets = lists.value_offsets();
    (0..lists.len())
        .map(|row| {
            let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
            lists
                .is_valid(row)
                .then(|| (from..to).any(|i| codes.is_valid(i) && set.contains(codes.value(i))))
        })
        .collect()
}

/// Register the lookup over `sets` with a session (every set, so a filter may name any).
pub fn register(ctx: &SessionContext, sets: &ValueSets) {
    let lookups = sets
        .names()
        .filter_map(|n| sets.get(n))
        .map(|s| (s.name.clone(), Lookup::new(s)))
        .collect();
    ctx.register_udf(ScalarUDF::from(ValueSetContains {
        signature: Signature::any(2, Volatility::Immutable),
        sets: Arc::new(lookups),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_prefixes_as_the_in_list_reads_them() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            std::path::Path::new("v.csv"),
            "value_set,code_system,code\nmh,ICD10CM,F20*\nmh,ICD10CM,F329\n",
        )
        .unwrap();
        let l = Lookup::new(sets.get("mh").unwrap());
        assert!(l.contains("F329") && l.contains("F209") && l.contains("F20"));
        assert!(!l.contains("F32") && !l.contains("F2") && !l.contains("") && !l.contains("G20"));
    }

    #[tokio::test]
    async fn over_a_list_any_element_in_the_set() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            std::path::Path::new("v.csv"),
            "value_set,code_system,code\nsud,ICD10CM,F10*\nsud,ICD10CM,T401\n",
        )
        .unwrap();
        let ctx = SessionContext::new();
        register(&ctx, &sets);
        let batches = ctx
            .sql(
                "SELECT hhq_value_set_contains(dx, 'sud') AS hit FROM (VALUES \
                 (make_array('I10', 'F1020')), (make_array('I10', 'F11')), \
                 (make_array('T401', NULL)), (CAST(NULL AS VARCHAR[])), \
                 (CAST(make_array() AS VARCHAR[]))) AS t(dx)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let hits: Vec<Option<bool>> = batches
            .iter()
            .flat_map(|b| b.column(0).as_boolean().iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(
            hits,
            [Some(true), Some(false), Some(true), None, Some(false)]
        );
    }
}
