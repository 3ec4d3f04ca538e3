-- 0023: the run a retry retried, as `quire-runs retry` names it when it
-- records the retry (its id; the web's "retry of" link, `show`, and
-- `show --json`'s `retry_of`). NULL on every other run, and on retries
-- recorded before 0023, whose original no row says.
ALTER TABLE runs ADD COLUMN retry_of TEXT
    CHECK (retry_of IS NULL OR event = 'retry');

-- A repository's runs, newest first, read from an index rather than all
-- its runs sorted: `quire-runs list -R` and the web's trend of a
-- repository's last runs (the runs_repo_ref index orders by ref first).
CREATE INDEX runs_repo_newest ON runs (repo_id, queued_at_ms, id);
