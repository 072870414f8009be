"""Assignment with overlap: balanced and deterministic plans, the queue filter, the migration that adds
them, and offline copies of a workspace merging back with nothing lost or doubled."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import click
import pandas
import pytest
from click.testing import CliRunner

from kb.assignments import (
    AssignmentError,
    all_plans,
    assign,
    balanced_plan,
    items_for,
    plan_in_force,
)
from kb.db import connect, migrate, schema_version
from kb.exchange import export_labels
from kb.importing import ImportProblem, StagedNode, import_staged
from kb.item_import import add_items
from kb.items import items_in
from kb.labels import LabelStore
from kb.libraries import Library, create_library, find_library
from kb.merge import merge_files
from kb.records import ItemRecord
from navigator.commands.team import assign as assign_command

# The number of the migration that adds assignment plans and the adjudication flag. If it is
# renumbered when branches merge, this is the one line to change.
TEAM_MIGRATION = 5
LABELERS = ("ann", "bob", "cy", "dee")


def build(conn: sqlite3.Connection, *, validation: int = 30) -> Library:
    library = create_library(conn, "z", uid="lib_z")
    import_staged(
        conn, library, iter([StagedNode(1, "s1", None, "statement", "A statement")]), source="t", importer="t"
    )
    train = [ItemRecord(id=f"t{n:02d}", x=f"Train {n}?", options=["yes", "no"], y="yes") for n in range(6)]
    dstar = [ItemRecord(id=f"v{n:02d}", x=f"Held out {n}?", options=["yes", "no"]) for n in range(2 * validation)]
    add_items(conn, list(enumerate(train, 1)), source="train", dstar=False)
    add_items(conn, list(enumerate(dstar, 1)), source="dstar", dstar=True, seed=0)
    return library


@pytest.fixture
def team(conn: sqlite3.Connection) -> Library:
    return build(conn)


# -- the plan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_items", "labelers", "overlap"), [(143, 4, 2), (30, 3, 2), (31, 5, 3), (7, 2, 1)])
def test_every_item_gets_k_distinct_labelers_and_shares_differ_by_at_most_one(
    n_items: int, labelers: int, overlap: int
) -> None:
    names = [f"l{n}" for n in range(labelers)]
    plan = balanced_plan([f"item{n}" for n in range(n_items)], names, overlap, seed=3)
    assert len(plan) == n_items
    assert all(len(set(assigned)) == overlap and set(assigned) <= set(names) for assigned in plan.values())
    load = Counter(name for assigned in plan.values() for name in assigned)
    assert sum(load.values()) == n_items * overlap
    assert max(load.values()) - min(load.values()) <= 1, load
    if overlap > 1:
        pairs = Counter(pair for assigned in plan.values() for pair in combinations(assigned, 2))
        # Every pair of labelers shares items, roughly evenly, so agreement can be measured between all of them.
        assert set(pairs) == set(combinations(sorted(names), 2))
        assert max(pairs.values()) - min(pairs.values()) <= 2, pairs


def test_a_plan_depends_on_the_seed_not_on_the_order_things_are_given_in() -> None:
    items = [f"item{n}" for n in range(40)]
    first = balanced_plan(items, LABELERS, 2, seed=0)
    assert balanced_plan(list(reversed(items)), list(reversed(LABELERS)), 2, seed=0) == first
    assert balanced_plan(items, LABELERS, 2, seed=1) != first


@pytest.mark.parametrize(
    ("labelers", "overlap", "message"),
    [
        (["ann", "bob"], 3, "needs at least 3 distinct labelers"),
        (["ann", "ann", "bob"], 2, "'ann' is named twice"),
        (["ann", " "], 1, "comma-separated list"),
        ([], 1, "comma-separated list"),
        (["ann", "bob"], 0, "at least 1"),
    ],
)
def test_impossible_plans_are_refused_and_write_nothing(
    conn: sqlite3.Connection, team: Library, labelers: list[str], overlap: int, message: str
) -> None:
    with pytest.raises(AssignmentError, match=message):
        assign(conn, labelers, overlap)
    assert all_plans(conn) == []
    with pytest.raises(AssignmentError, match="no prediction items|unknown split"):
        assign(conn, ["ann"], 1, split="nonsense")


def test_the_queue_follows_the_plan_in_force(conn: sqlite3.Connection, team: Library) -> None:
    queue = items_in(conn, ("train", "validation"))
    validation = [item for item in queue if item.split == "validation"]
    assert items_for(conn, "ann", queue) == queue  # no plan: everyone gets everything, as before

    plan = assign(conn, LABELERS, 2, seed=5, created_by="lead")
    assert plan_in_force(conn, "validation") == plan and plan_in_force(conn, "train") is None
    assert plan.load() == dict.fromkeys(LABELERS, 15) and sum(plan.shared().values()) == 30
    seen: Counter[str] = Counter()
    for name in LABELERS:
        mine = items_for(conn, name, queue)
        assert [item for item in mine if item.split == "train"] == [i for i in queue if i.split == "train"]
        shared = [item for item in mine if item.split == "validation"]
        assert [item.uid for item in shared] == [i.uid for i in validation if name in plan.items[i.uid]]
        seen.update(item.uid for item in shared)
    assert seen == dict.fromkeys((item.uid for item in validation), 2)
    assert items_for(conn, "lead", queue) == queue  # not named in the plan: the whole queue

    # An item imported after the plan is nobody's share yet, so everyone sees it.
    add_items(conn, [(1, ItemRecord(id="late", x="Late?", options=["yes", "no"]))], source="late", dstar=True, seed=9)
    late = [item for item in items_in(conn, ("validation", "prediction")) if item.uid == "late"]
    assert items_for(conn, "ann", late) == late

    # Assigning again puts a newer plan in force; the old one is kept.
    newer = assign(conn, ["ann", "bob"], 1, seed=5)
    assert plan_in_force(conn, "validation") == newer and len(all_plans(conn)) == 2
    assert items_for(conn, "cy", queue) == queue
    assert len([i for i in items_for(conn, "ann", queue) if i.split == "validation"]) == 15


def test_the_cli_assigns_and_reports_the_shares(workspace: Path, conn: sqlite3.Connection, team: Library) -> None:
    group = click.Group(commands={"assign": assign_command})
    runner = CliRunner()
    result = runner.invoke(
        group, ["assign", "-w", str(workspace), "--labelers", "ann, bob,cy", "--overlap", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["split"] == "validation" and shown["items"] == 30 and shown["overlap"] == 2
    assert shown["load"] == {"ann": 20, "bob": 20, "cy": 20}
    assert sum(shown["shared"].values()) == 30
    text = runner.invoke(group, ["assign", "-w", str(workspace), "--labelers", "ann,bob", "--overlap", "2"])
    assert text.exit_code == 0 and "30 validation items" in text.stdout and "ann 30" in text.stdout
    bad = runner.invoke(group, ["assign", "-w", str(workspace), "--labelers", "ann", "--overlap", "2"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: --overlap 2 needs at least 2")
    assert len(all_plans(conn)) == 2


# -- the migration ------------------------------------------------------------------------------------


def test_the_migration_adds_plans_and_the_adjudication_flag_to_an_existing_workspace(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    migrate(raw, target=TEAM_MIGRATION - 1)
    assert schema_version(raw) < TEAM_MIGRATION
    raw.executescript(
        """
        BEGIN;
        INSERT INTO libraries (id, uid, name, created_at) VALUES (1, 'lib', 'z', 'T');
        INSERT INTO nodes (id, uid, library_id, parent_id, position, depth, kind, title, origin, created_at)
            VALUES (1, 'root', 1, NULL, 0, 0, 'library', 'z', 'import', 'T');
        INSERT INTO items (id, uid, x, options, split, created_at)
            VALUES (1, 'v1', 'Q?', '["a", "b"]', 'validation', 'T');
        INSERT INTO predictions (uid, item_id, library_id, labeler, probs, created_at)
            VALUES ('p1', 1, 1, 'ann', '{"a": 1.0, "b": 0.0}', 'T');
        COMMIT;
        """
    )
    raw.close()
    conn = connect(path)
    assert schema_version(conn) >= TEAM_MIGRATION
    assert conn.execute("SELECT adjudication FROM predictions WHERE uid = 'p1'").fetchone()[0] == 0
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE predictions SET adjudication = 2 WHERE uid = 'p1'")
    plan = assign(conn, ["ann", "bob"], 1)
    assert plan.items == {"v1": plan.items["v1"]} and len(plan.items["v1"]) == 1
    conn.close()


# -- offline copies merging back -------------------------------------------------------------------------


def copy_workspace(source: Path, target: Path) -> sqlite3.Connection:
    """A labeler's offline copy: the whole file, as `cp` would take it."""
    original, copy = sqlite3.connect(source), sqlite3.connect(target)
    original.backup(copy)
    original.close()
    copy.close()
    return connect(target)


