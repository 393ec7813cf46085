"""Fuzzing artifacts: mutated manifests (values, types, deletions, nesting), damaged files (truncated,
flipped bytes, links, extra files) and bad runtime API inputs, on a tiny compiled artifact.

Oracle: every case ends in one `HaiRuntimeError` naming the artifact (no other exception), or runs and
gives the unmutated artifact's result, checked against numpy. Mutants `read_manifest` accepts are
loaded and run in one child process, so a crash is caught and named; a few go through `hai run` in a
subprocess too, which must print exactly one `error:` line. Cases come from a seeded generator:
the fast tier runs a few hundred (well under 30 s), the `slow` marker many more.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_artifact import K, M, build_kernels, numpy_reference, tiny_weights, write_tiny_artifact  # noqa: E402

import runtime  # noqa: E402
from runtime.artifact import MANIFEST_FILE  # noqa: E402
from runtime.artifact_files import read_manifest  # noqa: E402
from runtime.errors import HaiRuntimeError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FAST_CASES, SLOW_CASES = 400, 4000
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 63, 64, 128, 256, 4096, 2**31, 2**50, 2**63, 10**30, 1.5, float("nan"),
    "", "x", "U4", "object", "float64", "int8", "uint16", [], [True, 10], [1, -1], {}, {"a": 1}, [[[[1]]]],
]  # fmt: skip
RUN_MUTANTS = """
import json, sys
import numpy as np
import runtime
from runtime.errors import HaiRuntimeError

x, want = np.load(sys.argv[1]), np.load(sys.argv[2])
for directory in sys.argv[3:]:
    print(json.dumps({"start": directory}), flush=True)
    try:
        got = runtime.load(directory).run({"x": x})["y"]
        verdict = "ok" if np.allclose(got, want, rtol=1e-5, atol=1e-6) else "wrong"
        print(json.dumps({"dir": directory, "verdict": verdict}), flush=True)
    except HaiRuntimeError as exc:
        print(json.dumps({"dir": directory, "verdict": "error", "message": str(exc)}), flush=True)
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tvm")
    folder = tmp_path_factory.mktemp("pristine")
    return write_tiny_artifact(folder / "tiny.hai", build_kernels(folder / "k.so"))


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The input and the unmutated artifact's output (itself checked against numpy), saved for children."""
    x = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    y = runtime.load(pristine).run({"x": x})["y"]
    np.testing.assert_allclose(y, numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6)
    folder = tmp_path_factory.mktemp("reference")
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return folder / "x.npy", folder / "y.npy"


def clone(pristine: Path, where: Path) -> Path:
    """A copy of the artifact whose files are hard links (cheap; a mutation replaces the file it edits)."""
    where.mkdir(parents=True)
    for path in pristine.iterdir():
        os.link(path, where / path.name)
    return where


def replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


# -- mutations ------------------------------------------------------------------------------------------


