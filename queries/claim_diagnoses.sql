-- Diagnoses of final claims: one row per claim and diagnosis (principal first, position 1, then
-- other_dx in order), with the claim's dates and setting. Pharmacy lines carry no diagnosis, and
-- the monthly Health Home payment (S0281) is left out: its diagnosis only names why the member
-- is in the programme, it is not a visit.
--
-- A claim's lines normally repeat its diagnoses. Each line's diagnoses are listed first and then
-- merged per claim and diagnosis (dates from the lines that carry it, its first position), so a
-- claim whose lines differ has every diagnosis any line names. Grouping by the diagnosis, not
-- only by the claim, lets a query that asks for some diagnoses (a value set) have them picked
-- before the merge, so it never merges the diagnoses it does not ask for.
WITH line_dx AS (
  SELECT member_id, claim_id, claim_type, service_from, service_to, admission_date, discharge_date,
    unnest(CASE WHEN other_dx IS NULL THEN make_array(principal_dx)
      ELSE array_prepend(principal_dx, other_dx) END) AS dx,
    unnest(range(CAST(1 AS BIGINT), CAST(CASE WHEN other_dx IS NULL THEN 2 ELSE array_length(other_dx) + 2 END AS BIGINT))) AS position
  FROM claims_final
  WHERE claim_type <> 'pharmacy'
    AND (procedure_code IS NULL OR procedure_code <> 'S0281')
)
SELECT member_id, claim_id, claim_type,
  min(service_from) AS service_from, max(service_to) AS service_to,
  min(admission_date) AS admission_date, max(discharge_date) AS discharge_date,
  dx, CAST(min(position) AS INT) AS position, claim_id AS source_id
FROM line_dx
WHERE dx IS NOT NULL
GROUP BY member_id, claim_id, claim_type, dx
