"""Benchmark a million-node workspace against plain-SQLite anchors.

Why: DESIGN.md §7 promises one-frame tree navigation and sub-100 ms search on a
library of a million nodes. Absolute timings depend on the machine, so every
figure is printed next to an *anchor* — the same work done the most direct way
SQLite allows on the same machine, in the same run — and the ratio between the
two. A ratio that grows between runs points at our code, not at the hardware.

The library is synthetic but shaped like a real one: books → chapters →
sections → statements (some statements unpacked one level further), mostly
3–30 children a node, a few sections with hundreds or thousands, and one node
with 100 000 children. Text comes from a seeded Zipf-weighted vocabulary, so a
run with the same --seed and --nodes builds the same library byte for byte.

    python -m bench.workspace --nodes 20000          # quick sanity check
    python -m bench.workspace --keep /tmp/b --json   # full million-node run
    python -m bench.workspace --nodes 10000000 --widest 1000000   # ten million, a million-child node

Run it with `-m` from the checkout, so `kb` is imported from the checkout and
not from wherever the package happens to be installed; the report names the
`kb` it measured. Figures print as soon as each is measured, so a run cut short
still reports what it got.

Longer than most modules (about 590 lines) on purpose: one command, one measurement, its library
generator, anchors and report read top to bottom in one file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import kb
from kb.db import connect
from kb.formats.jsonl import read_jsonl_nodes
from kb.importing import import_staged
from kb.libraries import Library, create_library
from kb.progress import NoProgress
from kb.tree import ancestors, children, node_by_uid

# (id, parent, title, body, kind): one JSONL line, and one row of the anchor table.
Row = tuple[str, str | None, str, str, str]

HUGE_FANOUT = 100_000
PAGE = 200
BUDGET_TREE_P99_MS = 5.0
BUDGET_SEARCH_P95_MS = 100.0
OUR_FILES = ("workspace.db", "anchor.db", "fts.db")  # and their -wal, -shm, .index siblings

# --------------------------------------------------------------------------- text

FUNCTION_WORDS = """the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if more no can will its who so
than also into other only some these may then about such each over most"""

CONTENT_WORDS = """time people year way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number night point
home water room mother area money story fact month lot right study book eye job word business issue side kind
head house service friend father power hour game line end member law car city community name president team
minute idea kid body information back parent face others level office door health person art war history party
result change morning reason research girl guy moment air teacher force education foot boy age policy process
music market sense nation plan college interest death experience effect use class control care field development
role effort rate heart drug show leader light voice wife police mind price report decision son view relationship
town road arm difference value building action model season society tax director position player record paper
space ground form event official matter center couple site project activity star table need court oil situation
cost industry figure street image phone data picture practice piece land product doctor wall patient worker news
test movie north love support technology step baby computer type attention film tree source organization hair
window evidence population site behavior theory energy culture memory island river mountain forest valley ocean
climate species language religion economy treaty border capital harvest engine signal circuit protein cell
molecule planet orbit gravity measure sample method estimate prior evidence claim argument premise inference
"""

ONSETS = "b c d f g h l m n p r s t v w br cr dr fl gr pl pr st tr sh ch th sp cl"
VOWELS = "a e i o u ai ea ee ou io ia"
CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "rt", "ck", "ng"]
SUFFIXES = ["", "", "", "ing", "ed", "er", "ion", "ment", "ness", "ly", "al", "ity", "ous", "ive"]


@dataclass(frozen=True)
class Vocabulary:
    """Words in frequency rank order with Zipf–Mandelbrot weights, as running text has."""

    words: list[str]
    cum_weights: list[float]
    first_content: int  # ranks below this are function words: never query terms

    def draw(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum_weights, k=count)


def pseudo_word(rng: random.Random) -> str:
    onsets, vowels = ONSETS.split(), VOWELS.split()
    syllables = rng.choice((1, 2, 2, 2, 3, 3, 4))
    stem = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(CODAS) for _ in range(syllables))
    return stem + rng.choice(SUFFIXES)


def build_vocabulary(rng: random.Random, size: int = 20_000) -> Vocabulary:
    """Real English words at the head of the distribution, pronounceable made-up words in the tail."""
    words = list(dict.fromkeys(FUNCTION_WORDS.split() + CONTENT_WORDS.split()))
    seen = set(words)
    while len(words) < size:
        word = pseudo_word(rng)
        if word not in seen and len(word) > 2:
            seen.add(word)
            words.append(word)
    weights = itertools.accumulate(1.0 / (rank + 2.7) for rank in range(len(words)))
    return Vocabulary(words, list(weights), len(FUNCTION_WORDS.split()))


class TextMaker:
    """Titles of 3–15 words and bodies of 0–80 words, split into sentences."""

    def __init__(self, rng: random.Random, vocabulary: Vocabulary) -> None:
        self.rng, self.vocabulary = rng, vocabulary

    def title(self) -> str:
        words = self.vocabulary.draw(self.rng, self.rng.randint(3, 15))
        return " ".join(words).capitalize()

    def body(self, max_words: int, empty_share: float) -> str:
        if self.rng.random() < empty_share:
            return ""
        words = self.vocabulary.draw(self.rng, self.rng.randint(1, max_words))
        sentences = (" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12))
        return " ".join(sentences)


# --------------------------------------------------------------------------- tree

KINDS = ("book", "chapter", "section", "statement", "statement")
UNPACK_SHARE = 0.08  # statements unpacked one level further
BIG_SECTION_SHARE = 0.005  # sections with hundreds to thousands of statements


class TreeShaper:
    """Emits exactly `total` rows, parents before children, one node with `huge` children."""

    def __init__(self, rng: random.Random, text: TextMaker, total: int, huge: int) -> None:
        self.rng, self.text, self.huge = rng, text, huge
        self.left = total - huge - 2  # the huge node and its book are reserved
        self.huge_after = int(self.left * 0.4)  # place it part-way into the file, not first
        self.emitted = 0

    def rows(self) -> Iterator[Row]:
        huge_done = False
        while self.left > 0:
            if not huge_done and self.emitted >= self.huge_after:
                yield from self._huge_book()
                huge_done = True
            yield from self._nodes(None, 0, 1)
        if not huge_done:
            yield from self._huge_book()

    def _uid(self) -> str:
        return f"n_{self.rng.getrandbits(128):032x}"

    def _fanout(self, level: int) -> int:
        if level == 3 and self.rng.random() < BIG_SECTION_SHARE:
            return self.rng.randint(200, 3_000)
        if level == 4:
            return self.rng.randint(2, 6)
        return self.rng.randint(3, 30)

    def _row(self, parent: str | None, level: int) -> Row:
        max_words, empty = (80, 0.1) if KINDS[level] == "statement" else (40, 0.5)
        return self._uid(), parent, self.text.title(), self.text.body(max_words, empty), KINDS[level]

    def _nodes(self, parent: str | None, level: int, count: int) -> Iterator[Row]:
        """`count` nodes at `level` under `parent`, each followed by its subtree."""
        for _ in range(count):
            if self.left <= 0:
                return
            row = self._row(parent, level)
            self.left -= 1
            self.emitted += 1
            yield row
            unpack = level == 3 and self.rng.random() < UNPACK_SHARE
            if level < 3 or unpack:
                yield from self._nodes(row[0], level + 1, self._fanout(level + 1))

    def _huge_book(self) -> Iterator[Row]:
        book = self._row(None, 0)
        chapter = self._row(book[0], 1)
        yield book
        yield chapter
        for _ in range(self.huge):
            yield self._row(chapter[0], 3)


def generate_rows(total: int, seed: int, widest: int | None = None) -> list[Row]:
    """The library; its widest node has `widest` children (at most half the library), by default
    HUGE_FANOUT or a tenth of the library, whichever is fewer."""
    rng = random.Random(seed)
    text = TextMaker(rng, build_vocabulary(rng))
    huge = min(HUGE_FANOUT, total // 10) if widest is None else min(widest, total // 2)
    return list(TreeShaper(rng, text, total, huge).rows())


def write_jsonl(rows: Iterable[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for uid, parent, title, body, kind in rows:
            record = {"id": uid, "parent": parent, "title": title, "body": body, "kind": kind}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- measuring helpers


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is and stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(samples_ms: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the value p% of samples are at or below."""
    ordered = sorted(samples_ms)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def time_each(calls: Iterable[Callable[[], object]]) -> list[float]:
    """Milliseconds per call."""
    samples = []
    for call in calls:
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