def places(data: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every path into the JSON tree (dict keys and list indexes)."""
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from places(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from places(value, (*path, index))


def mutate_tree(data: dict, rng: random.Random) -> dict:
    """One change at a random place: a new value, a deletion, a duplicate, a wrapping or deep nesting."""
    data = copy.deepcopy(data)
    path = rng.choice([p for p in places(data) if p])
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    kind = rng.choice(["value", "value", "value", "delete", "wrap", "nest", "shift"])
    if kind == "delete":
        del parent[key]
    elif kind == "wrap":
        parent[key] = [old]
    elif kind == "nest":
        parent[key] = json.loads("[" * 900 + "1" + "]" * 900)
    elif kind == "shift" and type(old) is int:
        parent[key] = old + rng.choice([-64, 64, 128, -old, 4096])
    else:
        parent[key] = rng.choice(ODD_VALUES)
    return data


def mutate_text(text: str, rng: random.Random) -> str:
    """Damage the manifest's text: truncation, a flipped character, a huge number, deep nesting."""
    kind = rng.choice(["truncate", "flip", "digits", "deep"])
    if kind == "truncate":
        return text[: rng.randrange(len(text))]
    if kind == "flip":
        i = rng.randrange(len(text))
        return text[:i] + chr(ord(text[i]) ^ (1 << rng.randrange(7))) + text[i + 1 :]
    if kind == "digits":
        return text.replace('"arena_size": 512', '"arena_size": ' + "9" * 5000)
    return "[" * 200_000 + "]" * 200_000


def mutate_files(directory: Path, rng: random.Random) -> bool:
    """Damage one file of the artifact, or add one; returns True for an added file, which changes nothing."""
    files = sorted(p.name for p in directory.iterdir())
    name = rng.choice(files)
    path = directory / name
    data = path.read_bytes()
    kind = rng.choice(["truncate", "flip", "link", "extra", "delete", "directory"])
    if kind == "truncate":
        replace(path, data[: rng.randrange(len(data))])
    elif kind == "flip":
        i = rng.randrange(len(data))
        replace(path, data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    elif kind == "link":
        outside = directory.parent / f"{directory.name}-{name}"
        outside.write_bytes(data)
        path.unlink()
        path.symlink_to(outside)
    elif kind == "extra":
        (directory / rng.choice(["extra.so", ".hidden", "manifest.sig.bak"])).write_bytes(b"\x7fELF junk")
        return True
    elif kind == "delete":
        path.unlink()
    else:
        path.unlink()
        path.mkdir()
    return False


# -- the oracle -----------------------------------------------------------------------------------------


def read_verdict(directory: Path, verify: bool = True) -> str | None:
    """None when `read_manifest` accepts the artifact, else its error, which must name the artifact."""
    try:
        read_manifest(directory, verify=verify)
    except HaiRuntimeError as exc:
        message = str(exc)
        assert str(directory) in message and "\n" not in message, message
        return message
    return None


def run_accepted(directories: list[Path], reference: tuple[Path, Path]) -> None:
    """Load and run every accepted mutant in one child: each gives an error or the right result."""
    if not directories:
        return
    command = [sys.executable, "-c", RUN_MUTANTS, *map(str, reference), *map(str, directories)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=child_env())
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    started = [line["start"] for line in lines if "start" in line]
    assert done.returncode == 0, f"crash ({done.returncode}) on {started[-1:]}: {done.stderr[-2000:]}"
    wrong = [line for line in lines if line.get("verdict") == "wrong"]
    assert wrong == [], f"wrong results with no error: {wrong}"


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def fuzz(cases: int, pristine: Path, reference: tuple[Path, Path], where: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = json.loads((pristine / MANIFEST_FILE).read_text())
    text = (pristine / MANIFEST_FILE).read_text()

    def manifest_tree(d: Path) -> bool:
        replace(d / MANIFEST_FILE, json.dumps(mutate_tree(data, rng)).encode())
        return False

    def manifest_text(d: Path) -> bool:
        replace(d / MANIFEST_FILE, mutate_text(text, rng).encode())
        return False

    mutants: list[Callable[[Path], bool]] = [manifest_tree, manifest_text, lambda d: mutate_files(d, rng)]
    accepted = []
    for case in range(cases):
        directory = clone(pristine, where / f"case{case}.hai")
        harmless = rng.choice(mutants)(directory)
        if read_verdict(directory, verify=False) is None and read_verdict(directory) is None:
            accepted.append(directory)
        else:
            assert not harmless, f"case {case}: an artifact with an unlisted extra file was refused"
    run_accepted(accepted, reference)


def test_fuzz_artifacts(pristine: Path, reference: tuple[Path, Path], tmp_path: Path) -> None:
    fuzz(FAST_CASES, pristine, reference, tmp_path, seed=11)


@pytest.mark.slow
def test_fuzz_artifacts_many(pristine: Path, reference: tuple[Path, Path], tmp_path: Path) -> None:
    fuzz(SLOW_CASES, pristine, reference, tmp_path, seed=1111)


# -- the CLI and the runtime API ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["plan"].update(arena_size=2**50),
        lambda d: d["outputs"][0].update(dtype="U4"),
        lambda d: d["files"].pop("libtvm_runtime.so"),
    ],
)
def test_cli_prints_one_error_line(pristine: Path, tmp_path: Path, change: Callable[[dict], None]) -> None:
    directory = clone(pristine, tmp_path / "m.hai")
    data = json.loads((pristine / MANIFEST_FILE).read_text())
    change(data)
    replace(directory / MANIFEST_FILE, json.dumps(data).encode())
    command = [sys.executable, "-c", "from hai_compiler.cli import main; main()", "run", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT, env=child_env())
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("error:") == 1 and "Traceback" not in done.stderr, done.stderr


FEEDS: list[Any] = [
    None, [], "x", 3, {"x": None}, {"x": "x"}, {"x": [[0.0] * K] * M}, {"y": np.zeros((M, K), np.float32)},
    {"x": np.zeros((M, K), object)}, {"x": np.zeros((M, K), np.float64)}, {"x": np.zeros((K, M), np.float32)},
    {"x": np.float32(1)}, {"x": np.zeros((M, K), np.float32), "z": 1}, {1: np.zeros((M, K), np.float32)},
]  # fmt: skip


def test_runtime_api_inputs(pristine: Path, reference: tuple[Path, Path]) -> None:
    model = runtime.load(pristine)
    for feeds in FEEDS:
        with pytest.raises(HaiRuntimeError):
            model.run(feeds)
    wrong_arguments: list[dict[str, Any]] = [
        {"threads": "2"},
        {"threads": 0},
        {"threads": 1.5},
        {"verify": None},
        {"trusted_keys": "k"},
    ]
    for arguments in wrong_arguments:
        with pytest.raises(HaiRuntimeError):
            runtime.load(pristine, **arguments)
    x, want = (np.load(path) for path in reference)
    np.testing.assert_array_equal(model.run({"x": np.asfortranarray(x)})["y"], want)
