-- Health Home contacts by partner, core service and mode, and the share that reached the member.
SELECT hhp_id, service, mode, count(*) AS contacts,
  round(100.0 * sum(CASE WHEN reached THEN 1 ELSE 0 END) / count(*), 1) AS reached_percent
FROM contacts
GROUP BY hhp_id, service, mode
ORDER BY hhp_id, service, mode
