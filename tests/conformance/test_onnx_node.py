"""The ONNX node conformance suite, run through `HaiBackend` by onnx's own `BackendTest` runner.

Rule: every node case whose ops HAI imports is here. The default (fast) run
takes one case per (op types, input dtypes) group; the rest run with
`-m slow`. A case that is expected to fail is skipped with its reason: either
derived (a dtype outside the IR's, a sequence/optional/map type, an opset
older than the importer's oldest) or listed in
`EXCLUDED` below, one regex and one reason per entry. Any other failure is a
bug of the op's family.
"""

from __future__ import annotations

import re
import unittest
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import TensorProto

from hai_compiler.conformance import case_op_types, node_cases
from hai_compiler.onnx_backend import HaiBackend
from hai_compiler.onnx_import.converter import ONNX_DOMAINS, imports
from hai_compiler.onnx_import.importer import MIN_OPSET

IR_DTYPES = {
    TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE, TensorProto.INT4,
    TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.BOOL,
}  # fmt: skip

EXCLUDED: dict[str, str] = {
    # regex searched in the case name (without the `_cpu` suffix) → why the case is not expected to pass
    r"training": "training mode (dropout masks, batch statistics) is not compiled",
    r"qlinear(conv|matmul_2D)": "W's non-zero zero point: w - zero_point leaves i8, and the IR's integer "
    "weights are symmetric i8",
    r"^test_scan_sum$": "Scan of opset 8 (a batch axis and sequence_lens) is not imported; opset 9+ Scan is",
}


def _value_infos(case) -> list[onnx.ValueInfoProto]:  # type: ignore[no-untyped-def]
    graph = case.model.graph
    initializers = {t.name for t in graph.initializer}
    return [vi for vi in graph.input if vi.name not in initializers] + list(graph.output)


def input_dtypes(case) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    graph = case.model.graph
    initializers = {t.name for t in graph.initializer}
    return tuple(vi.type.tensor_type.elem_type for vi in graph.input if vi.name not in initializers)


def skip_reason(case) -> str | None:  # type: ignore[no-untyped-def]
    """Why this case is deliberately not run, or None."""
    for vi in _value_infos(case):
        kind = vi.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"'{vi.name}' is a {kind} (only tensors are supported)"
        elem = vi.type.tensor_type.elem_type
        if elem not in IR_DTYPES:
            return f"dtype {TensorProto.DataType.Name(elem)} of '{vi.name}' is not an IR dtype"
    opset = next((o.version for o in case.model.opset_import if o.domain in ONNX_DOMAINS), None)
    if opset is not None and opset < MIN_OPSET:
        return f"the model is ONNX opset {opset}; HAI imports opset {MIN_OPSET} and newer"
    for pattern, reason in EXCLUDED.items():
        if re.search(pattern, case.name):
            return reason
    return None


def imports_every_op(case) -> bool:  # type: ignore[no-untyped-def]
    nodes = case.model.graph.node
    domains_ok = all(n.domain in ONNX_DOMAINS for n in nodes)
    return domains_ok and all(imports(op) for op in case_op_types(case))


def fast_selection(cases: list) -> set[str]:  # type: ignore[type-arg]
    """One case per (op types, input dtypes): the first that is not skipped (else the first)."""
    groups: dict[tuple, list] = {}  # type: ignore[type-arg]
    for case in cases:
        groups.setdefault((case_op_types(case), input_dtypes(case)), []).append(case)
    chosen = set()
    for members in groups.values():
        runnable = [c for c in members if skip_reason(c) is None]
        chosen.add((runnable or members)[0].name)
    return chosen


def conformance_classes(
    backend: type, reason_of: Callable[[Any], str | None], prefix: str, module: str
) -> tuple[type[unittest.TestCase], type[unittest.TestCase]]:
    """(fast class, slow class) of the `test_<case>_cpu` methods BackendTest builds for `backend`,
    each case skipped with `reason_of(case)` when that is not None; classes named `prefix`Test and
    `prefix`FullTest, living in `module`."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = [c for c in node_cases() if imports_every_op(c)]
        backend_test = onnx.backend.test.BackendTest(backend, module)
    names = {c.name: c for c in cases}
    if names:
        backend_test.include("^(" + "|".join(map(re.escape, names)) + ")_cpu$")
    generated = backend_test.test_cases["OnnxBackendNodeModelTest"]
    fast = fast_selection(cases)
    members: dict[bool, dict[str, object]] = {True: {}, False: {}}
    for name, case in names.items():
        method = getattr(generated, f"{name}_cpu")
        reason = reason_of(case)
        members[name in fast][f"{name}_cpu"] = unittest.skip(reason)(method) if reason else method
    fast_class = type(f"{prefix}Test", (unittest.TestCase,), members[True])
    slow_class = type(f"{prefix}FullTest", (unittest.TestCase,), members[False])
    for cls in (fast_class, slow_class):
        cls.__module__ = module
    return fast_class, pytest.mark.slow(slow_class)


OnnxNodeConformanceTest, OnnxNodeConformanceFullTest = conformance_classes(
    HaiBackend, skip_reason, "OnnxNodeConformance", __name__
)
