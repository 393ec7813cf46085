"""Pipeline strings: MLIR-style options converted to each field's type, and errors with a caret."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ir import Graph
from passes import DEFAULT_PIPELINE, Pass, PassContext, PipelineError, available_passes, parse_pipeline
from passes.fold_constants import FoldConstants


@dataclasses.dataclass(frozen=True)
class Knobs(Pass):
    """A pass with one option of every supported kind."""

    name: ClassVar[str] = "knobs"
    count: int = dataclasses.field(default=1, metadata={"help": "an int"})
    ratio: float = 0.5
    enabled: bool = False
    label: str = "x"
    precision: Literal["fp16", "int8", "mixed"] = "mixed"
    sizes: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    limit: int | None = None

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return graph


REGISTRY = {**available_passes(), "knobs": Knobs}


def parse_one(text: str) -> Pass:
    (pass_,) = parse_pipeline(text, REGISTRY)
    return pass_


def test_passes_in_order_with_options() -> None:
    pipeline = parse_pipeline("fold-constants{max-size=1024},eliminate-dead-code, fold-batchnorm")
    assert [p.name for p in pipeline] == ["fold-constants", "eliminate-dead-code", "fold-batchnorm"]
    assert pipeline[0] == FoldConstants(max_size=1024)


def test_every_option_kind_converts_to_its_field_type() -> None:
    knobs = parse_one(
        'knobs{count=-3 ratio=2 enabled=true label="a b, {c}" precision=int8 sizes=[1,2,3] '
        "names=[a,\"b c\"] limit=7}"
    )
    assert knobs == Knobs(count=-3, ratio=2.0, enabled=True, label="a b, {c}", precision="int8",
                          sizes=(1, 2, 3), names=("a", "b c"), limit=7)
    assert isinstance(knobs.ratio, float)
    assert parse_one("knobs{sizes=4 limit=none label=512MB ratio=1e-3}") == Knobs(
        sizes=(4,), limit=None, label="512MB", ratio=1e-3
    )
    assert parse_one("knobs{}") == Knobs()


def test_underscore_spelling_is_accepted_for_dashed_options() -> None:
    assert parse_pipeline("fold-constants{max_size=5}") == [FoldConstants(max_size=5)]


def test_default_expands_to_the_canonical_pipeline() -> None:
    names = [p.name for p in parse_pipeline("default,eliminate-dead-code")]
    assert names == [*DEFAULT_PIPELINE, "eliminate-dead-code"]


def test_aliases_resolve() -> None:
    assert [p.name for p in parse_pipeline("cse,dce")] == [
        "eliminate-common-subexpressions", "eliminate-dead-code",
    ]


def test_empty_pipeline() -> None:
    assert parse_pipeline("  ") == []


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("fold-constants,bogus", r"unknown pass 'bogus' \(known passes: .*fold-constants.*default\)", 16),
        ("fold-constants{size=3}", r"'fold-constants' has no option 'size' \(its options: max-size\)", 16),
        ("fold-constants{max-size=big}", r"option 'max-size' of pass 'fold-constants' expects an integer, got 'big'", 16),  # noqa: E501
        ("knobs{enabled=yes}", r"expects a bool \(true or false\), got 'yes'", 7),
        ("knobs{ratio=fast}", r"expects a finite number", 7),
        ("knobs{precision=int4}", r"expects one of fp16, int8, mixed", 7),
        ("knobs{sizes=[1,x]}", r"expects a list like \[x,y\] of which each is an integer, got 'x' as element 2", 7),  # noqa: E501
        ("knobs{count=[1]}", r"expects an integer, got a list", 7),
        ("knobs{count=\"1\"}", r"expects an integer, got '1'", 7),
        ("knobs{count=1 count=2}", r"option 'count' of pass 'knobs' is given twice", 15),
        ("fold-constants{max-size=-1}", r"max-size must be 0 \(no limit\) or positive", 1),
        ("default{x=1}", r"'default' pipeline takes no options", 9),
        ("fold-constants{max-size=}", r"unexpected '}'", 25),
        ("fold-constants{max-size=1", r"ends too early", 26),
        ("fold-constants,,dce", r"unexpected ','; expected a pass name", 16),
        ("fold-constants}", r"unexpected", 15),
        ("fold constants", r"unexpected", 6),
    ],
)
def test_errors_name_the_problem_and_point_at_it(text: str, message: str, column: int) -> None:
    with pytest.raises(PipelineError, match=message) as info:
        parse_pipeline(text, REGISTRY)
    error = str(info.value)
    assert f"at column {column}:" in error
    shown, pointer = error.splitlines()[-2:]
    assert shown == f"  {text}" and pointer == "  " + " " * (column - 1) + "^"


@given(
    count=st.integers(-(10**6), 10**6),
    ratio=st.floats(allow_nan=False, allow_infinity=False, width=32),
    enabled=st.booleans(),
    label=st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=12),
    sizes=st.lists(st.integers(0, 99), max_size=4).map(tuple),
)
def test_pipeline_text_round_trips(count: int, ratio: float, enabled: bool, label: str, sizes: tuple) -> None:
    knobs = Knobs(count=count, ratio=ratio, enabled=enabled, label=label, sizes=sizes)
    assert parse_one(knobs.pipeline_text()) == knobs
