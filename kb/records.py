"""Pydantic models for every record that crosses the workspace boundary.

Importers validate input through these, so a bad field is reported with the
field's name and pydantic's reason instead of failing somewhere deeper.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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
    prediction_rows: int
    credence_rows: int
    model_credences: int = 0  # M_Z's own credences on generated statements, never counted as labels
    llm_calls: int


# -- exports: labels and what they refer to, for merging across workspaces -----------------------

# UTC ISO-8601 with a trailing Z, as kb.db.utc_now writes it; fractional seconds optional.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
PROBABILITY_SUM_TOLERANCE = 1e-6
EXPORT_TYPES = ("item", "node", "prediction", "credence", "assignment")

Uid = Annotated[str, Field(min_length=1, max_length=512)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0)]


class ExportRecord(BaseModel):
    """Fields every exported line carries. Strict and closed: an export is written by this
    program, so a wrong type or an unknown field means a damaged or foreign file, and
    merging refuses it by name instead of guessing."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    type: str
    id: Uid
    schema_version: int = Field(json_schema_extra={"const": SCHEMA_VERSION})
    labeler: str | None
    created_at: str = Field(pattern=TIMESTAMP_PATTERN)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema version {version} is not the one this release reads ({SCHEMA_VERSION})")
        return version


class ItemExport(ExportRecord):
    """An item a prediction refers to, without gold: it lets a merge check the item is the
    same question in the receiving workspace, and makes an export a self-contained dataset."""

    type: Literal["item"]
    task: str
    x: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    split: Literal["train", "validation", "prediction"]

    @field_validator("options")
    @classmethod
    def _distinct_options(cls, options: list[str]) -> list[str]:
        if any(not option.strip() for option in options) or len(set(options)) != len(options):
            raise ValueError("options must be distinct non-empty strings")
        return options


class NodeExport(ExportRecord):
    """A node a person or the LLM made (never an imported one). `parent` and `replaces` are
    node uids in the same library; `library` is the library's uid, `library_name` its name
    (library uids are minted per workspace, so a merge falls back to the name)."""

    type: Literal["node"]
    library: Uid
    library_name: str = Field(min_length=1)
    parent: Uid | None  # None: directly under the library root (root uids differ between workspaces)
    kind: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1)
    body: str
    origin: Literal["human", "llm"]
    review: Literal["none", "accepted", "rejected"]
    replaces: Uid | None
    provenance: dict[str, Any]
    extra: dict[str, Any]


class PredictionExport(ExportRecord):
    """One prediction row, current or not: superseded and retraction rows are exported too,
    so undo history survives a merge. `cited` and `trail` are node uids in `library`."""

    type: Literal["prediction"]
    labeler: str = Field(min_length=1)
    item: Uid
    library: Uid
    library_name: str = Field(min_length=1)
    source: Literal["human", "simulated"]
    probs: dict[str, Probability] = Field(min_length=2)
    cited: list[Uid]
    trail: list[Uid]
    seconds: Seconds | None
    note: str
    supersedes: Uid | None
    retracted: bool
    adjudication: bool = False  # the lead's ruling on a disagreement; absent in exports from before it existed

    @field_validator("probs")
    @classmethod
    def _sums_to_one(cls, probs: dict[str, float]) -> dict[str, float]:
        total = sum(probs.values())
        if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
            raise ValueError(f"probabilities must sum to 1, they sum to {total:.6g}")
        return probs


class CredenceExport(ExportRecord):
    """One credence row: P(all `statements` true), or P(the library) when scope is 'library'."""

    type: Literal["credence"]
    labeler: str = Field(min_length=1)
    library: Uid
    library_name: str = Field(min_length=1)
    source: Literal["human", "simulated", "imitated"]
    scope: Literal["statements", "library"]
    statements: list[Uid] = Field(max_length=4)  # kb.labels.MAX_CONJUNCTION
    p: Probability
    seconds: Seconds | None
    note: str
    supersedes: Uid | None
    retracted: bool

    @field_validator("statements")
    @classmethod
    def _matches_scope(cls, statements: list[str], info: ValidationInfo) -> list[str]:
        scope = info.data.get("scope")
        if scope == "library" and statements:
            raise ValueError("a credence on the whole library names no statements")
        if scope == "statements" and not statements:
            raise ValueError("a credence on statements names at least one")
        if statements != sorted(set(statements)):
            raise ValueError("statements must be distinct node uids in sorted order")
        return statements


class AssignedItem(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    item: Uid
    labelers: list[str] = Field(min_length=1)


class AssignmentExport(ExportRecord):
    """One assignment plan, whole (kb.assignments): who labels which item of `split`.
    `labeler` is who made the plan (None if unknown); `labelers` everyone it names;
    `assignments` one entry per item with its `overlap` distinct labelers."""

    type: Literal["assignment"]
    split: Literal["train", "validation", "prediction"]
    labelers: list[str] = Field(min_length=1)
    overlap: int = Field(ge=1)
    seed: int
    assignments: list[AssignedItem] = Field(min_length=1)

    @field_validator("labelers")
    @classmethod
    def _distinct_labelers(cls, labelers: list[str]) -> list[str]:
        if any(not name.strip() for name in labelers) or len(set(labelers)) != len(labelers):
            raise ValueError("labelers must be distinct non-empty names")
        return labelers

    @field_validator("assignments")
    @classmethod
    def _consistent(cls, assignments: list[AssignedItem], info: ValidationInfo) -> list[AssignedItem]:
        named, overlap = set(info.data.get("labelers") or ()), info.data.get("overlap")
        seen: set[str] = set()
        for entry in assignments:
            if entry.item in seen:
                raise ValueError(f"item {entry.item!r} is assigned twice")
            seen.add(entry.item)
            if len(set(entry.labelers)) != len(entry.labelers) or len(entry.labelers) != overlap:
                raise ValueError(f"item {entry.item!r} must have {overlap} distinct labelers, got {entry.labelers}")
            strangers = sorted(set(entry.labelers) - named)
            if strangers:
                raise ValueError(f"item {entry.item!r} names {strangers[0]!r}, who is not one of the plan's labelers")
        return assignments


EXPORT_MODELS: dict[str, type[ExportRecord]] = {
    "item": ItemExport,
    "node": NodeExport,
    "prediction": PredictionExport,
    "credence": CredenceExport,
    "assignment": AssignmentExport,
}
