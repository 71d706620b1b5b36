-- Health Home assignments: one row per health_home enrolment span, dated at its start (the
-- member's assignment to a partner, or a change of partner), with the partner, population and
-- whether the member opted out at the end of the span.
SELECT
  member_id || ':' || to_char(start_date, '%Y-%m-%d') AS assignment_id,
  member_id,
  start_date AS assignment_date,
  end_date,
  mco_id,
  hhp_id,
  population,
  coalesce(opted_out, false) AS opted_out,
  member_id || ':' || to_char(start_date, '%Y-%m-%d') AS source_id
FROM enrollment
WHERE span_type = 'health_home'
