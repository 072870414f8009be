"""Export and merge of labels: round trips, idempotence, several labelers, and bad input that writes nothing.

Every workspace here is built the same way (one small library from the same node
JSONL, the same items), as labelers' copies of one experiment would be; library
uids still differ between them, as they do between machines.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pandas
import pytest
from click.testing import CliRunner

from kb.db import connect
from kb.exchange import SCHEMA_DIR, export_labels, schema_documents, schema_text, shipped_schema
from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import ImportProblem, import_staged
from kb.item_import import add_items
from kb.items import item_by_uid
from kb.labels import LabelStore
from kb.libraries import Library, create_library, find_library
from kb.merge import merge_files, read_export
from kb.progress import NoProgress
from kb.records import EXPORT_MODELS, ItemRecord
from kb.search import SearchIndex
from kb.tree import Node, add_children, node_by_uid
from navigator.commands.exchange import export, merge

NODES = [
    {"id": "ch1", "title": "Chapter one", "kind": "chapter"},
    {"id": "s1", "parent": "ch1", "title": "Mongolia is landlocked."},
    {"id": "s2", "parent": "ch1", "title": "France has a coastline."},
    {"id": "ch2", "title": "Chapter two", "kind": "chapter"},
    {"id": "s3", "parent": "ch2", "title": "Chad is landlocked."},
]
ITEMS = [
    ItemRecord(id="i1", x="Is Mongolia landlocked?", options=["yes", "no"], y="yes"),
    ItemRecord(id="i2", x="Which band?", options=["a", "b", "c"]),
]
DSTAR = [ItemRecord(id=f"d{n}", x=f"D* question {n}?", options=["yes", "no"]) for n in range(4)]
LABEL_TABLES = ("libraries", "nodes", "items", "predictions", "credences", "credence_nodes")


@pytest.fixture
def nodes_file(tmp_path: Path) -> Path:
    path = tmp_path / "z.jsonl"
    path.write_text("".join(json.dumps(node) + "\n" for node in NODES), encoding="utf-8")
    return path


@pytest.fixture
def make_workspace(tmp_path: Path, nodes_file: Path) -> Iterator[Callable[[str], sqlite3.Connection]]:
    """make_workspace(name): a fresh workspace with library 'z' and the items, like every labeler's copy."""
    opened: list[sqlite3.Connection] = []

    def make(name: str) -> sqlite3.Connection:
        conn = connect(tmp_path / f"{name}.db", create=True)
        opened.append(conn)
        fill(conn, nodes_file)
        return conn

    yield make
    for conn in opened:
        conn.close()


def fill(conn: sqlite3.Connection, nodes_file: Path) -> Library:
    library = create_library(conn, "z")
    import_staged(conn, library, read_jsonl_nodes(nodes_file, NoProgress()), source=str(nodes_file), importer="jsonl")
    add_items(conn, list(enumerate(ITEMS, 1)), source="items", dstar=False)
    add_items(conn, list(enumerate(DSTAR, 1)), source="dstar", dstar=True, seed=0)
    return library


@pytest.fixture
def target(conn: sqlite3.Connection, nodes_file: Path) -> sqlite3.Connection:
    """The receiving workspace is the shared `conn` fixture, so `check_tree` checks it."""
    fill(conn, nodes_file)
    return conn


def lib(conn: sqlite3.Connection) -> Library:
    found = find_library(conn, "z")
    assert found is not None
    return found


def node(conn: sqlite3.Connection, uid: str) -> Node:
    found = node_by_uid(conn, uid, lib(conn).id)
    assert found is not None, uid
    return found


