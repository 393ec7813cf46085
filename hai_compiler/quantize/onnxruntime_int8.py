"""onnxruntime's static INT8 of a model, made the standard way: the baseline HAI's quantizer must beat.

Rule: one recipe for every model, cached by content. The fp32 model gets its
symbolic input dimensions fixed to the bench shape, is converted to opset ≥ 13
(onnx.version_converter), has its top-level Constant-node tensors turned into
initializers (onnxruntime's quantizer only quantizes initializer weights), goes
through `quant_pre_process` (onnxruntime's graph optimisation and ONNX shape
inference; its symbolic shape inference is skipped, see below), then `quantize_static` in QDQ format with
per-channel QInt8 weights and QInt8 activations, MinMax calibration over the
given feeds. The result is kept under `<cache dir>/quantized/`, keyed by the
model's bytes, the shapes, the calibration data and the onnxruntime version.
onnxruntime is imported lazily (it is a test/bench dependency, not the compiler's).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hai_compiler.real_models import cache_dir
from ir import HaiError

MIN_OPSET = 13
RECIPE = "qdq-per-channel-s8s8-minmax-nosymbolic-v1"


def onnxruntime_static_int8(
    model: str | Path,
    calibration: Iterable[Mapping[str, np.ndarray]],
    input_shapes: Mapping[str, tuple[int, ...]],
) -> Path:
    """The path of the cached QDQ INT8 model of `model`, calibrated on `calibration` feeds."""
    import onnxruntime

    feeds = [{k: np.ascontiguousarray(v) for k, v in feed.items()} for feed in calibration]
    source = Path(model).read_bytes()
    key = _cache_key(source, input_shapes, feeds, onnxruntime.__version__)
    target = cache_dir() / "quantized" / f"{Path(model).stem}-ort-int8-{key}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _prepare(source, input_shapes, prepared)
        preprocessed = Path(tmp) / "preprocessed.onnx"
        _quant_pre_process(prepared, preprocessed)
        quantized = Path(tmp) / "quantized.onnx"
        _quantize_static(preprocessed, quantized, feeds)
        quantized.replace(target)  # a rename within one directory tree: atomic for parallel benches
    return target


def _cache_key(
    source: bytes, shapes: Mapping[str, tuple[int, ...]], feeds: list[dict[str, np.ndarray]], version: str
) -> str:
    digest = hashlib.sha256(source)
    digest.update(repr((RECIPE, version, sorted(shapes.items()))).encode())
    for feed in feeds:
        for name in sorted(feed):
            digest.update(name.encode() + str(feed[name].dtype).encode() + repr(feed[name].shape).encode())
            digest.update(feed[name].tobytes())
    return digest.hexdigest()[:16]


def _prepare(source: bytes, input_shapes: Mapping[str, tuple[int, ...]], path: Path) -> None:
    """Fixed input shapes, opset ≥ 13, Constant-node tensors as initializers."""
    import onnx
    from onnx import version_converter

    model = onnx.load_from_string(source)
    fix_input_shapes(model, input_shapes)
    if _default_opset(model) < MIN_OPSET:
        model = version_converter.convert_version(model, MIN_OPSET)
    constants_to_initializers(model.graph)
    onnx.save(model, str(path))


def _default_opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def fix_input_shapes(model: Any, input_shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Set every dimension of the named graph inputs (symbolic ones included) to the given shape."""
    for value in model.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            if len(dims) != len(input_shapes[value.name]):
                shape = input_shapes[value.name]
                raise HaiError(f"input '{value.name}' has rank {len(dims)}: cannot give it shape {shape}")
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.Clear()
                dim.dim_value = size


def constants_to_initializers(graph: Any) -> int:
    """Replace the graph's tensor-valued Constant nodes by initializers of the same name; how many."""
    import onnx

    kept, moved = [], 0
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    return moved


def _quant_pre_process(source: Path, target: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Inputs are static by now, so ONNX shape inference types every tensor; the symbolic pass
    # (it needs sympy, not a dependency of ours) is skipped in every environment alike.
    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


def _quantize_static(source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source), str(target), _feed_reader(feeds),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )  # fmt: skip


def _feed_reader(feeds: list[dict[str, np.ndarray]]) -> Any:
    """An onnxruntime CalibrationDataReader over a list of feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

        def rewind(self) -> None:
            self._feeds = iter(feeds)

    return FeedReader()
