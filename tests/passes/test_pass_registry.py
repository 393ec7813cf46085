"""The registry: built-in passes plus third-party passes from `hai.passes` entry points.

The third-party distribution is faked by patching `entry_points` with real
`importlib.metadata.EntryPoint` objects that point at classes of this module.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import EntryPoint
from typing import ClassVar

import pytest

import passes.registry as registry
from ir import Graph
from passes import DEFAULT_PIPELINE, Pass, PassContext, PassRegistryError, available_passes, parse_pipeline


@dataclasses.dataclass(frozen=True)
class StampPass(Pass):
    """A third-party pass: stamps the graph's metadata."""

    name: ClassVar[str] = "stamp"
    text: str = "hello"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        graph.metadata["stamp"] = self.text
        return graph


class NotAPass:
    pass


@dataclasses.dataclass(frozen=True)
class Nameless(Pass):
    pass


@dataclasses.dataclass(frozen=True)
class Shadowing(Pass):
    name: ClassVar[str] = "fold-constants"


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, **targets: str) -> None:
    group = registry.ENTRY_POINT_GROUP
    points = [EntryPoint(name, f"{__name__}:{target}", group) for name, target in targets.items()]

    def entry_points(*, group: str) -> list[EntryPoint]:
        return points if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", entry_points)


def test_builtins_are_available_and_the_default_pipeline_uses_only_them() -> None:
    found = available_passes()
    assert set(DEFAULT_PIPELINE) <= set(found)
    assert {"infer-shapes", "fold-constants", "eliminate-dead-code", "eliminate-identity", "fold-batchnorm",
            "eliminate-common-subexpressions"} <= set(found)
    for name, cls in found.items():
        assert cls.name == name and cls.__doc__ and dataclasses.is_dataclass(cls)


def test_entry_point_pass_is_found_and_usable_in_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, stamp="StampPass")
    assert available_passes()["stamp"] is StampPass
    (stamp,) = parse_pipeline("stamp{text=bye}")
    graph = stamp.run(Graph(), PassContext())
    assert graph.metadata["stamp"] == "bye"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("NotAPass", "which is not a passes.Pass subclass"),
        ("Nameless", "sets no pass `name`"),
        ("Shadowing", "registers pass 'fold-constants', which another pass already uses"),
        ("Missing", "cannot be loaded: AttributeError"),
    ],
)
def test_bad_entry_points_name_themselves(monkeypatch: pytest.MonkeyPatch, target: str, message: str) -> None:
    fake_entry_points(monkeypatch, bad=target)
    with pytest.raises(PassRegistryError, match=message) as info:
        available_passes()
    assert f"entry point 'bad = {__name__}:{target}'" in str(info.value)
    assert "group hai.passes" in str(info.value)
