"""Where the labeler has been: back and forward through the nodes opened, as in a web browser."""

from __future__ import annotations


class History:
    def __init__(self) -> None:
        self.visited: list[int] = []
        self.at = -1

    def visit(self, node_id: int) -> None:
        """Opening a node drops whatever was forward of here, unless it is the node already here."""
        if 0 <= self.at < len(self.visited) and self.visited[self.at] == node_id:
            return
        del self.visited[self.at + 1 :]
        self.visited.append(node_id)
        self.at = len(self.visited) - 1

    def back(self) -> int | None:
        if self.at <= 0:
            return None
        self.at -= 1
        return self.visited[self.at]

    def forward(self) -> int | None:
        if self.at >= len(self.visited) - 1:
            return None
        self.at += 1
        return self.visited[self.at]
