-- Final claim lines: one row per line of the last version of each claim. A replacement
-- supersedes the claim it names (and all of that claim's lines), a void removes it; chains of
-- replacements resolve to the last one. Void transactions themselves are never final. A claim
-- naming itself stands as an original; of a loop of replacements, the version with the greatest
-- claim id stands (superseded_claims says why).
--
-- The ids superseded are a block of their own, computed once per run and kept in memory (a few
-- percent of the claims). An anti join from them, so the query engine hashes those ids and
-- streams the claim lines past: `NOT EXISTS` builds its hash table from the claim lines kept,
-- every column of them, which at a state's scale is gigabytes per query. Not a `RIGHT JOIN …
-- WHERE s.claim_id IS NULL`: when the superseded ids outnumber what DataFusion 55 expects of the
-- claims, it swaps the join's sides and pushes that null test onto the claims' own `claim_id`,
-- keeping no line at all (tests/measures.rs, superseded_versions_change_no_result…).
SELECT c.*
FROM superseded_claims s
RIGHT ANTI JOIN claims c ON s.claim_id = c.claim_id
WHERE c.adjustment <> 'void'
