-- Mental-health follow-up services besides office visits (outpatient_visits): one row per member,
-- date and final claim with peer support, psychiatric collaborative care management,
-- electroconvulsive therapy, a visit at a partial hospitalization / intensive outpatient place of
-- service (52) or a community mental health center (53), or psychiatric residential treatment
-- (a residential behavioural-health service, or place of service 56). HEDIS FUH and FUM count
-- some of these as follow-up, and MY2025 added or freed of a diagnosis several; the flags let
-- each year's text say which:
-- `peer_support`, `collaborative_care`, `ect`, `behavioral_setting` (place of service 52 or 53),
-- `psychiatric_residential`, and the claim's diagnoses (`mental_illness_dx` principal,
-- `mental_illness_any_dx` any position).
SELECT
  member_id,
  service_from AS service_date,
  claim_id AS source_id,
  coalesce(bool_or(in_value_set(procedure_code, 'peer_support')), false) AS peer_support,
  coalesce(bool_or(in_value_set(procedure_code, 'collaborative_care')), false) AS collaborative_care,
  coalesce(bool_or(in_value_set(procedure_code, 'ect')), false) AS ect,
  coalesce(bool_or(in_value_set(place_of_service, 'behavioral_setting_pos')), false) AS behavioral_setting,
  coalesce(bool_or(in_value_set(procedure_code, 'residential_treatment')
    OR in_value_set(place_of_service, 'psychiatric_residential_pos')), false) AS psychiatric_residential,
  coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')), false) AS mental_illness_dx,
  coalesce(bool_or(in_value_set(principal_dx, 'mental_illness_dx')
    OR any_in_value_set(other_dx, 'mental_illness_dx')), false) AS mental_illness_any_dx
FROM claims_final
WHERE claim_type IN ('outpatient', 'professional')
  AND (in_value_set(procedure_code, 'peer_support', 'collaborative_care', 'ect',
      'residential_treatment')
    OR in_value_set(place_of_service, 'behavioral_setting_pos', 'psychiatric_residential_pos'))
GROUP BY member_id, service_from, claim_id
