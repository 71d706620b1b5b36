-- Deaths: one row per member with a date of death (members extract).
SELECT member_id, death_date, member_id AS source_id
FROM members
WHERE death_date IS NOT NULL
