"""The layer tests: conv layers from the PyTorch model or random integers through the core,
every psum and output bit for bit (the bench: tb/core_layer.py)."""
from __future__ import annotations

import numpy as np
import pytest

from tb.core_layer import SCHEDULES, run_case
from tb.layer_cases import model_case, network_case, random_case, saturating_case

PART2 = "vgg16_quant_project_part2"     # course part 2: 16-channel squeeze, 2-bit activations


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_model_layer(seed, schedule):
    """The squeezed 8->8 layer of the project VGG16, seeded weights and synthetic image."""
    run_case(model_case(seed=seed), schedule, f"core_layer-model{seed}-{schedule}")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_random_layer(seed, schedule):
    run_case(random_case(8, 8, 4, 4, seed=100 + seed), schedule, f"core_layer-random{seed}-{schedule}")


def test_mixed_dataflows():
    """WS, OS and WS again in one simulation, no reset in between."""
    runs = run_case(random_case(8, 8, 4, 4, seed=7), "fast,os,classic,os,fast", "core_layer-mixed")
    assert [r["dataflow"] for r in runs] == ["ws", "os", "ws", "os", "ws"]


def test_mode_switch_mid_layer():
    """A WS layer cut off halfway, then OS, then an OS layer cut off, then WS: each checked
    layer starts with a flush, so what the cut-off one left in flight does no harm."""
    runs = run_case(random_case(8, 8, 4, 4, seed=8), "abort:fast,os,abort:os,fast", "core_layer-abort")
    assert [r["schedule"] for r in runs] == ["os", "fast"]


def test_os_activations_above_7():
    """Activations 8..15 through the OS path: the notebooks decoded them as signed."""
    case = random_case(8, 8, 4, 4, seed=9)
    case["x_int"] = (case["x_int"] % 8 + 8).astype(np.uint8)     # every activation in 8..15
    run_case(case, "os", "core_layer-os-high")


@pytest.mark.parametrize("seed", range(5))
def test_part2_layer(seed):
    """The 16->16 4x4 layer of the part-2 model (a_bit=2) in the 2-bit mode: every psum and
    output bit-exact, the recovered float output against the model's (run_case checks
    below 1e-5), the RTL cycles against the builder's plan."""
    case = model_case(seed=seed, model_name=PART2)
    assert case["x_int"].shape == (16, 4, 4) and case["x_int"].max() <= 3, case["x_int"].shape
    [run] = run_case(case, "fast2", f"core_layer-part2-{seed}")
    assert run["a_bit"] == 2 and run["psums_checked"] == 2 * 9 * 16 and "recovery_error" in run, run


def test_precision_switch():
    """A 2-bit layer, a 4-bit layer (activations 8..15, so a lane read as two 2-bit
    activations would differ) and the 2-bit layer again in one simulation, no reset."""
    case = random_case(16, 16, 4, 4, seed=14, a_bit=2)
    other = random_case(16, 8, 4, 4, seed=15)
    case["x_int1"], case["w_int1"] = (other["x_int"] % 8 + 8).astype(np.uint8), other["w_int"]
    runs = run_case(case, "fast2,fast@1,fast2", "core_layer-precision-switch")
    assert [r["a_bit"] for r in runs] == [2, 4, 2], runs


def test_2bit_range_edges():
    """2-bit activations 0 and 3 against weights -7 and 7 (every PE's two products at
    their extremes; -8 is covered by tb/test_mac_tile.py), on 3 ic tiles of 16 channels."""
    rng = np.random.default_rng(16)
    x = rng.choice([0, 3], size=(40, 4, 4)).astype(np.uint8)
    w = rng.choice([-7, 7], size=(8, 40, 3, 3)).astype(np.int8)
    run_case({"x_int": x, "w_int": w, "layer": "2-bit 40->8 4x4, activations 0/3, weights -7/7"}, "fast2",
             "core_layer-2bit-edges")


LONG = pytest.mark.long     # tb/conftest.py starts these first


