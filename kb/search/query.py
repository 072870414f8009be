"""What a typed query asks for: clauses to rank by, clauses every hit needs, words to exclude.

People type questions ("Is Algeria landlocked?"), not boolean expressions, so every
word or quoted phrase is one *clause* and a node ranks by how many clauses it matches,
then by BM25F. whoosh's parser reads the syntax that keeps working on top of that:
"phrases", `title:` / `body:` / `path:`, `-word` and `NOT word`, `+word` (required),
`AND` / `OR` / parentheses, `word^2`, and `prefix*`. A question mark is punctuation
here, not whoosh's one-letter wildcard: that wildcard is what made "landlocked?"
match nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from whoosh import qparser, query
from whoosh.fields import Schema
from whoosh.qparser import MultifieldParser, OrGroup

from kb.errors import ZNavigatorError
from kb.search.text import FIELDS, TOKEN, term_of

MAX_CLAUSES = 32


class QuerySyntaxError(ZNavigatorError, ValueError):
    """The text cannot be read as a query."""


@dataclass(frozen=True)
class Clause:
    query: query.Query
    label: str  # the words of the query this clause came from, for "matched: …"
    required: bool = False


@dataclass
class QueryPlan:
    clauses: list[Clause] = field(default_factory=list)
    excluded: list[query.Query] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.clauses


class _PrefixOnly(qparser.WildcardPlugin):  # type: ignore[misc]
    """`word*` is a prefix search; `?` is left to be punctuation."""

    expr = r"(?P<text>[^ \t\r\n*?()\[\]{}\"']*\*)"


def parser(schema: Schema) -> MultifieldParser:
    found = MultifieldParser(list(FIELDS), schema, group=OrGroup)
    found.remove_plugin_class(qparser.WildcardPlugin)
    found.add_plugin(_PrefixOnly())
    found.add_plugin(qparser.PlusMinusPlugin())
    return found


_PARSERS: dict[int, tuple[Schema, MultifieldParser]] = {}


def _parser_for(schema: Schema) -> MultifieldParser:
    """Building a parser (its plugins and their regexes) costs milliseconds: keep one per schema."""
    found = _PARSERS.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_PARSERS) > 8:
            _PARSERS.clear()
        found = _PARSERS[id(schema)] = (schema, parser(schema))
    return found[1]


_SYNTAX = re.compile(r"""["':*()\[\]{}^~+\-\\/]|\b(?:AND|OR|NOT|ANDNOT|ANDMAYBE|TO)\b""")


def plain_words(text: str) -> query.Query | None:
    """The parse of text with no query syntax, built directly: whoosh's parser costs ~10 ms
    a query, most of a search's time, for the plain words people usually type. It gives
    exactly what whoosh's parser gives (tests/test_search_query.py checks), or None when the
    text has syntax and must go through whoosh."""
    if _SYNTAX.search(text):
        return None
    if not text.split():
        return query.NullQuery
    words = []
    for chunk in text.split():
        terms = [t for t in (term_of(token) for token in TOKEN.findall(chunk)) if t]
        if len(terms) == 1:
            words.append(query.Or([query.Term(field, terms[0]) for field in FIELDS]))
        elif terms:
            words.append(query.Or([query.Or([query.Term(field, term) for term in terms]) for field in FIELDS]))
        else:
            words.append(query.Or([]))
    return query.Or(words)


def plan(text: str, schema: Schema) -> QueryPlan:
    try:
        parsed = plain_words(text) or _parser_for(schema).parse(text, normalize=False)
    except Exception as error:  # whoosh raises many kinds for malformed syntax
        raise QuerySyntaxError(str(error)) from error
    result = QueryPlan()
    labels = _Labels(text)
    _collect(parsed, result, labels, required=False)
    if len(result.clauses) > MAX_CLAUSES:
        dropped = result.clauses[MAX_CLAUSES:]
        result.clauses = result.clauses[:MAX_CLAUSES]
        result.notes.append(
            f"only the first {MAX_CLAUSES} words were searched; left out: " + " ".join(c.label for c in dropped)
        )
    return result


def _collect(node: query.Query, into: QueryPlan, labels: _Labels, *, required: bool) -> None:
    """`node` is a list of clauses: the whole query, or one side of `-word` / `+word`."""
    if isinstance(node, query.AndNot):
        _collect(node.a, into, labels, required=required)
        into.excluded.append(node.b)
    elif isinstance(node, query.AndMaybe):
        _collect(node.a, into, labels, required=True)
        _collect(node.b, into, labels, required=required)
    elif isinstance(node, query.And):
        for child in node.children():
            _clause(child, into, labels, required=True)
    elif isinstance(node, query.Or):
        for child in node.children():
            _clause(child, into, labels, required=required)
    else:
        _clause(node, into, labels, required=required)


def _clause(node: query.Query, into: QueryPlan, labels: _Labels, *, required: bool) -> None:
    """One word, phrase or parenthesised group; `a AND b` makes both required."""
    if isinstance(node, query.Not):
        into.excluded.append(node.query)
    elif isinstance(node, query.And):
        for child in node.children():
            _clause(child, into, labels, required=True)
    elif not _is_empty(node):
        into.clauses.append(Clause(node, labels.of(node), required))


def _is_empty(node: query.Query) -> bool:
    if node is query.NullQuery or isinstance(node, type(query.NullQuery)):
        return True
    if isinstance(node, query.Or | query.And):
        return all(_is_empty(child) for child in node.children())
    return False


class _Labels:
    """Names a clause by the words of the query that made its terms: the first run of the
    text between spaces whose terms are the clause's ("20,000" for the terms 20 and 000)."""

    def __init__(self, text: str) -> None:
        self.chunks: list[tuple[str, frozenset[str]]] = []
        for chunk in text.split():
            terms = frozenset(t for t in (term_of(token) for token in TOKEN.findall(chunk)) if t)
            self.chunks.append((chunk.strip("\"'()[]{}?!.,;:$+-^~"), terms))
        for quoted in re.findall(r'"([^"]*)"', text):
            terms = frozenset(t for t in (term_of(token) for token in TOKEN.findall(quoted)) if t)
            self.chunks.insert(0, (f'"{quoted}"', terms))
        self.words = [(match.group(), term_of(match.group())) for match in TOKEN.finditer(text)]

    def of(self, node: query.Query) -> str:
        terms = {str(text) for text in _texts(node)}
        same = [chunk for chunk, found in self.chunks if found and found == terms]
        if same:
            return same[0]
        words = [word for word, term in self.words if term is not None and term in terms]
        shown = " ".join(dict.fromkeys(words)) or " ".join(sorted(terms)) or str(node)
        return f'"{shown}"' if any(isinstance(part, query.Phrase) for part in node.leaves()) else shown


def _texts(node: query.Query) -> list[str]:
    found: list[str] = []
    for leaf in node.leaves() if node.children() else [node]:
        if isinstance(leaf, query.Phrase):
            found.extend(leaf.words)
        elif isinstance(leaf, query.Prefix):
            found.append(f"{leaf.text}*")
        elif hasattr(leaf, "text"):
            found.append(str(leaf.text))
    return found
