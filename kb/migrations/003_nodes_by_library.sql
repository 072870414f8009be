-- "Nodes of this library above id N" (incremental search indexing, library scans) had
-- no index to walk: SQLite read the whole library through (library_id, uid) and sorted.
CREATE INDEX nodes_by_library ON nodes(library_id, id);
