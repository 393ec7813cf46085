"""Which passes exist: the built-in ones plus third-party passes from the `hai.passes` entry points.

Rule: a pass is found by its `name` (or one of its `aliases`). A distribution
adds passes without forking HAI by declaring, in its pyproject.toml,
`[project.entry-points."hai.passes"] my-pass = "my_pkg.my_pass:MyPass"`; the
entry point must name a `Pass` subclass, and its name may not shadow another
pass. Imports only `ir` and this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from ir import HaiError
from passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from passes.eliminate_dead_code import EliminateDeadCode
from passes.eliminate_identity import EliminateIdentity
from passes.flatten_control_flow import FlattenControlFlow
from passes.fold_batchnorm import FoldBatchNorm
from passes.fold_channel_affine import FoldChannelAffine
from passes.fold_constants import FoldConstants
from passes.fold_qdq import FoldQdq
from passes.fuse import Fuse
from passes.fuse_attention import FuseAttention
from passes.infer_shapes import InferShapes
from passes.layout import Layout
from passes.manager import Pass
from passes.partition import Partition
from passes.plan_memory import PlanMemory
from passes.predicate_control_flow import PredicateControlFlow
from passes.quantize import Quantize
from passes.sink_views import SinkViews
from passes.split_weights import SplitWeights

ENTRY_POINT_GROUP = "hai.passes"

BUILTIN_PASSES: tuple[type[Pass], ...] = (
    InferShapes,
    FoldConstants,
    FlattenControlFlow,
    PredicateControlFlow,
    FoldQdq,
    EliminateDeadCode,
    EliminateIdentity,
    SinkViews,
    FoldBatchNorm,
    FoldChannelAffine,
    EliminateCommonSubexpressions,
    FuseAttention,
    Quantize,
    SplitWeights,
    Layout,
    Fuse,
    Partition,
    PlanMemory,
)


class PassRegistryError(HaiError):
    """A `hai.passes` entry point that cannot be loaded or does not name a usable pass."""


def available_passes() -> dict[str, type[Pass]]:
    """Every pass by name: the built-in ones, then those of installed distributions."""
    found: dict[str, type[Pass]] = {cls.name: cls for cls in BUILTIN_PASSES}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = _load(entry)
        if cls.name in found and found[cls.name] is not cls:
            raise PassRegistryError(
                f"{_origin(entry)} registers pass '{cls.name}', which another pass already uses; rename it"
            )
        found[cls.name] = cls
    return found


def find_pass(name: str, registry: Mapping[str, type[Pass]]) -> type[Pass] | None:
    """The pass called `name` in `registry`, by name or alias; None when there is none."""
    if name in registry:
        return registry[name]
    for cls in registry.values():
        if name in getattr(cls, "aliases", ()):
            return cls
    return None


def _load(entry) -> type[Pass]:  # noqa: ANN001  (an importlib.metadata.EntryPoint)
    try:
        obj = entry.load()
    except Exception as exc:  # a broken plugin must not hide which plugin it is
        raise PassRegistryError(f"{_origin(entry)} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Pass)):
        raise PassRegistryError(f"{_origin(entry)} names {obj!r}, which is not a passes.Pass subclass")
    if not obj.name:
        raise PassRegistryError(f"{_origin(entry)} names {obj.__name__}, which sets no pass `name`")
    return obj


def _origin(entry) -> str:  # noqa: ANN001
    dist = getattr(entry, "dist", None)
    where = f" of distribution '{dist.name}'" if dist is not None else ""
    return f"entry point '{entry.name} = {entry.value}'{where} (group {ENTRY_POINT_GROUP})"
