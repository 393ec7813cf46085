"""The graph IR: `Value`, `Node`, `Graph`, with use-def links kept by the IR.

Rule: every mutation goes through these classes (`Node.set_operand`,
`Graph.replace_value`, `Graph.remove_node`, ...), which keep each value's
producer and use list exact, so passes never repair links by hand. Nodes live
in an ordered linked list that stays safe to iterate while nodes are inserted
or removed. Constants (weights) are values owned by the graph, outside the node
list. A node may own regions (`Node.regions`: the branches of an `If`, the body
of a `Loop` or `Scan`), each a `Graph` whose `parent` is that node; a region's
nodes may read values of the graphs around it (captures), and those values' use
lists name the inner nodes, so a rewrite of an outer value reaches them. Value
names are unique within a graph and the graphs around it (no shadowing). This
module imports numpy and other `ir` modules only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.types import TensorType


class ElidedConstant:
    """A constant whose bytes were not loaded (a `.hir` read without its weights file).

    It keeps the content hash so the text still round-trips; anything that needs
    the data (the interpreter, folding) gets a clear error instead.
    """

    __slots__ = ("sha256",)

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256

    def __repr__(self) -> str:
        return f"ElidedConstant({self.sha256[:12]}…)"


def content_sha256(array: np.ndarray) -> str:
    """The hex sha256 of a tensor's bytes in C order (dtype and shape are printed apart)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class Value:
    """A tensor in SSA form: produced once (by a node, or as input or constant), used many times."""

    __slots__ = ("_name", "type", "producer", "index", "_uses", "const", "graph", "_sha256")

    def __init__(self, name: str, type: TensorType) -> None:
        self._name = name
        self.type = type
        self.producer: Node | None = None
        self.index = 0
        self._uses: dict[tuple[Node, int], None] = {}
        self.const: np.ndarray | ElidedConstant | None = None
        self.graph: Graph | None = None
        self._sha256: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_constant(self) -> bool:
        return self.const is not None

    @property
    def is_graph_input(self) -> bool:
        return self.graph is not None and self.producer is None and self.const is None

    @property
    def is_graph_output(self) -> bool:
        return self.graph is not None and any(v is self for v in self.graph.outputs)

    def uses(self) -> list[tuple[Node, int]]:
        """The (node, operand index) pairs that read this value, in insertion order."""
        return list(self._uses)

    def users(self) -> list[Node]:
        """The distinct nodes that read this value."""
        return list(dict.fromkeys(node for node, _ in self._uses))

    def constant_array(self) -> np.ndarray:
        """The constant's data; a clear error if the value is not a loaded constant."""
        if isinstance(self.const, np.ndarray):
            return self.const
        if isinstance(self.const, ElidedConstant):
            raise IRError(
                f"constant %{self.name} (sha256 {self.const.sha256[:16]}…) has no data: its .hir was "
                "written without a weights file; write it again with its weights beside it "
                "(`hai ir MODEL -o OUT.hir` writes OUT.weights.npz; "
                "in Python write_hir(..., save_weights=True))"
            )
        raise IRError(f"value %{self.name} is not a constant")

    @property
    def sha256(self) -> str:
        """Content hash of a constant's data (cached; constants are immutable)."""
        if isinstance(self.const, ElidedConstant):
            return self.const.sha256
        if self._sha256 is None:
            self._sha256 = content_sha256(self.constant_array())
        return self._sha256

    def replace_all_uses_with(self, other: Value) -> None:
        """Point every node operand that reads this value at `other` (graph outputs untouched)."""
        for node, index in self.uses():
            node.set_operand(index, other)

    def __repr__(self) -> str:
        return f"%{self._name}: {self.type}"