def label_my_share(conn: sqlite3.Connection, name: str) -> int:
    library = find_library(conn, "z")
    assert library is not None
    store = LabelStore(conn, name)
    queue = items_for(conn, name, items_in(conn, ("validation",)))
    for item in queue:
        store.record_prediction(item, library.id, {"yes": 0.8, "no": 0.2} if name < "c" else {"yes": 0.3, "no": 0.7})
    return len(queue)


def export_file(conn: sqlite3.Connection, path: Path, labeler: str | None = None) -> Path:
    with path.open("w", encoding="utf-8") as out:
        export_labels(conn, out, labeler=labeler)
    return path


def state(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        "plans": [
            tuple(row)
            for row in conn.execute(
                "SELECT uid, split, labelers, overlap, seed, created_by, created_at FROM assignment_plans ORDER BY uid"
            )
        ],
        "rows": sorted(
            tuple(row)
            for row in conn.execute(
                "SELECT p.uid, i.uid, a.labeler FROM assignments a JOIN assignment_plans p ON p.id = a.plan_id"
                " JOIN items i ON i.id = a.item_id"
            )
        ),
        "labels": sorted(tuple(row) for row in conn.execute("SELECT uid, labeler, probs FROM predictions")),
    }


@pytest.fixture
def lead(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "lead.db", create=True)
    build(conn)
    yield conn
    conn.close()


