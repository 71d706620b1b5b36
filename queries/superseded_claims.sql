-- Superseded claims: one row per claim id that a later replacement or void names, with the member
-- the claim is filed under (a row for each, should one id be filed under two members). Final
-- claim lines are those of claims not in it (claims_final).
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
SELECT DISTINCT c.member_id, c.claim_id
FROM named n
JOIN claims c ON c.claim_id = n.named_id
