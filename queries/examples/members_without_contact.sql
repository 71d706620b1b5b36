-- A care coordinator's worklist: members enrolled in a Health Home on the last day of the data
-- with no contact that reached them in the 60 days before it, longest without first.
WITH last_day AS (
  SELECT max(service_to) AS day FROM claims
),
enrolled AS (
  SELECT h.member_id, h.mco_id, h.hhp_id, h.population
  FROM hh_enrollment h, last_day d
  WHERE d.day BETWEEN h.start_date AND h.end_date
),
reached AS (
  SELECT member_id, max(service_date) AS last_reached
  FROM hh_services
  WHERE reached
  GROUP BY member_id
)
SELECT e.member_id, e.mco_id, e.hhp_id, e.population, r.last_reached,
  d.day - r.last_reached AS days_since
FROM enrolled e
CROSS JOIN last_day d
LEFT JOIN reached r ON r.member_id = e.member_id
WHERE r.last_reached IS NULL OR r.last_reached < d.day - INTERVAL '60 days'
ORDER BY r.last_reached NULLS FIRST, e.member_id