class PhaseClock:
    """A `kb.progress.Progress` that notes when each phase starts, to split import time."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, float]] = []

    def start(self, phase: str, total: int | None) -> None:
        self.starts.append((phase, time.perf_counter()))

    def advance(self, amount: int) -> None:
        pass

    @property
    def cancelled(self) -> bool:
        return False

    def durations(self, began: float, ended: float) -> dict[str, float]:
        marks = [("staging", began), *self.starts, ("end", ended)]
        return {name: later - at for (name, at), (_, later) in itertools.pairwise(marks) if later - at > 0.005}


class LogProgress:
    """A `kb.progress.Progress` that logs every tenth of the way with the rate so far."""

    def __init__(self) -> None:
        self.phase, self.total, self.done, self.next_log, self.began = "", 0, 0, 0, 0.0

    def start(self, phase: str, total: int | None) -> None:
        self.phase, self.total, self.done, self.began = phase, total or 0, 0, time.perf_counter()
        self.next_log = self.total // 10

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.total and self.done >= self.next_log:
            rate = self.done / max(time.perf_counter() - self.began, 1e-9)
            log(f"  {self.phase}: {self.done:,}/{self.total:,} ({rate:,.0f}/s)")
            self.next_log += max(self.total // 10, 1)

    @property
    def cancelled(self) -> bool:
        return False


def open_bare(path: Path) -> sqlite3.Connection:
    """A plain SQLite file with the workspace's pragmas, for anchors."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


