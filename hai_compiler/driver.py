"""The driver's Python API: load a model, run a pass pipeline, interpret, summarise.

Rule: this is what the `hai` CLI calls and what a Python user calls; it knows
no command-line syntax (that is `cli.py` and its command modules) and raises
only `HaiError`s for bad input. `.onnx` files go through the ONNX importer, `.hir` files through the IR
parser; both give the same verified `Graph`, whose inputs hold at least one
element each.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_compiler.input_spec import check_inputs, random_input
from ir import Graph, HaiError, Interpreter, verify

MODEL_SUFFIXES = (".onnx", ".hir")


class ModelPathError(HaiError):
    """A model path that does not exist or has a suffix HAI does not read."""


def load_model_any(
    path: str | Path,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    input_values: Mapping[str, Any] | None = None,
) -> Graph:
    """Load an `.onnx` (imported with `input_shapes`, the inputs in `input_values` fixed to those
    values) or a `.hir` (shapes must agree; it has no inputs to fix) as a verified graph."""
    path = Path(path)
    if not path.is_file():
        raise ModelPathError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from hai_compiler.onnx_import import import_onnx

        graph = import_onnx(path, input_shapes=input_shapes, bind_inputs=input_values)
    elif suffix == ".hir":
        from ir.parser import read_hir

        if input_values:
            raise HaiError(f"{path}: --input-value fixes inputs of an .onnx while importing; a .hir has none")
        graph = read_hir(path)
        _check_hir_shapes(path, graph, input_shapes or {})
    else:
        raise ModelPathError(f"{path}: unknown model format '{suffix}' (HAI reads .onnx and .hir)")
    verify(graph)
    for value in graph.inputs:
        if value.type.size == 0:  # nothing to compute; the kernels index non-empty tensors
            raise HaiError(
                f"{path}: input '{value.name}' {value.type} has no elements: give every dimension at least 1"
            )
    return graph


def _check_hir_shapes(path: Path, graph: Graph, input_shapes: Mapping[str, Sequence[int]]) -> None:
    declared = {v.name: v.type.shape for v in graph.inputs}
    for name, shape in input_shapes.items():
        if name not in declared:
            raise HaiError(
                f"{path}: --input-shape names '{name}', which is not an input ({sorted(declared)})"
            )
        if tuple(shape) != declared[name]:
            raise HaiError(
                f"{path}: --input-shape {name}={','.join(map(str, shape))} differs from the .hir's "
                f"static shape {list(declared[name])}"
            )


# -- pipelines ---------------------------------------------------------------


def build_pipeline(text: str | None) -> list[Any]:
    """The passes of a pipeline string (`default`, `fold-constants,dce{...}`); none for ''/None."""
    if not text or not text.strip() or text.strip() == "none":
        return []
    from passes.pipeline import parse_pipeline

    return list(parse_pipeline(text))


@dataclasses.dataclass
class InstrumentOptions:
    """Which instruments a pipeline run gets (the `--print-ir-*`, `--dump-ir`, `--timing` options)."""

    print_before: Sequence[str] = ()
    print_after: Sequence[str] = ()
    dump_dir: Path | None = None
    dump_weights: bool = False
    timing: bool = False


def make_instruments(options: InstrumentOptions) -> list[Any]:
    """The instruments for `options`; the timing one is last, so it times only the passes."""
    from passes import instruments

    made: list[Any] = []
    if options.print_before or options.print_after:
        made.append(instruments.PrintIR(before=options.print_before, after=options.print_after))
    if options.dump_dir is not None:
        made.append(instruments.DumpIR(Path(options.dump_dir), save_weights=options.dump_weights))
    if options.timing:
        made.append(instruments.Timing())
    return made


def new_context() -> Any:
    """A fresh `PassContext` (no target facts yet: those come with the compile driver)."""
    from passes.manager import PassContext

    return PassContext()


def run_pipeline(
    graph: Graph,
    pipeline: str | Sequence[Any] | None,
    instruments: Sequence[Any] = (),
    *,
    verify_each: bool = False,
    ctx: Any = None,
) -> Graph:
    """Run `pipeline` (a string or pass objects) over `graph` and return the resulting graph."""
    passes = build_pipeline(pipeline) if pipeline is None or isinstance(pipeline, str) else list(pipeline)
    if not passes:
        return graph
    from passes.manager import PassManager

    manager = PassManager(passes, instruments=list(instruments), verify_each=verify_each)
    return manager.run(graph, ctx if ctx is not None else new_context())


def pipeline_report(instruments: Sequence[Any], ctx: Any) -> list[str]:
    """What a pipeline run has to tell the user: its diagnostics, then the timing table if timed."""
    from passes.instruments import Timing

    lines = [str(d) for d in getattr(ctx, "diagnostics", ())]
    lines += [i.render() for i in instruments if isinstance(i, Timing)]
    return lines


# -- text ------------------------------------------------------------------


def graph_text(graph: Graph) -> str:
    from ir.printer import print_graph

    return print_graph(graph)


def write_ir(graph: Graph, path: str | Path, *, save_weights: bool = False) -> None:
    from ir.printer import write_hir

    write_hir(graph, Path(path), save_weights=save_weights)


# -- interpretation ---------------------------------------------------------


def make_inputs(
    graph: Graph, given: Mapping[str, np.ndarray], seed: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The given arrays (checked) plus seeded random ones for the rest; also the random names."""
    check_interpreter_memory(graph)
    expected = {v.name: v.type for v in graph.inputs}
    inputs = check_inputs(given, expected)
    rng = np.random.default_rng(seed)
    randomized = [name for name in expected if name not in inputs]
    for name in randomized:
        inputs[name] = random_input(expected[name], rng)
    return {name: inputs[name] for name in expected}, randomized


