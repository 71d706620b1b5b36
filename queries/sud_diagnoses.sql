-- Substance-use diagnoses, one row per member and claim with an alcohol, opioid or other-drug
-- diagnosis in any position (nicotine, F17, is not one): the candidates for a new SUD episode
-- (IET-HH) and the negative diagnosis history. The episode date is the service date, or the
-- discharge date of an inpatient claim (the HEDIS reading); flags name the cohorts it opens.
--
-- For HEDIS IET's rules:
-- - `visit`: the claim is one of the specification's episode types - an inpatient claim, an ED
--   visit, or an outpatient or professional visit or service (office, behavioural-health, SUD
--   service or opioid-treatment codes, clinic revenue codes), not a laboratory claim (place of service 81). Other
--   claims (a lab test, an ambulance ride) carry history but open no episode.
-- - A visit followed by an inpatient admission the same or the next day "results in" the stay,
--   and the stay is the episode: the row takes the stay's discharge as its episode date
--   (`inpatient`, `resulted_in_stay`), keeps its own diagnoses for the cohorts, and its
--   `admission_date` is the visit's date, the earliest date of service, where the negative
--   history is measured from. `admission_date` is null for other outpatient rows.
-- - `ed` marks an emergency-department claim (the negative history ignores them); `provider`
--   is the rendering, else billing, NPI (a same-day initiation needs another provider).
-- - `cutoff_date`: November 27 of the measurement year the episode belongs to (intake runs
--   November 15 to November 14): an episode whose initiation stay ends after it is removed.
WITH dx AS (
  SELECT member_id, claim_id, claim_type = 'inpatient' AS inpatient,
    CASE WHEN claim_type = 'inpatient' THEN coalesce(max(discharge_date), max(service_to))
      ELSE min(service_from) END AS service_date,
    CASE WHEN claim_type = 'inpatient' THEN min(admission_date) END AS admission_date,
    bool_or(in_value_set(dx, 'alcohol_dx')) AS alcohol,
    bool_or(in_value_set(dx, 'opioid_dx')) AS opioid,
    bool_or(in_value_set(dx, 'other_drug_dx')) AS other_drug,
    bool_or(ed) AS ed, bool_or(visit) AS visit, min(provider) AS provider
  FROM claim_substance_dx
  WHERE in_value_set(dx, 'alcohol_dx', 'opioid_dx', 'other_drug_dx')
  GROUP BY member_id, claim_id, claim_type
),
rows AS (
  SELECT member_id, claim_id, inpatient, service_date, admission_date, alcohol, opioid,
    other_drug, coalesce(ed, false) AS ed, inpatient OR coalesce(visit, false) AS visit, provider
  FROM dx
),
-- The stay a visit resulted in: the first admission on the visit's date or the next day.
resulted AS (
  SELECT r.claim_id, min(s.admission_date) AS stay_admission,
    min(s.discharge_date) AS stay_discharge
  FROM rows r JOIN inpatient_stays s
    ON s.member_id = r.member_id
    AND s.admission_date >= r.service_date
    AND s.admission_date <= r.service_date + INTERVAL '1 day'
  WHERE NOT r.inpatient AND r.visit AND s.discharge_date IS NOT NULL
  GROUP BY r.claim_id
)
SELECT r.member_id, r.claim_id AS episode_id,
  coalesce(x.stay_discharge, r.service_date) AS episode_date,
  r.inpatient OR x.claim_id IS NOT NULL AS inpatient,
  x.claim_id IS NOT NULL AS resulted_in_stay,
  CASE WHEN x.claim_id IS NOT NULL THEN r.service_date ELSE r.admission_date END AS admission_date,
  r.ed, r.visit, r.provider, r.alcohol, r.opioid, r.other_drug,
  make_date(CAST(date_part('year', coalesce(x.stay_discharge, r.service_date) + INTERVAL '47 days') AS INT), 11, 27)
    AS cutoff_date,
  r.claim_id AS source_id
FROM rows r LEFT JOIN resulted x ON x.claim_id = r.claim_id
