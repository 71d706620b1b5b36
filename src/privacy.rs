//! Privacy of member-level outputs: keeping only one audience's units (an MCO's or a partner's
//! members), and replacing member ids with keyed pseudonyms. A pseudonym is the HMAC-SHA-256 of
//! the id under a key the user keeps (a file or an environment variable); the same id gives the
//! same pseudonym in every file of a run and across runs with one key, and the key itself is
//! never written anywhere.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The environment variable that may hold the pseudonymisation key.
pub const KEY_ENV: &str = "HHQ_PSEUDONYM_KEY";

/// Fewer bytes than this is a password, not a key.
const MIN_KEY_BYTES: usize = 16;

/// A key file larger than this is not a key file.
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Who an output is for, and so whose members and units it may hold: the state (everyone), one
/// MCO or one partner. Engines opened for an MCO or partner hold only its members' rows; views
/// and published tables count only its units.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Audience {
    #[default]
    State,
    Mco(String),
    Hhp(String),
}

impl Audience {
    /// `state`, `mco` or `hhp`.
    pub fn kind(&self) -> &'static str {
        match self {
            Audience::State => "state",
            Audience::Mco(_) => "mco",
            Audience::Hhp(_) => "hhp",
        }
    }

    /// The audience's id (`MCO-A`, `HHP-03`); `None` for the state.
    pub fn id(&self) -> Option<&str> {
        match self {
            Audience::State => None,
            Audience::Mco(id) | Audience::Hhp(id) => Some(id),
        }
    }

    /// The SQL condition on a unit's (or enrollee's) attributes; `None` for everyone.
    pub(crate) fn filter(&self) -> Option<String> {
        match self {
            Audience::State => None,
            Audience::Mco(id) => Some(format!("mco = {}", crate::compile::sql::string(id))),
            Audience::Hhp(id) => Some(format!("hhp = {}", crate::compile::sql::string(id))),
        }
    }

    /// The SQL condition on an extract row's `member_id`: one of the audience's members (an
    /// enrolment span, of any type, with its MCO or partner); `None` for everyone.
    pub(crate) fn members(&self) -> Option<String> {
        let (column, id) = self.column()?;
        Some(format!(
            "member_id IN (SELECT member_id FROM {} WHERE {column} = {})",
            crate::extract::all_rows(&crate::extract::contract::ENROLLMENT),
            crate::compile::sql::string(id)
        ))
    }

    /// The enrollment column that names the audience, and its id.
    pub(crate) fn column(&self) -> Option<(&'static str, &str)> {
        match self {
            Audience::State => None,
            Audience::Mco(id) => Some(("mco_id", id)),
            Audience::Hhp(id) => Some(("hhp_id", id)),
        }
    }
}

/// What member-level outputs may show: whose units, and whether ids are pseudonymised.
#[derive(Debug, Clone, Default)]
pub struct Privacy {
    pub audience: Audience,
    pub pseudonymizer: Option<Pseudonymizer>,
}

impl Privacy {
    /// A detail batch as it may be written.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let kept = keep_audience(batch, &self.audience)?;
        match &self.pseudonymizer {
            Some(p) => p.apply(&kept),
            None => Ok(kept),
        }
    }
}

/// Keyed pseudonyms of member ids.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Pseudonymizer {
    // Never print the key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { key: <hidden> }")
    }
}

impl Pseudonymizer {
    /// A one-way fingerprint of the key, for the run cache's keys: outputs pseudonymised with
    /// another key are other outputs. The key itself is never kept.
    pub fn fingerprint(&self) -> String {
        let mut salted = b"hhq pseudonym key fingerprint\n".to_vec();
        salted.extend_from_slice(&self.key);
        crate::digest::sha256(&salted)
    }

