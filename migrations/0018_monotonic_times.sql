-- 0018: the database refuses times that go backwards again. The seed's
-- runs CHECKs (0001, 0007: started_at_ms >= queued_at_ms, finished_at_ms >=
-- queued_at_ms, finished_at_ms >= started_at_ms) and upstream's jobs CHECKs
-- (complete and failed have both stamps, skipped a finish and no start,
-- aborted a finish, and no finish before its start) were left out when 0008
-- rebuilt both tables, and 0010 and 0015 kept them out: quire's code stamps
-- monotone times (docs/STATE.md), but from 0008 to 0017 nothing refused a row
-- written otherwise. SQLite cannot add a CHECK in place: both tables are
-- rebuilt with every column, CHECK and index they had, and the new ones.
--
-- A row that breaks a new CHECK is repaired, never dropped, and says so in
-- its new column `repaired` (null on every other row), in the words below:
--   runs: a start before the queueing is set to the queueing; a finish
--         before the start (or, never started, the queueing) is set to it.
--   jobs: a complete or failed job with no start starts at its finish; a
--         skipped job with no finish finishes when its run did (or started,
--         or was queued, if the run has not ended); a finish before the
--         start is set to the start.
-- The original value is in the text, so nothing is lost.

ALTER TABLE runs ADD COLUMN repaired TEXT;

UPDATE runs
SET repaired = 'started_at_ms was ' || started_at_ms || ', before queued_at_ms '
               || queued_at_ms || '; set to queued_at_ms by migration 0018',
    started_at_ms = queued_at_ms
WHERE started_at_ms < queued_at_ms;

UPDATE runs
SET repaired = COALESCE(repaired || '; ', '') || 'finished_at_ms was ' || finished_at_ms
               || CASE WHEN started_at_ms IS NOT NULL
                       THEN ', before started_at_ms ' || started_at_ms
                            || '; set to started_at_ms by migration 0018'
                       ELSE ', before queued_at_ms ' || queued_at_ms
                            || '; set to queued_at_ms by migration 0018' END,
    finished_at_ms = COALESCE(started_at_ms, queued_at_ms)
WHERE finished_at_ms < COALESCE(started_at_ms, queued_at_ms);

CREATE TABLE runs_new (
    id                  TEXT PRIMARY KEY NOT NULL,
    repo_id             INTEGER NOT NULL REFERENCES repos (id),
    ref_name            TEXT NOT NULL,
    sha                 TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'active', 'complete', 'failed', 'superseded')),
    failure_kind        TEXT
                        CHECK (failure_kind IN ('pipeline-failure', 'pipeline-invalid',
                                                'process-crashed', 'orphaned', 'cancelled',
                                                'config-invalid')),
    failure_detail      TEXT,
    pushed_at_ms        INTEGER NOT NULL,
    queued_at_ms        INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER,
    traceparent         TEXT,
    worker_id           TEXT,
    worker_pid          INTEGER,
    lease_expires_at_ms INTEGER,
    previous_sha        TEXT,
    sandbox             TEXT,
    containment         TEXT
                        CHECK (containment IS NULL OR containment IN ('cgroup', 'subreaper')),
    cgroup              TEXT
                        CHECK (cgroup IS NULL OR containment = 'cgroup'),
    announced_at_ms     INTEGER,
    subject             TEXT,
    author              TEXT,
    event               TEXT CHECK (event IS NULL OR event IN ('push', 'retry', 'trigger')),
    superseded_by       TEXT CHECK (superseded_by IS NULL OR state = 'superseded'),
    upstream_unfinished INTEGER
                        CHECK (upstream_unfinished IS NULL
                               OR (state = 'failed' AND failure_kind = 'orphaned')),
    repaired            TEXT,
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'complete' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'superseded') OR finished_at_ms IS NOT NULL),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL)),
    CHECK (failure_detail IS NULL OR state = 'failed'),
    CHECK (state <> 'pending' OR worker_id IS NULL),
    CHECK ((worker_id IS NULL) = (worker_pid IS NULL)),
    CHECK ((worker_id IS NULL) = (lease_expires_at_ms IS NULL)),
    CHECK (started_at_ms IS NULL OR started_at_ms >= queued_at_ms),
    CHECK (finished_at_ms IS NULL OR finished_at_ms >= queued_at_ms),
    CHECK (finished_at_ms IS NULL OR started_at_ms IS NULL OR finished_at_ms >= started_at_ms)
);

