-- Readmissions: one row per acute inpatient stay admitted 1 to 30 days after the discharge of an
-- earlier acute stay of the same member (any cause, the plain reading used for high-risk flags;
-- PCR-HH's planned-readmission and outlier rules belong to that measure). Stays still open
-- have no discharge and start no readmission window.
WITH acute AS (
  SELECT member_id, stay_id, admission_date, discharge_date,
    max(discharge_date) OVER (PARTITION BY member_id ORDER BY admission_date, stay_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_discharge
  FROM inpatient_stays
  WHERE acute
)
SELECT member_id, stay_id, admission_date, discharge_date, previous_discharge,
  CAST(admission_date - previous_discharge AS INT) AS days_after_discharge,
  stay_id AS source_id
FROM acute
WHERE previous_discharge IS NOT NULL
  AND admission_date > previous_discharge
  AND admission_date <= previous_discharge + INTERVAL '30 days'
