-- 0001 (seed): the first schema.
-- A run is one push of one ref; its jobs are the pipeline's units of work.
-- Every step then ran in a Docker container, so a run carried the executor's
-- bookkeeping: container, image, daemon, network, cache volume and limits.
-- The shape of each state is enforced here from the start.
CREATE TABLE runs (
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
    container_id    TEXT,
    container_image TEXT,
    docker_host     TEXT,
    docker_network  TEXT,
    cache_volume    TEXT,
    cpu_quota       REAL,
    memory_limit_mb INTEGER,
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'complete' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'superseded') OR finished_at_ms IS NOT NULL),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL))
);

CREATE INDEX runs_repo_ref ON runs (repo, ref_name);

CREATE TABLE jobs (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'active', 'complete', 'failed', 'skipped')),
    exit_code       INTEGER,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    PRIMARY KEY (run_id, job_id),
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state NOT IN ('complete', 'failed') OR finished_at_ms IS NOT NULL),
    CHECK (state <> 'skipped' OR started_at_ms IS NULL)
);
