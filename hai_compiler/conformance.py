"""Run the ONNX node conformance cases through `HaiBackend` and report the pass count.

`python -m hai_compiler.conformance [--op Conv --op Relu] [--failures]` runs
every case whose model uses only ops HAI imports (or only the named ops) and
compares with the case's own expected outputs at the case's tolerances.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Iterable

import numpy as np


@dataclasses.dataclass
class CaseResult:
    name: str
    op_types: tuple[str, ...]
    error: str | None


def node_cases():  # type: ignore[no-untyped-def]
    """The ONNX node test cases, built in memory by onnx (warnings of its generators hidden)."""
    import onnx.backend.test.loader as loader

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return loader.load_node_model_tests()


def case_op_types(case) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return tuple(sorted({n.op_type for n in case.model.graph.node}))


def run_case(case) -> CaseResult:  # type: ignore[no-untyped-def]
    """Run one case; `error` is None when every data set matched."""
    from hai_compiler.onnx_backend import HaiBackend

    ops = case_op_types(case)
    try:
        rep = HaiBackend.prepare(case.model)
        for inputs, expected in case.data_sets:
            with np.errstate(all="ignore"):
                outputs = rep.run([as_array(x) for x in inputs])
            compare([as_array(x) for x in expected], outputs, case.rtol, case.atol)
    except Exception as exc:  # a report: every failure is a line, whatever raised it
        return CaseResult(case.name, ops, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    return CaseResult(case.name, ops, None)


def as_array(data) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A case's data as an array (cases on types numpy lacks, e.g. bf16 and int4, hold TensorProtos)."""
    import onnx

    if isinstance(data, onnx.TensorProto):
        return onnx.numpy_helper.to_array(data)
    return np.asarray(data)


def compare(expected: Iterable[np.ndarray], outputs: Iterable[np.ndarray], rtol: float, atol: float) -> None:
    """The ONNX backend test's comparison: same count, dtype and values within tolerance."""
    expected, outputs = list(expected), list(outputs)
    if len(expected) != len(outputs):
        raise AssertionError(f"{len(outputs)} outputs, expected {len(expected)}")
    for ref, out in zip(expected, outputs):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.dtype != out.dtype:
            raise AssertionError(f"dtype {out.dtype}, expected {ref.dtype}")
        if ref.dtype == object or ref.dtype.kind in "SU":
            np.testing.assert_array_equal(ref, out)
        else:
            np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", action="append", default=[], help="only cases that use this op")
    parser.add_argument("--failures", action="store_true", help="print each failing case")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    from hai_compiler.onnx_import.converter import imports

    cases = [c for c in node_cases() if args.k in c.name]
    if args.op:
        cases = [c for c in cases if set(args.op) & set(case_op_types(c))]
    else:
        cases = [c for c in cases if all(imports(o) for o in case_op_types(c))]
    results = [run_case(c) for c in cases]
    failed = [r for r in results if r.error]
    if args.failures:
        for r in failed:
            print(f"FAIL {r.name} [{','.join(r.op_types)}]: {r.error}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
