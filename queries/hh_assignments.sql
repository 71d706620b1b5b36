-- Health Home assignments: one row per health_home enrolment span, dated at its start (the
-- member's assignment to a partner, or a change of partner), with the partner, population and
-- whether the member opted out at the end of the span. `new_partner` says whether the span is
-- an assignment to a partner the member was not with the day before: false for a span that
-- continues the previous one with the same partner (a change of MCO or population, or a span
-- split in the data), true for a first assignment, a change of partner, or a return after a gap.
WITH spans AS (
  SELECT member_id, start_date, end_date, mco_id, hhp_id, population, opted_out,
    lag(hhp_id) OVER (PARTITION BY member_id ORDER BY start_date, end_date) AS previous_hhp,
    lag(coalesce(end_date, DATE '9999-12-31'))
      OVER (PARTITION BY member_id ORDER BY start_date, end_date) AS previous_end
  FROM enrollment
  WHERE span_type = 'health_home'
)
SELECT
  member_id || ':' || to_char(start_date, '%Y-%m-%d') AS assignment_id,
  member_id,
  start_date AS assignment_date,
  end_date,
  mco_id,
  hhp_id,
  population,
  coalesce(opted_out, false) AS opted_out,
  NOT (previous_end IS NOT NULL AND previous_end >= start_date - INTERVAL '1 day'
    AND previous_hhp IS NOT DISTINCT FROM hhp_id) AS new_partner,
  member_id || ':' || to_char(start_date, '%Y-%m-%d') AS source_id
FROM spans
