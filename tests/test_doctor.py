"""`hai doctor`: a real scan of this machine matches docs/hardware_profile.schema.json (with
`jsonschema` when installed, else a small validator of the keywords the schema uses), facts agree
with the operating system, and the profile reads back for `hai compile --hardware-profile`."""

from __future__ import annotations

import io
import json
import os
import platform
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hai_compiler import doctor

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs/hardware_profile.schema.json").read_text())
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Violations of the JSON Schema keywords our schema uses: type, const, enum, minimum,
    exclusiveMinimum, oneOf, required, properties, additionalProperties, items."""
    errors = []
    if "oneOf" in schema:
        matching = [sub for sub in schema["oneOf"] if not schema_errors(value, sub, where)]
        if len(matching) != 1:
            return [f"{where}: {value!r} matches {len(matching)} of oneOf, not exactly one"]
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        is_bool = isinstance(value, bool)
        if not any(isinstance(value, JSON_TYPES[n]) and (n in ("boolean",) or not is_bool) for n in names):
            return [f"{where}: {value!r} is not of type {names}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value!r} < {schema['minimum']}")
    bound = schema.get("exclusiveMinimum")
    if bound is not None and isinstance(value, int | float) and value <= bound:
        errors.append(f"{where}: {value!r} <= {schema['exclusiveMinimum']}")
    if isinstance(value, dict):
        errors += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{where}.{key}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key in value.keys() - schema.get("properties", {}).keys():
                errors += schema_errors(value[key], schema["additionalProperties"], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def validate(profile: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:
        assert schema_errors(profile, SCHEMA) == []
    else:
        jsonschema.validate(profile, SCHEMA)


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    return doctor.scan()


def test_real_scan_matches_the_schema(profile: dict[str, Any]) -> None:
    validate(profile)


def test_validator_catches_bad_profiles(profile: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(profile))
    del broken["cpu"]["features"]
    broken["cpu"]["threads"] = "two"
    broken["opencl"]["platforms"] = [
        {"name": "x", "vendor": "y", "version": "z", "devices": [{"type": "GPU"}]}
    ]
    errors = schema_errors(broken, SCHEMA)
    assert "$.cpu: missing 'features'" in errors
    assert any(e.startswith("$.cpu.threads") for e in errors)
    assert any(e.startswith("$.opencl.platforms[0].devices[0]: missing") for e in errors)


def test_scan_agrees_with_the_operating_system(profile: dict[str, Any]) -> None:
    assert profile["cpu"]["threads"] == os.cpu_count()
    assert profile["memory"]["total_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert profile["host"]["machine"] == platform.machine()
    assert profile["devices"][0]["kind"] == "cpu"


def test_recommended_target_is_the_llvm_host_cpu(profile: dict[str, Any]) -> None:
    rec = profile["recommended"]
    assert rec["features"] == profile["cpu"]["features"]
    if platform.machine() == "x86_64":
        assert rec["target"] == "x86"
    try:
        from tvm.target import codegen
    except ImportError:
        assert profile["cpu"]["llvm_cpu"] is None and rec["cpu"] == profile["cpu"]["isa_level"]
    else:
        assert rec["cpu"] == profile["cpu"]["llvm_cpu"] == codegen.llvm_get_system_cpu()
        if rec["target"] == "x86":  # the recommended flags give this host's features, whatever LLVM calls it
            assert compiled_features(rec) == set(profile["cpu"]["features"])


def test_opencl_absent_is_reported_not_raised(
    profile: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyopencl", None)  # makes `import pyopencl` fail
    section = doctor.scan()["opencl"]
    assert section["available"] is False and "pyopencl" in section["reason"] and section["platforms"] == []


def fake_cl_device(name: str, type_bits: int, extensions: str, **facts: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        **facts,
        name=name,
        type=type_bits,
        vendor="Vendor",
        version="OpenCL 3.0",
        driver_version="1.0",
        max_compute_units=132,
        max_clock_frequency=1980,
        global_mem_size=80 << 30,
        local_mem_size=48 << 10,
        max_mem_alloc_size=20 << 30,
        max_work_group_size=1024,
        host_unified_memory=False,
        extensions=extensions,
    )


def test_opencl_devices_through_pyopencl(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = {"mem_base_addr_align": 4096, "warp_size_nv": 32, "preferred_vector_width_float": 1}
    gpu = fake_cl_device("NVIDIA H100", 1 << 2, "cl_khr_fp64 cl_khr_fp16 cl_khr_subgroups", **facts)
    cpu = fake_cl_device("pthread-znver4", 1 << 1 | 1 << 0, "cl_khr_fp64")
    platforms = [
        types.SimpleNamespace(
            name="NVIDIA CUDA", vendor="NVIDIA", version="OpenCL 3.0", get_devices=lambda: [gpu]
        ),
        types.SimpleNamespace(
            name="Portable Computing Language", vendor="PoCL", version="OpenCL 3.0", get_devices=lambda: [cpu]
        ),
    ]
    monkeypatch.setitem(sys.modules, "pyopencl", types.SimpleNamespace(get_platforms=lambda: platforms))
    profile = doctor.scan()
    validate(profile)
    section = profile["opencl"]
    assert section["available"] is True
    (h100,), (pocl,) = (p["devices"] for p in section["platforms"])
    assert (h100["type"], h100["fp16"], h100["fp64"], h100["compute_units"]) == ("GPU", True, True, 132)
    assert (pocl["type"], pocl["fp16"]) == ("CPU", False)
    assert (h100["base_align_bits"], h100["sub_group_size"], pocl["base_align_bits"]) == (4096, 32, 0)
    opencl = doctor.profile_compile_target(profile, "opencl")  # the GPU before PoCL's CPU device
    assert (opencl["target"], opencl["cpu"], opencl["features"]) == ("opencl", "NVIDIA H100", ["fp16"])
    from targets.registry import resolve_target

    desc = resolve_target("opencl", profile=opencl)
    assert (desc.cpu, desc.buffer_alignment, desc.source) == ("NVIDIA H100", 512, "hardware profile")
    console = Console(record=True, width=140)
    doctor.render_table(profile, console)
    assert "NVIDIA H100" in console.export_text()


def test_write_json_reads_back(profile: dict[str, Any], tmp_path: Path) -> None:
    stream = io.StringIO()
    doctor.write_json(profile, stream)
    assert stream.getvalue().endswith("}\n") and json.loads(stream.getvalue()) == profile
    path = tmp_path / "hardware_profile.json"
    path.write_text(stream.getvalue())
    target = doctor.profile_compile_target(doctor.read_profile(path))
    assert target == {k: profile["recommended"][k] for k in ("target", "cpu", "features")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot read it as JSON"),
        ('{"schema_version": 99}', "expected schema_version 1"),
        ('{"schema_version": 1, "recommended": {"target": null}}', "no recommended target"),
    ],
)
def test_bad_profiles_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(doctor.HardwareProfileError, match=message):
        doctor.read_profile(path)
    with pytest.raises(doctor.HardwareProfileError, match="does not exist|cannot read"):
        doctor.read_profile(tmp_path / "missing.json")


def test_table_shows_the_machine(profile: dict[str, Any]) -> None:
    console = Console(record=True, width=140)
    doctor.render_table(profile, console)
    text = console.export_text()
    assert profile["cpu"]["model"] in text and "Caches" in text
    rec = profile["recommended"]
    assert f"--target {rec['target']} --cpu {rec['cpu']}" in text


def test_arm_host_from_a_fake_root(tmp_path: Path) -> None:
    block = "processor\t: {n}\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: 0x41\n"
    block += "CPU part\t: 0xd0b\n\n"
    cpuinfo = "".join(block.format(n=n) for n in range(4))
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    profile = doctor.scan(str(tmp_path))
    validate(profile)
    assert profile["recommended"]["target"] == "arm64"
    if platform.machine() != "aarch64":
        assert profile["recommended"]["cpu"] == "cortex-a76"
        assert profile["cpu"]["llvm_cpu_source"].startswith("Arm part number")


# -- the recommendation reproduces the CPU's features (recorded /proc/cpuinfo, tests/data/cpuinfo) -----

RECORDED = Path(__file__).resolve().parent / "data/cpuinfo"
AMX_ON = ["+amx", "+amx_bf16", "+amx_int8"]


def recorded_profile(tmp_path: Path, name: str) -> dict[str, Any]:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text((RECORDED / name).read_text())
    return doctor.scan(str(tmp_path))


def compiled_features(rec: dict[str, Any]) -> frozenset[str]:
    """The features `hai compile` gets from the recommended flags."""
    from targets.registry import resolve_target

    return resolve_target(
        rec["target"], cpu=rec["cpu"], cpu_features=",".join(rec["cpu_features"]) or None
    ).features


@pytest.mark.parametrize("name", ["sapphire_rapids_vm.txt", "zen5_epyc.txt"])
def test_recorded_cpu_recommendation_reproduces_its_features(tmp_path: Path, name: str) -> None:
    pytest.importorskip("tvm")
    from runtime.cpu_features import parse_cpuinfo

    profile = recorded_profile(tmp_path, name)
    validate(profile)
    rec = profile["recommended"]
    assert profile["cpu"]["llvm_cpu"] is None  # another machine's /proc: this host's LLVM is not asked
    assert rec["cpu"] == "x86-64-v4"
    assert compiled_features(rec) == set(parse_cpuinfo((RECORDED / name).read_text()).features)
    console = Console(record=True, width=300)
    doctor.render_table(profile, console)
    assert doctor.recommended_flags(rec) in console.export_text()


@pytest.mark.parametrize(
    ("name", "cpu", "features"),
    [
        ("graviton3_neoverse_v1.txt", "neoverse-v1", ["bf16", "dotprod", "fp16", "i8mm", "neon", "sve"]),
        ("raspberry_pi4_cortex_a72.txt", "cortex-a72", ["neon"]),
    ],
)  # fmt: skip
def test_recorded_aarch64_cpu_recommends_arm64(
    tmp_path: Path, name: str, cpu: str, features: list[str]
) -> None:
    """On aarch64 the recommendation is `--target arm64` with the cpu its Arm part number names and the
    features of its `Features` line, which that cpu's LLVM table reproduces (no edits)."""
    pytest.importorskip("tvm")
    profile = recorded_profile(tmp_path, name)
    validate(profile)
    rec = profile["recommended"]
    assert (rec["target"], rec["cpu"], rec["features"], rec["cpu_features"]) == ("arm64", cpu, features, [])
    assert compiled_features(rec) == set(features)
    console = Console(record=True, width=300)
    doctor.render_table(profile, console)
    assert f"--target arm64 --cpu {cpu}" in console.export_text()


