-- The first schema: libraries (candidate Zs), their node trees, task items,
-- and the label tables later features write (predictions, credences, LLM calls).
-- Every row that can leave the machine has a stable string `uid`; integer ids
-- are internal only.

CREATE TABLE libraries (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    parent_id   INTEGER REFERENCES libraries(id),
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

-- A node's uid is unique within its library. A fork keeps its parent's node
-- uids, so a statement shared by two candidate Zs is the same statement and
-- a credence on it applies to both.
CREATE TABLE nodes (
    id            INTEGER PRIMARY KEY,
    uid           TEXT NOT NULL,
    library_id    INTEGER NOT NULL REFERENCES libraries(id),
    parent_id     INTEGER REFERENCES nodes(id),
    position      INTEGER NOT NULL,
    depth         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL DEFAULT '',
    origin        TEXT NOT NULL CHECK (origin IN ('import', 'human', 'llm')),
    review        TEXT NOT NULL DEFAULT 'none'
                  CHECK (review IN ('none', 'accepted', 'rejected')),
    replaces_id   INTEGER REFERENCES nodes(id),
    provenance    TEXT NOT NULL DEFAULT '{}',
    extra         TEXT NOT NULL DEFAULT '{}',
    child_count   INTEGER NOT NULL DEFAULT 0,
    subtree_size  INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    UNIQUE (library_id, uid)
);
CREATE INDEX nodes_by_parent ON nodes(parent_id, position);
CREATE INDEX nodes_by_uid ON nodes(uid);
CREATE UNIQUE INDEX one_root_per_library ON nodes(library_id) WHERE parent_id IS NULL;

-- Gold `y` is stored only for D (split = train). For D* it lives in an
-- answer key file outside the workspace, and the CHECK makes that a rule.
CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    task        TEXT NOT NULL DEFAULT '',
    x           TEXT NOT NULL,
    options     TEXT NOT NULL,
    split       TEXT NOT NULL CHECK (split IN ('train', 'validation', 'prediction')),
    y           TEXT,
    extra       TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    CHECK (split = 'train' OR y IS NULL)
);
CREATE INDEX items_by_split ON items(split, id);

-- Labels are append-only. An undo or a correction is a new row whose
-- `supersedes` names the row it replaces; `retracted` = 1 marks an undo.
CREATE TABLE predictions (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    item_id     INTEGER NOT NULL REFERENCES items(id),
    library_id  INTEGER NOT NULL REFERENCES libraries(id),
    labeler     TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT 'human' CHECK (source IN ('human', 'simulated')),
    probs       TEXT NOT NULL,
    cited       TEXT NOT NULL DEFAULT '[]',
    trail       TEXT NOT NULL DEFAULT '[]',
    seconds     REAL,
    note        TEXT NOT NULL DEFAULT '',
    supersedes  TEXT REFERENCES predictions(uid),
    retracted   INTEGER NOT NULL DEFAULT 0 CHECK (retracted IN (0, 1)),
    created_at  TEXT NOT NULL
);
CREATE INDEX predictions_by_item ON predictions(item_id, labeler);
CREATE INDEX predictions_by_labeler ON predictions(labeler, created_at);

-- A credence is P(all of `statements` true); scope = library means P(Z) for
-- the whole library and `statements` is empty. `statements_key` is the sorted
-- uids joined by a space, so equal conjunctions compare equal.
CREATE TABLE credences (
    id              INTEGER PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    library_id      INTEGER NOT NULL REFERENCES libraries(id),
    labeler         TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT 'human' CHECK (source IN ('human', 'simulated', 'imitated')),
    scope           TEXT NOT NULL CHECK (scope IN ('statements', 'library')),
    statements      TEXT NOT NULL DEFAULT '[]',
    statements_key  TEXT NOT NULL DEFAULT '',
    p               REAL NOT NULL CHECK (p >= 0.0 AND p <= 1.0),
    seconds         REAL,
    note            TEXT NOT NULL DEFAULT '',
    supersedes      TEXT REFERENCES credences(uid),
    retracted       INTEGER NOT NULL DEFAULT 0 CHECK (retracted IN (0, 1)),
    created_at      TEXT NOT NULL
);
CREATE INDEX credences_by_key ON credences(library_id, labeler, statements_key);

CREATE TABLE credence_nodes (
    credence_id  INTEGER NOT NULL REFERENCES credences(id),
    node_uid     TEXT NOT NULL,
    PRIMARY KEY (credence_id, node_uid)
);
CREATE INDEX credence_nodes_by_node ON credence_nodes(node_uid);

CREATE TABLE llm_calls (
    id            INTEGER PRIMARY KEY,
    uid           TEXT NOT NULL UNIQUE,
    node_id       INTEGER REFERENCES nodes(id),
    purpose       TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_sha256  TEXT,
    prompt        TEXT NOT NULL,
    response      TEXT,
    params        TEXT NOT NULL DEFAULT '{}',
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    ms            REAL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'cancelled')),
    error         TEXT,
    labeler       TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX llm_calls_by_node ON llm_calls(node_id);

-- What the search index beside the file has seen. Nodes are append-only
-- (an edit is a new node), so "index everything above max_node_id" is a
-- complete incremental update.
CREATE TABLE search_index_state (
    library_id   INTEGER PRIMARY KEY REFERENCES libraries(id),
    max_node_id  INTEGER NOT NULL,
    doc_count    INTEGER NOT NULL,
    built_at     TEXT NOT NULL
);
