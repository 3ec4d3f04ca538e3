-- 0007 (seed): cleanup. The Docker executor and Sentry are gone; recreate
-- runs without their eight dead columns (container_id, container_image,
-- docker_host, docker_network, cache_volume, cpu_quota, memory_limit_mb,
-- sentry_trace_id). SQLite's table-change procedure: the runner turns foreign
-- keys off outside the transaction (else DROP TABLE runs would cascade into
-- jobs and sh_events) and checks them before commit.
CREATE TABLE runs_new (
    id              TEXT PRIMARY KEY NOT NULL,
    repo            TEXT NOT NULL,
    ref_name        TEXT NOT NULL,
    sha             TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'active', 'complete', 'failed', 'superseded')),
    failure_kind    TEXT
                    CHECK (failure_kind IN ('pipeline-failure', 'pipeline-invalid',
                                            'process-crashed', 'orphaned', 'cancelled')),
    pushed_at_ms    INTEGER NOT NULL,
    queued_at_ms    INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    run_token       TEXT,
    git_dir         TEXT,
    traceparent     TEXT,
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'complete' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'superseded') OR finished_at_ms IS NOT NULL),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL))
);

INSERT INTO runs_new (id, repo, ref_name, sha, state, failure_kind, pushed_at_ms,
                      queued_at_ms, started_at_ms, finished_at_ms, run_token, git_dir,
                      traceparent)
SELECT id, repo, ref_name, sha, state, failure_kind, pushed_at_ms,
       queued_at_ms, started_at_ms, finished_at_ms, run_token, git_dir, traceparent
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_repo_ref ON runs (repo, ref_name);
