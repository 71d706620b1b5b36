//! Large value sets as a hash lookup. A licensed value-set file can hold hundreds of thousands of
//! codes; as an `IN` list of literals DataFusion takes minutes to plan and run such a predicate
//! (every optimiser pass walks every literal, in every query that uses the block). A set of more
//! than [`IN_LIST_MAX`] codes is therefore written `hhq_value_set_contains(column, 'name')`, which
//! looks each value up in a hash set held by the session. Smaller sets stay plain `IN` lists, which
//! any SQL engine runs.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, ListArray, StringArrayType, StringViewArray,
};
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
    /// The first four bytes of `lo` and `hi` as big-endian integers: a string view holds its
    /// value's first four bytes inline, so most values are ruled out without reading the string.
    lo4: u32,
    hi4: Option<u32>,
}

/// A string's first four bytes, zero-padded, as a big-endian integer: `prefix4(a) < prefix4(b)`
/// implies `a < b` (a shorter string's padding sorts below any byte but NUL, and a string
/// exhausted first is the lesser); equal prefixes decide nothing.
fn prefix4(s: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = s.len().min(4);
    b[..n].copy_from_slice(&s[..n]);
    u32::from_be_bytes(b)
}

/// [`prefix4`] of a string view's value, from the view alone: its bytes 4..8 hold the value's
/// first four bytes, zero-padded when shorter (the Arrow format's inline padding).
fn view_prefix4(view: u128) -> u32 {
    ((view >> 32) as u32).swap_bytes()
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
            lo4: lo.as_deref().map_or(0, |l| prefix4(l.as_bytes())),
            hi4: hi.as_deref().map(|h| prefix4(h.as_bytes())),
            lo,
            hi,
        }
    }

    /// Whether a value whose [`prefix4`] is `p` is surely outside the set's range.
    fn rules_out(&self, p: u32) -> bool {
        self.lo.is_none() || p < self.lo4 || self.hi4.is_some_and(|h| p > h)
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

/// `hhq_value_set_contains(column, 'name', ...)`: whether the column's value is in any of the
/// named value sets; null for a null value, as `IN` gives. Given a list column
/// (`any_in_value_set`), whether any of its elements is: a claim line's secondary diagnoses
/// tested in place, not listed one row each first, each element read once for all the sets.
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
            [a, names @ ..]
                if (text(a) || list_of_text(a)) && !names.is_empty() && names.iter().all(text) =>
            {
                Ok(DataType::Boolean)
            }
            _ => plan_err!(
                "{LOOKUP_FUNCTION}(text or list-of-text column, 'value set name', ...) got {args:?}"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut sets = Vec::with_capacity(args.args.len().saturating_sub(1));
        for arg in &args.args[1..] {
            let name = match arg {
                ColumnarValue::Scalar(
                    ScalarValue::Utf8(Some(n))
                    | ScalarValue::Utf8View(Some(n))
                    | ScalarValue::LargeUtf8(Some(n)),
                ) => n,
                other => {
                    return exec_err!(
                        "{LOOKUP_FUNCTION}: the value set is named by a literal, got {other:?}"
                    );
                }
            };
            let Some(set) = self.sets.get(name) else {
                return exec_err!("{LOOKUP_FUNCTION}: no value set `{name}`");
            };
            sets.push(set);
        }
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
                    DataType::Utf8View => any_in(lists, views_in(values.as_string_view(), &sets)),
                    DataType::Utf8 => any_in(lists, strings_in(values.as_string::<i32>(), &sets)),
                    DataType::LargeUtf8 => {
                        any_in(lists, strings_in(values.as_string::<i64>(), &sets))
                    }
                    other => return exec_err!("{LOOKUP_FUNCTION}: a list of {other}, not text"),
                }
            }
            DataType::Utf8View => each_in(&column, views_in(column.as_string_view(), &sets)),
            _ => {
                let values = cast(&column, &DataType::Utf8)?;
                each_in(&values, strings_in(values.as_string::<i32>(), &sets))
            }
        };
        Ok(ColumnarValue::Array(Arc::new(found)))
    }
}

/// Whether element `i` of `codes` is a code of any of `sets` (false when null).
fn strings_in<'a, S: StringArrayType<'a> + Copy>(
    codes: S,
    sets: &[&Lookup],
) -> impl Fn(usize) -> bool {
    move |i| {
        codes.is_valid(i) && {
            let v = codes.value(i);
            sets.iter().any(|s| s.contains(v))
        }
    }
}

/// [`strings_in`] over string views: a set whose range the view's inline prefix falls outside
/// is passed over without reading the string (most diagnoses are in no substance-use range).
fn views_in<'a>(codes: &'a StringViewArray, sets: &'a [&'a Lookup]) -> impl Fn(usize) -> bool {
    let views = codes.views();
    move |i| {
        codes.is_valid(i) && {
            let p = view_prefix4(views[i]);
            sets.iter()
                .any(|s| !s.rules_out(p) && s.contains(codes.value(i)))
        }
    }
}

/// For each row of `column`, whether `hit` holds for it; null for a null value, as `IN` gives.
fn each_in(column: &dyn Array, hit: impl Fn(usize) -> bool) -> BooleanArray {
    (0..column.len())
        .map(|i| column.is_valid(i).then(|| hit(i)))
        .collect()
}

