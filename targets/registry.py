"""HAI, compile-time half: the interface a target module implements, and how targets are found.

A target module answers three questions for its device family: which machine
(`describe`: host, `--cpu`, or a `hai doctor` hardware profile -> TargetDescription),
how TVM names it (`tvm_target`: the JSON dict), and how kernels become a loadable
library (`build`: defaults to LLVM + `export_library` through the kernel cache).
Lowering of IR ops is shared by the CPU targets (targets/lowering/). Targets are
found by name: built-ins first (`x86`), then entry points of group `hai.targets`
whose value is a `TargetBackend` subclass; a broken entry point is reported when
it is asked for, never while listing the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.plugins import load_plugin, plugin_sources
from targets.target import TargetDescription, TargetError

if TYPE_CHECKING:
    from targets.lowering.kernel import LoweredKernel

ENTRY_POINT_GROUP = "hai.targets"
BUILTIN_TARGETS: dict[str, str] = {"x86": "targets.x86:X86Target"}


class TargetBackend(ABC):
    """The compile-time half of HAI for one device family (codegen target + compile)."""

    name: ClassVar[str]

    @abstractmethod
    def describe(
        self, cpu: str | None = None, profile: dict[str, Any] | None = None, cpu_features: str | None = None
    ) -> TargetDescription:
        """The description to compile for: this host, `--cpu NAME`, or a profile's `recommended` object,
        with `--cpu-features` edits (targets/feature_edits.py) applied."""

    @abstractmethod
    def tvm_target(self, desc: TargetDescription) -> dict[str, Any]:
        """The TVM target JSON dict for `desc`."""

    def build(self, kernels: Sequence[LoweredKernel], desc: TargetDescription) -> Path:
        """Compile `kernels` into one shared library (cached on disk); its path."""
        from targets.build import build_kernels

        return build_kernels(kernels, desc)


def target_sources() -> dict[str, str]:
    """Target name -> `module:attribute`: built-ins, then `hai.targets` entry points."""
    return plugin_sources(ENTRY_POINT_GROUP, BUILTIN_TARGETS)


def available_targets() -> list[str]:
    return sorted(target_sources())


def get_target(name: str) -> TargetBackend:
    """A target backend object for `name`, loading its module on demand."""
    sources = BUILTIN_TARGETS if name in BUILTIN_TARGETS else target_sources()
    return load_plugin("target", name, sources, TargetBackend, TargetError, TargetError)()


def resolve_target(
    name: str = "x86",
    *,
    cpu: str | None = None,
    profile: dict[str, Any] | None = None,
    cpu_features: str | None = None,
) -> TargetDescription:
    """The description for `--target NAME [--cpu CPU] [--cpu-features EDITS]` or a profile's `recommended`."""
    if cpu_features is None:  # plugins written before --cpu-features keep working
        return get_target(name).describe(cpu=cpu, profile=profile)
    return get_target(name).describe(cpu=cpu, profile=profile, cpu_features=cpu_features)
