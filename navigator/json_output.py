"""The command line's one JSON encoder: what `--json` prints and what `navigator predict` writes.

Every command hands its value to `json_text` (through navigator.commands.support.emit_json), or,
for JSONL, to `json_lines`; no command calls json.dumps itself or handles NaN on its own.

The one rule for numbers that are not finite: NaN, +inf and -inf become null, wherever they are
(a mean over no items, log P of a probability 0, a distance that could not be computed). JSON has
no spelling for them, and Python's `NaN`/`Infinity` are not JSON: strict readers refuse them. The
text output keeps its own words for them ("-inf", "undefined"); JSON says null.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any


def plain(value: Any) -> Any:
    """`value` as plain JSON data (dicts, lists, strings, finite numbers, booleans, None).

    Dicts and lists are walked; tuples become lists; a dataclass becomes the dict of its fields
    (as `dataclasses.asdict`); a pydantic model becomes `model_dump(mode="json")`; a path becomes its
    string; a numpy scalar or array becomes its Python value. A float that is NaN, +inf or -inf
    becomes None (null), at any depth. Anything else is a bug and raises TypeError, as json.dumps would.
    """
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # a pydantic model; pydantic itself is not imported here
        return plain(value.model_dump(mode="json"))
    if type(value).__module__ == "numpy" and callable(getattr(value, "tolist", None)):
        return plain(value.tolist())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_text(value: Any, *, compact: bool = False) -> str:
    """`value` as JSON text under the one rule (non-finite floats are null): indented for people,
    or `compact`, on one line, for JSONL. Non-ASCII text is kept as it is."""
    data = plain(value)
    if compact:
        return json.dumps(data, ensure_ascii=False, allow_nan=False)
    return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)


def json_lines(records: Iterable[Any]) -> str:
    """JSONL: each record compact on its own line, every line ending in a newline."""
    return "".join(json_text(record, compact=True) + "\n" for record in records)
