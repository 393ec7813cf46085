"""The compile-time half of HAI: target descriptions, lowering of IR ops to TVM, kernel libraries.

Entry points for the driver: `resolve_target(name, cpu=..., profile=...)` gives a
`TargetDescription`; `lower_node(node, desc)` turns one IR node (plus fused
epilogue nodes) into a scheduled `LoweredKernel`; `build_kernels(kernels, desc)`
compiles them into one shared library through the on-disk kernel cache. This
package may import `ir` and `runtime`, never `hai_compiler` or `passes`.
"""

from targets.registry import TargetBackend, available_targets, get_target, resolve_target
from targets.target import TargetDescription, TargetError

__all__ = [
    "TargetBackend",
    "TargetDescription",
    "TargetError",
    "available_targets",
    "get_target",
    "resolve_target",
]
