//! The code formats the contract names (ICD-10-CM, CPT/HCPCS, NPI, NDC, ...) and the SQL
//! function `hhq_code_format(value, 'format')` that tests them.
//!
//! Each format is stated as a regular expression (what the data-quality catalogue shows) and
//! tested by a hand-written byte check that accepts exactly the same strings (a unit test holds
//! the two together). The checks run over every claim line: at a million members the claims'
//! nine format checks with `regexp_like` took 18 s of a run (about 60 ns a value), the byte
//! checks a few nanoseconds.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// A code system's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeFormat {
    /// ICD-10-CM diagnosis, without the dot.
    Icd10Cm,
    /// CPT (five digits, or four and F/T/U) or HCPCS Level II (a letter A–V and four digits).
    Procedure,
    /// UB-04 revenue code.
    Revenue,
    /// UB-04 type of bill, with an optional leading zero.
    TypeOfBill,
    /// Two digits (CMS place of service, UB-04 patient status).
    TwoDigits,
    /// A procedure modifier.
    Modifier,
    /// National Provider Identifier.
    Npi,
    /// National Drug Code in the 11-digit form.
    Ndc,
    /// County FIPS code.
    CountyFips,
}

impl CodeFormat {
    pub const ALL: [CodeFormat; 9] = [
        CodeFormat::Icd10Cm,
        CodeFormat::Procedure,
        CodeFormat::Revenue,
        CodeFormat::TypeOfBill,
        CodeFormat::TwoDigits,
        CodeFormat::Modifier,
        CodeFormat::Npi,
        CodeFormat::Ndc,
        CodeFormat::CountyFips,
    ];

    /// The name SQL gives it: `hhq_code_format(principal_dx, 'icd10_cm')`.
    pub fn name(self) -> &'static str {
        match self {
            CodeFormat::Icd10Cm => "icd10_cm",
            CodeFormat::Procedure => "procedure",
            CodeFormat::Revenue => "revenue",
            CodeFormat::TypeOfBill => "type_of_bill",
            CodeFormat::TwoDigits => "two_digits",
            CodeFormat::Modifier => "modifier",
            CodeFormat::Npi => "npi",
            CodeFormat::Ndc => "ndc",
            CodeFormat::CountyFips => "county_fips",
        }
    }

    pub fn from_name(name: &str) -> Option<CodeFormat> {
        CodeFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format as a regular expression: the specification [`CodeFormat::accepts`] follows.
    pub fn regex(self) -> &'static str {
        match self {
            CodeFormat::Icd10Cm => "^[A-Z][0-9][0-9A-Z]{1,5}$",
            CodeFormat::Procedure => "^([0-9]{4}[0-9FTU]|[A-V][0-9]{4})$",
            CodeFormat::Revenue => "^[0-9]{4}$",
            CodeFormat::TypeOfBill => "^0?[0-9]{3}$",
            CodeFormat::TwoDigits => "^[0-9]{2}$",
            CodeFormat::Modifier => "^[0-9A-Z]{2}$",
            CodeFormat::Npi => "^[0-9]{10}$",
            CodeFormat::Ndc => "^[0-9]{11}$",
            CodeFormat::CountyFips => "^[0-9]{5}$",
        }
    }

    /// Whether `s` has the format (exactly the strings [`CodeFormat::regex`] matches).
    pub fn accepts(self, s: &[u8]) -> bool {
        let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
        let upper_or_digit = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
        match self {
            CodeFormat::Icd10Cm => {
                (3..=7).contains(&s.len())
                    && s[0].is_ascii_uppercase()
                    && s[1].is_ascii_digit()
                    && s[2..].iter().all(upper_or_digit)
            }
            CodeFormat::Procedure => {
                s.len() == 5
                    && ((digits(&s[..4]) && matches!(s[4], b'0'..=b'9' | b'F' | b'T' | b'U'))
                        || (matches!(s[0], b'A'..=b'V') && digits(&s[1..])))
            }
            CodeFormat::Revenue => s.len() == 4 && digits(s),
            CodeFormat::TypeOfBill => {
                (s.len() == 3 && digits(s)) || (s.len() == 4 && s[0] == b'0' && digits(&s[1..]))
            }
            CodeFormat::TwoDigits => s.len() == 2 && digits(s),
            CodeFormat::Modifier => s.len() == 2 && s.iter().all(upper_or_digit),
            CodeFormat::Npi => s.len() == 10 && digits(s),
            CodeFormat::Ndc => s.len() == 11 && digits(s),
            CodeFormat::CountyFips => s.len() == 5 && digits(s),
        }
    }
}

