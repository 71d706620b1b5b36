//! The optional risk-weight table for PCR-HH's expected readmissions. NCQA's weights are
//! licensed, so hhq ships none: a state or plan that holds them writes them in this layout and
//! passes the file (`hhq run --risk-weights FILE`). Without it PCR-HH reports observed values only.
//!
//! CSV with a header `variable,value,weight`, one row per weight:
//!
//! | variable | value | meaning |
//! |---|---|---|
//! | `intercept` | (empty) | the model's constant |
//! | `sex` | `F`, `M`, `U` | the member's sex |
//! | `age` | `18-44` | an age band on the discharge date, both ends included |
//! | `principal_dx` | an ICD-10-CM prefix | the index stay's principal diagnosis (longest prefix wins) |
//! | `comorbidity` | an ICD-10-CM prefix | a diagnosis on any claim in the 365 days before the discharge (each prefix counts once) |
//!
//! The expected probability of a readmission is `1 / (1 + exp(-sum))` over the matching weights:
//! NCQA's logistic form, with its categories written as diagnosis prefixes.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// The variables a weight may apply to.
pub const VARIABLES: [&str; 5] = ["intercept", "sex", "age", "principal_dx", "comorbidity"];

/// The schema of the `risk_weights` table the `pcr_expected` building block reads.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("variable", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("weight", DataType::Float64, false),
    ]))
}

/// Read and check a risk-weight CSV file.
pub fn load(path: &Path) -> Result<RecordBatch> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text)
}

/// Parse risk-weight CSV text; `path` names it in errors, rows numbered from 1 after the header.
pub fn parse(path: &Path, text: &str) -> Result<RecordBatch> {
    let (headers, records) = super::csv::read_csv(path, text)?;
    if headers != ["variable", "value", "weight"] {
        return Err(Error::contract(
            path,
            format!(
                "a risk-weight table has the header `variable,value,weight`, not `{}`",
                headers.join(",")
            ),
        ));
    }
    let (mut variables, mut values, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    let mut intercepts = 0;
    for (i, record) in records.iter().enumerate() {
        let row = i + 1;
        let bad = |msg: String| Error::contract(path, format!("row {row}: {msg}"));
        let variable = record.get(0).unwrap_or_default();
        let value = record.get(1).unwrap_or_default();
        let weight = record.get(2).unwrap_or_default();
        if !VARIABLES.contains(&variable) {
            return Err(bad(format!(
                "unknown variable {variable:?} (known: {})",
                VARIABLES.join(", ")
            )));
        }
        let weight: f64 = weight
            .parse()
            .ok()
            .filter(|w: &f64| w.is_finite())
            .ok_or_else(|| bad(format!("weight {weight:?} is not a number")))?;
        match variable {
            "intercept" => {
                intercepts += 1;
                if !value.is_empty() {
                    return Err(bad("the intercept takes no value".into()));
                }
            }
            "sex" if !["F", "M", "U"].contains(&value) => {
                return Err(bad(format!("sex {value:?} is not F, M or U")));
            }
            "age" => {
                let ok = value
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .is_some_and(|(a, b)| a <= b);
                if !ok {
                    return Err(bad(format!("age {value:?} is not a band such as 18-44")));
                }
            }
            "principal_dx" | "comorbidity"
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                return Err(bad(format!(
                    "{variable} {value:?} is not an ICD-10-CM prefix without dots"
                )));
            }
            _ => {}
        }
        variables.push(variable.to_string());
        values.push((!value.is_empty()).then(|| value.to_string()));
        weights.push(weight);
    }
    if intercepts != 1 {
        return Err(Error::contract(
            path,
            format!("a risk-weight table needs exactly one `intercept` row, found {intercepts}"),
        ));
    }
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(variables)),
            Arc::new(StringArray::from(values)),
            Arc::new(Float64Array::from(weights)),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rejects() {
        let p = Path::new("w.csv");
        let ok = parse(
            p,
            "variable,value,weight\nintercept,,-2\nsex,F,0.1\nage,18-44,0\n",
        )
        .unwrap();
        assert_eq!(ok.num_rows(), 3);
        let e = parse(p, "variable,value,weight\nintercept,,-2\nsx,F,0.1\n").unwrap_err();
        assert!(
            e.to_string().contains("row 2: unknown variable \"sx\""),
            "{e}"
        );
        let e = parse(p, "variable,value,weight\nintercept,,x\n").unwrap_err();
        assert!(e.to_string().contains("row 1: weight \"x\""), "{e}");
        let e = parse(p, "variable,value,weight\nsex,F,1\n").unwrap_err();
        assert!(e.to_string().contains("exactly one `intercept`"), "{e}");
        let e = parse(p, "variable,value,weight\nintercept,,0\nage,44-18,1\n").unwrap_err();
        assert!(e.to_string().contains("row 2: age"), "{e}");
    }
}
