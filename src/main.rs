//! The `hhq` command: parses arguments and calls the library. Everything else lives in the crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hhq::detail::DetailCsv;

use hhq::library::Part;
use hhq::period::Period;
use hhq::pipeline::{self, RunOptions};
use hhq::project::Settings;
use hhq::synth::{self, SynthOptions};
use hhq::{Error, Result, extract, report};

#[derive(Parser)]
#[command(
    name = "hhq",
    version,
    about = "Medicaid Health Home quality measures: YAML definitions, DataFusion over Parquet extracts",
    after_help = "Start with `hhq run`: every measure on the synthetic data in testdata/.\n\nExit codes: 0 success; 1 a failure (unreadable or damaged data, a definition with problems, a failed check or deck); 2 a usage error (an unknown option, measure, MCO or partner, a query that does not parse or plan); 3 the extracts fail a data-quality check whose policy refuses to publish."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where definitions live; shared by the commands that read them.
#[derive(clap::Args, Clone)]
struct DefinitionDirs {
    /// Directory of measure YAML files, value sets in its valuesets/ (default: the project's, else
    /// the built-in library)
    #[arg(long, default_value = "measures", hide_default_value = true)]
    measures: PathBuf,
    /// Directory of building-block SQL files (default: the project's, else the built-in library)
    #[arg(long, default_value = "queries", hide_default_value = true)]
    queries: PathBuf,
    /// The specification year the measures follow, e.g. 2024 or 2025 (a measure states its text
    /// per year where the specification changed; default: each measure's newest)
    #[arg(long, value_name = "YEAR", default_value = "newest", value_parser = hhq::measure::Spec::parse)]
    spec: hhq::measure::Spec,
}

impl DefinitionDirs {
    /// What every computing command shares, over `data`: the rest as their defaults.
    fn with_data(self, data: PathBuf) -> hhq::execute::Options {
        hhq::execute::Options {
            data,
            measures: self.measures,
            queries: self.queries,
            spec: self.spec,
            ..Default::default()
        }
    }
}

/// What `run` and `report` share: the data and definitions, and how the engine computes.
fn computing(
    dirs: DefinitionDirs,
    data: PathBuf,
    risk_weights: Option<PathBuf>,
    memory: MemoryArgs,
    engine: EngineArgs,
    members_per_pass: Option<usize>,
    cache: CacheArgs,
) -> Result<hhq::execute::Options> {
    Ok(hhq::execute::Options {
        risk_weights,
        memory_limit: memory.memory_limit,
        engine: engine.backend()?,
        members_per_pass,
        cache: cache.open()?,
        ..dirs.with_data(data)
    })
}

/// How much memory the query engine may use; shared by the commands that run measures.
#[derive(clap::Args, Clone, Copy)]
struct MemoryArgs {
    /// Memory the query engine's operators may hold at once, e.g. 512M or 2G; beyond it sorts,
    /// aggregations and joins spill to a temporary directory (TMPDIR). Default: no limit
    #[arg(long, value_name = "SIZE", value_parser = hhq::plan::parse_size)]
    memory_limit: Option<usize>,
}

/// The run cache; shared by `run` and `report`.
#[derive(clap::Args, Clone, Copy)]
struct CacheArgs {
    /// Compute everything, reading nothing from the run cache and keeping nothing in it
    #[arg(long)]
    no_cache: bool,
    /// The most the run cache may hold on disk, e.g. 2G; the entries least recently used are
    /// removed beyond it; 0 turns it off (docs/benchmarks.md, "The run cache")
    #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = hhq::cache::parse_size)]
    cache_size: usize,
}

impl CacheArgs {
    fn open(self) -> Result<Option<std::sync::Arc<hhq::cache::Cache>>> {
        match self.no_cache {
            true => Ok(None),
            false => hhq::cache::open_default(self.cache_size as u64),
        }
    }
}

/// Where the queries run; shared by the commands that compute measures for outputs.
#[derive(clap::Args, Clone)]
struct EngineArgs {
    /// Where the queries run: `local` (this process), `standalone` (a Ballista scheduler and
    /// executor in this process) or `ballista://HOST:PORT` (a cluster of `hhq cluster` nodes).
    /// The last two need hhq built with `--features ballista` (docs/distributed.md)
    #[arg(long, value_name = "ENGINE", default_value = "local",
          value_parser = |s: &str| s.parse::<hhq::distributed::Backend>())]
    engine: hhq::distributed::Backend,
    /// With `--engine ballista://HOST:PORT`: a directory every node of the cluster reads at the
    /// same path, where the run writes the building blocks and steps it keeps between queries
    /// (default, for a scheduler on this host: a temporary directory)
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
}

impl EngineArgs {
    fn backend(self) -> Result<hhq::distributed::Backend> {
        use hhq::distributed::Backend;
        match (self.engine, self.scratch) {
            (Backend::Remote { url, .. }, scratch) => Ok(Backend::Remote { url, scratch }),
            (other, None) => Ok(other),
            (other, Some(_)) => Err(Error::Usage(format!(
                "--scratch is for a cluster (--engine ballista://HOST:PORT), not --engine {other}"
            ))),
        }
    }
}

/// A specification year (2025 or MY2025), for `diff-spec`.
fn spec_year(text: &str) -> Result<u16, String> {
    match hhq::measure::Spec::parse(text)? {
        hhq::measure::Spec::Year(y) => Ok(y),
        hhq::measure::Spec::Newest => Err("name a year, e.g. 2025".into()),
    }
}

/// A count of at least one.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a count of at least 1")),
    }
}