class Node:
    """One op application: operands (values or None for absent optional ones), attributes, results.

    `annotations` are discardable facts about the node that are not op attributes
    (like MLIR's discardable attributes): string or int values, e.g. the fusion
    group a pass put the node in. The IR keeps and prints them but never copies
    them implicitly: a node a pass builds to replace another starts with none.
    """

    __slots__ = (
        "op",
        "name",
        "attrs",
        "annotations",
        "_operands",
        "results",
        "graph",
        "_prev",
        "_next",
        "_erased",
        "regions",
    )

    def __init__(
        self,
        op: str,
        operands: Sequence[Value | None],
        attrs: Mapping[str, Any],
        result_types: Sequence[TensorType],
        result_names: Sequence[str],
        name: str = "",
    ) -> None:
        self.op = op
        self.name = name
        self.attrs: dict[str, Any] = dict(attrs)
        self.annotations: dict[str, str | int] = {}
        self._operands: list[Value | None] = []
        self.results: list[Value] = []
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        self._erased = False
        self.regions: tuple[Graph, ...] = ()
        for operand in operands:
            self._operands.append(operand)
            if operand is not None:
                operand._uses[(self, len(self._operands) - 1)] = None
        for index, (rname, rtype) in enumerate(zip(result_names, result_types, strict=True)):
            value = Value(rname, rtype)
            value.producer = self
            value.index = index
            self.results.append(value)

    @property
    def operands(self) -> tuple[Value | None, ...]:
        return tuple(self._operands)

    def set_operand(self, index: int, value: Value | None) -> None:
        old = self._operands[index]
        if old is not None:
            del old._uses[(self, index)]
        self._operands[index] = value
        if value is not None:
            value._uses[(self, index)] = None

    def set_regions(self, regions: Sequence[Graph]) -> None:
        """Make `regions` this node's regions (in the order its op names them)."""
        self.regions = tuple(regions)
        for region in self.regions:
            region.parent = self

    def detach_operands(self) -> None:
        """Drop this node's uses of its operands, and those of the nodes in its regions (done when a
        node is removed)."""
        for index in range(len(self._operands)):
            self.set_operand(index, None)
        for region in self.regions:
            for inner in region.nodes:
                inner.detach_operands()

    def captures(self) -> list[Value]:
        """The values of enclosing graphs that the nodes of this node's regions read, in first-use order."""
        walked = [pair for region in self.regions for pair in region.walk()]
        inside = {id(region) for region in self.regions} | {id(graph) for graph, _ in walked}
        found: dict[Value, None] = {}
        for _, node in walked:
            for operand in node.operands:
                if operand is not None and id(operand.graph) not in inside:
                    found[operand] = None
        return list(found)

    def label(self) -> str:
        """How errors name this node: its op and its name (or its first result)."""
        ident = self.name or (self.results[0].name if self.results else "?")
        return f"{self.op} node '{ident}'"

    def __repr__(self) -> str:
        return f"<{self.label()}>"


class NodeList:
    """Ordered nodes in a doubly linked list; iteration survives insertion and removal."""

    def __init__(self) -> None:
        self._head: Node | None = None
        self._tail: Node | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def last(self) -> Node | None:
        return self._tail

    def after(self, anchor: Node | None) -> list[Node]:
        """The live nodes after `anchor` (all nodes when None), as a list."""
        node = self._head if anchor is None else anchor._next
        out = []
        while node is not None:
            if not node._erased:
                out.append(node)
            node = node._next
        return out

    def previous(self, node: Node) -> Node | None:
        """The live node before `node` (None when it is the first)."""
        return node._prev

    def __iter__(self) -> Iterator[Node]:
        node = self._head
        while node is not None:
            if not node._erased:
                yield node
            node = node._next
            while node is not None and node._erased:
                node = node._next

    def __reversed__(self) -> Iterator[Node]:
        node = self._tail
        while node is not None:
            if not node._erased:
                yield node
            node = node._prev

    def insert_after(self, anchor: Node | None, node: Node) -> None:
        """Insert `node` after `anchor` (at the front when anchor is None)."""
        nxt = self._head if anchor is None else anchor._next
        node._prev, node._next, node._erased = anchor, nxt, False
        if anchor is None:
            self._head = node
        else:
            anchor._next = node
        if nxt is None:
            self._tail = node
        else:
            nxt._prev = node
        self._count += 1

    def insert_before(self, anchor: Node | None, node: Node) -> None:
        """Insert `node` before `anchor` (at the end when anchor is None)."""
        self.insert_after(self._tail if anchor is None else anchor._prev, node)

    def unlink(self, node: Node) -> None:
        prev, nxt = node._prev, node._next
        if prev is None:
            self._head = nxt
        else:
            prev._next = nxt
        if nxt is None:
            self._tail = prev
        else:
            nxt._prev = prev
        node._erased = True  # keeps _next so a running iterator can step past it
        node._prev = None
        self._count -= 1


