"""A whoosh codec whose posting lists are plain arrays, so ranking can read them whole.

whoosh's own codec stores postings as zlib-compressed pickles of 128 postings and
decodes them one Python tuple at a time: reading the 300,000 postings of a common
word costs about 100 ms, which rules out ranking every match of a query on a
million nodes. This codec keeps whoosh's term dictionary (the `.trm` hash file and
its term infos) and whoosh's segment and table-of-contents machinery, and stores
each term's postings as three little-endian arrays in the `.pst` file:

    doc numbers  uint32 × df      (ascending)
    frequencies  uint32 × df
    positions    uint32 × Σ freq  (per posting, ascending; read only for phrases)

and per document, in the `.doc` file, the node id (int64) and each field's length
(uint32), which is all BM25F needs. `kb.search.rank` reads these arrays with numpy;
whoosh's own queries (phrases, wildcards, its searcher) still work through
`ArrayMatcher`, which the tests use as an independent check of our ranking.

Everything a segment needs to be read is checked when it opens (magic, version,
sizes), so a damaged file is reported instead of silently mis-read.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from whoosh.codec import base
from whoosh.codec.whoosh3 import W3Codec, W3Segment, W3TermInfo, W3TermsReader
from whoosh.filedb import filetables
from whoosh.matching import ListMatcher
from whoosh.system import pack_ushort

from kb.errors import ZNavigatorError

FORMAT_VERSION = 1
POSTINGS_MAGIC = b"ZNP1"
DOCS_MAGIC = b"ZND1"
DOCS_EXT = ".doc"
_DOCS_HEADER = struct.Struct("<4sIQI")  # magic, version, doc count, field count

IntArray = NDArray[np.int64]
UIntArray = NDArray[np.uint32]


class SegmentDamaged(ZNavigatorError):
    """A segment file is missing, truncated or not in this format."""


@dataclass(frozen=True)
class Postings:
    """One term's postings in one segment, doc numbers local to the segment."""

    docs: UIntArray
    freqs: UIntArray


class ArrayCodec(W3Codec):  # type: ignore[misc]
    """whoosh's W3 term dictionary and segments, with array postings and per-doc arrays."""

    def per_document_writer(self, storage: Any, segment: Any) -> Any:
        raise NotImplementedError("segments of this codec are written by kb.search.build")

    def field_writer(self, storage: Any, segment: Any) -> Any:
        raise NotImplementedError("segments of this codec are written by kb.search.build")

    def postings_reader(self, dbfile: Any, terminfo: Any, format_: Any, term: Any = None, scorer: Any = None) -> Any:
        offset, length = terminfo.extent()
        postings, positions = read_postings(dbfile, offset, terminfo.doc_frequency(), with_positions=True)
        return ArrayMatcher(postings, positions, format_, scorer=scorer, term=term, terminfo=terminfo)

    def terms_reader(self, storage: Any, segment: Any) -> Any:
        name = segment.make_filename(self.TERMS_EXT)
        try:
            length = storage.file_length(name)
            terms = storage.open_file(name)
            postings = segment.open_file(storage, self.POSTS_EXT)
            return W3TermsReader(self, terms, length, postings)
        except (OSError, filetables.FileFormatError, struct.error, EOFError, KeyError) as error:
            raise SegmentDamaged(f"{name}: {error}") from error

    def per_document_reader(self, storage: Any, segment: Any) -> ArrayDocsReader:
        return ArrayDocsReader(storage, segment)

    def new_segment(self, storage: Any, indexname: str) -> ArraySegment:
        return ArraySegment(self, indexname)


class ArraySegment(W3Segment):  # type: ignore[misc]
    """A segment and what ranking needs without opening files: per-field totals."""

    def __init__(self, codec: ArrayCodec, indexname: str, doccount: int = 0, segid: str | None = None) -> None:
        super().__init__(codec, indexname, doccount=doccount, segid=segid)
        self.format_version = FORMAT_VERSION
        self.field_totals: dict[str, int] = {}
        self.field_min: dict[str, int] = {}
        self.field_max: dict[str, int] = {}
        self.first_node_id = 0
        self.last_node_id = 0

    def should_assemble(self) -> bool:
        return False


