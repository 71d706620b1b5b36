-- Residential behavioural-health treatment billed outside an inpatient stay: one row per member,
-- date and final claim with a residential treatment service (HCPCS) or billed at a residential
-- place of service (55, a residential substance-abuse treatment facility; 56, a psychiatric
-- residential treatment centre). HEDIS FUA excludes an ED visit followed by such treatment.
-- Residential stays billed on institutional claims are nonacute inpatient stays
-- (inpatient_stays), not rows here.
SELECT member_id, service_from AS treatment_date, claim_id AS source_id
FROM claims_final
WHERE claim_type IN ('outpatient', 'professional')
  AND (in_value_set(procedure_code, 'residential_treatment')
    OR in_value_set(place_of_service, 'residential_pos'))
GROUP BY member_id, service_from, claim_id
