-- 0014: what quire tells people when a run ends (docs/OPERATIONS.md,
-- "When a run ends"). `runs.announced_at_ms`: when an announcer took the
-- ended run to write its git note and run its notifiers; null while that is
-- still to do. Runs that ended before 0014 count as announced: an upgrade
-- notifies nobody about history.
ALTER TABLE runs ADD COLUMN announced_at_ms INTEGER;
UPDATE runs SET announced_at_ms = COALESCE(finished_at_ms, queued_at_ms)
    WHERE state IN ('complete', 'failed', 'superseded');
CREATE INDEX runs_unannounced ON runs (finished_at_ms)
    WHERE announced_at_ms IS NULL AND state IN ('complete', 'failed', 'superseded');

-- Each `[[notify]]` command run for an ended run: its place in config.toml
-- when it ran, its argv (JSON), and how it ended: 'running' until then,
-- 'ok' (exit 0), 'failed' (another exit, a signal, or it could not start),
-- 'timed-out' (killed at its timeout). `stderr_tail`: its stderr's last
-- non-empty line (or why it could not start).
CREATE TABLE notifications (
    run_id          TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    command         TEXT NOT NULL,
    state           TEXT NOT NULL
        CHECK (state IN ('running', 'ok', 'failed', 'timed-out')),
    exit_code       INTEGER,
    stderr_tail     TEXT,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    PRIMARY KEY (run_id, position)
);
