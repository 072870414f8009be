-- Labeler sessions: where each labeler was (so reopening resumes exactly there)
-- and their bookmarks. Also indexes that make "current label" queries cheap.

CREATE TABLE labeler_state (
    labeler     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (labeler, key)
);

CREATE TABLE bookmarks (
    id          INTEGER PRIMARY KEY,
    labeler     TEXT NOT NULL,
    node_id     INTEGER NOT NULL REFERENCES nodes(id),
    created_at  TEXT NOT NULL,
    UNIQUE (labeler, node_id)
);

CREATE INDEX predictions_by_supersedes ON predictions(supersedes);
CREATE INDEX credences_by_supersedes ON credences(supersedes);
