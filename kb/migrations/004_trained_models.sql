-- Fitted imitation models, versioned per library and kind. The model is stored as
-- pickled bytes in the row itself so a workspace stays one file that can be copied
-- whole; `data_hash` names exactly the labels (and library state) it was fitted on,
-- and `metrics` holds the cross-validated report with its sample sizes.
CREATE TABLE trained_models (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    library_id  INTEGER NOT NULL REFERENCES libraries(id),
    kind        TEXT NOT NULL DEFAULT 'prediction',
    version     INTEGER NOT NULL,
    data_hash   TEXT NOT NULL,
    n_labels    INTEGER NOT NULL,
    n_items     INTEGER NOT NULL,
    n_labelers  INTEGER NOT NULL,
    metrics     TEXT NOT NULL DEFAULT '{}',
    model       BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (library_id, kind, version)
);
