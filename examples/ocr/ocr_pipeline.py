"""An OCR pipeline over three models: detect text lines on a page, crop each line, classify its
direction, recognise its text (PP-OCR det -> cls -> rec).

Rule: the models are any objects with `run(feeds) -> {name: array}` (a loaded HAI model, or an
onnxruntime session wrapped by `OnnxRunner`); everything between them is numpy here, on the CPU:
the page is scaled into the detector's fixed input, the probability map is thresholded and its
connected components become boxes (grown like DBNet's unclip), each box is cropped from the page at
full resolution, resized to the classifier's and the recogniser's fixed inputs, turned upside down
when the classifier says so, and the recogniser's per-column characters are decoded by CTC (greedy:
repeats merged, blanks dropped). Lines go through cls and rec in batches of the model's batch (its
input's first dimension; `DYNAMIC_BATCH` where it takes any, as onnxruntime's; the last batch padded
with zero lines); a line reads the same in any batch. `read_pages` reads a stream of pages on two
threads (plus the caller's): one detects page i+1 while the other classifies and recognises page i's
lines; it yields the pages' lines in page order, equal to `read_page` on each. Each model streams
its inputs there (`outputs_of`): a HAI model through `run_many`, so its kernels run on the runtime's
device workers, whose one host thread runs det's and cls/rec's CPU kernels alike (one TVM thread
pool on the cores, not one per thread); a runner without `run_many` (onnxruntime) runs them one by
one on its thread.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

import numpy as np
from bilinear import resize
from text_detection import Box, boxes_on_page, det_input

CLS_SHAPE = (48, 192)
REC_SHAPE = (48, 320)
DYNAMIC_BATCH = 8
"""Lines a run for a model that takes any batch (PaddleOCR reads 6)."""


class Runner(Protocol):
    """What the pipeline needs of a model: one inference on named inputs."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


@dataclass(frozen=True)
class Line:
    """One text line found on a page: its box in page pixels (top, left, bottom, right), whether it
    was read upside down, its text and the mean probability of its characters."""

    box: Box
    flipped: bool
    text: str
    score: float


@dataclass(frozen=True)
class OcrModels:
    """The three models and the recogniser's alphabet (index 0 is CTC's blank)."""

    det: Runner
    cls: Runner
    rec: Runner
    alphabet: Sequence[str]


