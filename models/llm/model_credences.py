"""M_Z's credence in each statement it writes, stored; and the check that those credences hang together.

The method asks a generator of Z for a probability with every statement, because one bad statement
otherwise forces P(Z) = 0. After unpack or ask stores children, `credit_generated` judges each one
against its parent (models.llm.judge), calibrates the score (models.llm.calibration) and stores the result
as a credence whose labeler and source are `model:<model name>` — never a person's, and left out of
everything that reads people's credences. The statement's negation is judged too and kept in the
credence's provenance, so the flip check below needs no model.

`model_check` makes the seed's latent-space worry measurable on our own M_Z: a statement and its
negation should get P(s) + P(not s) ≈ 1, and near-duplicate statements (the similarity clusters the
P(Z) engine uses) should get nearly equal credences. It lists the worst violations of both.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from kb.labels import MODEL_SOURCE_PREFIX, LabelStore, ModelCredence, model_credences
from kb.libraries import Library
from kb.progress import NoProgress, Progress
from kb.review import generated_nodes
from kb.tree import Node, node_by_id, node_by_uid
from models.llm.calibration import Calibration, find_calibration, probability
from models.llm.credence_features import credence_features
from models.llm.judge import PROMPT_VERSION, QA_KIND, claim, source_of
from models.llm.model import LLM, ModelIdentity
from models.llm.model_process import ModelProcessStopped

FLIP_TOLERANCE = 0.1
NEAR_DUPLICATE_THRESHOLD = 0.8  # models.prior.similarity.DEFAULT_THRESHOLD, the P(Z) engine's clusters
MAX_CLUSTER_PAIRS = 50  # members of one cluster compared pairwise; larger clusters are cut (and say so)

_calibrations: dict[tuple[str, str], tuple[Calibration | None, str]] = {}


def model_source(identity: ModelIdentity) -> str:
    """`model:<file name without .gguf>`: the labeler and source of this model's credences."""
    name = identity.name[: -len(".gguf")] if identity.name.lower().endswith(".gguf") else identity.name
    return f"{MODEL_SOURCE_PREFIX}{name}"


def calibration_for(identity: ModelIdentity) -> tuple[Calibration | None, str]:
    """The calibration unpack uses for this model (looked up once per process) and where it came from."""
    key = (identity.sha256, PROMPT_VERSION)
    if key not in _calibrations:
        _calibrations[key] = find_calibration(identity, PROMPT_VERSION)
    return _calibrations[key]


def forget_calibrations() -> None:
    """After `llm calibrate` saves a new calibration, the next judgement should use it."""
    _calibrations.clear()


@dataclass(frozen=True)
class StatementCredence:
    node_uid: str
    p: float
    negation_p: float
    score: float


@dataclass
class CreditReport:
    """What judging a set of generated statements stored; `note` says how they were calibrated (or why not)."""

    source: str
    calibrated: bool
    note: str
    credences: list[StatementCredence] = field(default_factory=list)
    ms: float = 0.0  # time spent judging and storing
    stopped: ModelProcessStopped | None = None  # the model process stopped while judging; the rest went unjudged

    def summary(self) -> str:
        if self.stopped is not None:
            return f"model credences incomplete: {self.stopped.message}"
        if not self.credences:
            return f"no model credences ({self.note})"
        values = sorted(c.p for c in self.credences)
        low, high = f"{values[0]:.2f}", f"{values[-1]:.2f}"
        spread = low if low == high else f"{low}–{high}"
        flag = "" if self.calibrated else " (uncalibrated)"
        return f"model credences {spread}{flag}"