/// Options for a command that reads the data and writes no run outputs (`scan`, `profile`,
/// `explain`).
fn reading(
    data: PathBuf,
    dirs: DefinitionDirs,
    period: Option<Period>,
    only: Vec<String>,
    memory_limit: Option<usize>,
) -> RunOptions {
    RunOptions {
        common: hhq::execute::Options {
            memory_limit,
            ..dirs.with_data(data)
        },
        out: PathBuf::new(),
        period,
        only,
        privacy: Default::default(),
        quality: Default::default(),
        detail_csv: Default::default(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the measures over a data directory and write the result table
    #[command(after_help = "Example: hhq run --data testdata --period 2025Q4 --out out")]
    Run {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Measurement period: 2025, 2025Q3 or 2025-01-01..2025-06-30 (default: the latest full year in the data)
        #[arg(long)]
        period: Option<Period>,
        /// Output directory
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Run only this measure (repeatable)
        #[arg(long = "measure", value_name = "ID")]
        only: Vec<String>,
        /// PCR-HH risk weights (CSV: variable,value,weight); without it PCR-HH is observed only
        #[arg(long, value_name = "FILE")]
        risk_weights: Option<PathBuf>,
        /// Only this MCO's members in the outputs (the state's totals as aggregate benchmarks)
        #[arg(long, value_name = "ID", conflicts_with = "hhp")]
        mco: Option<String>,
        /// Only this partner's members in the outputs (the state's and MCOs' totals as benchmarks)
        #[arg(long, value_name = "ID")]
        hhp: Option<String>,
        /// Replace member ids in member-level outputs with keyed pseudonyms (HMAC-SHA-256); the key
        /// comes from --key-file or the HHQ_PSEUDONYM_KEY environment variable and is never written
        #[arg(long)]
        pseudonymize: bool,
        /// File holding the pseudonymisation key (at least 16 bytes)
        #[arg(long, value_name = "FILE", requires = "pseudonymize")]
        key_file: Option<PathBuf>,
        /// Print the wall time of each stage (opening the extracts, the data-quality profile,
        /// building blocks, each measure, writing) on stderr
        #[arg(long)]
        timings: bool,
        /// Members computed at once: a larger population is computed in passes over ranges of
        /// member ids, so memory follows the pass, not the state; the outputs are the same.
        /// Default 100,000; under --memory-limit as many as the limit holds (docs/memory.md)
        #[arg(long, value_name = "N", value_parser = parse_count)]
        members_per_pass: Option<usize>,
        /// Also write each measure's member-level detail as CSV: `auto` when a spreadsheet can
        /// open it (at most 1,048,575 rows), `always`, or `never`. The Parquet detail is always
        /// written
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = DetailCsv::Auto)]
        detail_csv: DetailCsv,
        /// What to print on stdout: `summary` (each component's total), `table` (every stratum),
        /// `csv` or `json` (every row, as summary.csv has them)
        #[arg(long, value_enum, default_value_t = report::RunFormat::Summary)]
        format: report::RunFormat,
        /// Print no results and no progress notes, only warnings and errors (the outputs are
        /// written as always)
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        quality: QualityArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Write a published report: HTML, PDF, the tables and charts behind it, and a manifest
    #[command(
        after_help = "Examples:\n  hhq report state\n  hhq report mco MCO-A --quarter 2025Q4\n  hhq report --hhp HHP-03 --out out/hhp-03\n\nEvery table and chart applies CMS small-cell suppression (counts 1-10, rates over fewer than 30)."
    )]
    Report {
        /// Who the report is for (default: state; `--mco ID` and `--hhp ID` say the same as
        /// `mco ID` and `hhp ID`, as in the other commands)
        #[arg(value_enum)]
        audience: Option<AudienceKind>,
        /// The MCO or partner id (for `mco` and `hhp`)
        id: Option<String>,
        /// One MCO's report (the same as `hhq report mco ID`)
        #[arg(long, value_name = "ID", conflicts_with_all = ["audience", "hhp"])]
        mco: Option<String>,
        /// One partner's scorecard (the same as `hhq report hhp ID`)
        #[arg(long, value_name = "ID", conflicts_with = "audience")]
        hhp: Option<String>,
        /// Report quarter: the twelve months ending with it are reported (default: the latest quarter with 90 days of claims run-out)
        #[arg(long)]
        quarter: Option<String>,
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Output directory (default: out/report-<audience>[-<id>][-<quarter>, when given])
        #[arg(long)]
        out: Option<PathBuf>,
        /// Report only this measure (repeatable)
        #[arg(long = "measure", value_name = "ID")]
        only: Vec<String>,
        /// PCR-HH risk weights (CSV: variable,value,weight)
        #[arg(long, value_name = "FILE")]
        risk_weights: Option<PathBuf>,
        /// Skip the PDF (HTML, tables and charts only)
        #[arg(long)]
        no_pdf: bool,
        /// Members computed at once: a larger population is computed in passes over ranges of
        /// member ids, so memory follows the pass, not the state; the report is the same
        #[arg(long, value_name = "N", value_parser = parse_count)]
        members_per_pass: Option<usize>,
        /// The programme's name for the title and cover (e.g. "KanCare Health Homes")
        #[arg(long, value_name = "NAME")]
        programme: Option<String>,
        /// The state's name for the cover (e.g. Kansas)
        #[arg(long, value_name = "NAME")]
        state: Option<String>,
        /// Targets to measure the rates against (CSV: measure,component,target[,source]; the
        /// target in the component's unit)
        #[arg(long, value_name = "FILE")]
        targets: Option<PathBuf>,
        #[command(flatten)]
        quality: QualityArgs,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Write synthetic extracts (claims, contacts, members, enrollment) as Parquet
    #[command(
        after_help = "Example: hhq synth --members 1500 --seed 42 --start-year 2023 --years 3 --out testdata"
    )]
    Synth {
        /// Members (the defaults are those of the shipped test data)
        #[arg(long, default_value_t = 1500)]
        members: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// First calendar year of data
        #[arg(long, default_value_t = 2023)]
        start_year: i32,
        /// Full years of data (a first quarter of the next year follows)
        #[arg(long, default_value_t = 3)]
        years: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check every measure, value set and building block without running anything
    #[command(after_help = "Example: hhq check measures/")]
    Check {
        /// Directory of measure YAML files (default: measures)
        dir: Option<PathBuf>,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Print the SQL a measure compiles to (or its query plan)
    #[command(
        after_help = "Examples: hhq compile AMB-HH --sql --period 2025\n          hhq compile FUM-HH --steps"
    )]
    Compile {
        /// Measure id
        measure: String,
        /// Measurement period: 2025, 2025Q3 or 2025-01-01..2025-06-30 (default: the latest full
        /// year in --data, as `hhq run` chooses it)
        #[arg(long)]
        period: Option<Period>,
        /// Data directory the default period is found in, and whose extracts the --extracts
        /// script reads (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Print SQL: the building-block views, then one statement (the default)
        #[arg(long, conflicts_with_all = ["plan", "detail", "steps"])]
        sql: bool,
        /// Print the measure's plan: its steps in order, what each computes and reads, the
        /// order units are judged in, the numerator columns and what each component reports
        #[arg(long, conflicts_with_all = ["plan", "detail", "extracts"])]
        steps: bool,
        /// Print the optimised logical plan instead of SQL
        #[arg(long)]
        plan: bool,
        /// Print the member-level detail query instead of the aggregate
        #[arg(long)]
        detail: bool,
        /// Print a script that DuckDB runs unchanged over --data's Parquet files (hhq's
        /// functions defined in it); its last statement gives the measure's summary.csv rows
        /// (with --detail, the member-level detail)
        #[arg(long, conflicts_with = "plan")]
        extracts: bool,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Show, for one member, each unit of a measure: in the denominator or why not, and the
    /// claim and contact ids behind each numerator
    #[command(after_help = "Example: hhq explain HH-TCC --member M0000042")]
    Explain {
        /// Measure id
        measure: String,
        #[arg(long)]
        member: String,
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        #[arg(long)]
        period: Option<Period>,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Time reading, from the Parquet files, just the columns the measures read: the floor under
    /// any run's time over the same data
    #[command(after_help = "Example: hhq scan --data testdata --period 2025")]
    Scan {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Measurement period (default: the latest full year in the data)
        #[arg(long)]
        period: Option<Period>,
        /// Only this measure's columns (repeatable)
        #[arg(long = "measure", value_name = "ID")]
        only: Vec<String>,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Profile a measure or a building block: run it over the data under EXPLAIN ANALYZE and
    /// print the physical plan with each operator's rows, time and memory (no member data)
    #[command(
        after_help = "Examples:\n  hhq profile FUH-HH --data testdata\n  hhq profile ed_visits --data testdata\n  hhq profile ed_visits --data DATA --pass 3 --members-per-pass 100000\n\nA measure is profiled as a run computes it: the building blocks it reads are computed first and held in memory (their own time is printed), then its member-level detail query runs. With --pass, over the members of that pass of a run in passes (the blocks marked `hhq: keep` over every member first, as a run does)."
    )]
    Profile {
        /// Measure id or building-block name
        what: String,
        /// Profile the members of this pass (1 for the first) of a run in passes
        #[arg(long, value_name = "K", value_parser = parse_count)]
        pass: Option<usize>,
        /// Members per pass, as `hhq run --members-per-pass` (with --pass)
        #[arg(long, value_name = "N", value_parser = parse_count)]
        members_per_pass: Option<usize>,
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Measurement period (default: the latest full year in the data)
        #[arg(long)]
        period: Option<Period>,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Run every test deck (measures/decks/*.yaml): hand-built members with expected outcomes;
    /// prints the failures and a tally per measure
    #[command(
        after_help = "Examples:\n  hhq test\n  hhq test --measure FUH-HH --verbose\n  hhq test my-measures/"
    )]
    Test {
        /// Directory of measure YAML files, with decks in its decks/ (default: the library's)
        dir: Option<PathBuf>,
        /// Only the decks of this measure or cohort (repeatable)
        #[arg(long = "measure", value_name = "ID")]
        only: Vec<String>,
        /// Every case with its result, not only the failures
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// The conformance matrix: each measure's specification rules, the YAML line that states
    /// each, the deck cases that test it and its status (as specified, a reading, a Health Home
    /// rule, not implemented)
    #[command(after_help = "Example: hhq conformance --out docs/conformance.md

Reads measures/conformance/*.yaml and the decks' `rules:`. With --check, exits 1 when a rule hhq implements has fewer than three deck cases, or when --out's file differs from the matrix (nothing is written).")]
    Conformance {
        /// Write the matrix (Markdown) here instead of to the terminal
        #[arg(long)]
        out: Option<PathBuf>,
        /// Check only: every implemented rule has three deck cases and --out's file is current
        #[arg(long)]
        check: bool,
        /// Directory of measure YAML files, with rules in its conformance/ and decks in decks/
        #[arg(long, default_value = "measures", hide_default_value = true)]
        measures: PathBuf,
    },
    /// What changes between two specification years of a measure: its texts that differ, the
    /// rules of one year only, and over a data directory the units and rates that change, and why
    #[command(
        after_help = "Example: hhq diff-spec FUH-HH 2024 2025 --data testdata\n\nWithout --data, only the definitions are compared. The period defaults to the second year (a year's data compared under both specifications)."
    )]
    DiffSpec {
        /// The measure id, e.g. FUH-HH
        measure: String,
        /// The first specification year, e.g. 2024
        #[arg(value_parser = spec_year)]
        a: u16,
        /// The second specification year, e.g. 2025
        #[arg(value_parser = spec_year)]
        b: u16,
        /// Data directory to run the measure over under both years
        #[arg(long)]
        data: Option<PathBuf>,
        /// Measurement period for --data: 2025, 2025Q3 or a date range (default: the second year)
        #[arg(long)]
        period: Option<String>,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Profile the extracts before any measure runs: completeness, conformance and plausibility
    /// checks, each with its severity and threshold, and the rows set aside by reason
    #[command(
        after_help = "Example: hhq validate --data testdata --out out/validate\n\nWrites data_quality_checks.csv (every check: rows, failing, percent, threshold, status, example keys) and data_quality.csv (rows read, set aside by reason, used). The terminal shows counts only, never example keys.\n\nExit codes: 0 when every error-severity check passes, 3 when one fails (the code of a run refused for data quality), 1 when the extracts cannot be read, 2 for a usage error."
    )]
    Validate {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Output directory for the data-quality report
        #[arg(long, default_value = "out/validate")]
        out: PathBuf,
        #[command(flatten)]
        quality: QualityArgs,
        /// Directory of measure YAML files (the policy's default lives in its quality/)
        #[arg(long, default_value = "measures", hide_default_value = true)]
        measures: PathBuf,
        /// Print the catalogue of checks (Markdown) and exit
        #[arg(long)]
        list: bool,
    },
    /// Find the members a Health Home should serve: target populations (SMI, chronic conditions)
    /// and high-risk flags, from the definitions of <measures>/cohorts/
    #[command(
        after_help = "Examples:\n  hhq cohort\n  hhq cohort --mco MCO-A --as-of 2025-12-31 --out out/cohort-mco-a\n  hhq cohort --hhp HHP-03 --pseudonymize --key-file key.txt\n\nWrites not_enrolled.csv (qualifying, not in a Health Home, with the evidence claims), no_longer_qualify.csv (enrolled, no longer meeting their population's rule), both_populations.csv (qualifying for both: the member must choose), worklist.csv (enrolled members, high-risk first, every flag with its rule and claims), evidence.csv, rules.csv, and summary.csv (counts per MCO and partner under CMS small-cell suppression). A partner sees only its own enrolled members and no outreach list."
    )]
    Cohort {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// The last day of every look-back (default: the last date with data)
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<chrono::NaiveDate>,
        /// Output directory
        #[arg(long, default_value = "out/cohort")]
        out: PathBuf,
        /// Only this MCO's members (its members on the as-of date)
        #[arg(long, value_name = "ID", conflicts_with = "hhp")]
        mco: Option<String>,
        /// Only this partner's enrolled members
        #[arg(long, value_name = "ID")]
        hhp: Option<String>,
        /// Replace member ids with keyed pseudonyms (HMAC-SHA-256); key from --key-file or HHQ_PSEUDONYM_KEY
        #[arg(long)]
        pseudonymize: bool,
        /// File holding the pseudonymisation key (at least 16 bytes)
        #[arg(long, value_name = "FILE", requires = "pseudonymize")]
        key_file: Option<PathBuf>,
        /// Members computed at once: more are computed in passes over ranges of member ids, so
        /// memory follows the pass; the outputs are the same
        #[arg(long, value_name = "N", value_parser = parse_count)]
        members_per_pass: Option<usize>,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// The Health Home payment ledger: months earned under the monthly payment rule (S0281),
    /// what a rate table says is due, what the claims show paid, and the payment-integrity
    /// findings
    #[command(
        after_help = "Examples:\n  hhq payments --period 2025\n  hhq payments --rates rates.yaml --compare rates-tiered.yaml --out out/payments\n  hhq payments --hhp HHP-03 --pseudonymize --key-file key.txt\n\nWrites summary.csv (result-table style, CMS small-cell suppression: months assigned, earned and billed; findings; State due, partner due, paid and missed per member-month, by MCO, partner and population), ledger.csv (one row per member, month and partner: tiers, rate, earning contacts, payment lines, dues), findings.csv (months billed without an earning service, more than one payment line in a month, months earned and not billed, lines outside a Health Home span or after death, each with its claims and contacts), statements/<partner>.csv and .txt (a partner's months), and with --compare simulation.csv (both tables' dues side by side). Definitions: <measures>/finance/earning.yaml and rates.yaml (docs/finance.md)."
    )]
    Payments {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// Payment period: 2025, 2025Q3 or 2025-01-01..2025-06-30 (default: the latest full year in the data)
        #[arg(long)]
        period: Option<Period>,
        /// Rate table YAML (default: <measures>/finance/rates.yaml)
        #[arg(long, value_name = "FILE")]
        rates: Option<PathBuf>,
        /// A second rate table, priced side by side in simulation.csv
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
        /// Earning rule YAML (default: <measures>/finance/earning.yaml)
        #[arg(long, value_name = "FILE")]
        earning: Option<PathBuf>,
        /// Output directory
        #[arg(long, default_value = "out/payments")]
        out: PathBuf,
        /// Only this MCO's member-months
        #[arg(long, value_name = "ID", conflicts_with = "hhp")]
        mco: Option<String>,
        /// Only this partner's member-months
        #[arg(long, value_name = "ID")]
        hhp: Option<String>,
        /// Replace member ids with keyed pseudonyms (HMAC-SHA-256); key from --key-file or HHQ_PSEUDONYM_KEY
        #[arg(long)]
        pseudonymize: bool,
        /// File holding the pseudonymisation key (at least 16 bytes)
        #[arg(long, value_name = "FILE", requires = "pseudonymize")]
        key_file: Option<PathBuf>,
        /// Members computed at once: more are computed in passes over ranges of member ids
        #[arg(long, value_name = "N", value_parser = parse_count)]
        members_per_pass: Option<usize>,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Cost of care before and after Health Home enrolment: paid dollars per member-month by claim
    /// category and ED visits and admissions per 1,000, against members who qualify but never
    /// enrolled, with a difference-in-differences estimate and its interval
    #[command(
        after_help = "Examples:\n  hhq cost\n  hhq cost --intake 2024 --mco MCO-A --out out/cost-mco-a\n\nEnrollees are members whose first Health Home span starts in the intake months (default: the latest year whose 12 months before and after the data cover); the comparison group is members never enrolled who qualify for a target population (measures/cohorts/) the day before. Writes cost_of_care.csv (by MCO and partner, under CMS small-cell suppression) and method.txt (docs/finance.md)."
    )]
    Cost {
        /// Data directory holding the four extracts (default: the project's, else the demo data)
        #[arg(long, default_value = "testdata", hide_default_value = true)]
        data: PathBuf,
        /// The months whose new enrollees are followed: 2024, 2024Q3 or a date range
        #[arg(long)]
        intake: Option<Period>,
        /// Output directory
        #[arg(long, default_value = "out/cost")]
        out: PathBuf,
        /// Only this MCO's members
        #[arg(long, value_name = "ID", conflicts_with = "hhp")]
        mco: Option<String>,
        /// Only this partner's enrollees (against every comparison member)
        #[arg(long, value_name = "ID")]
        hhp: Option<String>,
        #[command(flatten)]
        memory: MemoryArgs,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Run one SQL query over the extracts and building blocks, and print or write its rows
    #[command(
        after_help = "Examples:\n  hhq sql \"SELECT claim_type, count(*) AS lines FROM claims GROUP BY claim_type ORDER BY 1\"\n  hhq sql \"SELECT * FROM ed_visits WHERE visit_date >= DATE '2025-07-01'\" --format csv --out ed.csv\n  hhq sql \"SELECT count(*) FROM members\" --hhp HHP-03\n\nTables: claims, contacts, members, enrollment (the usable rows), claims__all and the like (every row, as read) and every building block of queries/ (claims_final, ed_visits, inpatient_stays, hh_services, ...); `hhq sql --tables` (or SHOW TABLES) lists them with their columns, `hhq sql \"DESCRIBE claims\"` one table's columns and meanings. One read-only query: no CREATE, INSERT, COPY or SET.\n\nWith --mco or --hhp the session is opened over the members that MCO or partner is ever assigned (any enrolment span) and holds nothing else: every table, __all included, has their rows only.",
        arg_required_else_help = true
    )]
    Sql {
        /// The query (`SHOW TABLES` and `DESCRIBE <table>` list the tables and their columns)
        #[arg(required_unless_present = "tables")]
        query: Option<String>,
        /// List every table a query can read: extracts and building blocks, what a row is, and
        /// their columns (as `SHOW TABLES`)
        #[arg(long, conflicts_with = "query")]
        tables: bool,
        #[command(flatten)]
        adhoc: AdhocArgs,
    },
    /// Run the SQL query in a file (as `hhq sql`); errors name the file, line and column
    #[command(
        after_help = "Examples:\n  hhq query queries/examples/ed_visits_by_month.sql\n  hhq query queries/examples/members_without_contact.sql --mco MCO-A --format csv --out worklist.csv",
        arg_required_else_help = true
    )]
    Query {
        /// A file holding one SQL query
        file: PathBuf,
        #[command(flatten)]
        adhoc: AdhocArgs,
    },
    /// Import extracts in another layout (CSV or Parquet) into a data directory, as a mapping
    /// YAML says
    #[command(
        after_help = "Example: hhq import --mapping flat-csv --from exports/ --out data/\n\nWrites the four extracts as Parquet, import_report.csv (values the mapping could not translate or parse, set to null and counted with their first row and an example; source columns it does not read) and a manifest. The terminal shows counts only. Then: hhq validate --data data/"
    )]
    Import {
        /// The mapping YAML, or the name of a shipped one (`flat-csv`, `taf-like`)
        #[arg(long)]
        mapping: PathBuf,
        /// Directory of the source files the mapping names
        #[arg(long)]
        from: PathBuf,
        /// The data directory to write (replaced whole)
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a run's results as FHIR R4 MeasureReports (type summary), one Bundle
    #[command(
        after_help = "Examples:\n  hhq run --out out && hhq fhir --run out\n  hhq fhir --run out --measure FUH-HH --out fuh.fhir.json\n  hhq fhir --run out --member M0000042 --out m42.fhir.json\n\nOne MeasureReport per measure the run holds: a group per component (numerator, denominator as the result table counts them: after exclusions; the rate as measureScore), a stratifier per stratification. The numbers are the run's, as cms_reporting.csv has them: not suppressed. With --member, one individual report per measure in which the member has a unit: per component their units, those excluded, their denominator and numerator."
    )]
    Fhir {
        /// The output directory of `hhq run`
        #[arg(long, default_value = "out")]
        run: PathBuf,
        /// Only this measure (repeatable)
        #[arg(long = "measure", value_name = "ID")]
        only: Vec<String>,
        /// The Bundle's file
        #[arg(long, default_value = "fhir/measure-reports.json")]
        out: PathBuf,
        /// One member's `individual` reports (from the run's member-level detail) instead of
        /// the `summary` ones
        #[arg(long, value_name = "ID")]
        member: Option<String>,
        #[command(flatten)]
        dirs: DefinitionDirs,
    },
    /// Print the extract contract as Markdown
    #[command(after_help = "Example: hhq contract > contract.md")]
    Contract,
    /// Show the settings in force and where each comes from: the project file (hhq.toml, found
    /// in this directory or above), HHQ_* variables, or the built-in library and demo data
    #[command(
        after_help = "Example: hhq config\n\nhhq.toml (paths relative to it): data, measures, queries, programme, state, quality_policy, targets, risk_weights, memory_limit, cache_size; each is also HHQ_<KEY> (HHQ_DATA, ...), which overrides the file. HHQ_PROJECT=FILE names the project file; HHQ_PROJECT= (empty) ignores any. A command-line option overrides both."
    )]
    Config,
    /// The run cache: where it is and how full, or emptied (`--clear`). `hhq run` and `hhq
    /// report` keep what they compute there, keyed by what it was computed from
    #[command(
        after_help = "Examples:\n  hhq cache\n  hhq cache --clear\n\nThe cache is under $HHQ_CACHE_DIR, else $XDG_CACHE_HOME/hhq, else ~/.cache/hhq (runs/)."
    )]
    Cache {
        /// Remove every entry
        #[arg(long)]
        clear: bool,
        /// The bound the cache is trimmed to (as `hhq run --cache-size`)
        #[arg(long, value_name = "SIZE", default_value = "4G", value_parser = hhq::cache::parse_size)]
        cache_size: usize,
    },
    /// Write the built-in library (measures with their value sets, decks, cohorts and quality
    /// policy; building blocks; import mappings) to a directory, to start a library of your own
    #[command(
        after_help = "Example: hhq library --out my-library\n\nThen name it in hhq.toml (measures = \"my-library/measures\", queries = \"my-library/queries\") and change or add measures. Existing files that are the same are left; one that differs is not overwritten (an error)."
    )]
    Library {
        /// Directory to write measures/, queries/ and mappings/ into
        #[arg(long)]
        out: PathBuf,
        /// Also write the demo data (testdata/)
        #[arg(long)]
        demo_data: bool,
    },
    /// Print a shell completion script for hhq
    #[command(
        after_help = "Examples:\n  hhq completions bash > ~/.local/share/bash-completion/completions/hhq\n  hhq completions zsh > ~/.zfunc/_hhq\n  hhq completions fish > ~/.config/fish/completions/hhq.fish"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Write the manual pages: hhq.1 and one per command (hhq-run.1, ...)
    #[command(after_help = "Example: hhq man --out man && man -l man/hhq-run.1")]
    Man {
        /// Directory to write the pages to
        #[arg(long, default_value = "man")]
        out: PathBuf,
    },
    /// Run a node of a Ballista cluster that computes hhq's measures (`--engine
    /// ballista://HOST:PORT`): every node registers hhq's SQL functions
    #[cfg(feature = "ballista")]
    #[command(
        subcommand,
        after_help = "Example:\n  hhq cluster scheduler --port 50050 &\n  hhq cluster executor --scheduler localhost:50050 &\n  hhq run --engine ballista://localhost:50050 --data /shared/extracts --out out/run\n\nEvery node must read the extracts at the same absolute path (docs/distributed.md)."
    )]
    Cluster(ClusterCommand),
}

/// The nodes of a Ballista cluster.
#[cfg(feature = "ballista")]
#[derive(Subcommand)]
enum ClusterCommand {
    /// The scheduler: plans each query into stages and hands their tasks to executors
    #[command(after_help = "Example: hhq cluster scheduler --bind 0.0.0.0 --port 50050")]
    Scheduler {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0")]
        bind: String,
        /// Port to listen on
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// An executor: runs the tasks the scheduler hands it, serving its shuffle files to the
    /// others
    #[command(
        after_help = "Example: hhq cluster executor --scheduler sched.internal:50050 --port 50051 --concurrent-tasks 8"
    )]
    Executor {
        /// The scheduler, HOST:PORT
        #[arg(long, value_name = "HOST:PORT", default_value = "localhost:50050")]
        scheduler: String,
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0")]
        bind: String,
        /// Port of its Arrow Flight service (shuffle files)
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port of its gRPC service
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Host name the scheduler and other executors reach it at (default: this host's)
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Tasks run at once (default: one per core)
        #[arg(long, value_name = "N", default_value_t = 0)]
        concurrent_tasks: usize,
        /// Directory for shuffle files (default: a temporary directory)
        #[arg(long, value_name = "DIR")]
        work_dir: Option<String>,
    },
}

/// Serve as a cluster node until stopped.
#[cfg(feature = "ballista")]
async fn cluster(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Scheduler { bind, port } => hhq::distributed::scheduler(&bind, port).await,
        ClusterCommand::Executor {
            scheduler,
            bind,
            port,
            grpc_port,
            external_host,
            concurrent_tasks,
            work_dir,
        } => {
            let (host, scheduler_port) = scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| Error::Usage(format!("--scheduler `{scheduler}`: use HOST:PORT")))?;
            hhq::distributed::executor(hhq::distributed::ExecutorOptions {
                scheduler_host: host,
                scheduler_port,
                bind,
                port,
                grpc_port,
                external_host,
                concurrent_tasks,
                work_dir,
            })
            .await
        }
    }
}

/// What `hhq sql` and `hhq query` read, whose members, and how they write the rows.
#[derive(clap::Args, Clone)]
struct AdhocArgs {
    /// Data directory holding the four extracts (default: the project's, else the demo data)
    #[arg(long, default_value = "testdata", hide_default_value = true)]
    data: PathBuf,
    /// How to write the rows
    #[arg(long, value_enum, default_value_t = hhq::adhoc::Format::Table)]
    format: hhq::adhoc::Format,
    /// Write the rows to this file (atomically) rather than to standard output; needed for parquet
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only this MCO's members in the extracts
    #[arg(long, value_name = "ID", conflicts_with = "hhp")]
    mco: Option<String>,
    /// Only this partner's members in the extracts
    #[arg(long, value_name = "ID")]
    hhp: Option<String>,
    /// Rows a table shows at most (csv, json and parquet write every row)
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_rows: usize,
    /// Stop the query after this long: 30s, 5m, 2h, 1h30m
    #[arg(long, value_name = "DURATION", default_value = "10m",
          value_parser = hhq::adhoc::parse_duration)]
    timeout: std::time::Duration,
    #[command(flatten)]
    memory: MemoryArgs,
    #[command(flatten)]
    dirs: DefinitionDirs,
}

impl AdhocArgs {
    fn options(self) -> hhq::adhoc::AdhocOptions {
        hhq::adhoc::AdhocOptions {
            common: hhq::execute::Options {
                memory_limit: self.memory.memory_limit,
                ..self.dirs.with_data(self.data)
            },
            scope: match (self.mco, self.hhp) {
                (Some(id), _) => hhq::privacy::Audience::Mco(id),
                (_, Some(id)) => hhq::privacy::Audience::Hhp(id),
                _ => hhq::privacy::Audience::State,
            },
            format: self.format,
            out: self.out,
            max_rows: self.max_rows,
            timeout: self.timeout,
        }
    }
}

/// Write `hhq.1` and a page per command (`hhq-run.1`, ...) to `dir`, each atomically; returns
/// how many.
fn write_man_pages(dir: &std::path::Path) -> Result<usize> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let render = |c: clap::Command, name: &str| -> Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut page)
            .map_err(|source| Error::Io {
                path: dir.join(name),
                source,
            })?;
        hhq::output::write_atomic(&dir.join(name), &page)
    };
    let mut written = 0;
    for sub in cmd.get_subcommands() {
        let name = format!("hhq-{}", sub.get_name());
        render(sub.clone().name(name.clone()), &format!("{name}.1"))?;
        written += 1;
    }
    render(cmd, "hhq.1")?;
    Ok(written + 1)
}

/// Run an ad hoc query and write its rows ([`hhq::adhoc::command`]).
async fn adhoc(args: AdhocArgs, query: hhq::adhoc::Query) -> Result<()> {
    hhq::adhoc::command(&args.options(), &query).await?.print()
}

/// Whose members an output holds, and whether their ids are pseudonymised.
fn privacy(
    mco: Option<String>,
    hhp: Option<String>,
    pseudonymize: bool,
    key_file: Option<PathBuf>,
) -> Result<hhq::privacy::Privacy> {
    Ok(hhq::privacy::Privacy {
        audience: match (mco, hhp) {
            (Some(id), _) => hhq::privacy::Audience::Mco(id),
            (_, Some(id)) => hhq::privacy::Audience::Hhp(id),
            _ => hhq::privacy::Audience::State,
        },
        pseudonymizer: match (pseudonymize, key_file) {
            (false, _) => None,
            (true, Some(f)) => Some(hhq::privacy::Pseudonymizer::from_file(&f)?),
            (true, None) => Some(hhq::privacy::Pseudonymizer::from_env()?.ok_or_else(|| {
                Error::Usage(format!(
                    "--pseudonymize needs a key: --key-file FILE or {}",
                    hhq::privacy::KEY_ENV
                ))
            })?),
        },
    })
}

/// The data-quality policy and as-of date; shared by validate, run and report.
#[derive(clap::Args, Clone)]
struct QualityArgs {
    /// Data-quality policy: severities, thresholds, refuse or caveat (default: <measures>/quality/policy.yaml)
    #[arg(long, value_name = "FILE")]
    quality_policy: Option<PathBuf>,
    /// Dates after this day count as future in the data-quality checks (default: today)
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<chrono::NaiveDate>,
    /// The first day the extracts cover, where it is known (default: the claims' first day);
    /// look-backs before it are not reportable
    #[arg(long, value_name = "YYYY-MM-DD")]
    data_from: Option<chrono::NaiveDate>,
    /// The last day the extracts are complete through, where it is known (default: the last
    /// dated claim or contact); periods and follow-up after it are refused or not reportable
    #[arg(long, value_name = "YYYY-MM-DD")]
    data_through: Option<chrono::NaiveDate>,
}

impl QualityArgs {
    fn options(self) -> hhq::quality::QualityOptions {
        hhq::quality::QualityOptions {
            policy: self.quality_policy,
            as_of: self.as_of,
            data_from: self.data_from,
            data_through: self.data_through,
        }
    }
}

/// Warnings, but not Ballista's complaint that a stage's metrics do not line up with its plan
/// (logged as an error for every plan with a shuffle; nothing is wrong with the results).
#[cfg(feature = "ballista")]
const LOG_DEFAULT: &str = "warn,ballista_scheduler::display=off";

fn main() -> ExitCode {
    #[cfg_attr(not(feature = "ballista"), allow(unused_mut))]
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    #[cfg(feature = "ballista")]
    {
        // The distributed engine logs through `log`: warnings unless RUST_LOG says otherwise.
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(LOG_DEFAULT))
            .init();
        // A measure's plan is a deep tree, which protobuf encodes and decodes recursively on
        // the client, the scheduler and the executors (threads of this runtime): 2 MiB, tokio's
        // default, overflows.
        runtime.thread_stack_size(64 << 20);
    }
    match runtime.build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let settings = match std::env::current_dir()
        .map_err(|source| Error::Io {
            path: ".".into(),
            source,
        })
        .and_then(|cwd| Settings::find(&cwd))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", hhq::escape::terminal(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let matches = command_with(&settings).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Config = cli.command {
        print!("{}", settings.text());
        return ExitCode::SUCCESS;
    }
    // The demo data stand in only where nothing names data: said, so no one mistakes them for theirs.
    if settings.demo_data()
        && let Some((name, sub)) = matches.subcommand()
        && sub.try_get_raw("data").is_ok_and(|v| v.is_some())
        && sub.value_source("data") == Some(clap::parser::ValueSource::DefaultValue)
    {
        eprintln!(
            "note: hhq {name} reads the built-in demo data (no --data, hhq.toml or HHQ_DATA names any)"
        );
    }
    let done = dispatch(cli.command).await;
    OVERLAYS.lock().expect("not poisoned").clear();
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages quote values from the data: shown, never obeyed by the terminal.
            eprintln!("error: {}", hhq::escape::terminal(&e.to_string()));
            match e {
                Error::Usage(_) => ExitCode::from(2),
                Error::Quality(_) => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AudienceKind {
    /// The state quarterly report: every member, MCOs and partners compared
    State,
    /// One MCO's report, its partners compared
    Mco,
    /// One partner's scorecard, its own members only
    Hhp,
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Validate {
            data,
            out,
            quality,
            measures,
            list,
        } => {
            if list {
                print!("{}", hhq::quality::catalogue_markdown());
                return Ok(());
            }
            hhq::quality::command(&data, &out, &quality.options(), &measures)
                .await?
                .print()
        }
        Command::Report {
            audience,
            id,
            mco,
            hhp,
            quarter,
            data,
            out,
            only,
            risk_weights,
            no_pdf,
            members_per_pass,
            programme,
            state,
            targets,
            quality,
            memory,
            cache,
            engine,
            dirs,
        } => {
            let audience = match (audience, id, mco, hhp) {
                (None, None, Some(id), None) => hhq::privacy::Audience::Mco(id),
                (None, None, None, Some(id)) => hhq::privacy::Audience::Hhp(id),
                (None | Some(AudienceKind::State), None, None, None) => {
                    hhq::privacy::Audience::State
                }
                (None | Some(AudienceKind::State), Some(id), _, _) => {
                    return Err(Error::Usage(format!(
                        "the state report takes no id (got `{id}`)"
                    )));
                }
                (Some(AudienceKind::Mco), Some(id), _, _) => hhq::privacy::Audience::Mco(id),
                (Some(AudienceKind::Hhp), Some(id), _, _) => hhq::privacy::Audience::Hhp(id),
                _ => {
                    return Err(Error::Usage(
                        "an MCO or partner id is needed: hhq report mco ID, or --mco ID".into(),
                    ));
                }
            };
            let quarter = quarter.as_deref().map(report::Quarter::parse).transpose()?;
            let out = match out {
                Some(out) => out,
                None => report::default_out(&audience, quarter)?,
            };
            report::command(&report::ReportOptions {
                common: computing(
                    dirs,
                    data,
                    risk_weights,
                    memory,
                    engine,
                    members_per_pass,
                    cache,
                )?,
                only,
                audience,
                quarter,
                out: out.clone(),
                pdf: !no_pdf,
                quality: quality.options(),
                publisher: report::Publisher { programme, state },
                targets,
            })
            .await?
            .print()
        }
        Command::Run {
            data,
            period,
            out,
            only,
            risk_weights,
            mco,
            hhp,
            pseudonymize,
            key_file,
            timings,
            members_per_pass,
            detail_csv,
            format,
            quiet,
            quality,
            memory,
            cache,
            engine,
            dirs,
        } => {
            let privacy = privacy(mco, hhp, pseudonymize, key_file)?;
            pipeline::run(&RunOptions {
                common: computing(
                    dirs,
                    data,
                    risk_weights,
                    memory,
                    engine,
                    members_per_pass,
                    cache,
                )?,
                out: out.clone(),
                period,
                only,
                privacy,
                quality: quality.options(),
                detail_csv,
            })
            .await?
            .told(&out, format, quiet, timings)?
            .print()
        }
        Command::Synth {
            members,
            seed,
            start_year,
            years,
            out,
        } => synth::write(
            &SynthOptions {
                members,
                seed,
                start_year,
                years,
            },
            &out,
        )?
        .told(&out)
        .print(),
        Command::Cohort {
            data,
            as_of,
            out,
            mco,
            hhp,
            pseudonymize,
            key_file,
            members_per_pass,
            memory,
            dirs,
        } => {
            let opts = hhq::cohort::lists::CohortOptions {
                common: hhq::execute::Options {
                    memory_limit: memory.memory_limit,
                    members_per_pass,
                    ..dirs.with_data(data)
                },
                out,
                as_of,
                privacy: privacy(mco, hhp, pseudonymize, key_file)?,
            };
            hhq::cohort::lists::command(&opts)
                .await?
                .told(&opts.privacy.audience, &opts.out)
                .print()
        }
        Command::Payments {
            data,
            period,
            rates,
            compare,
            earning,
            out,
            mco,
            hhp,
            pseudonymize,
            key_file,
            members_per_pass,
            memory,
            dirs,
        } => {
            let opts = hhq::finance::PaymentsOptions {
                common: hhq::execute::Options {
                    memory_limit: memory.memory_limit,
                    members_per_pass,
                    ..dirs.with_data(data)
                },
                out,
                period,
                rates,
                compare,
                earning,
                privacy: privacy(mco, hhp, pseudonymize, key_file)?,
            };
            hhq::finance::command(&opts).await?.told(&opts.out).print()
        }
        Command::Cost {
            data,
            intake,
            out,
            mco,
            hhp,
            memory,
            dirs,
        } => {
            let opts = hhq::finance::cost::CostOptions {
                common: hhq::execute::Options {
                    memory_limit: memory.memory_limit,
                    ..dirs.with_data(data)
                },
                out,
                intake,
                audience: privacy(mco, hhp, false, None)?.audience,
            };
            hhq::finance::cost::command(&opts)
                .await?
                .told(&opts.out)
                .print()
        }
        Command::Check { dir, dirs } => {
            let measures = dir.unwrap_or(dirs.measures);
            pipeline::check(&measures, &dirs.queries)
                .await?
                .told(&measures)
                .print()
        }
        Command::Scan {
            data,
            period,
            only,
            dirs,
        } => pipeline::scan(&reading(data, dirs, period, only, None))
            .await?
            .told()
            .print(),
        Command::Profile {
            what,
            pass,
            members_per_pass,
            data,
            period,
            memory,
            dirs,
        } => {
            let mut options = reading(data, dirs, period, Vec::new(), memory.memory_limit);
            options.common.members_per_pass = members_per_pass;
            pipeline::profile(&options, &what, pass)
                .await?
                .told(&what)
                .print()
        }
        Command::Compile {
            measure,
            period,
            data,
            sql: _,
            steps,
            plan,
            detail,
            extracts,
            dirs,
        } => pipeline::compile_command(&pipeline::CompileOptions {
            common: dirs.with_data(data),
            measure,
            period,
            steps,
            plan,
            detail,
            extracts,
        })
        .await?
        .print(),
        Command::Explain {
            measure,
            member,
            data,
            period,
            memory,
            dirs,
        } => {
            let e = pipeline::explain(
                &reading(data, dirs, period, Vec::new(), memory.memory_limit),
                &measure,
                &member,
            )
            .await?;
            print!("{}", report::explain_text(&e, &member));
            Ok(())
        }
        Command::Test {
            dir,
            only,
            verbose,
            dirs,
        } => {
            let measures = dir.unwrap_or(dirs.measures);
            pipeline::test_decks(&measures, &dirs.queries, dirs.spec, &only, verbose)
                .await?
                .print()
        }
        Command::DiffSpec {
            measure,
            a,
            b,
            data,
            period,
            dirs,
        } => {
            let mut diff = hhq::specdiff::texts_and_rules(&dirs.measures, &measure, a, b)?;
            if let Some(data) = data {
                let period: Period = match period {
                    Some(p) => p.parse()?,
                    None => Period::year(i32::from(b)),
                };
                hhq::specdiff::units(&mut diff, &data, &dirs.measures, &dirs.queries, &period)
                    .await?;
            }
            print!("{}", diff.render());
            Ok(())
        }
        Command::Conformance {
            out,
            check,
            measures,
        } => pipeline::conformance(&measures, out.as_deref(), check)?.print(),
        Command::Sql {
            query,
            tables,
            adhoc: args,
        } => {
            let text = match (tables, query) {
                (true, _) | (false, None) => "SHOW TABLES".to_string(),
                (false, Some(q)) => q,
            };
            adhoc(args, hhq::adhoc::Query::inline(text)).await
        }
        Command::Query { file, adhoc: args } => {
            adhoc(args, hhq::adhoc::Query::from_file(&file)?).await
        }
        Command::Import { mapping, from, out } => {
            let mapping = hhq::import::Mapping::load(&shipped_mapping(mapping)?)?;
            hhq::import::import(&mapping, &from, &out)?
                .told(&out, &mapping.name)
                .print()
        }
        Command::Fhir {
            run,
            only,
            out,
            member,
            dirs,
        } => {
            let n = hhq::fhir::export(&hhq::fhir::FhirOptions {
                run,
                measures: dirs.measures,
                queries: dirs.queries,
                only,
                out: out.clone(),
                member,
            })
            .await?;
            eprintln!("wrote {n} MeasureReports to {}", out.display());
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "hhq", &mut std::io::stdout());
            Ok(())
        }
        #[cfg(feature = "ballista")]
        Command::Cluster(command) => cluster(command).await,
        Command::Man { out } => {
            let written = write_man_pages(&out)?;
            eprintln!("wrote {written} manual pages to {}", out.display());
            Ok(())
        }
        Command::Contract => {
            print!("{}", extract::contract::markdown());
            Ok(())
        }
        // Answered in `run`, which holds the settings.
        Command::Config => Ok(()),
        Command::Cache { clear, cache_size } => {
            let dir = hhq::cache::default_dir();
            let cache = hhq::cache::Cache::open(&dir, cache_size as u64)?;
            let shown = hhq::escape::terminal(&dir.display().to_string()).into_owned();
            if clear {
                let usage = cache.clear()?;
                eprintln!("run cache {shown}: removed {} entries", usage.removed);
            } else {
                let usage = cache.usage()?;
                eprintln!(
                    "run cache {shown}: {} entries, {} (bound {})",
                    usage.entries,
                    hhq::plan::format_size(usage.bytes as usize),
                    hhq::plan::format_size(cache_size)
                );
            }
            Ok(())
        }
        Command::Library { out, demo_data } => {
            use hhq::library::Part;
            let mut parts = vec![Part::Measures, Part::Queries, Part::Mappings];
            if demo_data {
                parts.push(Part::Demo);
            }
            let n = hhq::library::export(&parts, &out)?;
            eprintln!(
                "wrote {n} files of the built-in library to {} ({})",
                out.display(),
                parts.iter().map(|p| p.dir()).collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }
}

/// A mapping's path: as given when it names a file, else the shipped mapping of that name
/// (`flat-csv` is the built-in `mappings/flat-csv.yaml`).
fn shipped_mapping(given: PathBuf) -> Result<PathBuf> {
    use hhq::library::{self, Part};
    let name = given.to_string_lossy().into_owned();
    let file = format!("{}.yaml", name.trim_end_matches(".yaml"));
    if given.exists()
        || given.components().count() > 1
        || library::file(Part::Mappings, &file).is_none()
    {
        return Ok(given);
    }
    Ok(library::dir(Part::Mappings)?.join(file))
}

/// The overlays of this process (`library = "extend"`), removed when it ends.
static OVERLAYS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// `dir` laid over `part` of the built-in library, in a temporary directory of this process.
fn layered(part: Part, dir: &str) -> std::result::Result<PathBuf, String> {
    let dir = PathBuf::from(dir);
    let builtin = hhq::library::dir(part).map_err(|e| e.to_string())?;
    if dir == builtin {
        return Ok(dir);
    }
    let into = tempfile::Builder::new()
        .prefix("hhq-library-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    hhq::library::overlay(part, &dir, into.path()).map_err(|e| e.to_string())?;
    let path = into.path().to_path_buf();
    OVERLAYS.lock().expect("not poisoned").push(into);
    Ok(path)
}

/// The command line with the settings as the defaults of the options they name (in every
/// command, for `--data`, `--measures` and `--queries` only where the option has a default).
fn command_with(settings: &Settings) -> clap::Command {
    fn apply(mut cmd: clap::Command, settings: &Settings) -> clap::Command {
        let ids: Vec<(String, bool)> = cmd
            .get_arguments()
            .map(|a| (a.get_id().to_string(), !a.get_default_values().is_empty()))
            .collect();
        for (id, has_default) in ids {
            let Some(s) = settings.get(&id) else { continue };
            if matches!(id.as_str(), "data" | "measures" | "queries") && !has_default {
                continue;
            }
            let value = s.value.clone();
            cmd = cmd.mut_arg(id.as_str(), |a| a.default_value(value));
        }
        // `library = "extend"`: whatever names the measures and queries (the project, the
        // environment, the command line) lies over the built-in library.
        if settings.extends_library() {
            for (id, part) in [("measures", Part::Measures), ("queries", Part::Queries)] {
                if cmd.get_arguments().any(|a| a.get_id() == id) {
                    cmd = cmd.mut_arg(id, |a| a.value_parser(move |s: &str| layered(part, s)));
                }
            }
        }
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for name in names {
            cmd = cmd.mut_subcommand(name, |c| apply(c, settings));
        }
        cmd
    }
    use clap::CommandFactory;
    apply(Cli::command(), settings)
}
