"""Running the `quantize` pass: always in a PassManager, with the target's facts as `ctx.target`.

Rule: every graph the quantizer makes, a trial while it chooses ranges or
precisions as well as the result, comes from the `quantize` pass run by a
`PassManager` whose context carries the target's pass facts
(`TargetBackend.facts`), as the compile pipeline's passes get
them. Only the result's run gets the caller's instruments (`--dump-ir`, ...)
and `--verify-each`: a trial is thrown away, and dumping each would write
hundreds of graphs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ir import Graph
from ir.target_facts import TargetFacts
from passes.manager import PassContext, PassManager
from passes.quantize import Quantize


@dataclasses.dataclass(frozen=True)
class QuantizeRunner:
    """The target facts, instruments and verification with which the quantizer runs `quantize`."""

    facts: TargetFacts = TargetFacts()  # ctx.target
    group_size: int = 32  # INT4: input channels sharing one weight scale
    instruments: Sequence[Any] = ()
    verify_each: bool = False

    def run(self, graph: Graph, precision: str, *, final: bool = False) -> Graph:
        """`graph` quantized, layers without a precision annotation to `precision` (`final`: the
        result the user gets; module rule)."""
        manager = PassManager(
            [Quantize(precision=precision, group_size=self.group_size)],
            self.instruments if final else (),
            verify_each=self.verify_each and final,
        )
        return manager.run(graph, PassContext(target=self.facts))
