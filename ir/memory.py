"""How a graph records its memory plan, for the passes that make and check it and the static plan.

Rule: each value's place in the arena is its type's `offset` (ir/types.py); the
graph's metadata holds the arena's size (`ARENA_KEY`) and the alignment every
offset is a multiple of (`ALIGNMENT_KEY`), both as decimal strings. A graph
without `ARENA_KEY` has no memory plan.
"""

from __future__ import annotations

ALIGNMENT_KEY = "memory.alignment"
ARENA_KEY = "memory.arena_bytes"


def align_up(value: int, alignment: int) -> int:
    """`value` rounded up to a multiple of `alignment`."""
    return -(-value // alignment) * alignment
