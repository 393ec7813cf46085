"""Hypothesis: random valid graphs print, parse back to the same facts, verify, and print identically.

Graphs mix inputs of random shapes and dtypes, constants (inline, hashed with
data, elided), chains of registered ops, odd value names, random type facts and
random node annotations.
The reference is the generated graph itself: every value's type, every
attribute and every constant's bytes must come back.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir import Builder, DType, ElidedConstant, Graph, IRError, QuantParams, TensorType, verify
from ir.builder import infer_types
from ir.ops.registry import get_schema, has_op
from ir.parser import parse_hir, read_hir
from ir.printer import is_inline, print_graph, write_hir
from ir.quantization import QUANT_RANGES, param_count

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD_NAMES = [
    "/conv1/Conv_output_0",
    "onnx::Add_12",
    "with space",
    'q"uote',
    "back\\slash",
    "ünï",
    "1",
    "a.b-c$d",
    "tab\tand\nnewline",
    "\u2028sep",
    "x:0",
    "%percent",
    "@at",
    "_",
]
NAMES = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,6}", fullmatch=True),
    st.sampled_from(ODD_NAMES),
    st.text(min_size=1, max_size=8),
)
DTYPES = list(DType)
NUMERIC = [d for d in DTYPES if d is not DType.BOOL]
FLOATS = [d for d in DTYPES if d.is_float]
ANNOTATIONS = st.dictionaries(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.integers(-(2**40), 2**40) | NAMES,
    max_size=3,
)
"""Random node annotations: identifier keys, int or (odd) string values."""
SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def quant_params(draw, dtype: DType, shape: tuple[int, ...]) -> QuantParams | None:
    """Parameters that fit a `dtype` tensor of `shape` (the verifier checks them), or None."""
    if dtype not in QUANT_RANGES:
        return None
    axis = draw(st.none() | st.integers(0, len(shape) - 1)) if shape else None
    group = draw(st.none() | st.integers(1, 64)) if axis is not None else None
    n = param_count(shape, QuantParams((1.0,), (0,), axis, group)) if axis is not None else 1
    scale = tuple(draw(st.lists(st.floats(1e-6, 1e6), min_size=n, max_size=n)))
    lo, hi = QUANT_RANGES[dtype]
    zero = tuple(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))
    return QuantParams(scale, zero, axis, group)


PLACEMENTS = st.none() | st.sampled_from(["cpu", "opencl", "opencl:gpu", "opencl:accelerator"])
"""A graph's one device (ir/devices.py): the verifier wants every value of a placed graph placed."""


@st.composite
def type_facts(draw, dtype: DType, shape: tuple[int, ...], device: str | None) -> dict:
    if draw(st.integers(0, 2)) == 0:
        return {"device": device}
    return {
        "quant": draw(st.none() | quant_params(dtype, shape)),
        "device": device,
        "offset": draw(st.none() | st.integers(0, 2**40)),
        "page": draw(st.none() | st.integers(0, 1000)),
    }


