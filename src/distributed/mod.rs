//! Where a run's queries execute ([`Backend`], `--engine`): this process, or an Apache Ballista
//! cluster, and the client session on it. The cluster itself, its codecs and its nodes are built
//! with the cargo feature `ballista` (`cluster`); without it only `local` runs.

#[cfg(feature = "ballista")]
mod cluster;
#[cfg(feature = "ballista")]
mod compact;

use std::path::PathBuf;

use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

#[cfg(feature = "ballista")]
pub use cluster::{ExecutorOptions, LogicalCodec, PhysicalCodec, executor, scheduler};

/// Where a run's queries execute (`--engine`): this process, or an Apache Ballista cluster
/// (built with the cargo feature `ballista`; docs/distributed.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Backend {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista scheduler and executor started in this process.
    Standalone,
    /// The Ballista scheduler at this URL (`ballista://HOST:PORT`), and the directory every
    /// node reads at the same path where the client writes the tables it keeps between queries
    /// (`--scratch`; a temporary directory when the whole cluster is on this host).
    Remote {
        url: String,
        scratch: Option<PathBuf>,
    },
}

impl Backend {
    /// Whether queries run in this process.
    pub fn is_local(&self) -> bool {
        *self == Backend::Local
    }

    /// Where a cluster's client writes the tables it keeps between queries: `--scratch`, or a
    /// new temporary directory when every node is on this host (`standalone`, or a scheduler
    /// at `localhost`); `None` for a local run. A remote cluster needs `--scratch`.
    pub(crate) fn scratch(&self) -> Result<Option<tempfile::TempDir>> {
        let base = match self {
            Backend::Local => return Ok(None),
            Backend::Standalone => std::env::temp_dir(),
            Backend::Remote {
                scratch: Some(dir), ..
            } => dir.clone(),
            Backend::Remote { url, scratch: None } => {
                let host = url.split_once("://").map_or("", |(_, r)| r);
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
                    return Err(Error::Usage(format!(
                        "--engine {url}: give --scratch DIR, a directory every node of the \
                         cluster reads at the same path (docs/distributed.md)"
                    )));
                }
                std::env::temp_dir()
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("hhq-scratch-")
            .tempdir_in(&base)
            .map_err(|e| Error::Usage(format!("--scratch {}: {e}", base.display())))?;
        Ok(Some(dir))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local => f.write_str("local"),
            Backend::Standalone => f.write_str("standalone"),
            Backend::Remote { url, .. } => f.write_str(url),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Backend, String> {
        match s {
            "local" => Ok(Backend::Local),
            "standalone" => Ok(Backend::Standalone),
            url if url.starts_with("ballista://") || url.starts_with("df://") => {
                let rest = url.split_once("://").map_or("", |(_, r)| r);
                let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(format!(
                        "`{url}` is not a scheduler address: use ballista://HOST:PORT"
                    ));
                }
                Ok(Backend::Remote {
                    url: url.to_string(),
                    scratch: None,
                })
            }
            other => Err(format!(
                "`{other}` is not an engine: use local, standalone or ballista://HOST:PORT"
            )),
        }
    }
}

/// The client session on `backend` over the local one (which it is, for [`Backend::Local`]).
pub(crate) async fn connect(backend: &Backend, local: &SessionContext) -> Result<SessionContext> {
    if backend.is_local() {
        return Ok(local.clone());
    }
    #[cfg(feature = "ballista")]
    {
        cluster::connect(backend, local).await
    }
    #[cfg(not(feature = "ballista"))]
    {
        Err(Error::Usage(format!(
            "--engine {backend}: this hhq was built without the distributed engine; build it \
             with `cargo build --release --features ballista` (docs/distributed.md)"
        )))
    }
}
