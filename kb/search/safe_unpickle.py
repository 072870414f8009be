"""whoosh's index files hold pickles; here they may only rebuild what an index is made of.

whoosh stores its table of contents (the schema and the segment list), the term
dictionary's extras and some postings as pickles, and `pickle.loads` runs whatever a
pickle names. A search index travels beside a workspace: one sent by someone else
could run code the moment search opens it. So before whoosh reads an index, its
unpicklers are replaced by one that resolves only the classes and functions an index
of this project (or whoosh's own, older format) is made of — schema fields, formats,
analyzers, our segments and codec — and refuses anything else with SearchError-worthy
`UnsafeIndex`. Legacy table-of-contents formats, which whoosh reads through its own
renaming unpickler, are refused outright (a rebuild writes the current format).
"""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace
from typing import Any

from kb.errors import ZNavigatorError

INDEX_NAME = "MAIN"  # whoosh's name for the index inside its folder (its default, as earlier releases used)

_ALLOWED_FUNCTIONS = {
    ("re", "_compile"),  # a compiled tokenizer pattern pickles as this call
    ("whoosh.lang.porter", "stem"),
    ("collections", "defaultdict"),  # whoosh's own segments keep field lengths in one
}
_ALLOWED_BUILTINS = {"frozenset", "set", "dict", "list", "tuple", "object", "int", "float"}
_CLASS_MODULES = (
    "whoosh.fields",
    "whoosh.formats",
    "whoosh.analysis.analyzers",
    "whoosh.analysis.filters",
    "whoosh.analysis.morph",
    "whoosh.analysis.tokenizers",
    "whoosh.analysis.intraword",
    "whoosh.analysis.ngrams",
    "whoosh.analysis.acore",
    "whoosh.codec.whoosh3",
    "kb.search.codec",
)
# Indexes written before search became a package name the codec's classes by their old module.
_RENAMED = {"kb.search_codec": "kb.search.codec"}


class UnsafeIndex(ZNavigatorError, pickle.UnpicklingError):
    """An index file names something an index is not made of."""


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = _RENAMED.get(module, module)
        if module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS:
            return super().find_class("builtins", name)
        if (module, name) in _ALLOWED_FUNCTIONS:
            return super().find_class(module, name)
        if module in _CLASS_MODULES:
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise UnsafeIndex(f"the index names {module}.{name}, which a search index is not made of")


def safe_loads(data: bytes) -> Any:
    return _IndexUnpickler(io.BytesIO(data)).load()


def safe_load(file: Any) -> Any:
    return _IndexUnpickler(file).load()


_installed: list[bool] = []


def whoosh_index() -> Any:
    """`whoosh.index`, with every unpickler whoosh uses on index files made safe first."""
    from whoosh import formats, index
    from whoosh.codec import whoosh3
    from whoosh.filedb import structfile

    if not _installed:
        index.pickle = SimpleNamespace(loads=safe_loads, dumps=pickle.dumps, PicklingError=pickle.PicklingError)
        index.toc_loaders = {}
        structfile.load_pickle = safe_load
        whoosh3.loads = safe_loads
        formats.loads = safe_loads
        _installed.append(True)
    return index