INSERT INTO runs_new (id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
                      pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
                      traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha,
                      sandbox, containment, cgroup, announced_at_ms, subject, author, event,
                      superseded_by, upstream_unfinished, repaired)
SELECT id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
       pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
       traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha,
       sandbox, containment, cgroup, announced_at_ms, subject, author, event,
       superseded_by, upstream_unfinished, repaired
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE UNIQUE INDEX runs_one_live ON runs (repo_id, ref_name)
    WHERE state IN ('pending', 'active');
CREATE INDEX runs_newest ON runs (queued_at_ms, id);
CREATE INDEX runs_repo_ref ON runs (repo_id, ref_name, queued_at_ms);
CREATE INDEX runs_pending ON runs (queued_at_ms, id) WHERE state = 'pending';
CREATE INDEX runs_unannounced ON runs (finished_at_ms)
    WHERE announced_at_ms IS NULL AND state IN ('complete', 'failed', 'superseded');
CREATE INDEX runs_pending_repo ON runs (repo_id, queued_at_ms, id) WHERE state = 'pending';
CREATE INDEX runs_active_repo ON runs (repo_id) WHERE state = 'active';

ALTER TABLE jobs ADD COLUMN repaired TEXT;

UPDATE jobs
SET repaired = 'started_at_ms was null on a ' || state
               || ' job; set to finished_at_ms by migration 0018',
    started_at_ms = finished_at_ms
WHERE state IN ('complete', 'failed') AND started_at_ms IS NULL;

UPDATE jobs
SET repaired = 'finished_at_ms was null on a skipped job; set to '
               || (SELECT CASE WHEN r.finished_at_ms IS NOT NULL THEN 'its run''s finished_at_ms'
                               WHEN r.started_at_ms IS NOT NULL THEN 'its run''s started_at_ms'
                               ELSE 'its run''s queued_at_ms' END
                   FROM runs AS r WHERE r.id = jobs.run_id)
               || ' by migration 0018',
    finished_at_ms = (SELECT COALESCE(r.finished_at_ms, r.started_at_ms, r.queued_at_ms)
                      FROM runs AS r WHERE r.id = jobs.run_id)
WHERE state = 'skipped' AND finished_at_ms IS NULL;

UPDATE jobs
SET repaired = COALESCE(repaired || '; ', '') || 'finished_at_ms was ' || finished_at_ms
               || ', before started_at_ms ' || started_at_ms
               || '; set to started_at_ms by migration 0018',
    finished_at_ms = started_at_ms
WHERE finished_at_ms < started_at_ms;

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
    allow_failure   INTEGER CHECK (allow_failure IN (0, 1)),
    repaired        TEXT,
    PRIMARY KEY (run_id, job_id),
    UNIQUE (run_id, position),
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state NOT IN ('complete', 'failed', 'aborted') OR finished_at_ms IS NOT NULL),
    CHECK (state <> 'skipped' OR started_at_ms IS NULL),
    CHECK (skip_reason IS NULL OR state = 'skipped'),
    CHECK (state NOT IN ('complete', 'failed') OR started_at_ms IS NOT NULL),
    CHECK (state <> 'skipped' OR finished_at_ms IS NOT NULL),
    CHECK (finished_at_ms IS NULL OR started_at_ms IS NULL OR finished_at_ms >= started_at_ms)
);

INSERT INTO jobs_new (run_id, job_id, position, state, exit_code, skip_reason,
                      started_at_ms, finished_at_ms, allow_failure, repaired)
SELECT run_id, job_id, position, state, exit_code, skip_reason,
       started_at_ms, finished_at_ms, allow_failure, repaired
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
