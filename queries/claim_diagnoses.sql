-- Diagnoses of final claims: one row per claim and diagnosis (principal first, position 1, then
-- other_dx in order), with the claim's dates and setting. Pharmacy lines carry no diagnosis, and
-- the monthly Health Home payment (S0281) is left out: its diagnosis only names why the member
-- is in the programme, it is not a visit.
--
-- A claim's lines normally repeat its diagnoses; where they differ, the largest list is taken.
-- Lists are compared as their codes joined by chr(1), which sorts below any character of a code,
-- so strings order as the lists do: a string maximum is computed for all claims at once, where a
-- maximum of lists is computed claim by claim (it made this the slowest step of a run). A null
-- code in a list keeps its position, as an empty string, and is then dropped like a null.
WITH claim_dx AS (
  SELECT member_id, claim_id, claim_type,
    min(service_from) AS service_from, max(service_to) AS service_to,
    min(admission_date) AS admission_date, max(discharge_date) AS discharge_date,
    max(principal_dx) AS principal_dx,
    max(array_to_string(other_dx, chr(1), '')) AS other_dx
  FROM claims_final
  WHERE claim_type <> 'pharmacy'
    AND (procedure_code IS NULL OR procedure_code <> 'S0281')
  GROUP BY member_id, claim_id, claim_type
),
listed AS (
  SELECT member_id, claim_id, claim_type, service_from, service_to, admission_date, discharge_date,
    unnest(CASE WHEN coalesce(other_dx, '') = '' THEN make_array(principal_dx)
      ELSE array_prepend(principal_dx, string_to_array(other_dx, chr(1))) END) AS dx,
    unnest(range(CAST(1 AS BIGINT), CAST(CASE WHEN coalesce(other_dx, '') = '' THEN 2
      ELSE array_length(string_to_array(other_dx, chr(1))) + 2 END AS BIGINT))) AS position
  FROM claim_dx
)
SELECT member_id, claim_id, claim_type, service_from, service_to, admission_date, discharge_date,
  dx, CAST(position AS INT) AS position, claim_id AS source_id
FROM listed
WHERE dx IS NOT NULL AND dx <> ''
