"""Generated models larger than a memory budget: a deep fp32 MLP with its weights as ONNX external data.

Rule: `large_mlp(size, seed)` builds `layers` blocks of `MatMul(x, W[width,
width]) + Add(b[width])`, each followed by `Relu` except the last, with
`layers` = the number of blocks whose weights come closest to `size` (at
least one; `size` in DESIGN.md's units, `200MB` = 200 MiB). Weights are drawn
from numpy's `default_rng(seed)` block by block, `W ~ N(0, 2/width)` (He) and
`b ~ N(0, 0.01)`, so activations keep their scale at any depth. The graph goes
to `NAME.onnx` and the weights to `NAME.onnx.data` (each tensor at a 4096-byte
aligned offset, as onnxruntime can map them), streamed one block at a time so
generating a 1.2 GB model needs one block of memory. NAME says width, layers,
batch and seed, and the files live in `cache_dir()/models/` unless a directory
is given; both are written under temporary names and renamed, and reused when
present at their expected size. Same arguments, same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from hai_compiler.real_models import cache_dir
from ir.units import parse_size

DEFAULT_WIDTH = 2048
DATA_ALIGNMENT = 4096
OPSET = 17


def mlp_layers(size: str | int, width: int = DEFAULT_WIDTH) -> int:
    """How many blocks of `width` make weights closest to `size` (at least one)."""
    return max(1, round(parse_size(size, "large model size") / block_bytes(width)))


def block_bytes(width: int) -> int:
    """Weight bytes of one block: the fp32 matrix and bias."""
    return (width * width + width) * 4


def large_mlp(
    size: str | int,
    seed: int = 0,
    width: int = DEFAULT_WIDTH,
    batch: int = 1,
    directory: str | Path | None = None,
) -> Path:
    """The path of the generated `.onnx` (module doc: the rule); its data file lies beside it."""
    layers = mlp_layers(size, width)
    folder = Path(directory) if directory is not None else cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"large_mlp-w{width}-l{layers}-b{batch}-s{seed}.onnx"
    data = path.with_name(path.name + ".data")
    if path.is_file() and data.is_file() and data.stat().st_size == data_file_size(layers, width):
        return path
    suffix = f".tmp{os.getpid()}"
    tmp_data = data.with_name(data.name + suffix)
    initializers = write_weights(tmp_data, data.name, layers, width, seed)
    model = mlp_graph(initializers, layers, width, batch)
    tmp_path = path.with_name(path.name + suffix)
    tmp_path.write_bytes(model.SerializeToString(deterministic=True))
    os.replace(tmp_data, data)
    os.replace(tmp_path, path)
    return path


def data_file_size(layers: int, width: int) -> int:
    offset = 0
    for _ in range(layers):
        offset = _align(offset) + width * width * 4
        offset = _align(offset) + width * 4
    return offset


def write_weights(path: Path, location: str, layers: int, width: int, seed: int) -> list[TensorProto]:
    """Write every block's W and b to `path`; their initializers, pointing at `location`."""
    rng = np.random.default_rng(seed)
    initializers = []
    with path.open("wb") as out:
        for layer in range(layers):
            weight = rng.standard_normal((width, width), dtype=np.float32) * np.float32(np.sqrt(2 / width))
            bias = rng.standard_normal(width, dtype=np.float32) * np.float32(0.01)
            for name, array in ((f"w{layer}", weight), (f"b{layer}", bias)):
                out.write(bytes(_align(out.tell()) - out.tell()))
                initializers.append(external_tensor(name, array.shape, location, out.tell(), array.nbytes))
                out.write(array.tobytes())
    return initializers


def external_tensor(
    name: str, shape: tuple[int, ...], location: str, offset: int, length: int
) -> TensorProto:
    """An fp32 initializer whose bytes are [offset, offset + length) of the file `location`."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def mlp_graph(initializers: list[TensorProto], layers: int, width: int, batch: int) -> onnx.ModelProto:
    nodes = []
    current = "x"
    for layer in range(layers):
        product, biased = f"mm{layer}", f"add{layer}"
        nodes.append(helper.make_node("MatMul", [current, f"w{layer}"], [product], name=f"MatMul_{layer}"))
        last = layer == layers - 1
        out = "y" if last else biased
        nodes.append(helper.make_node("Add", [product, f"b{layer}"], [out], name=f"Add_{layer}"))
        if not last:
            current = f"relu{layer}"
            nodes.append(helper.make_node("Relu", [biased], [current], name=f"Relu_{layer}"))
    graph = helper.make_graph(
        nodes,
        f"large_mlp_{layers}x{width}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, width])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hai")
    model.ir_version = 8
    return model


def _align(offset: int) -> int:
    return -(-offset // DATA_ALIGNMENT) * DATA_ALIGNMENT
