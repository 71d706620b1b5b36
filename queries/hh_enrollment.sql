-- Health Home enrolment: one row per interval in which a member was at once assigned to a
-- Health Home partner (a health_home span) and Medicaid-eligible (a medicaid span), and alive.
-- Open spans run to 9999-12-31. The MCO is the health-home span's, else the eligibility span's.
SELECT * FROM (
  SELECT
    h.member_id,
    greatest(h.start_date, m.start_date) AS start_date,
    least(
      coalesce(h.end_date, DATE '9999-12-31'),
      coalesce(m.end_date, DATE '9999-12-31'),
      coalesce(p.death_date, DATE '9999-12-31')
    ) AS end_date,
    coalesce(h.mco_id, m.mco_id) AS mco_id,
    h.hhp_id,
    h.population,
    h.opted_out
  FROM enrollment h
  JOIN enrollment m
    ON m.member_id = h.member_id
    AND m.span_type = 'medicaid'
    AND m.start_date <= coalesce(h.end_date, DATE '9999-12-31')
    AND coalesce(m.end_date, DATE '9999-12-31') >= h.start_date
  LEFT JOIN members p ON p.member_id = h.member_id
  WHERE h.span_type = 'health_home'
) spans
WHERE start_date <= end_date
