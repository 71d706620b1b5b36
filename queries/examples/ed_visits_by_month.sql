-- ED visits per month and MCO (the MCO of the member's enrolment span on the visit day), with
-- how many carried a mental-health principal diagnosis and how many led to an admission.
SELECT
  CAST(date_trunc('month', v.visit_date) AS DATE) AS month,
  e.mco_id,
  count(*) AS ed_visits,
  sum(CASE WHEN v.mental_health THEN 1 ELSE 0 END) AS mental_health,
  sum(CASE WHEN v.led_to_admission THEN 1 ELSE 0 END) AS admitted
FROM ed_visits v
JOIN medicaid_enrollment e
  ON e.member_id = v.member_id AND v.visit_date BETWEEN e.start_date AND e.end_date
GROUP BY 1, 2
ORDER BY 1, 2
