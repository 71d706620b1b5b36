-- Superseded claims: one row per claim id that a later replacement or void names. Final claim
-- lines are those of claims not in it (claims_final).
-- hhq: keep
SELECT DISTINCT replaces_claim_id AS claim_id
FROM claims
WHERE replaces_claim_id IS NOT NULL
