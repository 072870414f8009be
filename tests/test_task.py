"""The draft answer: any sequence of quick picks and nudges keeps a valid distribution."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kb.items import Item
from kb.labels import checked_distribution
from navigator.task import Draft

moves = st.one_of(
    st.tuples(st.just("pick"), st.integers(0, 8)),
    st.tuples(st.just("select"), st.sampled_from([1, -1])),
    st.tuples(st.just("nudge"), st.sampled_from([0.05, -0.05, 0.01, -0.01, 0.5, -1.0])),
)


def item(options: int) -> Item:
    return Item(1, "i", "t", "x?", tuple(f"option {n}" for n in range(options)), "train")


@given(st.integers(2, 9), st.lists(moves, max_size=60))
def test_every_key_sequence_leaves_a_storable_distribution(options: int, sequence: list[tuple[str, float]]) -> None:
    draft = Draft.fresh(item(options))
    for move, value in sequence:
        if move == "pick":
            draft.pick(int(value))
        elif move == "select":
            draft.select(int(value))
        else:
            draft.nudge(value)
        assert all(0.0 <= p <= 1.0 for p in draft.probs)
        assert abs(sum(draft.probs) - 1.0) < 1e-9
    checked_distribution(draft.as_dict(), draft.item.options)


def test_quick_pick_and_nudge_values() -> None:
    draft = Draft.fresh(item(2))
    draft.pick(1)
    assert draft.as_dict() == {"option 0": 0.1, "option 1": 0.9}
    draft.nudge(0.05)
    assert abs(draft.probs[1] - 0.95) < 1e-12 and abs(draft.probs[0] - 0.05) < 1e-12
    draft.nudge(1.0)
    assert draft.probs == [0.0, 1.0]
    draft.nudge(-0.25)
    assert abs(draft.probs[0] - 0.25) < 1e-12


def test_trail_and_citations() -> None:
    draft = Draft.fresh(item(3))
    for uid in ["a", "a", "b", "a"]:
        draft.visit(uid)
    assert draft.trail == ["a", "b", "a"]
    assert draft.toggle_citation("b") and draft.cited == ["b"]
    assert not draft.toggle_citation("b") and draft.cited == []
