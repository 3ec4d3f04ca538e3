-- 0002 (upstream 2): record each shell step a job ran, with its exit code.
-- Keyed by the step's start time, which collides when two steps of a job
-- start in the same millisecond (quire's 0008 keys steps by sequence).
CREATE TABLE sh_events (
    run_id         TEXT    NOT NULL,
    job_id         TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER NOT NULL,
    exit_code      INTEGER NOT NULL,
    cmd            TEXT    NOT NULL,
    PRIMARY KEY (run_id, job_id, started_at_ms),
    FOREIGN KEY (run_id, job_id) REFERENCES jobs (run_id, job_id) ON DELETE CASCADE
);