def test_offline_copies_merge_back_with_nothing_lost_or_doubled(lead: sqlite3.Connection, tmp_path: Path) -> None:
    plan = assign(lead, ["ann", "bob", "cy"], 2, seed=1, created_by="lead")
    copies = {name: copy_workspace(tmp_path / "lead.db", tmp_path / f"{name}.db") for name in ("ann", "bob", "cy")}
    labelled = {name: label_my_share(conn, name) for name, conn in copies.items()}
    assert labelled == {"ann": 20, "bob": 20, "cy": 20}
    exports = [export_file(conn, tmp_path / f"{name}.jsonl", labeler=name) for name, conn in copies.items()]
    records = [json.loads(line) for line in exports[0].read_text(encoding="utf-8").splitlines()]
    [carried] = [record for record in records if record["type"] == "assignment"]
    assert carried["id"] == plan.uid and carried["labeler"] == "lead" and len(carried["assignments"]) == 30
    assert {record["id"] for record in records if record["type"] == "item"} >= set(plan.items)
    frame = pandas.read_json(exports[0], lines=True)  # an export with a plan still reads as a table
    assert set(frame["type"]) == {"item", "prediction", "assignment"} and len(frame) == len(records)

    report = merge_files(lead, exports)
    assert report.added["prediction"] == 60 and report.added["assignment"] == 0
    assert report.present["assignment"] == 3
    library = find_library(lead, "z")
    assert library is not None
    per_item = Counter(
        item_id for name in ("ann", "bob", "cy") for item_id in LabelStore(lead, name).current_predictions(library.id)
    )
    validation = items_in(lead, ("validation",))
    assert sorted(per_item.values()) == [2] * len(validation)  # every validation item: exactly its 2 labels
    for item in validation:
        labelers = {n for n in ("ann", "bob", "cy") if item.id in LabelStore(lead, n).current_predictions(library.id)}
        assert tuple(sorted(labelers)) == plan.items[item.uid]
    assert all_plans(lead) == [plan]

    before = state(lead)
    again = merge_files(lead, exports)
    assert sum(again.added.values()) == 0 and state(lead) == before


def test_a_plan_made_offline_merges_in_and_every_copy_agrees_on_the_plan_in_force(
    lead: sqlite3.Connection, tmp_path: Path
) -> None:
    first = assign(lead, ["ann", "bob"], 1, seed=0)
    offline = copy_workspace(tmp_path / "lead.db", tmp_path / "bob.db")
    newer = assign(offline, ["ann", "bob", "cy"], 2, seed=4, created_by="bob")
    older_elsewhere = assign(lead, ["dee"], 1, seed=0, split="train")

    merge_files(lead, [export_file(offline, tmp_path / "bob.jsonl")])
    merge_files(offline, [export_file(lead, tmp_path / "lead.jsonl")])
    assert {plan.uid for plan in all_plans(lead)} == {first.uid, newer.uid, older_elsewhere.uid}
    assert [plan.uid for plan in all_plans(lead)] == [plan.uid for plan in all_plans(offline)]
    for conn in (lead, offline):
        in_force = plan_in_force(conn, "validation")
        assert in_force is not None and (in_force.uid, in_force.items) == (newer.uid, newer.items)
        on_train = plan_in_force(conn, "train")
        assert on_train is not None and on_train.uid == older_elsewhere.uid
    assert state(lead) == state(offline)


def test_a_plan_that_does_not_fit_the_workspace_is_refused_whole(lead: sqlite3.Connection, tmp_path: Path) -> None:
    assign(lead, ["ann", "bob"], 2)
    path = export_file(lead, tmp_path / "all.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    other = connect(tmp_path / "other.db", create=True)
    build(other, validation=3)  # fewer items: the plan names items this workspace lacks
    before = state(other)
    with pytest.raises(ImportProblem, match="split: conflict: item 'v00' already exists .* different split"):
        merge_files(other, [path])  # the plan's items travel with it, and v00 is another item here
    plan_only = tmp_path / "plan.jsonl"
    plan_only.write_text(lines[-1] + "\n", encoding="utf-8")
    with pytest.raises(ImportProblem, match="assignments: item 'v..' is (not in this workspace|a prediction item)"):
        merge_files(other, [plan_only])
    assert state(other) == before

    # Same uid, different content: a conflict, named, and nothing written.
    record = json.loads(lines[-1])
    record["seed"] = 99
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps(record) + "\n", encoding="utf-8")
    before = state(lead)
    with pytest.raises(ImportProblem, match="seed: conflict: assignment"):
        merge_files(lead, [changed])
    assert state(lead) == before

    # A record whose items do not match its own overlap is refused before anything is looked up.
    record = json.loads(lines[-1])
    record["assignments"][0]["labelers"] = ["ann"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(ImportProblem, match="assignments: .*must have 2 distinct labelers"):
        merge_files(lead, [broken])
    other.close()
