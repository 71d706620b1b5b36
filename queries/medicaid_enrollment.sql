-- Medicaid eligibility: one row per eligibility span, clipped at death; open spans run to
-- 9999-12-31. The same columns as hh_enrollment, so a measure can count either enrolment;
-- partner and population are null here.
SELECT * FROM (
  SELECT
    m.member_id,
    m.start_date,
    least(coalesce(m.end_date, DATE '9999-12-31'), coalesce(p.death_date, DATE '9999-12-31')) AS end_date,
    m.mco_id,
    CAST(NULL AS VARCHAR) AS hhp_id,
    CAST(NULL AS VARCHAR) AS population
  FROM enrollment m
  LEFT JOIN members p ON p.member_id = m.member_id
  WHERE m.span_type = 'medicaid'
) spans
WHERE start_date <= end_date
