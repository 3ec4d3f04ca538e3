-- 0004 (upstream 4): record the bare repository's absolute path, so a worker
-- no longer guesses it from the repo name, and the Sentry trace the API
-- server opened for the run.
ALTER TABLE runs ADD COLUMN git_dir TEXT;
ALTER TABLE runs ADD COLUMN sentry_trace_id TEXT;
