-- The people a workspace knows by name, and who among them is a lead: a lead coordinates, adjudicates and
-- alone may see other labelers' answers to an item before answering it. Set by the coordinator
-- (`navigator labelers add NAME --lead`); a name not listed here is an ordinary labeler.
CREATE TABLE labelers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL DEFAULT 'labeler' CHECK (role IN ('labeler', 'lead')),
    created_at  TEXT NOT NULL
);
