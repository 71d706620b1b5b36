-- Substance-use treatment: one row per member, date and claim of (a) an outpatient or
-- professional service with an SUD diagnosis in any position or an SUD service code (not an ED
-- visit, not the S0281 payment), (b) an inpatient admission with an SUD diagnosis, dated on
-- admission, or (c) medication treatment: an SUD medication dispensed (NDC) or administered
-- (HCPCS). `kind` is visit, inpatient or medication, for measures that count them apart.
WITH sud_claims AS (
  SELECT DISTINCT claim_id FROM claim_substance_dx
  WHERE in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx')
),
lines AS (
  SELECT c.member_id, c.claim_id, c.claim_type, c.service_from, c.admission_date,
    c.procedure_code, c.revenue_code, c.ndc, s.claim_id IS NOT NULL AS sud_dx
  FROM claims_final c LEFT JOIN sud_claims s ON s.claim_id = c.claim_id
),
-- Both kinds of row come from one pass over the lines: DataFusion computes a CTE again at each
-- reference, and a UNION of two selections from `lines` read the claims and their diagnoses
-- twice. An inpatient line (the only kind of (b)) is grouped per claim, its date the earliest
-- admission; another line per claim and service date. The two never share a group.
qualifying AS (
  SELECT member_id, claim_id, claim_type = 'inpatient' AS inpatient,
    CASE WHEN claim_type = 'inpatient' THEN NULL ELSE service_from END AS service_date,
    admission_date,
    CASE WHEN claim_type = 'inpatient' THEN 'inpatient'
      WHEN in_value_set(ndc, 'mat_ndc') OR in_value_set(procedure_code, 'mat_procedure') THEN 'medication'
      ELSE 'visit' END AS kind
  FROM lines
  -- The rarest test first in each branch: an AND tests its right side only on the rows its
  -- left side keeps when they are few, and every line of the year is tested (tested in the
  -- natural order, the code lists took 1.1 s per million lines). Where a visit's procedure code
  -- is in a list, it is not null, so it is compared without coalesce.
  WHERE (claim_type = 'pharmacy' AND in_value_set(ndc, 'mat_ndc'))
    OR (((sud_dx AND in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit'))
        OR in_value_set(procedure_code, 'sud_service', 'mat_procedure'))
      AND claim_type IN ('outpatient', 'professional')
      AND procedure_code <> 'S0281'
      AND (revenue_code IS NULL OR NOT in_value_set(revenue_code, 'ed_revenue'))
      AND NOT in_value_set(procedure_code, 'ed_procedure'))
    OR (sud_dx AND claim_type = 'inpatient' AND admission_date IS NOT NULL)
),
per_claim AS (
  SELECT member_id, claim_id,
    CASE WHEN inpatient THEN min(admission_date) ELSE service_date END AS treatment_date,
    min(kind) AS kind
  FROM qualifying
  GROUP BY member_id, claim_id, inpatient, service_date
)
SELECT member_id, treatment_date, claim_id AS treatment_id, min(kind) AS kind, claim_id AS source_id
FROM per_claim
GROUP BY member_id, treatment_date, claim_id
