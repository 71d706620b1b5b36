-- Emergency department visits: one row per member and date with an ED service on a final
-- outpatient or professional claim (several ED claims or lines on one date make one visit).
-- Flags let each measure apply its own rules: whether the visit led to an inpatient admission
-- the same or the next day, and whether an ED claim that day had a mental-health,
-- chemical-dependency or intentional self-harm principal diagnosis, or an overdose diagnosis in
-- any position (HEDIS FUA); `self_harm_any_dx`, intentional self-harm in any position (HEDIS
-- MY2025 FUM). source_id (the day's first ED claim) identifies the visit.
WITH ed_lines AS (
  SELECT member_id, service_from AS visit_date, claim_id, principal_dx, other_dx
  FROM claims_final
  WHERE claim_type IN ('outpatient', 'professional')
    AND (in_value_set(revenue_code, 'ed_revenue')
         OR in_value_set(procedure_code, 'ed_procedure'))
),
overdoses AS (
  SELECT DISTINCT claim_id FROM claim_substance_dx WHERE in_value_set(dx, 'overdose_dx')
),
admissions AS (
  SELECT DISTINCT member_id, admission_date
  FROM claims_final
  WHERE claim_type = 'inpatient' AND admission_date IS NOT NULL
),
-- Claims of a visit first, then the visit: `count(DISTINCT …)` would make DataFusion aggregate
-- visit by visit rather than all at once, a hundred times slower.
per_claim AS (
  SELECT
    e.member_id,
    e.visit_date,
    e.claim_id,
    bool_or(in_value_set(e.principal_dx, 'mental_illness_dx')) AS mental_health,
    bool_or(in_value_set(e.principal_dx, 'chemical_dependency_dx')) AS chemical_dependency,
    bool_or(in_value_set(e.principal_dx, 'self_harm_dx')) AS self_harm,
    bool_or(in_value_set(e.principal_dx, 'self_harm_dx')
      OR any_in_value_set(e.other_dx, 'self_harm_dx')) AS self_harm_any_dx,
    bool_or(o.claim_id IS NOT NULL) AS overdose,
    -- `admission_date`, not the join key, so that the column the join's range condition reads
    -- is read after it too: DataFusion 55's sort-merge join (under --memory-limit) panics when a
    -- projection leaves out a column its filter reads (apache/datafusion#24593).
    bool_or(a.admission_date IS NOT NULL) AS led_to_admission
  FROM ed_lines e
  LEFT JOIN overdoses o ON o.claim_id = e.claim_id
  LEFT JOIN admissions a
    ON a.member_id = e.member_id
    AND a.admission_date >= e.visit_date
    AND a.admission_date <= e.visit_date + INTERVAL '1 day'
  GROUP BY e.member_id, e.visit_date, e.claim_id
)
SELECT
  member_id,
  visit_date,
  min(claim_id) AS claim_id,
  count(*) AS claims,
  coalesce(bool_or(mental_health), false) AS mental_health,
  coalesce(bool_or(chemical_dependency), false) AS chemical_dependency,
  coalesce(bool_or(self_harm), false) AS self_harm,
  coalesce(bool_or(self_harm_any_dx), false) AS self_harm_any_dx,
  coalesce(bool_or(overdose), false) AS overdose,
  bool_or(led_to_admission) AS led_to_admission,
  min(claim_id) AS source_id
FROM per_claim
GROUP BY member_id, visit_date
