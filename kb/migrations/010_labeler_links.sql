-- The secret link each labeler opens the served app with (`navigator labelers add`/`link`): only a
-- SHA-256 of the token is kept, so the workspace file never holds a working secret. A revoked or
-- replaced token stops matching at once; revoked_at says when access was taken away.
ALTER TABLE labelers ADD COLUMN token_hash TEXT;
ALTER TABLE labelers ADD COLUMN token_issued_at TEXT;
ALTER TABLE labelers ADD COLUMN revoked_at TEXT;
CREATE UNIQUE INDEX labelers_by_token ON labelers(token_hash);
