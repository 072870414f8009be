-- The results of `navigator study` (results.json, as text), kept so the app's metrics screen can draw
-- the latest study's figures without fitting anything itself. Written by models/imitation/study_store.py.
CREATE TABLE studies (
    id          INTEGER PRIMARY KEY,
    library_id  INTEGER NOT NULL REFERENCES libraries(id),
    seed        INTEGER NOT NULL,
    results     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX studies_by_library ON studies(library_id, id);