def credit_generated(
    conn: sqlite3.Connection, llm: LLM, parent: Node, children: list[Node], *, labeler: str | None = None
) -> CreditReport:
    """Judge each child against `parent`, store P(child true) as a model credence, and return what was stored.

    Each credence is committed by itself, as every label is; the model's score, the calibration, the
    texts judged, the negation's probability and how the model ran go into the credence's provenance.
    Each judgement is a row in the call log (`labeler` is who asked for the statements). If the
    model process stops, the credences given so far are kept and `stopped` on the report says why
    the rest are missing.
    """
    started = time.perf_counter()
    identity = llm.identity
    calibration, note = calibration_for(identity)
    source = model_source(identity)
    report = CreditReport(source, calibration is not None, note)
    store = LabelStore(conn, source, source=source)
    against = source_of(conn, parent)
    for child in children:
        statement = claim(child)
        question = child.title[3:] if child.kind == QA_KIND and child.title.startswith("Q: ") else ""
        try:
            found = credence_features(
                conn, llm, against, statement, purpose="judge", node=child, labeler=labeler, given=question
            )
        except ModelProcessStopped as stopped:
            given = f"{len(report.credences)} of the {len(children)} statements got a model credence before it"
            report.stopped = stopped.during(f"judging the statements under {parent.uid!r}", kept=given)
            break
        p = probability(calibration, found.contrast, found.support)
        p_not = probability(calibration, -found.contrast, -found.support)
        provenance: dict[str, Any] = {
            "model": identity.name,
            "model_sha256": identity.sha256,
            "runtime": identity.runtime,
            "prompt_version": PROMPT_VERSION,
            "judged_against": against,
            "statement": statement,
            "score": found.statement.score,
            "contrast": found.contrast,
            "support": found.support,
            "unsupported": found.unsupported,
            "calibration": None
            if calibration is None
            else {"method": calibration.method, "a": calibration.a, "b": calibration.b, "n": calibration.n},
            "negation": {"statement": found.negation.statement, "score": found.negation.score, "p": p_not},
        }
        store.record_credence(child.library_id, [child], p, provenance=provenance)
        report.credences.append(StatementCredence(child.uid, p, p_not, found.statement.score))
    report.ms = (time.perf_counter() - started) * 1000
    return report


def credit_safely(
    conn: sqlite3.Connection, llm: LLM, parent: Node, children: list[Node], *, labeler: str | None = None
) -> CreditReport:
    """`credit_generated` for unpack and ask: the children are already stored, so a failure to judge them
    must not read as a failed unpack; it is reported in the note instead (and `llm credences` fills in).
    A stopped model process is also handed back (`stopped`), so a batch knows to stop."""
    try:
        return credit_generated(conn, llm, parent, children, labeler=labeler)
    except Exception as error:  # the model, the calibration file or the write: none may lose the children
        source = model_source(llm.identity)
        return CreditReport(source, False, f"model credences not stored: {type(error).__name__}: {error}")


@dataclass
class BackfillReport:
    judged: int = 0
    already: int = 0
    calibrated: bool = False
    calibration_note: str = ""


def credit_missing(
    conn: sqlite3.Connection,
    llm: LLM,
    library: Library,
    under: Node | None = None,
    *,
    progress: Progress | None = None,
) -> BackfillReport:
    """Model credences for the generated statements (in the library, or below `under`) this model has not judged."""
    progress = progress or NoProgress()
    source = model_source(llm.identity)
    nodes = generated_nodes(conn, library.id, under.id if under is not None else None)
    done = model_credences(conn, library.id, [n.uid for n in nodes], source=source)
    pending = [n for n in nodes if n.uid not in done]
    report = BackfillReport(already=len(nodes) - len(pending))
    progress.start(f"judging {len(pending)} generated statements", len(pending))
    by_parent: dict[int, list[Node]] = {}
    for node in pending:
        if node.parent_id is not None:
            by_parent.setdefault(node.parent_id, []).append(node)
    for parent_id, kids in by_parent.items():
        if progress.cancelled:
            break
        parent = node_by_id(conn, parent_id)
        if parent is None:
            continue
        credited = credit_generated(conn, llm, parent, kids)
        report.judged += len(credited.credences)
        if credited.stopped is not None:
            kept = f"the {report.judged} credences given before it are kept (run the same command to go on)"
            raise credited.stopped.during(credited.stopped.doing, kept=kept)
        report.calibrated, report.calibration_note = credited.calibrated, credited.note
        progress.advance(len(kids))
    if not pending:
        calibration, note = calibration_for(llm.identity)
        report.calibrated, report.calibration_note = calibration is not None, note
    return report


