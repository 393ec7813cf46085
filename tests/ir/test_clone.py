"""`clone_graph` copies a real model's graph: same `.hir` text, same results, and rewriting the copy
leaves the original untouched."""

from __future__ import annotations

import numpy as np

from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.driver import load_model_any
from ir import run_graph
from ir.clone import clone_graph
from ir.printer import print_graph


def test_clone_prints_the_same_and_is_independent() -> None:
    graph = load_model_any(EMBEDDED_MODEL, {"image": (1, 1, 8, 8)})
    graph.metadata["note"] = "kept"
    text = print_graph(graph)
    copy = clone_graph(graph)
    assert print_graph(copy) == text
    x = load_heldout_digits()[0][:1]
    np.testing.assert_array_equal(
        run_graph(copy, {"image": x})["logits"], run_graph(graph, {"image": x})["logits"]
    )
    node = next(iter(copy.nodes))
    node.annotations["precision"] = "int8"
    copy.metadata["note"] = "changed"
    assert print_graph(graph) == text
