-- 0023: the run a retry retried, as `quire-runs retry` names it when it
-- records the retry (its id; the web's "retry of" link, `show`, and
-- `show --json`'s `retry_of`). NULL on every other run, and on retries
-- recorded before 0023, whose original no row says.
ALTER TABLE runs ADD COLUMN retry_of TEXT
    CHECK (retry_of IS NULL OR event = 'retry');
