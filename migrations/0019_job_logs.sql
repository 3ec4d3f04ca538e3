-- 0019: a job's steps write one log, `runs/<id>/logs/<job>.log`, instead
-- of a file each (a new file costs more than its bytes on some file
-- systems). `sh_events.log_at` is where a step's lines begin in its job's
-- log; the step's lines run to where the next step's begin, or to the end
-- of the log for its last step. Null for steps from before 0019, whose
-- logs are files of their own, `runs/<id>/logs/<job>/<seq>.log`, or were
-- packed into step_logs.
ALTER TABLE sh_events ADD COLUMN log_at INTEGER CHECK (log_at IS NULL OR log_at >= 0);
