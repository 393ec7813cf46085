"""The target interface: one arch <-> target map, typed facts for passes, schedule knobs chosen from the
facts (register counts never assumed), a plugin target found by entry point, per-target lowering errors
and `hai targets`."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ir import Builder, DType, Graph, TensorType
from ir.target_facts import TargetFacts
from targets.lowering import LoweringError
from targets.lowering.dispatch import lower_node, supported_ops
from targets.registry import arch_of_target, available_targets, get_target, resolve_target, target_of_arch
from targets.schedules import schedules_of

PLUGIN = '''
from targets.description import IsaFacts
from targets.x86 import X86Target


class ToyTarget(X86Target):
    """A toy RISC-V target for the registry tests (it borrows x86's tables)."""

    name = "toy"
    arches = ("riscv64",)
    triple = "riscv64-linux-gnu"

    def isa(self, features):
        return IsaFacts(vector_bytes=16, vector_registers=32)
'''


@pytest.fixture
def toy_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A distribution on sys.path registering the `toy` target under hai.targets."""
    (tmp_path / "fake_hai_target.py").write_text(PLUGIN)
    dist = tmp_path / "fake_hai_target-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-hai-target\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hai.targets]\ntoy = fake_hai_target:ToyTarget\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy"
    sys.modules.pop("fake_hai_target", None)


def test_one_arch_map_both_ways() -> None:
    assert target_of_arch("x86_64") == target_of_arch("amd64") == "x86"
    assert arch_of_target("x86") == "x86_64"
    assert target_of_arch("riscv64") is None
    assert resolve_target("x86", cpu="x86-64-v3").arch == "x86_64"


def test_a_plugin_target_brings_its_arch_and_facts(toy_target: str) -> None:
    assert toy_target in available_targets()
    assert target_of_arch("riscv64") == toy_target and arch_of_target(toy_target) == "riscv64"
    desc = get_target(toy_target).description("x86-64-v3", frozenset({"avx2"}), source="test")
    assert (desc.arch, desc.triple, desc.vector_bytes, desc.vector_registers) == (
        "riscv64", "riscv64-linux-gnu", 16, 32,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cpu", "vector_bytes", "registers"),
    [("x86-64-v2", 16, 16), ("x86-64-v3", 32, 16), ("x86-64-v4", 64, 32)],
)
def test_facts_passes_read_are_typed(cpu: str, vector_bytes: int, registers: int) -> None:
    desc = resolve_target("x86", cpu=cpu)
    facts = get_target("x86").facts(desc)
    assert isinstance(facts, TargetFacts)
    assert (facts.name, facts.arch, facts.cpu) == ("x86", "x86_64", cpu)
    assert (facts.vector_bytes, facts.vector_registers) == (vector_bytes, registers)
    assert facts.features == desc.features and facts.supports("f32") and facts.fusable_ops
    assert dataclasses.replace(facts) == facts  # plain, frozen data


@pytest.mark.parametrize("registers", [8, 16, 32])
@pytest.mark.parametrize(("m", "n"), [(4, 64), (6, 256), (8, 48), (3, 1000), (49, 512)])
def test_gemm_tiles_fit_the_registers_the_facts_give(registers: int, m: int, n: int) -> None:
    """Accumulators (mi x vectors), one weight vector per column vector and a broadcast fit the registers."""
    desc = dataclasses.replace(resolve_target("x86", cpu="x86-64-v4"), vector_registers=registers)
    knobs = schedules_of(desc).gemm(desc, m, n, None)
    assert knobs.lanes == desc.vector_bytes // 4 and knobs.nb % knobs.lanes == 0
    assert m % knobs.mi == 0
    assert knobs.vectors == 1 or knobs.mi * knobs.vectors + knobs.vectors + 1 <= registers


def test_fewer_registers_give_smaller_integer_tiles() -> None:
    wide = resolve_target("x86", cpu="x86-64-v4")
    narrow = dataclasses.replace(wide, vector_registers=16)
    table = schedules_of(wide)
    big, small = (table.integer_gemm(d, 64, 256, 1 << 20, False) for d in (wide, narrow))
    for knobs, registers in ((big, 32), (small, 16)):
        assert knobs.rows * knobs.vectors + knobs.vectors + 1 <= registers
    assert small.rows * small.vectors < big.rows * big.vectors


def test_lowering_errors_name_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    from targets.lowering.registry import LOWERINGS

    supported_ops()  # load the template families, then hide Relu's
    monkeypatch.delitem(LOWERINGS, "Relu")
    graph = Graph("g")
    x = graph.add_input("x", TensorType(DType.F32, (2,)))
    (y,) = Builder(graph).op("Relu", [x], {}, name="relu")
    assert y.producer is not None
    desc = dataclasses.replace(resolve_target("x86", cpu="x86-64-v3"), name="toy")
    with pytest.raises(LoweringError, match="node 'relu': no toy template for op Relu"):
        lower_node(y.producer, desc)


@pytest.mark.parametrize(("name", "arch"), [("x86", "x86_64"), ("arm64", "aarch64")])
def test_hai_targets_lists_cpus_and_features(name: str, arch: str) -> None:
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    result = CliRunner().invoke(app, ["targets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ({arch}"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    lines = lines[start:end]
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("--cpu")) + 1 :]
    backend = get_target(name)
    for cpu in backend.cpus():
        (row,) = [line for line in lines if line.split()[:1] == [cpu]]
        assert set(row.split()) >= set(backend.cpu_features(cpu))


def test_hai_targets_lists_the_x86_levels() -> None:
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    result = CliRunner().invoke(app, ["targets"], env={"COLUMNS": "200"})
    (v3,) = [line.split() for line in result.output.splitlines() if line.startswith("x86-64-v3 ")]
    assert "avx2" in v3 and "avx512f" not in v3


@pytest.mark.skipif(shutil.which("x86_64-linux-gnu-gcc") is None, reason="no x86_64-linux-gnu-gcc")
def test_a_description_for_another_arch_links_with_the_triples_cross_compiler() -> None:
    from targets.build import build_kernels, linker_of

    native = resolve_target("x86", cpu="x86-64-v3")
    cross = dataclasses.replace(native, triple="x86_64-linux-gnu")  # as an aarch64 host describes x86
    assert linker_of(native) is None and linker_of(cross) == "x86_64-linux-gnu-gcc"
    graph = Graph("g")
    x = graph.add_input("x", TensorType(DType.F32, (2, 8)))
    (y,) = Builder(graph).op("Relu", [x], {}, name="relu")
    assert y.producer is not None
    library = build_kernels([lower_node(y.producer, cross)], cross)
    header = library.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[16] == 3 and int.from_bytes(header[18:20], "little") == 62
