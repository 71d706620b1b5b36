-- Substance-use and overdose diagnoses of final claims: the rows of claim_diagnoses whose
-- diagnosis is in the alcohol, opioid, other-drug or overdose value sets (one row per claim and
-- such diagnosis, with the claim's dates and setting).
--
-- Three blocks ask for these diagnoses (sud_diagnoses, sud_treatment and ed_visits' overdoses),
-- and each read of claim_diagnoses lists every diagnosis of every claim line again: at a million
-- members that was a third of the claim-based blocks' time. They are picked here once per run,
-- over every member, and kept in memory (a few percent of the diagnoses); a pass reads the rows
-- of its own members.
-- hhq: keep
SELECT *
FROM claim_diagnoses
WHERE in_value_set(dx, 'alcohol_dx') OR in_value_set(dx, 'opioid_dx')
  OR in_value_set(dx, 'other_drug_dx') OR in_value_set(dx, 'overdose_dx')
