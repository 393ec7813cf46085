"""Fusion groups as the `fuse` pass records them in node annotations, read back and checked.

Rule: a fusion group is one kernel: an *anchor* node and the elementwise
*epilogue* nodes applied, in order, to its result. It is recorded only in node
annotations (`ir.graph.Node.annotations`, printed in `.hir` as `#{...}`):

- every node of a group carries `fusion_group = N` (an int, unique per group);
- every epilogue node also carries `fused_into = "<anchor's node name>"` (the
  anchor's result name when it has no node name), so the text says where it went.

Its nodes are contiguous in the node order, anchor first. Each epilogue node
has one result and reads at least one result of the group's earlier nodes
(usually the previous node's; SiLU's Mul reads the anchor's result and the
Sigmoid's); its other operands exist before the anchor. The results of every
node but the last (the *fused intermediates*) are read only by the group's
nodes and are no graph output. The group runs as one kernel at one step of
the schedule: the fused intermediates never exist in memory; only the last
node's result is materialised. `read_fusion` trusts none
of this and raises a `FusionError` naming the group when a later change broke it.

A group may also have *weight prologues*: DequantizeLinears of constants
(stored INT4, INT8 or FP16 weights) right before the anchor, each read only by
the anchor, as one of its weight operands (`prologue_operands`: operand 1 of a
Conv/MatMul/Gemm; W and R, operands 1 and 2, of a recurrent LSTM/GRU/RNN). Each
carries `fusion_group = N` and `weight_prologue_of = "<anchor label>"` (never
`fused_into`); the kernel reads the stored constant and dequantises it inside,
so a prologue's result is a fused intermediate too. A bf16 layer's group also
has an *activation prologue* before its weight prologue: Cast(bf16) then
Cast(f32) of the anchor's input, each read only by the next, the last only as
the anchor's operand 0 (the kernel rounds its input to bf16 itself); they carry
the same annotations. A group needs an epilogue or a prologue.
The `fuse` pass writes these annotations; the memory planner and the static plan
(targets/plan/) read them back here.
"""

from __future__ import annotations

import dataclasses

from ir.aliasing import in_place_operands, is_pointwise, is_view
from ir.errors import HaiError
from ir.graph import Graph, Node, Value
from ir.loops import is_marker
from ir.ops.registry import all_schemas

GROUP_KEY = "fusion_group"
FUSED_INTO_KEY = "fused_into"
PROLOGUE_KEY = "weight_prologue_of"
WEIGHT_OPERAND = 1  # the operand of a Conv/MatMul/Gemm anchor a weight prologue feeds
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
RECURRENT_WEIGHT_OPERANDS = (1, 2)  # W and R of a recurrent anchor


def epilogue_ops() -> tuple[str, ...]:
    """The ops whose schema says a kernel may apply them to its result (what `fuse` chains by default)."""
    return tuple(schema.name for schema in all_schemas() if schema.epilogue)


def prologue_operands(anchor: Node) -> tuple[int, ...]:
    """The operands of `anchor` a weight prologue may feed (module rule)."""
    return RECURRENT_WEIGHT_OPERANDS if anchor.op in RECURRENT_OPS else (WEIGHT_OPERAND,)


class FusionError(HaiError):
    """Fusion annotations that no longer describe a valid group (run `fuse` again)."""


FOLDED_FROM = "folded_from"
"""Annotation naming, comma-separated, the nodes a rewrite folded into this one (provenance)."""


def folded_from(node: Node) -> list[str]:
    text = node.annotations.get(FOLDED_FROM, "")
    return [name for name in str(text).split(",") if name]


def record_folded(node: Node, gone: list[Node]) -> None:
    """Note on `node` that the `gone` nodes (and what was folded into them) now live inside it."""
    names = [n for g in gone for n in (*folded_from(g), anchor_label(g))]
    names = [n for n in dict.fromkeys(folded_from(node) + names) if n != anchor_label(node)]
    if names:
        node.annotations[FOLDED_FROM] = ",".join(names)


def anchor_label(node: Node) -> str:
    """How an epilogue node's `fused_into` names its anchor: the node name, else its result's name."""
    return node.name or (node.results[0].name if node.results else node.op)


