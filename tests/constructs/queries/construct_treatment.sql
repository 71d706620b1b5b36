-- Construct fixture (tests/constructs): one row per line of a final claim with a substance-use
-- diagnosis or an SUD medication, with its last day, its rendering provider and its substance.
SELECT member_id, claim_id AS source_id, service_from AS treatment_date,
  coalesce(discharge_date, service_to, service_from) AS end_date,
  rendering_npi AS provider, claim_type, procedure_code, ndc,
  CASE WHEN principal_dx LIKE 'F10%' THEN 'alcohol' WHEN principal_dx LIKE 'F11%' THEN 'opioid'
    ELSE 'other' END AS substance
FROM claims_final
WHERE principal_dx LIKE 'F1%' OR ndc IS NOT NULL
