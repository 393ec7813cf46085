"""`--cpu-features`: edits of a target's ISA features, and the edits that make a cpu name match a CPU.

Rule: an edit list is `+name` / `-name` words in HAI's feature spelling
(runtime/cpu_features.py), comma separated, applied in order on top of what
the target has without them (this host, `--cpu NAME`'s LLVM table or a
hardware profile). Because the TVM target pins every HAI feature on or off
(targets/x86/llvm.py), `--cpu NAME --cpu-features EDITS` reproduces any feature
set: `edits_between` gives the edits from a name's table to a CPU's features,
which is what `hai doctor` recommends. `--cpu` with this host's own LLVM cpu
name warns where that name's table differs from the host (LLVM's names lag
behind its host detection: a Sapphire Rapids may be called `rocketlake`,
whose table has no AMX or AVX512-FP16).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from ir.errors import HaiWarning
from runtime.cpu_features import ARM_FEATURES, X86_FEATURES
from runtime.opencl_probe import OPENCL_FEATURES
from targets.description import TargetDescription, TargetError

KNOWN_FEATURES = tuple(dict.fromkeys((*X86_FEATURES, *ARM_FEATURES, *OPENCL_FEATURES)))
"""Every HAI feature name, in the fixed order edits are written in."""


class CpuFeaturesWarning(HaiWarning):
    """`--cpu NAME` names this host's CPU, but LLVM's table for NAME has other features than the host."""


def parse_edits(text: str) -> list[tuple[bool, str]]:
    """`+amx,-avx512f` as [(True, "amx"), (False, "avx512f")]; a TargetError names a malformed word."""
    edits = []
    for word in (w.strip() for w in text.split(",")):
        sign, name = word[:1], word[1:]
        if sign not in ("+", "-") or name not in KNOWN_FEATURES:
            raise TargetError(
                f"--cpu-features {text!r}: {word!r} is not +NAME or -NAME of a known feature "
                f"({', '.join(KNOWN_FEATURES)})"
            )
        edits.append((sign == "+", name))
    return edits


def apply_edits(features: Iterable[str], text: str) -> frozenset[str]:
    """`features` with the edits of `text` applied in order."""
    found = set(features)
    for add, name in parse_edits(text):
        if add:
            found.add(name)
        else:
            found.discard(name)
    return frozenset(found)


def edits_between(table: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The edits from `table` to `wanted`: `+name` per feature `wanted` adds, `-name` per one it drops."""
    have, want = set(table), set(wanted)
    return [
        ("+" if name in want else "-") + name for name in KNOWN_FEATURES if (name in want) != (name in have)
    ]


def warn_unlike_host(desc: TargetDescription, host_cpu: str, host_features: Iterable[str]) -> None:
    """A CpuFeaturesWarning when `desc` is for the host's LLVM cpu name but not the host's features."""
    if desc.cpu != host_cpu:
        return
    fix = edits_between(desc.features, host_features)
    if not fix:
        return
    lacks = ", ".join(e[1:] for e in fix if e[0] == "+")
    extra = ", ".join(e[1:] for e in fix if e[0] == "-")
    said = [
        f"lacks {lacks}, which this CPU has" if lacks else "",
        f"has {extra}, which this CPU lacks (the artifact would not run here)" if extra else "",
    ]
    warnings.warn(
        CpuFeaturesWarning(
            f"--cpu {desc.cpu} is this host's LLVM cpu name, but LLVM's feature table for it "
            f"{' and '.join(s for s in said if s)}; to compile for this host leave out --cpu, "
            f"or add --cpu-features {','.join(fix)}"
        ),
        stacklevel=3,
    )