/// For each list, whether `hit` holds for any of its elements (indices into the lists' values);
/// null for a null list.
fn any_in(lists: &ListArray, hit: impl Fn(usize) -> bool) -> BooleanArray {
    let offsets = lists.value_offsets();
    (0..lists.len())
        .map(|row| {
            let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
            lists.is_valid(row).then(|| (from..to).any(&hit))
        })
        .collect()
}

/// A registered lookup's sets as bytes, for the distributed engine's codec: JSON, each set's
/// codes and prefixes in order, so that the same sets give the same bytes. `None` for any other
/// function.
#[cfg(feature = "ballista")]
pub(crate) fn to_wire(udf: &ScalarUDF) -> Option<Vec<u8>> {
    let f = udf.inner().downcast_ref::<ValueSetContains>()?;
    let sets: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = f
        .sets
        .iter()
        .map(|(name, l)| {
            let mut codes: Vec<&str> = l.codes.iter().map(String::as_str).collect();
            codes.sort_unstable();
            let mut prefixes: Vec<&str> =
                l.prefixes.values().flatten().map(String::as_str).collect();
            prefixes.sort_unstable();
            (name.as_str(), (codes, prefixes))
        })
        .collect();
    serde_json::to_vec(&sets).ok()
}

/// The lookup [`to_wire`] encoded.
#[cfg(feature = "ballista")]
pub(crate) fn from_wire(bytes: &[u8]) -> Result<ScalarUDF> {
    type Wire = BTreeMap<String, (Vec<String>, Vec<String>)>;
    let sets: Wire = serde_json::from_slice(bytes).map_err(|e| {
        datafusion::error::DataFusionError::Internal(format!(
            "{LOOKUP_FUNCTION}: the value sets sent with the plan do not read: {e}"
        ))
    })?;
    let lookups = sets
        .into_iter()
        .map(|(name, (codes, prefixes))| {
            let set = ValueSet {
                name: name.clone(),
                code_system: String::new(),
                codes,
                prefixes,
                defined_at: (std::path::PathBuf::new(), 0),
                replaces_illustrative: false,
                oids: Vec::new(),
            };
            (name, Lookup::new(&set))
        })
        .collect();
    Ok(ScalarUDF::from(ValueSetContains {
        signature: Signature::variadic_any(Volatility::Immutable),
        sets: Arc::new(lookups),
    }))
}

/// Register the lookup over `sets` with a session (every set, so a filter may name any).
pub fn register(ctx: &SessionContext, sets: &ValueSets) {
    let lookups = sets
        .names()
        .filter_map(|n| sets.get(n))
        .map(|s| (s.name.clone(), Lookup::new(s)))
        .collect();
    ctx.register_udf(ScalarUDF::from(ValueSetContains {
        signature: Signature::variadic_any(Volatility::Immutable),
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

    #[tokio::test]
    async fn several_sets_over_a_list_any_element_in_any_set() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            std::path::Path::new("v.csv"),
            "value_set,code_system,code\nalc,ICD10CM,F10*\nopi,ICD10CM,T401\n",
        )
        .unwrap();
        let ctx = SessionContext::new();
        register(&ctx, &sets);
        let batches = ctx
            .sql(
                "SELECT hhq_value_set_contains(dx, 'alc', 'opi') AS hit, \
                 hhq_value_set_contains(p, 'opi', 'alc') AS one FROM (VALUES \
                 (make_array('I10', 'F1020'), 'T401'), (make_array('I10', 'T401'), 'I10'), \
                 (make_array('T40', 'F11'), NULL)) AS t(dx, p)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let column = |c: usize| -> Vec<Option<bool>> {
            batches
                .iter()
                .flat_map(|b| b.column(c).as_boolean().iter().collect::<Vec<_>>())
                .collect()
        };
        assert_eq!(column(0), [Some(true), Some(true), Some(false)]);
        assert_eq!(column(1), [Some(true), Some(false), None]);
        let unknown = ctx
            .sql("SELECT hhq_value_set_contains(make_array('F10'), 'alc', 'nope')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("no value set `nope`"), "{unknown}");
    }

    /// The inline-prefix test rules out only values the set cannot hold: over every string of an
    /// alphabet around the bounds (short ones padded, long ones out of line), the lookup through
    /// views answers as the lookup of the string.
    #[test]
    fn a_views_prefix_rules_out_only_values_outside_the_set() {
        let mut sets = ValueSets::default();
        sets.add_csv(
            std::path::Path::new("v.csv"),
            "value_set,code_system,code\na,ICD10CM,F10*\na,ICD10CM,T401\nb,ICD10CM,F1\n\
             b,ICD10CM,F1099999999999\nc,ICD10CM,Z*\n",
        )
        .unwrap();
        let mut values = crate::measure::valueset::strings_over(
            &["", "0", "1", "4", "9", "F", "T", "Z", "\0", "~"],
            4,
        );
        let long: Vec<String> = values.iter().map(|v| format!("{v}099999999999")).collect();
        values.extend(long);
        let array = StringViewArray::from_iter_values(values.iter());
        for name in ["a", "b", "c"] {
            let set = Lookup::new(sets.get(name).unwrap());
            let sets = [&set];
            let hit = views_in(&array, &sets);
            for (i, v) in values.iter().enumerate() {
                assert_eq!(hit(i), set.contains(v), "set {name}, value {v:?}");
            }
        }
    }
}
