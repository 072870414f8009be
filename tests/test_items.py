"""Task items: D keeps gold, D* is split by seed and its gold goes only to the answer key."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from kb.db import WorkspaceError, connect
from kb.importing import ImportProblem
from kb.item_import import assign_splits, import_items, read_answer_key
from kb.items import item_counts


def item(number: int, y: str | None = "yes", **extra: object) -> dict[str, object]:
    record: dict[str, object] = {"id": f"q{number:03d}", "x": f"Question {number}?", "options": ["yes", "no"]}
    if y is not None:
        record["y"] = y
    return record | extra


ITEMS = [item(i, "yes" if i % 3 else "no") for i in range(40)]


def stored(conn: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    return {row["uid"]: row for row in conn.execute("SELECT * FROM items")}


def split_of(conn: sqlite3.Connection) -> dict[str, str]:
    return {uid: row["split"] for uid, row in stored(conn).items()}


def test_d_import_keeps_y(conn, write_jsonl):
    path = write_jsonl("d.jsonl", [item(1, "no", task="landlocked", country="Mongolia"), item(2, "yes")])
    report = import_items(conn, path, dstar=False)

    assert report.added == {"train": 2, "validation": 0, "prediction": 0}
    assert report.answer_key is None and report.answers_written == 0
    rows = stored(conn)
    first = rows["q001"]
    assert (first["split"], first["y"], first["x"], first["task"]) == ("train", "no", "Question 1?", "landlocked")
    assert json.loads(first["options"]) == ["yes", "no"]
    assert json.loads(first["extra"]) == {"country": "Mongolia"}
    assert rows["q002"]["y"] == "yes"
    assert item_counts(conn) == {"train": 2, "validation": 0, "prediction": 0}


def test_dstar_import_splits_and_moves_gold_to_the_answer_key(conn, write_jsonl, tmp_path):
    answers = tmp_path / "key" / "answers.jsonl"
    report = import_items(
        conn, write_jsonl("dstar.jsonl", ITEMS), dstar=True, answers=answers, validation_fraction=0.25, seed=7
    )

    assert report.added == {"train": 0, "validation": 10, "prediction": 30}
    assert (report.answer_key, report.answers_written) == (answers, 40)
    rows = stored(conn)
    assert all(row["y"] is None for row in rows.values())
    assert conn.execute("SELECT COUNT(*) FROM items WHERE y IS NOT NULL").fetchone()[0] == 0
    key = read_answer_key(answers)
    assert set(key) == {record["id"] for record in ITEMS}
    for record in ITEMS:
        assert key[record["id"]].y == record["y"]
        assert key[record["id"]].split == rows[record["id"]]["split"]
    assert not answers.with_name(answers.name + ".tmp").exists()


def test_dstar_split_is_deterministic_by_seed(tmp_path, write_jsonl):
    def split(seed: int, records: list[dict[str, object]], name: str) -> dict[str, str]:
        conn = connect(tmp_path / f"{name}.db", create=True)
        import_items(
            conn,
            write_jsonl(f"{name}.jsonl", records),
            dstar=True,
            answers=tmp_path / f"{name}.answers.jsonl",
            seed=seed,
        )
        result = split_of(conn)
        conn.close()
        return result

    shuffled = ITEMS.copy()
    random.Random(1).shuffle(shuffled)
    first = split(3, ITEMS, "a")
    assert split(3, ITEMS, "b") == first
    assert split(3, shuffled, "c") == first  # file order does not matter
    assert split(4, ITEMS, "d") != first
    assert sorted(first.values()).count("validation") == 20


@pytest.mark.parametrize(("count", "fraction", "validation"), [(40, 0.5, 20), (40, 0.1, 4), (10, 0.75, 8), (3, 0.5, 2)])
def test_assign_splits_respects_the_fraction(count, fraction, validation):
    ids = [f"i{n}" for n in range(count)]
    splits = assign_splits(ids, dstar=True, validation_fraction=fraction, seed=0)
    assert set(splits) == set(ids)
    assert list(splits.values()).count("validation") == validation
    assert list(splits.values()).count("prediction") == count - validation


def test_assign_splits_for_d_is_all_train():
    assert assign_splits(["a", "b"], dstar=False, validation_fraction=0.5, seed=0) == {"a": "train", "b": "train"}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_assign_splits_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(WorkspaceError, match="validation-fraction"):
        assign_splits(["a", "b"], dstar=True, validation_fraction=fraction, seed=0)


def test_schema_refuses_gold_for_dstar(conn):
    for split in ("validation", "prediction"):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO items (uid, x, options, split, y, created_at) VALUES (?, 'x', '[]', ?, 'yes', 'now')",
                (f"i_{split}", split),
            )
    conn.execute(
        "INSERT INTO items (uid, x, options, split, y, created_at) VALUES ('ok', 'x', '[]', 'train', 'y', 'now')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE items SET split = 'prediction' WHERE uid = 'ok'")


def test_dstar_without_gold_needs_no_answer_key(conn, write_jsonl):
    report = import_items(conn, write_jsonl("nogold.jsonl", [item(i, None) for i in range(6)]), dstar=True)
    assert sum(report.added.values()) == 6 and report.answer_key is None


def test_dstar_gold_without_an_answer_key_is_refused(conn, write_jsonl, db_dump):
    before = db_dump()
    with pytest.raises(WorkspaceError, match="--answers"):
        import_items(conn, write_jsonl("dstar.jsonl", ITEMS), dstar=True)
    assert db_dump() == before


def test_answer_key_grows_across_imports(conn, write_jsonl, tmp_path):
    answers = tmp_path / "answers.jsonl"
    import_items(conn, write_jsonl("one.jsonl", ITEMS[:10]), dstar=True, answers=answers)
    import_items(conn, write_jsonl("two.jsonl", ITEMS[10:20]), dstar=True, answers=answers)
    assert set(read_answer_key(answers)) == {record["id"] for record in ITEMS[:20]}


# -- failures change nothing -------------------------------------------------


@pytest.fixture
def existing_key(conn, write_jsonl, tmp_path) -> Path:
    """A workspace with 10 D* items already imported and their answer key."""
    answers = tmp_path / "answers.jsonl"
    import_items(conn, write_jsonl("first.jsonl", ITEMS[:10]), dstar=True, answers=answers)
    return answers


def assert_unchanged(db_dump, before, answers: Path, key_bytes: bytes) -> None:
    assert db_dump() == before
    assert answers.read_bytes() == key_bytes
    assert not answers.with_name(answers.name + ".tmp").exists()


def test_bad_record_leaves_items_and_answer_key(conn, write_jsonl, existing_key, db_dump):
    before, key_bytes = db_dump(), existing_key.read_bytes()
    path = write_jsonl("bad.jsonl", [*ITEMS[10:20], item(99, "maybe")])
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, path, dstar=True, answers=existing_key)
    assert (caught.value.source, caught.value.line) == (str(path), 11)
    assert_unchanged(db_dump, before, existing_key, key_bytes)


def test_existing_item_id_leaves_items_and_answer_key(conn, write_jsonl, existing_key, db_dump):
    before, key_bytes = db_dump(), existing_key.read_bytes()
    path = write_jsonl("again.jsonl", [*ITEMS[10:12], ITEMS[3]])
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, path, dstar=True, answers=existing_key)
    assert (caught.value.line, caught.value.field) == (3, "id")
    assert "'q003' already exists" in caught.value.reason
    assert_unchanged(db_dump, before, existing_key, key_bytes)


def test_conflicting_answer_in_the_key_leaves_everything(conn, write_jsonl, tmp_path, db_dump):
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "q001", "split": "validation", "y": "no"}) + "\n", encoding="utf-8")
    before, key_bytes = db_dump(), answers.read_bytes()
    with pytest.raises(WorkspaceError, match="different answer for item 'q001'"):
        import_items(conn, write_jsonl("d.jsonl", [item(1, "yes"), item(2)]), dstar=True, answers=answers)
    assert_unchanged(db_dump, before, answers, key_bytes)


def test_failure_while_writing_items_leaves_the_answer_key(conn, write_jsonl, existing_key, db_dump):
    conn.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.items WHEN NEW.uid = 'q015'"
        " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    before, key_bytes = db_dump(), existing_key.read_bytes()
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        import_items(conn, write_jsonl("more.jsonl", ITEMS[10:20]), dstar=True, answers=existing_key)
    assert_unchanged(db_dump, before, existing_key, key_bytes)


# -- bad records -------------------------------------------------------------

GOOD = item(0)
BAD_CASES = {
    "invalid json": ([GOOD, '{"id": "q1", "x": '], 2, "-", "invalid JSON"),
    "not an object": ([GOOD, '"just a string"'], 2, "-", "expected a JSON object, got str"),
    "options not a list": ([GOOD, {"id": "q1", "x": "?", "options": "yes,no"}], 2, "options", "valid list"),
    "options of numbers": ([GOOD, {"id": "q1", "x": "?", "options": [1, 2]}], 2, "options.0", "valid string"),
    "one option": ([GOOD, {"id": "q1", "x": "?", "options": ["yes"]}], 2, "options", "at least 2"),
    "repeated options": ([GOOD, {"id": "q1", "x": "?", "options": ["a", "a"]}], 2, "options", "distinct"),
    "blank option": ([GOOD, {"id": "q1", "x": "?", "options": ["a", " "]}], 2, "options", "non-empty"),
    "x is a number": ([GOOD, {"id": "q1", "x": 3, "options": ["a", "b"]}], 2, "x", "valid string"),
    "x missing": ([GOOD, {"id": "q1", "options": ["a", "b"]}], 2, "x", "Field required"),
    "y is a number": ([GOOD, {"id": "q1", "x": "?", "options": ["1", "2"], "y": 1}], 2, "y", "valid string"),
    "duplicate id": ([GOOD, item(1), item(0)], 3, "id", "duplicate id 'q000' (first on line 1)"),
    "empty file": ([], 0, "-", "empty"),
}


@pytest.mark.parametrize(("lines", "line", "field", "reason"), BAD_CASES.values(), ids=BAD_CASES.keys())
@pytest.mark.parametrize("dstar", [False, True], ids=["D", "Dstar"])
def test_bad_items_are_reported_and_nothing_is_written(
    conn, write_jsonl, tmp_path, db_dump, lines, line, field, reason, dstar
):
    answers = tmp_path / "answers.jsonl"
    path = write_jsonl("bad.jsonl", lines)
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, path, dstar=dstar, answers=answers)
    assert (caught.value.source, caught.value.line, caught.value.field) == (str(path), line, field)
    assert reason in caught.value.reason
    after = db_dump()
    assert after == before and after["integrity_check"] == ["ok"]
    assert not answers.exists()


def test_y_not_among_options_is_a_clear_error(conn, write_jsonl, tmp_path, db_dump):
    answers = tmp_path / "answers.jsonl"
    path = write_jsonl("bad.jsonl", [GOOD, item(1, "maybe")])
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, path, dstar=True, answers=answers)
    assert (caught.value.source, caught.value.line) == (str(path), 2)
    assert "y 'maybe' is not one of the options ['yes', 'no']" in caught.value.reason
    assert db_dump() == before and not answers.exists()


def test_y_not_an_option_names_the_y_field(conn, write_jsonl):
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, write_jsonl("bad.jsonl", [item(1, "maybe")]), dstar=False)
    assert caught.value.field == "y"


def test_non_utf8_items(conn, tmp_path, db_dump):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"id": "q1", "x": "caf\xe9", "options": ["a", "b"]}\n')
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_items(conn, path, dstar=False)
    assert (caught.value.line, caught.value.field) == (2, "-") and "not valid UTF-8" in caught.value.reason
    assert db_dump() == before


def test_skip_bad_items(conn, write_jsonl, tmp_path):
    import_items(conn, write_jsonl("first.jsonl", [item(50)]), dstar=False)
    lines = [item(1, "no"), "{oops", item(2, "maybe"), item(3), item(1), item(50), {"id": "q4", "x": 1}]
    answers = tmp_path / "answers.jsonl"
    report = import_items(conn, write_jsonl("mixed.jsonl", lines), dstar=True, answers=answers, skip_bad=True)

    assert sum(report.added.values()) == 2 and report.skipped == 5
    assert sorted(problem.line for problem in report.problems) == [2, 3, 5, 6, 7]
    assert set(stored(conn)) == {"q001", "q003", "q050"}
    assert set(read_answer_key(answers)) == {"q001", "q003"}
    assert read_answer_key(answers)["q001"].y == "no"
