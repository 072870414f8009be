-- A labeling team: who labels which item (assignment plans with overlap), and which
-- predictions are a lead's adjudication of a disagreement.
--
-- A plan is one run of `navigator assign` for one split: K distinct labelers per item.
-- Plans are never edited; assigning again adds a newer plan, and the newest plan of a
-- split is the one in force (kb.assignments). `uid` travels in exports, so offline
-- copies of a workspace merge their plans back without loss or duplication.
CREATE TABLE assignment_plans (
    id          INTEGER PRIMARY KEY,
    uid         TEXT NOT NULL UNIQUE,
    split       TEXT NOT NULL CHECK (split IN ('train', 'validation', 'prediction')),
    labelers    TEXT NOT NULL,
    overlap     INTEGER NOT NULL CHECK (overlap >= 1),
    seed        INTEGER NOT NULL,
    created_by  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX assignment_plans_by_split ON assignment_plans(split, created_at);

CREATE TABLE assignments (
    plan_id  INTEGER NOT NULL REFERENCES assignment_plans(id),
    item_id  INTEGER NOT NULL REFERENCES items(id),
    labeler  TEXT NOT NULL,
    PRIMARY KEY (plan_id, item_id, labeler)
);
CREATE INDEX assignments_by_labeler ON assignments(labeler, plan_id);

-- An adjudication is an ordinary prediction row written by the lead after looking at a
-- disagreement; this flag says so, so agreement figures can leave it out (it is not an
-- independent judgement) while the trainer and F(Z) use it like any other label.
ALTER TABLE predictions ADD COLUMN adjudication INTEGER NOT NULL DEFAULT 0 CHECK (adjudication IN (0, 1));
