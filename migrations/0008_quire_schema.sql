-- 0008: quire's own schema begins; every column from here on is live
-- (docs/STATE.md names its writer and reader).
--
-- runs: run_token goes (nothing calls back into quire with it). An active run
-- records the worker that holds it (id, pid) and a lease the worker renews:
-- reconcile's evidence that a worker is gone. failure_detail says in one line
-- why a run failed. "At most one pending or active run per (repo, ref)"
-- becomes a partial unique index. The seed's supersede raced, so a legacy
-- store can hold two live runs of one ref: the newest stays live, the older
-- ones become superseded (as quire would have made them), rows kept.
--
-- jobs: gain `position` (plan order), the `aborted` state and a skip reason.
-- sh_events: keyed by (run_id, job_id, seq) instead of the start time (many
-- steps start in the same millisecond); exit code and finish time are null
-- while the step runs.
--
-- The upstream history below this (0001..0007) left failure_kind unchecked;
-- see the runs copy for how its values land.
--
-- Every table is rebuilt by SQLite's table-change procedure: the runner turns
-- foreign keys off outside the transaction and checks them before commit.

UPDATE runs AS r
SET state = 'superseded',
    finished_at_ms = MAX(
        COALESCE(r.started_at_ms, r.queued_at_ms),
        (SELECT MIN(n.queued_at_ms) FROM runs AS n
         WHERE n.repo = r.repo AND n.ref_name = r.ref_name
           AND n.state IN ('pending', 'active')
           AND (n.queued_at_ms, n.id) > (r.queued_at_ms, r.id)))
WHERE r.state IN ('pending', 'active')
  AND EXISTS (SELECT 1 FROM runs AS n
              WHERE n.repo = r.repo AND n.ref_name = r.ref_name
                AND n.state IN ('pending', 'active')
                AND (n.queued_at_ms, n.id) > (r.queued_at_ms, r.id));

CREATE TABLE runs_new (
    id                  TEXT PRIMARY KEY NOT NULL,
    repo                TEXT NOT NULL,
    ref_name            TEXT NOT NULL,
    sha                 TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'active', 'complete', 'failed', 'superseded')),
    failure_kind        TEXT
                        CHECK (failure_kind IN ('pipeline-failure', 'pipeline-invalid',
                                                'process-crashed', 'orphaned', 'cancelled')),
    failure_detail      TEXT,
    pushed_at_ms        INTEGER NOT NULL,
    queued_at_ms        INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER,
    git_dir             TEXT,
    traceparent         TEXT,
    worker_id           TEXT,
    worker_pid          INTEGER,
    lease_expires_at_ms INTEGER,
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'complete' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'superseded') OR finished_at_ms IS NOT NULL),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL)),
    CHECK (failure_detail IS NULL OR state = 'failed'),
    CHECK (state <> 'pending' OR worker_id IS NULL),
    CHECK ((worker_id IS NULL) = (worker_pid IS NULL)),
    CHECK ((worker_id IS NULL) = (lease_expires_at_ms IS NULL))
);

-- Upstream wrote failure kinds quire does not have (NULL on failed runs,
-- `quire-ci-exit`) and never checked them: they map onto quire's kinds, and
-- the original text stays in failure_detail. A kind on a run that did not
-- fail means nothing and goes.
INSERT INTO runs_new (id, repo, ref_name, sha, state, failure_kind, failure_detail,
                      pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms, git_dir,
                      traceparent)
SELECT COALESCE(id, 'legacy-' || rowid), repo, ref_name, sha, state,
       CASE
           WHEN state <> 'failed' THEN NULL
           WHEN failure_kind IN ('pipeline-failure', 'pipeline-invalid', 'process-crashed',
                                 'orphaned', 'cancelled') THEN failure_kind
           WHEN failure_kind IS NULL THEN 'pipeline-failure'
           ELSE 'process-crashed'
       END,
       CASE
           WHEN state <> 'failed' THEN NULL
           WHEN failure_kind IN ('pipeline-failure', 'pipeline-invalid', 'process-crashed',
                                 'orphaned', 'cancelled') THEN NULL
           WHEN failure_kind IS NULL THEN 'upstream recorded no failure kind'
           ELSE 'upstream recorded failure kind ' || quote(failure_kind)
       END,
       pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms, git_dir, traceparent
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE UNIQUE INDEX runs_one_live ON runs (repo, ref_name)
    WHERE state IN ('pending', 'active');
CREATE INDEX runs_newest ON runs (queued_at_ms, id);
CREATE INDEX runs_repo_ref ON runs (repo, ref_name, queued_at_ms);
CREATE INDEX runs_pending ON runs (queued_at_ms, id) WHERE state = 'pending';

CREATE TABLE jobs_new (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id          TEXT NOT NULL,
    position        INTEGER NOT NULL CHECK (position >= 0),
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'active', 'complete', 'failed',
                                     'skipped', 'aborted')),
    exit_code       INTEGER,
    skip_reason     TEXT,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    PRIMARY KEY (run_id, job_id),
    UNIQUE (run_id, position),
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state NOT IN ('complete', 'failed', 'aborted') OR finished_at_ms IS NOT NULL),
    CHECK (state <> 'skipped' OR started_at_ms IS NULL),
    CHECK (skip_reason IS NULL OR state = 'skipped')
);

INSERT INTO jobs_new (run_id, job_id, position, state, exit_code, started_at_ms,
                      finished_at_ms)
SELECT run_id, job_id, ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY rowid) - 1,
       state, exit_code, started_at_ms, finished_at_ms
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

-- A run that ended has no open jobs (the runs superseded above, and any
-- seed-era run that ended with a job still open): they stop as quire stops
-- them, at the run's end.
UPDATE jobs SET state = 'aborted',
    finished_at_ms = MAX(started_at_ms,
        (SELECT r.finished_at_ms FROM runs AS r WHERE r.id = jobs.run_id))
WHERE state = 'active'
  AND run_id IN (SELECT id FROM runs WHERE state IN ('complete', 'failed', 'superseded'));
UPDATE jobs SET state = 'skipped',
    skip_reason = 'run ' || (SELECT r.state FROM runs AS r WHERE r.id = jobs.run_id),
    finished_at_ms = (SELECT r.finished_at_ms FROM runs AS r WHERE r.id = jobs.run_id)
WHERE state = 'pending'
  AND run_id IN (SELECT id FROM runs WHERE state IN ('complete', 'failed', 'superseded'));

CREATE TABLE sh_events_new (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id          TEXT NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    cmd             TEXT NOT NULL,
    exit_code       INTEGER,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    PRIMARY KEY (run_id, job_id, seq),
    CHECK ((exit_code IS NULL) = (finished_at_ms IS NULL))
);

INSERT INTO sh_events_new (run_id, job_id, seq, cmd, exit_code, started_at_ms,
                           finished_at_ms)
SELECT run_id, job_id,
       ROW_NUMBER() OVER (PARTITION BY run_id, job_id ORDER BY started_at_ms, rowid),
       cmd, exit_code, started_at_ms, finished_at_ms
FROM sh_events;

DROP TABLE sh_events;
ALTER TABLE sh_events_new RENAME TO sh_events;