@dataclasses.dataclass(frozen=True, eq=False)
class FusionGroup:
    """One kernel: an anchor node, the elementwise nodes fused after it, in order, and the weight
    prologue (a DequantizeLinear of a stored weight) fused before it, if any."""

    id: int
    anchor: Node
    epilogue: tuple[Node, ...]
    prologue: tuple[Node, ...] = ()

    @property
    def nodes(self) -> tuple[Node, ...]:
        return (*self.prologue, self.anchor, *self.epilogue)

    @property
    def result(self) -> Value:
        """The value the kernel writes: the last node's result."""
        return self.nodes[-1].results[0]

    @property
    def intermediates(self) -> tuple[Value, ...]:
        """Results computed inside the kernel, never stored."""
        return tuple(n.results[0] for n in self.nodes[:-1])

    @property
    def sources(self) -> tuple[str, ...]:
        """The IR (and so ONNX) node names the kernel came from, in order, with the nodes that
        earlier passes folded into them (the `folded_from` annotation, e.g. a BatchNormalization)."""
        names = []
        for node in self.nodes:
            names.append(anchor_label(node))
            names += folded_from(node)
        return tuple(dict.fromkeys(names))

    def in_place_operands(self) -> list[Value]:
        """What the kernel may write its result over: a same-typed operand of a pointwise node of the
        group that no non-pointwise node of it (the anchor, which reads around each index) reads."""
        inside = set(self.intermediates)
        wide_reads = {o for n in self.nodes if not is_pointwise(n) for o in n.operands if o is not None}
        found: dict[Value, None] = {}
        for node in self.nodes:
            for operand in in_place_operands(node):
                if operand not in inside and operand not in wide_reads:
                    found[operand] = None
        return [o for o in found if o.type.same_tensor(self.result.type)]


@dataclasses.dataclass
class Fusion:
    """The graph's fusion groups, and for each node the step it runs at (a group runs at one step)."""

    groups: list[FusionGroup]
    group_of: dict[Node, FusionGroup]
    steps: dict[Node, int]

    @property
    def intermediates(self) -> set[Value]:
        return {v for g in self.groups for v in g.intermediates}

    def in_place_operands(self, node: Node) -> list[Value]:
        """What `node`'s result may be written over: its group's candidates for a group's last node."""
        group = self.group_of.get(node)
        if group is None:
            return in_place_operands(node)
        return group.in_place_operands() if node is group.nodes[-1] else []


def read_fusion(graph: Graph) -> Fusion:
    """The fusion groups that `graph`'s annotations record, checked; each group's nodes share one step."""
    order = list(graph.nodes)
    members: dict[int, list[Node]] = {}
    for node in order:
        group_id = node.annotations.get(GROUP_KEY)
        if group_id is not None:
            if not isinstance(group_id, int):
                raise FusionError(f"{node.label()}: annotation {GROUP_KEY} = {group_id!r} is not an integer")
            members.setdefault(group_id, []).append(node)
    position = {node: i for i, node in enumerate(order)}
    steps = dict(position)
    groups: list[FusionGroup] = []
    group_of: dict[Node, FusionGroup] = {}
    for group_id, nodes in members.items():
        prologue = tuple(n for n in nodes if PROLOGUE_KEY in n.annotations)
        body = [n for n in nodes if PROLOGUE_KEY not in n.annotations]
        if not body:
            raise FusionError(f"fusion group {group_id} has only weight prologue nodes; run fuse again")
        group = FusionGroup(group_id, body[0], tuple(body[1:]), prologue)
        _check_group(group, position)
        _check_prologue(group, position)
        groups.append(group)
        for node in nodes:
            group_of[node] = group
            steps[node] = position[group.anchor]
    return Fusion(groups, group_of, steps)


