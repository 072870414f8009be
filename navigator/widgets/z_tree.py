"""The library as a lazy tree: pages of children read as nodes open, and ways to find a node in it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from kb.tree import DEFAULT_PAGE, Node, children
from models.llm.unpack import ELABORATION_KIND
from navigator.display import visible


@dataclass(frozen=True)
class MoreChildren:
    """The "load more" row under a parent whose children did not fit one page."""

    parent_id: int
    after_position: int


TreeData = Node | MoreChildren


class ZTree(Tree[TreeData]):
    """The library as a lazy tree: children are read a page at a time when a node opens."""

    def __init__(self, conn: sqlite3.Connection, root: Node, *, page: int = DEFAULT_PAGE, **kwargs: object) -> None:
        super().__init__(Text(visible(root.title)), data=root, **kwargs)  # type: ignore[arg-type]
        self.conn = conn
        self.page = page

    def process_label(self, label: str | Text) -> Text:
        return label if isinstance(label, Text) else Text(visible(label))

    def on_mount(self) -> None:
        self.root.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[TreeData]) -> None:
        node = event.node
        if isinstance(node.data, Node) and not node.children:
            self.load_page(node, node.data.id, None)

    def on_tree_node_selected(self, event: Tree.NodeSelected[TreeData]) -> None:
        more = event.node
        if isinstance(more.data, MoreChildren) and more.parent is not None:
            parent = more.parent
            more.remove()
            self.load_page(parent, more.data.parent_id, more.data.after_position)

    def load_page(self, tree_node: TreeNode[TreeData], parent_id: int, after: int | None) -> None:
        page = children(self.conn, parent_id, after_position=after, limit=self.page)
        for child in page:
            tree_node.add(node_label(child), data=child, allow_expand=child.child_count > 0)
        if len(page) == self.page:
            shown = sum(1 for item in tree_node.children if isinstance(item.data, Node))
            parent = tree_node.data
            total = parent.child_count if isinstance(parent, Node) else shown
            tree_node.add_leaf(
                Text(f"… load more ({total - shown:,} left)", style="italic"),
                data=MoreChildren(parent_id, page[-1].position),
            )

    def reload_children(self, fresh: Node) -> None:
        """Show a node's new children in place, if it is loaded: its label (counts changed) and first page."""
        holder = find_tree_node(self, fresh.id)
        if holder is not None:
            holder.data = fresh
            holder.set_label(node_label(fresh))
            holder.remove_children()
            holder.allow_expand = True
            self.load_page(holder, fresh.id, None)
            holder.expand()


def node_label(node: Node) -> Text:
    label = Text(visible(node.title if len(node.title) <= 100 else node.title[:99] + "…"))
    if node.child_count:
        label.append(f"  {node.child_count:,}", style="dim")
    if node.is_generated:
        elaborated = node.kind == ELABORATION_KIND
        label.append(
            "  elaborated" if elaborated else "  generated", style="italic red" if elaborated else "italic magenta"
        )
    return label


def reveal(tree: ZTree, trail: list[Node]) -> TreeNode[TreeData] | None:
    """Open every ancestor of trail[-1] (root first), reading pages until each is found."""
    current = tree.root
    for wanted in trail[1:]:
        if not current.children and isinstance(current.data, Node):
            tree.load_page(current, current.data.id, None)
        current.expand()
        found = _child_with_id(current, wanted.id)
        while found is None:
            more = next((c for c in current.children if isinstance(c.data, MoreChildren)), None)
            if more is None or not isinstance(more.data, MoreChildren):
                return None
            more.remove()
            tree.load_page(current, more.data.parent_id, more.data.after_position)
            found = _child_with_id(current, wanted.id)
        current = found
    target = current

    def place_cursor() -> None:
        tree.move_cursor(target)
        tree.scroll_to_node(target, animate=False)

    tree.call_after_refresh(place_cursor)  # the tree numbers its lines for new children only when it redraws
    return current


def _child_with_id(parent: TreeNode[TreeData], node_id: int) -> TreeNode[TreeData] | None:
    for child in parent.children:
        if isinstance(child.data, Node) and child.data.id == node_id:
            return child
    return None


def find_tree_node(tree: ZTree, node_id: int) -> TreeNode[TreeData] | None:
    """The loaded tree row showing `node_id`, if any (a walk over loaded rows only)."""
    pending = [tree.root]
    while pending:
        current = pending.pop()
        if isinstance(current.data, Node) and current.data.id == node_id:
            return current
        pending.extend(current.children)
    return None