class Graph:
    """A model: inputs, constants, ordered nodes and outputs, with unique value names."""

    def __init__(self, name: str = "main", enclosing: Graph | None = None) -> None:
        """`enclosing`: the graph a region being built will sit in (its names stay unique there)."""
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.constants: dict[str, Value] = {}
        self.nodes = NodeList()
        self.metadata: dict[str, str] = {}
        self.parent: Node | None = None  # the node whose region this graph is (None: the model)
        self._outer = enclosing
        self._values: dict[str, Value] = {}

    # -- names ---------------------------------------------------------------
    @property
    def enclosing(self) -> Graph | None:
        """The graph whose node owns this region (None for a model's graph)."""
        return self.parent.graph if self.parent is not None else self._outer

    def in_scope(self, name: str) -> bool:
        """Whether `name` names a value of this graph or of a graph around it."""
        graph: Graph | None = self
        while graph is not None:
            if name in graph._values:
                return True
            graph = graph.enclosing
        return False

    def unique_name(self, base: str) -> str:
        base = base or "v"
        if not self.in_scope(base):
            return base
        n = 1
        while self.in_scope(f"{base}_{n}"):
            n += 1
        return f"{base}_{n}"

    def value(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise IRError(f"graph '{self.name}' has no value named %{name}") from None

    def has_value(self, name: str) -> bool:
        return name in self._values

    def rename(self, value: Value, new_name: str) -> None:
        if new_name == value.name:
            return
        if self.in_scope(new_name):
            raise IRError(f"cannot rename %{value.name}: %{new_name} already exists")
        del self._values[value.name]
        if value.is_constant:
            self._rename_constant(value.name, new_name)
        value._name = new_name
        self._values[new_name] = value

    def _rename_constant(self, old: str, new: str) -> None:
        """Rename a key of `constants`, keeping its place; the newest one (a folded result) costs O(1)."""
        if next(reversed(self.constants)) == old:
            self.constants[new] = self.constants.pop(old)
        else:
            self.constants = {(new if k == old else k): v for k, v in self.constants.items()}

    def _own(self, value: Value) -> Value:
        if value.name in self._values:
            raise IRError(f"value %{value.name} is defined twice")
        value.graph = self
        self._values[value.name] = value
        return value

    # -- definitions ---------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        value = self._own(Value(name, type))
        self.inputs.append(value)
        return value

    def add_constant(
        self, name: str, data: np.ndarray | ElidedConstant, type: TensorType | None = None
    ) -> Value:
        """Add a named constant; its type defaults to the array's dtype and shape."""
        if type is None:
            if not isinstance(data, np.ndarray):
                raise IRError(f"constant %{name} needs a type when its data is elided")
            try:
                dtype = DType.from_numpy(data.dtype)
            except ValueError as exc:
                raise IRError(f"constant %{name}: {exc}") from None
            type = TensorType(dtype, tuple(int(d) for d in data.shape))
        value = Value(self.unique_name(name), type)
        value.const = data
        self._own(value)
        self.constants[value.name] = value
        return value

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    def insert_node(self, node: Node, *, before: Node | None = None) -> Node:
        """Insert a built node before `before` (at the end when None) and own its results."""
        for result in node.results:
            self._own(result)
        node.graph = self
        self.nodes.insert_before(before, node)
        return node

    # -- removal and rewiring ----------------------------------------------
    def remove_node(self, node: Node) -> None:
        """Remove a node whose results are no longer used (by nodes or graph outputs)."""
        for result in node.results:
            if result._uses or result.is_graph_output:
                users = ", ".join(u.label() for u in result.users()) or "a graph output"
                raise IRError(f"cannot remove {node.label()}: %{result.name} is used by {users}")
        node.detach_operands()
        self.nodes.unlink(node)
        for result in node.results:
            del self._values[result.name]
            result.graph = None
        node.graph = None

    def remove_constant(self, value: Value) -> None:
        if value._uses or value.is_graph_output:
            raise IRError(f"cannot remove constant %{value.name}: it is still used")
        del self.constants[value.name]
        del self._values[value.name]
        value.graph = None

    def replace_value(self, old: Value, new: Value) -> None:
        """Make every reader of `old` (nodes and graph outputs) read `new` instead.

        A graph output keeps its user-visible name: when `new` is a node result
        that is not itself an output, it takes over the name of `old`.
        """
        old.replace_all_uses_with(new)
        if not old.is_graph_output:
            return
        if new.producer is not None and not new.is_graph_output:
            old_name = old.name
            self.rename(old, self.unique_name(old_name + ".replaced"))
            self.rename(new, old_name)
        self.outputs = [new if v is old else v for v in self.outputs]

    # -- queries -----------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants.values()
        for node in self.nodes:
            yield from node.results

    def walk(self) -> Iterator[tuple[Graph, Node]]:
        """Every node of this graph and of its nodes' regions (depth first, each after its owner),
        with the graph it is in."""
        for node in self.nodes:
            yield self, node
            for region in node.regions:
                yield from region.walk()

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.nodes)} nodes, {len(self.constants)} constants>"
