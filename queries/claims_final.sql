-- Final claim lines: one row per line of the last version of each claim. A replacement
-- supersedes the claim it names (and all of that claim's lines), a void removes it; chains of
-- replacements resolve to the last one. Void transactions themselves are never final.
SELECT c.*
FROM claims c
WHERE c.adjustment <> 'void'
  AND NOT EXISTS (
    SELECT 1 FROM claims r WHERE r.replaces_claim_id = c.claim_id
  )
