"""Hostile input to every importer and to merge: a clear rejection or a correct import, nothing else.

Hypothesis feeds the JSONL node importer, the items importer and `merge_files`
random bytes, deep nesting, huge lines, invalid UTF-8, lone surrogates, cycles,
colliding ids, future timestamps and probabilities that are NaN, outside [0, 1]
or do not sum to 1. Each input must be either rejected with ImportProblem,
WorkspaceError or LabelError (whose message names the problem) while leaving
the workspace byte-for-byte the same in every table, or accepted with the tree
and the labels consistent. Any other exception is a traceback a user would see.
Where the input is structured enough to know the right answer (node files),
the test also checks *which* of the two happened.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import announce

from kb.db import WorkspaceError, connect
from kb.doctor import check_orphans
from kb.exchange import collect_export, write_export
from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import ImportProblem, StagedNode, import_staged
from kb.item_import import add_items, import_items
from kb.items import item_by_uid
from kb.labels import LabelError, LabelStore
from kb.libraries import create_library, list_libraries
from kb.merge import merge_files
from kb.progress import NoProgress
from kb.records import ItemRecord
from kb.tree import add_child, node_by_uid

REJECTIONS = (ImportProblem, WorkspaceError, LabelError)
ALL_TABLES = ("libraries", "nodes", "items", "predictions", "credences", "credence_nodes", "search_index_state")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def print_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    parts = ", ".join(f"{target} {counts}" for target, counts in sorted(_by_target().items()))
    announce(request.config, f"hostile-input: {sum(TALLY.values())} fuzz cases tried ({parts}); 0 half-writes")


def _by_target() -> dict[str, str]:
    targets = sorted({key.split(":")[0] for key in TALLY})
    return {
        target: f"{TALLY[target + ':accepted']} accepted/{TALLY[target + ':rejected']} rejected" for target in targets
    }


def dump(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every row of every data table: a rejection must leave all of them exactly as they were."""
    return {
        table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")] for table in ALL_TABLES
    }


def assert_consistent(conn: sqlite3.Connection) -> None:
    """What an accepted input must leave: a sound file, a tree whose counts add up, valid labels."""
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert [finding.status for finding in check_orphans(conn)] == ["ok"]
    rows = conn.execute("SELECT id, parent_id, child_count, subtree_size FROM nodes ORDER BY depth DESC").fetchall()
    kids: dict[int, list[int]] = {}
    for row in rows:
        if row["parent_id"] is not None:
            kids.setdefault(row["parent_id"], []).append(row["id"])
    sizes: dict[int, int] = {}
    for row in rows:
        sizes[row["id"]] = 1 + sum(sizes[kid] for kid in kids.get(row["id"], []))
        assert row["child_count"] == len(kids.get(row["id"], [])), f"child_count of node {row['id']}"
        assert row["subtree_size"] == sizes[row["id"]], f"subtree_size of node {row['id']}"
    for row in conn.execute("SELECT p.probs, i.options FROM predictions p JOIN items i ON i.id = p.item_id"):
        probs = json.loads(row["probs"])
        assert sorted(probs) == sorted(json.loads(row["options"]))
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in probs.values()), probs
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6), probs
    for (p,) in conn.execute("SELECT p FROM credences"):
        assert isinstance(p, float) and 0.0 <= p <= 1.0
    for (extra,) in conn.execute("SELECT extra FROM nodes UNION ALL SELECT extra FROM items"):
        json.loads(extra, parse_constant=_refuse_constant)  # stored JSON must be strict JSON


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"{name} stored in a JSON column")


def attempt(target: str, conn: sqlite3.Connection, action: Callable[[], object]) -> bool:
    """Run one import; True if accepted. A rejection must change nothing and explain itself."""
    before = dump(conn)
    try:
        action()
    except REJECTIONS as error:
        assert str(error).strip(), "a rejection without a message"
        assert "Traceback" not in str(error)
        assert dump(conn) == before, "a rejected input changed the workspace"
        assert not conn.in_transaction
        TALLY[target + ":rejected"] += 1
        return False
    assert not conn.in_transaction
    assert_consistent(conn)
    TALLY[target + ":accepted"] += 1
    return True


@pytest.fixture
def pristine(tmp_path: Path) -> sqlite3.Connection:
    """A small workspace kept aside; `restore` copies it over the workspace under test before each example."""
    conn = connect(tmp_path / "pristine.db", create=True)
    library = create_library(conn, "z")
    import_staged(
        conn,
        library,
        iter([StagedNode(1, "s1", None, "statement", "One"), StagedNode(2, "s2", "s1", "statement", "Two")]),
        source="t",
        importer="test",
    )
    records = [ItemRecord(id=f"i{n}", x=f"Q{n}?", options=["yes", "no"]) for n in range(3)]
    add_items(conn, list(enumerate(records, 1)), source="t", dstar=False)
    return conn