def check_interpreter_memory(graph: Graph) -> None:
    """Refuse a graph the interpreter cannot hold in this machine's available memory (rather than be
    killed by the OOM killer): the inputs (drawn as float64 when random), then its largest tensor
    beside an operand as large, is a lower bound of the interpreter's peak."""
    from ir.units import format_size
    from runtime.available_memory import available_memory

    available = available_memory()
    largest = max(graph.values(), key=lambda v: v.type.nbytes, default=None)
    if available is None or largest is None:
        return
    need = sum(8 * v.type.size for v in graph.inputs) + 2 * largest.type.nbytes
    if need > available.nbytes:
        raise HaiError(
            f"interpreting '{graph.name}' needs more than {format_size(need)} (its largest tensor is "
            f"%{largest.name} {largest.type}); this machine has {format_size(available.nbytes)} "
            f"available ({available.source}): give smaller shapes"
        )


def interpret(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the reference interpreter; outputs by name in the graph's order."""
    with np.errstate(all="ignore"):
        return Interpreter(graph).run(inputs)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def output_file_name(name: str) -> str:
    """`name` with characters outside [A-Za-z0-9._-] replaced by `_`, plus `.npy`."""
    return _UNSAFE.sub("_", name) + ".npy"


def save_outputs(outputs: Mapping[str, np.ndarray], directory: str | Path) -> dict[str, Path]:
    """Write one `.npy` per output into `directory`; names that collide after sanitising get a suffix."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    taken: set[str] = set()
    for name, array in outputs.items():
        file_name = output_file_name(name)
        stem, n = file_name[: -len(".npy")], 1
        while file_name in taken:
            file_name, n = f"{stem}.{n}.npy", n + 1
        taken.add(file_name)
        paths[name] = directory / file_name
        np.save(paths[name], array, allow_pickle=False)
    return paths


def array_stats(array: np.ndarray) -> str:
    """A one-line description: min, max, mean, std (true count for booleans, NaN/Inf counts)."""
    if array.size == 0:
        return "empty"
    if array.dtype == np.bool_:
        return f"true={int(array.sum())}/{array.size}"
    data = array.astype(np.float64)
    finite = np.isfinite(data)
    stats = ""
    if finite.any():
        d = data[finite]
        stats = f"min={d.min():.6g} max={d.max():.6g} mean={d.mean():.6g} std={d.std():.6g}"
    bad = array.size - int(finite.sum())
    return stats + (f" non-finite={bad}" if bad else "")
