-- Substance-use diagnoses, one row per member and claim with an alcohol, opioid or other-drug
-- diagnosis in any position (nicotine, F17, is not one): the candidates for a new SUD episode
-- (IET-HH) and the negative diagnosis history. The episode date is the service date, or the
-- discharge date of an inpatient claim (the HEDIS reading); flags name the cohorts it opens.
SELECT
  member_id,
  claim_id AS episode_id,
  CASE WHEN claim_type = 'inpatient' THEN coalesce(discharge_date, service_to) ELSE service_from END AS episode_date,
  claim_type = 'inpatient' AS inpatient,
  bool_or(in_value_set(dx, 'alcohol_dx')) AS alcohol,
  bool_or(in_value_set(dx, 'opioid_dx')) AS opioid,
  bool_or(in_value_set(dx, 'other_drug_dx')) AS other_drug,
  claim_id AS source_id
FROM claim_substance_dx
WHERE in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx')
GROUP BY member_id, claim_id, claim_type, discharge_date, service_to, service_from
