"""The ONNX node conformance suite through the compiled path: `HaiCompiledBackend` (compile + runtime).

Rule: the cases, their fast/slow split (one case per op types × input dtypes
by default, the rest with `-m slow`) and their skip reasons are those of
test_onnx_node.py, imported from it. On top of those, `NOT_COMPILED` lists, one
op and one reason per entry, the ops that have no x86 lowering yet, and
`COMPILED_EXCLUDED` the cases (one regex, one reason each) that fail through
the compiled path for a known reason (an unsupported dtype, a template bug
reported to its family): a matching case is skipped with that reason. Both
lists shrink as lowerings land; any other failure is a bug of the compile
driver or of the op's lowering.
"""

from __future__ import annotations

import re

from test_onnx_node import conformance_classes, skip_reason

from hai_compiler.conformance import case_op_types
from hai_compiler.onnx_backend import HaiCompiledBackend

NO_LOWERING = "no x86 lowering yet"
NOT_COMPILED: dict[str, str] = {
    # ONNX op type -> why its cases are not run through the compiled path (empty: every op in the
    # fast tier has a lowering)
}

COMPILED_EXCLUDED: dict[str, str] = {
    # regex searched in the case name -> why it fails through compile + runtime
    r"^test_quantizelinear_blocked": "no x86 template for a group-wise (blocked) QuantizeLinear yet",
}


def compiled_skip_reason(case) -> str | None:  # type: ignore[no-untyped-def]
    """The interpreter suite's reason, else the reason an op of the case is not compiled yet."""
    reason = skip_reason(case)
    if reason is not None:
        return reason
    for op in case_op_types(case):
        if op in NOT_COMPILED:
            return f"{op}: {NOT_COMPILED[op]}"
    for pattern, why in COMPILED_EXCLUDED.items():
        if re.search(pattern, case.name):
            return why
    return None


OnnxNodeCompiledTest, OnnxNodeCompiledFullTest = conformance_classes(
    HaiCompiledBackend, compiled_skip_reason, "OnnxNodeCompiled", __name__
)
