"""Which item next: the order in which the labelling queue and `navigator simulate` take items.

Labels cost people's time, so the queue can put first the D*_validation items the current
imitation model is least sure of, or where labelers already disagree (uncertainty
sampling, as annotation tools with a model in the loop do). But the method needs an IID
sample too: the IID guard and every unbiased estimate (labelers' accuracy, the model's
agreement with them) assume the labelled items were drawn at random from D*_validation.

How the two coexist: every item gets a random rank from a hash of (seed, uid) — fixed
before any model exists and independent of it. One queue slot in RANDOM_EVERY takes the
next item in rank order (skipping items already placed); the other slots take the next
item by priority. So however far a labeler gets, the labelled items include the first
⌊n / RANDOM_EVERY⌋ items of the rank order, and the longest fully-labelled prefix of the
rank order (`iid_sample`) is a uniform random sample of the items — checkable afterwards
from the labels alone, whatever model ordered the rest. The split-level IID guard
(models.imitation.evaluation) compares all of D*_validation with D*_prediction and does not depend
on the order at all.

Priority of an item: the larger of the model's normalised entropy on it (0 sure, 1 uniform;
1 for an item the model cannot answer, e.g. its task had too few labels to train) and the
labelers' disagreement on it (generalised Jensen–Shannon divergence of their current labels,
normalised by log k; 0 with fewer than two labels). Ties go by random rank.

Only D*_validation items are reordered, among the queue positions they already hold; train
items keep their places. Assignment (who gets which items) filters the list first; this
module only orders what it is given.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kb.assignments import items_for
from kb.items import Item, items_in
from kb.labels import current_predictions_in_library
from kb.libraries import Library
from models.imitation.errors import TrainerError
from models.imitation.model_store import latest_validation_predictions

ORDERS = ("auto", "given", "random", "uncertain")
RANDOM_EVERY = 3
ORDERED_SPLIT = "validation"


@dataclass(frozen=True)
class Ordering:
    items: list[Item]
    how: str  # said in the status line and by `simulate`


def random_rank(item: Item, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{item.uid}".encode()).hexdigest()


def by_random_rank(items: Sequence[Item], seed: int) -> list[Item]:
    return sorted(items, key=lambda item: random_rank(item, seed))


def interleave(
    items: Sequence[Item], priority: Mapping[str, float], *, seed: int, every: int = RANDOM_EVERY
) -> list[Item]:
    """Slots every-1, 2·every-1, … take the next item in random-rank order; the rest the
    highest-priority item left (ties and unknown priorities by random rank)."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    rank = {item.uid: random_rank(item, seed) for item in items}
    random_stream = sorted(items, key=lambda item: rank[item.uid])
    priority_stream = sorted(items, key=lambda item: (-priority.get(item.uid, 0.0), rank[item.uid]))
    placed: set[str] = set()
    ordered: list[Item] = []
    streams = {True: iter(random_stream), False: iter(priority_stream)}
    while len(ordered) < len(items):
        stream = streams[len(ordered) % every == every - 1]
        for item in stream:
            if item.uid not in placed:
                placed.add(item.uid)
                ordered.append(item)
                break
    return ordered


def iid_sample(items: Sequence[Item], labelled: set[str], *, seed: int) -> list[Item]:
    """The longest prefix of the random-rank order whose items are all labelled: a uniform
    random sample of `items`, however the rest of the queue was ordered."""
    sample = []
    for item in by_random_rank(items, seed):
        if item.uid not in labelled:
            break
        sample.append(item)
    return sample


def entropy(probs: Sequence[float]) -> float:
    """Shannon entropy divided by log k: 0 for a sure distribution, 1 for the uniform one."""
    if len(probs) < 2:
        return 0.0
    total = sum(probs)
    value = -sum(p / total * math.log(p / total) for p in probs if p > 0)
    return value / math.log(len(probs))


def disagreement(distributions: Sequence[Sequence[float]]) -> float:
    """Entropy of the labelers' mean distribution minus their mean entropy (generalised
    Jensen–Shannon divergence), divided by log k: 0 when they agree or only one labelled."""
    if len(distributions) < 2:
        return 0.0
    k = len(distributions[0])
    mean = [sum(d[j] for d in distributions) / len(distributions) for j in range(k)]
    return max(0.0, entropy(mean) - sum(entropy(d) for d in distributions) / len(distributions))


def label_disagreement(conn: sqlite3.Connection, library: Library, items: Sequence[Item]) -> dict[str, float]:
    """Per item, how far the labelers' current labels (made with this library) disagree. An item
    the lead has adjudicated is settled: 0, like the agreement figures, which leave rulings out."""
    ids = {item.id: item for item in items}
    given: dict[int, list[list[float]]] = {}
    settled: set[int] = set()
    for label in current_predictions_in_library(conn, library.id, ids):
        if label.adjudication:
            settled.add(label.item_id)
        else:
            given.setdefault(label.item_id, []).append([label.probs.get(o, 0.0) for o in ids[label.item_id].options])
    return {ids[i].uid: disagreement(labels) for i, labels in given.items() if i not in settled}


def priorities(
    items: Sequence[Item], predictions: Mapping[str, Sequence[float]], disagreements: Mapping[str, float]
) -> dict[str, float]:
    """Per item, the larger of the model's uncertainty and the labelers' disagreement."""
    priority = {}
    for item in items:
        probs = predictions.get(item.uid)
        # An item the model has no answer for (its task had too few labels to train) is as
        # uncertain as can be: ranking it last would starve exactly the tasks that need labels.
        known = entropy(probs) if probs is not None and len(probs) == len(item.options) else 1.0
        priority[item.uid] = max(disagreements.get(item.uid, 0.0), known)
    return priority


def order_items(
    conn: sqlite3.Connection, library: Library, items: Sequence[Item], *, order: str = "auto", seed: int = 0
) -> Ordering:
    """`items` in the order asked for. "auto" orders by uncertainty when the library has a
    trained model and keeps the given order otherwise; "random" is the random-rank order."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    validation = [item for item in items if item.split == ORDERED_SPLIT]
    stored, unread = None, ""
    if order in ("auto", "uncertain"):
        try:
            stored = latest_validation_predictions(conn, library.id, library.name)
        except TrainerError as error:  # e.g. an old pickled model: the queue still works
            unread = f"; the model was not read: {error}"
    if order == "given" or not validation or (order == "auto" and stored is None):
        return Ordering(list(items), "as listed" + unread)
    if order == "random":
        reordered = by_random_rank(validation, seed)
        how = f"D*_validation in random order (seed {seed})"
    else:
        version, predictions = stored or (0, {})
        priority = priorities(validation, predictions, label_disagreement(conn, library, validation))
        reordered = interleave(validation, priority, seed=seed)
        model = f"model v{version}" if stored is not None else "no model yet"
        how = (
            f"D*_validation by uncertainty ({model}) and labeler disagreement, "
            f"1 in {RANDOM_EVERY} at random (seed {seed}) for the IID sample{unread}"
        )
    slots = iter(reordered)
    return Ordering([next(slots) if item.split == ORDERED_SPLIT else item for item in items], how)


def labeler_queue(
    conn: sqlite3.Connection,
    library: Library,
    labeler: str,
    splits: Sequence[str],
    *,
    order: str = "auto",
    seed: int = 0,
) -> Ordering:
    """The one way a labeler's queue is built, for the app, `navigator simulate` and the benches: the
    items of `splits`, those the plan in force gives to others left out (kb.assignments.items_for),
    then ordered (`order_items`)."""
    return order_items(conn, library, items_for(conn, labeler, items_in(conn, tuple(splits))), order=order, seed=seed)