def only_output(runner: Runner, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    (output,) = runner.run(feeds).values()
    return np.asarray(output)


def input_name(runner: Any) -> str:
    """The single input's name of a HAI model (`inputs`) or of an `OnnxRunner`."""
    (binding,) = runner.inputs
    return str(binding.name)


# --- detection (text_detection.py) -----------------------------------------------------------------


def page_boxes(page: np.ndarray, det: Runner, name: str) -> list[Box]:
    """The text boxes of `page` in page pixels."""
    feeds, scale = det_input(page)
    return boxes_on_page(only_output(det, {name: feeds}), page, scale)


# --- lines ---------------------------------------------------------------------------------------


def line_input(crop: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A crop as a (1, 3, H, W) input: resized to height H keeping its aspect (at most W wide),
    scaled to [-1, 1], padded with zeros on the right."""
    height, width = shape
    scaled_width = max(1, min(width, round(crop.shape[1] * height / crop.shape[0])))
    scaled = (resize(crop, height, scaled_width) / 255.0 - 0.5) / 0.5
    padded = np.zeros((height, width, 3), np.float32)
    padded[:, :scaled_width] = scaled
    return padded.transpose(2, 0, 1)[None]


def ctc_decode(probabilities: np.ndarray, alphabet: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC over (T, classes) probabilities: the best class per column, repeats merged,
    blanks (class 0) dropped; the text and its characters' mean probability (0 when empty)."""
    best = probabilities.argmax(axis=1)
    keep = (best != 0) & np.concatenate(([True], best[1:] != best[:-1]))
    if not keep.any():
        return "", 0.0
    text = "".join(alphabet[i] for i in best[keep])
    return text, float(probabilities.max(axis=1)[keep].mean())


def crop_of(page: np.ndarray, box: Box) -> np.ndarray:
    top, left, bottom, right = box
    return page[top:bottom, left:right]


def oriented(crop: np.ndarray, direction: np.ndarray) -> tuple[bool, np.ndarray]:
    """Whether the classifier's output (1, 2) finds `crop` upside down (class 1 above 0.9, as
    PaddleOCR), and the crop turned upright."""
    flipped = bool(direction[0].argmax() == 1 and direction[0, 1] > 0.9)
    return flipped, crop[::-1, ::-1] if flipped else crop


def line_of(box: Box, flipped: bool, rec: np.ndarray, alphabet: Sequence[str]) -> Line:
    """The line in `box` from the recogniser's output (1, T, classes)."""
    text, score = ctc_decode(rec[0], alphabet)
    return Line(box, flipped, text, score)


@dataclass(frozen=True)
class Names:
    """The input names of the three models."""

    det: str
    cls: str
    rec: str

    @staticmethod
    def of(models: OcrModels) -> Names:
        return Names(input_name(models.det), input_name(models.cls), input_name(models.rec))


def read_page(page: np.ndarray, models: OcrModels) -> list[Line]:
    """Every text line of an RGB uint8 page, top to bottom (serially: det, then cls and rec)."""
    names = Names.of(models)
    detected = [(page, page_boxes(page, models.det, names.det))]
    return next(lines_of_pages(detected, models, names, stream=False))


def read_pages(pages: Iterable[np.ndarray], models: OcrModels, depth: int = 4) -> Iterator[list[Line]]:
    """`read_page` of each page, in order, with detection and line reading running concurrently on
    two threads (plus the caller's): at most `depth` pages between stages (module doc). A model
    streaming its inputs takes the next one before giving this one's output, so a page's lines come
    once the next page is detected (or the stream has ended)."""
    names = Names.of(models)
    detected: queue.Queue[Any] = queue.Queue(depth)
    read: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def detect() -> None:
        stage(detected, stop, detections(pages, models.det, names.det))

    def recognise() -> None:
        stage(read, stop, lines_of_pages(drain(detected), models, names))

    workers = [threading.Thread(target=target, daemon=True) for target in (detect, recognise)]
    for worker in workers:
        worker.start()
    try:
        yield from drain(read)
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def outputs_of(
    runner: Runner, feeds: Iterable[Mapping[str, np.ndarray]], stream: bool = True
) -> Iterator[np.ndarray]:
    """The only output of `runner` on each of `feeds`, in order: when `stream`, through
    `runner.run_many` where it has one (a HAI model: module doc), else `run` one by one."""
    many = getattr(runner, "run_many", None) if stream else None
    for outputs in many(feeds) if many is not None else map(runner.run, feeds):
        (output,) = outputs.values()
        yield np.asarray(output)


def detections(pages: Iterable[np.ndarray], det: Runner, name: str) -> Iterator[tuple[np.ndarray, list[Box]]]:
    """Each page and its text boxes, the detector streaming over the pages."""
    scaled: deque[tuple[np.ndarray, float]] = deque()  # the pages given to det, not yet out, and scales

    def inputs() -> Iterator[dict[str, np.ndarray]]:
        for page in pages:
            feeds, scale = det_input(page)
            scaled.append((page, scale))
            yield {name: feeds}

    for output in outputs_of(det, inputs()):
        page, scale = scaled.popleft()
        yield page, boxes_on_page(output, page, scale)


def batch_of(runner: Any) -> int:
    """How many lines `runner` reads a run: its input's fixed first dimension (a compiled HAI model),
    `DYNAMIC_BATCH` where it takes any number (onnxruntime's PP-OCR models)."""
    (binding,) = runner.inputs
    first = binding.shape[0]
    return first if isinstance(first, int) else DYNAMIC_BATCH


def line_outputs(
    runner: Runner, name: str, lines: Iterable[np.ndarray], stream: bool
) -> Iterator[np.ndarray]:
    """`runner`'s output (1, ...) for each line input (1, 3, H, W), in order: the lines go in batches of
    `batch_of(runner)`, the last padded with zero lines (`outputs_of`)."""
    batch, sizes, lines = batch_of(runner), deque[int](), iter(lines)

    def batches() -> Iterator[dict[str, np.ndarray]]:
        while chunk := list(islice(lines, batch)):
            sizes.append(len(chunk))
            yield {name: np.concatenate(chunk + [np.zeros_like(chunk[0])] * (batch - len(chunk)))}

    for output in outputs_of(runner, batches(), stream):
        yield from (output[k : k + 1] for k in range(sizes.popleft()))


def lines_of_pages(
    detected: Iterable[tuple[np.ndarray, list[Box]]], models: OcrModels, names: Names, stream: bool = True
) -> Iterator[list[Line]]:
    """Each detected page's lines: cropped, classified, turned upright, recognised (`line_outputs`,
    streaming over the lines of all the pages when `stream`)."""
    counts: deque[int] = deque()  # lines of each page given to cls, not yet out
    crops: deque[tuple[Box, np.ndarray]] = deque()  # lines given to cls, not yet out of it
    upright: deque[tuple[Box, bool]] = deque()  # lines given to rec, not yet out of it

    def cls_inputs() -> Iterator[np.ndarray]:
        for page, boxes in detected:
            counts.append(len(boxes))
            for box in boxes:
                crops.append((box, crop_of(page, box)))
                yield line_input(crops[-1][1], CLS_SHAPE)

    def rec_inputs() -> Iterator[np.ndarray]:
        for direction in line_outputs(models.cls, names.cls, cls_inputs(), stream):
            box, crop = crops.popleft()
            flipped, crop = oriented(crop, direction)
            upright.append((box, flipped))
            yield line_input(crop, REC_SHAPE)

    lines: list[Line] = []
    for rec in line_outputs(models.rec, names.rec, rec_inputs(), stream):
        lines.append(line_of(*upright.popleft(), rec, models.alphabet))
        while counts and len(lines) >= counts[0]:
            count = counts.popleft()
            yield lines[:count]
            del lines[:count]
    yield from ([] for _ in counts)  # the pages left have no lines


_DONE = object()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def stage(out: queue.Queue[Any], stop: threading.Event, items: Iterable[Any]) -> None:
    """Put `items` on `out` then a end mark (or the error that stopped them), until `stop` is set."""
    try:
        for item in items:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        final: Any = _DONE
    except BaseException as error:  # handed to the consumer, which raises it
        final = _Failed(error)
    while not stop.is_set():
        try:
            out.put(final, timeout=0.1)
            return
        except queue.Full:
            continue


def drain(source: queue.Queue[Any]) -> Iterator[Any]:
    """The items a `stage` puts on `source`, raising the error it ended with."""
    while (item := source.get()) is not _DONE:
        if isinstance(item, _Failed):
            raise item.error
        yield item


# --- onnxruntime, the reference ------------------------------------------------------------------


@dataclass(frozen=True)
class _Binding:
    name: str
    shape: tuple[int | str | None, ...]


class OnnxRunner:
    """An onnxruntime session with the `Runner` interface (the pipeline's reference)."""

    def __init__(self, path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(_Binding(i.name, tuple(i.shape)) for i in self.session.get_inputs())

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, dict(feeds)), strict=True))


def rec_alphabet(model_path: str) -> list[str]:
    """The PP-OCR recogniser's alphabet from its ONNX metadata (`character`): blank, the
    characters, then a space."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    characters = {p.key: p.value for p in model.metadata_props}["character"].splitlines()
    return ["<blank>", *characters, " "]
