//! Output: the members of a block as Arrow record batches in the contract's schemas, and the
//! Parquet files they stream into (written to a temporary file, renamed into place at the end).

use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, ListBuilder,
    StringBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::member::{MemberRows, OPEN};
use super::partners::{MCOS, PARTNERS};
use crate::error::{Error, Result};
use crate::extract::contract::{CLAIMS, CONTACTS, ENROLLMENT, MEMBERS};

pub(super) fn member_id(number: u32) -> String {
    format!("M{number:07}")
}

fn claim_id(buf: &mut String, number: u32, seq: u32) -> &str {
    buf.clear();
    let _ = write!(buf, "C{number:07}-{seq:05}");
    buf
}

fn npi_str(buf: &mut String, npi: Option<u64>) -> Option<&str> {
    let n = npi?;
    buf.clear();
    let _ = write!(buf, "{n}");
    Some(buf)
}

pub(super) fn claims_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block
        .iter()
        .map(|m| m.claims.iter().map(|c| c.lines.len()).sum::<usize>())
        .sum();
    let s = || StringBuilder::with_capacity(rows, rows * 6);
    let (mut member, mut claim, mut claim_type, mut adjustment, mut replaces, mut mco) =
        (s(), s(), s(), s(), s(), s());
    let (mut tob, mut revenue, mut procedure, mut mod1, mut mod2, mut pos) =
        (s(), s(), s(), s(), s(), s());
    let (mut principal, mut billing, mut rendering, mut taxonomy, mut ndc, mut status) =
        (s(), s(), s(), s(), s(), s());
    let mut other_dx = ListBuilder::new(StringBuilder::new());
    let mut line_number = Int32Builder::with_capacity(rows);
    let mut days_supply = Int32Builder::with_capacity(rows);
    let d = || Date32Builder::with_capacity(rows);
    let (mut from, mut to, mut admission, mut discharge) = (d(), d(), d(), d());
    let mut paid = Float64Builder::with_capacity(rows);
    let (mut buf, mut buf2) = (String::new(), String::new());
    for m in block {
        let mid = member_id(m.person.number);
        for c in &m.claims {
            for (i, l) in c.lines.iter().enumerate() {
                member.append_value(&mid);
                claim.append_value(claim_id(&mut buf, m.person.number, c.seq));
                line_number.append_value(i as i32 + 1);
                claim_type.append_value(c.claim_type);
                adjustment.append_value(c.adjustment);
                replaces.append_option(
                    c.replaces
                        .map(|r| claim_id(&mut buf2, m.person.number, r).to_string()),
                );
                mco.append_option(c.mco.map(|i| MCOS[i]));
                from.append_value(c.from);
                to.append_value(c.to);
                admission.append_option(c.admission);
                discharge.append_option(c.discharge);
                status.append_option(c.discharge_status);
                tob.append_option(c.type_of_bill);
                revenue.append_option(l.revenue);
                procedure.append_option(l.procedure);
                mod1.append_option(l.modifier_1);
                mod2.append_option(l.modifier_2);
                pos.append_option(c.place_of_service);
                principal.append_option(c.principal_dx);
                if c.other_dx.is_empty() {
                    other_dx.append_null();
                } else {
                    for dx in &c.other_dx {
                        other_dx.values().append_value(dx);
                    }
                    other_dx.append(true);
                }
                billing.append_option(npi_str(&mut buf, c.billing_npi));
                rendering.append_option(npi_str(&mut buf, c.rendering_npi));
                taxonomy.append_option(c.taxonomy);
                ndc.append_option(l.ndc);
                days_supply.append_option(l.days_supply);
                paid.append_value(l.paid);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(member.finish()),
        Arc::new(claim.finish()),
        Arc::new(line_number.finish()),
        Arc::new(claim_type.finish()),
        Arc::new(adjustment.finish()),
        Arc::new(replaces.finish()),
        Arc::new(mco.finish()),
        Arc::new(from.finish()),
        Arc::new(to.finish()),
        Arc::new(admission.finish()),
        Arc::new(discharge.finish()),
        Arc::new(status.finish()),
        Arc::new(tob.finish()),
        Arc::new(revenue.finish()),
        Arc::new(procedure.finish()),
        Arc::new(mod1.finish()),
        Arc::new(mod2.finish()),
        Arc::new(pos.finish()),
        Arc::new(principal.finish()),
        Arc::new(other_dx.finish()),
        Arc::new(billing.finish()),
        Arc::new(rendering.finish()),
        Arc::new(taxonomy.finish()),
        Arc::new(ndc.finish()),
        Arc::new(days_supply.finish()),
        Arc::new(paid.finish()),
    ];
    Ok(RecordBatch::try_new(CLAIMS.schema(), columns)?)
}

pub(super) fn contacts_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block.iter().map(|m| m.contacts.len()).sum();
    let s = || StringBuilder::with_capacity(rows, rows * 10);
    let (mut id, mut member, mut hhp, mut service, mut mode, mut role) =
        (s(), s(), s(), s(), s(), s());
    let mut date = Date32Builder::with_capacity(rows);
    let mut reached = BooleanBuilder::with_capacity(rows);
    let mut buf = String::new();
    for m in block {
        let mid = member_id(m.person.number);
        for c in &m.contacts {
            buf.clear();
            let _ = write!(buf, "K{:07}-{:05}", m.person.number, c.seq);
            id.append_value(&buf);
            member.append_value(&mid);
            date.append_value(c.date);
            hhp.append_value(PARTNERS[c.hhp].0);
            service.append_value(c.service);
            mode.append_value(c.mode);
            reached.append_value(c.reached);
            role.append_option(c.staff_role);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(member.finish()),
        Arc::new(date.finish()),
        Arc::new(hhp.finish()),
        Arc::new(service.finish()),
        Arc::new(mode.finish()),
        Arc::new(reached.finish()),
        Arc::new(role.finish()),
    ];
    Ok(RecordBatch::try_new(CONTACTS.schema(), columns)?)
}

pub(super) fn members_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let n = block.len();
    let s = || StringBuilder::with_capacity(n, n * 12);
    let (mut id, mut sex, mut race, mut ethnicity, mut county) = (s(), s(), s(), s(), s());
    let mut birth = Date32Builder::with_capacity(n);
    let mut death = Date32Builder::with_capacity(n);
    let mut rural = BooleanBuilder::with_capacity(n);
    let mut dual = BooleanBuilder::with_capacity(n);
    for m in block {
        let p = &m.person;
        id.append_value(member_id(p.number));
        birth.append_value(p.birth);
        sex.append_value(p.sex);
        race.append_option(p.race);
        ethnicity.append_option(p.ethnicity);
        county.append_option(p.county.map(|c| c.to_string()));
        rural.append_option(p.rural);
        death.append_option(p.death);
        dual.append_value(p.dual);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(birth.finish()),
        Arc::new(sex.finish()),
        Arc::new(race.finish()),
        Arc::new(ethnicity.finish()),
        Arc::new(county.finish()),
        Arc::new(rural.finish()),
        Arc::new(death.finish()),
        Arc::new(dual.finish()),
    ];
    Ok(RecordBatch::try_new(MEMBERS.schema(), columns)?)
}

