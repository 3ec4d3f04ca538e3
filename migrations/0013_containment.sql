-- 0013: how the worker that executed a run contained its steps' processes:
-- 'cgroup' (a cgroup v2 per job under the run's own, `cgroup`, which
-- reconcile kills with cgroup.kill when the worker is gone) or 'subreaper'
-- (the worker was the child subreaper of everything its steps started). Null until a worker
-- starts the run, and for runs from before 0013.
ALTER TABLE runs ADD COLUMN containment TEXT
    CHECK (containment IS NULL OR containment IN ('cgroup', 'subreaper'));
ALTER TABLE runs ADD COLUMN cgroup TEXT
    CHECK (cgroup IS NULL OR containment = 'cgroup');
