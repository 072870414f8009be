"""Pydantic models for every record that crosses the workspace boundary.

Importers validate input through these, so a bad field is reported with the
field's name and pydantic's reason instead of failing somewhere deeper.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

SCHEMA_VERSION = 1


class NodeRecord(BaseModel):
    """One line of a JSONL node file. Unknown fields are kept in `extra`."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    id: str = Field(min_length=1, max_length=512)
    parent: str | None = Field(default=None, min_length=1, max_length=512)
    title: str = Field(min_length=1)
    body: str = ""
    kind: str = Field(default="statement", min_length=1, max_length=64)

    @field_validator("parent")
    @classmethod
    def _not_own_parent(cls, parent: str | None, info: ValidationInfo) -> str | None:
        if parent is not None and parent == info.data.get("id"):
            raise ValueError("a node cannot be its own parent")
        return parent

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ItemRecord(BaseModel):
    """One task item: x, its options, and gold y when it is known."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=512)
    x: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    y: str | None = None
    task: str = ""

    @field_validator("options")
    @classmethod
    def _distinct_options(cls, options: list[str]) -> list[str]:
        if any(not option.strip() for option in options):
            raise ValueError("options must be non-empty strings")
        if len(set(options)) != len(options):
            raise ValueError("options must be distinct")
        return options

    @field_validator("y")
    @classmethod
    def _y_is_an_option(cls, y: str | None, info: ValidationInfo) -> str | None:
        options = info.data.get("options")
        if y is not None and options is not None and y not in options:
            raise ValueError(f"y {y!r} is not one of the options {options}")
        return y

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AnswerKeyRecord(BaseModel):
    """Gold for one D* item, kept outside the workspace the labeler sees."""

    type: str = "answer"
    schema_version: int = SCHEMA_VERSION
    id: str
    split: str
    y: str


class LibraryStats(BaseModel):
    name: str
    uid: str
    nodes: int


class WorkspaceStats(BaseModel):
    """The shape of `navigator stats --json`; scripts rely on these keys."""

    workspace: str
    schema_version: int
    libraries: list[LibraryStats]
    nodes: int
    items: dict[str, int]
    predictions: int
    credences: int
    llm_calls: int