@pytest.mark.parametrize(
    ("name", "llvm_cpu", "edits"),
    [
        ("sapphire_rapids_vm.txt", "rocketlake", ["+avx512_bf16", "+avx512_fp16", "+avx_vnni", *AMX_ON]),
        ("zen5_epyc.txt", "znver5", []),
        ("zen5_epyc.txt", "sapphirerapids", ["-avx512_fp16", "-amx", "-amx_bf16", "-amx_int8"]),
        ("graviton3_neoverse_v1.txt", "neoverse-n1", ["+i8mm", "+bf16", "+sve"]),
        ("raspberry_pi4_cortex_a72.txt", "cortex-a76", ["-fp16", "-dotprod"]),
    ],
)  # fmt: skip
def test_llvm_name_gets_the_edits_to_the_cpu(name: str, llvm_cpu: str, edits: list[str]) -> None:
    """LLVM names this Sapphire Rapids VM (cpuid model 167) `rocketlake`, whose table has no AMX."""
    pytest.importorskip("tvm")
    from runtime.cpu_features import parse_cpuinfo

    cpu = parse_cpuinfo((RECORDED / name).read_text())
    rec = doctor.recommended_target({"arch": cpu.arch, "llvm_cpu": llvm_cpu, "isa_level": cpu.isa_level,
                                     "features": list(cpu.features)})  # fmt: skip
    assert (rec["cpu"], rec["cpu_features"]) == (llvm_cpu, edits)
    assert compiled_features(rec) == set(cpu.features)
