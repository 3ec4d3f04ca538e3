-- 0010: repositories are rows of their own. Until now a run named its
-- repository by a display name (`app.git`), so two repositories with the
-- same folder name were one: a push to either superseded the other's run.
-- A repository is now identified by the canonical path of its bare git
-- directory; runs point at it, and "one live run per ref" is per
-- (repository, ref).
--
-- repos: git_dir is null only for a repository known from old runs by name
-- alone (upstream recorded no path); a later push to a path whose tail is
-- that name adopts it. hook_state says how quire knows the repository:
-- `installed` (quire-run install put the hook in), `seen` (a push or trigger
-- came through), `unknown` (only from old runs). repo_names keeps the names
-- a repository had before a rename, so old names still find it.
--
-- Existing runs get their repository from their recorded git_dir, else by
-- name: the one repository whose runs with that name recorded a path, else
-- a repository known by that name alone. The names are set by the upgrade's
-- Rust step (schema.rs), which also marks the file as quire's
-- (PRAGMA application_id) so it is never taken for an upstream store.
CREATE TABLE repos (
    id               INTEGER PRIMARY KEY,
    git_dir          TEXT UNIQUE,
    name             TEXT NOT NULL UNIQUE,
    hook_state       TEXT NOT NULL CHECK (hook_state IN ('installed', 'seen', 'unknown')),
    first_seen_at_ms INTEGER NOT NULL,
    installed_at_ms  INTEGER,
    CHECK ((hook_state = 'installed') = (installed_at_ms IS NOT NULL)),
    CHECK (git_dir IS NOT NULL OR hook_state = 'unknown')
);

CREATE TABLE repo_names (
    repo_id  INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name)
);

-- Provisional names (a space and the key, never a real name): the Rust step
-- gives every repository its display name.
INSERT INTO repos (git_dir, name, hook_state, first_seen_at_ms)
SELECT git_dir, ' ' || git_dir, 'seen', MIN(queued_at_ms)
FROM runs WHERE git_dir IS NOT NULL GROUP BY git_dir;

-- The name each repository's runs were recorded under, for the Rust step
-- to keep where it is still unambiguous.
CREATE TEMP TABLE recorded_name AS
SELECT p.id AS repo_id, MAX(r.repo) AS name
FROM runs AS r JOIN repos AS p ON p.git_dir = r.git_dir
GROUP BY p.id;

CREATE TEMP TABLE name_to_git_dir AS
SELECT repo AS name, MIN(git_dir) AS git_dir
FROM runs WHERE git_dir IS NOT NULL
GROUP BY repo HAVING COUNT(DISTINCT git_dir) = 1;
CREATE UNIQUE INDEX temp.name_to_git_dir_name ON name_to_git_dir (name);

INSERT INTO repos (git_dir, name, hook_state, first_seen_at_ms)
SELECT NULL, ' ' || repo, 'unknown', MIN(queued_at_ms)
FROM runs
WHERE git_dir IS NULL AND repo NOT IN (SELECT name FROM name_to_git_dir)
GROUP BY repo;

CREATE TABLE runs_new (
    id                  TEXT PRIMARY KEY NOT NULL,
    repo_id             INTEGER NOT NULL REFERENCES repos (id),
    ref_name            TEXT NOT NULL,
    sha                 TEXT NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'active', 'complete', 'failed', 'superseded')),
    failure_kind        TEXT
                        CHECK (failure_kind IN ('pipeline-failure', 'pipeline-invalid',
                                                'process-crashed', 'orphaned', 'cancelled')),
    failure_detail      TEXT,
    pushed_at_ms        INTEGER NOT NULL,
    queued_at_ms        INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER,
    traceparent         TEXT,
    worker_id           TEXT,
    worker_pid          INTEGER,
    lease_expires_at_ms INTEGER,
    previous_sha        TEXT,
    CHECK (state <> 'pending' OR (started_at_ms IS NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'active' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NULL)),
    CHECK (state <> 'complete' OR (started_at_ms IS NOT NULL AND finished_at_ms IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'superseded') OR finished_at_ms IS NOT NULL),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL)),
    CHECK (failure_detail IS NULL OR state = 'failed'),
    CHECK (state <> 'pending' OR worker_id IS NULL),
    CHECK ((worker_id IS NULL) = (worker_pid IS NULL)),
    CHECK ((worker_id IS NULL) = (lease_expires_at_ms IS NULL))
);

INSERT INTO runs_new (id, repo_id, ref_name, sha, state, failure_kind, failure_detail,
                      pushed_at_ms, queued_at_ms, started_at_ms, finished_at_ms,
                      traceparent, worker_id, worker_pid, lease_expires_at_ms, previous_sha)
SELECT r.id,
       COALESCE((SELECT p.id FROM repos AS p WHERE p.git_dir = r.git_dir),
                (SELECT p.id FROM name_to_git_dir AS n JOIN repos AS p ON p.git_dir = n.git_dir
                 WHERE n.name = r.repo),
                (SELECT p.id FROM repos AS p WHERE p.git_dir IS NULL AND p.name = ' ' || r.repo)),
       r.ref_name, r.sha, r.state, r.failure_kind, r.failure_detail,
       r.pushed_at_ms, r.queued_at_ms, r.started_at_ms, r.finished_at_ms,
       r.traceparent, r.worker_id, r.worker_pid, r.lease_expires_at_ms, r.previous_sha
FROM runs AS r;

DROP TABLE name_to_git_dir;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE UNIQUE INDEX runs_one_live ON runs (repo_id, ref_name)
    WHERE state IN ('pending', 'active');
CREATE INDEX runs_newest ON runs (queued_at_ms, id);
CREATE INDEX runs_repo_ref ON runs (repo_id, ref_name, queued_at_ms);
CREATE INDEX runs_pending ON runs (queued_at_ms, id) WHERE state = 'pending';

-- 'quir' in ASCII: quire's own stores say so in the file header.
PRAGMA application_id = 1903520114;
