-- Substance-use diagnoses, one row per member and claim with an alcohol, opioid or other-drug
-- diagnosis in any position (nicotine, F17, is not one): the candidates for a new SUD episode
-- (IET-HH) and the negative diagnosis history. The episode date is the service date, or the
-- discharge date of an inpatient claim (the HEDIS reading); flags name the cohorts it opens.
-- `admission_date` (inpatient claims only) is where HEDIS measures an inpatient episode's
-- negative history from; `ed` marks an emergency-department claim (the history ignores them);
-- `provider` is the rendering, else billing, NPI (a same-day initiation needs another provider).
WITH dx AS (
  SELECT member_id, claim_id, claim_type = 'inpatient' AS inpatient,
    CASE WHEN claim_type = 'inpatient' THEN coalesce(max(discharge_date), max(service_to))
      ELSE min(service_from) END AS episode_date,
    CASE WHEN claim_type = 'inpatient' THEN min(admission_date) END AS admission_date,
    bool_or(in_value_set(dx, 'alcohol_dx')) AS alcohol,
    bool_or(in_value_set(dx, 'opioid_dx')) AS opioid,
    bool_or(in_value_set(dx, 'other_drug_dx')) AS other_drug
  FROM claim_substance_dx
  WHERE in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx')
  GROUP BY member_id, claim_id, claim_type
),
claim_lines AS (
  SELECT claim_id,
    coalesce(bool_or(in_value_set(revenue_code, 'ed_revenue')
      OR in_value_set(procedure_code, 'ed_procedure')), false) AS ed,
    min(coalesce(rendering_npi, billing_npi)) AS provider
  FROM claims_final
  WHERE claim_id IN (SELECT claim_id FROM dx)
  GROUP BY claim_id
)
SELECT d.member_id, d.claim_id AS episode_id, d.episode_date, d.inpatient, d.admission_date,
  coalesce(l.ed, false) AS ed, l.provider, d.alcohol, d.opioid, d.other_drug,
  d.claim_id AS source_id
FROM dx d LEFT JOIN claim_lines l ON l.claim_id = d.claim_id
