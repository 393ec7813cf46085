"""Train the embedded default model: a small CNN on scikit-learn's bundled 8x8 digits.

Run it OUTSIDE the project's environment (torch must never enter `.venv`):

    python3 -m venv /tmp/train && /tmp/train/bin/pip install torch==2.13.0 scikit-learn onnx onnxscript
    /tmp/train/bin/python examples/digits/train_digits.py

Writes `hai_compiler/models/digits_cnn.onnx` (batch dimension symbolic, named
`batch`) and `hai_compiler/models/digits_test.npz` (the held-out split: `x`
float32 [N,1,8,8] scaled to [0, 1], `y` int64 labels) that the demo and the
tests use. Deterministic: fixed seeds, fixed split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

OUT = Path(__file__).resolve().parents[2] / "hai_compiler" / "models"


class DigitsCNN(nn.Module):
    """conv-bn-relu x3 (the middle one strided), global average pool, linear classifier."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            )

        self.features = nn.Sequential(block(1, 16, 1), block(16, 32, 2), block(32, 64, 1))
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)

    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _epoch in range(40):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    print(f"held-out accuracy: {accuracy:.4f} on {len(y_test)} digits")

    OUT.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (torch.from_numpy(x_test[:2]),),
        str(OUT / "digits_cnn.onnx"),
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        opset_version=18,
        dynamo=True,
        optimize=False,
        external_data=False,
    )
    strip_stack_traces(OUT / "digits_cnn.onnx")
    np.savez_compressed(OUT / "digits_test.npz", x=x_test, y=y_test)


def strip_stack_traces(path: Path) -> None:
    """Drop the exporter's per-node stack traces: they name paths of the machine that trained."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))


if __name__ == "__main__":
    main()
