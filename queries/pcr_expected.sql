-- Expected readmission probability of each acute stay, from the user-supplied risk-weight table
-- (`risk_weights`: variable, value, weight; see src/extract/risk.rs). The logistic form is
-- NCQA's: 1 / (1 + exp(-(intercept + sex + age band + principal diagnosis + comorbidities))).
-- The principal diagnosis takes the weight of its longest matching prefix; each comorbidity
-- prefix found on a claim in the 365 days up to the discharge adds its weight once. Without a
-- table this block is empty and PCR-HH reports observed values only.
WITH stays AS (
  SELECT s.stay_id, s.member_id, s.discharge_date, s.principal_dx, m.sex,
    CAST(date_part('year', s.discharge_date) - date_part('year', m.birth_date) AS INT)
      - CASE WHEN date_part('month', s.discharge_date) * 100 + date_part('day', s.discharge_date)
        < date_part('month', m.birth_date) * 100 + date_part('day', m.birth_date) THEN 1 ELSE 0 END AS age
  FROM inpatient_stays s JOIN members m ON m.member_id = s.member_id
  WHERE s.acute AND s.discharge_date IS NOT NULL
),
weights AS (SELECT variable, value, weight FROM risk_weights),
intercept AS (SELECT sum(weight) AS w FROM weights WHERE variable = 'intercept'),
by_sex AS (
  SELECT st.stay_id, sum(w.weight) AS w FROM stays st JOIN weights w ON w.variable = 'sex' AND w.value = st.sex
  GROUP BY st.stay_id
),
by_age AS (
  SELECT st.stay_id, sum(w.weight) AS w FROM stays st JOIN weights w ON w.variable = 'age'
    AND st.age >= CAST(split_part(w.value, '-', 1) AS INT) AND st.age <= CAST(split_part(w.value, '-', 2) AS INT)
  GROUP BY st.stay_id
),
by_dx AS (
  SELECT stay_id, w FROM (
    SELECT st.stay_id, w.weight AS w,
      row_number() OVER (PARTITION BY st.stay_id ORDER BY length(w.value) DESC, w.value) AS rn
    FROM stays st JOIN weights w ON w.variable = 'principal_dx' AND starts_with(st.principal_dx, w.value)
  ) WHERE rn = 1
),
by_comorbidity AS (
  SELECT stay_id, sum(weight) AS w FROM (
    SELECT DISTINCT st.stay_id, w.value, w.weight
    FROM stays st
    JOIN claim_diagnoses d ON d.member_id = st.member_id
      AND d.service_from >= st.discharge_date - INTERVAL '365 days' AND d.service_from <= st.discharge_date
    JOIN weights w ON w.variable = 'comorbidity' AND starts_with(d.dx, w.value)
  ) GROUP BY stay_id
)
SELECT st.stay_id, st.member_id, st.discharge_date,
  1.0 / (1.0 + exp(-(i.w + coalesce(s.w, 0) + coalesce(a.w, 0) + coalesce(x.w, 0) + coalesce(c.w, 0)))) AS probability,
  st.stay_id AS source_id
FROM stays st CROSS JOIN intercept i
LEFT JOIN by_sex s ON s.stay_id = st.stay_id
LEFT JOIN by_age a ON a.stay_id = st.stay_id
LEFT JOIN by_dx x ON x.stay_id = st.stay_id
LEFT JOIN by_comorbidity c ON c.stay_id = st.stay_id
WHERE i.w IS NOT NULL
