"""Whether llama.cpp may repack the model's weights into its "extra" CPU buffer types.

llama.cpp can copy weights at load time into buffer types laid out for a CPU's fastest
instructions: AMX tiles on Intel Sapphire/Granite Rapids class CPUs, interleaved blocks
(CPU_REPACK) on AVX2 and Arm. On AMX hosts its AMX matrix multiply segfaults at the first
decode on some machines (this project's among them; ggml-org/llama.cpp issue 20824), so the
model process cannot assume repacking is safe.

The rule: `auto` turns the extra buffer types off when AMX is among them and leaves them on
everywhere else. llama-cpp-python offers only all of them or none (`use_extra_bufts`), so on an
AMX host the interleaved repack goes too; for the bundled model it covers 13 of its 235 MiB of
weights, and `python3 bench/llm.py` measures what losing it costs. `on` and `off` override the
rule (`--repack`, or NAVIGATOR_REPACK), and every call records which was used and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

REPACK_ENV = "NAVIGATOR_REPACK"
RepackMode = Literal["auto", "on", "off"]
MODES: tuple[RepackMode, ...] = ("auto", "on", "off")
UNSAFE_BUFFER_TYPES = frozenset({"AMX"})


@dataclass(frozen=True)
class RepackChoice:
    """What was asked, what is used, and a sentence saying why (for status lines and provenance)."""

    asked: RepackMode
    on: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"asked": self.asked, "on": self.on, "reason": self.reason}


def repack_mode(value: str | None) -> RepackMode:
    """The mode a user asked for (an option, else $NAVIGATOR_REPACK, else auto); ValueError names the bad value."""
    chosen = (value or os.environ.get(REPACK_ENV) or "auto").strip().lower()
    for mode in MODES:
        if chosen == mode:
            return mode
    raise ValueError(f"repack must be one of {', '.join(MODES)}, not {chosen!r} (from --repack or ${REPACK_ENV})")


def choose_repack(asked: RepackMode, extra_buffer_types: list[str]) -> RepackChoice:
    """The rule above, given the extra buffer types this llama.cpp build offers on this CPU."""
    unsafe = sorted(UNSAFE_BUFFER_TYPES.intersection(extra_buffer_types))
    offered = ", ".join(extra_buffer_types) or "none"
    if asked == "on":
        warning = f"; {', '.join(unsafe)} is known to crash on some hosts" if unsafe else ""
        return RepackChoice(asked, True, f"asked for (extra buffer types: {offered}){warning}")
    if asked == "off":
        return RepackChoice(asked, False, f"asked for (extra buffer types offered: {offered})")
    if unsafe:
        return RepackChoice(
            asked,
            False,
            f"this CPU has {', '.join(unsafe)}, whose repacked matmul crashes llama.cpp on some hosts "
            f"(extra buffer types offered: {offered})",
        )
    return RepackChoice(asked, True, f"no buffer type known to crash (extra buffer types: {offered})")