def format_problem(segments: Sequence[Any], schema: Any) -> str | None:
    """Why an index cannot be read by this release, or None. Indexes written before this
    codec (whoosh's own W3 segments), or with other field weights, must be rebuilt."""
    from kb.search.text import FIELD_BOOSTS, SPELLING

    for segment in segments:
        if not isinstance(segment, ArraySegment) or getattr(segment, "format_version", None) != FORMAT_VERSION:
            return "it was written by an older release in a format this one does not read"
    names = set(schema.names())
    if not set(FIELD_BOOSTS) | {SPELLING} <= names:
        return "it lacks fields this release searches"
    for field, boost in FIELD_BOOSTS.items():
        if getattr(schema[field].format, "field_boost", 1.0) != boost:
            return "its field weights differ from this release's"
    return None


def read_postings(dbfile: Any, offset: int, df: int, *, with_positions: bool) -> tuple[Postings, UIntArray | None]:
    """A term's arrays from the `.pst` file at `offset` (its term info's extent)."""
    head = len(POSTINGS_MAGIC)
    fixed = head + 8 * df
    raw = dbfile.get(offset, fixed)
    if len(raw) != fixed or raw[:head] != POSTINGS_MAGIC:
        raise SegmentDamaged(f"postings at offset {offset} are not in this format")
    docs = np.frombuffer(raw, dtype="<u4", count=df, offset=head)
    freqs = np.frombuffer(raw, dtype="<u4", count=df, offset=head + 4 * df)
    positions = None
    if with_positions:
        total = int(freqs.sum(dtype=np.int64))
        data = dbfile.get(offset + fixed, 4 * total)
        if len(data) != 4 * total:
            raise SegmentDamaged(f"positions at offset {offset + fixed} are cut short")
        positions = np.frombuffer(data, dtype="<u4", count=total)
    return Postings(docs, freqs), positions


def map_file(dbfile: Any) -> mmap.mmap | None:
    """A segment file mapped over the page cache: a query that looks up a few documents in a term
    with millions of postings reads a few pages, not the whole list. None when the file is not a
    file on disk (whoosh's RAM storage), for `read_postings` to serve instead."""
    try:
        fileno = dbfile.file.fileno()
        return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError):  # no file, or an empty one (which cannot be mapped)
        return None


def release_pages(mapped: mmap.mmap) -> None:
    """Unmap the pages read through `mapped` from this process (they stay in the page cache)."""
    if hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def postings_in(mapped: NDArray[np.uint8], offset: int, df: int) -> Postings:
    """A term's doc numbers and frequencies as views of a mapped `.pst` file (no copy)."""
    head = len(POSTINGS_MAGIC)
    end = offset + head + 8 * df
    if end > len(mapped) or mapped[offset : offset + head].tobytes() != POSTINGS_MAGIC:
        raise SegmentDamaged(f"postings at offset {offset} are not in this format")
    docs = mapped[offset + head : offset + head + 4 * df].view("<u4")
    freqs = mapped[offset + head + 4 * df : end].view("<u4")
    return Postings(docs, freqs)


def positions_in(mapped: NDArray[np.uint8], offset: int, postings: Postings) -> UIntArray:
    """The positions that follow a term's postings in a mapped `.pst` file (no copy)."""
    start = offset + len(POSTINGS_MAGIC) + 8 * len(postings.docs)
    end = start + 4 * int(postings.freqs.sum(dtype=np.int64))
    if end > len(mapped):
        raise SegmentDamaged(f"positions at offset {start} are cut short")
    return mapped[start:end].view("<u4")


def encode_postings(docs: UIntArray, freqs: UIntArray, positions: UIntArray) -> bytes:
    return b"".join(
        (
            POSTINGS_MAGIC,
            docs.astype("<u4", copy=False).tobytes(),
            freqs.astype("<u4", copy=False).tobytes(),
            positions.astype("<u4", copy=False).tobytes(),
        )
    )


