"""How text becomes search terms, once for queries and once, much faster, for indexing.

Queries go through whoosh's own analyzer (the schema's), so whoosh's parser,
highlighter and any whoosh query see exactly the terms the index holds. Indexing
a million nodes through that analyzer costs about 5 µs a token in Python
generators; `TermCoder` produces the same terms and positions from one regex
`findall` per text and a dictionary lookup per distinct token, about 20 times
faster. `tests/test_search_text.py` checks the two agree, token for token.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from whoosh.analysis import Analyzer, LowercaseFilter, RegexTokenizer, StemmingAnalyzer, StopFilter
from whoosh.fields import STORED, TEXT, Schema
from whoosh.lang.porter import stem
from whoosh.lang.stopwords import stoplists

FIELDS = ("title", "body", "path")  # searched and ranked
SPELLING = "spelling"  # title words as typed (lowercased, not stemmed): where suggestions come from
# A path is made of titles (the node's and its ancestors'), so its words weigh as titles do;
# measured on the demo's questions (bench/search.py), this put the item's country in the top
# five hits more often (0.73 → 0.74) and the answer node in the top five (0.12 → 0.14).
FIELD_BOOSTS = {"title": 2.0, "body": 1.0, "path": 2.0}

# Very common words match most of a large library and rank nothing; negations stay
# searchable because in a library of claims they matter.
STOP_WORDS = frozenset(stoplists["en"]) - {"no", "not", "nor", "don", "t", "against"}
MIN_WORD = 2  # whoosh's StopFilter default: one-letter tokens are dropped too

# whoosh's default tokenizer pattern, with its capture group made non-capturing for findall.
TOKEN = re.compile(r"[\w\*]+(?:\.?[\w\*]+)*")
STOPPED = -1


def analyzer() -> Analyzer:
    return StemmingAnalyzer(stoplist=STOP_WORDS, minsize=MIN_WORD)


def spelling_analyzer() -> Analyzer:
    return RegexTokenizer() | LowercaseFilter() | StopFilter(stoplist=None, minsize=MIN_WORD)


def schema() -> Schema:
    """Only what search needs. The node id is the one stored value (titles and paths are
    read back from SQLite for the hits shown)."""
    stem_words = analyzer()
    return Schema(
        node_id=STORED(),
        title=TEXT(analyzer=stem_words, field_boost=FIELD_BOOSTS["title"]),
        body=TEXT(analyzer=stem_words, field_boost=FIELD_BOOSTS["body"]),
        path=TEXT(analyzer=stem_words, field_boost=FIELD_BOOSTS["path"]),
        spelling=TEXT(analyzer=spelling_analyzer()),
    )


def term_of(token: str) -> str | None:
    """The index term for one raw token, or None when the analyzer drops it."""
    lowered = token.lower()
    if len(lowered) < MIN_WORD or lowered in STOP_WORDS:
        return None
    return str(stem(lowered))


def query_terms(text: str) -> list[str]:
    """The distinct terms a piece of text contributes to a query, in order."""
    return list(dict.fromkeys(t for t in (term_of(token) for token in TOKEN.findall(text)) if t))


def spelling_of(token: str) -> str | None:
    """A title word worth suggesting: as typed, lowercased; numbers are not suggested."""
    lowered = token.lower()
    if len(lowered) < MIN_WORD or lowered.replace(".", "").isdigit():
        return None
    return lowered


class TermCoder(dict[str, int]):
    """Maps raw tokens to term numbers (STOPPED for dropped ones), learning terms as it
    meets them; `terms[number]` is the term's text. One instance per index build."""

    def __init__(self, term_of: Callable[[str], str | None] = term_of) -> None:
        super().__init__()
        self.terms: list[str] = []
        self._numbers: dict[str, int] = {}
        self._term_of = term_of

    def __missing__(self, token: str) -> int:
        term = self._term_of(token)
        if term is None:
            number = STOPPED
        else:
            number = self._numbers.get(term, -1)
            if number < 0:
                number = self._numbers[term] = len(self.terms)
                self.terms.append(term)
        self[token] = number
        return number

    def code(self, tokens: Sequence[str]) -> list[int]:
        return list(map(self.__getitem__, tokens))


def whoosh_terms(text: str) -> list[tuple[str, int]]:
    """(term, position) pairs as whoosh's analyzer gives them; the reference for tests."""
    return [(token.text, token.pos) for token in analyzer()(text, positions=True)]
