-- Superseded claims: one row per claim id that a later replacement or void names, with the member
-- the claim is filed under (a row for each, should one id be filed under two members) and how
-- many of its lines (not voids) that member's rows hold. Final claim lines are those of claims
-- not in it (claims_final); the run's count of superseded lines is the sum of `lines`, not
-- another pass over every claim line.
--
-- Loops. A claim naming itself is no link (claim_links): it stands as an original. When links
-- form a loop (A replaces B and B replaces A, or a loop of any length), every version is named
-- by another and the event would vanish; so of each loop that no claim outside it names, one
-- version stands: the greatest claim id (hhq_loop_standing). Claim ids are issued in order, so
-- it is the version adjudicated last; the extract has no adjudication date, and service dates
-- are what a replacement corrects, so they cannot tell versions apart. A loop that a claim
-- outside it replaces is superseded whole, like any claim that claim names: that claim is the
-- final version. The data-quality check `claims.replacement_loop` counts the claim lines of
-- every loop.
--
-- Only a link into a claim that itself names one can close a loop: in clean data, the few claims
-- replaced twice. The loop aggregate holds those links only, and the standing versions (none,
-- in clean data) are taken out of the named ids by an anti join.
--
-- Computed once per run over every member, since a replacement may be filed under another member
-- id than the claim it names; kept in memory, and a pass over a range of members reads the rows
-- of its own members (by member_id), so each pass hashes its share of the ids, not the state's.
-- hhq: keep
WITH standing AS (
  SELECT unnest(ids) AS claim_id
  FROM (
    SELECT hhq_loop_standing(l.claim_id, l.named_id) AS ids
    FROM claim_links l
    JOIN (SELECT DISTINCT claim_id FROM claim_links) naming ON naming.claim_id = l.named_id
  ) loops
),
named AS (
  SELECT DISTINCT l.named_id
  FROM standing s
  RIGHT ANTI JOIN claim_links l ON s.claim_id = l.named_id
)
SELECT c.member_id, c.claim_id,
  CAST(sum(CASE WHEN c.adjustment <> 'void' THEN 1 ELSE 0 END) AS BIGINT) AS lines
FROM named n
JOIN claims c ON c.claim_id = n.named_id
GROUP BY c.member_id, c.claim_id
