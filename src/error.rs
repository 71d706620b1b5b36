//! The one error type of the library. Every variant names what the user must look at: a file, a
//! column, a row, a line and column of a measure file.

use std::path::PathBuf;

/// Result with hhq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file breaks the extract contract.
    #[error("{path}: {message}")]
    Contract { path: PathBuf, message: String },

    /// A measure, value-set or building-block file is wrong; `line` and `column` are 1-based.
    #[error("{path}:{line}:{column}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Definition {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: Option<String>,
    },

    /// Several problems with definitions, each located, in the order found.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Error>),

    /// A command-line argument is invalid.
    #[error("{0}")]
    Usage(String),

    /// A check found problems (each already reported).
    #[error("{0}")]
    Failed(String),

    /// The extracts fail a data-quality check whose policy is to refuse publishing.
    #[error("{0}")]
    Quality(String),

    /// A report could not be drawn or laid out (a chart, a template, the PDF).
    #[error("report: {0}")]
    Report(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),

    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

impl Error {
    /// One error for `problems`, in the order of the files' lines: the problem itself when
    /// there is one.
    pub(crate) fn many(mut problems: Vec<Error>) -> Self {
        problems.sort_by_key(|e| match e {
            Error::Definition {
                path, line, column, ..
            } => Some((path.clone(), *line, *column)),
            _ => None,
        });
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            Error::Many(problems)
        }
    }

    /// The problems this error reports, one by one.
    pub fn problems(self) -> Vec<Error> {
        match self {
            Error::Many(v) => v.into_iter().flat_map(Error::problems).collect(),
            e => vec![e],
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn contract(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Contract {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The known names nearest `wanted` for a "did you mean" (at most three, best first): Jaro–Winkler
/// over the names upper-cased without `-`, `_` and spaces, which weighs a shared beginning
/// (`FUHH` is FUH-HH before FUA-HH); only names scoring 0.8 or more, and within 0.01 of the best.
pub(crate) fn nearest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let key = |s: &str| s.to_ascii_uppercase().replace(['-', '_', ' '], "");
    let wanted = key(wanted);
    let mut scored: Vec<(f64, &str)> = known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(&wanted, &key(k)), k))
        .collect();
    let best = scored.iter().map(|(s, _)| *s).fold(0.0, f64::max);
    scored.retain(|(s, _)| best >= 0.8 && *s >= best - 0.01);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}
