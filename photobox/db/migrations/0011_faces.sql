-- 0007 (faces): each face's nearest neighbours, kept up to date as faces arrive (the face
-- stage runs a KNN query per new face anyway), so a full re-cluster reads this graph instead
-- of querying the vector index once per face (O(n·k) reads instead of O(n²·d) work).
-- A missing row (faces from before this table, or one whose list lost a neighbour to a
-- deletion) is rebuilt by the next re-cluster.
CREATE TABLE face_neighbours (
    face_id    INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    ids        BLOB NOT NULL,                  -- int64 face ids, nearest first
    distances  BLOB NOT NULL                   -- float32 cosine distances, same order
) STRICT;