pub(super) fn enrollment_batch(block: &[MemberRows]) -> Result<RecordBatch> {
    let rows: usize = block.iter().map(|m| m.spans.len()).sum();
    let s = || StringBuilder::with_capacity(rows, rows * 8);
    let (mut member, mut span_type, mut mco, mut hhp, mut population) = (s(), s(), s(), s(), s());
    let mut start = Date32Builder::with_capacity(rows);
    let mut end = Date32Builder::with_capacity(rows);
    let mut opted_out = BooleanBuilder::with_capacity(rows);
    for m in block {
        let mid = member_id(m.person.number);
        for sp in &m.spans {
            member.append_value(&mid);
            span_type.append_value(if sp.health_home {
                "health_home"
            } else {
                "medicaid"
            });
            start.append_value(sp.start);
            end.append_option((sp.end != OPEN).then_some(sp.end));
            mco.append_value(MCOS[sp.mco]);
            if sp.health_home {
                hhp.append_value(PARTNERS[sp.hhp].0);
                population.append_value(m.person.population);
                opted_out.append_value(sp.opted_out);
            } else {
                hhp.append_null();
                population.append_null();
                opted_out.append_null();
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(member.finish()),
        Arc::new(span_type.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(mco.finish()),
        Arc::new(hhp.finish()),
        Arc::new(population.finish()),
        Arc::new(opted_out.finish()),
    ];
    Ok(RecordBatch::try_new(ENROLLMENT.schema(), columns)?)
}

/// One Parquet file being streamed into a temporary file beside its final name. `write_atomic`
/// takes the whole file as bytes, which would hold a million members' claims in memory; this
/// keeps the same temporary-file-and-rename guarantee while streaming.
pub(super) struct Sink {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl Sink {
    pub(super) fn create(dir: &Path, name: &str, schema: SchemaRef) -> Result<Sink> {
        let path = dir.join(name);
        let tmp = tempfile::Builder::new()
            .prefix(".hhq-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        // Fixed properties and no timestamps, so equal options give byte-identical files.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by("hhq synth".to_string())
            .build();
        let writer = ArrowWriter::try_new(BufWriter::new(tmp), schema, Some(props))?;
        Ok(Sink { path, writer })
    }

    /// Writes one block as its own row group.
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        self.writer.flush()?;
        Ok(())
    }

    pub(super) fn finish(self) -> Result<()> {
        let path = self.path;
        let buffered = self.writer.into_inner()?;
        let tmp = buffered
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        // tempfile creates 0600 files; extracts are ordinary files readable like any other.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(&path, e))?;
        }
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}