    pub fn new(key: &[u8]) -> Result<Pseudonymizer> {
        let key = key.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(Error::Usage(format!(
                "a pseudonymisation key needs at least {MIN_KEY_BYTES} bytes (got {}); \
                 e.g. `head -c 32 /dev/urandom | base64 > key`",
                key.len()
            )));
        }
        Ok(Pseudonymizer { key: key.to_vec() })
    }

    /// The key from a file (surrounding whitespace ignored): a regular file of at most
    /// [`MAX_KEY_FILE_BYTES`]. `/dev/zero` would be read until memory runs out and a FIFO would
    /// wait for a writer, so the file's type is checked before it is opened, and it is read
    /// through a limit, so a file swapped in between cannot be read without end either.
    pub fn from_file(path: &std::path::Path) -> Result<Pseudonymizer> {
        use std::io::Read;
        let kind = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .file_type();
        if !kind.is_file() {
            return Err(Error::Usage(format!(
                "{}: the key file is {}, not a regular file: write the key into a file \
                 (e.g. `head -c 32 /dev/urandom | base64 > key`)",
                path.display(),
                crate::output::file_kind(&kind)
            )));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(Error::Usage(format!(
                "{}: the key file is larger than {MAX_KEY_FILE_BYTES} bytes; a key is 16 to a \
                 few hundred bytes: is it the right file?",
                path.display()
            )));
        }
        Pseudonymizer::new(&bytes).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The key from [`KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Pseudonymizer>> {
        match std::env::var_os(KEY_ENV) {
            Some(v) => Pseudonymizer::new(v.as_encoded_bytes())
                .map(Some)
                .map_err(|e| match e {
                    Error::Usage(m) => Error::Usage(format!("{KEY_ENV}: {m}")),
                    other => other,
                }),
            None => Ok(None),
        }
    }

    /// `P` and the first 20 hex digits (80 bits) of HMAC-SHA-256(key, id).
    pub fn pseudonym(&self, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        format!("P{hex}")
    }

    /// The batch with its `member_id` column replaced by pseudonyms, and with them every
    /// identifier hhq derives from a row's member id: a text cell equal to it (a member-level
    /// unit's `unit_id`) or beginning with it and `:` (a member month's, `M…:2025-01`). Every
    /// text column is written as `Utf8`, so the schema written follows from the schema read.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let Ok(i) = batch.schema().index_of("member_id") else {
            return Ok(batch.clone());
        };
        let ids = cast(batch.column(i), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let pseudonyms: StringArray = (0..ids.len())
            .map(|r| (!ids.is_null(r)).then(|| self.pseudonym(ids.value(r))))
            .collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        let mut fields: Vec<Field> = Vec::with_capacity(batch.num_columns());
        for (j, (f, c)) in batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .enumerate()
        {
            if j == i {
                columns.push(Arc::new(pseudonyms.clone()));
                fields.push(Field::new("member_id", DataType::Utf8, f.is_nullable()));
            } else if is_text(f.data_type()) {
                let text = cast(c, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let masked: StringArray = (0..text.len())
                    .map(|r| {
                        if text.is_null(r) {
                            return None;
                        }
                        let v = text.value(r);
                        if ids.is_null(r) {
                            return Some(v.to_string());
                        }
                        let id = ids.value(r);
                        Some(match v.strip_prefix(id) {
                            Some("") => pseudonyms.value(r).to_string(),
                            Some(rest) if rest.starts_with(':') => {
                                format!("{}{rest}", pseudonyms.value(r))
                            }
                            _ => v.to_string(),
                        })
                    })
                    .collect();
                columns.push(Arc::new(masked));
                fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            } else {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// Whether a column holds text that may carry an id (`Utf8`, `LargeUtf8`, `Utf8View`, or a
/// dictionary of them).
fn is_text(ty: &DataType) -> bool {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// Only the rows of a detail batch whose unit belongs to the audience (its `mco` or `hhp`).
pub fn keep_audience(batch: &RecordBatch, scope: &Audience) -> Result<RecordBatch> {
    let (column, id) = match scope {
        Audience::State => return Ok(batch.clone()),
        Audience::Mco(id) => ("mco", id),
        Audience::Hhp(id) => ("hhp", id),
    };
    let i = batch
        .schema()
        .index_of(column)
        .map_err(|_| Error::Usage(format!("member-level detail has no `{column}` column")))?;
    let values = cast(batch.column(i), &DataType::Utf8)?;
    let values = values.as_string::<i32>();
    let keep: BooleanArray = (0..values.len())
        .map(|r| Some(!values.is_null(r) && values.value(r) == id))
        .collect();
    Ok(filter_record_batch(batch, &keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("member_id", DataType::Utf8, false),
            Field::new("hhp", DataType::Utf8, true),
            Field::new("unit_id", DataType::Utf8View, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["M1", "M2", "M1"])),
                Arc::new(StringArray::from(vec![
                    Some("HHP-01"),
                    Some("HHP-02"),
                    None,
                ])),
                Arc::new(datafusion::arrow::array::StringViewArray::from(vec![
                    "M1:2025-01",
                    "M2",
                    "M10:2025-01",
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn pseudonyms_are_keyed_stable_and_hide_the_id() {
        let a = Pseudonymizer::new(b"0123456789abcdef-one").unwrap();
        let b = Pseudonymizer::new(b"0123456789abcdef-two").unwrap();
        assert_eq!(a.pseudonym("M1"), a.pseudonym("M1"));
        assert_ne!(a.pseudonym("M1"), a.pseudonym("M2"));
        assert_ne!(a.pseudonym("M1"), b.pseudonym("M1"));
        assert!(!a.pseudonym("M1").contains("M1"));
        assert_eq!(a.pseudonym("M1").len(), 21);
        // RFC 4231 test case 2 (key "Jefe"): the HMAC is the standard one.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "5bdcc146");
        let out = a.apply(&batch()).unwrap();
        let ids = out.column(0).as_string::<i32>();
        let units = out.column(2).as_string::<i32>();
        assert_eq!(units.value(0), format!("{}:2025-01", a.pseudonym("M1")));
        assert_eq!(units.value(1), a.pseudonym("M2"));
        assert_eq!(
            units.value(2),
            "M10:2025-01",
            "another member's id is not this row's"
        );
        assert_eq!(ids.value(0), a.pseudonym("M1"));
        assert_eq!(ids.value(0), ids.value(2));
        assert_eq!(out.column(1).len(), 3);
        assert!(
            !format!("{a:?}").contains("0123"),
            "the key is never printed"
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Pseudonymizer::new(b"short").is_err());
        assert!(Pseudonymizer::new(b"   0123456789abcdef  \n").is_ok());
    }

    #[test]
    fn only_the_audience_rows_are_kept() {
        let out = keep_audience(&batch(), &Audience::Hhp("HHP-01".into())).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(out.column(0).as_string::<i32>().value(0), "M1");
        assert_eq!(
            keep_audience(&batch(), &Audience::State)
                .unwrap()
                .num_rows(),
            3
        );
    }
}
