"""The error of the imitation package: training or prediction cannot go ahead."""

from __future__ import annotations

from kb.db import WorkspaceError


class TrainerError(WorkspaceError):
    """Training or prediction cannot go ahead; the message says what to do."""
