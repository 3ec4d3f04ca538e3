-- 0011: the files a job's `artifacts` kept (runs/<id>/artifacts/<job>/<path>),
-- one row per file with its size and SHA-256, so `quire-runs show` can list
-- them and `quire-runs download` can check every byte it hands out. Written
-- only by ingesting `artifact_kept` events; gone with the run (cascade), as
-- prune removes the run's directory.
CREATE TABLE artifacts (
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job_id  TEXT NOT NULL,
    path    TEXT NOT NULL,
    size    INTEGER NOT NULL CHECK (size >= 0),
    sha256  TEXT NOT NULL CHECK (length(sha256) = 64),
    PRIMARY KEY (run_id, job_id, path)
);
