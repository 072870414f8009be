-- Model credences: M_Z's own P(statement true) for the statements it writes, stored as credence
-- rows whose source (and labeler) is `model:<model name>`, so they are never counted as a person's.
-- SQLite cannot change a CHECK constraint in place, so `credences` is rebuilt with the wider
-- source rule and a `provenance` column (what produced a non-human credence: model, sha256,
-- prompt version, raw score, calibration), then renamed back. `credence_nodes` is rebuilt with it
-- because its foreign key must point at the new table; every row and id is copied unchanged.
-- The new tables reference their own names while they exist side by side; RENAME rewrites those
-- references, so no foreign key ever points at a table being dropped.

CREATE TABLE credences_next (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    library_id      INTEGER NOT NULL REFERENCES libraries(id),
    labeler         TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT 'human'
                    CHECK (source IN ('human', 'simulated', 'imitated')
                           OR (source LIKE 'model:_%' AND labeler = source)),
    scope           TEXT NOT NULL CHECK (scope IN ('statements', 'library')),
    statements      TEXT NOT NULL DEFAULT '[]',
    statements_key  TEXT NOT NULL DEFAULT '',
    p               REAL NOT NULL CHECK (p >= 0.0 AND p <= 1.0),
    seconds         REAL,
    note            TEXT NOT NULL DEFAULT '',
    supersedes      TEXT REFERENCES credences_next(uid),
    retracted       INTEGER NOT NULL DEFAULT 0 CHECK (retracted IN (0, 1)),
    created_at      TEXT NOT NULL,
    provenance      TEXT NOT NULL DEFAULT '{}'
);

INSERT INTO credences_next (id, uid, library_id, labeler, source, scope, statements, statements_key, p, seconds,
                            note, supersedes, retracted, created_at)
    SELECT id, uid, library_id, labeler, source, scope, statements, statements_key, p, seconds,
           note, supersedes, retracted, created_at
    FROM credences ORDER BY id;

CREATE TABLE credence_nodes_next (
    credence_id  INTEGER NOT NULL REFERENCES credences_next(id),
    node_uid     TEXT NOT NULL,
    PRIMARY KEY (credence_id, node_uid)
);

INSERT INTO credence_nodes_next (credence_id, node_uid) SELECT credence_id, node_uid FROM credence_nodes;

DROP TABLE credence_nodes;
DROP TABLE credences;
ALTER TABLE credences_next RENAME TO credences;
ALTER TABLE credence_nodes_next RENAME TO credence_nodes;

CREATE INDEX credences_by_key ON credences(library_id, labeler, statements_key);
CREATE INDEX credences_by_supersedes ON credences(supersedes);
CREATE INDEX credences_by_source ON credences(library_id, source);
CREATE INDEX credence_nodes_by_node ON credence_nodes(node_uid);
