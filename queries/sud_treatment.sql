-- Substance-use treatment: one row per member, date and claim of (a) an outpatient or
-- professional service with an SUD diagnosis in any position or an SUD service code (not an ED
-- visit, not the S0281 payment), (b) an inpatient admission with an SUD diagnosis, dated on
-- admission, or (c) medication treatment: an SUD medication dispensed (NDC) or administered
-- (HCPCS). `kind` is visit, inpatient or medication, for measures that count them apart.
WITH sud_claims AS (
  SELECT DISTINCT claim_id FROM claim_diagnoses
  WHERE in_value_set(dx, 'alcohol_dx') OR in_value_set(dx, 'opioid_dx') OR in_value_set(dx, 'other_drug_dx')
),
lines AS (
  SELECT c.member_id, c.claim_id, c.claim_type, c.service_from, c.admission_date,
    c.procedure_code, c.revenue_code, c.ndc, s.claim_id IS NOT NULL AS sud_dx
  FROM claims_final c LEFT JOIN sud_claims s ON s.claim_id = c.claim_id
)
SELECT member_id, treatment_date, claim_id AS treatment_id, min(kind) AS kind, claim_id AS source_id
FROM (
  SELECT member_id, claim_id, service_from AS treatment_date,
    CASE WHEN in_value_set(ndc, 'mat_ndc') OR in_value_set(procedure_code, 'mat_procedure') THEN 'medication' ELSE 'visit' END AS kind
  FROM lines
  WHERE (claim_type = 'pharmacy' AND in_value_set(ndc, 'mat_ndc'))
    OR (claim_type IN ('outpatient', 'professional')
      AND coalesce(procedure_code, '') <> 'S0281'
      AND NOT coalesce(in_value_set(revenue_code, 'ed_revenue'), false)
      AND NOT coalesce(in_value_set(procedure_code, 'ed_procedure'), false)
      AND ((sud_dx AND (in_value_set(procedure_code, 'outpatient_visit') OR in_value_set(procedure_code, 'mental_health_visit')))
        OR in_value_set(procedure_code, 'sud_service') OR in_value_set(procedure_code, 'mat_procedure')))
  UNION ALL
  SELECT member_id, claim_id, min(admission_date) AS treatment_date, 'inpatient' AS kind
  FROM lines
  WHERE claim_type = 'inpatient' AND sud_dx AND admission_date IS NOT NULL
  GROUP BY member_id, claim_id
)
GROUP BY member_id, treatment_date, claim_id