def _check_group(group: FusionGroup, position: dict[Node, int]) -> None:
    where = f"fusion group {group.id} (anchor {group.anchor.label()})"
    if not group.epilogue and not group.prologue:
        raise FusionError(f"{where} has no epilogue or prologue node; run fuse again")
    if group.anchor.annotations.get(FUSED_INTO_KEY) is not None:
        raise FusionError(f"{where}: its first node is marked {FUSED_INTO_KEY}, so the anchor is gone")
    start = position[group.anchor]
    inside = set(group.anchor.results) if len(group.anchor.results) == 1 else set()
    for offset, node in enumerate(group.epilogue, start=1):
        problem = None
        if position[node] != start + offset:
            problem = "is not right after the previous node of the group"
        elif len(node.results) != 1 or not inside.intersection(node.operands):
            problem = "reads no result of the group's earlier nodes"
        elif node.annotations.get(FUSED_INTO_KEY) != anchor_label(group.anchor):
            problem = f"has {FUSED_INTO_KEY} = {node.annotations.get(FUSED_INTO_KEY)!r}"
        elif is_view(node):
            problem = "is a view"
        if problem:
            raise FusionError(f"{where}: {node.label()} {problem}; the graph changed after fuse: rerun it")
        inside.add(node.results[0])
    members = set(group.nodes)
    for value in group.intermediates[len(group.prologue) :]:
        if value.is_graph_output or any(user not in members for user in value.users()):
            raise FusionError(
                f"{where}: %{value.name} is read outside the group; the graph changed after fuse: rerun it"
            )


def _check_prologue(group: FusionGroup, position: dict[Node, int]) -> None:
    """The weight prologues are right before the anchor, dequantise constants, and only a weight
    operand of the anchor (`prologue_operands`) reads each result."""
    where = f"fusion group {group.id} (anchor {group.anchor.label()})"
    for offset, node in enumerate(reversed(group.prologue), start=1):
        result = node.results[0] if len(node.results) == 1 else None
        problem = None
        if position[node] != position[group.anchor] - offset:
            problem = "is not right before the anchor"
        elif node.annotations.get(PROLOGUE_KEY) != anchor_label(group.anchor):
            problem = f"has {PROLOGUE_KEY} = {node.annotations.get(PROLOGUE_KEY)!r}"
        elif node.op == "Cast":
            problem = _cast_problem(node, group)
        elif node.op != "DequantizeLinear" or not all(o is not None and o.is_constant for o in node.operands):
            problem = "is no DequantizeLinear of a constant"
        elif result is None or result.is_graph_output or not _feeds_weight(result, group.anchor):
            problem = "has a result that something besides the anchor's weight operand reads"
        if problem:
            raise FusionError(f"{where}: weight prologue {node.label()} {problem}; rerun fuse")


ACTIVATION_OPERAND = 0
"""The operand of an anchor its activation prologue (a Cast pair) feeds."""


def _cast_problem(node: Node, group: FusionGroup) -> str | None:
    """What is wrong with Cast `node` as part of `group`'s activation prologue, or None."""
    casts = [n for n in group.prologue if n.op == "Cast"]
    index = casts.index(node)
    reader = (casts[index + 1], 0) if index + 1 < len(casts) else (group.anchor, ACTIVATION_OPERAND)
    result = node.results[0] if len(node.results) == 1 else None
    if result is None or result.is_graph_output or result.uses() != [reader]:
        return "has a result that something besides the next prologue node or the anchor's input reads"
    return None


def _feeds_weight(result: Value, anchor: Node) -> bool:
    uses = result.uses()
    return len(uses) == 1 and uses[0][0] is anchor and uses[0][1] in prologue_operands(anchor)


def kernels(graph: Graph) -> list[FusionGroup]:
    """Every kernel in execution order: each fusion group, and each other node that is no view
    and no loop span's end (ir/loops.py: the runtime does their work) (a group of its own, id -1,
    no epilogue). What a driver lowers with `lower_node(anchor, target,
    epilogue)`, and what a report lists with the node names each kernel came from (`sources`)."""
    fusion = read_fusion(graph)
    found: list[FusionGroup] = []
    for node in graph.nodes:
        group = fusion.group_of.get(node)
        if group is not None:
            if node is group.anchor:
                found.append(group)
        elif not is_view(node) and not is_marker(node):
            found.append(FusionGroup(-1, node, ()))
    return found
