-- Months a member spent wholly in an institution (stays in a skilled nursing, swing-bed or
-- intermediate care facility): admitted before the month began and not
-- discharged before it ended. A day of admission or discharge counts as a day in the
-- community, so AIF-HH keeps those months. An open stay (no discharge yet) was in the facility on
-- its last billed day, so it counts as discharged the day after.
WITH stays AS (
  SELECT member_id, stay_id, admission_date,
    coalesce(discharge_date, admission_date + CAST(length_of_stay AS INT) + 1) AS last_day
  FROM inpatient_stays
  WHERE institutional
),
months AS (
  SELECT member_id, stay_id, admission_date, last_day,
    CAST(unnest(range(CAST(date_trunc('month', admission_date) AS DATE), last_day, INTERVAL '1 month')) AS DATE) AS month_start
  FROM stays
)
SELECT member_id, month_start, stay_id AS source_id
FROM months
WHERE admission_date < month_start
  AND last_day > CAST(month_start + INTERVAL '1 month' - INTERVAL '1 day' AS DATE)
