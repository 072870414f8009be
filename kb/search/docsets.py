"""Sets of documents as bitmaps: one bit per document of an index view, 64 to a word.

At ten million documents a set is 1.25 MB whatever it holds, so joining, intersecting and
counting sets of millions of documents costs a pass over 156,250 words instead of a pass
over millions of postings, and counting how many of a query's words each document holds
is binary addition over those words (`tally`), not a counter per document.
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.typing import NDArray

Bits = NDArray[np.uint64]
DocArray = NDArray[np.int64]

_ONE = np.uint64(1)


def words(count: int) -> int:
    return (count + 63) // 64


def empty(count: int) -> Bits:
    return np.zeros(words(count), dtype=np.uint64)


def add(bits: Bits, docs: NDArray[np.integer], base: int = 0) -> None:
    """Put `docs` + `base` (ascending) into `bits`."""
    if not len(docs):
        return
    docs = np.add(docs, base, dtype=np.int64)
    words = docs >> 6
    masks = np.left_shift(_ONE, (docs & 63).astype(np.uint64))
    starts = np.flatnonzero(np.concatenate(([True], words[1:] != words[:-1])))
    bits[words[starts]] |= np.bitwise_or.reduceat(masks, starts)


def packed(flags: NDArray[np.bool_]) -> Bits:
    """A byte per document (True where held) as bits: one pass, for sets of many documents,
    where a scatter into bytes and a pack beat building words from each document."""
    found = empty(len(flags))
    found.view(np.uint8)[: (len(flags) + 7) // 8] = np.packbits(flags, bitorder="little")
    if sys.byteorder == "big":  # the bytes above are in little-endian word order
        found.byteswap(inplace=True)
    return found


def of_docs(docs: DocArray, count: int) -> Bits:
    bits = empty(count)
    add(bits, docs)
    return bits


def size(bits: Bits) -> int:
    return int(np.bitwise_count(bits).sum(dtype=np.int64))


def docs_in(bits: Bits) -> DocArray:
    """The documents of the set, ascending: from its non-zero words when they are few, else from
    every bit unpacked to a byte (one pass, which numpy's nonzero does fastest over booleans)."""
    words = np.flatnonzero(bits)
    if len(words) * 4 < len(bits):
        flags = np.unpackbits(bits[words].astype("<u8", copy=False).view(np.uint8), bitorder="little")
        at = np.flatnonzero(flags.view(np.bool_))
        found: DocArray = words[at >> 6] * 64 + (at & 63)
        return found
    flags = np.unpackbits(bits.astype("<u8", copy=False).view(np.uint8), bitorder="little")
    return np.flatnonzero(flags.view(np.bool_))


def holds(bits: Bits, docs: DocArray) -> NDArray[np.bool_]:
    held: NDArray[np.bool_] = ((bits[docs >> 6] >> (docs & 63).astype(np.uint64)) & _ONE).astype(bool)
    return held


def tally(sets: list[Bits]) -> list[Bits]:
    """How many of `sets` hold each document, as binary digits: bit i of a document's count is
    its bit in plane i. Adding a set is a ripple-carry addition over whole words."""
    planes: list[Bits] = []
    for number, bits in enumerate(sets, 1):
        carry = bits
        for index, plane in enumerate(planes):
            planes[index], carry = plane ^ carry, plane & carry
        if len(planes) < number.bit_length():
            planes.append(carry)
    return planes


def held_by(planes: list[Bits], count: int, within: Bits) -> Bits:
    """The documents of `within` that exactly `count` of the tallied sets hold."""
    found = within.copy()
    for index, plane in enumerate(planes):
        found &= plane if (count >> index) & 1 else ~plane
    return found
