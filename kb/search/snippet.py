"""The piece of a node's text shown under a hit, with the query's words marked.

A word is marked when its term (the analyzer's stem) is one the query matched, so
"landlocked" in the text is marked for the query "landlock". Long texts show one
window of SNIPPET_CHARS around the first match. Tokens are mapped to terms through
a per-process cache, so a page of hits costs well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Collection

from kb.search.text import TOKEN, term_of

SNIPPET_CHARS = 240
LEAD_CHARS = 60  # context kept before the first match
_TERMS: dict[str, str | None] = {}
_CACHE_LIMIT = 200_000

Snippet = list[tuple[str, bool]]


def _term(token: str) -> str | None:
    found = _TERMS.get(token, "")
    if found == "":
        if len(_TERMS) > _CACHE_LIMIT:
            _TERMS.clear()
        found = _TERMS[token] = term_of(token)
    return found


def snippet(text: str, terms: Collection[str]) -> Snippet:
    """(piece, is_match) pairs covering the shown window of `text`, in order."""
    matches = [(m.start(), m.end()) for m in TOKEN.finditer(text) if _term(m.group()) in terms]
    start, end = 0, len(text)
    if end > SNIPPET_CHARS:
        if matches:
            start = max(0, matches[0][0] - LEAD_CHARS)
            if start:
                space = text.find(" ", start, matches[0][0])
                start = space + 1 if space >= 0 else start
        end = min(len(text), start + SNIPPET_CHARS)
        if end < len(text):
            space = text.rfind(" ", start, end)
            end = space if space > start else end
    pieces: Snippet = [("… ", False)] if start else []
    at = start
    for begin, finish in matches:
        if begin < start or finish > end:
            continue
        if begin > at:
            pieces.append((text[at:begin], False))
        pieces.append((text[begin:finish], True))
        at = finish
    if at < end:
        pieces.append((text[at:end], False))
    if end < len(text):
        pieces.append((" …", False))
    return pieces
