-- 0006 (upstream 6): tracing moved from Sentry to W3C trace context; the
-- run's traceparent is handed to its steps.
ALTER TABLE runs ADD COLUMN traceparent TEXT;
