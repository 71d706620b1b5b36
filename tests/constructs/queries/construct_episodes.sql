-- Construct fixture (tests/constructs): one row per outpatient or inpatient final claim with a
-- substance-use principal diagnosis: the episode, dated on discharge for an inpatient claim
-- (else on service), with its admission date and its substance.
SELECT member_id, claim_id AS episode_id, claim_id AS source_id,
  CASE WHEN claim_type = 'inpatient' THEN coalesce(discharge_date, service_to) ELSE service_from END AS episode_date,
  CASE WHEN claim_type = 'inpatient' THEN admission_date END AS admission_date,
  CASE WHEN principal_dx LIKE 'F10%' THEN 'alcohol' WHEN principal_dx LIKE 'F11%' THEN 'opioid'
    ELSE 'other' END AS substance
FROM claims_final
WHERE principal_dx LIKE 'F1%' AND claim_type IN ('outpatient', 'inpatient')
GROUP BY member_id, claim_id, claim_type, discharge_date, service_to, service_from, admission_date, principal_dx
