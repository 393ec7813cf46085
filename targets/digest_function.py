"""The plan digest compiled into a kernel library: `hai_plan_digest(out: uint8[32])` writes its 32 bytes.

Rule: every kernel library of an artifact links one object holding this function, compiled for the
digest of the plan the library's code was built for (runtime/plan_digest.py says what it covers and
how `load` checks it). The object is cached under a key holding the digest, and a library's cache
key is the set of its objects' keys (targets/build.py `link_library`), so a cached library never
carries another plan's digest. Same digest, same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.plan_digest import DIGEST_BYTES, PLAN_DIGEST_SYMBOL
from targets.kernel_cache import cache_key, cached_file

GENERATOR_VERSION = 1  # bump whenever this module changes the code it generates (cache keys hold it)


def digest_function(digest: bytes) -> Any:
    """The PrimFunc `hai_plan_digest(out)` storing each byte of `digest` into the uint8[32] buffer `out`."""
    from tvm import tirx

    if len(digest) != DIGEST_BYTES:
        raise ValueError(f"a plan digest has {DIGEST_BYTES} bytes, got {len(digest)}")
    out = tirx.decl_buffer((DIGEST_BYTES,), "uint8", name="digest")
    stores = [tirx.BufferStore(out, tirx.const(byte, "uint8"), [tirx.const(i, "int32")])
              for i, byte in enumerate(digest)]  # fmt: skip
    return tirx.PrimFunc([out], tirx.SeqStmt(stores)).with_attr("global_symbol", PLAN_DIGEST_SYMBOL)


def compile_digest(digest: bytes, target_json: dict, path: Path) -> None:
    import tvm

    module = tvm.IRModule({PLAN_DIGEST_SYMBOL: digest_function(digest)})
    tvm.compile(module, target=tvm.target.Target(target_json)).mod.write_to_file(str(path))


def digest_object(digest: bytes, target_json: dict) -> Path:
    """The cached object file exporting `hai_plan_digest` for `digest` (compiled now if missing)."""
    workload = {"plan_digest": digest.hex(), "generator": GENERATOR_VERSION}
    path, _ = cached_file(cache_key(workload, target_json), ".o",
                          lambda tmp: compile_digest(digest, target_json, tmp))  # fmt: skip
    return path
