"""Fuzzing ONNX model bytes: mutated protobufs of small models (attributes, shapes, dtypes, names,
opsets, initializers, raw bytes) through `hai interp`. Oracle: fuzz_oracle.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_oracle import assert_clean, check_model_file, fuzz_settings, run_process, seed_models
from hypothesis import given
from hypothesis import strategies as st

SEEDS = seed_models()
INTS = st.one_of(
    st.integers(-3, 8),
    st.sampled_from([0, -1, 2**31, 2**62, -(2**63), 2**63 - 1]),
    st.integers(-(2**63), 2**63 - 1),
)
DTYPES = st.sampled_from([0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 16, 8, 14, 99])
OPS = st.sampled_from(
    ["Relu", "Add", "Conv", "Gemm", "Reshape", "Concat", "Softmax", "Transpose", "Nope", "Loop"]
)


MUTATIONS = [
    "attr",
    "dim",
    "dtype",
    "op",
    "input",
    "output",
    "init_dims",
    "init_dtype",
    "opset",
    "drop",
    "dup",
]


def mutate(model: onnx.ModelProto, data: st.DataObject) -> onnx.ModelProto:
    """One to three structured mutations of a copy of `model`."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(MUTATIONS))
        node = graph.node[data.draw(st.integers(0, len(graph.node) - 1))] if len(graph.node) else None
        if kind == "attr" and node is not None and node.attribute:
            attr = node.attribute[data.draw(st.integers(0, len(node.attribute) - 1))]
            if attr.ints:
                attr.ints[data.draw(st.integers(0, len(attr.ints) - 1))] = data.draw(INTS)
            else:
                attr.i = data.draw(INTS)
        elif kind == "dim":
            vi = graph.input[data.draw(st.integers(0, len(graph.input) - 1))]
            dims = vi.type.tensor_type.shape.dim
            if len(dims):
                dims[data.draw(st.integers(0, len(dims) - 1))].dim_value = data.draw(INTS)
        elif kind == "dtype":
            vi = data.draw(st.sampled_from([*graph.input, *graph.output]))
            vi.type.tensor_type.elem_type = data.draw(DTYPES)
        elif kind == "op" and node is not None:
            node.op_type = data.draw(OPS)
        elif kind == "input" and node is not None and node.input:
            names = [v.name for v in graph.input] + [t.name for t in graph.initializer] + ["", "ghost"]
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = data.draw(st.sampled_from(names))
        elif kind == "output" and node is not None:
            node.output[0] = data.draw(st.sampled_from([o for n in graph.node for o in n.output] + ["x"]))
        elif kind == "init_dims" and graph.initializer:
            tensor = graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))]
            if tensor.dims:
                tensor.dims[data.draw(st.integers(0, len(tensor.dims) - 1))] = data.draw(INTS)
        elif kind == "init_dtype" and graph.initializer:
            graph.initializer[data.draw(st.integers(0, len(graph.initializer) - 1))].data_type = data.draw(
                DTYPES
            )
        elif kind == "opset":
            copy.opset_import[0].version = data.draw(st.one_of(st.integers(7, 23), st.integers(-2, 30)))
        elif kind == "drop" and node is not None:
            graph.node.remove(node)
        elif kind == "dup" and node is not None:
            graph.node.append(node)
    return copy


def check_bytes(data: bytes, context: object, compiled: bool = False) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "fuzz.onnx"
        path.write_bytes(data)
        check_model_file(path, Path(work), context, compiled)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_models_match_onnxruntime(seed: str) -> None:
    """The unmutated models run, compiled too, and match (so the mutations start from working models)."""
    check_bytes(SEEDS[seed].SerializeToString(), seed, compiled=True)


def _structured(seed: str, data: st.DataObject, compiled: bool = False) -> None:
    model = mutate(SEEDS[seed], data)
    context = (seed, [str(n).replace("\n", " ") for n in model.graph.node])
    check_bytes(model.SerializeToString(), context, compiled)


def _raw(seed: str, data: st.DataObject) -> None:
    raw = bytearray(SEEDS[seed].SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) // 2, len(raw)))
    check_bytes(bytes(raw[:cut]), (seed, "raw mutation"))


FAST = fuzz_settings(300)
SLOW = fuzz_settings(3000)


@FAST
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_models(seed: str, data: st.DataObject) -> None:
    _structured(seed, data)


@FAST
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_bytes(seed: str, data: st.DataObject) -> None:
    _raw(seed, data)


@pytest.mark.slow
@SLOW
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_models_slow(seed: str, data: st.DataObject) -> None:
    _structured(seed, data)


@pytest.mark.slow
@fuzz_settings(60)
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_models_compiled_slow(seed: str, data: st.DataObject) -> None:
    _structured(seed, data, compiled=True)


@pytest.mark.slow
@SLOW
@given(seed=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_bytes_slow(seed: str, data: st.DataObject) -> None:
    _raw(seed, data)


def test_mutated_models_in_a_real_process(tmp_path: Path) -> None:
    """A few mutations as a user's shell runs them: a crash in native code shows here, not in-process."""
    rng = np.random.default_rng(0)
    model = SEEDS["cnn"]
    cases = []
    for i, dims in enumerate([[1, 3, 0, 4], [1, 3, 2**40, 4], [1, 3, 4, 4]]):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        for d, value in zip(copy.graph.input[0].type.tensor_type.shape.dim, dims, strict=True):
            d.dim_value = value
        copy.graph.node[0].attribute[0].ints[0] = int(rng.integers(-2, 5))  # pads
        cases.append(tmp_path / f"case{i}.onnx")
        cases[-1].write_bytes(copy.SerializeToString())
    for path in cases:
        commands: list[list[str | Path]] = [
            ["interp", path],
            ["compile", path, "-o", tmp_path / f"{path.stem}.hai"],
        ]
        for command in commands:
            proc = run_process(command)
            assert_clean(proc.returncode, proc.stdout, proc.stderr, command)