def dump(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every row of every table a merge could touch, plus the integrity check."""
    tables: dict[str, Any] = {
        table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")] for table in LABEL_TABLES
    }
    tables["integrity_check"] = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    return tables


def normalised(conn: sqlite3.Connection, value: Any) -> Any:
    """`value` with the library root's uid (derived from the per-workspace library uid) as ROOT."""
    return json.loads(json.dumps(value).replace(f"root_{lib(conn).uid}", "ROOT"))


def label_rows(conn: sqlite3.Connection, table: str) -> dict[str, dict[str, Any]]:
    """uid → the row without internal ids, with item and library by uid/name, comparable across workspaces."""
    join = " JOIN items i ON i.id = x.item_id" if table == "predictions" else ""
    item = ", i.uid AS item_uid" if table == "predictions" else ""
    rows = conn.execute(
        f"SELECT x.*, l.name AS library_name{item} FROM {table} x JOIN libraries l ON l.id = x.library_id{join}"
    )
    return normalised(
        conn,
        {
            row["uid"]: {k: row[k] for k in row.keys() if k not in ("id", "item_id", "library_id")}  # noqa: SIM118
            for row in rows
        },
    )


def generated_nodes(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT n.uid, p.uid AS parent, n.depth, n.kind, n.title, n.body, n.origin, n.review, n.provenance,"
        " n.created_at, r.uid AS replaces, n.child_count, n.subtree_size"
        " FROM nodes n JOIN nodes p ON p.id = n.parent_id LEFT JOIN nodes r ON r.id = n.replaces_id"
        " WHERE n.origin != 'import'"
    )
    root = f"root_{lib(conn).uid}"
    return {row["uid"]: {**dict(row), "parent": "ROOT" if row["parent"] == root else row["parent"]} for row in rows}


def current(conn: sqlite3.Connection, labeler: str) -> Any:
    store = LabelStore(conn, labeler)
    uids = {row["id"]: row["uid"] for row in conn.execute("SELECT id, uid FROM items")}
    predictions = {
        uids[item_id]: (p.uid, p.probs, p.cited, p.trail, p.note)
        for item_id, p in store.current_predictions(lib(conn).id).items()
    }
    credences = {" ".join(key): (c.uid, c.p) for key, c in store.current_credences(lib(conn).id).items()}
    return normalised(conn, [predictions, credences])


def ann_labels(conn: sqlite3.Connection) -> dict[str, str]:
    """Ann unpacks s1 with the LLM (two levels), adds a note under the root, edits a generated
    node, predicts, relabels, undoes, and gives credences. Returns the uids of what she made."""
    llm = {"model": "fake-llm", "labeler": "ann", "call": "call_1", "prompt": "Unpack: Mongolia is landlocked."}
    gen1, gen2 = add_children(
        conn,
        node(conn, "s1"),
        [("It has no coast.", "No sea borders it.", "statement"), ("It borders two states.", "", "statement")],
        origin="llm",
        provenance=llm,
    )
    (gen1a,) = add_children(
        conn, gen1, [("Russia and China surround it.", "", "statement")], origin="llm", provenance={**llm, "call": "c2"}
    )
    root = node(conn, f"root_{lib(conn).uid}")
    (note,) = add_children(conn, root, [("Ann's notes", "", "note")], origin="human", provenance={"labeler": "ann"})
    # An edit of a generated node, as kb.review writes one: a human sibling naming the original, which is rejected.
    top = conn.execute("SELECT MAX(position) FROM nodes WHERE parent_id = ?", (gen2.parent_id,)).fetchone()[0]
    edit_id = conn.execute(
        "INSERT INTO nodes (uid, library_id, parent_id, position, depth, kind, title, origin, replaces_id, provenance,"
        " created_at) VALUES ('edit1', ?, ?, ?, ?, 'statement', 'It borders exactly two states.', 'human', ?, ?,"
        " '2026-01-01T00:00:00.000000Z')",
        (
            gen2.library_id,
            gen2.parent_id,
            top + 1,
            gen2.depth,
            gen2.id,
            json.dumps({"edit_of": gen2.uid, "edited_by": "ann"}),
        ),
    ).lastrowid
    conn.execute("UPDATE nodes SET review = 'rejected' WHERE id = ?", (gen2.id,))
    conn.execute("UPDATE nodes SET child_count = child_count + 1 WHERE id = ?", (gen2.parent_id,))
    from kb.tree import grow_ancestors

    assert edit_id is not None
    grow_ancestors(conn, gen2.parent_id or 0, 1)

    store = LabelStore(conn, "ann")
    library = lib(conn)
    i1, i2 = item_by_uid(conn, "i1"), item_by_uid(conn, "i2")
    assert i1 is not None and i2 is not None
    store.record_prediction(i1, library.id, {"yes": 0.6, "no": 0.4}, cited=["s1"], trail=["ch1", "s1"], seconds=3.5)
    store.record_prediction(
        i1, library.id, {"yes": 0.9, "no": 0.1}, cited=[gen1a.uid, "s2"], trail=["s1", gen1.uid, gen1a.uid], note="sure"
    )
    store.record_prediction(i2, library.id, {"a": 0.2, "b": 0.3, "c": 0.5}, cited=[note.uid])
    validation = conn.execute("SELECT uid FROM items WHERE split = 'validation' ORDER BY uid LIMIT 1").fetchone()[0]
    d_item = item_by_uid(conn, validation)
    assert d_item is not None
    store.record_prediction(d_item, library.id, {"yes": 0.25, "no": 0.75})
    store.record_credence(library.id, [gen2, node(conn, "s3")], 0.7)
    store.record_credence(library.id, [gen2, node(conn, "s3")], 0.6)
    store.record_credence(library.id, [], 0.1)
    store.record_credence(library.id, [root], 0.95)
    store.record_prediction(i2, library.id, {"a": 0.1, "b": 0.1, "c": 0.8})
    assert store.undo_last() is not None  # withdraws the i2 relabel: the first i2 label is current again
    store.record_credence(library.id, [node(conn, "s1")], 0.5)
    assert store.undo_last() is not None  # a credence retraction too
    return {"gen1": gen1.uid, "gen2": gen2.uid, "gen1a": gen1a.uid, "note": note.uid, "edit": "edit1"}


def export_to(conn: sqlite3.Connection, path: Path, labeler: str | None = None) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        export_labels(conn, handle, labeler=labeler)
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- round trip ----------------------------------------------------------------------------------------


def test_round_trip_into_a_fresh_workspace(
    make_workspace: Callable[[str], sqlite3.Connection],
    target: sqlite3.Connection,
    check_tree: Callable[[], None],
    tmp_path: Path,
) -> None:
    source = make_workspace("ann")
    made = ann_labels(source)
    path = export_to(source, tmp_path / "ann.jsonl")
    assert lib(source).uid != lib(target).uid  # found by name, as between two machines

    report = merge_files(target, [path])

    assert report.added == {"item": 0, "node": 5, "prediction": 6, "credence": 6, "assignment": 0}
    assert report.present == {"item": 3, "node": 0, "prediction": 0, "credence": 0, "assignment": 0}
    assert [library.name for library in report.libraries] == ["z"]
    # Every row, superseded and retraction rows included, arrived unchanged (the root is the receiving root).
    for table in ("predictions", "credences"):
        assert label_rows(target, table) == label_rows(source, table)
    for table in ("predictions", "credences"):
        assert target.execute(f"SELECT COUNT(*) FROM {table} WHERE retracted = 1").fetchone()[0] == 1
    assert current(target, "ann") == current(source, "ann")
    assert current(target, "ann")[0]["i2"][1] == {"a": 0.2, "b": 0.3, "c": 0.5}  # the undo survived
    # Generated and human nodes travel with the labels: same parents, provenance, review, counts.
    moved = generated_nodes(target)
    assert moved == generated_nodes(source)
    assert moved[made["gen1a"]]["parent"] == made["gen1"]
    assert moved[made["gen1"]]["parent"] == "s1"
    assert moved[made["note"]]["parent"] == "ROOT"
    assert moved[made["edit"]]["replaces"] == made["gen2"]
    assert moved[made["gen2"]]["review"] == "rejected"
    assert json.loads(moved[made["gen1a"]]["provenance"])["call"] == "c2"
    assert node(target, "s1").subtree_size == 5 and node(target, "s1").child_count == 3
    assert node(target, "ch1").subtree_size == 7
    assert node(target, f"root_{lib(target).uid}").subtree_size == 11
    check_tree()
    links = target.execute("SELECT COUNT(*) FROM credence_nodes").fetchone()[0]
    assert links == source.execute("SELECT COUNT(*) FROM credence_nodes").fetchone()[0] == 6
    # The merged history works like local history: undo withdraws the newest current label.
    withdrawn = LabelStore(target, "ann").undo_last()
    assert withdrawn is not None and withdrawn.table == "credences"
    assert "ROOT" not in current(target, "ann")[1] and "" in current(target, "ann")[1]


def test_merged_nodes_become_searchable(
    make_workspace: Callable[[str], sqlite3.Connection], target: sqlite3.Connection, workspace: Path, tmp_path: Path
) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    SearchIndex(target, workspace, lib(target)).rebuild()
    assert SearchIndex(target, workspace, lib(target)).search("Russia").total == 0
    report = merge_files(target, [export_to(source, tmp_path / "ann.jsonl")])
    for library in report.libraries:
        SearchIndex(target, workspace, library).update()
    assert SearchIndex(target, workspace, lib(target)).search("Russia").total == 1


def test_merging_twice_changes_nothing(
    make_workspace: Callable[[str], sqlite3.Connection], target: sqlite3.Connection, tmp_path: Path
) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    path = export_to(source, tmp_path / "ann.jsonl")
    first = merge_files(target, [path])
    before = dump(target)
    again = merge_files(target, [path, path])
    assert dump(target) == before
    assert again.added == dict.fromkeys(again.added, 0)
    assert again.present == {kind: 2 * (first.added[kind] + first.present[kind]) for kind in again.present}
    assert again.libraries == []
    # Merging a workspace's own export into itself is a no-op too.
    own = dump(source)
    merge_files(source, [path])
    assert dump(source) == own


def test_two_labelers_combine_without_loss(
    make_workspace: Callable[[str], sqlite3.Connection],
    target: sqlite3.Connection,
    check_tree: Callable[[], None],
    tmp_path: Path,
) -> None:
    ann_ws = make_workspace("ann")
    made = ann_labels(ann_ws)
    ann_file = export_to(ann_ws, tmp_path / "ann.jsonl", labeler="ann")
    # Bob works from a copy that already holds Ann's export, cites her generated node and unpacks his own.
    bob_ws = make_workspace("bob")
    merge_files(bob_ws, [ann_file])
    (mine,) = add_children(
        bob_ws,
        node(bob_ws, made["gen1a"]),
        [("Bob's child", "", "statement")],
        origin="llm",
        provenance={"labeler": "bob"},
    )
    bob = LabelStore(bob_ws, "bob")
    i1 = item_by_uid(bob_ws, "i1")
    assert i1 is not None
    bob.record_prediction(i1, lib(bob_ws).id, {"yes": 0.3, "no": 0.7}, cited=[made["gen1"], mine.uid])
    bob.record_credence(lib(bob_ws).id, [node(bob_ws, made["gen1a"])], 0.4)
    bob_file = export_to(bob_ws, tmp_path / "bob.jsonl", labeler="bob")
    bob_types = [(record["type"], record["id"]) for record in records(bob_file)]
    assert ("node", made["gen1"]) in bob_types and ("node", mine.uid) in bob_types  # cited nodes travel with Bob
    assert ("node", made["note"]) not in bob_types  # Ann's uncited note is hers to export

    report = merge_files(target, [ann_file, bob_file])

    assert report.added["prediction"] == 6 + 1 and report.added["credence"] == 6 + 1
    assert report.present["node"] == 2  # Bob's copies of Ann's nodes are the same nodes
    assert current(target, "ann") == current(ann_ws, "ann")
    assert current(target, "bob") == current(bob_ws, "bob")
    assert generated_nodes(target) == generated_nodes(bob_ws)
    check_tree()


def test_labeler_filter_exports_only_that_labelers_work(
    make_workspace: Callable[[str], sqlite3.Connection], tmp_path: Path
) -> None:
    conn = make_workspace("shared")
    made = ann_labels(conn)
    (stray,) = add_children(
        conn, node(conn, "s3"), [("Bob's idea", "", "statement")], origin="llm", provenance={"labeler": "bob"}
    )
    # Unpack and ask name the logged call, and the call names the labeler.
    conn.execute(
        "INSERT INTO llm_calls (uid, purpose, model, prompt, outcome, labeler, created_at)"
        " VALUES ('call_ann', 'unpack', 'm', 'p', 'ok', 'ann', '2026-01-01T00:00:00Z')"
    )
    (logged,) = add_children(
        conn,
        node(conn, "s3"),
        [("Ann's unpacking", "", "statement")],
        origin="llm",
        provenance={"llm_call": "call_ann"},
    )
    i1 = item_by_uid(conn, "i1")
    assert i1 is not None
    LabelStore(conn, "bob").record_prediction(i1, lib(conn).id, {"yes": 0.5, "no": 0.5})
    ann = records(export_to(conn, tmp_path / "ann.jsonl", labeler="ann"))
    everyone = records(export_to(conn, tmp_path / "all.jsonl"))
    assert {r["labeler"] for r in ann if r["type"] in ("prediction", "credence")} == {"ann"}
    assert {r["id"] for r in ann if r["type"] == "node"} == set(made.values()) | {logged.uid}
    assert stray.uid in {r["id"] for r in everyone if r["type"] == "node"}
    assert {r["labeler"] for r in everyone if r["type"] == "prediction"} == {"ann", "bob"}
    assert not records(export_to(conn, tmp_path / "nobody.jsonl", labeler="nobody"))


def test_export_order_lets_a_merge_apply_it_in_one_pass(
    make_workspace: Callable[[str], sqlite3.Connection], tmp_path: Path
) -> None:
    conn = make_workspace("ann")
    ann_labels(conn)
    lines = records(export_to(conn, tmp_path / "ann.jsonl"))
    kinds = [line["type"] for line in lines]
    assert kinds == sorted(kinds, key=["item", "node", "prediction", "credence"].index)
    seen: set[str] = set()
    for line in lines:
        for ref in [line.get("parent"), line.get("replaces"), line.get("supersedes")]:
            assert (
                ref is None or ref in seen or node_by_uid(conn, ref) is not None and node(conn, ref).origin == "import"
            )
        seen.add(line["id"])
        assert line["created_at"].endswith("Z") and line["schema_version"] == 1
    items = [line for line in lines if line["type"] == "item"]
    assert all("y" not in item for item in items)  # gold never leaves in an export


# -- bad input -----------------------------------------------------------------------------------------


def _first(lines: list[dict[str, Any]], kind: str, test: Callable[[dict[str, Any]], bool] = lambda r: True) -> int:
    return next(i for i, line in enumerate(lines) if line["type"] == kind and test(line))


def _set(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda record: {**record, **changes}


def _drop(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda record: {k: v for k, v in record.items() if k != key}


BAD: list[tuple[str, str, Callable[[dict[str, Any]], bool], Any, str, str]] = [
    # (case, type of the line changed, which line, change, field, reason)
    (
        "prob above 1",
        "prediction",
        lambda r: True,
        _set(probs={"yes": 1.5, "no": -0.5}),
        "probs.yes",
        "less than or equal to 1",
    ),
    ("probs not summing to 1", "prediction", lambda r: True, _set(probs={"yes": 0.5, "no": 0.4}), "probs", "sum to 1"),
    ("NaN", "prediction", lambda r: True, "NAN", "probs.yes", "finite number"),
    (
        "probs over other options",
        "prediction",
        lambda r: True,
        _set(probs={"y": 0.5, "n": 0.5}),
        "probs",
        "exactly the options",
    ),
    ("credence above 1", "credence", lambda r: True, _set(p=1.01), "p", "less than or equal to 1"),
    ("p as a string", "credence", lambda r: True, _set(p="0.5"), "p", "valid number"),
    ("unknown type", "prediction", lambda r: True, _set(type="vote"), "type", "unknown record type 'vote'"),
    ("no type", "item", lambda r: True, _drop("type"), "type", "unknown record type None"),
    ("missing item", "prediction", lambda r: True, _set(item="nope"), "item", "not in this workspace"),
    ("item not here", "item", lambda r: True, _set(id="nope"), "id", "import the items first"),
    ("item differs", "item", lambda r: True, _set(x="Another question?"), "x", "conflict"),
    ("missing library", "node", lambda r: True, _set(library="lib_x", library_name="other"), "library", "no library"),
    ("missing parent", "node", lambda r: r["parent"] is not None, _set(parent="ghost"), "parent", "'ghost' is neither"),
    ("parent later", "node", lambda r: r["parent"] == "s1", _set(parent="edit1"), "parent", "'edit1' is neither"),
    ("missing cited node", "prediction", lambda r: r["cited"], _set(cited=["ghost"]), "cited", "'ghost' is neither"),
    ("missing statement", "credence", lambda r: r["statements"], _set(statements=["ghost"]), "statements", "neither"),
    ("missing superseded", "prediction", lambda r: r["supersedes"], _set(supersedes="pred_x"), "supersedes", "neither"),
    (
        "scope mismatch",
        "credence",
        lambda r: r["scope"] == "library",
        _set(statements=["s1"]),
        "statements",
        "names no",
    ),
    ("newer schema", "item", lambda r: True, _set(schema_version=2), "schema_version", "not the one this release"),
    ("unknown field", "node", lambda r: True, _set(colour="red"), "colour", "Extra inputs"),
    ("missing field", "prediction", lambda r: True, _drop("labeler"), "labeler", "Field required"),
    (
        "local timestamp",
        "credence",
        lambda r: True,
        _set(created_at="2026-01-01T10:00:00+02:00"),
        "created_at",
        "pattern",
    ),
    ("bad origin", "node", lambda r: True, _set(origin="import"), "origin", "'human' or 'llm'"),
    ("retracted as 1", "prediction", lambda r: True, _set(retracted=1), "retracted", "valid boolean"),
    ("not an object", "node", lambda r: True, "LIST", "-", "expected a JSON object"),
    ("broken JSON", "credence", lambda r: True, "BROKEN", "-", "invalid JSON"),
]


@pytest.mark.parametrize("case, kind, which, change, field, reason", BAD, ids=[case[0] for case in BAD])
def test_bad_record_is_reported_and_nothing_is_written(
    make_workspace: Callable[[str], sqlite3.Connection],
    target: sqlite3.Connection,
    tmp_path: Path,
    case: str,
    kind: str,
    which: Callable[[dict[str, Any]], bool],
    change: Any,
    field: str,
    reason: str,
) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    lines = records(export_to(source, tmp_path / "good.jsonl"))
    index = _first(lines, kind, which)
    text = [json.dumps(line) for line in lines]
    if change == "NAN":
        text[index] = text[index].replace('"yes": 0.6', '"yes": NaN')
        assert "NaN" in text[index]
    elif change == "LIST":
        text[index] = json.dumps([lines[index]])
    elif change == "BROKEN":
        text[index] = text[index][:-5]
    else:
        text[index] = json.dumps(change(lines[index]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(text) + "\n", encoding="utf-8")
    before = dump(target)
    with pytest.raises(ImportProblem) as raised:
        merge_files(target, [bad])
    assert str(raised.value).startswith(f"{bad}:{index + 1}: {field}: "), str(raised.value)
    assert reason in raised.value.reason
    assert dump(target) == before
    assert before["integrity_check"] == ["ok"]


def test_a_conflicting_uid_is_refused(
    make_workspace: Callable[[str], sqlite3.Connection], target: sqlite3.Connection, tmp_path: Path
) -> None:
    source = make_workspace("ann")
    made = ann_labels(source)
    good = export_to(source, tmp_path / "good.jsonl")
    merge_files(target, [good])
    for kind, change in [
        ("node", {"title": "Rewritten"}),
        ("prediction", {"note": "changed later"}),
        ("credence", {"p": 0.123}),
    ]:
        lines = records(good)
        index = _first(lines, kind, lambda r, kind=kind: r["id"] == made["gen1a"] or kind != "node")
        lines[index].update(change)
        bad = tmp_path / f"conflict-{kind}.jsonl"
        bad.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        before = dump(target)
        with pytest.raises(ImportProblem, match=f"{bad}:{index + 1}: {next(iter(change))}: conflict: {kind}"):
            merge_files(target, [bad])
        assert dump(target) == before
    # Two files in one merge that disagree about one uid: the later line names the earlier one.
    lines = records(good)
    index = _first(lines, "node", lambda r: r["id"] == made["gen1a"])
    lines[index]["body"] = "different"
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    fresh = make_workspace("fresh")
    before = dump(fresh)
    with pytest.raises(ImportProblem, match=rf"{other}:{index + 1}: body: conflict: .* at {good}:{index + 1}"):
        merge_files(fresh, [good, other])
    assert dump(fresh) == before


def test_a_bad_second_file_keeps_the_good_first_file_out_too(
    make_workspace: Callable[[str], sqlite3.Connection], target: sqlite3.Connection, tmp_path: Path
) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    good = export_to(source, tmp_path / "good.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "prediction"}\n', encoding="utf-8")
    before = dump(target)
    with pytest.raises(ImportProblem, match=rf"^{bad}:1: id: Field required"):
        merge_files(target, [good, bad])
    assert dump(target) == before


def test_an_empty_export_merges_as_nothing(target: sqlite3.Connection, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    export_to(target, empty)
    assert empty.read_text() == ""
    before = dump(target)
    report = merge_files(target, [empty])
    assert report.added == dict.fromkeys(report.added, 0) and dump(target) == before


# -- formats and schemas -------------------------------------------------------------------------------


def test_pandas_reads_an_export(make_workspace: Callable[[str], sqlite3.Connection], tmp_path: Path) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    path = export_to(source, tmp_path / "ann.jsonl")
    frame = pandas.read_json(path, lines=True)
    assert len(frame) == len(records(path))
    assert frame["type"].value_counts().to_dict() == {"prediction": 6, "node": 5, "credence": 6, "item": 3}
    assert set(frame["schema_version"]) == {1}
    assert frame["labeler"].isna().sum() == 3  # items have no labeler; nodes name their maker
    predictions = frame[frame["type"] == "prediction"]
    assert all(math.isclose(sum(probs.values()), 1.0) for probs in predictions["probs"])
    assert pandas.to_datetime(frame["created_at"], utc=True).notna().all()


def test_committed_schemas_match_the_models() -> None:
    """Fails when a model changed and `python -m kb.exchange` was not run."""
    documents = schema_documents()
    assert set(documents) == set(EXPORT_MODELS)
    shipped = sorted(path.name for path in SCHEMA_DIR.glob("*.json"))
    assert shipped == sorted([*(f"{k}.schema.json" for k in documents), "study_results.schema.json"])
    for kind, document in documents.items():
        assert (SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8") == schema_text(document), kind
        assert shipped_schema(kind) == document
        assert document["properties"]["type"]["const"] == kind


def test_an_export_validates_against_the_shipped_schemas(
    make_workspace: Callable[[str], sqlite3.Connection], tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    source = make_workspace("ann")
    ann_labels(source)
    path = export_to(source, tmp_path / "ann.jsonl")
    validators = {kind: jsonschema.Draft202012Validator(shipped_schema(kind)) for kind in EXPORT_MODELS}
    for validator in validators.values():
        validator.check_schema(validator.schema)
    lines = records(path)
    for line in lines:
        validators[line["type"]].validate(line)
    assert len(read_export(path)) == len(lines)  # and through the pydantic models
    broken = {**lines[-1], "p": 2}
    assert not validators["credence"].is_valid(broken)
    assert not validators["prediction"].is_valid({**_first_of(lines, "prediction"), "retracted": "no"})


def _first_of(lines: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return lines[_first(lines, kind)]


# -- command line --------------------------------------------------------------------------------------


@pytest.fixture
def cli_group() -> click.Group:
    group = click.Group()
    group.add_command(export)
    group.add_command(merge)
    return group


def test_cli_export_and_merge(
    make_workspace: Callable[[str], sqlite3.Connection],
    target: sqlite3.Connection,
    workspace: Path,
    tmp_path: Path,
    cli_group: click.Group,
) -> None:
    source = make_workspace("ann")
    ann_labels(source)
    source_path = tmp_path / "ann.db"
    runner = CliRunner()
    out = tmp_path / "out" / "ann.jsonl"
    out.parent.mkdir()
    result = runner.invoke(cli_group, ["export", "-w", str(source_path), "--out", str(out), "--labeler", "ann"])
    assert result.exit_code == 0, result.output
    assert "exported 3 items, 5 nodes, 6 predictions, 6 credences" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["ann.jsonl"]
    to_stdout = runner.invoke(cli_group, ["export", "-w", str(source_path), "--labeler", "ann"])
    assert to_stdout.exit_code == 0 and to_stdout.stdout == out.read_text(encoding="utf-8")

    merged = runner.invoke(cli_group, ["merge", "-w", str(workspace), str(out)])
    assert merged.exit_code == 0, merged.output
    assert "predictions: 6 added, 0 already present" in merged.stdout
    assert "library z: indexed" in merged.stdout
    assert SearchIndex(target, workspace, lib(target)).search("Russia").total == 1
    again = runner.invoke(cli_group, ["merge", "-w", str(workspace), "--json", str(out), str(out)])
    assert again.exit_code == 0
    payload = json.loads(again.stdout)
    assert payload["added"] == dict.fromkeys(payload["added"], 0)
    assert payload["already_present"]["prediction"] == 12


def test_cli_merge_reports_bad_input_and_writes_nothing(
    target: sqlite3.Connection, workspace: Path, tmp_path: Path, cli_group: click.Group
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n" + json.dumps({"type": "credence", "id": "c"}) + "\n", encoding="utf-8")
    before = dump(target)
    result = CliRunner().invoke(cli_group, ["merge", "-w", str(workspace), str(bad)])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {bad}:2: schema_version: Field required"
    assert dump(target) == before
    missing = CliRunner().invoke(cli_group, ["export", "-w", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no workspace" in missing.stderr
    assert not (tmp_path / "none.db").exists()


def test_export_writes_to_a_stream() -> None:
    conn = connect(":memory:")
    buffer = io.StringIO()
    assert export_labels(conn, buffer).written == dict.fromkeys(EXPORT_MODELS, 0)
    assert buffer.getvalue() == ""
