"""The layer test: a conv layer from the PyTorch model, through the core, bit for bit.

The pytest side captures the layer (or draws random integers) and writes a case file;
the cocotb side builds the instruction program, plays it into the core, and checks
(a) every psum vector as it lands in pmem against the reference tiling, (b) every SFP
output against the reference accumulation + ReLU, (c) for model layers, the recovered
float output against the model's own layer output. It also reads the core's cycle and
busy counters, and writes a JSON summary next to the build.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
import pytest

from model import program as programs
from model.tiling import ws_reference

SCHEDULES = {"classic": programs.ws_classic, "fast": programs.ws_fast}


@cocotb.test()
async def run_layer(dut):
    from core_tb import CoreTB, LayerScoreboard, expected_from_reference, hardware_outputs
    from layer_cases import load_case

    case = load_case(os.environ["LAYER_CASE"])
    x_int, w_int = case["x_int"], case["w_int"]
    schedule = str(case["schedule"])
    tb = CoreTB(dut)
    ref = ws_reference(x_int, w_int, array_size=tb.row, psum_bw=tb.psum_bw)
    assert not ref.overflows, f"the reference overflows the hardware widths: {ref.overflows[0]}"
    program = SCHEDULES[schedule](x_int, w_int, array_size=tb.row)
    scoreboard = LayerScoreboard(program, *expected_from_reference(ref))
    tb.attach(scoreboard)
    dut._log.info("layer %s: %s schedule, %d cycles of program", str(case["layer"]), schedule,
                  len(program.inst))

    await tb.reset()
    await tb.play(program)

    scoreboard.check()
    assert not tb.errors(), f"core raised {', '.join(tb.errors())}"
    last = scoreboard.outputs[-1]
    rtl_cycles = last.counter - tb.driver.counter_at_start
    assert rtl_cycles == program.cycles, (
        f"RTL counted {rtl_cycles} cycles, the program builder planned {program.cycles}")
    busy = int(dut.busy.value)
    macs = ref.n_ic_tiles * ref.n_oc_tiles * tb.row * tb.col * 9 * ref.n_onij
    summary = {
        "layer": str(case["layer"]), "dataflow": program.dataflow, "schedule": schedule,
        "psums_checked": len(scoreboard.psums), "outputs_checked": len(scoreboard.outputs),
        "cycles": rtl_cycles, "busy_cycles": busy, "useful_macs": macs,
        "utilization": macs / (tb.row * tb.col * rtl_cycles),
    }
    if "out_float" in case:
        hw = hardware_outputs(program, scoreboard, ref.OC, ref.n_onij)
        recovered = hw.reshape(case["out_float"].shape) * float(case["act_delta"]) * float(case["w_delta"])
        model_out = np.maximum(case["out_float"], 0)
        error = float(np.abs(recovered - model_out).mean())
        assert error < 1e-5, f"recovered float output differs from the model's: mean error {error:.3g}"
        summary["recovery_error"] = error
    dut._log.info("summary: %s", summary)
    result = os.environ.get("LAYER_RESULT")
    if result:
        Path(result).write_text(json.dumps(summary, indent=2))


def run_case(case: dict, schedule: str, name: str, parameters: dict | None = None) -> dict:
    """Write the case, simulate it, return the summary (used by the tests and the demo)."""
    import runner
    from layer_cases import save_case

    folder = runner.build_dir(name, parameters or {})
    case_path = save_case(folder / "case.npz", case, schedule)
    result_path = folder / "result.json"
    result_path.unlink(missing_ok=True)
    runner.run("core", "test_core_layer", parameters=parameters, name=name,
               extra_env={"LAYER_CASE": str(case_path), "LAYER_RESULT": str(result_path)})
    return json.loads(result_path.read_text())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_model_layer(seed, schedule):
    from layer_cases import model_case

    run_case(model_case(seed=seed), schedule, f"core_layer-model{seed}-{schedule}")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_random_layer(seed, schedule):
    from layer_cases import random_case

    run_case(random_case(8, 8, 4, 4, seed=100 + seed), schedule, f"core_layer-random{seed}-{schedule}")