def restore(pristine: sqlite3.Connection, conn: sqlite3.Connection) -> None:
    pristine.backup(conn)


@pytest.fixture
def target(tmp_path: Path, pristine: sqlite3.Connection) -> sqlite3.Connection:
    conn = connect(tmp_path / "target.db", create=True)
    restore(pristine, conn)
    return conn


# -- hostile lines shared by every JSONL reader --------------------------------------------------------

HOSTILE_LINES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"id": "deep", "title": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
            b'{"id": "huge", "title": "' + b"x" * 3_000_000 + b'"}',
            b'{"id": "\xff\xfe", "title": "bad utf-8"}',
            b'{"id": "sur", "title": "\\ud800 lone surrogate"}',
            b'{"id": "nan", "title": NaN}',
            b'{"id": "nanx", "title": "t", "weight": NaN, "more": Infinity}',
            b'{"id": 1e999, "title": "t"}',
            b'{"id": "obj", "title": {"nested": [1, 2]}}',
            b'\xef\xbb\xbf{"id": "bom", "title": "t"}',
            b'{"id": "nul\\u0000", "title": "a\\u0000b"}',
            b'{"id": "ctl", "title": "\\u001b[31m[bold]red[/bold]<script>"}',
            b'{"id": "ts", "title": "t", "created_at": "9999-12-31T23:59:59Z"}',
            b"null",
            b"[]",
            b'"just a string"',
            b"{",
        ]
    ),
)


# -- the JSONL node importer -------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "s1"]
NODE = st.fixed_dictionaries(
    {
        "id": st.sampled_from(IDS),
        "parent": st.sampled_from([None, *IDS, "zz"]),
        "title": st.sampled_from(["T", "T", "T", "", " ", "<b>markup</b> [red]x[/red]", "\x1b[2J"]),
    },
    optional={"weight": st.floats(allow_nan=True, allow_infinity=True)},
)


@st.composite
def plausible_nodes(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly-valid files (distinct ids, parents usually earlier or existing) so that acceptance, and
    what an accepted file leaves behind, gets exercised as much as rejection."""
    count = draw(st.integers(1, 6))
    records = []
    for n in range(count):
        parent = draw(st.sampled_from([None, "s1", "s2", *(f"p{k}" for k in range(n)), "p9"]))
        record: dict[str, Any] = {"id": f"p{n}", "parent": parent, "title": draw(NODE)["title"]}
        if draw(st.booleans()):
            record["weight"] = draw(st.floats(allow_nan=True, allow_infinity=True))
        records.append(record)
    return draw(st.permutations(records))


def nodes_should_import(records: list[dict[str, Any]], existing: set[str]) -> bool:
    """The oracle: every title non-empty, every number finite, ids new and unique, and every
    parent reachable without a cycle."""
    ids = [record["id"] for record in records]
    if not records or any(not record["title"] for record in records):
        return False
    if any(not math.isfinite(record.get("weight", 0.0)) for record in records):
        return False
    if len(set(ids)) != len(ids) or set(ids) & existing or any(r["parent"] == r["id"] for r in records):
        return False
    placed: set[str | None] = {None, *existing}
    waiting = list(records)
    while True:
        ready = [record for record in waiting if record["parent"] in placed]
        if not ready:
            return not waiting
        placed.update(record["id"] for record in ready)
        waiting = [record for record in waiting if record not in ready]


def import_nodes(conn: sqlite3.Connection, path: Path) -> None:
    library = list_libraries(conn)[0]
    import_staged(conn, library, read_jsonl_nodes(path, NoProgress()), source=str(path), importer="jsonl")


@FUZZ
@given(records=st.one_of(st.lists(NODE, max_size=7), plausible_nodes()))
def test_structured_node_files_import_exactly_when_they_are_valid(
    records: list[dict[str, Any]], pristine: sqlite3.Connection, target: sqlite3.Connection, tmp_path: Path
) -> None:
    restore(pristine, target)
    path = tmp_path / "nodes.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    before = target.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
    accepted = attempt("nodes", target, lambda: import_nodes(target, path))
    assert accepted == nodes_should_import(records, {"s1", "s2"}), records
    if accepted:
        assert target.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == before + len(records)


@FUZZ
@given(lines=st.lists(st.one_of(HOSTILE_LINES, NODE.map(lambda r: json.dumps(r).encode())), min_size=1, max_size=5))
def test_hostile_node_files_never_crash_or_half_import(
    lines: list[bytes], pristine: sqlite3.Connection, target: sqlite3.Connection, tmp_path: Path
) -> None:
    restore(pristine, target)
    path = tmp_path / "nodes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    attempt("nodes", target, lambda: import_nodes(target, path))


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e999"])
@pytest.mark.parametrize("kind", ["nodes", "items"])
def test_numbers_json_does_not_allow_are_refused_by_name(
    kind: str, number: str, target: sqlite3.Connection, tmp_path: Path
) -> None:
    """Python's json reads NaN, Infinity and 1e999 (as inf); stored in an `extra` column they would
    make exports and SQLite's own json functions fail later, far from the file that caused it."""
    path = tmp_path / "in.jsonl"
    fields = '"title": "t"' if kind == "nodes" else '"x": "q", "options": ["a", "b"]'
    path.write_text(f'{{"id": "n1", {fields}, "weight": {number}}}\n', encoding="utf-8")
    action = (
        (lambda: import_nodes(target, path)) if kind == "nodes" else (lambda: import_items(target, path, dstar=False))
    )
    with pytest.raises(ImportProblem, match=r"in\.jsonl:1: weight: must be a finite number, got -?(NaN|Infinity)"):
        action()
    assert attempt(kind, target, action) is False


# -- the items importer ------------------------------------------------------------------------------

ITEM = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["i0", "n1", "n2", "n3", "n4", ""]),
        "x": st.sampled_from(["Is it?", "Is it?", "", "<i>x</i>"]),
        "options": st.sampled_from([["a", "b"], ["a", "b"], ["a", "b", "c"], ["a"], ["a", "a"], ["a", " "], [1, 2]]),
        "y": st.sampled_from([None, None, "a", "z", 3]),
    },
    optional={"task": st.sampled_from(["t", 7]), "weight": st.floats(allow_nan=True, allow_infinity=True)},
)


