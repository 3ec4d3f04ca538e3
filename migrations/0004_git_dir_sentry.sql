-- 0004 (seed): record the bare repository's absolute path, so a worker no
-- longer has to guess it from the repo name, and the Sentry trace the API
-- server opened for the run.
ALTER TABLE runs ADD COLUMN git_dir TEXT;
ALTER TABLE runs ADD COLUMN sentry_trace_id TEXT;
