-- 0003 (seed): the API era. Each run got a bearer token so that its steps
-- could call back into the API server (upload artifacts, post statuses).
ALTER TABLE runs ADD COLUMN auth_token TEXT;
