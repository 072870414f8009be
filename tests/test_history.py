"""navigator.history: back and forward through opened nodes, with plain values."""

from __future__ import annotations

from navigator.history import History


def test_back_and_forward_walk_the_nodes_opened() -> None:
    history = History()
    assert history.back() is None and history.forward() is None
    for node_id in (1, 2, 2, 3):
        history.visit(node_id)
    assert history.visited == [1, 2, 3]
    assert [history.back(), history.back(), history.back()] == [2, 1, None]
    assert [history.forward(), history.forward(), history.forward()] == [2, 3, None]


def test_opening_a_node_after_going_back_drops_what_was_forward() -> None:
    history = History()
    for node_id in (1, 2, 3):
        history.visit(node_id)
    assert history.back() == 2
    history.visit(2)  # the node already here: nothing forward is lost
    assert history.forward() == 3 and history.back() == 2
    history.visit(7)
    assert history.visited == [1, 2, 7] and history.forward() is None and history.back() == 2
