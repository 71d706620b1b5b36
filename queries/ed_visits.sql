-- Emergency department visits: one row per member and date with an ED service on a final
-- outpatient or professional claim (several ED claims or lines on one date make one visit).
-- Flags let each measure apply its own rules: whether the visit led to an inpatient admission
-- the same or the next day, and whether an ED claim that day had a mental-health,
-- chemical-dependency or intentional self-harm principal diagnosis, or an overdose diagnosis in
-- any position (HEDIS FUA). source_id (the day's first ED claim) identifies the visit.
WITH ed_lines AS (
  SELECT member_id, service_from AS visit_date, claim_id, principal_dx
  FROM claims_final
  WHERE claim_type IN ('outpatient', 'professional')
    AND (in_value_set(revenue_code, 'ed_revenue')
         OR in_value_set(procedure_code, 'ed_procedure'))
),
overdoses AS (
  SELECT DISTINCT claim_id FROM claim_diagnoses WHERE in_value_set(dx, 'overdose_dx')
),
admissions AS (
  SELECT DISTINCT member_id, admission_date
  FROM claims_final
  WHERE claim_type = 'inpatient' AND admission_date IS NOT NULL
)
SELECT
  e.member_id,
  e.visit_date,
  min(e.claim_id) AS claim_id,
  count(DISTINCT e.claim_id) AS claims,
  coalesce(bool_or(in_value_set(e.principal_dx, 'mental_illness_dx')), false) AS mental_health,
  coalesce(bool_or(in_value_set(e.principal_dx, 'chemical_dependency_dx')), false) AS chemical_dependency,
  coalesce(bool_or(in_value_set(e.principal_dx, 'self_harm_dx')), false) AS self_harm,
  coalesce(bool_or(o.claim_id IS NOT NULL), false) AS overdose,
  bool_or(a.member_id IS NOT NULL) AS led_to_admission,
  min(e.claim_id) AS source_id
FROM ed_lines e
LEFT JOIN overdoses o ON o.claim_id = e.claim_id
LEFT JOIN admissions a
  ON a.member_id = e.member_id
  AND a.admission_date >= e.visit_date
  AND a.admission_date <= e.visit_date + INTERVAL '1 day'
GROUP BY e.member_id, e.visit_date