# --------------------------------------------------------------------------- figures


@dataclass
class Rate:
    """Something done to `count` rows, ours against the anchor."""

    name: str
    count: int
    seconds: float
    anchor_name: str
    anchor_seconds: float
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def anchor_per_second(self) -> float:
        return self.count / self.anchor_seconds

    @property
    def ratio(self) -> float:
        return self.seconds / self.anchor_seconds


@dataclass
class Latency:
    """Percentiles of one operation over random samples, ours against the anchor."""

    name: str
    samples: int
    p50_ms: float
    p_high_ms: float
    high: int  # which percentile p_high is: 99 for tree paths, 95 for search
    anchor_name: str
    anchor_p50_ms: float
    anchor_p_high_ms: float
    note: str = ""

    @property
    def ratio_p50(self) -> float:
        return self.p50_ms / self.anchor_p50_ms

    @property
    def ratio_high(self) -> float:
        return self.p_high_ms / self.anchor_p_high_ms


def latency(name: str, ours: list[float], anchor_name: str, theirs: list[float], high: int, note: str = "") -> Latency:
    return Latency(
        name,
        len(ours),
        percentile(ours, 50),
        percentile(ours, high),
        high,
        anchor_name,
        percentile(theirs, 50),
        percentile(theirs, high),
        note,
    )


# -- 1. import


def measure_import(rows: list[Row], jsonl: Path, workdir: Path) -> tuple[sqlite3.Connection, Library, Rate]:
    log(f"anchor: executemany of {len(rows):,} rows into a bare table")
    anchor_seconds = anchor_insert(rows, workdir / "anchor.db")
    log("parse only: read_jsonl_nodes without SQL")
    started = time.perf_counter()
    parsed = sum(1 for _ in read_jsonl_nodes(jsonl, NoProgress()))
    parse_seconds = time.perf_counter() - started
    assert parsed == len(rows), f"read back {parsed} records, wrote {len(rows)}"
    log("import_staged into a fresh workspace")
    conn = connect(workdir / "workspace.db", create=True)
    library = create_library(conn, "bench")
    clock = PhaseClock()
    started = time.perf_counter()
    report = import_staged(
        conn, library, read_jsonl_nodes(jsonl, clock), source=str(jsonl), importer="jsonl", progress=clock
    )
    ended = time.perf_counter()
    assert report.added == len(rows), f"imported {report.added}, expected {len(rows)}"
    detail = {f"phase {name}": seconds for name, seconds in clock.durations(started, ended).items()}
    detail["parse only (read_jsonl_nodes, no SQL)"] = parse_seconds
    rate = Rate(
        "import_staged(read_jsonl_nodes)",
        len(rows),
        ended - started,
        "executemany into bare table",
        anchor_seconds,
        detail,
    )
    return conn, library, rate


