-- 0020: `list` shows a run by the shortest suffix of its id that no
-- other of the newest 10,000 runs' ids contains (docs/CLI.md, "Selecting
-- runs"). Rather than read those 10,000 ids, it looks up the few ids that
-- contain the suffix's last 8 characters (docs/STATE.md, "Short ids"). In
-- an id of quire's shape (8-4-4-4-12 hex digits) 8 hex digits in a row
-- are its first group (the primary key's index finds those) or 8 of its
-- last group, beginning at one of that group's first 5 digits; each of
-- those 5 places is one range of one of these two indexes, over digits
-- 3..10 and 5..12 of the last group.
CREATE INDEX runs_id_middle ON runs (substr(id, 27, 8));
CREATE INDEX runs_id_tail ON runs (substr(id, 29, 8));

-- The runs whose id is not of quire's shape: none, unless written by hand
-- (quire makes every id, and rewrites an upstream store's others). While
-- there is one, `list` reads the newest ids as before.
CREATE INDEX runs_odd_id ON runs (id) WHERE id NOT GLOB
    '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]';
