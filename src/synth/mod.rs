//! Synthetic extracts: a seeded, deterministic generator of the four contract extracts (claims,
//! contacts, members, enrollment) for a made-up Kansas Health Home programme.
//!
//! The data carry the patterns the Health Home measures look for — ED visits (repeat, same-day,
//! behavioural, overdose, leading to admission), inpatient stays (transfers, readmissions,
//! nonacute, psychiatric with follow-up at varied delays), Health Home contacts and the monthly
//! S0281 payment rule, enrollment gaps, MCO and partner changes, opt-outs, deaths, and claim
//! replacements and voids. Every person, provider number and amount is invented; diagnosis,
//! procedure, revenue and taxonomy codes are real public codes used illustratively; NDCs and NPIs
//! only have the right shape.
//!
//! Partners and MCOs do not all serve their members alike: by the tables `PARTNER_EFFECTS` and
//! `MCO_EFFECTS`, some follow up sooner, reach their members more often or see fewer ED visits
//! and readmissions than others, and one partner drifts from strong to weak over the last two
//! full years, so that comparisons and control charts have something to show. The effects act
//! only through the rows generated (which visits, contacts and stays happen, and when).
//!
//! Each member is generated from its own RNG, derived from (seed, member index), so the output
//! depends only on [`SynthOptions`] — not on block size, thread count or machine — and members are
//! streamed in blocks so memory stays bounded for large populations.
//!
//! The generator by file: `calendar` (day numbers, months, the data window), `random` (draws that
//! are identical on every platform), `partners` (MCOs, partners, contracts and the effect tables),
//! `codes` (diagnosis, procedure, revenue, taxonomy and drug codes, provider numbers), `member`
//! (one member: demographics, enrollment spans, the per-member generator), `acute` (ED visits and
//! stays), `care` (office, lab, pharmacy and behavioural-health visits), `contacts` (Health Home
//! contacts and the S0281 claims they earn), `claims` (claim rows, numbering, replacements and
//! voids) and `write` (Arrow batches and Parquet files).

mod acute;
mod calendar;
mod care;
mod claims;
mod codes;
mod contacts;
mod member;
mod partners;
mod random;
mod rows;
#[cfg(test)]
mod tests;
mod write;

use std::path::Path;

use crate::error::{Error, Result};
use crate::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, MEMBERS};
use calendar::Window;
use member::{MemberRows, generate_block};
use rows::{REPLACEMENT, VOID};
use write::{Sink, claims_batch, contacts_batch, enrollment_batch, members_batch};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub members: usize,
    pub seed: u64,
    /// First calendar year of data; data runs from Jan 1 of this year for `years` full years plus
    /// the first quarter of the year after (so "the latest full year" is start_year + years - 1).
    pub start_year: i32,
    pub years: u32,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            members: 300,
            seed: 42,
            start_year: 2024,
            years: 2,
        }
    }
}

/// Counts of what was written, for the command to print (no member-level data).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SynthSummary {
    pub members: usize,
    /// Rows of `claims.parquet`, replacement and void versions included.
    pub claim_lines: usize,
    pub contacts: usize,
    pub enrollment_spans: usize,
    /// Void claims written (each cancels one earlier version).
    pub voided_claims: usize,
    /// Replacement claims written (each supersedes one earlier version).
    pub replaced_claims: usize,
    pub deaths: usize,
}

impl SynthSummary {
    /// What `hhq synth` tells: what it wrote to `out`.
    pub fn told(&self, out: &Path) -> crate::output::Told {
        crate::output::Told {
            after: vec![format!(
                "wrote {}: {} members, {} claim lines ({} replaced, {} voided claims), {} \
                 contacts, {} enrollment spans, {} deaths",
                out.display(),
                self.members,
                self.claim_lines,
                self.replaced_claims,
                self.voided_claims,
                self.contacts,
                self.enrollment_spans,
                self.deaths
            )],
            ..Default::default()
        }
    }
}

/// Generate the four extracts and write `claims.parquet`, `contacts.parquet`, `members.parquet`,
/// `enrollment.parquet` into `out_dir` (created if missing).
pub fn write(opts: &SynthOptions, out_dir: &Path) -> Result<SynthSummary> {
    let win = Window::new(opts)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut claims = Sink::create(out_dir, "claims.parquet", CLAIMS.schema())?;
    let mut contacts = Sink::create(out_dir, "contacts.parquet", CONTACTS.schema())?;
    let mut members = Sink::create(out_dir, "members.parquet", MEMBERS.schema())?;
    let mut enrollment = Sink::create(out_dir, "enrollment.parquet", ENROLLMENT.schema())?;

    let mut summary = SynthSummary::default();
    let mut first = 0;
    let bar = crate::pipeline::progress(opts.members as u64);
    bar.set_message("members");
    while first < opts.members {
        bar.set_position(first as u64);
        let n = BLOCK.min(opts.members - first);
        let block = generate_block(opts.seed, win, first, n);
        summary.add(&block);
        claims.write(&claims_batch(&block)?)?;
        contacts.write(&contacts_batch(&block)?)?;
        members.write(&members_batch(&block)?)?;
        enrollment.write(&enrollment_batch(&block)?)?;
        first += n;
    }
    // Renamed into place only once all four are complete, so a failed run leaves no partial set.
    for sink in [claims, contacts, members, enrollment] {
        sink.finish()?;
    }
    Ok(summary)
}

/// Members per RecordBatch and row group.
const BLOCK: usize = 5_000;

impl SynthSummary {
    fn add(&mut self, block: &[MemberRows]) {
        for m in block {
            self.members += 1;
            self.claim_lines += m.claims.iter().map(|c| c.lines.len()).sum::<usize>();
            self.contacts += m.contacts.len();
            self.enrollment_spans += m.spans.len();
            self.voided_claims += m.claims.iter().filter(|c| c.adjustment == VOID).count();
            self.replaced_claims += m
                .claims
                .iter()
                .filter(|c| c.adjustment == REPLACEMENT)
                .count();
            self.deaths += usize::from(m.person.death.is_some());
        }
    }
}
