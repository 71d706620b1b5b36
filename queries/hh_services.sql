-- Health Home services: one row per HH contact (reached or not) and one per final S0281 claim
-- line, the monthly HH service billing code. A billed S0281 counts as a service that reached the
-- member, since the partner may bill it only when one was delivered that month.
SELECT member_id, contact_date AS service_date, hhp_id, service, mode, reached,
  'contact' AS source, contact_id AS source_id
FROM contacts
UNION ALL
SELECT member_id, service_from AS service_date, CAST(NULL AS VARCHAR) AS hhp_id,
  'billed_s0281' AS service, CAST(NULL AS VARCHAR) AS mode, true AS reached,
  'claim' AS source, claim_id AS source_id
FROM claims_final
WHERE procedure_code = 'S0281'
