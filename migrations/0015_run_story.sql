-- 0015: what a person scanning runs wants to read (docs/CLI.md):
-- `subject` and `author` of the commit (its first line and "Name
-- <email>", read when the run is recorded; null for runs from before 0015
-- and commits that could not be read), `event` (what recorded it: 'push',
-- 'retry' or 'trigger'; null before 0015), `superseded_by` (the run that
-- took a superseded run's place; null when the ref was deleted or its new
-- commit recorded no run), and the failure kind 'config-invalid' (the
-- home's config.toml could not be read when the push came: the push's
-- runs are recorded failed with the error, and `retry` runs them once it
-- is fixed). SQLite cannot change a CHECK in place: the table is rebuilt
-- with every row, its checks and its indexes. `jobs.allow_failure`: the
-- job's `allow_failure`, so a failure it allowed shows as such; null for
-- jobs from before 0015.
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

INSERT INTO runs_new (id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
                      pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
                      traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha,
                      sandbox, containment, cgroup, announced_at_ms)
SELECT id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
       pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
       traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha,
       sandbox, containment, cgroup, announced_at_ms
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

ALTER TABLE jobs ADD COLUMN allow_failure INTEGER CHECK (allow_failure IN (0, 1));