class ArrayMatcher(ListMatcher):  # type: ignore[misc]
    """whoosh's matcher interface over one term's arrays, for whoosh's own queries."""

    def __init__(
        self, postings: Postings, positions: UIntArray | None, format_: Any, *, scorer: Any, term: Any, terminfo: Any
    ) -> None:
        boost = getattr(format_, "field_boost", 1.0)
        weights = (postings.freqs.astype(np.float64) * boost).tolist()
        super().__init__(postings.docs.tolist(), weights, None, format_, scorer=scorer, term=term, terminfo=terminfo)
        self._docs = postings.docs
        self._positions = positions
        self._starts = np.concatenate(([0], np.cumsum(postings.freqs, dtype=np.int64)))

    def skip_to(self, id: int) -> None:
        if self.is_active():
            current = int(getattr(self, "_i"))  # noqa: B009  (set by ListMatcher, untyped)
            self._i = max(current, int(np.searchsorted(self._docs, id)))

    def value(self) -> bytes:
        assert self._positions is not None
        start, end = self._starts[self._i], self._starts[self._i + 1]
        return bytes(self._format.encode(self._positions[start:end].tolist()))

    def copy(self) -> ArrayMatcher:
        clone: ArrayMatcher = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone


class ArrayDocsReader(base.PerDocumentReader):  # type: ignore[misc]
    """Node ids and field lengths for a segment's documents, loaded on first use."""

    def __init__(self, storage: Any, segment: ArraySegment) -> None:
        self._storage = storage
        self._segment = segment
        self._count = int(segment.doc_count_all())
        self._node_ids: IntArray | None = None
        self._lengths: dict[str, UIntArray] = {}
        self._fields: list[str] = []
        self._load_header()

    def _load_header(self) -> None:
        name = self._segment.make_filename(DOCS_EXT)
        try:
            stream = self._storage.open_file(name)
        except OSError as error:
            raise SegmentDamaged(f"{name}: {error}") from error
        try:
            header = stream.read(_DOCS_HEADER.size)
            if len(header) != _DOCS_HEADER.size:
                raise SegmentDamaged(f"{name}: too short")
            magic, version, count, nfields = _DOCS_HEADER.unpack(header)
            if magic != DOCS_MAGIC or version != FORMAT_VERSION or count != self._count:
                raise SegmentDamaged(f"{name}: not a document file of this format")
            slots = stream.read(64 * nfields)
            self._fields = [slots[64 * n : 64 * (n + 1)].rstrip(b"\0").decode("ascii") for n in range(nfields)]
            self._data = stream
            expected = _DOCS_HEADER.size + 64 * nfields + 8 * count + 4 * count * nfields
            if self._storage.file_length(name) != expected:
                raise SegmentDamaged(f"{name}: size does not match its header")
        except (SegmentDamaged, struct.error, UnicodeDecodeError):
            stream.close()
            raise

    def _load(self) -> None:
        count, start = self._count, _DOCS_HEADER.size + 64 * len(self._fields)
        raw = self._data.get(start, 8 * count + 4 * count * len(self._fields))
        self._node_ids = np.frombuffer(raw, dtype="<i8", count=count)
        for index, field in enumerate(self._fields):
            self._lengths[field] = np.frombuffer(raw, dtype="<u4", count=count, offset=8 * count + 4 * count * index)

    def node_ids(self) -> IntArray:
        if self._node_ids is None:
            self._load()
        assert self._node_ids is not None
        return self._node_ids

    def lengths(self, field: str) -> UIntArray:
        if self._node_ids is None:
            self._load()
        found = self._lengths.get(field)
        return found if found is not None else np.zeros(self._count, dtype=np.uint32)

    def close(self) -> None:
        self._data.close()

    def doc_count(self) -> int:
        return self._count

    def doc_count_all(self) -> int:
        return self._count

    def has_deletions(self) -> bool:
        return False

    def is_deleted(self, docnum: int) -> bool:
        return False

    def deleted_docs(self) -> frozenset[int]:
        return frozenset()

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int:
        if fieldname not in self._fields:
            return default
        return int(self.lengths(fieldname)[docnum])

    def field_length(self, fieldname: str) -> int:
        return int(self._segment.field_totals.get(fieldname, 0))

    def min_field_length(self, fieldname: str) -> int:
        return int(self._segment.field_min.get(fieldname, 0))

    def max_field_length(self, fieldname: str) -> int:
        return int(self._segment.field_max.get(fieldname, 0))

    def has_column(self, fieldname: str) -> bool:
        return False

    def stored_fields(self, docnum: int) -> dict[str, int]:
        return {"node_id": int(self.node_ids()[docnum])}

    def iter_docs(self) -> Iterator[tuple[int, dict[str, int]]]:
        for docnum, node_id in enumerate(self.node_ids().tolist()):
            yield docnum, {"node_id": node_id}


