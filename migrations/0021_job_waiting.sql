-- 0021: why an active job has not begun yet, as its executor says it
-- (a Slurm cluster holding it in its queue: `queued in Slurm: Resources,
-- job 1234, partition ci`); NULL when nothing holds it. Shown by `show`,
-- `watch`, `ci.wait` and the web view while the job is active, cleared
-- when it ends (docs/STATE.md, "Jobs").
ALTER TABLE jobs ADD COLUMN waiting TEXT;
