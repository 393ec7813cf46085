"""Lowering IR nodes to scheduled TVM PrimFuncs: the kernel contract, the registry and the dispatch.

Rule: kernel.py states the `LoweredKernel` contract, registry.py is where
templates register (`@lowering("Op", ...)`), dispatch.py lowers a node
(`lower_node`, `supported_ops`) and is the only module that imports every
template family. Templates live in one module per op family and import
kernel.py and registry.py, never this package's `__init__`, which only
re-exports the contract and the registry (without TVM): `from
targets.lowering.dispatch import lower_node` loads the templates.
"""

from targets.lowering.kernel import (
    MAX_KERNEL_ELEMENTS,
    KernelArg,
    LoweredKernel,
    LoweringError,
    PackFn,
    identity_pack,
    kernel_name,
    workload_hash,
)
from targets.lowering.registry import LowerFn, lowering

__all__ = [
    "MAX_KERNEL_ELEMENTS",
    "KernelArg",
    "LowerFn",
    "LoweredKernel",
    "LoweringError",
    "PackFn",
    "identity_pack",
    "kernel_name",
    "lowering",
    "workload_hash",
]
