-- 0016: runs are claimed fairly across repositories (docs/STATE.md,
-- "Claim order"). `repos.claim_turn`: the turn of the repository's last
-- claim, one more than the largest of every repository's at the time
-- (null: never claimed); the next claim goes to the repository with
-- pending runs whose turn is oldest, so a push of a thousand refs to one
-- repository delays another's next run by at most one run per worker. A
-- counter, not a time: a clock set back cannot reorder the turns.
ALTER TABLE repos ADD COLUMN claim_turn INTEGER;
CREATE INDEX repos_claim_turn ON repos (claim_turn);

-- A repository's oldest pending run, and how many of its runs are active
-- (`max_workers_per_repo`), each one index search per repository.
CREATE INDEX runs_pending_repo ON runs (repo_id, queued_at_ms, id) WHERE state = 'pending';
CREATE INDEX runs_active_repo ON runs (repo_id) WHERE state = 'active';
