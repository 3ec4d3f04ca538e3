-- 0017: runs upstream quire left pending or active, which quire fails at
-- migration and never runs (docs/STATE.md, "Which store is this?").
-- `runs.upstream_unfinished`: the upstream version such a run came from;
-- null for every other run. Its times are upstream's (none that upstream
-- did not have: it has no duration), and the CHECK keeps it failed: such a
-- run can never become pending or active again, so no worker claims it and
-- no announcer takes it (it counts as announced from the migration on).
ALTER TABLE runs ADD COLUMN upstream_unfinished INTEGER
    CHECK (upstream_unfinished IS NULL OR (state = 'failed' AND failure_kind = 'orphaned'));
