-- 0003 (upstream 3): the API era. Each run got a bearer token so that its
-- steps could call back into the API server.
ALTER TABLE runs ADD COLUMN auth_token TEXT;
