-- 0002 (seed): record each shell step a job ran, with its exit code.
-- Keyed by the step's start time, which collides when two steps of a job
-- start in the same millisecond (fixed by 0008).
CREATE TABLE sh_events (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id          TEXT NOT NULL,
    cmd             TEXT NOT NULL,
    exit_code       INTEGER NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (run_id, job_id, started_at_ms)
);
