-- 0009: the ref's previous tip, as the push reported it (null for a new ref
-- or a run recorded by hand; a retry keeps its original's). Steps see it as
-- QUIRE_PREVIOUS_SHA.
ALTER TABLE runs ADD COLUMN previous_sha TEXT;
