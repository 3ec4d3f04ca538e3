-- 0012: step logs packed into the store. While a run executes, each step
-- writes runs/<id>/logs/<job>/<seq>.log; once the run has ended, its worker
-- copies the small ones (up to 64 KiB each) here in one transaction, then
-- deletes the files, events.jsonl and the directories left empty, so a
-- trivial run leaves no files behind. Larger logs stay files. Readers take
-- the file when it exists, else this copy. Gone with the run (cascade).
CREATE TABLE step_logs (
    run_id  TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL CHECK (seq >= 1),
    log     BLOB    NOT NULL,
    PRIMARY KEY (run_id, job_id, seq)
);

-- How the run's steps were confined (the Landlock sandbox, docs/SECURITY.md):
-- one line the worker records when it starts the run's steps, shown by
-- `quire-runs show`. Null for runs no worker started, and for runs from
-- before 0012.
ALTER TABLE runs ADD COLUMN sandbox TEXT;
