-- Superseded claims: one row per claim id that a later replacement or void names, with the member
-- the claim is filed under (a row for each, should one id be filed under two members) and how
-- many of its lines (not voids) that member's rows hold. Final claim lines are those of claims
-- not in it (claims_final); the run's count of superseded lines is the sum of `lines`, not
-- another pass over every claim line.
--
-- Computed once per run over every member, since a replacement may be filed under another member
-- id than the claim it names; kept in memory, and a pass over a range of members reads the rows
-- of its own members (by member_id), so each pass hashes its share of the ids, not the state's.
-- hhq: keep
WITH named AS (
  SELECT DISTINCT replaces_claim_id AS named_id
  FROM claims
  WHERE replaces_claim_id IS NOT NULL
)
SELECT c.member_id, c.claim_id,
  CAST(sum(CASE WHEN c.adjustment <> 'void' THEN 1 ELSE 0 END) AS BIGINT) AS lines
FROM named n
JOIN claims c ON c.claim_id = n.named_id
GROUP BY c.member_id, c.claim_id
