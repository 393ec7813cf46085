"""The plan digest: a sha256 of the plan facts a kernel library was compiled for, checked once at load.

Rule: the compiler computes `plan_digest(plan, inputs, outputs)` over the plan exactly as the manifest
will hold it and compiles it into the cpu kernel library as the exported function
`hai_plan_digest(out: uint8[32])` (targets/digest_function.py), beside the kernels; `load` calls it
once, before any kernel runs, and refuses an artifact whose manifest gives another digest. So an
edit of the plan that passes runtime/manifest_checks.py (an output moved to bytes another step
writes, a slot, size or entry symbol changed) cannot run kernels whose offsets, baked into the
compiled entry, no longer match it; signed or not.

The digest covers every field of `plan` but `planned_peak_bytes` (a bound `load` checks memory
against, computed from the library's own size, never a fact of the code), and the graph inputs and
outputs (their shapes, dtypes and arena offsets): canonical JSON, sorted keys, no spaces, ASCII.
Not covered: `files`, the compiler's versions and options, the target (checked against the CPU by
`load` itself), the weights' table. Imports the standard library and `runtime` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from runtime.artifact import ExecutionPlan, Manifest, TensorBinding, to_plain
from runtime.errors import ArtifactError, KernelError
from runtime.kernel_library import KernelModule, KernelTensor, aligned_empty

PLAN_DIGEST_SYMBOL = "hai_plan_digest"
DIGEST_BYTES = 32
DIGEST_VERSION = 1  # bump when the facts covered change
NOT_IN_CODE = ("planned_peak_bytes",)


def plan_facts(
    plan: ExecutionPlan, inputs: Sequence[TensorBinding], outputs: Sequence[TensorBinding]
) -> dict:
    """The facts the digest covers (module doc) as plain JSON data."""
    facts = {k: v for k, v in to_plain(plan).items() if k not in NOT_IN_CODE}
    return {
        "version": DIGEST_VERSION,
        "plan": facts,
        "inputs": to_plain(inputs),
        "outputs": to_plain(outputs),
    }


def plan_digest(
    plan: ExecutionPlan, inputs: Sequence[TensorBinding], outputs: Sequence[TensorBinding]
) -> bytes:
    """The 32-byte sha256 of the canonical JSON of `plan_facts`."""
    text = json.dumps(plan_facts(plan, inputs, outputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).digest()


def manifest_digest(manifest: Manifest) -> bytes:
    return plan_digest(manifest.plan, manifest.inputs, manifest.outputs)


def compiled_digest(module: KernelModule, path: Path) -> bytes:
    """The digest `module` was compiled with (its `hai_plan_digest`), or an ArtifactError naming `path`."""
    if not module.implements_function(PLAN_DIGEST_SYMBOL):
        raise ArtifactError(
            f"{path} exports no {PLAN_DIGEST_SYMBOL}, so its kernels cannot be matched to the manifest's "
            f"plan: the artifact predates plan digests or was not built by HAI; recompile the model"
        )
    out = aligned_empty((DIGEST_BYTES,), "u1")
    try:
        module[PLAN_DIGEST_SYMBOL](KernelTensor(out))
    except KernelError as exc:
        raise ArtifactError(f"{path}: {PLAN_DIGEST_SYMBOL} failed ({exc}); recompile the model") from None
    return out.tobytes()


def check_plan_digest(manifest: Manifest, module: KernelModule, path: Path) -> None:
    """Refuse a manifest whose plan is not the one `module` (the cpu library at `path`) was compiled for."""
    expected, compiled = manifest_digest(manifest), compiled_digest(module, path)
    if compiled != expected:
        raise ArtifactError(
            f"the manifest's plan does not match the compiled kernels in {path} (plan digest "
            f"{expected.hex()[:16]}…, compiled for {compiled.hex()[:16]}…); the manifest was edited "
            f"after compiling: recompile the model"
        )
