"""Markdown folders, single Markdown files and plain text with headings, as node trees."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kb.formats.outline import TITLE_LIMIT, read_markdown_folder, read_outline_file
from kb.importing import ImportProblem, ImportReport, import_staged
from kb.libraries import Library, create_library
from kb.progress import NoProgress
from kb.tree import Node, children

ALPHA = """\
# Alpha
First statement.

- item one
- item two
## Sub
Deep statement
continues here.
"""

DOCUMENT = """\
Setext Title
============

Intro paragraph.

```
# not a heading
```

---

# Second
Last.
"""

PLAIN = """\
INTRODUCTION

Some text here.

METHODS AND DATA

More text
ON TWO LINES.

# Results
It worked.
"""


def import_folder(conn: sqlite3.Connection, library: Library, folder: Path, **options: bool) -> ImportReport:
    return import_staged(
        conn, library, read_markdown_folder(folder, NoProgress()), source=str(folder), importer="markdown", **options
    )


def import_file(conn: sqlite3.Connection, library: Library, path: Path, *, plain_text: bool) -> ImportReport:
    reader = read_outline_file(path, NoProgress(), plain_text=plain_text)
    return import_staged(conn, library, reader, source=str(path), importer="text" if plain_text else "markdown")


def kids(conn: sqlite3.Connection, node_id: int) -> list[Node]:
    return children(conn, node_id)


def titles(nodes: list[Node]) -> list[tuple[str, str]]:
    return [(node.kind, node.title) for node in nodes]


def provenance(conn: sqlite3.Connection, node: Node) -> dict[str, object]:
    return json.loads(conn.execute("SELECT provenance FROM nodes WHERE id = ?", (node.id,)).fetchone()[0])


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / "a.md").write_text(ALPHA, encoding="utf-8")
    (folder / "sub" / "b.md").write_text("Just one line.\n", encoding="utf-8")
    (folder / "sub" / "deeper" / "c.markdown").write_text("# C\nSee.\n", encoding="utf-8")
    (folder / ".hidden" / "secret.md").write_text("# Secret\n", encoding="utf-8")
    (folder / "ignored.txt").write_text("NOT MARKDOWN\n", encoding="utf-8")
    return folder


# -- Markdown folder -------------------------------------------------------


def test_markdown_folder_tree(conn, library, notes, check_tree):
    report = import_folder(conn, library, notes)

    top = kids(conn, library.root_id)
    assert titles(top) == [("document", "a"), ("folder", "sub")]
    a, sub = top
    assert titles(kids(conn, a.id)) == [("section", "Alpha")]
    alpha = kids(conn, a.id)[0]
    assert titles(kids(conn, alpha.id)) == [
        ("statement", "First statement."),
        ("statement", "item one"),
        ("statement", "item two"),
        ("section", "Sub"),
    ]
    assert [node.position for node in kids(conn, alpha.id)] == [0, 1, 2, 3]
    deep = kids(conn, kids(conn, alpha.id)[3].id)
    assert titles(deep) == [("statement", "Deep statement continues here.")]
    assert deep[0].depth == 4

    assert titles(kids(conn, sub.id)) == [("document", "b"), ("folder", "deeper")]
    deeper = kids(conn, sub.id)[1]
    c = kids(conn, deeper.id)[0]
    assert titles(kids(conn, c.id)) == [("section", "C")]

    # a(1) Alpha(1) 3 statements + Sub(1) + 1 = 7; sub(1) b(1) its line(1) deeper(1) c(1) C(1) See(1) = 7
    assert report.added == 14
    assert (a.child_count, a.subtree_size) == (1, 7)
    assert (alpha.child_count, alpha.subtree_size) == (4, 6)
    assert (sub.child_count, sub.subtree_size) == (2, 7)
    root = conn.execute("SELECT child_count, subtree_size FROM nodes WHERE id = ?", (library.root_id,)).fetchone()
    assert tuple(root) == (2, 15)
    all_titles = {row[0] for row in conn.execute("SELECT title FROM nodes")}
    assert "Secret" not in all_titles and "NOT MARKDOWN" not in all_titles
    assert provenance(conn, deep[0]) == {"importer": "markdown", "source": str(notes / "a.md"), "line": 7}
    check_tree()


def test_markdown_folder_provenance_names_the_file(conn, library, notes):
    import_folder(conn, library, notes)
    row = conn.execute("SELECT provenance FROM nodes WHERE title = 'Deep statement continues here.'").fetchone()
    assert "a.md" in row[0]


def test_markdown_folder_ids_are_stable(conn, library, notes):
    import_folder(conn, library, notes)
    other = create_library(conn, "other")
    import_folder(conn, other, notes)
    uids = [
        {row[0] for row in conn.execute("SELECT uid FROM nodes WHERE library_id = ? AND depth > 0", (lib.id,))}
        for lib in (library, other)
    ]
    assert uids[0] == uids[1] and len(uids[0]) == 14


def test_markdown_folder_reimport_collides_with_library(conn, library, notes, db_dump):
    import_folder(conn, library, notes)
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_folder(conn, library, notes)
    assert caught.value.field == "id" and "already exists in library 'lib'" in caught.value.reason
    assert caught.value.source == str(notes)
    assert db_dump() == before


def test_markdown_folder_with_non_utf8_file(conn, library, notes, db_dump):
    bad = notes / "sub" / "latin1.md"
    bad.write_bytes(b"# Ok\n\ncaf\xe9\n")
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_folder(conn, library, notes)
    assert (caught.value.source, caught.value.field) == (str(bad), "-")
    assert "not valid UTF-8" in caught.value.reason
    after = db_dump()
    assert after == before and after["integrity_check"] == ["ok"]


def test_markdown_folder_skip_bad_skips_only_the_bad_file(conn, library, notes, check_tree):
    (notes / "sub" / "latin1.md").write_bytes(b"caf\xe9\n")
    report = import_folder(conn, library, notes, skip_bad=True)
    assert report.skipped == 1 and report.problems[0].source.endswith("latin1.md")
    # the other files import as usual; only the bad file's own document node is missing
    assert report.added == 14
    check_tree()


def test_empty_markdown_folder(conn, library, tmp_path, db_dump):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("not markdown\n", encoding="utf-8")
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_folder(conn, library, folder)
    assert (caught.value.source, caught.value.line, caught.value.field) == (str(folder), 0, "-")
    assert "empty" in caught.value.reason
    assert db_dump() == before


# -- single Markdown file ----------------------------------------------------


def test_markdown_file_headings_hang_under_the_root(conn, library, tmp_path, check_tree):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    report = import_file(conn, library, path, plain_text=False)

    top = kids(conn, library.root_id)
    assert titles(top) == [("section", "Setext Title"), ("section", "Second")]
    first = kids(conn, top[0].id)
    assert [node.kind for node in first] == ["statement", "statement"]
    assert first[0].title == "Intro paragraph."
    assert first[1].title == "```\n# not a heading\n```"  # a fenced block is one statement, not a heading
    assert titles(kids(conn, top[1].id)) == [("statement", "Last.")]
    assert report.added == 5
    assert (top[0].child_count, top[0].subtree_size) == (2, 3)
    assert provenance(conn, top[1]) == {"importer": "markdown", "source": str(path), "line": 12}
    check_tree()


def test_long_paragraph_gets_a_cut_title_and_keeps_the_text(conn, library, tmp_path):
    text = "word " * 100
    path = tmp_path / "long.md"
    path.write_text(text + "\n", encoding="utf-8")
    import_file(conn, library, path, plain_text=False)
    (statement,) = kids(conn, library.root_id)
    assert len(statement.title) == TITLE_LIMIT and statement.title.endswith("…")
    assert statement.body == text.strip()


def test_heading_levels_can_skip_and_close(conn, library, tmp_path, check_tree):
    path = tmp_path / "levels.md"
    path.write_text("# A\n### A.deep\nx\n## B\ny\n# C\nz\n", encoding="utf-8")
    import_file(conn, library, path, plain_text=False)
    a, c = kids(conn, library.root_id)
    assert titles(kids(conn, a.id)) == [("section", "A.deep"), ("section", "B")]
    assert titles(kids(conn, c.id)) == [("statement", "z")]
    check_tree()


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"], ids=["empty", "blank"])
def test_empty_markdown_file(conn, library, tmp_path, db_dump, content):
    path = tmp_path / "empty.md"
    path.write_bytes(content)
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_file(conn, library, path, plain_text=False)
    assert (caught.value.source, caught.value.line, caught.value.field) == (str(path), 0, "-")
    assert "empty" in caught.value.reason
    assert db_dump() == before


def test_markdown_file_reimport_collides(conn, library, tmp_path, db_dump):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT, encoding="utf-8")
    import_file(conn, library, path, plain_text=False)
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_file(conn, library, path, plain_text=False)
    assert (caught.value.line, caught.value.field) == (1, "id")
    assert db_dump() == before


# -- plain text ------------------------------------------------------------


def test_plain_text_with_capital_and_hash_headings(conn, library, tmp_path, check_tree):
    path = tmp_path / "paper.txt"
    path.write_text(PLAIN, encoding="utf-8")
    import_file(conn, library, path, plain_text=True)

    top = kids(conn, library.root_id)
    assert titles(top) == [("section", "INTRODUCTION"), ("section", "METHODS AND DATA"), ("section", "Results")]
    assert titles(kids(conn, top[0].id)) == [("statement", "Some text here.")]
    # a capitalised line inside a paragraph is not a heading
    assert titles(kids(conn, top[1].id)) == [("statement", "More text ON TWO LINES.")]
    assert titles(kids(conn, top[2].id)) == [("statement", "It worked.")]
    assert provenance(conn, top[1]) == {"importer": "text", "source": str(path), "line": 5}
    check_tree()


def test_capital_lines_are_not_headings_in_markdown(conn, library, tmp_path):
    path = tmp_path / "caps.md"
    path.write_text("INTRODUCTION\n\nText.\n", encoding="utf-8")
    import_file(conn, library, path, plain_text=False)
    assert titles(kids(conn, library.root_id)) == [("statement", "INTRODUCTION"), ("statement", "Text.")]


def test_plain_text_non_utf8(conn, library, tmp_path, db_dump):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"INTRO\n\nline two\ncaf\xe9\n")
    before = db_dump()
    with pytest.raises(ImportProblem) as caught:
        import_file(conn, library, path, plain_text=True)
    assert (caught.value.source, caught.value.field) == (str(path), "-")
    assert "not valid UTF-8" in caught.value.reason
    assert db_dump() == before


def test_plain_text_non_utf8_names_the_line(conn, library, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"INTRO\n\nline two\ncaf\xe9\n")
    with pytest.raises(ImportProblem) as caught:
        import_file(conn, library, path, plain_text=True)
    assert caught.value.line == 4
