-- Claim links: one row per claim (version) and the claim it names as replaced or voided
-- (`replaces_claim_id`), each pair once. A claim naming itself is no link: a self-replacement
-- is read as an original, which it is unless another claim names it (the data-quality check
-- `claims.self_replacement` counts them).
--
-- Kept for the run, in memory (a few percent of the claim lines, two ids each):
-- superseded_claims reads it three times, and each read would otherwise scan the claims again.
-- hhq: keep
SELECT DISTINCT claim_id, replaces_claim_id AS named_id
FROM claims
WHERE replaces_claim_id IS NOT NULL AND replaces_claim_id <> claim_id
