"""kb/atomic_file.py: a file is the old one or the whole new one, whoever writes it (the export, the
answer key, calibrations), and a staged file can wait for a database commit before it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.atomic_file import StagedFile, write_atomically


def test_a_staged_file_replaces_the_target_only_when_committed(tmp_path: Path) -> None:
    target = tmp_path / "key.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with StagedFile(target) as kept_back:
        kept_back.write_text("never\n")
        assert target.read_text(encoding="utf-8") == "old\n"  # e.g. the items transaction failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.jsonl"]

    first, second = StagedFile(target), StagedFile(target)
    assert first.path != second.path  # two writers never share a staged file
    first.write_text("new\n")
    first.commit()
    second.discard()
    assert target.read_text(encoding="utf-8") == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.jsonl"]


def test_a_failed_write_leaves_the_target_and_no_staged_file(tmp_path: Path) -> None:
    target = tmp_path / "calibration.json"
    write_atomically(target, "{}\n")
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path, "x")  # a folder cannot be replaced by a file
    assert target.read_text(encoding="utf-8") == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.json"]