/// Register `hhq_code_format` with a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(CodeFormatUdf::default()));
}

/// `hhq_code_format(value, 'format')`: whether a string has the format; for a list of strings,
/// whether every entry that is not null has it. Null for a null value or list.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CodeFormatUdf {
    signature: Signature,
}

impl Default for CodeFormatUdf {
    fn default() -> Self {
        CodeFormatUdf {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Each string of `values` tested against `format`; null where the value is null.
fn test_strings(values: &ArrayRef, format: CodeFormat) -> Result<BooleanArray> {
    let test = |v: Option<&str>| v.map(|s| format.accepts(s.as_bytes()));
    Ok(match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().iter().map(test).collect(),
        DataType::LargeUtf8 => values.as_string::<i64>().iter().map(test).collect(),
        DataType::Utf8View => {
            // From the views themselves: a code of up to twelve bytes lies inline in its view,
            // so most values are tested without reading a data buffer or building an `Option`
            // per row (the claims' format checks were a tenth of the data-quality profile).
            let strings = values.as_string_view();
            let views = strings.views();
            let bits = BooleanBuffer::collect_bool(strings.len(), |i| {
                if strings.is_null(i) {
                    return false;
                }
                let view = views[i];
                let len = view as u32 as usize;
                if len <= 12 {
                    format.accepts(&view.to_le_bytes()[4..4 + len])
                } else {
                    format.accepts(strings.value(i).as_bytes())
                }
            });
            BooleanArray::new(bits, strings.nulls().cloned())
        }
        other => return exec_err!("hhq_code_format takes strings, got {other}"),
    })
}

impl ScalarUDFImpl for CodeFormatUdf {
    fn name(&self) -> &str {
        "hhq_code_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [v, f] if (is_string(v) || list_of_strings(v)) && is_string(f) => Ok(DataType::Boolean),
            _ => plan_err!("hhq_code_format(string or list of strings, 'format') got {args:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let format = match &args.args[1] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(f))
                | ScalarValue::LargeUtf8(Some(f))
                | ScalarValue::Utf8View(Some(f)),
            ) => match CodeFormat::from_name(f) {
                Some(format) => format,
                None => {
                    let known: Vec<&str> = CodeFormat::ALL.iter().map(|f| f.name()).collect();
                    return exec_err!(
                        "hhq_code_format: no format '{f}' (known: {})",
                        known.join(", ")
                    );
                }
            },
            _ => return exec_err!("hhq_code_format: the format must be a quoted name"),
        };
        let values = args.args[0].to_array(args.number_rows)?;
        let out = match values.data_type() {
            DataType::List(_) => {
                let lists = values.as_list::<i32>();
                let each = test_strings(lists.values(), format)?;
                let offsets = lists.value_offsets();
                let mut ok = BooleanBufferBuilder::new(lists.len());
                for r in 0..lists.len() {
                    let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
                    // A null entry is not a malformed one (it is simply absent).
                    ok.append((a..b).all(|i| each.is_null(i) || each.value(i)));
                }
                BooleanArray::new(ok.finish(), lists.nulls().cloned())
            }
            _ => test_strings(&values, format)?,
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn list_of_strings(t: &DataType) -> bool {
    matches!(t, DataType::List(f) if is_string(f.data_type()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string up to five characters over an alphabet that exercises each class boundary
    /// (digits, `F`/`T`/`U`, `A`, `V`, `W`, `Z`, lower case, a dot, a space, a non-ASCII
    /// letter), tested by the byte check and by the regular expression: they agree on all.
    #[test]
    fn byte_checks_accept_exactly_what_the_regexes_match() {
        let alphabet = [
            "0", "9", "A", "F", "T", "U", "V", "W", "Z", "a", ".", " ", "É",
        ];
        // Five characters over a smaller alphabet (the procedure and FIPS formats' length).
        let five = ["0", "9", "A", "F", "U", "V", "W", "a", "."];
        let mut strings = vec![String::new()];
        let mut last = vec![String::new()];
        for len in 1..=5 {
            let letters: &[&str] = if len == 5 { &five } else { &alphabet };
            last = last
                .iter()
                .flat_map(|s| letters.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(last.iter().cloned());
        }
        // Longer ones, built from a few shapes, for the 7- to 12-character formats.
        for len in 6..=12 {
            for fill in ["0", "9", "A", "Z", "a"] {
                for head in ["", "0", "A", "V", "W", "F", "0F", "A1", "Z9"] {
                    let s = format!("{head}{}", fill.repeat(len));
                    strings.push(s.chars().take(len).collect());
                    strings.push(format!("{s}\n"));
                }
            }
        }
        for format in CodeFormat::ALL {
            let re = regex::Regex::new(format.regex()).unwrap();
            let mut accepted = 0;
            for s in &strings {
                assert_eq!(
                    format.accepts(s.as_bytes()),
                    re.is_match(s),
                    "{} on {s:?}",
                    format.name()
                );
                accepted += usize::from(re.is_match(s));
            }
            assert!(accepted > 0, "{}: no string accepted", format.name());
        }
    }

    #[test]
    fn names_round_trip() {
        for f in CodeFormat::ALL {
            assert_eq!(CodeFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(CodeFormat::from_name("icd9"), None);
    }

    /// The view path (codes read inline from the view) gives what the plain strings give.
    #[test]
    fn views_are_tested_as_strings() {
        use datafusion::arrow::array::{StringArray, StringViewArray};
        // Inline (up to twelve bytes) and out-of-line values, valid and not, and nulls.
        let values: Vec<Option<&str>> = vec![
            Some("F329"),
            None,
            Some("12345678901"),
            Some("123456789012"),
            Some("1234567890123"),
            Some("F32.9"),
            None,
            Some("A1234"),
            Some("99213"),
            Some(""),
            Some("F1020ABCDEFGHIJ"),
            Some("0450"),
        ];
        let plain: ArrayRef = Arc::new(StringArray::from(values.clone()));
        let views: ArrayRef = Arc::new(StringViewArray::from(values));
        for format in CodeFormat::ALL {
            let a = test_strings(&plain, format).unwrap();
            let b = test_strings(&views, format).unwrap();
            assert_eq!(a, b, "{}", format.name());
        }
        let ndc = test_strings(&views, CodeFormat::Ndc).unwrap();
        assert_eq!(ndc.iter().filter(|v| *v == Some(true)).count(), 1);
        assert_eq!(ndc.null_count(), 2);
    }

    #[tokio::test]
    async fn sql_tests_strings_and_lists() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT hhq_code_format(v, 'icd10_cm') AS one, hhq_code_format(l, 'icd10_cm') AS every FROM (VALUES \
                 ('F329', make_array('F329', 'F1020')), ('F32.9', make_array('F329', 'F32.9')), \
                 (NULL, make_array('F329', NULL)), ('f329', CAST(NULL AS VARCHAR[]))) t(v, l)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let col = |i: usize| -> Vec<Option<bool>> { b.column(i).as_boolean().iter().collect() };
        assert_eq!(col(0), vec![Some(true), Some(false), None, Some(false)]);
        assert_eq!(col(1), vec![Some(true), Some(false), Some(true), None]);
        let err = ctx
            .sql("SELECT hhq_code_format('F329', 'icd9')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no format 'icd9'"), "{err}");
    }
}
