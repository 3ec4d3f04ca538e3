-- 0005 (upstream 5): the token authenticates a run, not a user: name it so.
ALTER TABLE runs RENAME COLUMN auth_token TO run_token;
