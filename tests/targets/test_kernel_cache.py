"""The on-disk kernel cache: keys, atomic writes shared by processes, libraries reused across builds."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from target_helpers import OneOp

from targets.build import build_kernels, kernel_object
from targets.kernel_cache import cache_key, cached_file, write_atomically
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target


def test_key_depends_on_workload_and_target() -> None:
    base = cache_key({"op": "gemm", "m": 4}, {"kind": "llvm", "mcpu": "znver4"})
    assert base == cache_key({"m": 4, "op": "gemm"}, {"mcpu": "znver4", "kind": "llvm"})
    assert base != cache_key({"op": "gemm", "m": 5}, {"kind": "llvm", "mcpu": "znver4"})
    assert base != cache_key({"op": "gemm", "m": 4}, {"kind": "llvm", "mcpu": "x86-64-v3"})


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "entry.o"

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler crashed")

    try:
        write_atomically(target, fail)
    except RuntimeError:
        pass
    assert not target.exists() and list(tmp_path.iterdir()) == []


def _produce(args: tuple[str, str]) -> str:
    import os

    os.environ["HAI_CACHE_DIR"] = args[0]
    path, _ = cached_file(args[1], ".bin", lambda tmp: tmp.write_bytes(b"x" * 100_000))
    return path.read_bytes().hex()[:8]


def test_parallel_writers_share_one_entry(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_produce, [(str(tmp_path), "ab" * 32)] * 8)
    assert set(results) == {"78787878"}
    entries = list((tmp_path / "kernels").rglob("*"))
    assert [p.name for p in entries if p.is_file()] == ["ab" * 32 + ".bin"]


def test_second_build_hits_the_cache() -> None:
    target = resolve_target("x86")
    g = OneOp()
    node = g.op("Relu", [g.input("x", (4, 64))], "relu")
    kernel = lower_node(node, target)
    first = build_kernels([kernel, kernel], target)
    assert kernel_object(kernel, target)[1]  # already there: a hit
    assert build_kernels([kernel], target) == first
