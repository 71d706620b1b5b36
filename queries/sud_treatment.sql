-- Substance-use treatment: one row per member, date and claim of (a) an outpatient or
-- professional service with an SUD or overdose diagnosis in any position or an SUD service code,
-- or with a substance-use counseling and surveillance diagnosis in any position (HEDIS FUA and
-- IET count that value set as a service; not an ED visit, not the S0281 payment), (b) an inpatient admission with an SUD diagnosis,
-- dated on admission, or (c) medication treatment: an SUD medication dispensed (NDC) or
-- administered (HCPCS). `kind` is visit, inpatient or medication, for measures that count them
-- apart; `sud_dx` and `overdose_dx` say whether the claim carries an alcohol, opioid or
-- other-drug diagnosis, or an overdose one, in any position: HEDIS FUA counts a visit with either,
-- IET only one with an SUD diagnosis. For IET: `end_date` (an admission's discharge, else the
-- treatment date), `provider` (rendering, else billing NPI), `alcohol_medication` and
-- `opioid_medication` (the medication treats that disorder: HEDIS counts it only in its own
-- cohort), `long_acting` (a long-acting medication, enough alone for engagement) and
-- `event_provider` (the provider for a visit, the claim for a medication, so that counting days
-- and providers counts a visit and a medication on one day as two events).
-- `counseling_lab`: the row qualifies only as counseling and surveillance, on laboratory claim
-- lines (place of service 81), which HEDIS MY2025 leaves out of that route and MY2024 does not.
WITH dx_claims AS (
  SELECT claim_id,
    bool_or(in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx')) AS sud_dx,
    bool_or(in_value_set(dx, 'overdose_dx')) AS overdose_dx,
    bool_or(in_value_set(dx, 'sud_counseling_dx')) AS counseling_dx
  FROM claim_substance_dx
  GROUP BY claim_id
),
lines AS (
  SELECT c.member_id, c.claim_id, c.claim_type, c.service_from, c.service_to, c.admission_date,
    c.discharge_date, coalesce(c.rendering_npi, c.billing_npi) AS provider,
    c.procedure_code, c.revenue_code, c.ndc, c.place_of_service,
    coalesce(s.sud_dx, false) AS sud_dx, coalesce(s.overdose_dx, false) AS overdose_dx,
    coalesce(s.counseling_dx, false) AS counseling_dx
  FROM claims_final c LEFT JOIN dx_claims s ON s.claim_id = c.claim_id
),
-- Both kinds of row come from one pass over the lines: DataFusion computes a CTE again at each
-- reference, and a UNION of two selections from `lines` read the claims and their diagnoses
-- twice. An inpatient line (the only kind of (b)) is grouped per claim, its date the earliest
-- admission; another line per claim and service date. The two never share a group.
qualifying AS (
  SELECT member_id, claim_id, claim_type = 'inpatient' AS inpatient,
    CASE WHEN claim_type = 'inpatient' THEN NULL ELSE service_from END AS service_date,
    admission_date, coalesce(discharge_date, service_to) AS end_date, provider, sud_dx, overdose_dx,
    coalesce(in_value_set(ndc, 'aud_medication')
      OR in_value_set(procedure_code, 'aud_medication_procedure'), false) AS aud_medication,
    coalesce(in_value_set(ndc, 'oud_medication')
      OR in_value_set(procedure_code, 'oud_medication_procedure'), false) AS oud_medication,
    coalesce(in_value_set(ndc, 'long_acting_medication')
      OR in_value_set(procedure_code, 'long_acting_procedure'), false) AS long_acting,
    CASE WHEN claim_type = 'inpatient' THEN 'inpatient'
      WHEN in_value_set(ndc, 'mat_ndc') OR in_value_set(procedure_code, 'mat_procedure') THEN 'medication'
      ELSE 'visit' END AS kind,
    -- Evaluated on the kept rows only: a lab line that no other route keeps.
    claim_type IN ('outpatient', 'professional') AND coalesce(place_of_service = '81', false)
      AND NOT coalesce(((sud_dx OR overdose_dx)
          AND in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit'))
        OR in_value_set(procedure_code, 'sud_service', 'mat_procedure'), false) AS counseling_lab
  FROM lines
  -- The rarest test first in each branch: an AND tests its right side only on the rows its
  -- left side keeps when they are few, and every line of the year is tested (tested in the
  -- natural order, the code lists took 1.1 s per million lines). Where a visit's procedure code
  -- is in a list, it is not null, so it is compared without coalesce.
  WHERE (claim_type = 'pharmacy' AND in_value_set(ndc, 'mat_ndc'))
    OR ((((sud_dx OR overdose_dx)
          AND in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit'))
        OR in_value_set(procedure_code, 'sud_service', 'mat_procedure'))
      AND claim_type IN ('outpatient', 'professional')
      AND procedure_code <> 'S0281'
      AND (revenue_code IS NULL OR NOT in_value_set(revenue_code, 'ed_revenue'))
      AND NOT in_value_set(procedure_code, 'ed_procedure'))
    OR (sud_dx AND claim_type = 'inpatient' AND admission_date IS NOT NULL)
    OR (counseling_dx AND claim_type IN ('outpatient', 'professional')
      AND (procedure_code IS NULL OR (procedure_code <> 'S0281'
        AND NOT in_value_set(procedure_code, 'ed_procedure')))
      AND (revenue_code IS NULL OR NOT in_value_set(revenue_code, 'ed_revenue')))
),
per_claim AS (
  SELECT member_id, claim_id,
    CASE WHEN inpatient THEN min(admission_date) ELSE service_date END AS treatment_date,
    CASE WHEN inpatient THEN max(end_date) ELSE service_date END AS end_date,
    min(provider) AS provider,
    min(kind) AS kind, bool_or(sud_dx) AS sud_dx, bool_or(overdose_dx) AS overdose_dx,
    bool_or(aud_medication) AS aud_medication, bool_or(oud_medication) AS oud_medication,
    bool_or(long_acting) AS long_acting, bool_and(counseling_lab) AS counseling_lab
  FROM qualifying
  GROUP BY member_id, claim_id, inpatient, service_date
)
SELECT member_id, treatment_date, max(end_date) AS end_date, claim_id AS treatment_id,
  min(kind) AS kind, bool_or(sud_dx) AS sud_dx, bool_or(overdose_dx) AS overdose_dx,
  min(provider) AS provider,
  bool_or(aud_medication) AS alcohol_medication, bool_or(oud_medication) AS opioid_medication,
  bool_or(long_acting) AS long_acting, bool_and(counseling_lab) AS counseling_lab,
  CASE WHEN min(kind) = 'medication' THEN concat('medication ', claim_id) ELSE min(provider) END
    AS event_provider,
  claim_id AS source_id
FROM per_claim
GROUP BY member_id, treatment_date, claim_id
