-- 0022: the failure kind `node-lost`: a run whose only failures are jobs
-- whose node was lost under them (the executor ran them on a cluster, and
-- the node died or left before the job could say how it ended). It is not
-- the pipeline's failure: `quire-runs retry` is the remedy, and scripts and
-- notify commands can tell it apart. SQLite cannot change a CHECK in place:
-- `runs` is rebuilt as 0018 left it, every column, row, CHECK and index
-- kept, with the one value added to the failure kind's CHECK. No row
-- changes: no run had this kind before.

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
                                                'config-invalid', 'node-lost')),
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
CREATE INDEX runs_id_middle ON runs (substr(id, 27, 8));
CREATE INDEX runs_id_tail ON runs (substr(id, 29, 8));
CREATE INDEX runs_odd_id ON runs (id) WHERE id NOT GLOB
    '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]';