@st.composite
def item_files(draw: st.DrawFn) -> list[bytes]:
    """Half the time a plausible file (distinct new ids, valid fields, maybe gold) so acceptance is
    exercised too; otherwise any mix of odd records and hostile lines."""
    if draw(st.booleans()):
        count = draw(st.integers(1, 4))
        return [
            json.dumps(
                {"id": f"n{n}", "x": "Is it?", "options": ["a", "b"], "y": draw(st.sampled_from([None, "a", "b"]))}
            ).encode()
            for n in range(count)
        ]
    encoded = ITEM.map(lambda r: json.dumps(r).encode())
    return draw(st.lists(st.one_of(encoded, encoded, HOSTILE_LINES), min_size=1, max_size=4))


@FUZZ
@given(lines=item_files(), dstar=st.booleans(), with_key=st.booleans())
def test_hostile_item_files_never_crash_or_half_import(
    lines: list[bytes],
    dstar: bool,
    with_key: bool,
    pristine: sqlite3.Connection,
    target: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    restore(pristine, target)
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    key = tmp_path / "answers.jsonl"
    key.write_text('{"id": "old", "split": "validation", "y": "a"}\n', encoding="utf-8")
    key_before = key.read_bytes()
    before = target.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    answers = key if with_key else None
    accepted = attempt("items", target, lambda: import_items(target, path, dstar=dstar, answers=answers))
    if accepted:
        added = target.execute("SELECT COUNT(*) FROM items").fetchone()[0] - before
        assert added == sum(1 for line in lines if line.strip())
        gold_given = any(json.loads(line).get("y") is not None for line in lines if line.strip())
        stored_gold = target.execute("SELECT COUNT(*) FROM items WHERE split != 'train' AND y IS NOT NULL")
        assert stored_gold.fetchone()[0] == 0, "D* gold reached the workspace"
        assert (key.read_bytes() != key_before) == (dstar and gold_given)
    else:
        assert key.read_bytes() == key_before, "a rejected import changed the answer key"
        assert not key.with_name(key.name + ".tmp").exists()


# -- merge ---------------------------------------------------------------------------------------------


@pytest.fixture
def export_lines(pristine: sqlite3.Connection, tmp_path: Path) -> list[dict[str, Any]]:
    """A real export from a copy of the pristine workspace after some labelling: human nodes two deep,
    predictions citing them, a relabel, a credence, and an undo."""
    source = connect(tmp_path / "source.db", create=True)
    pristine.backup(source)
    library = list_libraries(source)[0]
    s1 = node_by_uid(source, "s1", library.id)
    assert s1 is not None
    h1 = add_child(source, s1, title="Human one", uid="h1", provenance={"labeler": "ann"})
    h2 = add_child(source, h1, title="Human two", uid="h2", provenance={"labeler": "ann"})
    store = LabelStore(source, "ann")
    for n in range(3):
        item = item_by_uid(source, f"i{n}")
        assert item is not None
        store.record_prediction(item, library.id, {"yes": 0.25, "no": 0.75}, cited=["h2", "s2"], trail=["h1"])
    store.record_prediction(item, library.id, {"yes": 0.5, "no": 0.5}, cited=["h1"])
    store.record_credence(library.id, [h1, h2], 0.3)
    store.record_credence(library.id, [], 0.6)
    store.undo_last()
    out = io.StringIO()
    write_export(collect_export(source), out)
    source.close()
    return [json.loads(line) for line in out.getvalue().splitlines()]


HOSTILE_VALUES = st.sampled_from(
    [
        None,
        1.5,
        -0.1,
        math.nan,
        math.inf,
        True,
        10**30,
        "",
        "2999-12-31T23:59:59.000000Z",
        "not a time",
        "x" * 200_000,
        "\ud800",
        [],
        {},
        [[[[[[["deep"]]]]]]],
        {"yes": 0.9, "no": 0.3},
        {"yes": math.nan, "no": 0.5},
        {"yes": 1.0},
        {"yes": -0.5, "no": 1.5},
        ["h2", "missing"],
    ]
)
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 50), st.integers(0, 50), HOSTILE_VALUES),
    st.tuples(st.just("collide"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("cycle")),
    st.tuples(st.just("drop"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("duplicate"), st.integers(0, 50)),
    st.tuples(st.just("swap"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("raw"), st.integers(0, 50), HOSTILE_LINES),
)


def encode(record: dict[str, Any]) -> bytes:
    try:
        return json.dumps(record, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    except ValueError:
        return json.dumps(record).encode()


def mutated(records: list[dict[str, Any]], mutations: list[tuple[Any, ...]]) -> list[bytes]:
    records = [dict(record) for record in records]
    raw: dict[int, bytes] = {}
    for mutation in mutations:
        kind, *args = mutation
        if kind == "set":
            record = records[args[0] % len(records)]
            record[sorted(record)[args[1] % len(record)]] = args[2]
        elif kind == "collide":
            records[args[0] % len(records)]["id"] = records[args[1] % len(records)]["id"]
        elif kind == "cycle":
            nodes = [record for record in records if record["type"] == "node"]
            nodes[0]["parent"], nodes[1]["parent"] = nodes[1]["id"], nodes[0]["id"]
        elif kind == "drop":
            record = records[args[0] % len(records)]
            del record[sorted(record)[args[1] % len(record)]]
        elif kind == "duplicate":
            records.append(dict(records[args[0] % len(records)]))
        elif kind == "swap":
            i, j = args[0] % len(records), args[1] % len(records)
            records[i], records[j] = records[j], records[i]
        else:
            raw[args[0] % len(records)] = args[1]
    return [raw.get(index, encode(record)) for index, record in enumerate(records)]


def test_the_unmutated_export_merges_and_merging_again_changes_nothing(
    export_lines: list[dict[str, Any]], target: sqlite3.Connection, tmp_path: Path
) -> None:
    """The baseline the fuzzing departs from: without it, 'rejected' could be every answer."""
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(mutated(export_lines, [])) + b"\n")
    assert attempt("merge", target, lambda: merge_files(target, [path]))
    assert target.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 4
    assert target.execute("SELECT COUNT(*) FROM credences").fetchone()[0] == 3  # two and the undo of one
    after = dump(target)
    report = merge_files(target, [path])
    assert sum(report.added.values()) == 0 and dump(target) == after


@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_hostile_exports_never_crash_or_half_merge(
    mutations: list[tuple[Any, ...]],
    export_lines: list[dict[str, Any]],
    pristine: sqlite3.Connection,
    target: sqlite3.Connection,
    tmp_path: Path,
) -> None:
    restore(pristine, target)
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(mutated(export_lines, mutations)) + b"\n")
    if attempt("merge", target, lambda: merge_files(target, [path])):
        after = dump(target)
        report = merge_files(target, [path])  # idempotent even for odd but acceptable input
        assert sum(report.added.values()) == 0 and dump(target) == after
