-- Hospice: the first and last dates of service of each final claim for hospice care (a hospice
-- revenue code, procedure code or type of bill, or the hospice place of service), one row per
-- member, claim and date. HEDIS's required exclusion "members in hospice or using hospice
-- services any time during the measurement year" is a row dated in the period: a claim counts
-- when it begins or ends in the year (a single claim spanning a whole year and more would be
-- missed; hospice is billed by the month).
WITH hospice_claims AS (
  SELECT member_id, claim_id, min(service_from) AS first_date, max(service_to) AS last_date
  FROM claims_final
  WHERE claim_type <> 'pharmacy'
    AND (in_value_set(revenue_code, 'hospice_revenue')
      OR in_value_set(procedure_code, 'hospice_procedure')
      OR in_value_set(type_of_bill, 'hospice_bill_type')
      OR in_value_set(place_of_service, 'hospice_pos'))
  GROUP BY member_id, claim_id
)
SELECT member_id, first_date AS hospice_date, claim_id AS source_id FROM hospice_claims
UNION ALL
SELECT member_id, last_date AS hospice_date, claim_id AS source_id FROM hospice_claims
WHERE last_date <> first_date