@pytest.mark.parametrize("ic,oc,size", [
    (40, 24, 5),                            # 3 ic tiles of 16 channels (the last padded) x 3 oc tiles
    pytest.param(48, 64, 4, marks=LONG),    # 3 x 8 tiles: more weights than xmem holds, passes
])
def test_random_2bit_layer(ic, oc, size):
    [run] = run_case(random_case(ic, oc, size, size, seed=ic + oc, a_bit=2), "fast2",
                     f"core_layer-2bit-{ic}x{oc}x{size}")
    assert run["a_bit"] == 2 and run["psums_checked"] == -(-ic // 16) * -(-oc // 8) * 9 * size * size, run


@pytest.mark.parametrize("ic,oc,size,schedules", [
    pytest.param(48, 48, 5, "fast", marks=LONG),    # weights do not fit wmem at once: double-buffered passes
    pytest.param(64, 32, 2, "fast", marks=LONG),    # paired weight sets: LOAD and LOAD2 from one wmem entry
    pytest.param(16, 16, 8, "os", marks=LONG),      # 2 ic tiles x 2 oc tiles
    pytest.param(16, 16, 8, "fast", marks=LONG),
    pytest.param(24, 16, 4, "fast,classic", marks=LONG),  # 3 ic tiles x 2 oc tiles
    (3, 16, 4, "fast,classic,os"),                  # input channels padded to a tile (the first VGG layer's case)
])
def test_multi_tile_layer(ic, oc, size, schedules):
    runs = run_case(random_case(ic, oc, size, size, seed=ic * oc), schedules,
                    f"core_layer-{ic}x{oc}x{size}-{schedules.replace(',', '_')}")
    assert [r["schedule"] for r in runs] == schedules.split(",")


@pytest.mark.parametrize("array_size", [4, 16])
def test_array_sizes(array_size):
    """The core built with row = col = 4 and 16 (8 is every other test here): a layer that
    needs several ic/oc tiles on the small array and padded channels on the large one, in
    every schedule, back to back."""
    schedules = ",".join(sorted(SCHEDULES))
    runs = run_case(random_case(8, 8, 4, 4, seed=10 + array_size), schedules,
                    f"core_layer-array{array_size}", array_size=array_size)
    assert [r["schedule"] for r in runs] == schedules.split(",")


def test_network_requant_layer():
    """The SFP emits levels (quantile thresholds, every third channel descending): 20 -> 12
    (padded ic and oc tiles), every threshold and operand load in the program; against
    the independent integer conv + Requant.apply as well as the reference tiling."""
    x, w = random_case(20, 12, 4, 5, seed=21)["x_int"], random_case(20, 12, 4, 5, seed=21)["w_int"]
    runs = run_case(network_case(x, w, requant=True, seed=21, layer="random 20->12 requant"), "network",
                    "core_layer-network-requant")
    assert runs[0]["independent_checked"] == 12 * 4 * 5


def test_network_raw_layer():
    """Raw sums of 60,480 (all-15 x all-+7, 64 -> 8): beyond a 16-bit sfp_out lane, exact on
    sfp_wide and no error flag (the ReLU flow flags the same layer: test_core_numerics)."""
    case = saturating_case(+7)
    runs = run_case(network_case(case["x_int"], case["w_int"], requant=False, seed=0, layer=case["layer"]),
                    "network", "core_layer-network-raw")
    assert runs[0]["errors"] == [] and runs[0]["independent_checked"] == 8 * 4 * 4


@pytest.mark.parametrize("requant", [False, True])
def test_network_signed_first_layer(requant):
    """features.0's signed input: levels -255..15 (both ends included) as base-16 digits,
    the high digit's ic tile added times 16 in the SFP; against F.conv2d on the signed
    integers."""
    rng = np.random.default_rng(31)
    x = rng.integers(-255, 16, (3, 4, 4))
    x[0, 0, 0], x[1, 0, 0], x[2, 3, 3] = -255, 15, -16
    w = rng.integers(-7, 8, (16, 3, 3, 3))
    runs = run_case(network_case(x, w, requant=requant, seed=31, layer="signed 3->16 4x4"), "network",
                    f"core_layer-network-signed-{'requant' if requant else 'raw'}")
    assert runs[0]["independent_checked"] == 16 * 4 * 4
