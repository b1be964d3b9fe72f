"""Builds and runs one cocotb test bench: the glue between pytest and the simulator.

Every (test, parameter set, simulator) gets its own build folder under sim_build/, so
`pytest -n auto` never shares a build. SIM picks the simulator (icarus, the default, or
verilator); WAVES=1 dumps an FST next to the build and prints its path.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

REPO = Path(__file__).resolve().parent.parent
RTL = REPO / "rtl"
TB = REPO / "tb"
SIM_BUILD = REPO / "sim_build"

# Which rtl/ files each top level needs (its own file first).
DEPENDS = {
    "mac": ["mac"],
    "mac_tile": ["mac_tile", "mac"],
    "mac_row": ["mac_row", "mac_tile", "mac"],
    "skew": ["skew"],
    "mac_array": ["mac_array", "mac_row", "mac_tile", "mac", "skew"],
    "fifo": ["fifo"],
    "fifo_bank": ["fifo_bank", "fifo", "skew"],
    "ofifo": ["ofifo", "fifo_bank", "fifo", "skew"],
    "sram": ["sram"],
    "abuf": ["abuf"],
    "sfp": ["sfp"],
}
DEPENDS["corelet"] = ["corelet", "sfp", "abuf"] + DEPENDS["ofifo"] + DEPENDS["mac_array"]
DEPENDS["core"] = ["core", "sram"] + DEPENDS["corelet"]


def simulator() -> str:
    return os.environ.get("SIM", "icarus")


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def sources(toplevel: str) -> list[Path]:
    names = list(dict.fromkeys(DEPENDS[toplevel]))
    return [RTL / f"{name}.v" for name in names]


def _slug(parameters: dict) -> str:
    text = "-".join(f"{k}{v}" for k, v in sorted(parameters.items())) or "default"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def build_dir(name: str, parameters: dict) -> Path:
    return SIM_BUILD / f"{name}-{_slug(parameters)}-{simulator()}"


def run(
    toplevel: str,
    test_module: str,
    parameters: dict | None = None,
    name: str | None = None,
    extra_env: dict | None = None,
    testcase: str | None = None,
    hdl_sources: list[Path] | None = None,
) -> Path:
    """Build `toplevel` with `parameters` and run the cocotb tests in `test_module`.

    Fails (AssertionError) when any cocotb test fails. Returns the build folder, where
    the FST lies when WAVES=1.
    """
    parameters = dict(parameters or {})
    sim = simulator()
    waves = waves_enabled()
    folder = build_dir(name or test_module, parameters)
    runner = get_runner(sim)
    build_args = []
    if sim == "verilator":
        build_args = ["-Wno-fatal", "--trace-fst", "--trace-structs"] if waves else ["-Wno-fatal"]
    runner.build(
        sources=hdl_sources or sources(toplevel),
        hdl_toplevel=toplevel,
        includes=[RTL],
        parameters=parameters,
        build_dir=folder,
        build_args=build_args,
        waves=waves,
        timescale=("1ns", "1ps"),
    )
    env = {
        "PYTHONPATH": os.pathsep.join([str(TB), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WAVES_PATH": str(folder / f"{toplevel}.fst") if waves else "",
    }
    env.update(extra_env or {})
    try:
        results = runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            parameters=parameters,
            build_dir=folder,
            test_dir=folder,
            extra_env=env,
            waves=waves,
            testcase=testcase,
            timescale=("1ns", "1ps"),
        )
    except SystemExit as exc:  # cocotb_tools exits the process when a cocotb test fails
        raise AssertionError(f"{test_module}: cocotb test failed (log above; build {folder})") from exc
    total, failed = get_results(results)
    if waves:
        print(f"waveform: {folder / (toplevel + '.fst')}")
    assert total > 0, f"{test_module}: no cocotb test ran"
    assert failed == 0, f"{test_module}: {failed} of {total} cocotb tests failed (log above; build {folder})"
    return folder