# -- writing ---------------------------------------------------------------------


@dataclass
class FieldPostings:
    """One field of a segment being written: terms in sorted order, each with its arrays."""

    boost: float
    terms: list[str]
    docs: list[UIntArray]
    freqs: list[UIntArray]
    positions: list[UIntArray]


def write_segment(
    storage: Any,
    segment: ArraySegment,
    node_ids: IntArray,
    lengths: dict[str, UIntArray],
    fields: Sequence[tuple[str, FieldPostings]],
) -> None:
    """Write the `.doc`, `.pst` and `.trm` files of a segment. `fields` must come in the
    schema's field order and terms in sorted order: the term dictionary is an ordered
    hash keyed by (field number, term)."""
    count = len(node_ids)
    names = list(lengths)
    header = _DOCS_HEADER.pack(DOCS_MAGIC, FORMAT_VERSION, count, len(names))
    with segment.create_file(storage, DOCS_EXT) as out:
        out.write(header)
        out.write(b"".join(name.encode("ascii").ljust(64, b"\0") for name in names))
        out.write(node_ids.astype("<i8", copy=False).tobytes())
        for name in names:
            out.write(lengths[name].astype("<u4", copy=False).tobytes())
    segment.set_doc_count(count)
    for name, values in lengths.items():
        present = values[values > 0]
        segment.field_totals[name] = int(values.sum(dtype=np.int64))
        segment.field_min[name] = int(present.min()) if len(present) else 0
        segment.field_max[name] = int(values.max()) if len(values) else 0
    if count:
        segment.first_node_id, segment.last_node_id = int(node_ids[0]), int(node_ids[-1])

    postfile = segment.create_file(storage, W3Codec.POSTS_EXT)
    termfile = segment.create_file(storage, W3Codec.TERMS_EXT)
    table = filetables.OrderedHashWriter(termfile)
    fieldmap: dict[str, int] = {}
    table.extras["fieldmap"] = fieldmap
    offset = 0
    for field_number, (field, postings) in enumerate(fields):
        fieldmap[field] = field_number
        prefix = pack_ushort(field_number)
        field_lengths = lengths.get(field)
        for term, docs, freqs, positions in zip(
            postings.terms, postings.docs, postings.freqs, postings.positions, strict=True
        ):
            data = encode_postings(docs, freqs, positions)
            postfile.write(data)
            info = W3TermInfo()
            doc_lengths = field_lengths[docs] if field_lengths is not None else freqs
            info._weight = float(freqs.sum(dtype=np.int64)) * postings.boost
            info._df = len(docs)
            info._minlength = int(doc_lengths.min())
            info._maxlength = int(doc_lengths.max())
            info._maxweight = float(freqs.max()) * postings.boost
            info._minid, info._maxid = int(docs[0]), int(docs[-1])
            info.set_extent(offset, len(data))
            offset += len(data)
            table.add(prefix + term.encode("utf-8"), info.to_bytes())
    table.close()
    postfile.close()
