-- Substance-use and overdose diagnoses of final claims: the rows of claim_diagnoses whose
-- diagnosis is in the alcohol, opioid, other-drug or overdose value sets (one row per claim and
-- such diagnosis, with the claim's dates and setting).
--
-- Three blocks ask for these diagnoses (sud_diagnoses, sud_treatment and ed_visits' overdoses),
-- and each read of claim_diagnoses lists every diagnosis of every claim line again: at a million
-- members that was a third of the claim-based blocks' time. They are picked here once per run,
-- over every member, and kept in memory (a few percent of the diagnoses); a pass reads the rows
-- of its own members.
--
-- claim_diagnoses' query over the claim lines that name such a diagnosis, principal or other
-- (`any_in_value_set` tests a line's list of other diagnoses in place, each element once against
-- the four sets): listing every diagnosis of every line to keep a few percent was most of this
-- block's time, and a test per set read every element four times (7.2 s of filter at 1M).
--
-- Each row also says, from the lines that name the diagnosis, whether the claim is an ED visit
-- (`ed`), whether it is a visit of the kinds HEDIS IET opens an episode with (`visit`: an office,
-- behavioural-health, SUD-service, opioid-treatment or ED code, a clinic revenue code, or a
-- substance-use counseling and surveillance diagnosis, not at a laboratory, place of service
-- 81), and its provider (rendering, else billing, NPI): read here, in the one pass, so that
-- sud_diagnoses need not read the claim lines again. Substance-use counseling and surveillance
-- diagnoses (`sud_counseling_dx`, HEDIS FUA's and IET's "Substance Abuse Counseling and
-- Surveillance" route) are listed too.
-- hhq: keep
WITH lines AS (
  SELECT member_id, claim_id, claim_type, service_from, service_to, admission_date,
    discharge_date, principal_dx, other_dx,
    coalesce(in_value_set(revenue_code, 'ed_revenue')
      OR in_value_set(procedure_code, 'ed_procedure'), false) AS ed,
    coalesce((in_value_set(procedure_code, 'outpatient_visit', 'mental_health_visit',
        'sud_service', 'mat_procedure', 'ed_procedure')
      OR in_value_set(revenue_code, 'ed_revenue', 'outpatient_revenue')
      OR in_value_set(principal_dx, 'sud_counseling_dx')
      OR any_in_value_set(other_dx, 'sud_counseling_dx'))
      AND (place_of_service IS NULL OR place_of_service <> '81'), false) AS visit,
    coalesce(rendering_npi, billing_npi) AS provider
  FROM claims_final
  WHERE claim_type <> 'pharmacy'
    AND (procedure_code IS NULL OR procedure_code <> 'S0281')
    AND (in_value_set(principal_dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx', 'overdose_dx',
        'sud_counseling_dx')
      OR any_in_value_set(other_dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx', 'overdose_dx',
        'sud_counseling_dx'))
),
line_dx AS (
  SELECT member_id, claim_id, claim_type, service_from, service_to, admission_date, discharge_date,
    ed, visit, provider,
    unnest(CASE WHEN other_dx IS NULL THEN make_array(principal_dx)
      ELSE array_prepend(principal_dx, other_dx) END) AS dx,
    unnest(range(CAST(1 AS BIGINT), CAST(CASE WHEN other_dx IS NULL THEN 2 ELSE array_length(other_dx) + 2 END AS BIGINT))) AS position
  FROM lines
)
SELECT member_id, claim_id, claim_type,
  min(service_from) AS service_from, max(service_to) AS service_to,
  min(admission_date) AS admission_date, max(discharge_date) AS discharge_date,
  dx, CAST(min(position) AS INT) AS position,
  bool_or(ed) AS ed, bool_or(visit) AS visit, min(provider) AS provider,
  claim_id AS source_id
FROM line_dx
WHERE dx IS NOT NULL
  AND in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx', 'overdose_dx',
    'sud_counseling_dx')
GROUP BY member_id, claim_id, claim_type, dx