def anchor_insert(rows: list[Row], path: Path) -> float:
    conn = open_bare(path)
    conn.execute("CREATE TABLE nodes (id TEXT, parent TEXT, title TEXT, body TEXT, kind TEXT)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO nodes VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


# -- 3. tree latency


def measure_tree(conn: sqlite3.Connection, library: Library, rng: random.Random, samples: int) -> list[Latency]:
    log(f"tree latency: {samples:,} samples per operation")
    ids = [row[0] for row in conn.execute("SELECT id FROM nodes WHERE library_id = ?", (library.id,))]
    inner = [
        row[0] for row in conn.execute("SELECT id FROM nodes WHERE library_id = ? AND child_count > 0", (library.id,))
    ]
    leaves = [
        row[0] for row in conn.execute("SELECT id FROM nodes WHERE library_id = ? AND child_count = 0", (library.id,))
    ]
    uids = [row[0] for row in conn.execute("SELECT uid FROM nodes WHERE library_id = ?", (library.id,))]
    huge_id, huge_count = conn.execute(
        "SELECT id, child_count FROM nodes WHERE library_id = ? ORDER BY child_count DESC LIMIT 1", (library.id,)
    ).fetchone()

    pk_sql = "SELECT * FROM nodes WHERE id = ?"
    anchor = time_each(lambda i=i: conn.execute(pk_sql, (i,)).fetchone() for i in rng.choices(ids, k=samples))
    select1 = time_each(lambda: conn.execute("SELECT 1").fetchone() for _ in range(samples))
    anchor_name = "PK lookup SELECT * WHERE id=?"

    def ours(name: str, calls: Iterator[Callable[[], object]], note: str = "") -> Latency:
        return latency(name, time_each(calls), anchor_name, anchor, 99, note)

    deep = [rng.randrange(huge_count) for _ in range(samples)]
    found = [
        ours(
            "children page, random inner node",
            (lambda p=p: children(conn, p, limit=PAGE) for p in rng.choices(inner, k=samples)),
            f"{len(inner):,} inner nodes, first page of up to {PAGE}",
        ),
        ours(
            f"children page, inside {huge_count:,}-child node",
            (lambda a=a: children(conn, huge_id, after_position=a, limit=PAGE) for a in deep),
            "keyset after_position uniform over the children",
        ),
        ours(
            "ancestors of random leaf",
            (lambda n=n: ancestors(conn, n) for n in rng.choices(leaves, k=samples)),
            f"{len(leaves):,} leaves",
        ),
        ours(
            "node_by_uid (with library)",
            (lambda u=u: node_by_uid(conn, u, library.id) for u in rng.choices(uids, k=samples)),
        ),
        ours("node_by_uid (no library)", (lambda u=u: node_by_uid(conn, u) for u in rng.choices(uids, k=samples))),
        latency("SELECT 1 round trip", select1, anchor_name, anchor, 99, "floor: one statement, no table"),
    ]
    return found


# -- 4. search latency


def rate_lines(number: int, title: str, rate: Rate) -> list[str]:
    lines = [
        f"{number}. {title}: {rate.count:,} nodes",
        f"   ours    {rate.name:<40} {rate.seconds:9.2f} s  {rate.per_second:12,.0f} nodes/s",
        f"   anchor  {rate.anchor_name:<40} {rate.anchor_seconds:9.2f} s  {rate.anchor_per_second:12,.0f} nodes/s",
        f"   ratio   {rate.ratio:.1f}x the anchor's time",
    ]
    lines += [f"           {name:<40} {seconds:9.2f} s" for name, seconds in rate.detail.items()]
    return lines


def latency_lines(number: int, title: str, figures: list[Latency]) -> list[str]:
    high = figures[0].high
    lines = [
        f"{number}. {title}",
        f"   anchor  {figures[0].anchor_name}: p50 {figures[0].anchor_p50_ms:.3f} ms,"
        f" p{high} {figures[0].anchor_p_high_ms:.3f} ms",
    ]
    for figure in figures:
        lines.append(
            f"   {figure.name:<46} n={figure.samples:<5} p50 {figure.p50_ms:8.3f} ms"
            f"  p{high} {figure.p_high_ms:8.3f} ms"
            f"  ratio p50 {figure.ratio_p50:6.1f}x  p{high} {figure.ratio_high:6.1f}x"
            + (f"  ({figure.note})" if figure.note else "")
        )
    return lines


def verdicts(tree: list[Latency]) -> list[str]:
    def line(label: str, value: float, budget: float) -> str:
        return f"   {'PASS' if value < budget else 'FAIL'}  {label:<40} {value:8.3f} ms  (budget < {budget:g} ms)"

    children_p99 = max(f.p_high_ms for f in tree if f.name.startswith("children page"))
    ancestors_p99 = next(f.p_high_ms for f in tree if f.name.startswith("ancestors"))
    return [
        "Budgets (issue):",
        line("children page p99 (worst of both kinds)", children_p99, BUDGET_TREE_P99_MS),
        line("ancestors p99", ancestors_p99, BUDGET_TREE_P99_MS),
    ]


def summary(args: argparse.Namespace, shape: dict[str, int], figures: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Rate):
            return {
                **asdict(value),
                "per_second": value.per_second,
                "anchor_per_second": value.anchor_per_second,
                "ratio": value.ratio,
            }
        if isinstance(value, Latency):
            return {**asdict(value), "ratio_p50": value.ratio_p50, "ratio_high": value.ratio_high}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    return {"nodes": args.nodes, "seed": args.seed, "shape": shape, **{k: plain(v) for k, v in figures.items()}}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1_000_000, help="library size (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--widest", type=int, help="children of the widest node (default 100,000 or a tenth of --nodes; at most half)"
    )
    parser.add_argument("--samples", type=int, default=2_000, help="samples per tree operation")
    parser.add_argument("--keep", type=Path, help="write files here and keep them (default: a temp dir, removed)")
    parser.add_argument("--json", action="store_true", help="also print a machine-readable summary")
    args = parser.parse_args(argv)
    if args.nodes < 100:
        parser.error("--nodes must be at least 100")
    return args


