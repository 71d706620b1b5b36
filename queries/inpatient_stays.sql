-- Inpatient stays: one row per stay from final inpatient claims, with direct transfers merged.
-- A claim admitted on or the day after the discharge of an earlier claim of the same acuity
-- (acute or nonacute) continues that stay, which then ends at the last discharge; its id is
-- the first claim's, its discharge status and principal diagnosis the last claim's, and
-- `principal_dxs` lists every merged claim's principal diagnosis (HEDIS PCR judges its exclusions
-- on the original stay and every transfer stay). Nonacute
-- stays (skilled nursing, rehabilitation, residential, by type of bill or revenue code) are
-- kept apart so a measure can tell a transfer to a nonacute setting. length_of_stay counts a
-- same-day stay as one day. Long-term-care claims are nonacute stays too; `institutional` marks
-- stays in a nursing or intermediate care facility (AIF-HH), by type of bill or claim type.
-- `self_harm_any_dx`: an intentional self-harm diagnosis in any position on any merged claim
-- (HEDIS MY2025 FUH); `psychiatric_residential`: a psychiatric residential treatment stay (a
-- residential psychiatric revenue code, or place of service 56), which MY2025 FUH and FUM no
-- longer count as a nonacute admission.
WITH lines AS (
  SELECT member_id, claim_id, admission_date,
    coalesce(discharge_date, service_to) AS discharge_date,
    discharge_date IS NULL AS still_admitted,
    discharge_status, principal_dx, other_dx, type_of_bill, revenue_code, place_of_service,
    claim_type
  FROM claims_final
  WHERE claim_type IN ('inpatient', 'long_term_care') AND admission_date IS NOT NULL
),
claims AS (
  SELECT member_id, claim_id,
    min(admission_date) AS admission_date,
    max(discharge_date) AS discharge_date,
    bool_or(still_admitted) AS still_admitted,
    max(discharge_status) AS discharge_status,
    max(principal_dx) AS principal_dx,
    NOT coalesce(bool_or(in_value_set(type_of_bill, 'nonacute_bill_type')
      OR in_value_set(revenue_code, 'nonacute_revenue')
      OR claim_type = 'long_term_care'), false) AS acute,
    coalesce(bool_or(in_value_set(type_of_bill, 'institution_bill_type')
      OR claim_type = 'long_term_care'), false) AS institutional,
    coalesce(bool_or(in_value_set(revenue_code, 'psychiatric_revenue')), false) AS psych_revenue,
    coalesce(bool_or(in_value_set(principal_dx, 'self_harm_dx')
      OR any_in_value_set(other_dx, 'self_harm_dx')), false) AS self_harm_any,
    coalesce(bool_or(in_value_set(revenue_code, 'psychiatric_residential_revenue')
      OR in_value_set(place_of_service, 'psychiatric_residential_pos')), false) AS psych_residential
  FROM lines
  GROUP BY member_id, claim_id
),
ordered AS (
  SELECT *,
    max(discharge_date) OVER (PARTITION BY member_id, acute ORDER BY admission_date, claim_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_discharge
  FROM claims
),
numbered AS (
  SELECT *,
    sum(CASE WHEN previous_discharge IS NOT NULL
          AND admission_date <= previous_discharge + INTERVAL '1 day' THEN 0 ELSE 1 END)
      OVER (PARTITION BY member_id, acute ORDER BY admission_date, claim_id
        ROWS UNBOUNDED PRECEDING) AS stay_number
  FROM ordered
),
stays AS (
  SELECT
    first_value(claim_id ORDER BY admission_date, claim_id) AS stay_id,
    member_id,
    min(admission_date) AS admission_date,
    CASE WHEN bool_or(still_admitted) THEN NULL ELSE max(discharge_date) END AS discharge_date,
    last_value(discharge_status ORDER BY discharge_date, claim_id) AS discharge_status,
    last_value(principal_dx ORDER BY discharge_date, claim_id) AS principal_dx,
    array_agg(principal_dx ORDER BY admission_date, claim_id) AS principal_dxs,
    acute,
    bool_or(institutional) AS institutional,
    bool_or(psych_revenue) AS psych_revenue,
    bool_or(self_harm_any) AS self_harm_any_dx,
    bool_or(psych_residential) AS psychiatric_residential,
    count(*) AS claims,
    greatest(max(discharge_date) - min(admission_date), 1) AS length_of_stay
  FROM numbered
  GROUP BY member_id, acute, stay_number
)
SELECT stay_id, member_id, admission_date, discharge_date, discharge_status, principal_dx,
  principal_dxs, acute, institutional, self_harm_any_dx, psychiatric_residential,
  acute AND (psych_revenue OR coalesce(in_value_set(principal_dx, 'mental_illness_dx'), false)) AS psychiatric,
  claims, length_of_stay, stay_id AS source_id
FROM stays
