"""The plan digest: a sha256 of the facts a kernel library was compiled for, checked once at load.

Rule: the compiler computes `plan_digest(target, plan, inputs, outputs, weights, weights_size)` over
those facts exactly as the manifest will hold them and compiles it into each kernel library as the
exported function `hai_plan_digest(out: uint8[32])` (targets/digest_function.py), beside the
kernels; `load` launches it once through the library's device driver (runtime/hai.py), before any
kernel runs, and refuses an artifact whose manifest gives another digest. So an edit of the plan
that passes runtime/manifest_checks.py (an output moved to bytes another step writes, a slot, size
or entry symbol changed) cannot run kernels whose offsets, baked into the compiled entry, no longer
match it; nor can a target whose features were edited away pass `load`'s CPU check on a CPU the code
would stop on (SIGILL); signed or not.

The digest covers everything the compiled code or `load`'s CPU check depends on: the target (name,
arch, cpu, features), every field of `plan` (so also the device and executable of every step, the
entry and the segments) but `planned_peak_bytes` and `device_memory` (bounds `load` checks memory
against, computed from the library's own contents, never facts of the code), the graph inputs and
outputs (their shapes, dtypes and arena offsets), and the weights' table and `weights_size`:
canonical JSON, sorted keys, no spaces, ASCII. Not covered: `files` (each file's own hash covers
it), the model's name, the compiler's versions and options. `load` checks the CPU before it loads
the library, so a target the CPU lacks is refused by name before the digest is read; the digest
then refuses a target that is not the one compiled for. Imports the standard library and `runtime` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from runtime.artifact import ExecutionPlan, Manifest, TargetInfo, TensorBinding, WeightEntry, to_plain
from runtime.errors import ArtifactError, KernelError
from runtime.hai import Device, Executable
from runtime.kernel_library import aligned_empty

PLAN_DIGEST_SYMBOL = "hai_plan_digest"
DIGEST_BYTES = 32
DIGEST_VERSION = 3  # bump when the facts covered change
NOT_IN_CODE = ("planned_peak_bytes", "device_memory")


def plan_facts(
    target: TargetInfo,
    plan: ExecutionPlan,
    inputs: Sequence[TensorBinding],
    outputs: Sequence[TensorBinding],
    weights: Sequence[WeightEntry],
    weights_size: int,
) -> dict:
    """The facts the digest covers (module doc) as plain JSON data."""
    facts = {k: v for k, v in to_plain(plan).items() if k not in NOT_IN_CODE}
    return {
        "version": DIGEST_VERSION,
        "target": to_plain(target),
        "plan": facts,
        "inputs": to_plain(inputs),
        "outputs": to_plain(outputs),
        "weights": to_plain(weights),
        "weights_size": weights_size,
    }


def plan_digest(
    target: TargetInfo,
    plan: ExecutionPlan,
    inputs: Sequence[TensorBinding],
    outputs: Sequence[TensorBinding],
    weights: Sequence[WeightEntry],
    weights_size: int,
) -> bytes:
    """The 32-byte sha256 of the canonical JSON of `plan_facts`."""
    facts = plan_facts(target, plan, inputs, outputs, weights, weights_size)
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).digest()


def manifest_digest(manifest: Manifest) -> bytes:
    m = manifest
    return plan_digest(m.target, m.plan, m.inputs, m.outputs, m.weights, m.weights_size)


def compiled_digest(device: Device, executable: Executable) -> bytes:
    """The digest `executable` (loaded on `device`) was compiled with: one launch of its
    `hai_plan_digest`, or an ArtifactError naming the file."""
    out = aligned_empty((DIGEST_BYTES,), "u1")
    try:
        device.launch(executable, PLAN_DIGEST_SYMBOL, [out])
        device.synchronize()
    except KernelError as exc:
        raise ArtifactError(
            f"cannot read the plan digest the kernels were compiled for ({exc}), so they cannot be matched "
            f"to the manifest's plan: the artifact predates plan digests or was not built by HAI; "
            f"recompile the model"
        ) from None
    return out.tobytes()


def check_plan_digest(manifest: Manifest, device: Device, executable: Executable) -> None:
    """Refuse a manifest whose plan, target or weights' table is not the one `executable` (a kernel
    library loaded on `device`) was compiled for."""
    expected, compiled = manifest_digest(manifest), compiled_digest(device, executable)
    if compiled != expected:
        raise ArtifactError(
            f"the manifest's plan, target or weights' table does not match the compiled kernels in "
            f"{executable.path} (plan digest {expected.hex()[:16]}…, compiled for {compiled.hex()[:16]}…); "
            f"the manifest was edited after compiling: recompile the model"
        )