def library_shape(conn: sqlite3.Connection, library: Library) -> dict[str, int]:
    row = conn.execute(
        "SELECT COUNT(*), MAX(depth), MAX(child_count), SUM(child_count = 0),"
        " SUM(child_count BETWEEN 3 AND 30), SUM(child_count > 30)"
        " FROM nodes WHERE library_id = ? AND parent_id IS NOT NULL",
        (library.id,),
    ).fetchone()
    keys = ("nodes", "max_depth", "max_children", "leaves", "inner_3_to_30_children", "inner_over_30_children")
    return dict(zip(keys, (int(value or 0) for value in row), strict=True))


def show(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    log(f"generating {args.nodes:,} nodes (seed {args.seed}) in {workdir}")
    rows = generate_rows(args.nodes, args.seed, args.widest)
    jsonl = workdir / "library.jsonl"
    write_jsonl(rows, jsonl)
    log(f"wrote {jsonl} ({jsonl.stat().st_size / 1e6:,.0f} MB)")
    show(
        [
            f"Z Navigator workspace benchmark: {args.nodes:,} nodes, seed {args.seed}, files in {workdir}",
            f"   kb measured: {Path(kb.__file__).parent}",
        ]
    )

    conn, library, import_rate = measure_import(rows, jsonl, workdir)
    del rows
    shape = library_shape(conn, library)
    show([f"   shape: {shape}", *rate_lines(1, "import", import_rate)])

    tree = measure_tree(conn, library, rng, args.samples)
    show(latency_lines(2, "tree latency (library 'bench')", tree))

    show(verdicts(tree))
    return summary(args, shape, {"import": import_rate, "tree": tree, "verdicts": verdicts(tree)})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="zn-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in itertools.chain.from_iterable(workdir.glob(f"{name}*") for name in OUR_FILES):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    started = time.perf_counter()
    try:
        result = run(args, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
