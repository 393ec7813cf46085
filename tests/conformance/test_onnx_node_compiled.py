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
import unittest
import warnings

import numpy as np
import onnx.backend.test
import pytest
from test_onnx_node import fast_selection, imports_every_op, skip_reason

from hai_compiler.conformance import case_op_types, node_cases
from hai_compiler.onnx_backend import HaiCompiledBackend

NO_LOWERING = "no x86 lowering yet"
NOT_COMPILED: dict[str, str] = {
    # ONNX op type -> why its cases are not run through the compiled path (empty: every op in the
    # fast tier has a lowering)
}

COMPILED_EXCLUDED: dict[str, str] = {
    # regex searched in the case name -> why it fails through compile + runtime
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


def compiled_conformance_classes() -> tuple[type[unittest.TestCase], type[unittest.TestCase]]:
    """(fast class, slow class) of the `test_<case>_cpu` methods BackendTest builds for HaiCompiledBackend."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = [c for c in node_cases() if imports_every_op(c)]
        backend_test = onnx.backend.test.BackendTest(HaiCompiledBackend, __name__)
    names = {c.name: c for c in cases}
    if names:
        backend_test.include("^(" + "|".join(map(re.escape, names)) + ")_cpu$")
    generated = backend_test.test_cases["OnnxBackendNodeModelTest"]
    fast = fast_selection(cases)
    members: dict[bool, dict[str, object]] = {True: {}, False: {}}
    for name, case in names.items():
        method = getattr(generated, f"{name}_cpu")
        reason = compiled_skip_reason(case)
        members[name in fast][f"{name}_cpu"] = unittest.skip(reason)(method) if reason else method
    fast_class = type("OnnxNodeCompiledTest", (unittest.TestCase,), members[True])
    slow_class = type("OnnxNodeCompiledFullTest", (unittest.TestCase,), members[False])
    for cls in (fast_class, slow_class):
        cls.__module__ = __name__
    return fast_class, pytest.mark.slow(slow_class)


OnnxNodeCompiledTest, OnnxNodeCompiledFullTest = compiled_conformance_classes()
