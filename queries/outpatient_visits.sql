-- Outpatient and mental-health visits: one row per member, date and final claim with an office
-- visit or a behavioural-health service on an outpatient or professional claim. Flags tell a
-- mental-health visit (a mental-health service, or a visit with a mental-health practitioner or
-- a mental-illness principal diagnosis) from other visits, for follow-up measures.
--
-- The diagnosis flags let a measure state HEDIS's diagnosis rules itself: `mental_illness_dx`
-- and `self_harm_dx` are the principal diagnosis; `mental_illness_any_dx` is a mental-illness
-- diagnosis in any position (principal or other_dx).
SELECT
  member_id,
  service_from AS visit_date,
  claim_id AS source_id,
  min(procedure_code) AS procedure_code,
  coalesce(bool_or(in_value_set(procedure_code, 'mental_health_visit')), false) AS mental_health_service,
  coalesce(bool_or(in_value_set(provider_taxonomy, 'mental_health_practitioner')), false) AS mental_health_practitioner,
  coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')), false) AS mental_illness_dx,
  coalesce(bool_or(in_value_set(principal_dx, 'chemical_dependency_dx')), false) AS chemical_dependency_dx,
  coalesce(bool_or(in_value_set(principal_dx, 'self_harm_dx')), false) AS self_harm_dx,
  coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')
    OR any_in_value_set(other_dx, 'mental_illness_dx')), false) AS mental_illness_any_dx,
  coalesce(bool_or(in_value_set(procedure_code, 'mental_health_visit')), false)
    OR coalesce(bool_or(in_value_set(provider_taxonomy, 'mental_health_practitioner')), false)
    OR coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')), false) AS mental_health_visit
FROM claims_final
WHERE claim_type IN ('outpatient', 'professional')
  AND in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit')
GROUP BY member_id, service_from, claim_id
