"""Incoherence a labeler can see at a glance, checked as they type a credence.

Only the cheap, certain cases: a conjunction cannot be more likely than any
part of it, nor less likely than its parts' Fréchet lower bound
Σ P(part) − (n − 1); and the whole library cannot be more likely than any
statement set in it. The full LP engine (models/prior) finds the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

EPSILON = 1e-9
Key = tuple[str, ...]  # sorted node uids; () is the whole library


def visible_conflicts(target: Key, p: float, known: Mapping[Key, float], name: Callable[[Key], str]) -> list[str]:
    """Messages naming each earlier credence that `p` for `target` contradicts."""
    messages = []
    wanted = set(target)
    for key, q in known.items():
        if key == target:
            continue
        if not key:
            if target and q > p + EPSILON:
                messages.append(f"P(whole library) = {q:g} is above {p:g}, yet the library includes {name(target)}")
            continue
        if not target:
            if p > q + EPSILON:
                messages.append(f"P({name(key)}) = {q:g}: the whole library cannot be more likely than that")
            continue
        parts = set(key)
        if parts < wanted and p > q + EPSILON:
            messages.append(f"P({name(key)}) = {q:g}: a conjunction including it cannot be more likely")
        elif wanted < parts and p < q - EPSILON:
            messages.append(
                f"P({name(key)}) = {q:g}: that conjunction includes this one, so this cannot be less likely"
            )
    if len(target) >= 2 and all((uid,) in known for uid in target):
        lower = sum(known[(uid,)] for uid in target) - (len(target) - 1)
        if p < lower - EPSILON:
            singles = " + ".join(f"{known[(uid,)]:g}" for uid in target)
            messages.append(f"at least {singles} − {len(target) - 1} = {lower:g} from the single credences")
    return messages