# -- consistency -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flip:
    """A statement whose credence and its negation's do not add up to one: gap = P(s) + P(not s) − 1."""

    node_uid: str
    text: str
    p: float
    negation_p: float

    @property
    def gap(self) -> float:
        return self.p + self.negation_p - 1.0


@dataclass(frozen=True)
class NearDuplicate:
    """Two statements in one near-duplicate cluster with different credences."""

    first_uid: str
    first_text: str
    first_p: float
    second_uid: str
    second_text: str
    second_p: float

    @property
    def difference(self) -> float:
        return abs(self.first_p - self.second_p)


@dataclass(frozen=True)
class ModelCheck:
    n_statements: int  # with a model credence
    sources: list[str]
    flips: list[Flip]  # worst first, at most `limit`
    n_flip_checked: int
    mean_abs_gap: float
    flips_within: float  # share of checked statements with |P(s) + P(not s) − 1| ≤ FLIP_TOLERANCE
    n_clusters: int  # near-duplicate clusters with two or more statements
    n_pairs: int
    mean_difference: float
    near_duplicates: list[NearDuplicate]  # worst first, at most `limit`
    threshold: float
    clusters_cut: int = 0


def model_check(
    conn: sqlite3.Connection, library: Library, *, limit: int = 10, threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> ModelCheck:
    """The worst flips and near-duplicate disagreements among the library's model credences."""
    from models.prior.similarity import cluster_texts  # scikit-learn: imported only when a check runs

    found = model_credences(conn, library.id)
    texts: dict[str, str] = {}
    for uid in found:
        node = node_by_uid(conn, uid, library.id)
        texts[uid] = claim(node) if node is not None else uid
    flips = [_flip(uid, texts[uid], credence) for uid, credence in found.items()]
    checked = [flip for flip in flips if flip is not None]
    checked.sort(key=lambda flip: (-abs(flip.gap), flip.node_uid))
    uids = sorted(found)
    labels = cluster_texts([texts[uid] for uid in uids], threshold=threshold)
    clusters: dict[int, list[str]] = {}
    for uid, label in zip(uids, labels, strict=True):
        clusters.setdefault(int(label), []).append(uid)
    pairs: list[NearDuplicate] = []
    groups, cut = 0, 0
    for members in clusters.values():
        if len(members) < 2:
            continue
        groups += 1
        if len(members) > MAX_CLUSTER_PAIRS:
            cut += 1
            members = members[:MAX_CLUSTER_PAIRS]
        for a, b in itertools.combinations(members, 2):
            pairs.append(NearDuplicate(a, texts[a], found[a].p, b, texts[b], found[b].p))
    pairs.sort(key=lambda pair: (-pair.difference, pair.first_uid, pair.second_uid))
    return ModelCheck(
        n_statements=len(found),
        sources=sorted({credence.source for credence in found.values()}),
        flips=checked[:limit],
        n_flip_checked=len(checked),
        mean_abs_gap=sum(abs(f.gap) for f in checked) / len(checked) if checked else 0.0,
        flips_within=sum(abs(f.gap) <= FLIP_TOLERANCE for f in checked) / len(checked) if checked else 0.0,
        n_clusters=groups,
        n_pairs=len(pairs),
        mean_difference=sum(p.difference for p in pairs) / len(pairs) if pairs else 0.0,
        near_duplicates=pairs[:limit],
        threshold=threshold,
        clusters_cut=cut,
    )


def _flip(uid: str, text: str, credence: ModelCredence) -> Flip | None:
    negated = credence.provenance.get("negation")
    if not isinstance(negated, dict) or not isinstance(negated.get("p"), int | float):
        return None
    return Flip(uid, text, credence.p, float(negated["p"]))
