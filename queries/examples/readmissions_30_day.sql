-- Acute inpatient stays followed by another acute admission of the same member within 30 days
-- of discharge, per partner of the member's Health Home span on the discharge day.
WITH acute AS (
  SELECT member_id, stay_id, admission_date, discharge_date
  FROM inpatient_stays
  WHERE acute AND discharge_date IS NOT NULL
),
readmitted AS (
  SELECT a.member_id, a.stay_id, a.discharge_date,
    bool_or(b.stay_id IS NOT NULL) AS readmitted
  FROM acute a
  LEFT JOIN acute b
    ON b.member_id = a.member_id
    AND b.admission_date > a.discharge_date
    AND b.admission_date <= a.discharge_date + INTERVAL '30 days'
  GROUP BY a.member_id, a.stay_id, a.discharge_date
)
SELECT h.hhp_id, count(*) AS stays,
  sum(CASE WHEN r.readmitted THEN 1 ELSE 0 END) AS readmitted_30_days
FROM readmitted r
JOIN hh_enrollment h
  ON h.member_id = r.member_id AND r.discharge_date BETWEEN h.start_date AND h.end_date
GROUP BY h.hhp_id
ORDER BY h.hhp_id
