"""WAVES=1 gives a waveform, and tb/core.gtkw (the GTKWave save file) fits it.

Runs one small layer test (random 8->8 4x4, "fast" schedule) with WAVES=1, checks the
core's FST is there and not empty, lists the FST's signals with fst2vcd (comes with
GTKWave; that part is skipped when it is not installed) and checks that every signal
tb/core.gtkw names exists in the dump with the same bit range (GTKWave finds a vector
only by its full name, e.g. core_harness.u_core.inst[73:0], so a width change in the RTL needs an edit
of core.gtkw).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import runner

GTKW = runner.TB / "core.gtkw"


def gtkw_signals(path: Path = GTKW) -> list[str]:
    """The signal lines of a GTKWave save file (not the [settings], @flags, -labels, comments)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("[", "@", "-", "*", "#")):
            names.append(line)
    return names


def fst_signals(fst: Path) -> set[str]:
    """Every variable in the FST as GTKWave names it: scope.scope.name[msb:lsb]."""
    vcd = subprocess.run(["fst2vcd", str(fst)], capture_output=True, text=True, timeout=120, check=True)
    scopes: list[str] = []
    names = set()
    for line in vcd.stdout.splitlines():
        if line.startswith("$enddefinitions"):
            break
        words = line.split()
        if not words:
            continue
        if words[0] == "$scope":
            scopes.append(words[2])
        elif words[0] == "$upscope":
            scopes.pop()
        elif words[0] == "$var":
            # $var <type> <width> <id> <name> [<range>] $end
            name = "".join(words[4:-1])
            path = [s for s in scopes if s != "TOP"] or scopes   # Verilator wraps the top in TOP
            names.add(".".join(path + [name]))
    return names


def test_gtkw_groups_balanced():
    """Every group opened in core.gtkw (@800200 / -name) is closed (@1000200 / -name)."""
    lines = [l.strip() for l in GTKW.read_text().splitlines()]
    opened = [lines[i + 1] for i, l in enumerate(lines) if l == "@800200"]
    closed = [lines[i + 1] for i, l in enumerate(lines) if l == "@1000200"]
    assert opened == closed, f"groups opened {opened}, closed {closed}"
    assert len(gtkw_signals()) > 20


def test_waves_and_gtkw(monkeypatch):
    from layer_cases import random_case
    from tb.core_layer import TOPLEVEL, run_case

    monkeypatch.setenv("WAVES", "1")
    name = "core_layer-waves"
    run_case(random_case(8, 8, 4, 4, seed=5), "fast", name)
    fst = runner.waves_path(runner.build_dir(name, {}), TOPLEVEL)
    assert fst.is_file(), f"WAVES=1 wrote no {fst}"
    assert fst.stat().st_size > 1000, f"{fst} is (nearly) empty: {fst.stat().st_size} bytes"

    if shutil.which("fst2vcd") is None:
        pytest.skip("fst2vcd (GTKWave) not installed: the FST exists, core.gtkw not checked against it")
    dumped = fst_signals(fst)
    assert f"{TOPLEVEL}.u_core.inst" in {re.sub(r"\[.*$", "", n) for n in dumped}, f"no core inst in {fst}"
    missing = [s for s in gtkw_signals() if s not in dumped]
    hints = []
    for s in missing:
        base = re.sub(r"\[.*$", "", s)
        same = sorted(n for n in dumped if re.sub(r"\[.*$", "", n) == base)
        hints.append(f"{s} (dump has {', '.join(same)})" if same else f"{s} (not in the dump)")
    assert not missing, (f"{len(missing)} signals of {GTKW.name} are not in {fst}:\n  " + "\n  ".join(hints))


def test_gtkw_follows_the_config():
    """tb/core.gtkw is derived from rtl/core_inst.vh (tb.gtkw.gtkw_for); another array size
    gets other ranges, the instruction word keeps its own."""
    from model.hwconfig import CONFIG
    from tb.gtkw import gtkw_for

    assert GTKW.read_text() == gtkw_for(CONFIG), "tb/core.gtkw is stale: write tb.gtkw.gtkw_for(CONFIG) to it"
    wide = gtkw_for(CONFIG.with_array(16))
    assert f"core.u_xmem.D[{16 * CONFIG.lane_bits - 1}:0]" in wide
    assert f"core.u_pmem.Q[{16 * CONFIG.psum_bw - 1}:0]" in wide
    assert f"core.inst[{CONFIG.isa.width - 1}:0]" in wide
