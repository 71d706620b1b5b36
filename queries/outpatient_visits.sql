-- Outpatient and mental-health visits: one row per member, date and final claim with an office
-- visit or a behavioural-health service on an outpatient or professional claim. Flags tell a
-- mental-health visit (a mental-health service, or a visit with a mental-health practitioner or
-- a mental-illness principal diagnosis) from other visits, for follow-up measures.
SELECT
  member_id,
  service_from AS visit_date,
  claim_id AS source_id,
  min(procedure_code) AS procedure_code,
  coalesce(bool_or(in_value_set(procedure_code, 'mental_health_visit')), false) AS mental_health_service,
  coalesce(bool_or(in_value_set(provider_taxonomy, 'mental_health_practitioner')), false) AS mental_health_practitioner,
  coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')), false) AS mental_illness_dx,
  coalesce(bool_or(in_value_set(principal_dx, 'chemical_dependency_dx')), false) AS chemical_dependency_dx,
  coalesce(bool_or(in_value_set(procedure_code, 'mental_health_visit')), false)
    OR coalesce(bool_or(in_value_set(provider_taxonomy, 'mental_health_practitioner')), false)
    OR coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')), false) AS mental_health_visit
FROM claims_final
WHERE claim_type IN ('outpatient', 'professional')
  AND in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit')
GROUP BY member_id, service_from, claim_id