def random_array(rng: np.random.Generator, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Random data with the specials (nan, ±inf, -0.0, extremes) a printer could get wrong."""
    size = math.prod(shape)
    if dtype is DType.BOOL:
        return rng.integers(0, 2, size).astype(bool).reshape(shape)
    if dtype.is_float:
        data = rng.standard_normal(size) * 10.0 ** rng.integers(-8, 8, size)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.1])
        mask = rng.random(size) < 0.2
        data[mask] = rng.choice(specials, int(mask.sum()))
        with np.errstate(over="ignore"):
            return data.astype(dtype.numpy).reshape(shape)
    low, high = (0, 255) if dtype is DType.U8 else (-(1 << (dtype.bits - 1)), (1 << (dtype.bits - 1)) - 1)
    return rng.integers(low, high, size, endpoint=True).astype(dtype.numpy).reshape(shape)


class GraphMaker:
    """Draws one random valid graph step by step."""

    def __init__(self, draw) -> None:
        self.draw = draw
        self.graph = Graph(draw(NAMES))
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        self.device = draw(PLACEMENTS)
        self.pool = []

    def name(self) -> str:
        base = self.draw(NAMES)
        return base if not self.graph.has_value(base) else self.graph.unique_name(base + "#")

    def type(self, dtype: DType | None = None, shape: tuple[int, ...] | None = None) -> TensorType:
        dtype = dtype or self.draw(st.sampled_from(DTYPES))
        shape = shape if shape is not None else self.draw(SHAPES)
        return TensorType(dtype, shape, **self.draw(type_facts(dtype, shape, self.device)))

    def add_input(self) -> None:
        self.pool.append(self.graph.add_input(self.name(), self.type()))

    def add_constant(self) -> None:
        kind = self.draw(st.sampled_from(["inline", "hashed", "elided", "empty"]))
        dtype = self.draw(st.sampled_from(DTYPES))
        shape = {
            "inline": self.draw(SHAPES.filter(lambda s: math.prod(s) <= 16)),
            "hashed": (17,),
            "elided": (3, 7),
            "empty": (0, 2),
        }[kind]
        ttype = self.type(dtype, shape)
        if kind == "elided":
            data = ElidedConstant(self.draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True)))
        else:
            data = random_array(self.rng, dtype, shape)
        self.pool.append(self.graph.add_constant(self.name(), data, ttype))

    def add_node(self) -> None:
        makers = [m for op, m in self.NODE_MAKERS if has_op(op)]
        operand = self.draw(st.sampled_from(self.pool))
        op, operands, attrs = self.draw(st.sampled_from(makers))(self, operand)
        try:
            inferred = infer_types(
                op, [o.type for o in operands], get_schema(op).normalize_attrs(attrs, op), op
            )
        except IRError:  # the op refuses this dtype or shape: Identity takes anything
            op, operands, attrs = "Identity", [operand], {}
            inferred = [operand.type]
        names = []
        for _ in inferred:
            names.append(self.name())
            while names.count(names[-1]) > 1:
                names[-1] = self.graph.unique_name(names[-1] + "#")
        results = Builder(self.graph).op(
            op, operands, attrs, name=self.draw(st.just("") | NAMES), result_names=names
        )
        for result in results:
            facts = type_facts(result.type.dtype, result.type.shape, self.device)
            result.type = result.type.with_(**self.draw(facts))
        results[0].producer.annotations.update(self.draw(ANNOTATIONS))
        self.pool.extend(results)

    # Each maker returns (op, operands, attrs) valid for `x`.
    def unary(self, x):
        return self.draw(st.sampled_from(["Identity", "Relu"])), [x], {}

    def binary(self, x):
        return self.draw(st.sampled_from(["Add", "Mul"] if has_op("Mul") else ["Add"])), [x, x], {}

    def leaky_relu(self, x):
        return "LeakyRelu", [x], {"alpha": self.draw(st.floats())}

    def transpose(self, x):
        perm = self.draw(st.permutations(range(x.type.rank)))
        return "Transpose", [x], {"perm": tuple(perm)}

    def reshape(self, x):
        return "Reshape", [x], {"shape": (x.type.size,)}

    def concat(self, x):
        if x.type.rank == 0:
            return self.unary(x)
        return "Concat", [x, x, x], {"axis": self.draw(st.integers(0, x.type.rank - 1))}

    def split(self, x):
        if x.type.rank == 0 or x.type.shape[0] < 2:
            return self.unary(x)
        first = self.draw(st.integers(1, x.type.shape[0] - 1))
        return "Split", [x], {"axis": 0, "split": (first, x.type.shape[0] - first)}

    def cast(self, x):
        return "Cast", [x], {"to": self.draw(st.sampled_from(DTYPES))}

    NODE_MAKERS = [
        ("Relu", unary),
        ("Add", binary),
        ("LeakyRelu", leaky_relu),
        ("Transpose", transpose),
        ("Reshape", reshape),
        ("Concat", concat),
        ("Split", split),
        ("Cast", cast),
    ]


@st.composite
def graphs(draw) -> Graph:
    maker = GraphMaker(draw)
    for _ in range(draw(st.integers(0, 3))):
        maker.add_input()
    for _ in range(draw(st.integers(0 if maker.pool else 1, 4))):
        maker.add_constant()
    for _ in range(draw(st.integers(0, 8))):
        maker.add_node()
    maker.graph.set_outputs(draw(st.lists(st.sampled_from(maker.pool), max_size=3)))
    maker.graph.metadata.update(draw(st.dictionaries(NAMES, st.text(max_size=10), max_size=2)))
    return maker.graph


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes, except that any nan matches any nan."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "fV" or a.dtype == ml_dtypes.bfloat16:
        wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
        nan = np.isnan(wide_a)
        return bool(np.array_equal(nan, np.isnan(wide_b))) and (a[~nan].tobytes() == b[~nan].tobytes())
    return a.tobytes() == b.tobytes()


def assert_same_facts(want: Graph, got: Graph) -> None:
    assert got.name == want.name and got.metadata == want.metadata
    assert [v.name for v in got.inputs] == [v.name for v in want.inputs]
    assert [v.name for v in got.outputs] == [v.name for v in want.outputs]
    for value in want.values():
        other = got.value(value.name)
        assert other.type == value.type
        if isinstance(value.const, np.ndarray) and is_inline(value):
            assert same_bits(value.const, other.const)
        elif value.is_constant:
            assert isinstance(other.const, ElidedConstant) and other.const.sha256 == value.sha256
    for a, b in zip(want.nodes, got.nodes, strict=True):
        assert (a.op, a.name, a.annotations) == (b.op, b.name, b.annotations)
        assert [o and o.name for o in a.operands] == [o and o.name for o in b.operands]
        assert a.attrs.keys() == b.attrs.keys()
        for key, value in a.attrs.items():
            if isinstance(value, float):
                assert same_float(value, b.attrs[key])
            else:
                assert value == b.attrs[key]


@SETTINGS
@given(graphs())
def test_random_graph_round_trips(graph: Graph):
    verify(graph)
    text = print_graph(graph)
    parsed = parse_hir(text)
    verify(parsed)
    assert print_graph(parsed) == text
    assert_same_facts(graph, parsed)


@SETTINGS
@given(graphs())
def test_given_weights_come_back_bit_exact(graph: Graph):
    loaded = {v.name: v.const for v in graph.constants.values() if isinstance(v.const, np.ndarray)}
    parsed = parse_hir(print_graph(graph), weights=loaded)
    for name, array in loaded.items():
        assert same_bits(array, parsed.value(name).const)


@settings(max_examples=15, deadline=None)
@given(graphs())
def test_write_and_read_hir_with_weights_file(graph: Graph):
    if any(isinstance(v.const, ElidedConstant) for v in graph.constants.values()):
        return  # an elided constant has no data to save (tested in test_printer_parser)
    with tempfile.TemporaryDirectory() as folder:
        path = write_hir(graph, Path(folder) / "m.hir", save_weights=True)
        loaded = read_hir(path)
    verify(loaded)
    assert print_graph(loaded) == print_graph(graph)
    for value in graph.constants.values():
        assert same_bits(value.const, loaded.value(value.name).const)


FLOAT_WIDTH = {DType.F16: 16, DType.F32: 32, DType.F64: 64}


@SETTINGS
@given(st.data(), st.sampled_from(DTYPES), st.integers(0, 16))
def test_inline_values_are_exact_for_every_dtype(data, dtype: DType, size: int):
    if dtype in FLOAT_WIDTH:
        values = data.draw(st.lists(st.floats(width=FLOAT_WIDTH[dtype]), min_size=size, max_size=size))
        array = np.array(values, dtype=dtype.numpy)
    elif dtype is DType.BF16:
        bits = data.draw(st.lists(st.integers(0, 2**16 - 1), min_size=size, max_size=size))
        array = np.array(bits, np.uint16).view(ml_dtypes.bfloat16)
    else:
        array = random_array(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), dtype, (size,))
    graph = Graph("main")
    graph.add_constant("c", array, TensorType(dtype, (size,)))
    text = print_graph(graph)
    assert "dense<" in text
    assert same_bits(array, parse_hir(text).value("c").const)
