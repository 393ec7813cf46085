"""Models compiled for arm64 here and run under qemu-user: compile, one qemu process for many artifacts.

Rule: qemu and numpy take ~2-3 s to start in the emulated Python, so `run_under_qemu`
runs every artifact of a list in ONE process: each job's inputs go in as an `.npz`, its
outputs come back as one. References come from onnxruntime on the host. Emulated
timings mean nothing, so nothing here measures speed; what a kernel is made of is read
from its disassembly (`instruction_counts`, aarch64 objdump).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hai_compiler.arm64_env import Arm64Env
from hai_compiler.compiler import CompileOptions, compile_model

OBJDUMP = "aarch64-linux-gnu-objdump"
RUN_MANY = """
import json, sys
import numpy as np
from runtime import load
for artifact, inputs, outputs in json.loads(sys.argv[1]):
    with np.load(inputs) as data:
        feed = {name: data[name] for name in data.files}
    np.savez(outputs, **load(artifact).run(feed))
"""


def compile_arm64(
    model: str | Path, output: Path, cpu: str, input_shapes: Mapping[str, Sequence[int]]
) -> Path:
    """`hai compile MODEL --target arm64 --cpu CPU --input-shape ...` into `output`; its path."""
    options = CompileOptions(target="arm64", cpu=cpu, input_shapes=dict(input_shapes))
    return compile_model(model, output, options).path


def run_under_qemu(
    env: Arm64Env, cpu: str, jobs: Sequence[tuple[Path, Mapping[str, np.ndarray]]], folder: Path
) -> list[dict[str, np.ndarray]]:
    """The outputs of each (artifact, inputs) of `jobs`, run by one `qemu-aarch64 -cpu CPU` Python."""
    plan = []
    for index, (artifact, inputs) in enumerate(jobs):
        arrays: dict[str, Any] = dict(inputs)
        np.savez(folder / f"in{index}.npz", **arrays)
        plan.append([str(artifact), str(folder / f"in{index}.npz"), str(folder / f"out{index}.npz")])
    done = env.run(RUN_MANY, json.dumps(plan), cpu=cpu)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    results = []
    for _, _, outputs in plan:
        with np.load(outputs) as data:
            results.append({name: data[name] for name in data.files})
    return results


def instruction_counts(library: Path, pattern: str) -> dict[str, int]:
    """Kernel symbol -> how many instructions matching the regex `pattern` its code holds (aarch64
    objdump; the test is skipped where Debian's binutils-aarch64-linux-gnu is not installed)."""
    if shutil.which(OBJDUMP) is None:
        pytest.skip(f"{OBJDUMP} is not installed (Debian binutils-aarch64-linux-gnu)")
    listing = subprocess.run([OBJDUMP, "-d", str(library)], capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    symbol = ""
    for line in listing.splitlines():
        if found := re.match(r"^[0-9a-f]+ <(.+)>:$", line):
            symbol = found.group(1)
        elif re.search(pattern, line):
            counts[symbol] = counts.get(symbol, 0) + 1
    return counts
